//! HTTP/1.1 to a custom algorithm on loopback, each connection driven by the task that calls
//! through it, kept alive between calls.
//!
//! Written here rather than using reqwest (hyper-util's pooled client): that client runs every
//! connection as a task of its own, so each call hands the request to that task and gets the
//! answer back from it — two wake-ups across the runtime's threads that cost more than the
//! loopback exchange itself (the proxy-overhead benchmark in docs/BENCHMARKS.md). Here the
//! caller polls the connection together with its request, so the socket wakes the caller.

use super::process::ProcessReply;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::header::{HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

type Driver = Pin<Box<http1::Connection<TokioIo<tokio::net::TcpStream>, Full<Bytes>>>>;

/// Idle connections kept per algorithm (more are closed after their call).
const MAX_IDLE: usize = 64;

/// New connections not yet proven (their first answer not read) at once per algorithm. A burst
/// of calls finding no idle connection would otherwise open one each at the same moment, and a
/// server that accepts slowly with a short listen queue (Python's `socketserver` listens with a
/// backlog of 5) has the kernel drop the connections beyond it; TCP retries those a second later,
/// so their calls wait a second or more (measured: p99 1.5 s in the first seconds of 32
/// concurrent calls). Calls beyond this wait for a connection to come back or for a new one to
/// be proven.
const MAX_OPENING: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Nothing listens on the port (the process is gone or not started yet).
    #[error("cannot connect to the algorithm: {0}")]
    Connect(std::io::Error),
    /// The exchange failed; `reused`: on a connection an earlier call had used, which the
    /// algorithm may have closed in between.
    #[error("{message}")]
    Exchange { message: String, reused: bool },
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
}

/// Kept-alive connections to one algorithm.
pub struct ChildConnections {
    idle: Mutex<Vec<Connection>>,
    /// Told when a connection is given back.
    returned: Notify,
    /// One permit per connection being opened, held until its first answer ([`MAX_OPENING`]).
    opening: Arc<Semaphore>,
}

impl Default for ChildConnections {
    fn default() -> Self {
        Self { idle: Mutex::default(), returned: Notify::new(), opening: Arc::new(Semaphore::new(MAX_OPENING)) }
    }
}

struct Connection {
    port: u16,
    /// `127.0.0.1:port`, the `Host` of every request on it.
    host: HeaderValue,
    sender: http1::SendRequest<Full<Bytes>>,
    /// `None` once it finished: the connection is closed.
    driver: Option<Driver>,
    /// Whether a call went through it already.
    used: bool,
    /// Held until the connection's first answer: the server has accepted it by then.
    opening: Option<OwnedSemaphorePermit>,
}

impl ChildConnections {
    /// `POST /invocations` on `127.0.0.1:port` with these headers and body; at most `limit`
    /// bytes of answer. `fresh`: on a new connection, not an idle one.
    pub async fn post(
        &self,
        port: u16,
        headers: &[(&HeaderName, &str)],
        body: Bytes,
        limit: usize,
        fresh: bool,
    ) -> Result<ProcessReply, CallError> {
        let mut connection = if fresh { self.open(port).await? } else { self.checkout(port).await? };
        // Built field by field: `Request::builder` parses every header name it is given again.
        let mut request = hyper::Request::new(Full::new(body));
        *request.method_mut() = hyper::Method::POST;
        *request.uri_mut() = hyper::Uri::from_static("/invocations");
        let fields = request.headers_mut();
        fields.insert(hyper::header::HOST, connection.host.clone());
        for (name, value) in headers {
            let value = HeaderValue::from_str(value)
                .map_err(|e| CallError::Exchange { message: format!("header {name}: {e}"), reused: false })?;
            fields.insert(*name, value);
        }
        let answer = connection.exchange(request, limit).await;
        if answer.is_ok() && connection.driver.is_some() && !connection.sender.is_closed() {
            self.give_back(connection);
        }
        answer
    }

    /// An idle connection, else a new one once fewer than [`MAX_OPENING`] are being opened,
    /// whichever comes first.
    async fn checkout(&self, port: u16) -> Result<Connection, CallError> {
        loop {
            let returned = self.returned.notified();
            tokio::pin!(returned);
            // Registered before looking, so a connection given back meanwhile is not missed.
            returned.as_mut().enable();
            if let Some(connection) = self.take(port) {
                return Ok(connection);
            }
            tokio::select! {
                permit = self.opening.clone().acquire_owned() => {
                    return Connection::open(port, permit.expect("the semaphore is never closed")).await;
                }
                () = &mut returned => {}
            }
        }
    }

    async fn open(&self, port: u16) -> Result<Connection, CallError> {
        let permit = self.opening.clone().acquire_owned().await.expect("the semaphore is never closed");
        Connection::open(port, permit).await
    }

    fn take(&self, port: u16) -> Option<Connection> {
        let mut idle = self.idle.lock().expect("connections lock");
        while let Some(connection) = idle.pop() {
            // A restarted algorithm listens on another port; a closed connection is no use.
            if connection.port == port && !connection.sender.is_closed() {
                return Some(connection);
            }
        }
        None
    }

    fn give_back(&self, connection: Connection) {
        {
            let mut idle = self.idle.lock().expect("connections lock");
            if idle.len() >= MAX_IDLE {
                return;
            }
            idle.push(connection);
        }
        self.returned.notify_one();
    }
}

