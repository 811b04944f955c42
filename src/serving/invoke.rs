//! One invocation: parse the body as SageMaker's XGBoost container does, predict, encode in the
//! negotiated format, and capture the exchange in SageMaker's data-capture format.

use super::capture::{CaptureDestination, CaptureEvent, CaptureWriter};
use super::codec::{self, CodecError, MediaTypeError};
use super::endpoints::LiveEndpoint;
use bytes::Bytes;

/// Bodies at least this large are parsed, predicted and encoded on the blocking pool so they
/// cannot stall the async workers (and with them every other request); smaller ones are
/// cheaper inline.
const BLOCKING_BYTES: usize = 32 * 1024;

pub struct Invocation {
    pub content_type: Option<String>,
    pub accept: Option<String>,
    pub body: Bytes,
    /// `X-Amzn-SageMaker-Inference-Id`, echoed into the capture record.
    pub inference_id: Option<String>,
}

pub struct InvocationOutput {
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error(transparent)]
    MediaType(#[from] MediaTypeError),
    #[error("{0}")]
    Rows(#[from] CodecError),
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
    let request_format = codec::request_format(invocation.content_type.as_deref())?;
    let response_format = codec::response_format(invocation.accept.as_deref(), request_format)?;
    let work = {
        let (endpoint, input) = (endpoint.clone(), invocation.body.clone());
        move || -> Result<(&'static str, Vec<u8>), CodecError> {
            let rows = codec::parse_rows(request_format, &input, endpoint.model.num_features())?;
            let per_row = endpoint.model.num_outputs();
            let mut outputs = Vec::with_capacity(rows.rows * per_row);
            for row in rows.values.chunks(rows.cols.max(1)).take(rows.rows) {
                endpoint.model.predict_row(row, &mut outputs);
            }
            Ok(codec::encode_predictions(response_format, &outputs, per_row))
        }
    };
    let (content_type, body) = if invocation.body.len() >= BLOCKING_BYTES {
        tokio::task::spawn_blocking(work).await.expect("scoring does not panic")?
    } else {
        work()?
    };

    if let Some(location) = &endpoint.config.capture {
        let destination = CaptureDestination {
            bucket: location.bucket.clone(),
            prefix: location.prefix.clone(),
            endpoint: endpoint.name.clone(),
            variant: endpoint.config.variant.clone(),
        };
        let event = CaptureEvent {
            input_content_type: invocation.content_type.unwrap_or_else(|| "text/csv".into()),
            input: invocation.body,
            output_content_type: content_type.to_string(),
            output: Bytes::from(body.clone()),
            inference_id: invocation.inference_id,
            event_id: uuid::Uuid::new_v4(),
            time: chrono::Utc::now(),
        };
        // Capture never delays the answer: a record that does not fit the buffer is dropped
        // and counted for the endpoint (GET /v1/endpoints/{name} shows the figures).
        if !sampled(capture.sampling_percentage()) {
            capture.sampled_out(&destination);
        } else if let Err(e) = capture.record(&destination, event) {
            tracing::warn!(endpoint = %endpoint.name, error = %e, "could not capture an invocation");
        }
    }
    Ok(InvocationOutput { content_type, body })
}
