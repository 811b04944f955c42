//! The real server on a loopback port, against a test database, with one token per role.

use super::TestDb;
use mlops::auth::Role;
use mlops::config::{Settings, TokenSettings};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN: &str = "test-admin-token-0000000000";
pub const OPERATOR: &str = "test-operator-token-000000";
pub const APPROVER: &str = "test-approver-token-000000";
pub const VIEWER: &str = "test-viewer-token-00000000";
pub const INVOKER: &str = "test-invoker-token-0000000";

pub struct TestServer {
    pub base: String,
    pub http: reqwest::Client,
    pub db: TestDb,
    /// Where `/metrics` is served when the settings asked for a metrics listener.
    pub metrics: Option<std::net::SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), mlops::app::StartError>>>,
}

pub fn test_settings(db: &TestDb) -> Settings {
    let token = |name: &str, role, token: &str| TokenSettings {
        name: name.into(),
        role,
        token: Some(token.into()),
        sha256: None,
    };
    let mut s =
        Settings { data_dir: db.dir.path().join("data"), database_url: Some(db.url.clone()), ..Settings::default() };
    s.auth.tokens = vec![
        token("root", Role::Admin, ADMIN),
        token("olga-operator", Role::Operator, OPERATOR),
        token("anna-approver", Role::Approver, APPROVER),
        token("vic-viewer", Role::Viewer, VIEWER),
        token("ivan-invoker", Role::Invoker, INVOKER),
    ];
    s.jobs.poll_interval = Duration::from_millis(100);
    s.jobs.retry_base = Duration::from_millis(50);
    s.jobs.retry_max = Duration::from_millis(500);
    s.http.shutdown_grace = Duration::from_secs(5);
    s.capture.flush_interval = Duration::from_millis(200);
    s
}

impl TestServer {
    pub async fn start(db: TestDb) -> TestServer {
        let settings = test_settings(&db);
        Self::start_with(db, settings).await
    }

    /// With `settings.metrics.listen` set (port 0: any free one), the metrics listener is bound
    /// here, so its port is known without picking a free one and racing other tests for it.
    pub async fn start_with(db: TestDb, settings: Settings) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let metrics_listener = match settings.metrics.listen {
            Some(address) => Some(tokio::net::TcpListener::bind(address).await.expect("bind the metrics listener")),
            None => None,
        };
        let metrics = metrics_listener.as_ref().map(|l| l.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let listeners = mlops::app::Listeners { api: listener, metrics: metrics_listener };
        let handle = tokio::spawn(mlops::app::start_on(settings, listeners, async move {
            let _ = rx.await;
        }));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let server = TestServer { base, http, db, metrics, shutdown: Some(tx), handle: Some(handle) };
        for _ in 0..200 {
            if server.http.get(server.url("/healthz")).send().await.is_ok() {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("server did not come up");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn post(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(token)
    }

    pub fn get(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(token)
    }

    /// Stops the server the hard way, as a crash would: nothing is flushed, released or closed;
    /// leases stay held until they expire. Returns the database for a restart.
    #[cfg_attr(not(feature = "aws"), allow(dead_code))]
    pub async fn kill(mut self) -> TestDb {
        let handle = self.handle.take().unwrap();
        handle.abort();
        let _ = handle.await;
        let Self { db, .. } = self;
        db
    }

    /// Graceful shutdown, as on SIGTERM; returns the database for a restart or inspection.
    pub async fn stop(mut self) -> TestDb {
        self.shutdown.take().unwrap().send(()).ok();
        let handle = self.handle.take().unwrap();
        tokio::time::timeout(Duration::from_secs(30), handle)
            .await
            .expect("server stops within its grace period")
            .unwrap()
            .expect("server exits cleanly");
        let Self { db, .. } = self;
        db
    }
}
