//! AWS SDK errors as the rest of the system sees them: the AWS error code and message kept, and a
//! split between what is worth retrying (throttling, 5xx, timeouts, network) and what is not.

use crate::targets::{ErrorKind, TargetError};
use aws_sdk_cloudformation::config::http::HttpResponse;
use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;

/// One failed AWS call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation}: {code}: {message}")]
pub struct AwsError {
    pub operation: &'static str,
    /// The AWS error code (`ValidationError`, `ThrottlingException`, …), or a transport kind.
    pub code: String,
    pub message: String,
    /// HTTP status of the AWS answer, when there was one.
    pub status: Option<u16>,
    pub retryable: bool,
}

const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "ProvisionedThroughputExceededException",
    "PriorRequestNotComplete",
];

impl AwsError {
    pub fn from_sdk<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match &err {
            SdkError::ServiceError(service) => {
                let code = service.err().code().unwrap_or("Unknown").to_string();
                let status = service.raw().status().as_u16();
                let retryable = THROTTLING.contains(&code.as_str()) || status >= 500;
                AwsError {
                    operation,
                    message: service.err().message().unwrap_or("").to_string(),
                    code,
                    status: Some(status),
                    retryable,
                }
            }
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => AwsError {
                operation,
                code: "TransportError".into(),
                message: DisplayErrorContext(&err).to_string(),
                status: None,
                retryable: true,
            },
            _ => AwsError {
                operation,
                code: "RequestError".into(),
                message: DisplayErrorContext(&err).to_string(),
                status: None,
                retryable: false,
            },
        }
    }

    pub fn is(&self, code: &str) -> bool {
        self.code == code
    }
}

impl From<AwsError> for TargetError {
    fn from(e: AwsError) -> Self {
        let kind = if e.retryable {
            ErrorKind::Transient
        } else if e.code.ends_with("NotFound") || e.code.ends_with("NotFoundException") {
            ErrorKind::NotFound
        } else if matches!(e.code.as_str(), "ConflictException" | "ResourceInUse" | "AlreadyExistsException") {
            ErrorKind::Conflict
        } else {
            ErrorKind::Permanent
        };
        TargetError::new(kind, e.to_string()).with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_codes_retry_and_validation_does_not() {
        for code in ["Throttling", "ThrottlingException", "SlowDown"] {
            assert!(THROTTLING.contains(&code));
        }
        let e = AwsError {
            operation: "CreateStack",
            code: "ValidationError".into(),
            message: "bad".into(),
            status: Some(400),
            retryable: false,
        };
        assert!(
            matches!(TargetError::from(e.clone()), TargetError { kind: ErrorKind::Permanent, ref message, .. } if message == "CreateStack: ValidationError: bad")
        );
        assert!(TargetError::from(AwsError { retryable: true, ..e }).kind == ErrorKind::Transient);
    }
}
