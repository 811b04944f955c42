//! What people are told, and when (issue 14): a pure rule from an audit event to the
//! notification it warrants, if any. The dispatcher (`notify::dispatcher`) applies it to every
//! event in order; the channels (`notify::channels`) deliver what it returns.

use super::state::{PipelineState, StageState};
use super::workflow::event_kind;
use serde::Serialize;
use serde_json::{Value, json};

/// The kinds of notification, as named in channel filters, webhook `type`s and the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum NotificationKind {
    #[serde(rename = "pipeline.provisioned")]
    PipelineProvisioned,
    #[serde(rename = "pipeline.active")]
    PipelineActive,
    #[serde(rename = "pipeline.failed")]
    PipelineFailed,
    #[serde(rename = "pipeline.rejected")]
    PipelineRejected,
    #[serde(rename = "pipeline.deleted")]
    PipelineDeleted,
    #[serde(rename = "stage.awaiting_approval")]
    AwaitingApproval,
    #[serde(rename = "stage.approval_decided")]
    ApprovalDecided,
    #[serde(rename = "monitor.violations")]
    MonitorViolations,
    #[serde(rename = "config.rejected")]
    ConfigRejected,
}

impl NotificationKind {
    pub const ALL: [NotificationKind; 9] = [
        NotificationKind::PipelineProvisioned,
        NotificationKind::PipelineActive,
        NotificationKind::PipelineFailed,
        NotificationKind::PipelineRejected,
        NotificationKind::PipelineDeleted,
        NotificationKind::AwaitingApproval,
        NotificationKind::ApprovalDecided,
        NotificationKind::MonitorViolations,
        NotificationKind::ConfigRejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::PipelineProvisioned => "pipeline.provisioned",
            NotificationKind::PipelineActive => "pipeline.active",
            NotificationKind::PipelineFailed => "pipeline.failed",
            NotificationKind::PipelineRejected => "pipeline.rejected",
            NotificationKind::PipelineDeleted => "pipeline.deleted",
            NotificationKind::AwaitingApproval => "stage.awaiting_approval",
            NotificationKind::ApprovalDecided => "stage.approval_decided",
            NotificationKind::MonitorViolations => "monitor.violations",
            NotificationKind::ConfigRejected => "config.rejected",
        }
    }

    pub fn parse(s: &str) -> Option<NotificationKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for NotificationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One audit event with what the rule needs to know about its pipeline.
#[derive(Debug, Clone)]
pub struct EventFacts<'a> {
    pub event_id: i64,
    pub pipeline_id: &'a str,
    pub pipeline_name: &'a str,
    pub pipeline_type: &'a str,
    /// The environment of the event's stage, if it is a stage's.
    pub environment: Option<&'a str>,
    pub kind: &'a str,
    pub from_state: Option<&'a str>,
    pub to_state: Option<&'a str>,
    pub actor: &'a str,
    pub message: Option<&'a str>,
    pub details: Option<&'a Value>,
}

/// A notification to send: a subject line, a plain-text body (e-mail, SNS) and structured data
/// (the webhook payload's `data`).
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub kind: NotificationKind,
    pub subject: String,
    pub text: String,
    pub data: Value,
}

