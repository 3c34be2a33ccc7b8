//! Mail: templates, message building and transports (SMTP, .eml files).
//!
//! The flow is `Templates::render` -> `build_message` -> `Mailer::send`. Each
//! step owns one concern: `contexts` owns what each template receives,
//! templates own wording and escaping, `message` owns headers (and keeps user
//! text out of them, R30), `transport` owns delivery and the
//! transient/permanent classification the outbox retries on (R27).

mod breaker;
pub mod contexts;
mod date;
pub mod dkim;
mod headers;
mod message;
pub mod return_path;
mod templates;
mod transport;

pub use breaker::Admission;
pub use contexts::EmailContent;
pub use date::{format_date, format_datetime, zone_named};
pub use dkim::{DkimKey, DkimSettings, DkimSigner};
pub use headers::encode_subject;
pub use message::{MessageError, Sender, build_message, new_message_id};
pub use return_path::ReturnPath;
pub use templates::{Fallback, Rendered, TemplateError, TemplateName, Templates};
pub use transport::{Failure, MailError, Mailer, MailerConfig, SendOutcome, SmtpReply};

/// Makes `text` safe to put in a single header line: every control character
/// (CR, LF, TAB, NUL, DEL, C1 controls) and every Unicode line/paragraph separator
/// becomes a space, runs of whitespace collapse to one space and the ends are
/// trimmed. A CR or LF that reached a header could start a new header (`Bcc:`)
/// in naive encoders; removing them here means no encoder has to be trusted.
pub(crate) fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for c in text.chars() {
        if c.is_control() || c.is_whitespace() {
            pending_space = true;
        } else {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn one_line_removes_line_breaks_and_controls() {
        assert_eq!(one_line("Ann\r\nBcc: evil@x.test"), "Ann Bcc: evil@x.test");
        assert_eq!(
            one_line("  a\tb\u{0}c\u{7f}d\u{85}e\u{2028}f  "),
            "a b c d e f"
        );
        assert_eq!(one_line("\r\n"), "");
        assert_eq!(one_line("Zoë  &  Co"), "Zoë & Co");
    }
}