impl Connection {
    async fn open(port: u16, opening: OwnedSemaphorePermit) -> Result<Connection, CallError> {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(CallError::Connect)?;
        // One small request and answer per exchange: waiting to coalesce them only adds latency.
        stream.set_nodelay(true).map_err(CallError::Connect)?;
        let (sender, driver) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| CallError::Exchange { message: e.to_string(), reused: false })?;
        let host = HeaderValue::try_from(format!("127.0.0.1:{port}")).expect("an address is a valid header value");
        Ok(Connection { port, host, sender, driver: Some(Box::pin(driver)), used: false, opening: Some(opening) })
    }

    /// Sends the request and reads the whole answer, driving the connection meanwhile.
    async fn exchange(
        &mut self,
        request: hyper::Request<Full<Bytes>>,
        limit: usize,
    ) -> Result<ProcessReply, CallError> {
        let reused = std::mem::replace(&mut self.used, true);
        let failed = |message: String| CallError::Exchange { message, reused };
        let Some(mut running) = self.driver.take() else {
            return Err(failed("the connection is closed".into()));
        };
        let sender = &mut self.sender;
        let call = async {
            sender.ready().await.map_err(|e| failed(e.to_string()))?;
            let response = sender.send_request(request).await.map_err(|e| failed(e.to_string()))?;
            let status = response.status().as_u16();
            let content_type =
                response.headers().get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
            let mut body = response.into_body();
            let mut bytes = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| failed(e.to_string()))?;
                if let Some(data) = frame.data_ref() {
                    if bytes.len() + data.len() > limit {
                        return Err(CallError::TooLarge(limit));
                    }
                    bytes.extend_from_slice(data);
                }
            }
            Ok(ProcessReply { status, content_type, body: Bytes::from(bytes) })
        };
        tokio::pin!(call);
        let answer = tokio::select! {
            biased;
            answer = &mut call => answer,
            ended = running.as_mut() => {
                // The connection ended: the answer may have come with its end (`Connection:
                // close`), else the algorithm closed it or died. Dropping the driver ends the
                // call's wait for an answer that will not come.
                drop(running);
                let reason = match ended {
                    Ok(()) => "the algorithm closed the connection".to_string(),
                    Err(e) => e.to_string(),
                };
                return call.await.map_err(|e| match e {
                    CallError::Exchange { .. } => failed(reason),
                    other => other,
                });
            }
        };
        self.driver = Some(running);
        self.opening = None;
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A loopback server answering every request on a connection with `answer`, closing the
    /// connection after `per_connection` answers; counts the connections it accepted.
    async fn server(answer: &'static str, per_connection: usize) -> (u16, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 8192];
                    for _ in 0..per_connection {
                        // Each request here is one small read: headers and a short body.
                        match socket.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        if socket.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (port, accepted)
    }

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/csv\r\ncontent-length: 4\r\n\r\n0.5\n";

    #[tokio::test]
    async fn calls_reuse_a_kept_alive_connection() {
        let (port, accepted) = server(OK, usize::MAX).await;
        let connections = ChildConnections::default();
        for _ in 0..3 {
            let answer = connections
                .post(port, &[(&hyper::header::CONTENT_TYPE, "text/csv")], Bytes::from("1,2"), 1024, false)
                .await
                .unwrap();
            assert_eq!((answer.status, answer.content_type.as_deref()), (200, Some("text/csv")));
            assert_eq!(answer.body, Bytes::from("0.5\n"));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_closed_connection_is_reported_as_reused_and_a_fresh_one_works() {
        let (port, accepted) = server(OK, 1).await;
        let connections = ChildConnections::default();
        connections.post(port, &[], Bytes::from("1"), 1024, false).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        match connections.post(port, &[], Bytes::from("1"), 1024, false).await {
            Err(CallError::Exchange { reused: true, .. }) => {}
            Ok(_) => {} // the close was seen before the call: a new connection answered
            Err(e) => panic!("{e}"),
        }
        connections.post(port, &[], Bytes::from("1"), 1024, true).await.unwrap();
        assert!(accepted.load(Ordering::SeqCst) >= 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_opens_few_connections_at_once_and_reuses_them() {
        // A server that accepts nothing until told: every connection opened meanwhile waits in
        // its listen queue (long enough here that the kernel drops none).
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = socket.local_addr().unwrap().port();
        let listener = socket.listen(128).unwrap();
        let connections = Arc::new(ChildConnections::default());
        let calls: Vec<_> = (0..32)
            .map(|_| {
                let connections = connections.clone();
                tokio::spawn(async move { connections.post(port, &[], Bytes::from("1"), 1024, false).await })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        // What the calls opened while the server took nothing.
        let mut queued = Vec::new();
        while let Ok(Ok((stream, _))) =
            tokio::time::timeout(std::time::Duration::from_millis(50), listener.accept()).await
        {
            queued.push(stream);
        }
        assert_eq!(queued.len(), MAX_OPENING, "connections opened before any was accepted");
        // Served from now on: every call is answered, over few connections.
        let accepted = Arc::new(AtomicUsize::new(queued.len()));
        let serve = |mut socket: tokio::net::TcpStream| {
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 8192];
                while matches!(socket.read(&mut buffer).await, Ok(n) if n > 0) {
                    if socket.write_all(OK.as_bytes()).await.is_err() {
                        return;
                    }
                }
            })
        };
        queued.into_iter().for_each(|s| drop(serve(s)));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                drop(serve(socket));
            }
        });
        for call in calls {
            assert_eq!(call.await.unwrap().unwrap().status, 200);
        }
        assert!(accepted.load(Ordering::SeqCst) <= 32);
        assert!(connections.idle.lock().unwrap().len() >= MAX_OPENING);
    }

    #[tokio::test]
    async fn answers_over_the_limit_and_closed_ports_are_named() {
        let (port, _) = server(OK, usize::MAX).await;
        let connections = ChildConnections::default();
        assert!(matches!(connections.post(port, &[], Bytes::new(), 3, false).await, Err(CallError::TooLarge(3))));
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        assert!(matches!(connections.post(closed, &[], Bytes::new(), 3, false).await, Err(CallError::Connect(_))));
    }
}
