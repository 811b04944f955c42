//! Following a pipeline until it settles, printing each event as it happens, and what the settled
//! state means for the caller (exit code, next step).

use super::{Client, DEFAULT_SERVER, Event, EventPage, Pipeline};
use anyhow::bail;
use std::collections::HashMap;
use std::time::Duration;

const POLL: Duration = Duration::from_millis(500);

/// States a pipeline stays in until someone acts.
pub fn is_settled(state: &str) -> bool {
    matches!(state, "active" | "failed" | "rejected" | "deleted" | "awaiting_approval")
}

/// Where progress lines go: stdout, or stderr when stdout carries JSON.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Stdout,
    Stderr,
}

impl Output {
    pub fn line(self, text: &str) {
        match self {
            Output::Stdout => println!("{text}"),
            Output::Stderr => eprintln!("{text}"),
        }
    }
}

pub struct Followed {
    pub pipeline: Pipeline,
    /// Who rejected which stage and why, when a rejection was seen.
    pub rejection: Option<String>,
}

/// Follows the pipeline until it settles, printing the events of its current phase (since its
/// creation, latest re-provision or deletion): those recorded so far, then each new one as the
/// server streams it (Server-Sent Events, resumed after the last event seen if the stream ends).
pub async fn follow(client: &Client, id: &str, output: Output) -> anyhow::Result<Followed> {
    let mut rejection = None;
    let mut pipeline: Pipeline = client.get_json(&["v1", "pipelines", id], &[]).await?;
    let mut events = read_events(client, id, 0).await?;
    let mut after = events.last().map_or(0, |e| e.id);
    let start = events.iter().rposition(starts_a_phase).unwrap_or(0);
    events.drain(..start);
    let mut settled = false;
    loop {
        let environments: HashMap<i32, &str> =
            pipeline.stages.iter().map(|s| (s.ordinal, s.environment.as_str())).collect();
        for event in events.drain(..) {
            output.line(&event_line(&event, &environments));
            if event.kind == "stage.rejected" {
                let stage = stage_name(event.stage_ordinal, &environments);
                let comment = event.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
                rejection = Some(format!("stage {stage} was rejected by {}{comment}", event.actor));
            }
        }
        if settled {
            return Ok(Followed { pipeline, rejection });
        }
        pipeline = client.get_json(&["v1", "pipelines", id], &[]).await?;
        if is_settled(&pipeline.state) {
            // What led here may have been recorded after the last event printed: those too.
            events = read_events(client, id, after).await?;
            settled = true;
            continue;
        }
        events = next_events(client, id, &mut after).await?;
    }
}

/// The events after `after` as the server streams them, up to one that settles the pipeline or
/// the end of the stream (the server ends one every few minutes); `after` moves along.
async fn next_events(client: &Client, id: &str, after: &mut i64) -> anyhow::Result<Vec<Event>> {
    use eventsource_stream::Eventsource;
    use futures::StreamExt;
    let request = client
        .request(reqwest::Method::GET, &["v1", "pipelines", id, "events"])?
        .query(&[("follow", "true")])
        .header("last-event-id", after.to_string());
    let mut stream = client.send(request).await?.bytes_stream().eventsource();
    let mut events = Vec::new();
    while let Some(message) = stream.next().await {
        let Ok(message) = message else { break }; // a broken stream: resume from `after`
        if message.data.is_empty() {
            continue;
        }
        let event: Event = serde_json::from_str(&message.data)
            .map_err(|e| anyhow::anyhow!("the server streamed an event that is not one ({e}): {}", message.data))?;
        *after = event.id;
        let settles = event.kind == "pipeline.state_changed" && event.to_state.as_deref().is_some_and(is_settled);
        events.push(event);
        if settles {
            break;
        }
    }
    if events.is_empty() {
        // Ended without news (or broken): wait a moment before the state is read again.
        tokio::time::sleep(POLL).await;
    }
    Ok(events)
}

/// Creation, a re-provision and a deletion each begin what `--wait` shows; older events
/// belong to earlier phases.
fn starts_a_phase(event: &Event) -> bool {
    match event.kind.as_str() {
        "pipeline.created" | "pipeline.updated" => true,
        "pipeline.state_changed" => event.to_state.as_deref() == Some("deleting"),
        _ => false,
    }
}

async fn read_events(client: &Client, id: &str, mut after: i64) -> anyhow::Result<Vec<Event>> {
    let mut events = Vec::new();
    loop {
        let query = [("after", after.to_string()), ("limit", "1000".to_string())];
        let page: EventPage = client.get_json(&["v1", "pipelines", id, "events"], &query).await?;
        events.extend(page.items);
        match page.next_after {
            Some(next) => after = next,
            None => return Ok(events),
        }
    }
}

fn stage_name(ordinal: Option<i32>, environments: &HashMap<i32, &str>) -> String {
    match ordinal {
        None => "pipeline".to_string(),
        Some(o) => environments.get(&o).map(|e| e.to_string()).unwrap_or_else(|| format!("stage {o}")),
    }
}

/// `time  scope  from → to  actor: message`
pub fn event_line(event: &Event, environments: &HashMap<i32, &str>) -> String {
    let time = chrono::DateTime::parse_from_rfc3339(&event.created_at)
        .map(|t| t.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| event.created_at.clone());
    let scope = stage_name(event.stage_ordinal, environments);
    let what = match (&event.from_state, &event.to_state) {
        (Some(from), Some(to)) => format!("{from} → {to}"),
        _ => event.kind.clone(),
    };
    let message = event.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
    format!("{time}  {scope:<10} {what:<34} {}{message}", event.actor)
}

/// What a settled pipeline means: `Ok` for active, awaiting approval (with the command to run
/// next), and deleted when `deleted_is_success`; an error with the reason otherwise.
pub fn conclude(client: &Client, followed: &Followed, deleted_is_success: bool, output: Output) -> anyhow::Result<()> {
    let p = &followed.pipeline;
    match p.state.as_str() {
        "active" => output.line(&format!("pipeline {} is active", p.id)),
        "awaiting_approval" => {
            let stage = p.stages.iter().find(|s| s.state == "awaiting_approval").map_or("<stage>", |s| &s.environment);
            let server = if client.server() == DEFAULT_SERVER {
                String::new()
            } else {
                format!(" --server {}", client.server())
            };
            output.line(&format!(
                "pipeline {id} is waiting for approval of stage {stage}; with an approver's token, run\n  \
                 mlops approve {id} {stage}{server}\nor reject it with\n  mlops approve {id} {stage}{server} --reject --comment \"…\"",
                id = p.id
            ));
        }
        "deleted" if deleted_is_success => output.line(&format!("pipeline {} is deleted", p.id)),
        "deleted" => bail!("pipeline {} was deleted", p.id),
        "failed" => {
            let reason = p
                .last_error
                .clone()
                .or_else(|| p.stages.iter().find_map(|s| s.last_error.clone()))
                .unwrap_or_else(|| "no reason was recorded".to_string());
            bail!("pipeline {} failed: {reason}", p.id)
        }
        "rejected" => {
            let reason = followed.rejection.clone().or_else(|| {
                p.stages.iter().find(|s| s.state == "rejected").map(|s| format!("stage {} was rejected", s.environment))
            });
            bail!("pipeline {} was rejected: {}", p.id, reason.unwrap_or_else(|| "no reason was recorded".into()))
        }
        other => bail!("pipeline {} is {other}", p.id),
    }
    Ok(())
}
