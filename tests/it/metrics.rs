//! Prometheus metrics on their own listener: what a scrape shows after real traffic. The recorder
//! is process-wide; the exact counts hold because nextest runs each test in its own process.

use crate::on_both_stores;
use crate::support::api::{csv_rows, fixture_json, realtime_body};
use crate::support::server::{INVOKER, test_settings};
use crate::support::{TestDb, TestServer};

/// Settings for a metrics listener on a loopback port of the system's choosing
/// ([`TestServer::metrics`] tells which).
pub fn any_loopback_port() -> Option<std::net::SocketAddr> {
    Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// The value of the sample `name{labels…}` in a Prometheus text exposition.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        let matches = metric == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        matches.then(|| value.parse().unwrap())
    })
}

pub async fn scrape(server: &TestServer) -> String {
    let address = server.metrics.expect("the server has a metrics listener");
    let response = server.http.get(format!("http://{address}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200, "no token needed");
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    response.text().await.unwrap()
}

async fn a_scrape_shows_requests_invocations_capture_drops_models_and_jobs(db: TestDb) {
    let mut settings = test_settings(&db);
    settings.metrics.listen = any_loopback_port();
    // No capture record fits: every captured invocation is a counted drop.
    settings.capture.max_buffered_bytes = 1;
    let server = TestServer::start_with(db, settings).await;
    server.upload_fixture("models/churn/model.tar.gz", "xgboost/model.tar.gz").await;
    let id = server.provision(&realtime_body("churn", "models/churn/model.tar.gz")).await["pipeline_id"]
        .as_str()
        .unwrap()
        .to_string();
    server.wait_for(&id, "active").await;

    let rows = fixture_json("xgboost/binary_logistic.cases.json")["rows"].as_array().unwrap()[..2].to_vec();
    for _ in 0..3 {
        assert_eq!(server.invoke("churn-endpoint", "text/csv", csv_rows(&rows), INVOKER).await.status(), 200);
    }
    assert_eq!(server.invoke("churn-endpoint", "text/csv", "1,2".into(), INVOKER).await.status(), 400);
    assert_eq!(server.invoke("no-such-endpoint", "text/csv", "1,2".into(), INVOKER).await.status(), 404);

    let mut text = scrape(&server).await;
    let route = "/v1/endpoints/{name}/invocations";
    let http = |status| {
        sample(&text, "mlops_http_requests_total", &[("method", "POST"), ("route", route), ("status", status)])
    };
    assert_eq!(http("200"), Some(3.0), "{text}");
    assert_eq!(http("400"), Some(1.0));
    assert_eq!(http("404"), Some(1.0));
    assert_eq!(
        sample(&text, "mlops_http_request_duration_seconds_count", &[("method", "POST"), ("route", route)]),
        Some(5.0)
    );
    let endpoint = [("endpoint", "default.churn-endpoint")];
    assert_eq!(sample(&text, "mlops_invocations_total", &[endpoint[0], ("outcome", "ok")]), Some(3.0));
    assert_eq!(sample(&text, "mlops_invocations_total", &[endpoint[0], ("outcome", "client_error")]), Some(1.0));
    assert_eq!(sample(&text, "mlops_invocation_duration_seconds_count", &endpoint), Some(4.0));
    assert!(sample(&text, "mlops_invocation_duration_seconds_bucket", &[endpoint[0], ("le", "+Inf")]).is_some());
    assert!(!text.contains("no-such-endpoint"), "unknown endpoints get no series of their own");
    assert_eq!(
        sample(
            &text,
            "mlops_capture_dropped_total",
            &[("destination", "my-bucket/datacapture/churn/churn-endpoint/AllTraffic")]
        ),
        Some(3.0)
    );
    assert!(sample(&text, "mlops_model_loads_total", &[("outcome", "ok")]).unwrap() >= 1.0);
    assert!(sample(&text, "mlops_model_load_duration_seconds_count", &[]).unwrap() >= 1.0);
    assert_eq!(
        sample(&text, "mlops_jobs_finished_total", &[("kind", "deploy_stage"), ("outcome", "succeeded")]),
        Some(1.0)
    );
    // Polled every 5 s (figures: `queue_stats_count_waiting_and_running_jobs`): published once
    // the first poll has answered, which on a busy machine can come after the scrape above.
    let gauges = ["mlops_jobs_queued", "mlops_jobs_running", "mlops_jobs_oldest_queued_age_seconds"];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(12);
    while !gauges.iter().all(|gauge| sample(&text, gauge, &[]).is_some()) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        text = scrape(&server).await;
    }
    for gauge in gauges {
        assert!(sample(&text, gauge, &[]).is_some_and(|v| v >= 0.0), "{gauge}: {text}");
    }

    // The API listener does not serve the metrics.
    assert_eq!(server.http.get(server.url("/metrics")).send().await.unwrap().status(), 404);
    server.stop().await;
}

on_both_stores!(a_scrape_shows_requests_invocations_capture_drops_models_and_jobs);
