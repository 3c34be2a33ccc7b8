//! The NATS connection shared by the event sink and the command consumer, and
//! the names under `nats.subject_prefix`: subjects `<prefix>.events.<type>`,
//! `<prefix>.commands.<name>`, `<prefix>.results.<Nats-Msg-Id>`, and the
//! streams `<PREFIX>_EVENTS` and `<PREFIX>_COMMANDS`, created if missing
//! (an operator may create them beforehand with their own limits).

use std::time::Duration;

use async_nats::jetstream::{self, stream};

/// A NATS client and its JetStream context.
#[derive(Clone)]
pub struct Bus {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    prefix: String,
}

#[derive(Debug, thiserror::Error)]
#[error("NATS: {0}")]
pub struct BusError(pub String);

impl BusError {
    pub fn from(error: impl std::fmt::Display) -> BusError {
        BusError(error.to_string())
    }
}

impl Bus {
    /// Connects in the background: the daemon starts while NATS is down and
    /// the client keeps reconnecting; until then publishes fail and are
    /// retried like any failed delivery.
    pub async fn connect(url: &str, prefix: &str, timeout: Duration) -> Result<Bus, BusError> {
        let client = async_nats::ConnectOptions::new()
            .name("invited")
            .retry_on_initial_connect()
            .connection_timeout(timeout)
            .connect(url)
            .await
            .map_err(BusError::from)?;
        let js = jetstream::ContextBuilder::new()
            .timeout(timeout)
            .build(client.clone());
        Ok(Bus {
            client,
            js,
            prefix: prefix.to_string(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>.events.<type>`; a type such as `invitation.created` spans
    /// two tokens, so subscribe to `<prefix>.events.>`.
    pub fn event_subject(&self, event_type: &str) -> String {
        format!("{}.events.{event_type}", self.prefix)
    }

    pub fn commands_subject(&self) -> String {
        format!("{}.commands.>", self.prefix)
    }

    /// The command name of a subject under `<prefix>.commands.`.
    pub fn command_name<'s>(&self, subject: &'s str) -> Option<&'s str> {
        subject
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(".commands.")
    }

    pub fn result_subject(&self, message_id: &str) -> String {
        format!("{}.results.{message_id}", self.prefix)
    }

    pub fn stream_name(&self, what: &str) -> String {
        stream_name(&self.prefix, what)
    }

    /// The stream that keeps published events (created with NATS defaults,
    /// including the 2-minute `Nats-Msg-Id` duplicate window).
    pub async fn events_stream(&self) -> Result<stream::Stream, BusError> {
        self.js
            .get_or_create_stream(stream::Config {
                name: self.stream_name("EVENTS"),
                subjects: vec![format!("{}.events.>", self.prefix)],
                ..Default::default()
            })
            .await
            .map_err(BusError::from)
    }

    /// The stream of inbound commands: a work queue, so an acknowledged
    /// command is removed.
    pub async fn commands_stream(&self) -> Result<stream::Stream, BusError> {
        self.js
            .get_or_create_stream(stream::Config {
                name: self.stream_name("COMMANDS"),
                subjects: vec![self.commands_subject()],
                retention: stream::RetentionPolicy::WorkQueue,
                ..Default::default()
            })
            .await
            .map_err(BusError::from)
    }
}

/// `<PREFIX>_<WHAT>`: stream names cannot hold dots.
pub fn stream_name(prefix: &str, what: &str) -> String {
    let base: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{base}_{what}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn stream_names_follow_the_prefix() {
        assert_eq!(super::stream_name("invited", "EVENTS"), "INVITED_EVENTS");
        assert_eq!(
            super::stream_name("acme.invited-test", "COMMANDS"),
            "ACME_INVITED_TEST_COMMANDS"
        );
    }
}
