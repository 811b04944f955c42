//! Signed webhooks as the Standard Webhooks convention defines them (standardwebhooks.com):
//! `webhook-id` (the notification's id, the same on every retry, so receivers can drop
//! duplicates), `webhook-timestamp` (Unix seconds) and `webhook-signature`
//! (`v1,` + base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`, keyed with the base64-decoded
//! `whsec_…` secret). Written here rather than taken from a crate: the signature is these few
//! lines over `hmac`/`sha2`, and the test verifies it with the convention's reference library.

use super::{Message, SendError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

pub struct Webhook {
    url: String,
    key: Vec<u8>,
    http: reqwest::Client,
}

#[derive(Debug, thiserror::Error)]
#[error("the webhook secret must be `whsec_` followed by base64 (or plain base64): {0}")]
pub struct BadSecret(String);

/// The signing key of a `whsec_…` secret.
pub fn key_of(secret: &str) -> Result<Vec<u8>, BadSecret> {
    let encoded = secret.trim().strip_prefix("whsec_").unwrap_or(secret.trim());
    let key = STANDARD.decode(encoded).map_err(|e| BadSecret(e.to_string()))?;
    if key.is_empty() {
        return Err(BadSecret("it is empty".into()));
    }
    Ok(key)
}

/// `v1,<base64 signature>` of `body` sent as message `id` at `timestamp`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

impl Webhook {
    pub fn new(url: &str, key: Vec<u8>, timeout: Duration) -> Webhook {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            // A notification goes where it was configured to, not wherever a receiver points.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mlops-orchestrator/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a client with a timeout builds");
        Webhook { url: url.to_string(), key, http }
    }

    pub async fn send(&self, message: &Message<'_>) -> Result<String, SendError> {
        let mut data = message.data.clone();
        if let Some(object) = data.as_object_mut() {
            object.insert("subject".into(), message.subject.into());
            object.insert("text".into(), message.text.into());
        }
        let body = serde_json::to_vec(&serde_json::json!({
            "type": message.kind,
            "timestamp": message.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "data": data,
        }))
        .expect("JSON values serialise");
        let timestamp = chrono::Utc::now().timestamp();
        let response = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("webhook-id", message.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", sign(&self.key, message.id, timestamp, &body))
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::transient(format!("POST {}: {}", self.url, error_chain(&e))))?;
        let status = response.status();
        if status.is_success() {
            return Ok(format!("HTTP {}", status.as_u16()));
        }
        let answer: String = response.text().await.unwrap_or_default().chars().take(200).collect();
        let error = format!("POST {} answered HTTP {}: {answer}", self.url, status.as_u16());
        // 410 Gone: the receiver says the endpoint will never take deliveries again.
        Err(SendError { message: error, response: Some(format!("HTTP {}", status.as_u16())), permanent: status == 410 })
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification (its test vectors).
    #[test]
    fn signs_the_specification_example() {
        let key = key_of("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn refuses_secrets_that_are_not_base64() {
        assert!(key_of("whsec_not base64!").is_err());
        assert!(key_of("whsec_").is_err());
        assert_eq!(key_of("whsec_AAEC").unwrap(), vec![0, 1, 2]);
    }
}
