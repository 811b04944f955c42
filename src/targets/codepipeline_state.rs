//! Our stages rendered as CodePipeline's `GetPipelineState` answer (reference §5.2), so portals
//! built for the AWS solution can read `/pipelinestatus` unchanged. The stage and action names
//! are the solution's: `Source/S3Source → DeployCloudFormation/deploy_stack` for one environment;
//! `Source → Deploy<Env>/{Deploy<Env>StackSet, Deploy<Next>(approval)} → …` for several.

use crate::domain::state::StageState;
use crate::store::{PipelineRecord, StageRecord};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineStateOut {
    pub pipeline_name: String,
    pub pipeline_version: i64,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub stage_states: Vec<StageStateOut>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageStateOut {
    pub stage_name: String,
    pub inbound_transition_state: TransitionStateOut,
    pub action_states: Vec<ActionStateOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_execution: Option<StageExecutionOut>,
}

#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransitionStateOut {
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_changed_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_changed_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageExecutionOut {
    pub pipeline_execution_id: String,
    /// `InProgress`, `Failed`, `Succeeded` (and from AWS also `Cancelled`, `Stopped`, `Stopping`).
    pub status: &'static str,
}

#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionStateOut {
    pub action_name: String,
    /// The source revision (an S3 object version) the action last saw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<RevisionOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_execution: Option<ActionExecutionOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision_url: Option<String>,
}

#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionOut {
    pub revision_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision_change_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
}

impl PipelineStateOut {
    pub fn stage(&self, name: &str) -> Option<&StageStateOut> {
        self.stage_states.iter().find(|s| s.stage_name == name)
    }
}

impl StageStateOut {
    pub fn action(&self, name: &str) -> Option<&ActionStateOut> {
        self.action_states.iter().find(|a| a.action_name == name)
    }

    pub fn execution_id(&self) -> Option<&str> {
        self.latest_execution.as_ref().map(|e| e.pipeline_execution_id.as_str())
    }
}

#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionExecutionOut {
    /// `InProgress`, `Succeeded` or `Failed` (and from AWS also `Abandoned`).
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    pub last_status_change: DateTime<Utc>,
    /// Present while a manual approval waits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_updated_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_execution_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_execution_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent_complete: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_details: Option<ErrorDetailsOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetailsOut {
    pub code: String,
    pub message: String,
}

pub const IN_PROGRESS: &str = "InProgress";
pub const SUCCEEDED: &str = "Succeeded";
pub const FAILED: &str = "Failed";

