//! The aws target (docs/AWS.md): CloudFormation stacks that create CodePipelines that deploy
//! SageMaker resources. The pure parts (templates, parameters, packaging, image URIs) know nothing
//! of the SDK; `target` drives the SDK clients.

pub mod context;
pub mod image_uris;
pub mod package;
pub mod parameters;
pub mod templates;

mod clients;
mod errors;
pub mod model_cards;
mod pipeline_state;
mod sagemaker_jobs;
mod target;

pub use errors::AwsError;
pub use target::AwsTarget;
