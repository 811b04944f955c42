//! Every routed request counted by route template and status, with its latency
//! (`metrics::record_http`). A route layer: the route template is known there.

use super::layer::{Answer, Inner, Wrap};
use axum::extract::{MatchedPath, Request};
use std::time::Instant;

#[derive(Clone, Copy, Debug)]
pub struct RouteMetrics;

impl Wrap for RouteMetrics {
    fn call<S: Inner>(&self, inner: &mut S, request: Request) -> Answer {
        if !crate::metrics::installed() {
            // Nothing records: no handles to keep, no clock to read.
            return Box::pin(inner.call(request));
        }
        let started = Instant::now();
        let method = crate::metrics::method_label(request.method());
        let route = request.extensions().get::<MatchedPath>().cloned();
        let answer = inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
            crate::metrics::record_http(method, route, response.status(), started.elapsed());
            Ok(response)
        })
    }
}
