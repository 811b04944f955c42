//! Every request's id, log context and access line: the id is the caller's `x-request-id` or a
//! new UUID, set on the request (for handlers) and on the response; the lines logged while the
//! request runs carry its method, path and id; a line with its status and latency ends it.
//!
//! One layer instead of tower-http's request-id and trace layers: those open a tracing span per
//! request and format the response event through tracing-subscriber, together a fifth of an
//! invocation's instructions (see `telemetry::request`).

use super::layer::{Answer, Inner, Wrap};
use crate::telemetry::{self, RequestFields};
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use std::sync::Arc;
use std::time::Instant;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// See the module's comment.
#[derive(Clone, Copy, Debug, Default)]
pub struct Access;

impl Wrap for Access {
    fn call<S: Inner>(&self, inner: &mut S, mut request: Request) -> Answer {
        let started = Instant::now();
        let id = match request.headers().get(&REQUEST_ID) {
            Some(id) => id.clone(),
            None => {
                let id = new_id();
                request.headers_mut().insert(REQUEST_ID, id.clone());
                id
            }
        };
        let fields = Arc::new(RequestFields { method: request.method().clone(), uri: request.uri().clone(), id });
        let answer = telemetry::in_request(fields.clone(), inner.call(request));
        Box::pin(async move {
            let mut response = answer.await?;
            response.headers_mut().entry(REQUEST_ID).or_insert_with(|| fields.id.clone());
            telemetry::request_finished(&fields, response.status(), started.elapsed());
            Ok(response)
        })
    }
}

/// A random (v4) UUID, hyphenated.
fn new_id() -> HeaderValue {
    let mut text = uuid::Uuid::encode_buffer();
    let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(id).expect("a UUID is a valid header value")
}
