//! Bounds every request (`http.request_timeout`) but asset transfers, whose duration depends on
//! their size; those are bounded by `assets.max_upload_bytes` instead. A request over the limit
//! is answered 503 (`timeout`), and its handler is dropped.
//!
//! A tower service rather than `axum::middleware::from_fn`, which clones the whole inner stack
//! and boxes it on every request.

use crate::error::ApiError;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct TimeoutLayer {
    limit: Duration,
    /// `http.path_prefix`: assets are also served under it.
    prefix: Option<Arc<str>>,
}

impl TimeoutLayer {
    pub fn new(limit: Duration, prefix: Option<&str>) -> Self {
        TimeoutLayer { limit, prefix: prefix.map(Arc::from) }
    }

    /// Whether `path` is an asset transfer's, with or without the prefix.
    fn is_asset(&self, path: &str) -> bool {
        let unprefixed = self.prefix.as_deref().and_then(|prefix| path.strip_prefix(prefix));
        unprefixed.filter(|rest| rest.starts_with('/')).unwrap_or(path).starts_with("/v1/assets/")
    }
}

impl<S> tower::Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout { inner, layer: self.clone() }
    }
}

#[derive(Clone, Debug)]
pub struct Timeout<S> {
    inner: S,
    layer: TimeoutLayer,
}

impl<S> tower::Service<Request> for Timeout<S>
where
    S: tower::Service<Request, Response = Response> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let unbounded = self.layer.is_asset(request.uri().path());
        let answer = self.inner.call(request);
        if unbounded {
            return Box::pin(answer);
        }
        let limit = self.layer.limit;
        Box::pin(async move {
            match tokio::time::timeout(limit, answer).await {
                Ok(response) => response,
                Err(_) => Ok(ApiError::Timeout(format!(
                    "the request did not finish within {}",
                    humantime::format_duration(limit)
                ))
                .into_response()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_transfers_are_found_with_and_without_the_prefix() {
        let layer = TimeoutLayer::new(Duration::from_secs(1), Some("/prod"));
        for (path, asset) in [
            ("/v1/assets/models/m.tar.gz", true),
            ("/prod/v1/assets/models/m.tar.gz", true),
            ("/prod/v1/pipelines", false),
            ("/v1/pipelines/v1/assets/", false),
            ("/production/v1/assets/x", false),
        ] {
            assert_eq!(layer.is_asset(path), asset, "{path}");
        }
        assert!(!TimeoutLayer::new(Duration::from_secs(1), None).is_asset("/prod/v1/assets/x"));
    }
}
