//! `GET /v1/pipelines/{id}/events?follow=true` (Server-Sent Events) on both stores: a client that
//! drops the stream and reconnects with `Last-Event-ID` misses no event and sees none twice; and
//! the store's promise behind it — a pipeline's events commit in id order — holds on Postgres
//! when two writers race.

use crate::on_both_stores;
use crate::support::api::realtime_body;
use crate::support::server::VIEWER;
use crate::support::{Db, TestDb, TestServer};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::Value;
use std::time::Duration;

/// Opens the stream (after `last`, when given) and reads `count` events, or up to the one that
/// makes the pipeline `until`.
async fn read_stream(server: &TestServer, id: &str, last: Option<i64>, count: usize, until: &str) -> Vec<Value> {
    let mut request = server.get(&format!("/v1/pipelines/{id}/events?follow=true"), VIEWER);
    if let Some(last) = last {
        request = request.header("last-event-id", last.to_string());
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.bytes_stream().eventsource();
    let mut events = Vec::new();
    let read = async {
        while let Some(message) = stream.next().await {
            let message = message.unwrap();
            if message.data.is_empty() {
                continue; // the opening comment
            }
            let event: Value = serde_json::from_str(&message.data).unwrap();
            assert_eq!(message.id, event["id"].to_string(), "the SSE id is the event's id");
            assert_eq!(message.event, event["kind"].as_str().unwrap());
            let done = event["kind"] == "pipeline.state_changed" && event["to_state"] == until;
            events.push(event);
            if events.len() == count || done {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read).await.expect("the stream delivered in time");
    events
}

async fn reconnecting_with_last_event_id_misses_nothing(db: TestDb) {
    let server = TestServer::start(db).await;
    server.upload_fixture("models/churn/model.tar.gz", "xgboost/model.tar.gz").await;
    let out = server.provision(&realtime_body("churn", "models/churn/model.tar.gz")).await;
    let id = out["pipeline_id"].as_str().unwrap().to_string();

    // Two events, then the connection drops; the rest after reconnecting from the last one seen.
    let mut seen = read_stream(&server, &id, None, 2, "active").await;
    assert_eq!(seen.len(), 2);
    let last = seen.last().unwrap()["id"].as_i64().unwrap();
    seen.extend(read_stream(&server, &id, Some(last), usize::MAX, "active").await);
    assert_eq!(seen.last().unwrap()["to_state"], "active", "the stream follows the pipeline to the end");

    // The JSON list up to the same event (a later one may have come since).
    let recorded = server.events(&id).await;
    let last_seen = seen.last().unwrap()["id"].clone();
    let recorded: Vec<Value> =
        recorded.as_array().unwrap().iter().take_while(|e| e["id"] != last_seen).cloned().collect();
    let recorded = [recorded, vec![seen.last().unwrap().clone()]].concat();
    let ids = |events: &[Value]| events.iter().map(|e| e["id"].as_i64().unwrap()).collect::<Vec<_>>();
    assert_eq!(ids(&seen), ids(&recorded), "every event, once, in order");
    assert_eq!(seen, recorded, "the same events as the JSON list");

    // `after` starts a stream too; an unknown pipeline or a bad Last-Event-ID is refused at once.
    let tail = read_stream(&server, &id, None, 1, "active").await;
    assert_eq!(tail[0]["id"], recorded[0]["id"]);
    let response = server.get("/v1/pipelines/no-such-pipeline/events?follow=true", VIEWER).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let response = server
        .get(&format!("/v1/pipelines/{id}/events?follow=true"), VIEWER)
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("Last-Event-ID"), "{problem:#}");
    server.stop().await;
}

on_both_stores!(reconnecting_with_last_event_id_misses_nothing);

/// A writer that holds the pipeline (here: an open transaction that locked its row and recorded
/// an event) keeps every other event of that pipeline waiting, so no later id can commit before
/// the earlier one and a reader's `id > last` cursor never steps over an event still to come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelines_events_commit_in_id_order_on_postgres() {
    use sqlx::Connection;
    let db = TestDb::new(Db::Postgres).await;
    let p = crate::store_contract::provision(&db.store, crate::store_contract::new_pipeline("churn", &["dev"]))
        .await
        .unwrap();
    let id = p.record().id.clone();
    let key = mlops::store::StageKey { pipeline_id: id.clone(), ordinal: 0, version: 1 };

    let mut writer = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut open = writer.begin().await.unwrap();
    sqlx::query("SELECT id FROM pipelines WHERE id = $1 FOR UPDATE").bind(&id).execute(&mut *open).await.unwrap();
    let (held,): (i64,) = sqlx::query_as(
        "INSERT INTO events (pipeline_id, kind, actor, created_at) VALUES ($1, 'test.held', 'test', now()) RETURNING id",
    )
    .bind(&id)
    .fetch_one(&mut *open)
    .await
    .unwrap();

    let store = db.store.clone();
    let racing = tokio::spawn(async move { store.stage_event(&key, "batch.progress", "system", "racing").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!racing.is_finished(), "an event of a held pipeline waits for the holder");
    let visible = db.store.events(&id, None, 100).await.unwrap();
    assert!(visible.iter().all(|e| e.id < held), "nothing past the held event is visible yet");

    open.commit().await.unwrap();
    racing.await.unwrap().unwrap();
    let events = db.store.events(&id, None, 100).await.unwrap();
    let tail: Vec<(&str, bool)> = events.iter().rev().take(2).map(|e| (e.kind.as_str(), e.id > held)).collect();
    assert_eq!(tail, [("batch.progress", true), ("test.held", false)], "the racing event came after, with a larger id");
}
