//! Names: the deterministic stack and object names of reference §6.2/§13.3, and the validated
//! name values (endpoint, job, image tag, ECR repository) whose limits come from those rules.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::pipeline_type::PipelineType;
use super::values::{InvalidValue, string_value};

/// Prefix of every stack the orchestrator creates; its IAM policy allows only this prefix.
pub const STACK_NAME_PREFIX: &str = "mlops-pipeline";
/// The longest deployed stack name: its CodePipeline is `<stack>-pipeline`, and CodePipeline
/// names stop at 100 characters (CloudFormation's own limit, 128, is looser; so is the wrapper's
/// `<stack>-codepipeline`).
pub const MAX_STACK_NAME_LEN: usize = 100 - "-pipeline".len();
/// SageMaker's limit on endpoint, training-job, processing-job and schedule names.
pub const MAX_SAGEMAKER_NAME_LEN: usize = 63;
/// SageMaker's limit on hyperparameter-tuning and AutoML job names.
pub const MAX_TUNING_JOB_NAME_LEN: usize = 32;

/// The deployed workload's stack name: `lower("mlops-pipeline-" + name + "-" + postfix)`, where
/// `name` is the model name (the image tag for the image builder).
pub fn stack_name(pipeline_type: PipelineType, name: &str) -> String {
    format!("{STACK_NAME_PREFIX}-{}-{}", name.trim(), pipeline_type.stack_postfix()).to_lowercase()
}

/// The pipeline type and name a stack name was made from: the deployed workload's stack name
/// or its wrapper's (`…-codepipeline`), as `/pipelinestatus` takes them.
pub fn parse_stack_name(stack: &str) -> Option<(PipelineType, String)> {
    let stack = stack.trim().to_lowercase();
    let stack = stack.strip_suffix("-codepipeline").unwrap_or(&stack);
    let rest = stack.strip_prefix(STACK_NAME_PREFIX)?.strip_prefix('-')?;
    // The longest postfix that matches: no postfix may swallow part of another.
    PipelineType::ALL
        .iter()
        .filter_map(|t| {
            let name = rest.strip_suffix(&t.stack_postfix().to_lowercase())?.strip_suffix('-')?;
            (!name.is_empty()).then(|| (*t, name.to_string()))
        })
        .min_by_key(|(_, name)| name.len())
}

/// The wrapper stack that holds the CodePipeline (not used by the image builder).
pub fn wrapper_stack_name(stack_name: &str) -> String {
    format!("{stack_name}-codepipeline")
}

/// Where the packaged template and parameters go in the assets bucket.
pub fn template_zip_key(stack_name: &str) -> String {
    format!("mlops_provisioned_pipelines/{stack_name}/template.zip")
}

/// The longest model name (or image tag) whose stack name still fits [`MAX_STACK_NAME_LEN`].
pub fn max_name_len(pipeline_type: PipelineType) -> usize {
    MAX_STACK_NAME_LEN - STACK_NAME_PREFIX.len() - pipeline_type.stack_postfix().len() - 2
}

static SAGEMAKER_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$").expect("static pattern"));

/// SageMaker's name shape `^[a-zA-Z0-9](-*[a-zA-Z0-9])*$` with a length limit.
pub fn check_sagemaker_name(name: &str, max_len: usize) -> Result<(), InvalidValue> {
    if name.is_empty() {
        return Err(InvalidValue::new("must not be empty"));
    }
    if name.len() > max_len {
        return Err(InvalidValue::new(format!(
            "`{name}` is {} characters long; at most {max_len} are allowed",
            name.len()
        )));
    }
    if !SAGEMAKER_NAME.is_match(name) {
        return Err(InvalidValue::new(format!(
            "`{name}` may contain only letters, digits and hyphens, and must start and end with a letter or digit"
        )));
    }
    Ok(())
}

/// A model name: it becomes part of a stack name, so it takes SageMaker's name shape and must
/// leave room for the type's stack postfix.
pub fn check_model_name(name: &str, pipeline_type: PipelineType) -> Result<(), InvalidValue> {
    check_sagemaker_name(name, max_name_len(pipeline_type)).map_err(|e| {
        InvalidValue::new(format!(
            "{e} (the model name is part of the stack name `{}`)",
            stack_name(pipeline_type, "<model_name>")
        ))
    })
}

/// A SageMaker endpoint name, lower-cased and trimmed as the solution does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
pub struct EndpointName(String);
string_value!(EndpointName);

impl EndpointName {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let name = s.trim().to_lowercase();
        check_sagemaker_name(&name, MAX_SAGEMAKER_NAME_LEN)?;
        Ok(Self(name))
    }
}

/// A training, tuning or AutoML job name. Tuning and AutoML jobs are further limited to
/// [`MAX_TUNING_JOB_NAME_LEN`]; request validation applies that per type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
pub struct JobName(String);
string_value!(JobName);

impl JobName {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        check_sagemaker_name(s, MAX_SAGEMAKER_NAME_LEN)?;
        Ok(Self(s.to_string()))
    }
}

