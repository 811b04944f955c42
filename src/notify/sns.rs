//! Amazon SNS, as the solution notifies: a plain-text message with a subject on one topic. A
//! topic named by `topic_name` is created (CreateTopic is idempotent) and, when asked, subscribed
//! by e-mail on first use, so start-up needs no network.

use super::{Message, SendError};
use crate::config::SnsChannel;
use aws_config::{BehaviorVersion, Region};
use tokio::sync::OnceCell;

pub struct Sns {
    channel: SnsChannel,
    default_region: String,
    client: OnceCell<aws_sdk_sns::Client>,
    topic_arn: OnceCell<String>,
}

impl Sns {
    pub fn new(channel: &SnsChannel, default_region: &str) -> Sns {
        Sns {
            channel: channel.clone(),
            default_region: default_region.to_string(),
            client: OnceCell::new(),
            topic_arn: OnceCell::new(),
        }
    }

    async fn client(&self) -> &aws_sdk_sns::Client {
        self.client
            .get_or_init(|| async {
                let mut loader = aws_config::defaults(BehaviorVersion::latest());
                let region = self.channel.region.clone().or_else(|| Some(self.default_region.clone()));
                if let Some(region) = region.filter(|r| !r.is_empty()) {
                    loader = loader.region(Region::new(region));
                }
                if let Some(url) = &self.channel.endpoint_url {
                    loader = loader.endpoint_url(url);
                }
                aws_sdk_sns::Client::new(&loader.load().await)
            })
            .await
    }

    /// The topic, created and subscribed on first use when configured by name.
    async fn topic(&self) -> Result<&String, SendError> {
        self.topic_arn
            .get_or_try_init(|| async {
                let client = self.client().await;
                let arn = match (&self.channel.topic_arn, &self.channel.topic_name) {
                    (Some(arn), _) => arn.clone(),
                    (None, Some(name)) => client
                        .create_topic()
                        .name(name)
                        .send()
                        .await
                        .map_err(|e| SendError::transient(format!("SNS CreateTopic {name}: {}", sdk_error(&e))))?
                        .topic_arn
                        .ok_or_else(|| SendError::transient(format!("SNS CreateTopic {name} returned no ARN")))?,
                    (None, None) => return Err(SendError::permanent("the channel names no topic".into())),
                };
                if let Some(email) = &self.channel.subscribe_email {
                    let subscribed = client.list_subscriptions_by_topic().topic_arn(&arn).send().await.map_err(|e| {
                        SendError::transient(format!("SNS ListSubscriptionsByTopic {arn}: {}", sdk_error(&e)))
                    })?;
                    let present = subscribed
                        .subscriptions()
                        .iter()
                        .any(|s| s.protocol() == Some("email") && s.endpoint() == Some(email.as_str()));
                    if !present {
                        client.subscribe().topic_arn(&arn).protocol("email").endpoint(email).send().await.map_err(
                            |e| SendError::transient(format!("SNS Subscribe {email} to {arn}: {}", sdk_error(&e))),
                        )?;
                        tracing::info!(topic = %arn, %email, "subscribed the address to the notification topic; it must confirm the mail AWS sends");
                    }
                }
                Ok(arn)
            })
            .await
    }

    pub async fn send(&self, message: &Message<'_>) -> Result<String, SendError> {
        let topic = self.topic().await?;
        let published = self
            .client()
            .await
            .publish()
            .topic_arn(topic)
            .subject(subject(message.subject))
            .message(message.text)
            .send()
            .await
            .map_err(|e| SendError::transient(format!("SNS Publish to {topic}: {}", sdk_error(&e))))?;
        Ok(format!("SNS message {}", published.message_id().unwrap_or("?")))
    }
}

/// SNS subjects are at most 100 printable ASCII characters, without line breaks.
fn subject(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).take(100).collect()
}

fn sdk_error<E: std::error::Error + 'static>(e: &aws_sdk_sns::error::SdkError<E>) -> String {
    aws_sdk_sns::error::DisplayErrorContext(e).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn subjects_fit_sns_rules() {
        assert_eq!(super::subject("Pipeline é\nfailed"), "Pipeline ??failed");
        assert_eq!(super::subject(&"x".repeat(150)).len(), 100);
    }
}
