//! What happens after a stage's stack is deployed: SageMaker resources checked (an endpoint
//! `InService`, a monitoring schedule `Scheduled`) and the jobs CloudFormation cannot run started
//! through the SageMaker API (baseline, batch transform, training, tuning, AutoML), each with a
//! deterministic name so a resumed worker finds the one it started.
//!
//! Every call takes one step from what AWS reports now: describe the job; create it when it does
//! not exist; report `Waiting` while it runs. Nothing is remembered between calls. The request of
//! each job is built by a pure function (`*_request`) that the tests assert on.

pub(crate) mod batch;
mod monitors;
mod training;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod moto_tests;

use super::clients::Clients;
use super::context::AwsContext;
use super::errors::AwsError;
use crate::domain::{StageParams, names};
use crate::targets::{StageContext, StepOutcome, TargetError};
use aws_sdk_sagemaker::types::{EndpointStatus, ScheduleStatus, Tag};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::future::Future;

pub async fn after_deploy(
    clients: &Clients,
    stage: &StageContext,
    outputs: &BTreeMap<String, String>,
    context: &AwsContext,
) -> Result<StepOutcome, TargetError> {
    match &stage.params {
        StageParams::Realtime(_) => endpoint_in_service(clients, outputs, context).await,
        StageParams::Monitor(m) => monitors::run(clients, stage, m, outputs, context).await,
        StageParams::Batch(b) => batch::run(clients, stage, b, outputs, context).await,
        StageParams::Training(t) => training::run_training(clients, stage, t, outputs, context).await,
        StageParams::Autopilot(a) => training::run_autopilot(clients, stage, a, outputs, context).await,
        StageParams::ImageBuilder(_) => Ok(StepOutcome::Done(Value::Null)),
    }
}

/// A job name of a release's own: the name shortened to leave room for `-r` and 8 hex digits of
/// the release id's SHA-256, so it fits `max` (SageMaker's 63, or 32 for tuning and AutoML jobs).
pub(crate) fn release_name(name: &str, release: &str, max: usize) -> String {
    use sha2::{Digest, Sha256};
    let suffix = format!("-r{}", &hex::encode(Sha256::digest(release.as_bytes()))[..8]);
    let keep: String = name.chars().take(max.saturating_sub(suffix.len())).collect();
    format!("{}{suffix}", keep.trim_end_matches('-'))
}

/// The stage as its post-deploy jobs see it when they run again for `stage.release`: each job
/// it names takes the release's own name (a transform job's is derived in `batch.rs`), so the
/// first deploy's jobs and results stay as they were.
pub fn for_release(stage: &StageContext) -> StageContext {
    let mut stage = stage.clone();
    let Some(release) = stage.release.clone() else { return stage };
    match &mut stage.params {
        StageParams::Training(t) => {
            let max =
                if t.training.tuner.is_some() { names::MAX_TUNING_JOB_NAME_LEN } else { names::MAX_SAGEMAKER_NAME_LEN };
            t.job_name = release_name(&t.job_name, &release, max);
        }
        StageParams::Autopilot(a) => a.job_name = release_name(&a.job_name, &release, names::MAX_TUNING_JOB_NAME_LEN),
        StageParams::Monitor(m) => {
            m.baseline_job_name = release_name(&m.baseline_job_name, &release, names::MAX_SAGEMAKER_NAME_LEN)
        }
        StageParams::Realtime(_) | StageParams::Batch(_) | StageParams::ImageBuilder(_) => {}
    }
    stage
}

/// Read from the stack's outputs: emulators (and CloudFormation itself without an explicit
/// name) choose the physical name.
async fn endpoint_in_service(
    clients: &Clients,
    outputs: &BTreeMap<String, String>,
    context: &AwsContext,
) -> Result<StepOutcome, TargetError> {
    let name = stack_output(outputs, "SageMakerEndpointName")?;
    let out = clients
        .sagemaker
        .describe_endpoint()
        .endpoint_name(name)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DescribeEndpoint", e))?;
    match out.endpoint_status() {
        Some(EndpointStatus::InService) => {
            Ok(StepOutcome::Done(json!({"endpoint_name": name, "endpoint_status": "InService"})))
        }
        Some(EndpointStatus::Failed) | Some(EndpointStatus::OutOfService) => Err(TargetError::permanent(format!(
            "endpoint {name} is {}: {}",
            out.endpoint_status().map(|s| s.as_str()).unwrap_or_default(),
            out.failure_reason().unwrap_or("no reason given")
        ))),
        _ => Ok(StepOutcome::InProgress(context.poll_interval)),
    }
}

