//! E-mail over SMTP (lettre): plain text, one message to every configured recipient. The
//! notification id is the Message-ID, so a mail client shows a retried delivery as one message.

use super::{Message, SendError};
use crate::config::{EmailChannel, SmtpSecurity};
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::time::Duration;

pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    server: String,
}

#[derive(Debug, thiserror::Error)]
pub enum EmailSetupError {
    #[error("{0}")]
    Address(String),
    #[error("SMTP relay {0}: {1}")]
    Relay(String, String),
    #[error("cannot read {0}: {1}")]
    PasswordFile(String, std::io::Error),
}

impl Email {
    pub fn new(channel: &EmailChannel, timeout: Duration) -> Result<Email, EmailSetupError> {
        let parse = |a: &str| a.parse::<Mailbox>().map_err(|e| EmailSetupError::Address(format!("{a:?}: {e}")));
        let port = channel.smtp_port.unwrap_or(match channel.security {
            SmtpSecurity::None => 25,
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Tls => 465,
        });
        let host = channel.smtp_host.as_str();
        let relay_error = |e: lettre::transport::smtp::Error| EmailSetupError::Relay(host.to_string(), e.to_string());
        let mut builder = match channel.security {
            SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            SmtpSecurity::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host).map_err(relay_error)?
            }
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(relay_error)?,
        }
        .port(port)
        .timeout(Some(timeout));
        let password = match (&channel.password, &channel.password_file) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(file)) => Some(
                std::fs::read_to_string(file)
                    .map_err(|e| EmailSetupError::PasswordFile(file.display().to_string(), e))?
                    .trim_end()
                    .to_string(),
            ),
            (None, None) => None,
        };
        if let (Some(user), Some(password)) = (&channel.username, password) {
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Email {
            transport: builder.build(),
            from: parse(&channel.from)?,
            to: channel.to.iter().map(|t| parse(t)).collect::<Result<_, _>>()?,
            server: format!("{host}:{port}"),
        })
    }

    pub async fn send(&self, message: &Message<'_>) -> Result<String, SendError> {
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .subject(message.subject)
            .message_id(Some(format!("<{}@mlops-orchestrator>", message.id)))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let mail = builder
            .body(format!(
                "{}\n\n-- \nmlops-orchestrator notification {} ({})\n",
                message.text, message.id, message.kind
            ))
            .map_err(|e| SendError::permanent(format!("cannot build the message: {e}")))?;
        match self.transport.send(mail).await {
            Ok(response) => {
                Ok(format!("SMTP {} {}", response.code(), response.message().collect::<Vec<_>>().join(" ")))
            }
            Err(e) => {
                let text = format!("SMTP {}: {e}", self.server);
                let code = e.status().map(|c| format!("SMTP {c}"));
                Err(SendError { message: text, response: code, permanent: e.is_permanent() })
            }
        }
    }
}