/// The notification `event` warrants, if any. Provisioning, the pipeline's final states,
/// approvals asked for and decided, and monitor violations that are new since the monitor's
/// previous execution; everything else (stage progress, endpoint revisions) stays in the log.
pub fn for_event(e: &EventFacts<'_>) -> Option<Draft> {
    let who = format!("{} ({})", e.pipeline_name, e.pipeline_type);
    let mut data = json!({
        "pipeline_id": e.pipeline_id,
        "pipeline_name": e.pipeline_name,
        "pipeline_type": e.pipeline_type,
        "event_id": e.event_id,
        "actor": e.actor,
    });
    let note = e.message.map(|m| format!("\n\n{m}")).unwrap_or_default();
    let draft = |kind, subject: String, text: String, data| Some(Draft { kind, subject, text, data });
    match e.kind {
        event_kind::PIPELINE_CREATED | event_kind::PIPELINE_UPDATED => draft(
            NotificationKind::PipelineProvisioned,
            format!("Pipeline {} provisioned", e.pipeline_name),
            format!("Pipeline {who} was provisioned by {}.{note}", e.actor),
            data,
        ),
        event_kind::PIPELINE_STATE_CHANGED => {
            let to: PipelineState = e.to_state?.parse().ok()?;
            let (kind, verb) = match to {
                PipelineState::Active => (NotificationKind::PipelineActive, "is active"),
                PipelineState::Failed => (NotificationKind::PipelineFailed, "failed"),
                PipelineState::Rejected => (NotificationKind::PipelineRejected, "was rejected"),
                PipelineState::Deleted => (NotificationKind::PipelineDeleted, "was deleted"),
                _ => return None,
            };
            data["state"] = json!(to.as_str());
            draft(kind, format!("Pipeline {} {verb}", e.pipeline_name), format!("Pipeline {who} {verb}.{note}"), data)
        }
        event_kind::STAGE_STATE_CHANGED if e.to_state == Some(StageState::AwaitingApproval.as_str()) => {
            let environment = e.environment.unwrap_or("?");
            let version = e.details.and_then(|d| d["version"].as_i64());
            data["environment"] = json!(environment);
            data["version"] = json!(version);
            data["approval_path"] = json!(format!("/v1/pipelines/{}/stages/{environment}/approval", e.pipeline_id));
            draft(
                NotificationKind::AwaitingApproval,
                format!("Approval needed: {} to {environment}", e.pipeline_name),
                format!(
                    "Pipeline {who} waits for approval to deploy version {} to {environment}.",
                    version.map(|v| v.to_string()).unwrap_or_else(|| "?".into())
                ),
                data,
            )
        }
        event_kind::STAGE_APPROVED | event_kind::STAGE_REJECTED => {
            let approved = e.kind == event_kind::STAGE_APPROVED;
            let environment = e.environment.unwrap_or("?");
            data["environment"] = json!(environment);
            data["decision"] = json!(if approved { "approve" } else { "reject" });
            data["comment"] = json!(e.message);
            let verb = if approved { "approved" } else { "rejected" };
            draft(
                NotificationKind::ApprovalDecided,
                format!("{} to {environment} {verb}", e.pipeline_name),
                format!("{} {verb} the deployment of pipeline {who} to {environment}.{note}", e.actor),
                data,
            )
        }
        event_kind::MONITOR_VIOLATIONS => {
            let details = e.details?;
            // The same violations as the previous execution's: said already.
            if details["repeated"].as_bool() == Some(true) {
                return None;
            }
            data["monitor"] = details["monitor"].clone();
            data["execution_id"] = details["execution_id"].clone();
            data["violations"] = details["violations"].clone();
            let features: Vec<&str> =
                details["violations"].as_array()?.iter().filter_map(|v| v["feature_name"].as_str()).collect();
            draft(
                NotificationKind::MonitorViolations,
                format!("Monitor violations: {} ({} features)", e.pipeline_name, features.len()),
                format!("The monitor of pipeline {who} found violations in: {}.{note}", features.join(", ")),
                data,
            )
        }
        _ => None,
    }
}

/// The notification of a config revision that was refused.
pub fn config_rejected(source: &str, revision: &str, revision_id: &str, errors: &Value, summary: &str) -> Draft {
    Draft {
        kind: NotificationKind::ConfigRejected,
        subject: format!("Config revision rejected: {source} {}", short(revision)),
        text: format!("The mlops-config.json of {source} at revision {revision} was rejected: {summary}"),
        data: json!({"source": source, "revision": revision, "revision_id": revision_id, "errors": errors}),
    }
}

fn short(revision: &str) -> &str {
    revision.get(..12).unwrap_or(revision)
}

