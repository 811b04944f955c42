//! `GET /v1/pipelines/{id}/events?follow=true`: the pipeline's events as Server-Sent Events,
//! oldest first, then each new one as it is recorded. Every event carries its id as the SSE `id`,
//! so a client that reconnects with `Last-Event-ID` (browsers' `EventSource` does on its own)
//! resumes right after the last event it saw: a pipeline's events commit in id order (the store
//! takes the pipeline's lock before an event's id), so nothing is skipped.
//!
//! New events are found by reading the store every [`POLL`] (one indexed query per open stream):
//! simple, and the same on every replica. A stream ends after [`MAX_FOLLOW`] (the client
//! reconnects), once the pipeline is deleted, and when the server shuts down.

use crate::services::pipelines::PipelineService;
use crate::store::EventRecord;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often an open stream looks for new events.
pub const POLL: Duration = Duration::from_millis(250);
/// How long one response streams before it ends and the client reconnects.
pub const MAX_FOLLOW: Duration = Duration::from_secs(300);
/// What the client waits before reconnecting (SSE `retry`).
const RETRY: Duration = Duration::from_secs(1);
const PAGE: i64 = 200;

struct Following {
    pipelines: PipelineService,
    id: String,
    after: i64,
    ready: VecDeque<EventRecord>,
    until: tokio::time::Instant,
    stop: CancellationToken,
    first: bool,
    ended: bool,
}

/// The stream of `id`'s events after event `after`.
pub fn follow(
    pipelines: PipelineService,
    id: String,
    after: i64,
    stop: CancellationToken,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let state = Following {
        pipelines,
        id,
        after,
        ready: VecDeque::new(),
        until: tokio::time::Instant::now() + MAX_FOLLOW,
        stop,
        first: true,
        ended: false,
    };
    let stream = futures::stream::unfold(state, |mut s| async move {
        if s.first {
            s.first = false;
            return Some((Ok(Event::default().retry(RETRY).comment("following")), s));
        }
        loop {
            if let Some(event) = s.ready.pop_front() {
                // Nothing follows a deletion.
                s.ended = event.kind == "pipeline.state_changed" && event.to_state.as_deref() == Some("deleted");
                return Some((Ok(sse_event(&event)), s));
            }
            if s.ended {
                return None;
            }
            match s.pipelines.events(&s.id, Some(s.after), PAGE).await {
                Ok(events) if !events.is_empty() => {
                    s.after = events.last().map_or(s.after, |e| e.id);
                    s.ready.extend(events);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    // The client reconnects from its last event.
                    tracing::warn!(pipeline = %s.id, error = %e, "reading events for a stream failed");
                    return None;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = tokio::time::sleep_until(s.until) => return None,
                _ = s.stop.cancelled() => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

fn sse_event(event: &EventRecord) -> Event {
    Event::default()
        .id(event.id.to_string())
        .event(&event.kind)
        .json_data(event)
        .unwrap_or_else(|_| Event::default().id(event.id.to_string()).event(&event.kind))
}

/// One Server-Sent Event of an event stream, as the OpenAPI document describes it: `data` is a
/// JSON-encoded [`EventRecord`] (`contentMediaType`/`contentSchema`, so contract checkers parse
/// and check it), `id` its id, `event` its kind.
pub struct SseEventItem;

impl utoipa::PartialSchema for SseEventItem {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let string = |description: &str| ObjectBuilder::new().schema_type(Type::String).description(Some(description));
        ObjectBuilder::new()
            .property(
                "data",
                string("The event as JSON")
                    .content_media_type("application/json")
                    .content_schema(Some(utoipa::openapi::Ref::from_schema_name("EventRecord"))),
            )
            .required("data")
            .property("id", string("The event's id (send it back as `Last-Event-ID` to resume)"))
            .property("event", string("The event's kind, e.g. `stage.state_changed`"))
            .property(
                "retry",
                ObjectBuilder::new().schema_type(Type::Integer).description(Some("Reconnection delay, ms")),
            )
            .into()
    }
}

impl utoipa::ToSchema for SseEventItem {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        use utoipa::PartialSchema;
        schemas.push(("EventRecord".into(), EventRecord::schema()));
        <EventRecord as utoipa::ToSchema>::schemas(schemas);
    }
}
