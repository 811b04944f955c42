//! The HTTP server loop (HTTP/1.1 and h2c, as `axum::serve`) with the limits `axum::serve` does
//! not offer: a cap on open connections, a deadline for a request's headers once its first byte
//! arrived, and an idle keep-alive timeout, so slow or silent clients cannot hold the process's
//! sockets or memory. Written here because neither axum nor hyper-util expose these together:
//! hyper's own header-read timer also runs while a kept-alive connection waits, which would make
//! the idle timeout no longer than the header deadline (and a load balancer in front wants the
//! backend's idle timeout above its own).

mod self_wake;
pub mod worker_cpus;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::ServiceExt;

#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Open connections at most; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// From a request's first byte to its complete headers.
    pub header_read_timeout: Duration,
    /// A kept-alive connection with no request in flight and no traffic is closed after this.
    pub idle_timeout: Duration,
}

/// What [`serve`] serves: the API with its layers (`app::router`). Cloned per request, so its
/// clone should be shallow.
pub trait HttpService:
    tower::Service<
        axum::extract::Request,
        Response = axum::response::Response,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> HttpService for S where
    S: tower::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and waits for
/// open connections to finish their requests (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    router: impl HttpService,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    // hyper's own header timer, as a backstop only: it also runs while a connection waits idle.
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.idle_timeout + limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // A client that gave up before we accepted it is no reason to pause.
                    if !is_connection_error(&e) {
                        tracing::error!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched { inner: stream, activity: activity.clone() });
        let service = TrackedService { router: router.clone(), activity: activity.clone() };
        let connection = builder.serve_connection_with_upgrades(io, service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(self_wake::RepollOnSelfWake::new(async move {
            let _slot = slot;
            tokio::select! {
                result = connection => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                reason = activity.expired(limits) => tracing::debug!(reason, "connection closed"),
            }
        }));
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// Where a connection is between requests.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// No request in flight; last traffic at `since`.
    Idle { since: Instant },
    /// The first bytes of a request arrived at `since`; its headers are not complete yet.
    ReadingHead { since: Instant },
    /// Requests being handled (their headers were read).
    Busy { in_flight: usize },
}

/// Traffic only updates the phase (an uncontended lock, no wake-up): the watchdog wakes on its
/// own schedule and looks again, so a busy connection costs it nothing per request. A deadline
/// is so enforced within half a header timeout of passing.
struct Activity {
    phase: Mutex<Phase>,
}

impl Activity {
    fn new() -> Self {
        Self { phase: Mutex::new(Phase::Idle { since: Instant::now() }) }
    }

    fn update(&self, f: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().expect("phase lock");
        *phase = f(*phase);
    }

    fn read_bytes(&self) {
        self.update(|p| match p {
            Phase::Idle { .. } => Phase::ReadingHead { since: Instant::now() },
            other => other,
        });
    }

    fn wrote_bytes(&self) {
        self.update(|p| match p {
            Phase::Idle { .. } => Phase::Idle { since: Instant::now() },
            other => other,
        });
    }

    fn request_started(&self) {
        self.update(|p| match p {
            Phase::Busy { in_flight } => Phase::Busy { in_flight: in_flight + 1 },
            _ => Phase::Busy { in_flight: 1 },
        });
    }

    fn request_finished(&self) {
        self.update(|p| match p {
            Phase::Busy { in_flight } if in_flight > 1 => Phase::Busy { in_flight: in_flight - 1 },
            _ => Phase::Idle { since: Instant::now() },
        });
    }

    /// Resolves once the connection has been idle, or reading one request's headers, too long.
    async fn expired(&self, limits: ConnectionLimits) -> &'static str {
        loop {
            let phase = *self.phase.lock().expect("phase lock");
            let (deadline, reason) = match phase {
                Phase::Idle { since } => (since + limits.idle_timeout, Some("idle keep-alive timeout")),
                Phase::ReadingHead { since } => (since + limits.header_read_timeout, Some("header read timeout")),
                // Nothing to time while requests run: look again later.
                Phase::Busy { .. } => (Instant::now() + limits.header_read_timeout, None),
            };
            if let Some(reason) = reason
                && deadline <= Instant::now()
            {
                return reason;
            }
            // The phase may change while asleep (a request starting on an idle connection has
            // only the header deadline): look again at least every half header timeout.
            tokio::time::sleep_until(deadline.min(Instant::now() + limits.header_read_timeout / 2)).await;
        }
    }
}

/// The socket, reporting traffic to the connection's [`Activity`].
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.read_bytes();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote_bytes();
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote_bytes();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The router, marking each request busy from its complete headers to its response.
#[derive(Clone)]
struct TrackedService<S> {
    router: S,
    activity: Arc<Activity>,
}

/// Marks the request finished when dropped, however its future ends.
struct Finished(Arc<Activity>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

impl<S: HttpService> hyper::service::Service<hyper::Request<Incoming>> for TrackedService<S> {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        self.activity.request_started();
        let finished = Finished(self.activity.clone());
        let router = self.router.clone();
        Box::pin(async move {
            let response = router.oneshot(request.map(axum::body::Body::new)).await;
            drop(finished);
            response
        })
    }
}