/// Whether two executions' violations are the same: the same (feature, check) pairs.
pub fn same_violations(a: &Value, b: &Value) -> bool {
    let key = |v: &Value| -> Vec<(String, String)> {
        let mut keys: Vec<_> = v
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|i| {
                        (
                            i["feature_name"].as_str().unwrap_or("").to_string(),
                            i["constraint_check_type"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        keys.sort();
        keys.dedup();
        keys
    };
    let (a, b) = (key(a), key(b));
    !a.is_empty() && a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(kind: &'a str, to: Option<&'a str>, details: Option<&'a Value>) -> EventFacts<'a> {
        EventFacts {
            event_id: 7,
            pipeline_id: "p1",
            pipeline_name: "churn",
            pipeline_type: "byom_realtime_builtin",
            environment: Some("prod"),
            kind,
            from_state: None,
            to_state: to,
            actor: "ann",
            message: Some("looks good"),
            details,
        }
    }

    #[test]
    fn final_pipeline_states_notify_and_progress_does_not() {
        let kinds: Vec<_> = ["active", "failed", "rejected", "deleted", "provisioning", "pending", "deleting"]
            .into_iter()
            .map(|to| for_event(&facts(event_kind::PIPELINE_STATE_CHANGED, Some(to), None)).map(|d| d.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                Some(NotificationKind::PipelineActive),
                Some(NotificationKind::PipelineFailed),
                Some(NotificationKind::PipelineRejected),
                Some(NotificationKind::PipelineDeleted),
                None,
                None,
                None
            ]
        );
        assert!(for_event(&facts(event_kind::STAGE_STATE_CHANGED, Some("deploying"), None)).is_none());
        assert!(for_event(&facts(event_kind::ENDPOINT_IN_SERVICE, None, None)).is_none());
    }

    #[test]
    fn an_approval_request_names_the_version_and_where_to_approve() {
        let details = json!({"version": 3});
        let d = for_event(&facts(event_kind::STAGE_STATE_CHANGED, Some("awaiting_approval"), Some(&details))).unwrap();
        assert_eq!(d.kind, NotificationKind::AwaitingApproval);
        assert_eq!(d.data["version"], 3);
        assert_eq!(d.data["approval_path"], "/v1/pipelines/p1/stages/prod/approval");
        assert!(d.text.contains("version 3 to prod"), "{}", d.text);
        let decided = for_event(&facts(event_kind::STAGE_REJECTED, None, None)).unwrap();
        assert_eq!(
            (decided.kind, decided.data["decision"].as_str()),
            (NotificationKind::ApprovalDecided, Some("reject"))
        );
    }

    #[test]
    fn repeated_violations_are_not_notified_again() {
        let violations = json!([{"feature_name": "age", "constraint_check_type": "baseline_drift_check"}]);
        let new = json!({"violations": violations, "repeated": false, "monitor": "m", "execution_id": "e"});
        let d = for_event(&facts(event_kind::MONITOR_VIOLATIONS, None, Some(&new))).unwrap();
        assert!(d.text.contains("age"));
        let again = json!({"violations": violations, "repeated": true});
        assert!(for_event(&facts(event_kind::MONITOR_VIOLATIONS, None, Some(&again))).is_none());
    }

    #[test]
    fn violations_compare_by_feature_and_check() {
        let a = json!([{"feature_name": "a", "constraint_check_type": "x", "description": "1"}, {"feature_name": "b", "constraint_check_type": "y"}]);
        let b = json!([{"feature_name": "b", "constraint_check_type": "y"}, {"feature_name": "a", "constraint_check_type": "x", "description": "2"}]);
        let c = json!([{"feature_name": "a", "constraint_check_type": "x"}]);
        assert!(same_violations(&a, &b));
        assert!(!same_violations(&a, &c));
        assert!(!same_violations(&json!([]), &json!([])));
    }

    #[test]
    fn kinds_round_trip_by_name() {
        for kind in NotificationKind::ALL {
            assert_eq!(NotificationKind::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }
}
