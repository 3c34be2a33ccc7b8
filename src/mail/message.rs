//! Building the MIME message for one rendered email: headers from sanitised
//! values (R30) and a fixed Message-ID so retries can be de-duplicated (R27).

use std::fmt;
use std::str::FromStr;

use lettre::Message;
use lettre::message::{Mailbox, MultiPart};

use super::headers::{AutoSubmitted, EncodedSubject};
use super::one_line;
use super::templates::Rendered;

/// The `From` of every email (`mail.from`), parsed once: `Name <addr>` or a
/// bare address, put on one line without control characters (R30). It keeps
/// the text it was written as, which is what `check-config` shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sender {
    text: String,
    mailbox: Mailbox,
}

impl Sender {
    pub fn mailbox(&self) -> &Mailbox {
        &self.mailbox
    }

    /// The text as configured (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The domain of the address, for Message-IDs.
    pub fn domain(&self) -> &str {
        self.mailbox.email.domain()
    }
}

impl FromStr for Sender {
    type Err = lettre::address::AddressError;

    /// lettre's parser decides what is valid, since lettre writes the header.
    fn from_str(text: &str) -> Result<Sender, Self::Err> {
        Ok(Sender {
            text: text.trim().to_owned(),
            mailbox: one_line(text).parse()?,
        })
    }
}

impl fmt::Display for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("invalid recipient address: {0}")]
    InvalidTo(lettre::address::AddressError),
    #[error("invalid Message-ID {0:?}: expected <local@domain> without spaces")]
    InvalidMessageId(String),
    #[error("cannot build message: {0}")]
    Build(#[from] lettre::error::Error),
}

/// Builds a `multipart/alternative` message (text part, then HTML part) with
/// From, To, Subject, Date, `Auto-Submitted: auto-generated` (R41), the
/// `reply_to` mailbox when given, and exactly the given `message_id`.
///
/// `from` is the configured sender, already on one line; `to_name` and the
/// subject may carry user text, so they are put on one line without control
/// characters before they reach a header, and a subject holding an
/// encoded-word look-alike is encoded whole (see `headers::EncodedSubject`).
pub fn build_message(
    from: &Sender,
    to_email: &str,
    to_name: Option<&str>,
    message_id: &str,
    rendered: &Rendered,
    reply_to: Option<&Mailbox>,
) -> Result<Message, MessageError> {
    let to_address = to_email.trim().parse().map_err(MessageError::InvalidTo)?;
    let to_mailbox = Mailbox::new(to_name.map(one_line).filter(|n| !n.is_empty()), to_address);
    if !is_valid_message_id(message_id) {
        return Err(MessageError::InvalidMessageId(message_id.to_owned()));
    }

    let mut builder = Message::builder()
        .from(from.mailbox().clone())
        .to(to_mailbox)
        .header(EncodedSubject(one_line(&rendered.subject)))
        .header(AutoSubmitted);
    if let Some(reply_to) = reply_to {
        builder = builder.reply_to(reply_to.clone());
    }
    let message = builder
        .message_id(Some(message_id.to_owned()))
        .date_now()
        .multipart(MultiPart::alternative_plain_html(
            rendered.text.clone(),
            rendered.html.clone(),
        ))?;
    Ok(message)
}

/// A new Message-ID `<uuidv7@domain>`. The daemon calls this once when it
/// writes the outbox row and reuses the value on every attempt (R27). `domain`
/// should be the sender's domain; anything but letters, digits, `-` and `.` is
/// dropped so the result is always a valid `msg-id`.
pub fn new_message_id(domain: &str) -> String {
    let domain: String = domain
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
        .collect();
    let domain = domain.trim_matches('.');
    let domain = if domain.is_empty() {
        "localhost"
    } else {
        domain
    };
    format!("<{}@{domain}>", uuid::Uuid::now_v7())
}

/// `<left@right>` in printable ASCII with no spaces, brackets or second `@`:
/// the value goes into a header verbatim.
fn is_valid_message_id(id: &str) -> bool {
    let Some(inner) = id.strip_prefix('<').and_then(|s| s.strip_suffix('>')) else {
        return false;
    };
    let Some((left, right)) = inner.split_once('@') else {
        return false;
    };
    let atom_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'@' | b'"' | b'\\'))
    };
    atom_ok(left) && atom_ok(right)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(subject: &str) -> Rendered {
        Rendered {
            subject: subject.to_owned(),
            text: "text".to_owned(),
            html: "<p>html</p>".to_owned(),
            locale: "en-US".to_owned(),
        }
    }

    fn sender(text: &str) -> Sender {
        text.parse().unwrap()
    }

    fn header_block(msg: &Message) -> String {
        let raw = String::from_utf8(msg.formatted()).unwrap();
        raw.split("\r\n\r\n").next().unwrap().to_owned()
    }

    #[test]
    fn keeps_the_given_message_id() {
        let id = new_message_id("info.example.test");
        let msg = build_message(
            &sender("Pinbot <pinbot@info.example.test>"),
            "u@example.test",
            Some("U"),
            &id,
            &rendered("Hello"),
            None,
        )
        .unwrap();
        let headers = header_block(&msg);
        assert!(headers.contains(&format!("Message-ID: {id}")), "{headers}");
        assert!(headers.contains("Subject: Hello"), "{headers}");
        assert!(headers.contains("multipart/alternative"), "{headers}");
    }

    #[test]
    fn user_text_cannot_add_headers() {
        let msg = build_message(
            &sender("Pin\r\nbot <pinbot@info.example.test>"),
            "u@example.test",
            Some("Eve\r\nBcc: evil@x.test"),
            &new_message_id("example.test"),
            &rendered("Hi\r\nBcc: evil@x.test"),
            None,
        )
        .unwrap();
        let headers = header_block(&msg);
        assert!(
            !headers
                .lines()
                .any(|l| l.to_ascii_lowercase().starts_with("bcc")),
            "{headers}"
        );
        assert!(
            headers.contains("From: \"Pin bot\" <pinbot@info.example.test>"),
            "{headers}"
        );
        assert_eq!(msg.envelope().to().len(), 1);
    }

    #[test]
    fn rejects_bad_addresses_and_ids() {
        let r = rendered("s");
        let id = new_message_id("example.test");
        assert!("not an address".parse::<Sender>().is_err());
        assert!(matches!(
            build_message(&sender("a@example.test"), "nope", None, &id, &r, None),
            Err(MessageError::InvalidTo(_))
        ));
        for bad in [
            "",
            "x@y",
            "<x y@z>",
            "<x@y>\r\nBcc: e@x",
            "<@y>",
            "<x@>",
            "<x@y@z>",
        ] {
            assert!(
                matches!(
                    build_message(
                        &sender("a@example.test"),
                        "u@example.test",
                        None,
                        bad,
                        &r,
                        None
                    ),
                    Err(MessageError::InvalidMessageId(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn message_id_shape() {
        let id = new_message_id("info.example.test");
        assert!(
            id.starts_with('<') && id.ends_with("@info.example.test>"),
            "{id}"
        );
        assert!(is_valid_message_id(&id));
        assert!(new_message_id("bad>\r\ndomain").ends_with("@baddomain>"));
        assert!(new_message_id("").ends_with("@localhost>"));
        assert_ne!(new_message_id("a.test"), new_message_id("a.test"));
    }
}
