//! DKIM signatures (R42, RFC 6376): relaxed/relaxed, RSA-SHA256 or
//! Ed25519-SHA256 (RFC 8463), over the message exactly as it is sent.
//!
//! The signature is computed over `Message::formatted()`, the bytes the
//! transport writes, and added as a `DKIM-Signature` header of the message.
//! lettre's own `dkim` feature is not used: it hashes only the headers it
//! keeps at the top level, and the `Content-Type` of a multipart message is
//! written with the part, so it was listed in `h=` but never hashed and every
//! verifier refused the signature. The crypto is the `rsa` and
//! `ed25519-dalek` crates; this file owns canonicalization and the header.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::Signer as _;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use sha2::{Digest as _, Sha256};

/// The header fields signed when the message has them (R42 names the first
/// seven). Naming `Reply-To` and `Auto-Submitted` also keeps a relay from
/// adding them later.
const SIGNED: [&str; 9] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Reply-To",
    "Auto-Submitted",
];

/// Verifiers refuse shorter RSA keys (RFC 8301).
const MIN_RSA_BITS: usize = 1024;

/// `[mail.dkim]`: who signs, and the key, read and checked when the
/// configuration is loaded. `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct DkimSettings {
    /// `mail.dkim.domain`, the `d=` tag.
    pub domain: String,
    /// `mail.dkim.selector`, the `s=` tag: the key is published at
    /// `<selector>._domainkey.<domain>`.
    pub selector: String,
    /// `mail.dkim.private_key_file`, a PEM file.
    pub private_key_file: PathBuf,
    pub key: DkimKey,
}

impl fmt::Debug for DkimSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DkimSettings")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("private_key_file", &self.private_key_file)
            .field("algorithm", &self.key.algorithm())
            .finish()
    }
}

/// A private key that can sign: RSA (PKCS#1 or PKCS#8 PEM, at least 1024
/// bits) or Ed25519 (PKCS#8 PEM). Equal when the public keys are.
#[derive(Clone)]
pub struct DkimKey(Arc<Inner>);

enum Inner {
    Rsa(rsa::RsaPrivateKey),
    Ed25519(ed25519_dalek::SigningKey),
}

impl PartialEq for DkimKey {
    fn eq(&self, other: &DkimKey) -> bool {
        self.public_key() == other.public_key()
    }
}

impl Eq for DkimKey {}

/// Names the algorithm and the public key, never the private one.
impl fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DkimKey({}, p={})", self.algorithm(), self.public_key())
    }
}

impl DkimKey {
    /// Reads a PEM key file; the error says what is wrong with it.
    pub fn read(path: &Path) -> Result<DkimKey, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        DkimKey::from_pem(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn from_pem(pem: &str) -> Result<DkimKey, String> {
        let inner = if let Ok(key) = rsa::RsaPrivateKey::from_pkcs1_pem(pem) {
            Inner::Rsa(key)
        } else if let Ok(key) =
            <rsa::RsaPrivateKey as rsa::pkcs8::DecodePrivateKey>::from_pkcs8_pem(pem)
        {
            Inner::Rsa(key)
        } else if let Ok(key) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            Inner::Ed25519(key)
        } else {
            return Err("not an RSA or Ed25519 private key in PEM \
                        (BEGIN RSA PRIVATE KEY or BEGIN PRIVATE KEY)"
                .into());
        };
        if let Inner::Rsa(key) = &inner {
            let bits = key.size() * 8;
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "an RSA key of {bits} bits: verifiers refuse keys shorter than {MIN_RSA_BITS} bits"
                ));
            }
        }
        Ok(DkimKey(Arc::new(inner)))
    }

    /// `rsa` or `ed25519`, the `k=` of the DNS record.
    pub fn algorithm(&self) -> &'static str {
        match &*self.0 {
            Inner::Rsa(_) => "rsa",
            Inner::Ed25519(_) => "ed25519",
        }
    }

    /// The `p=` of the DNS record: the DER SubjectPublicKeyInfo for RSA, the
    /// 32 raw bytes for Ed25519 (RFC 8463), base64.
    pub fn public_key(&self) -> String {
        match &*self.0 {
            Inner::Rsa(key) => {
                use rsa::pkcs8::EncodePublicKey as _;
                let der = key
                    .to_public_key()
                    .to_public_key_der()
                    .map(|d| d.as_bytes().to_vec())
                    .unwrap_or_default();
                B64.encode(der)
            }
            Inner::Ed25519(key) => B64.encode(key.verifying_key().as_bytes()),
        }
    }

    fn sign(&self, hash: &[u8; 32]) -> Result<Vec<u8>, String> {
        match &*self.0 {
            Inner::Rsa(key) => key
                .sign(rsa::Pkcs1v15Sign::new::<rsa::sha2::Sha256>(), hash)
                .map_err(|e| format!("RSA signing failed: {e}")),
            // RFC 8463: PureEdDSA over the SHA-256 hash of the data.
            Inner::Ed25519(key) => Ok(key.sign(hash).to_bytes().to_vec()),
        }
    }
}

/// Signs messages with one configured key.
#[derive(Clone, Debug)]
pub struct DkimSigner {
    settings: DkimSettings,
}

impl DkimSigner {
    pub fn new(settings: DkimSettings) -> DkimSigner {
        DkimSigner { settings }
    }