async fn schedule_scheduled(clients: &Clients, name: &str, context: &AwsContext) -> Result<StepOutcome, TargetError> {
    let out = clients
        .sagemaker
        .describe_monitoring_schedule()
        .monitoring_schedule_name(name)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DescribeMonitoringSchedule", e))?;
    match out.monitoring_schedule_status() {
        Some(ScheduleStatus::Scheduled) => {
            Ok(StepOutcome::Done(json!({"monitoring_schedule_name": name, "status": "Scheduled"})))
        }
        Some(ScheduleStatus::Failed) => Err(TargetError::permanent(format!(
            "monitoring schedule {name} failed: {}",
            out.failure_reason().unwrap_or("no reason given")
        ))),
        _ => Ok(StepOutcome::InProgress(context.poll_interval)),
    }
}

// ----- shared by the job kinds -----------------------------------------------------------

/// A stack output the job needs (a role, the model); its absence is a template bug.
fn stack_output<'a>(outputs: &'a BTreeMap<String, String>, key: &str) -> Result<&'a str, TargetError> {
    outputs
        .get(key)
        .map(String::as_str)
        .ok_or_else(|| TargetError::permanent(format!("the deployed stack has no {key} output")))
}

/// Whether a describe call said "no such job". SageMaker answers `ResourceNotFound` for tuning
/// and AutoML jobs, but `ValidationException` ("Could not find requested job…", "Requested
/// resource not found.") for processing, training and transform jobs.
fn is_not_found(e: &AwsError) -> bool {
    e.is("ResourceNotFound")
        || (e.is("ValidationException") && (e.message.contains("Could not find") || e.message.contains("not found")))
}

/// A create error that means another worker (or an earlier attempt whose answer was lost)
/// created the job first, which the next describe will show.
fn is_duplicate(e: &AwsError) -> bool {
    e.is("ResourceInUse") || e.message.contains("already exists") || e.message.contains("must be unique")
}

/// Why starting a job failed: preparing its request, or the create call itself.
pub(super) enum CreateError {
    Prepare(TargetError),
    Aws(AwsError),
}

impl From<TargetError> for CreateError {
    fn from(e: TargetError) -> Self {
        CreateError::Prepare(e)
    }
}

impl From<AwsError> for CreateError {
    fn from(e: AwsError) -> Self {
        CreateError::Aws(e)
    }
}

/// One step of a SageMaker job with a deterministic name, the one pattern every job kind
/// follows: describe it; create it when it does not exist (a duplicate means someone else just
/// did); while it runs, wait. `Some(job)` once it `Completed`; a job that ended any other way
/// fails the stage with SageMaker's reason. Nothing is remembered between steps.
pub(super) async fn job_step<T>(
    kind: &str,
    name: &str,
    describe: impl Future<Output = Result<T, AwsError>>,
    status: impl FnOnce(&T) -> (String, Option<String>),
    create: impl Future<Output = Result<(), CreateError>>,
) -> Result<Option<T>, TargetError> {
    let job = match describe.await {
        Ok(job) => job,
        Err(e) if is_not_found(&e) => {
            return match create.await {
                Ok(()) => {
                    tracing::info!(job = %name, kind, "job created");
                    Ok(None)
                }
                Err(CreateError::Aws(e)) if is_duplicate(&e) => Ok(None),
                Err(CreateError::Aws(e)) => Err(e.into()),
                Err(CreateError::Prepare(e)) => Err(e),
            };
        }
        Err(e) => return Err(e.into()),
    };
    let (state, reason) = status(&job);
    Ok(completed(kind, name, &state, reason.as_deref())?.then_some(job))
}

/// A job's status as a step result: `true` once `Completed`, `false` while it runs; a job that
/// ended any other way fails the stage with SageMaker's reason.
fn completed(kind: &str, name: &str, status: &str, failure_reason: Option<&str>) -> Result<bool, TargetError> {
    match status {
        "Completed" => Ok(true),
        "InProgress" | "Stopping" | "Pending" | "Starting" => Ok(false),
        other => Err(TargetError::permanent(format!(
            "{kind} {name} is {other}: {}",
            failure_reason.filter(|r| !r.is_empty()).unwrap_or("no reason given")
        ))),
    }
}

/// Tags on every job we start: the solution's `stack_name`, and which pipeline version started
/// it (for people looking at the SageMaker console).
fn job_tags(stage: &StageContext) -> Vec<Tag> {
    [
        ("stack_name", names::stack_name(stage.pipeline_type, &stage.pipeline_name)),
        ("mlops-pipeline-id", stage.key.pipeline_id.clone()),
        ("mlops-pipeline-version", stage.key.version.to_string()),
    ]
    .into_iter()
    .map(|(key, value)| Tag::builder().key(key).value(value).build())
    .collect()
}

