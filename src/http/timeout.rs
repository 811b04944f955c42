//! Bounds every request (`http.request_timeout`) but asset transfers, whose duration depends on
//! their size; those are bounded by `assets.max_upload_bytes` instead. A request over the limit
//! is answered 503 (`timeout`), and its handler is dropped.

use super::layer::{Answer, Inner, Wrap};
use crate::error::ApiError;
use axum::extract::Request;
use axum::response::IntoResponse;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Timeout {
    limit: Duration,
    /// `http.path_prefix`: assets are also served under it.
    prefix: Option<Arc<str>>,
}

impl Timeout {
    pub fn new(limit: Duration, prefix: Option<&str>) -> Self {
        Timeout { limit, prefix: prefix.map(Arc::from) }
    }

    /// Whether `path` is an asset transfer's, with or without the prefix.
    fn is_asset(&self, path: &str) -> bool {
        let unprefixed = self.prefix.as_deref().and_then(|prefix| path.strip_prefix(prefix));
        unprefixed.filter(|rest| rest.starts_with('/')).unwrap_or(path).starts_with("/v1/assets/")
    }
}

impl Wrap for Timeout {
    fn call<S: Inner>(&self, inner: &mut S, request: Request) -> Answer {
        let unbounded = self.is_asset(request.uri().path());
        let answer = inner.call(request);
        if unbounded {
            return Box::pin(answer);
        }
        let limit = self.limit;
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
        let layer = Timeout::new(Duration::from_secs(1), Some("/prod"));
        for (path, asset) in [
            ("/v1/assets/models/m.tar.gz", true),
            ("/prod/v1/assets/models/m.tar.gz", true),
            ("/prod/v1/pipelines", false),
            ("/v1/pipelines/v1/assets/", false),
            ("/production/v1/assets/x", false),
        ] {
            assert_eq!(layer.is_asset(path), asset, "{path}");
        }
        assert!(!Timeout::new(Duration::from_secs(1), None).is_asset("/prod/v1/assets/x"));
    }
}