    /// Adds the `DKIM-Signature` header to `msg`, computed over the bytes
    /// the transport will send.
    pub fn sign_message(&self, msg: &mut Message) -> Result<(), String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let value = self.signature(&msg.formatted(), now)?;
        msg.headers_mut()
            .insert_raw(HeaderValue::dangerous_new_pre_encoded(
                HeaderName::new_from_ascii_str("DKIM-Signature"),
                value.clone(),
                value,
            ));
        Ok(())
    }

    /// The value of the `DKIM-Signature` header for the message `raw`
    /// (headers, blank line, body; CRLF line ends), folded at its tags.
    pub fn signature(&self, raw: &[u8], timestamp: u64) -> Result<String, String> {
        let (head, body) = split_message(raw);
        let fields = header_fields(head);
        let signed: Vec<&str> = SIGNED
            .into_iter()
            .filter(|name| fields.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)))
            .collect();
        let body_hash = B64.encode(Sha256::digest(relaxed_body(body)));
        let s = &self.settings;
        let unsigned = format!(
            "v=1; a={}-sha256; c=relaxed/relaxed; d={}; s={}; t={timestamp};\r\n\th={};\r\n\tbh={body_hash};\r\n\tb=",
            s.key.algorithm(),
            s.domain,
            s.selector,
            signed.join(":").to_ascii_lowercase(),
        );

        let mut data = Vec::new();
        // Each name once, from the last occurrence (RFC 6376 5.4.2); the
        // daemon's messages have one of each.
        for name in &signed {
            if let Some((n, v)) = fields
                .iter()
                .rev()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                data.extend_from_slice(relaxed_header(n, v).as_bytes());
                data.extend_from_slice(b"\r\n");
            }
        }
        data.extend_from_slice(relaxed_header("DKIM-Signature", &unsigned).as_bytes());
        let hash: [u8; 32] = Sha256::digest(&data).into();
        let signature = s.key.sign(&hash)?;
        Ok(format!("{unsigned}{}", B64.encode(signature)))
    }
}

/// The header block and the body of a message (the body after the first
/// empty line; none if there is no empty line).
fn split_message(raw: &[u8]) -> (&[u8], &[u8]) {
    match raw.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(at) => (&raw[..at + 2], &raw[at + 4..]),
        None => (raw, &[]),
    }
}

/// The header fields as (name, value with its folding), in order.
fn header_fields(head: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(head);
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push_str("\r\n");
                value.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.to_owned(), value.to_owned()));
        }
    }
    fields
}

/// RFC 6376 3.4.2: the name in lower case, the value unfolded, runs of
/// spaces and tabs as one space, none at either end.
fn relaxed_header(name: &str, value: &str) -> String {
    let unfolded = value.replace("\r\n", "");
    let mut out = String::with_capacity(name.len() + unfolded.len() + 1);
    out.push_str(&name.trim().to_ascii_lowercase());
    out.push(':');
    let mut space = false;
    for c in unfolded.trim_matches([' ', '\t']).chars() {
        if c == ' ' || c == '\t' {
            space = true;
        } else {
            if space {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    out
}

/// RFC 6376 3.4.4: no spaces at line ends, runs of spaces as one, no empty
/// lines at the end, and a CRLF after the last line.
fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (line, next) = match rest.windows(2).position(|w| w == b"\r\n") {
            Some(at) => (&rest[..at], &rest[at + 2..]),
            None => (rest, &rest[rest.len()..]),
        };
        let mut out = Vec::with_capacity(line.len());
        let mut space = false;
        for &b in line {
            if b == b' ' || b == b'\t' {
                space = true;
            } else {
                if space {
                    out.push(b' ');
                }
                space = false;
                out.push(b);
            }
        }
        lines.push(out);
        rest = next;
    }
    while lines.last().is_some_and(Vec::is_empty) {
        lines.pop();
    }
    let mut out = Vec::with_capacity(body.len());
    for line in lines {
        out.extend_from_slice(&line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relaxed_canonicalization_follows_rfc_6376() {
        // The examples of RFC 6376 3.4.5.
        assert_eq!(relaxed_header("A", " X"), "a:X");
        assert_eq!(relaxed_header("B ", " Y\t\r\n\tZ  "), "b:Y Z");
        assert_eq!(relaxed_body(b" C \r\nD \t E\r\n\r\n\r\n"), b" C\r\nD E\r\n");
        assert_eq!(relaxed_body(b""), b"");
        assert_eq!(relaxed_body(b"\r\n\r\n"), b"");
        assert_eq!(relaxed_body(b"x"), b"x\r\n");
    }

    #[test]
    fn refuses_what_is_not_a_usable_key() {
        assert!(DkimKey::from_pem("").is_err());
        assert!(
            DkimKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .is_err()
        );
        let err = DkimKey::from_pem("hello").unwrap_err();
        assert!(err.contains("not an RSA or Ed25519 private key"), "{err}");
    }

    #[test]
    fn signs_with_an_ed25519_key() {
        // RFC 8463's example key.
        let pem = "-----BEGIN PRIVATE KEY-----\n\
                   MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
                   -----END PRIVATE KEY-----\n";
        let key = DkimKey::from_pem(pem).unwrap();
        assert_eq!(key.algorithm(), "ed25519");
        assert_eq!(
            key.public_key(),
            "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
        );
        let signer = DkimSigner::new(DkimSettings {
            domain: "football.example.com".into(),
            selector: "brisbane".into(),
            private_key_file: "k.pem".into(),
            key,
        });
        let raw = b"From: a@football.example.com\r\nSubject: Hi\r\nX-Other: 1\r\n\r\nbody\r\n";
        let value = signer.signature(raw, 1).unwrap();
        assert!(
            value.contains(
                "a=ed25519-sha256; c=relaxed/relaxed; d=football.example.com; s=brisbane"
            ),
            "{value}"
        );
        assert!(value.contains("h=from:subject;"), "{value}");
        // Deterministic: Ed25519 signatures depend on the data only.
        assert_eq!(value, signer.signature(raw, 1).unwrap());
    }
}
