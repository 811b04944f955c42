//! Request layers written as one method each ([`Wrap::call`]): what a layer does with the request,
//! the service inside it and the answer. axum's `middleware::from_fn` does the same for an async
//! function, but clones and boxes the service inside on every request; [`Wrapped`] calls it in
//! place (every service here is always ready, as axum's are).

use axum::extract::Request;
use axum::response::Response;
use futures::future::BoxFuture;
use std::convert::Infallible;
use std::task::{Context, Poll};

/// What a wrapped service answers.
pub type Answer = BoxFuture<'static, Result<Response, Infallible>>;

/// A service a layer can wrap (axum's routers and routes, and other wrapped services): what the
/// server serves.
pub use crate::server::HttpService as Inner;

/// One request layer.
pub trait Wrap: Clone + Send + Sync + 'static {
    /// Handles `request`, calling `inner` (or not) along the way.
    fn call<S: Inner>(&self, inner: &mut S, request: Request) -> Answer;
}

/// A [`Wrap`] as a tower layer.
#[derive(Clone, Debug)]
pub struct WrapLayer<W>(pub W);

impl<W: Clone, S> tower::Layer<S> for WrapLayer<W> {
    type Service = Wrapped<W, S>;

    fn layer(&self, inner: S) -> Wrapped<W, S> {
        Wrapped { wrap: self.0.clone(), inner }
    }
}

/// A service with a [`Wrap`] around it.
#[derive(Clone, Debug)]
pub struct Wrapped<W, S> {
    wrap: W,
    inner: S,
}

impl<W: Wrap, S: Inner> tower::Service<Request> for Wrapped<W, S> {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Answer {
        self.wrap.call(&mut self.inner, request)
    }
}