/// SageMaker's integer fields are `i32`; our settings are validated far below its limits.
fn int(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PipelineType;
    use crate::targets::ErrorKind;

    fn error(code: &str, message: &str) -> AwsError {
        AwsError {
            operation: "Describe",
            code: code.into(),
            message: message.into(),
            status: Some(400),
            retryable: false,
        }
    }

    #[test]
    fn not_found_covers_each_describe_flavour() {
        assert!(is_not_found(&error("ResourceNotFound", "Could not find AutoML job with name x.")));
        assert!(is_not_found(&error("ValidationException", "Could not find requested job with name x")));
        assert!(is_not_found(&error("ValidationException", "Requested resource not found.")));
        assert!(!is_not_found(&error("ValidationException", "1 validation error detected")));
        assert!(!is_not_found(&error("AccessDeniedException", "not authorized")));
    }

    #[test]
    fn job_status_maps_to_a_step_result() {
        assert!(completed("training job", "j", "Completed", None).unwrap());
        assert!(!completed("training job", "j", "InProgress", None).unwrap());
        assert!(!completed("training job", "j", "Stopping", None).unwrap());
        let failed = completed("training job", "j", "Failed", Some("AlgorithmError: boom")).unwrap_err();
        assert!(
            matches!(failed, TargetError { kind: ErrorKind::Permanent, ref message, .. } if message == "training job j is Failed: AlgorithmError: boom")
        );
        let stopped = completed("transform job", "t", "Stopped", Some("")).unwrap_err();
        assert!(
            matches!(stopped, TargetError { kind: ErrorKind::Permanent, ref message, .. } if message == "transform job t is Stopped: no reason given")
        );
    }

    /// One step of the driver, with a described status (or none: the job does not exist) and
    /// what creating it answers.
    async fn step(described: Option<&str>, created: Result<(), AwsError>) -> Result<Option<String>, TargetError> {
        let describe = async {
            match described {
                Some(status) => Ok(status.to_string()),
                None => Err(error("ValidationException", "Could not find requested job with name j")),
            }
        };
        let create = async { created.map_err(CreateError::Aws) };
        job_step("training job", "j", describe, |s: &String| (s.clone(), None), create).await
    }

    #[tokio::test]
    async fn the_job_driver_describes_creates_and_polls() {
        assert_eq!(step(None, Ok(())).await.unwrap(), None, "created, then waits");
        assert_eq!(step(Some("InProgress"), Ok(())).await.unwrap(), None);
        assert_eq!(step(Some("Completed"), Ok(())).await.unwrap().as_deref(), Some("Completed"));
        assert_eq!(step(Some("Failed"), Ok(())).await.unwrap_err().kind, ErrorKind::Permanent);
        // A duplicate create waits for the next describe.
        assert_eq!(step(None, Err(error("ResourceInUse", "exists"))).await.unwrap(), None);
        let unique = error("ValidationException", "Job name must be unique within an AWS account and region");
        assert_eq!(step(None, Err(unique)).await.unwrap(), None);
        assert!(step(None, Err(error("ValidationException", "bad instance type"))).await.is_err());
        // A describe that fails otherwise is the step's error.
        let throttled =
            async { Err::<String, _>(AwsError { retryable: true, ..error("ThrottlingException", "slow down") }) };
        let failed = job_step("training job", "j", throttled, |s: &String| (s.clone(), None), async { Ok(()) }).await;
        assert_eq!(failed.unwrap_err().kind, ErrorKind::Transient);
    }

    #[test]
    fn a_release_gives_every_job_a_name_of_its_own_within_sagemakers_limits() {
        let long = "a".repeat(63);
        let name = release_name(&long, "exec-1", 63);
        assert_eq!(name.len(), 63);
        assert!(name.starts_with("aaaa") && name.contains("-r"), "{name}");
        assert_eq!(name, release_name(&long, "exec-1", 63), "the same release, the same name");
        assert_ne!(name, release_name(&long, "exec-2", 63));
        assert!(release_name("tuning-job", "exec-1", 32).len() <= 32);
        assert!(!release_name(&format!("{}-x", "b".repeat(52)), "e", 63).contains("--"), "no hyphen run at the cut");

        for t in
            [PipelineType::ModelTrainingBuiltin, PipelineType::ModelTunerBuiltin, PipelineType::ByomDataQualityMonitor]
        {
            let mut stage = fixtures::stage(t);
            assert_eq!(for_release(&stage).params, stage.params, "no release, no change");
            stage.release = Some("exec-1".into());
            let released = for_release(&stage);
            let (before, after) = match (&stage.params, &released.params) {
                (StageParams::Training(a), StageParams::Training(b)) => (a.job_name.clone(), b.job_name.clone()),
                (StageParams::Monitor(a), StageParams::Monitor(b)) => {
                    (a.baseline_job_name.clone(), b.baseline_job_name.clone())
                }
                other => panic!("{other:?}"),
            };
            assert_ne!(before, after);
            assert!(after.ends_with(&release_name("", "exec-1", 63)[1..]), "{after}");
        }
    }
}