/// A Docker image tag that is also a stack-name infix: Docker allows `_` and `.`, CloudFormation
/// stack names do not, so only letters, digits and hyphens remain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
pub struct ImageTag(String);
string_value!(ImageTag);

impl ImageTag {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        static PATTERN: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r"^[A-Za-z0-9][A-Za-z0-9-]*$").expect("static pattern"));
        let max = max_name_len(PipelineType::ByomImageBuilder);
        if s.is_empty() {
            return Err(InvalidValue::new("must not be empty"));
        }
        if s.len() > max {
            return Err(InvalidValue::new(format!(
                "`{s}` is {} characters long; at most {max} fit in the stack name",
                s.len()
            )));
        }
        if !PATTERN.is_match(s) {
            return Err(InvalidValue::new(format!(
                "`{s}` may contain only letters, digits and hyphens and must not start with a hyphen (the tag is part of the stack name `{}`)",
                stack_name(PipelineType::ByomImageBuilder, "<image_tag>")
            )));
        }
        Ok(Self(s.to_string()))
    }
}

/// An ECR repository name (reference §3.9 pattern, 2-256 characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
pub struct EcrRepoName(String);
string_value!(EcrRepoName);

impl EcrRepoName {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        static PATTERN: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r"^([a-z0-9]+([._-][a-z0-9]+)*/)*[a-z0-9]+([._-][a-z0-9]+)*$").expect("static pattern")
        });
        if (2..=256).contains(&s.len()) && PATTERN.is_match(s) {
            Ok(Self(s.to_string()))
        } else {
            Err(InvalidValue::new(format!(
                "`{s}` is not an ECR repository name: 2-256 lower-case letters, digits and `._-/` separators, e.g. `mlops-ecr-repo`"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_and_object_names() {
        let stack = stack_name(PipelineType::ByomRealtimeBuiltin, "Churn-XGB");
        assert_eq!(stack, "mlops-pipeline-churn-xgb-byompipelinerealtimebuiltin");
        assert_eq!(wrapper_stack_name(&stack), "mlops-pipeline-churn-xgb-byompipelinerealtimebuiltin-codepipeline");
        assert_eq!(
            template_zip_key(&stack),
            "mlops_provisioned_pipelines/mlops-pipeline-churn-xgb-byompipelinerealtimebuiltin/template.zip"
        );
        assert_eq!(stack_name(PipelineType::ByomImageBuilder, "tree"), "mlops-pipeline-tree-byompipelineimagebuilder");
    }

    #[test]
    fn longest_names_fit_the_stack_limit() {
        for t in PipelineType::ALL {
            let name = "a".repeat(max_name_len(t));
            assert_eq!(stack_name(t, &name).len(), MAX_STACK_NAME_LEN, "{t}");
            assert!(check_model_name(&name, t).is_ok());
            assert!(check_model_name(&format!("{name}a"), t).is_err());
        }
        assert_eq!(max_name_len(PipelineType::ByomModelExplainabilityMonitor), 45);
        assert_eq!(max_name_len(PipelineType::ModelTrainingBuiltin), 62);
    }

    #[test]
    fn sagemaker_names() {
        for ok in ["a", "A1", "my--endpoint", "x-1-y"] {
            assert!(check_sagemaker_name(ok, 63).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "a_b", "a.b", "a b"] {
            assert!(check_sagemaker_name(bad, 63).is_err(), "{bad:?}");
        }
        assert!(check_sagemaker_name(&"a".repeat(64), 63).is_err());
    }

    #[test]
    fn endpoint_names_are_lowercased_and_trimmed() {
        assert_eq!(EndpointName::parse(" Churn-Endpoint ").unwrap().as_str(), "churn-endpoint");
        assert!(EndpointName::parse("test_endpoint").is_err());
        assert!(EndpointName::parse(&"e".repeat(64)).is_err());
    }

    #[test]
    fn image_tags_and_repositories() {
        assert!(ImageTag::parse("v1-2").is_ok());
        assert!(ImageTag::parse("Tree").is_ok());
        for bad in ["", "v1.2", "v_1", "-v1", &"t".repeat(89)] {
            assert!(ImageTag::parse(bad).is_err(), "{bad:?}");
        }
        for ok in ["mlops-ecrrep", "team/algo.v2", "a_b"] {
            assert!(EcrRepoName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["a", "Upper", "a//b", "-a", "a-"] {
            assert!(EcrRepoName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stack_names_parse_back_to_type_and_name() {
        for t in PipelineType::ALL {
            for name in ["churn", "a-b-c", "x1"] {
                let stack = stack_name(t, name);
                assert_eq!(parse_stack_name(&stack), Some((t, name.to_string())), "{stack}");
                assert_eq!(parse_stack_name(&wrapper_stack_name(&stack)), Some((t, name.to_string())));
            }
        }
        assert_eq!(parse_stack_name("mlops-pipeline-churn-unknown"), None);
        assert_eq!(parse_stack_name("churn"), None);
        assert_eq!(parse_stack_name("mlops-pipeline--byompipelinerealtimebuiltin"), None);
    }
}
