//! One invocation: parse the body as SageMaker's XGBoost container does, predict, encode in the
//! negotiated format, and capture the exchange in SageMaker's data-capture format.

use super::capture::{CaptureDestination, CaptureEvent, CaptureWriter};
use super::codec::{self, CodecError, MediaTypeError};
use super::endpoints::{LiveEndpoint, Model};
use super::process::{ProcessError, ProcessRequest};
use bytes::Bytes;
use hyper::header::HeaderName;
use std::borrow::Cow;

/// Bodies at least this large are parsed, predicted and encoded on the blocking pool so they
/// cannot stall the async workers (and with them every other request); smaller ones are
/// cheaper inline.
const BLOCKING_BYTES: usize = 32 * 1024;

/// SageMaker runtime's headers of an invocation, read by the endpoints and passed on to custom
/// algorithms (prebuilt: a name parsed per request costs as much as the lookup).
pub static INFERENCE_ID: HeaderName = HeaderName::from_static("x-amzn-sagemaker-inference-id");
pub static CUSTOM_ATTRIBUTES: HeaderName = HeaderName::from_static("x-amzn-sagemaker-custom-attributes");

pub struct Invocation {
    pub content_type: Option<String>,
    pub accept: Option<String>,
    pub body: Bytes,
    /// `X-Amzn-SageMaker-Inference-Id`, echoed into the capture record.
    pub inference_id: Option<String>,
    /// `X-Amzn-SageMaker-Custom-Attributes`, passed on to a custom algorithm.
    pub custom_attributes: Option<String>,
}

pub struct InvocationOutput {
    /// Static for built-in models (no allocation per invocation), the algorithm's for custom ones.
    pub content_type: std::borrow::Cow<'static, str>,
    pub body: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error(transparent)]
    MediaType(#[from] MediaTypeError),
    #[error("{0}")]
    Rows(#[from] CodecError),
    /// A custom algorithm could not be called.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// A custom algorithm answered with an error status (SageMaker's `ModelError`).
    #[error("the algorithm answered {status}")]
    Model { status: u16, body: Bytes },
    /// A built-in model failed to evaluate rows it accepted.
    #[error("the model failed to evaluate the rows: {0}")]
    Predict(#[from] super::builtin::PredictError),
}

/// Whether this invocation is captured, at `percentage` (0 to 100) of invocations.
fn sampled(percentage: f64) -> bool {
    use rand::RngExt;
    percentage >= 100.0 || rand::rng().random_range(0.0..100.0) < percentage
}

pub async fn invoke(
    endpoint: std::sync::Arc<LiveEndpoint>,
    capture: &CaptureWriter,
    invocation: Invocation,
) -> Result<InvocationOutput, InvokeError> {
    let (content_type, body) = match &endpoint.model {
        Model::Builtin(_) => score_builtin(&endpoint, &invocation).await?,
        Model::Process(process) => {
            let request = ProcessRequest {
                content_type: invocation.content_type.clone(),
                accept: invocation.accept.clone(),
                custom_attributes: invocation.custom_attributes.clone(),
                inference_id: invocation.inference_id.clone(),
                body: invocation.body.clone(),
            };
            let reply = process.invoke(request).await?;
            if !(200..300).contains(&reply.status) {
                return Err(InvokeError::Model { status: reply.status, body: reply.body });
            }
            let content_type = reply.content_type.map_or(Cow::Borrowed("application/octet-stream"), Cow::Owned);
            (content_type, reply.body.to_vec())
        }
    };

    if let Some(location) = &endpoint.config.capture {
        // Resolved on the endpoint's first invocation, then reused: no paths built per call.
        let target = endpoint.capture_target.get_or_init(|| {
            let destination = CaptureDestination {
                bucket: location.bucket.clone(),
                prefix: location.prefix.clone(),
                endpoint: endpoint.name.clone(),
                variant: endpoint.config.variant.clone(),
            };
            capture
                .target(&destination)
                .inspect_err(|e| tracing::error!(endpoint = %endpoint.name, error = %e, "this endpoint cannot capture"))
                .ok()
        });
        // Capture never delays the answer: a record that does not fit the buffer is dropped
        // and counted for the endpoint (GET /v1/endpoints/{name} shows the figures).
        if let Some(target) = target {
            if !sampled(capture.sampling_percentage()) {
                target.sampled_out();
            } else {
                let event = CaptureEvent {
                    input_content_type: invocation.content_type.as_deref().unwrap_or("text/csv"),
                    input: &invocation.body,
                    output_content_type: &content_type,
                    output: &body,
                    inference_id: invocation.inference_id.as_deref(),
                    event_id: uuid::Uuid::new_v4(),
                    time: chrono::Utc::now(),
                };
                if let Err(e) = capture.record_to(target, &event) {
                    tracing::warn!(endpoint = %endpoint.name, error = %e, "could not capture an invocation");
                }
            }
        }
    }
    Ok(InvocationOutput { content_type, body })
}

/// A built-in model: parse the body as SageMaker's XGBoost container does, predict, encode.
async fn score_builtin(
    endpoint: &std::sync::Arc<LiveEndpoint>,
    invocation: &Invocation,
) -> Result<(Cow<'static, str>, Vec<u8>), InvokeError> {
    let Model::Builtin(_) = &endpoint.model else { unreachable!("called for built-in models only") };
    let request_format = codec::request_format(invocation.content_type.as_deref())?;
    let response_format = codec::response_format(invocation.accept.as_deref(), request_format)?;
    let work = {
        let (endpoint, input) = (endpoint.clone(), invocation.body.clone());
        move || -> Result<(&'static str, Vec<u8>), InvokeError> {
            let Model::Builtin(model) = &endpoint.model else { unreachable!("checked above") };
            let rows = codec::parse_rows(request_format, &input, model.num_features())?;
            let per_row = model.num_outputs();
            let mut outputs = Vec::with_capacity(rows.rows * per_row);
            model.predict_rows(&rows.values[..rows.rows * rows.cols], &mut outputs)?;
            Ok(codec::encode_predictions(response_format, &outputs, per_row))
        }
    };
    let (content_type, body) = if invocation.body.len() >= BLOCKING_BYTES {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| super::builtin::PredictError(format!("evaluation panicked: {e}")))??
    } else {
        work()?
    };
    Ok((Cow::Borrowed(content_type), body))
}
