//! The providers' secrets as the configuration gives them, parsed once at
//! start into what the checks use (`feedback.postmark.*`,
//! `feedback.sendgrid.public_key`, `feedback.mailgun.signing_key`,
//! `feedback.resend.secret`, `feedback.ses.allowed_cert_hosts`). `Debug`
//! never prints a secret.

use std::fmt;

use base64::Engine as _;

/// `feedback.postmark.{username, password}`: the HTTP basic credentials put
/// in the webhook's URL (Postmark signs nothing else).
#[derive(Clone, PartialEq, Eq)]
pub struct PostmarkCredentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for PostmarkCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostmarkCredentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// `feedback.sendgrid.public_key`: the "Verification Key" SendGrid shows for
/// its signed event webhook, base64 of a DER SubjectPublicKeyInfo of an
/// ECDSA P-256 key. Kept as the uncompressed point the verifier takes, and
/// as given (to print back).
#[derive(Clone, PartialEq, Eq)]
pub struct SendgridKey {
    pub base64: String,
    pub point: Vec<u8>,
}

/// id-ecPublicKey (RFC 5480).
const EC_PUBLIC_KEY: spki::ObjectIdentifier =
    spki::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// secp256r1 / prime256v1.
const P256: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

impl SendgridKey {
    pub fn parse(text: &str) -> Result<SendgridKey, String> {
        use spki::der::Decode as _;
        let text = text.trim();
        // SendGrid shows the bare base64; a PEM block copied whole is the same.
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .concat();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.trim())
            .map_err(|_| "is not base64 (paste SendGrid's verification key as shown)".to_owned())?;
        let info = spki::SubjectPublicKeyInfoRef::from_der(&der)
            .map_err(|e| format!("is not a DER public key ({e})"))?;
        let curve = info
            .algorithm
            .parameters_oid()
            .map_err(|_| "is not an elliptic-curve key".to_owned())?;
        if info.algorithm.oid != EC_PUBLIC_KEY || curve != P256 {
            return Err("is not an ECDSA P-256 key (SendGrid's keys are)".into());
        }
        let point = info
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| "has a malformed key bit string".to_owned())?;
        if point.len() != 65 || point[0] != 4 {
            return Err("is not an uncompressed P-256 point".into());
        }
        Ok(SendgridKey {
            base64: body.trim().to_owned(),
            point: point.to_vec(),
        })
    }
}

impl fmt::Debug for SendgridKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A public key: nothing to hide.
        f.debug_tuple("SendgridKey").field(&self.base64).finish()
    }
}

/// An HMAC key: `feedback.mailgun.signing_key` (used as its text, as
/// Mailgun documents) or `feedback.resend.secret` (`whsec_` + base64: the
/// key is the decoded bytes, as Svix documents).
#[derive(Clone, PartialEq, Eq)]
pub struct HmacSecret(pub Vec<u8>);

impl HmacSecret {
    pub fn mailgun(text: &str) -> Result<HmacSecret, String> {
        let text = text.trim();
        if text.len() < 16 {
            return Err(
                "is shorter than 16 characters (use the HTTP webhook signing key Mailgun shows)"
                    .into(),
            );
        }
        Ok(HmacSecret(text.as_bytes().to_vec()))
    }

    pub fn svix(text: &str) -> Result<HmacSecret, String> {
        let encoded = text.trim().strip_prefix("whsec_").ok_or_else(|| {
            "does not start with whsec_ (use the signing secret Resend shows)".to_owned()
        })?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| "is not whsec_ followed by base64".to_owned())?;
        if key.len() < 16 {
            return Err("holds fewer than 16 bytes".into());
        }
        Ok(HmacSecret(key))
    }
}

impl fmt::Debug for HmacSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacSecret(***)")
    }
}

/// One entry of `feedback.ses.allowed_cert_hosts`: a host name where `*`
/// stands for exactly one DNS label (`sns.*.amazonaws.com` takes
/// `sns.eu-west-1.amazonaws.com`, not `sns.evil.example.amazonaws.com`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertHost(String);

impl CertHost {
    pub fn parse(text: &str) -> Result<CertHost, String> {
        let host = text.trim().to_ascii_lowercase();
        let ok = !host.is_empty()
            && host.split('.').all(|label| {
                label == "*"
                    || (!label.is_empty()
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
            });
        if !ok {
            return Err(format!(
                "{text:?} is not a host name (labels of letters, digits and -, or * for one label)"
            ));
        }
        Ok(CertHost(host))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        let want: Vec<&str> = self.0.split('.').collect();
        let got: Vec<&str> = host.split('.').collect();
        want.len() == got.len()
            && want
                .iter()
                .zip(&got)
                .all(|(w, g)| (*w == "*" && !g.is_empty()) || w == g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_star_is_one_label() {
        let pattern = CertHost::parse("sns.*.amazonaws.com").unwrap();
        assert!(pattern.matches("sns.us-east-1.amazonaws.com"));
        assert!(pattern.matches("SNS.eu-west-1.AMAZONAWS.com"));
        assert!(!pattern.matches("sns.amazonaws.com"));
        assert!(!pattern.matches("sns.a.b.amazonaws.com"));
        assert!(!pattern.matches("sns.us-east-1.amazonaws.com.evil.example"));
        assert!(!pattern.matches("evil.example"));
        assert!(CertHost::parse("sns/x").is_err());
        assert!(CertHost::parse("").is_err());
    }

    #[test]
    fn secrets_parse_as_documented() {
        assert!(HmacSecret::svix("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        assert!(HmacSecret::svix("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(HmacSecret::mailgun("short").is_err());
        assert!(
            format!("{:?}", HmacSecret::mailgun("key-0123456789abcdef").unwrap()).contains("***")
        );
        // An RSA SPKI is refused; garbage too.
        assert!(SendgridKey::parse("not base64!").is_err());
        // A P-256 verification key in the form SendGrid shows.
        let key = SendgridKey::parse(
            "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==",
        )
        .unwrap();
        assert_eq!(key.point.len(), 65);
    }
}
