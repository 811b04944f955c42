//! Push webhooks from GitHub and GitLab (`POST /v1/git/webhook`): who sent it, whether it
//! verifies against a source's secret, and which branch it updated. GitHub signs the body with
//! HMAC-SHA256 (`X-Hub-Signature-256: sha256=<hex>`); GitLab sends the secret token itself
//! (`X-Gitlab-Token`), compared here in constant time.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// A webhook delivery as received.
pub struct Delivery<'a> {
    pub github_signature: Option<&'a str>,
    pub gitlab_token: Option<&'a str>,
    /// `X-GitHub-Event` or `X-Gitlab-Event`.
    pub event: Option<&'a str>,
    pub body: &'a [u8],
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error(
        "the push is not signed with the secret of any Git source (X-Hub-Signature-256 for GitHub, X-Gitlab-Token for GitLab)"
    )]
    Signature,
    #[error("the body is not a push event: {0}")]
    Body(String),
}

impl Delivery<'_> {
    /// Whether the delivery carries a valid signature (or token) for `secret`.
    pub fn verify(&self, secret: &[u8]) -> bool {
        if let Some(header) = self.github_signature {
            let Some(hex_sig) = header.trim().strip_prefix("sha256=") else { return false };
            let Ok(signature) = hex::decode(hex_sig) else { return false };
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
            mac.update(self.body);
            return mac.verify_slice(&signature).is_ok();
        }
        if let Some(token) = self.gitlab_token {
            // Equal digests, compared whole: the time taken says nothing of the secret.
            let (a, b) = (Sha256::digest(token.trim().as_bytes()), Sha256::digest(secret));
            return a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
        }
        false
    }

    /// Whether this is a ping (GitHub's `ping`, sent when the hook is created): verified and
    /// answered, nothing fetched.
    pub fn is_ping(&self) -> bool {
        self.event == Some("ping")
    }

    /// The branch the push updated (`refs/heads/<branch>`); `None` for a tag push.
    pub fn branch(&self) -> Result<Option<String>, Refused> {
        if self.is_ping() {
            return Ok(None);
        }
        let body: serde_json::Value =
            serde_json::from_slice(self.body).map_err(|e| Refused::Body(format!("not JSON: {e}")))?;
        let reference = body["ref"].as_str().ok_or_else(|| Refused::Body("it has no `ref`".into()))?;
        Ok(reference.strip_prefix("refs/heads/").map(String::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn github(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    /// GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
    #[test]
    fn verifies_githubs_documented_example() {
        let body = b"Hello, World!";
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let delivery = Delivery { github_signature: Some(header), gitlab_token: None, event: None, body };
        assert!(delivery.verify(b"It's a Secret to Everybody"));
        assert!(!delivery.verify(b"another secret"));
        assert_eq!(github(b"It's a Secret to Everybody", body), header);
    }

    #[test]
    fn refuses_tampered_or_unsigned_deliveries() {
        let signed = github(b"s3cret", br#"{"ref":"refs/heads/main"}"#);
        let tampered = Delivery {
            github_signature: Some(&signed),
            gitlab_token: None,
            event: None,
            body: br#"{"ref":"refs/heads/evil"}"#,
        };
        assert!(!tampered.verify(b"s3cret"));
        let unsigned = Delivery { github_signature: None, gitlab_token: None, event: None, body: b"{}" };
        assert!(!unsigned.verify(b"s3cret"));
        let garbage = Delivery { github_signature: Some("sha256=zz"), gitlab_token: None, event: None, body: b"{}" };
        assert!(!garbage.verify(b"s3cret"));
    }

    #[test]
    fn gitlab_tokens_compare_whole() {
        let ok = Delivery { github_signature: None, gitlab_token: Some("s3cret"), event: None, body: b"{}" };
        assert!(ok.verify(b"s3cret"));
        assert!(!ok.verify(b"s3cre"));
        assert!(!ok.verify(b"s3cret2"));
    }

    #[test]
    fn reads_the_pushed_branch() {
        let push = |body: &'static [u8]| Delivery { github_signature: None, gitlab_token: None, event: None, body };
        assert_eq!(push(br#"{"ref":"refs/heads/main"}"#).branch(), Ok(Some("main".into())));
        assert_eq!(push(br#"{"ref":"refs/tags/v1"}"#).branch(), Ok(None));
        assert!(push(b"{}").branch().is_err());
        assert!(push(b"nope").branch().is_err());
    }
}
