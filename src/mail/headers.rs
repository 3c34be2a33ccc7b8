//! Header values the daemon writes itself, beyond what lettre's typed
//! headers do (R41): `Auto-Submitted` and a `Subject` that is always
//! encoded when user text in it could pass for an RFC 2047 encoded word.

use base64::Engine as _;
use lettre::message::header::{Header, HeaderName, HeaderValue};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `Auto-Submitted: auto-generated` (RFC 3834): the message was written by
/// a program, not a person, so auto-responders (out-of-office, vacation
/// replies) must not answer it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(s: &str) -> Result<Self, BoxError> {
        match s.trim() {
            "auto-generated" => Ok(AutoSubmitted),
            other => Err(format!("unexpected Auto-Submitted value {other:?}").into()),
        }
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

/// The `Subject` header, written whole as RFC 2047 encoded words (UTF-8,
/// base64) when the text holds `=?`. lettre writes an ASCII subject as it
/// is, so a business named `=?UTF-8?B?...?=` would reach `Subject:` as an
/// encoded word the reader's client decodes, showing whatever the attacker
/// encoded (a CR/LF the API refuses, other words). Encoded, the client
/// decodes it back to the literal text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedSubject(pub String);

impl Header for EncodedSubject {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Subject")
    }

    fn parse(s: &str) -> Result<Self, BoxError> {
        Ok(EncodedSubject(s.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        if needs_encoding(&self.0) {
            // Only ASCII, folded with CRLF + space: safe to pass as encoded.
            HeaderValue::dangerous_new_pre_encoded(
                Self::name(),
                self.0.clone(),
                encode_subject(&self.0),
            )
        } else {
            HeaderValue::new(Self::name(), self.0.clone())
        }
    }
}

/// Whether a subject must be encoded whole: it holds an encoded-word
/// look-alike.
fn needs_encoding(subject: &str) -> bool {
    subject.contains("=?")
}

/// `subject` as `=?utf-8?b?...?=` words of at most 64 characters (RFC 2047
/// allows 75), each holding whole UTF-8 characters (a word must decode on
/// its own), folded one per line. Decoding joins adjacent words without the
/// folding whitespace, so the reader sees `subject` exactly.
pub fn encode_subject(subject: &str) -> String {
    // 39 bytes are 52 base64 characters: 64 with `=?utf-8?b?` and `?=`.
    const MAX_BYTES: usize = 39;
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in subject.chars() {
        if chunk.len() + c.len_utf8() > MAX_BYTES {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    if !chunk.is_empty() || words.is_empty() {
        words.push(chunk);
    }
    words
        .iter()
        .map(|w| {
            format!(
                "=?utf-8?b?{}?=",
                base64::engine::general_purpose::STANDARD.encode(w)
            )
        })
        .collect::<Vec<_>>()
        .join("\r\n ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alikes_are_encoded_whole_and_round_trip() {
        let evil = "=?UTF-8?B?RXZlDQpCY2M6IGV2aWxAeC50ZXN0?= invited you to join";
        let encoded = encode_subject(evil);
        assert!(!encoded.contains(evil), "{encoded}");
        for line in encoded.split("\r\n") {
            let word = line.trim_start();
            assert!(
                word.starts_with("=?utf-8?b?") && word.ends_with("?="),
                "{word}"
            );
            assert!(word.len() <= 75, "{word}");
        }
        let decoded: String = encoded
            .split("\r\n ")
            .map(|w| {
                let b64 = w.trim_start_matches("=?utf-8?b?").trim_end_matches("?=");
                String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .unwrap(),
                )
                .unwrap()
            })
            .collect();
        assert_eq!(decoded, evil);
        // Multi-byte characters are never split between two words.
        let long = "提醒：=?x?= 邀請您加入「Analytical Engines Ltd」和更多的文字在這裡";
        for w in encode_subject(long).split("\r\n ") {
            let b64 = w.trim_start_matches("=?utf-8?b?").trim_end_matches("?=");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            assert!(String::from_utf8(bytes).is_ok(), "{w}");
        }
        assert!(!needs_encoding("Ada invited you to join Acme"));
        assert!(needs_encoding("a =? b"));
    }
}
