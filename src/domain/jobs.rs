//! Typed job payloads (DESIGN §3): one variant per job kind. The store keeps the kind in its own
//! column and the whole payload (kind included) as JSON; a handler gets the typed value back with
//! [`JobPayload::parse`]. A new kind of work is one variant here and one handler in `jobs/`.

use serde::{Deserialize, Serialize};

/// An approver's decision on a stage, carried by the job that acts on it (aws: the approval's
/// summary names the approver).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub approve: bool,
    pub actor: String,
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobPayload {
    /// Deploys one stage of one pipeline version; an approved stage carries the approval.
    DeployStage {
        version: i64,
        // Flattened: jobs queued before payloads were typed kept the decision at the top level.
        #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
        decision: Option<Decision>,
    },
    /// Tells the target a stage waiting for approval was rejected.
    RejectStage {
        version: i64,
        #[serde(flatten)]
        decision: Decision,
    },
    /// Tears every stage of a pipeline down, last first.
    TeardownPipeline { version: i64 },
    /// Runs one execution of a monitor (a scheduled window or a run-now).
    RunMonitor { version: i64, execution_id: String },
    /// Runs a deployed stage's post-deploy jobs (baseline, transform, training) again for a
    /// release the orchestrator did not start (aws: a CodePipeline execution from the console's
    /// "Release change"), `release` being its id.
    RunRelease { version: i64, release: String },
    /// Sends one notification over one channel (a row of `notification_deliveries`).
    DeliverNotification { delivery_id: String },
    /// Fetches a config source and processes its newest revision; a recurring poll runs again
    /// after the source's interval.
    PollConfigSource { source: String, recurring: bool },
}

#[derive(Debug, thiserror::Error)]
#[error("job payload of kind {kind:?} is not valid: {reason}")]
pub struct BadPayload {
    pub kind: String,
    pub reason: String,
}

impl JobPayload {
    pub const DEPLOY_STAGE: &'static str = "deploy_stage";
    pub const REJECT_STAGE: &'static str = "reject_stage";
    pub const TEARDOWN_PIPELINE: &'static str = "teardown_pipeline";
    pub const RUN_MONITOR: &'static str = "run_monitor";
    pub const RUN_RELEASE: &'static str = "run_release";
    pub const DELIVER_NOTIFICATION: &'static str = "deliver_notification";
    pub const POLL_CONFIG_SOURCE: &'static str = "poll_config_source";

    /// The kind as stored in the jobs table.
    pub fn kind(&self) -> &'static str {
        match self {
            JobPayload::DeployStage { .. } => Self::DEPLOY_STAGE,
            JobPayload::RejectStage { .. } => Self::REJECT_STAGE,
            JobPayload::TeardownPipeline { .. } => Self::TEARDOWN_PIPELINE,
            JobPayload::RunMonitor { .. } => Self::RUN_MONITOR,
            JobPayload::RunRelease { .. } => Self::RUN_RELEASE,
            JobPayload::DeliverNotification { .. } => Self::DELIVER_NOTIFICATION,
            JobPayload::PollConfigSource { .. } => Self::POLL_CONFIG_SOURCE,
        }
    }

    /// The pipeline version the job works for (work of an older version is superseded);
    /// `None` for work that belongs to no pipeline version.
    pub fn version(&self) -> Option<i64> {
        match self {
            JobPayload::DeployStage { version, .. }
            | JobPayload::RejectStage { version, .. }
            | JobPayload::TeardownPipeline { version }
            | JobPayload::RunMonitor { version, .. }
            | JobPayload::RunRelease { version, .. } => Some(*version),
            JobPayload::DeliverNotification { .. } | JobPayload::PollConfigSource { .. } => None,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        // A derived Serialize of plain data cannot fail.
        serde_json::to_value(self).unwrap_or_default()
    }

    /// Reads a stored job back from its kind column and payload. Payloads stored before they
    /// carried their kind get it from the column.
    pub fn parse(kind: &str, payload: &serde_json::Value) -> Result<Self, BadPayload> {
        let bad = |reason: String| BadPayload { kind: kind.to_string(), reason };
        let mut object = payload.as_object().cloned().ok_or_else(|| bad("not a JSON object".into()))?;
        match object.get("kind").and_then(|k| k.as_str()) {
            Some(stored) if stored != kind => return Err(bad(format!("payload says kind {stored:?}"))),
            Some(_) => {}
            None => {
                object.insert("kind".into(), kind.into());
            }
        }
        serde_json::from_value(serde_json::Value::Object(object)).map_err(|e| bad(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payloads_round_trip_with_their_kind() {
        let decision = Decision { approve: true, actor: "ann".into(), comment: Some("ok".into()) };
        for payload in [
            JobPayload::DeployStage { version: 3, decision: None },
            JobPayload::DeployStage { version: 3, decision: Some(decision.clone()) },
            JobPayload::RejectStage { version: 2, decision: Decision { approve: false, ..decision } },
            JobPayload::TeardownPipeline { version: 7 },
            JobPayload::RunMonitor { version: 1, execution_id: "e".into() },
            JobPayload::RunRelease { version: 1, release: "0f1e2d3c".into() },
            JobPayload::DeliverNotification { delivery_id: "d".into() },
            JobPayload::PollConfigSource { source: "repo".into(), recurring: true },
        ] {
            let json = payload.to_json();
            assert_eq!(json["kind"], payload.kind());
            assert_eq!(JobPayload::parse(payload.kind(), &json).unwrap(), payload);
        }
    }

    #[test]
    fn payloads_stored_before_typing_still_read() {
        let old = json!({"version": 2, "approve": true, "actor": "ann", "comment": null});
        assert_eq!(
            JobPayload::parse("deploy_stage", &old).unwrap(),
            JobPayload::DeployStage {
                version: 2,
                decision: Some(Decision { approve: true, actor: "ann".into(), comment: None })
            }
        );
        assert_eq!(
            JobPayload::parse("deploy_stage", &json!({"version": 1})).unwrap(),
            JobPayload::DeployStage { version: 1, decision: None }
        );
        assert_eq!(
            JobPayload::parse("teardown_pipeline", &json!({"version": 4})).unwrap(),
            JobPayload::TeardownPipeline { version: 4 }
        );
    }

    #[test]
    fn bad_payloads_are_refused_with_the_reason() {
        assert!(JobPayload::parse("deploy_stage", &json!({})).is_err(), "no version");
        assert!(JobPayload::parse("deploy_stage", &json!({"version": "1"})).is_err());
        assert!(JobPayload::parse("mystery", &json!({"version": 1})).is_err());
        assert!(JobPayload::parse("deploy_stage", &json!({"kind": "teardown_pipeline", "version": 1})).is_err());
        assert!(JobPayload::parse("reject_stage", &json!({"version": 1})).is_err(), "no decision");
        assert!(JobPayload::parse("deploy_stage", &json!([1])).is_err());
    }
}
