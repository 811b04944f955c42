//! Notifications (issue 14, DESIGN §2): the channels people are told through, the dispatcher
//! that turns audit events into notifications (`dispatcher`), and the job that delivers one
//! notification over one channel (`deliveries`). What warrants a notification is decided in
//! `domain::notifications`.

pub mod deliveries;
pub mod dispatcher;
mod email;
#[cfg(feature = "aws")]
mod sns;
pub mod webhook;

use crate::config::Settings;
use crate::domain::notifications::{Draft, NotificationKind};
use crate::store::NewNotification;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// One notification as a channel sends it.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    /// The notification's id: the same on every try (a webhook's `webhook-id`, an e-mail's
    /// Message-ID), so receivers can drop duplicates.
    pub id: &'a str,
    pub kind: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub data: &'a serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// A try that failed: `permanent` when trying again cannot help.
#[derive(Debug, Clone)]
pub struct SendError {
    pub message: String,
    pub response: Option<String>,
    pub permanent: bool,
}

impl SendError {
    pub fn transient(message: String) -> SendError {
        SendError { message, response: None, permanent: false }
    }
    pub fn permanent(message: String) -> SendError {
        SendError { message, response: None, permanent: true }
    }
}

enum Sender {
    Webhook(webhook::Webhook),
    Email(Box<email::Email>),
    #[cfg(feature = "aws")]
    Sns(Box<sns::Sns>),
}

pub struct Channel {
    pub name: String,
    pub kind: &'static str,
    /// Notification kinds this channel takes; empty: all.
    events: Vec<String>,
    /// Pipeline names this channel takes; empty: all.
    pipelines: Vec<String>,
    sender: Sender,
}

impl Channel {
    fn wants(&self, kind: NotificationKind, pipeline_name: Option<&str>) -> bool {
        let kind_ok = self.events.is_empty() || self.events.iter().any(|e| e == kind.as_str());
        let pipeline_ok =
            self.pipelines.is_empty() || pipeline_name.is_some_and(|p| self.pipelines.iter().any(|n| n == p));
        kind_ok && pipeline_ok
    }

    pub async fn send(&self, message: &Message<'_>) -> Result<String, SendError> {
        match &self.sender {
            Sender::Webhook(w) => w.send(message).await,
            Sender::Email(e) => e.send(message).await,
            #[cfg(feature = "aws")]
            Sender::Sns(s) => s.send(message).await,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("notification channel {channel:?}: {reason}")]
pub struct ChannelError {
    pub channel: String,
    pub reason: String,
}

/// Every configured channel, by name.
#[derive(Clone)]
pub struct Channels {
    by_name: Arc<HashMap<String, Channel>>,
    /// In configuration order, for stable delivery lists.
    order: Arc<Vec<String>>,
    public_url: String,
    max_attempts: i32,
}

impl Channels {
    pub fn from_settings(settings: &Settings) -> Result<Channels, ChannelError> {
        let n = &settings.notifications;
        let mut channels = Vec::new();
        for w in &n.webhooks {
            let error = |reason: String| ChannelError { channel: w.name.clone(), reason };
            let secret = match (&w.secret, &w.secret_file) {
                (Some(s), _) => s.clone(),
                (None, Some(file)) => {
                    std::fs::read_to_string(file).map_err(|e| error(format!("cannot read {}: {e}", file.display())))?
                }
                (None, None) => return Err(error("no signing secret".into())),
            };
            let key = webhook::key_of(&secret).map_err(|e| error(e.to_string()))?;
            channels.push(Channel {
                name: w.name.clone(),
                kind: "webhook",
                events: w.events.clone(),
                pipelines: w.pipelines.clone(),
                sender: Sender::Webhook(webhook::Webhook::new(&w.url, key, n.timeout)),
            });
        }
        for e in &n.email {
            let sender = email::Email::new(e, n.timeout)
                .map_err(|err| ChannelError { channel: e.name.clone(), reason: err.to_string() })?;
            channels.push(Channel {
                name: e.name.clone(),
                kind: "email",
                events: e.events.clone(),
                pipelines: e.pipelines.clone(),
                sender: Sender::Email(Box::new(sender)),
            });
        }
        #[cfg(feature = "aws")]
        for s in &n.sns {
            channels.push(Channel {
                name: s.name.clone(),
                kind: "sns",
                events: s.events.clone(),
                pipelines: s.pipelines.clone(),
                sender: Sender::Sns(Box::new(sns::Sns::new(s, &settings.aws.region))),
            });
        }
        let order = channels.iter().map(|c| c.name.clone()).collect();
        let public_url = n
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", settings.listen))
            .trim_end_matches('/')
            .to_string();
        Ok(Channels {
            by_name: Arc::new(channels.into_iter().map(|c| (c.name.clone(), c)).collect()),
            order: Arc::new(order),
            public_url,
            max_attempts: n.max_attempts,
        })
    }

    pub fn get(&self, name: &str) -> Option<&Channel> {
        self.by_name.get(name)
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The notification to record for `draft`, with the channels that take it (none: it is
    /// still recorded, so the API shows what would have been said).
    pub fn notification(
        &self,
        mut draft: Draft,
        pipeline_id: Option<&str>,
        pipeline_name: Option<&str>,
        event_id: Option<i64>,
    ) -> NewNotification {
        if let Some(path) = draft.data.get("approval_path").and_then(|p| p.as_str()).map(String::from) {
            let version = draft.data["version"].clone();
            let url = format!("{}{path}", self.public_url);
            draft.text.push_str(&format!(
                "\n\nTo decide, POST {{\"decision\": \"approve\" | \"reject\", \"version\": {version}}} to {url}\n(or run: mlops approve {} {} --version {version})",
                pipeline_id.unwrap_or("?"),
                draft.data["environment"].as_str().unwrap_or("?"),
            ));
            draft.data["approval_url"] = url.into();
        }
        let channels = self
            .order
            .iter()
            .filter_map(|name| self.by_name.get(name))
            .filter(|c| c.wants(draft.kind, pipeline_name))
            .map(|c| (c.name.clone(), c.kind.to_string()))
            .collect();
        NewNotification {
            kind: draft.kind.as_str().to_string(),
            pipeline_id: pipeline_id.map(String::from),
            event_id,
            subject: draft.subject,
            body: serde_json::json!({"text": draft.text, "data": draft.data}),
            channels,
            max_attempts: self.max_attempts,
        }
    }
}
