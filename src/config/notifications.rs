//! `[notifications]`: the channels people are told through (issue 14, docs/OPERATIONS.md
//! "Notifications"). Any number of each kind; each may be limited to some notification kinds and
//! some pipelines (by name). Secrets may come from a file (`*_file`) so they stay out of the
//! config file; they are never logged.

use super::{ConfigError, duration};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationSettings {
    /// The server's URL as people reach it, for links in notifications (where to approve);
    /// default `http://{listen}`.
    pub public_url: Option<String>,
    /// Tries per delivery before it is given up (retries back off exponentially, with jitter).
    pub max_attempts: i32,
    /// Bound on one try (connect, send, answer).
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// How often each worker looks for events to notify (also woken by new jobs).
    #[serde(with = "duration")]
    pub dispatch_interval: Duration,
    pub webhooks: Vec<WebhookChannel>,
    pub sns: Vec<SnsChannel>,
    pub email: Vec<EmailChannel>,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            public_url: None,
            max_attempts: 8,
            timeout: Duration::from_secs(10),
            dispatch_interval: Duration::from_secs(1),
            webhooks: Vec::new(),
            sns: Vec::new(),
            email: Vec::new(),
        }
    }
}

/// A signed webhook (Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`
/// = `v1,` base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookChannel {
    pub name: String,
    pub url: String,
    /// `whsec_` followed by the base64 key (as Standard Webhooks libraries take it), or
    /// `secret_file` naming a file holding it.
    pub secret: Option<String>,
    pub secret_file: Option<std::path::PathBuf>,
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub pipelines: Vec<String>,
}

/// An Amazon SNS topic, as the solution notifies: an existing `topic_arn`, or `topic_name`
/// (created if missing); `subscribe_email` adds the topic's e-mail subscription (the address
/// confirms it from the mail AWS sends).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnsChannel {
    pub name: String,
    pub topic_arn: Option<String>,
    pub topic_name: Option<String>,
    pub subscribe_email: Option<String>,
    /// Default: `aws.region`, else the SDK's own chain.
    pub region: Option<String>,
    /// An emulator instead of AWS (e.g. moto on loopback).
    pub endpoint_url: Option<String>,
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub pipelines: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain SMTP: only for a relay on this machine or a trusted network.
    None,
    /// STARTTLS upgrade (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailChannel {
    pub name: String,
    pub smtp_host: String,
    pub smtp_port: Option<u16>,
    #[serde(default = "starttls")]
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<std::path::PathBuf>,
    pub from: String,
    pub to: Vec<String>,
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub pipelines: Vec<String>,
}

fn starttls() -> SmtpSecurity {
    SmtpSecurity::Starttls
}

impl NotificationSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let key = |i: usize, kind: &str, field: &str| format!("notifications.{kind}[{i}].{field}");
        if self.max_attempts < 1 {
            return Err(ConfigError::new("notifications.max_attempts", "must be at least 1"));
        }
        for (k, zero) in [
            ("notifications.timeout", self.timeout.is_zero()),
            ("notifications.dispatch_interval", self.dispatch_interval.is_zero()),
        ] {
            if zero {
                return Err(ConfigError::new(k, "must be non-zero"));
            }
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::new("notifications.public_url", "must be an http:// or https:// URL"));
        }
        let mut names = std::collections::HashSet::new();
        let channels = self.webhooks.iter().map(|w| ("webhooks", &w.name, &w.events)).enumerate();
        let channels = channels
            .chain(self.sns.iter().map(|s| ("sns", &s.name, &s.events)).enumerate())
            .chain(self.email.iter().map(|e| ("email", &e.name, &e.events)).enumerate());
        for (i, (kind, name, events)) in channels {
            if name.trim().is_empty() {
                return Err(ConfigError::new(key(i, kind, "name"), "must not be empty"));
            }
            if !names.insert(name.clone()) {
                return Err(ConfigError::new(key(i, kind, "name"), format!("{name:?} names two channels")));
            }
            for event in events {
                if crate::domain::notifications::NotificationKind::parse(event).is_none() {
                    let known: Vec<_> =
                        crate::domain::notifications::NotificationKind::ALL.iter().map(|k| k.as_str()).collect();
                    return Err(ConfigError::new(
                        key(i, kind, "events"),
                        format!("{event:?} is not a notification kind (one of {})", known.join(", ")),
                    ));
                }
            }
        }
        for (i, w) in self.webhooks.iter().enumerate() {
            if reqwest::Url::parse(&w.url).map(|u| !matches!(u.scheme(), "http" | "https")).unwrap_or(true) {
                return Err(ConfigError::new(key(i, "webhooks", "url"), "must be an http:// or https:// URL"));
            }
            match (&w.secret, &w.secret_file) {
                (Some(_), Some(_)) => {
                    return Err(ConfigError::new(key(i, "webhooks", "secret"), "give secret or secret_file, not both"));
                }
                (None, None) => {
                    return Err(ConfigError::new(
                        key(i, "webhooks", "secret"),
                        "a webhook needs a signing secret (secret or secret_file)",
                    ));
                }
                _ => {}
            }
        }
        for (i, s) in self.sns.iter().enumerate() {
            if !cfg!(feature = "aws") {
                return Err(ConfigError::new(
                    key(i, "sns", "name"),
                    "this build has no SNS support (built without the aws feature)",
                ));
            }
            if s.topic_arn.is_some() == s.topic_name.is_some() {
                return Err(ConfigError::new(
                    key(i, "sns", "topic_arn"),
                    "give exactly one of topic_arn or topic_name",
                ));
            }
        }
        for (i, e) in self.email.iter().enumerate() {
            if e.to.is_empty() {
                return Err(ConfigError::new(key(i, "email", "to"), "name at least one recipient"));
            }
            for (field, address) in std::iter::once(("from", &e.from)).chain(e.to.iter().map(|t| ("to", t))) {
                if address.parse::<lettre::message::Mailbox>().is_err() {
                    return Err(ConfigError::new(
                        key(i, "email", field),
                        format!("{address:?} is not an e-mail address"),
                    ));
                }
            }
            if e.password.is_some() && e.password_file.is_some() {
                return Err(ConfigError::new(key(i, "email", "password"), "give password or password_file, not both"));
            }
            if e.username.is_some() != (e.password.is_some() || e.password_file.is_some()) {
                return Err(ConfigError::new(
                    key(i, "email", "username"),
                    "give username and password together, or neither",
                ));
            }
        }
        Ok(())
    }
}

/// Secrets never reach the log.
impl std::fmt::Debug for NotificationSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let webhooks: Vec<_> = self.webhooks.iter().map(|w| (&w.name, &w.url)).collect();
        let email: Vec<_> = self.email.iter().map(|e| (&e.name, &e.smtp_host, &e.to)).collect();
        f.debug_struct("NotificationSettings")
            .field("public_url", &self.public_url)
            .field("max_attempts", &self.max_attempts)
            .field("timeout", &self.timeout)
            .field("dispatch_interval", &self.dispatch_interval)
            .field("webhooks", &webhooks)
            .field("sns", &self.sns)
            .field("email", &email)
            .finish()
    }
}
