//! CodePipeline's `GetPipelineState` answer in our serialisable view (the same shape the compat
//! API renders for local pipelines), so the worker reasons about one type and `/pipelinestatus`
//! returns AWS's state as AWS shaped it.

use crate::targets::codepipeline_state::{
    ActionExecutionOut, ActionStateOut, ErrorDetailsOut, PipelineStateOut, RevisionOut, StageExecutionOut,
    StageStateOut, TransitionStateOut,
};
use aws_sdk_codepipeline::operation::get_pipeline_state::GetPipelineStateOutput;
use aws_sdk_codepipeline::types::{ActionExecutionStatus, StageExecutionStatus};
use chrono::{DateTime, Utc};

fn time(t: Option<&aws_smithy_types::DateTime>) -> DateTime<Utc> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos())).unwrap_or_default()
}

fn action_status(status: &ActionExecutionStatus) -> &'static str {
    match status {
        ActionExecutionStatus::InProgress => "InProgress",
        ActionExecutionStatus::Succeeded => "Succeeded",
        ActionExecutionStatus::Failed => "Failed",
        ActionExecutionStatus::Abandoned => "Abandoned",
        _ => "Unknown",
    }
}

fn stage_status(status: &StageExecutionStatus) -> &'static str {
    match status {
        StageExecutionStatus::InProgress => "InProgress",
        StageExecutionStatus::Succeeded => "Succeeded",
        StageExecutionStatus::Failed => "Failed",
        StageExecutionStatus::Cancelled => "Cancelled",
        StageExecutionStatus::Stopped => "Stopped",
        StageExecutionStatus::Stopping => "Stopping",
        _ => "Unknown",
    }
}

pub fn from_sdk(out: &GetPipelineStateOutput) -> PipelineStateOut {
    PipelineStateOut {
        pipeline_name: out.pipeline_name().unwrap_or_default().to_string(),
        pipeline_version: out.pipeline_version().unwrap_or_default() as i64,
        created: time(out.created()),
        updated: time(out.updated()),
        stage_states: out
            .stage_states()
            .iter()
            .map(|stage| StageStateOut {
                stage_name: stage.stage_name().unwrap_or_default().to_string(),
                inbound_transition_state: TransitionStateOut {
                    enabled: stage.inbound_transition_state().is_none_or(|t| t.enabled()),
                    last_changed_by: stage
                        .inbound_transition_state()
                        .and_then(|t| t.last_changed_by())
                        .map(str::to_string),
                    last_changed_at: stage
                        .inbound_transition_state()
                        .and_then(|t| t.last_changed_at())
                        .map(|t| time(Some(t))),
                    disabled_reason: stage
                        .inbound_transition_state()
                        .and_then(|t| t.disabled_reason())
                        .map(str::to_string),
                },
                action_states: stage
                    .action_states()
                    .iter()
                    .map(|action| ActionStateOut {
                        action_name: action.action_name().unwrap_or_default().to_string(),
                        current_revision: action.current_revision().map(|r| RevisionOut {
                            revision_id: r.revision_id().to_string(),
                            revision_change_id: Some(r.revision_change_id().to_string()),
                            created: Some(time(Some(r.created()))),
                        }),
                        latest_execution: action.latest_execution().map(|e| ActionExecutionOut {
                            status: e.status().map(action_status).unwrap_or("Unknown"),
                            summary: e.summary().map(str::to_string),
                            last_status_change: time(e.last_status_change()),
                            token: e.token().map(str::to_string),
                            last_updated_by: e.last_updated_by().map(str::to_string),
                            external_execution_id: e.external_execution_id().map(str::to_string),
                            external_execution_url: e.external_execution_url().map(str::to_string),
                            percent_complete: e.percent_complete(),
                            error_details: e.error_details().map(|d| ErrorDetailsOut {
                                code: d.code().unwrap_or_default().to_string(),
                                message: d.message().unwrap_or_default().to_string(),
                            }),
                        }),
                        entity_url: action.entity_url().map(str::to_string),
                        revision_url: action.revision_url().map(str::to_string),
                    })
                    .collect(),
                latest_execution: stage.latest_execution().map(|e| StageExecutionOut {
                    pipeline_execution_id: e.pipeline_execution_id().to_string(),
                    status: stage_status(e.status()),
                }),
            })
            .collect(),
    }
}