pub fn render(pipeline: &PipelineRecord, stages: &[StageRecord], pipeline_name: String) -> PipelineStateOut {
    let execution_id = format!("{}-v{}", pipeline.id, pipeline.version);
    let source = ActionStateOut {
        action_name: "S3Source".into(),
        latest_execution: Some(ActionExecutionOut {
            status: SUCCEEDED,
            summary: Some(format!("version {} of the pipeline's parameters", pipeline.version)),
            last_status_change: pipeline.updated_at,
            last_updated_by: Some(pipeline.created_by.clone()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut stage_states = vec![stage_out("Source".into(), vec![source], &execution_id)];

    if let [only] = stages {
        let deploy = ActionStateOut {
            action_name: "deploy_stack".into(),
            latest_execution: deploy_execution(only),
            ..Default::default()
        };
        stage_states.push(stage_out("DeployCloudFormation".into(), vec![deploy], &execution_id));
    } else {
        for (i, stage) in stages.iter().enumerate() {
            let env = pascal_case(&stage.environment);
            let mut actions = vec![ActionStateOut {
                action_name: format!("Deploy{env}StackSet"),
                latest_execution: deploy_execution(stage),
                ..Default::default()
            }];
            if let Some(next) = stages.get(i + 1) {
                actions.push(ActionStateOut {
                    action_name: format!("Deploy{}", pascal_case(&next.environment)),
                    latest_execution: approval_execution(next, &pipeline.id),
                    ..Default::default()
                });
            }
            stage_states.push(stage_out(format!("Deploy{env}"), actions, &execution_id));
        }
    }
    PipelineStateOut {
        pipeline_name,
        pipeline_version: pipeline.version,
        created: pipeline.created_at,
        updated: pipeline.updated_at,
        stage_states,
    }
}

fn stage_out(stage_name: String, actions: Vec<ActionStateOut>, execution_id: &str) -> StageStateOut {
    let statuses: Vec<&str> =
        actions.iter().map(|a| a.latest_execution.as_ref().map(|e| e.status).unwrap_or("")).collect();
    let status = if statuses.contains(&FAILED) {
        Some(FAILED)
    } else if statuses.contains(&IN_PROGRESS) {
        Some(IN_PROGRESS)
    } else if statuses.iter().all(|s| *s == SUCCEEDED) {
        Some(SUCCEEDED)
    } else if statuses.contains(&SUCCEEDED) {
        Some(IN_PROGRESS)
    } else {
        None
    };
    StageStateOut {
        stage_name,
        inbound_transition_state: TransitionStateOut { enabled: true, ..Default::default() },
        action_states: actions,
        latest_execution: status
            .map(|status| StageExecutionOut { pipeline_execution_id: execution_id.to_string(), status }),
    }
}

fn deploy_execution(stage: &StageRecord) -> Option<ActionExecutionOut> {
    let (status, error) = match stage.state {
        StageState::Deploying => (IN_PROGRESS, None),
        StageState::Deployed => (SUCCEEDED, None),
        StageState::Failed => (
            FAILED,
            Some(ErrorDetailsOut { code: "JobFailed".into(), message: stage.last_error.clone().unwrap_or_default() }),
        ),
        StageState::Pending | StageState::AwaitingApproval | StageState::Rejected => return None,
    };
    Some(ActionExecutionOut {
        status,
        last_status_change: stage.updated_at,
        error_details: error,
        ..Default::default()
    })
}

/// The manual approval in front of `next`.
fn approval_execution(next: &StageRecord, pipeline_id: &str) -> Option<ActionExecutionOut> {
    let approved = |summary: Option<String>| ActionExecutionOut {
        status: SUCCEEDED,
        summary,
        last_status_change: next.approved_at.unwrap_or(next.updated_at),
        last_updated_by: next.approved_by.clone(),
        ..Default::default()
    };
    match next.state {
        StageState::AwaitingApproval => Some(ActionExecutionOut {
            status: IN_PROGRESS,
            summary: Some(format!("Waiting for approval to deploy to {}", next.environment)),
            last_status_change: next.updated_at,
            token: Some(format!("{pipeline_id}:{}:{}", next.ordinal, next.version)),
            ..Default::default()
        }),
        StageState::Deploying | StageState::Deployed | StageState::Failed => Some(approved(Some("Approved".into()))),
        StageState::Rejected => Some(ActionExecutionOut {
            status: FAILED,
            summary: Some("Rejected".into()),
            last_status_change: next.updated_at,
            error_details: Some(ErrorDetailsOut {
                code: "ApprovalRejected".into(),
                message: format!("deployment to {} was rejected", next.environment),
            }),
            ..Default::default()
        }),
        StageState::Pending => None,
    }
}

pub fn pascal_case(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_uppercase().chain(chars).collect::<String>()).unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::types::Json;

    fn pipeline() -> PipelineRecord {
        PipelineRecord {
            id: "p1".into(),
            name: "churn".into(),
            pipeline_type: "byom_realtime_builtin".into(),
            target: "local".into(),
            spec: Json(serde_json::json!({})),
            request: Json(serde_json::json!({})),
            state: crate::domain::state::PipelineState::AwaitingApproval,
            version: 2,
            created_by: "olga".into(),
            last_error: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            external_id: None,
            origin: None,
        }
    }

    fn stage(ordinal: i32, environment: &str, state: StageState) -> StageRecord {
        StageRecord {
            pipeline_id: "p1".into(),
            ordinal,
            environment: environment.into(),
            state,
            requires_approval: ordinal > 0,
            params: Json(serde_json::json!({})),
            outputs: None,
            version: 2,
            approved_by: None,
            approved_at: None,
            last_error: None,
            updated_at: Utc::now(),
            checkpoint: None,
        }
    }

    #[test]
    fn single_environment_has_the_solution_stage_names() {
        let out = render(&pipeline(), &[stage(0, "default", StageState::Deploying)], "x-codepipeline".into());
        let json = serde_json::to_value(&out).unwrap();
        assert_eq!(json["stageStates"][0]["stageName"], "Source");
        assert_eq!(json["stageStates"][1]["stageName"], "DeployCloudFormation");
        assert_eq!(json["stageStates"][1]["actionStates"][0]["actionName"], "deploy_stack");
        assert_eq!(json["stageStates"][1]["actionStates"][0]["latestExecution"]["status"], "InProgress");
        assert_eq!(json["stageStates"][1]["latestExecution"]["status"], "InProgress");
        assert_eq!(json["pipelineName"], "x-codepipeline");
    }

    #[test]
    fn waiting_approval_is_an_in_progress_manual_action_with_a_token() {
        let stages = [
            stage(0, "dev", StageState::Deployed),
            stage(1, "staging", StageState::AwaitingApproval),
            stage(2, "prod", StageState::Pending),
        ];
        let json = serde_json::to_value(render(&pipeline(), &stages, "n".into())).unwrap();
        let names: Vec<_> = json["stageStates"].as_array().unwrap().iter().map(|s| s["stageName"].clone()).collect();
        assert_eq!(names, ["Source", "DeployDev", "DeployStaging", "DeployProd"]);
        let dev = &json["stageStates"][1];
        assert_eq!(dev["actionStates"][0]["actionName"], "DeployDevStackSet");
        assert_eq!(dev["actionStates"][0]["latestExecution"]["status"], "Succeeded");
        assert_eq!(dev["actionStates"][1]["actionName"], "DeployStaging");
        assert_eq!(dev["actionStates"][1]["latestExecution"]["status"], "InProgress");
        assert!(dev["actionStates"][1]["latestExecution"]["token"].is_string());
        assert_eq!(dev["latestExecution"]["status"], "InProgress");
        assert!(json["stageStates"][3].get("latestExecution").is_none(), "prod has not started");
        assert_eq!(pascal_case("us-east_prod"), "UsEastProd");
    }
}
