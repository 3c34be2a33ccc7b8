//! Amazon SES through SNS. SNS signs each message (`SignatureVersion` 1:
//! SHA1withRSA, 2: SHA256withRSA) with the key of the certificate at
//! `SigningCertURL`; that URL must be https and its host one of
//! `feedback.ses.allowed_cert_hosts`, checked before anything is fetched
//! (otherwise anyone could sign with a certificate of their own). The
//! certificate is fetched without following redirects and kept in memory.
//!
//! A `SubscriptionConfirmation` is verified and logged with its
//! `SubscribeURL`, never followed: the operator confirms the subscription
//! (docs/operations.md). Confirming whatever arrives would let anyone's SNS
//! topic subscribe this endpoint; confirmed by hand, only the operator's
//! topic delivers here, which is what keeps another AWS account's
//! (validly signed) notifications out.
//!
//! A `Notification`'s `Message` is the SES notification: `notificationType`
//! (or `eventType`, for configuration-set event publishing) `Bounce`, with
//! `bounceType` `Permanent` (hard) or `Transient`/`Undetermined` (soft), or
//! `Complaint`; one feedback per recipient.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

use super::keys::CertHost;
use super::{Provider, Refused, Webhook, feedback, json, status_in};
use crate::feedback::{Feedback, FeedbackKind, FeedbackSource};

/// Certificates kept at most (SNS uses one per region, rotated rarely).
const CACHE: usize = 16;
/// A certificate is a few KiB; more is not one.
const MAX_CERT: usize = 64 * 1024;

pub struct Ses {
    hosts: Vec<CertHost>,
    plain_http: bool,
    client: reqwest::Client,
    certs: Mutex<HashMap<String, Vec<u8>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SnsMessage {
    #[serde(rename = "Type")]
    kind: String,
    message_id: String,
    topic_arn: String,
    subject: Option<String>,
    message: String,
    timestamp: String,
    signature_version: String,
    signature: String,
    #[serde(rename = "SigningCertURL")]
    signing_cert_url: String,
    token: Option<String>,
    #[serde(rename = "SubscribeURL")]
    subscribe_url: Option<String>,
}

impl SnsMessage {
    /// The text SNS signed: the named fields as `name\nvalue\n`, in this
    /// order (AWS documents one list per message type).
    fn string_to_sign(&self) -> Result<String, Refused> {
        let mut fields: Vec<(&str, &str)> =
            vec![("Message", &self.message), ("MessageId", &self.message_id)];
        match self.kind.as_str() {
            "Notification" => {
                if let Some(subject) = &self.subject {
                    fields.push(("Subject", subject));
                }
                fields.push(("Timestamp", &self.timestamp));
            }
            "SubscriptionConfirmation" | "UnsubscribeConfirmation" => {
                let missing = || {
                    Refused::Unauthenticated(
                        "a subscription message without SubscribeURL and Token".into(),
                    )
                };
                fields.push((
                    "SubscribeURL",
                    self.subscribe_url.as_deref().ok_or_else(missing)?,
                ));
                fields.push(("Timestamp", &self.timestamp));
                fields.push(("Token", self.token.as_deref().ok_or_else(missing)?));
            }
            other => {
                return Err(Refused::Unauthenticated(format!(
                    "{other:?} is not an SNS message type"
                )));
            }
        }
        fields.push(("TopicArn", &self.topic_arn));
        fields.push(("Type", &self.kind));
        Ok(fields.iter().map(|(k, v)| format!("{k}\n{v}\n")).collect())
    }
}

impl Ses {
    pub fn new(hosts: Vec<CertHost>, plain_http: bool) -> Ses {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a plain reqwest client builds");
        Ses {
            hosts,
            plain_http,
            client,
            certs: Mutex::new(HashMap::new()),
        }
    }

    pub(super) async fn read(&self, hook: &Webhook<'_>) -> Result<Vec<Feedback>, Refused> {
        let sns: SnsMessage = serde_json::from_slice(hook.body)
            .map_err(|e| Refused::Unauthenticated(format!("not a signed SNS message: {e}")))?;
        let algorithm: &'static dyn ring::signature::VerificationAlgorithm =
            match sns.signature_version.as_str() {
                "1" => &ring::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
                "2" => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                other => {
                    return Err(Refused::Unauthenticated(format!(
                        "SignatureVersion {other:?} is not 1 or 2"
                    )));
                }
            };
        let url = self.allowed(&sns.signing_cert_url)?;
        let signed = sns.string_to_sign()?;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(sns.signature.trim())
            .map_err(|_| Refused::Unauthenticated("the Signature is not base64".into()))?;
        let key = rsa_key(&self.certificate(url).await?)?;
        ring::signature::UnparsedPublicKey::new(algorithm, &key)
            .verify(signed.as_bytes(), &signature)
            .map_err(|_| Refused::Unauthenticated("the SNS signature does not verify".into()))?;

        match sns.kind.as_str() {
            "Notification" => notification(&sns.message),
            kind => {
                tracing::warn!(
                    topic = %sns.topic_arn,
                    subscribe_url = sns.subscribe_url.as_deref().unwrap_or(""),
                    "SNS {kind} for /feedback/ses: not followed; if this is your topic, confirm the subscription by opening the SubscribeURL"
                );
                Ok(Vec::new())
            }
        }
    }

    /// The certificate URL, if it is one we may fetch.
    fn allowed(&self, text: &str) -> Result<url::Url, Refused> {
        let url = url::Url::parse(text)
            .map_err(|_| Refused::Unauthenticated("the SigningCertURL is not a URL".into()))?;
        let scheme_ok = url.scheme() == "https" || (self.plain_http && url.scheme() == "http");
        let host_ok = url
            .host_str()
            .is_some_and(|h| self.hosts.iter().any(|pattern| pattern.matches(h)));
        if !scheme_ok || !host_ok || url.username() != "" || url.password().is_some() {
            return Err(Refused::Unauthenticated(format!(
                "the SigningCertURL {text} is not an https URL on an allowed host (feedback.ses.allowed_cert_hosts)"
            )));
        }
        Ok(url)
    }

    async fn certificate(&self, url: url::Url) -> Result<Vec<u8>, Refused> {
        if let Some(pem) = self.certs.lock().expect("not poisoned").get(url.as_str()) {
            return Ok(pem.clone());
        }
        let unavailable = |e: &dyn std::fmt::Display| {
            Refused::CertUnavailable(format!("fetching the SNS certificate {url}: {e}"))
        };
        let response = self
            .client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        if !response.status().is_success() {
            // The host is AWS's and answers: this URL holds no certificate.
            return Err(Refused::Unauthenticated(format!(
                "the SigningCertURL answered {}",
                response.status()
            )));
        }
        let body = response.bytes().await.map_err(|e| unavailable(&e))?;
        if body.len() > MAX_CERT {
            return Err(Refused::Unauthenticated(
                "the SigningCertURL is no certificate".into(),
            ));
        }
        let pem = body.to_vec();
        let mut certs = self.certs.lock().expect("not poisoned");
        if certs.len() >= CACHE {
            certs.clear();
        }
        certs.insert(url.to_string(), pem.clone());
        Ok(pem)
    }
}

/// rsaEncryption (RFC 8017).
const RSA: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// The RSA public key (PKCS#1 DER, what ring verifies with) of a PEM
/// certificate.
fn rsa_key(pem: &[u8]) -> Result<Vec<u8>, Refused> {
    use spki::der::Decode as _;
    let bad = |why: &str| Refused::Unauthenticated(format!("the SNS certificate {why}"));
    let text = std::str::from_utf8(pem).map_err(|_| bad("is not PEM"))?;
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|_| bad("is not PEM"))?;
    let der = rustls::pki_types::CertificateDer::from(der);
    let cert = webpki::EndEntityCert::try_from(&der).map_err(|_| bad("is not X.509"))?;
    let spki_der = cert.subject_public_key_info();
    let info = spki::SubjectPublicKeyInfoRef::from_der(spki_der.as_ref())
        .map_err(|_| bad("has no readable public key"))?;
    if info.algorithm.oid != RSA {
        return Err(bad("has no RSA key"));
    }
    info.subject_public_key
        .as_bytes()
        .map(<[u8]>::to_vec)
        .ok_or_else(|| bad("has a malformed key"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesNotification {
    notification_type: Option<String>,
    event_type: Option<String>,
    bounce: Option<SesBounce>,
    complaint: Option<SesComplaint>,
    #[serde(default)]
    mail: SesMail,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesBounce {
    bounce_type: String,
    bounce_sub_type: Option<String>,
    bounced_recipients: Vec<SesRecipient>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesComplaint {
    complained_recipients: Vec<SesRecipient>,
    complaint_feedback_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesRecipient {
    email_address: String,
    status: Option<String>,
    diagnostic_code: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SesMail {
    #[serde(default)]
    headers: Vec<SesHeader>,
    common_headers: Option<SesCommonHeaders>,
}

#[derive(Deserialize)]
struct SesHeader {
    name: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesCommonHeaders {
    message_id: Option<String>,
}

fn notification(message: &str) -> Result<Vec<Feedback>, Refused> {
    let n: SesNotification = json(Provider::Ses, message.as_bytes())?;
    let kind = n.notification_type.or(n.event_type).unwrap_or_default();
    // The headers as we sent them carry our Message-ID; SES's own
    // replaces it on the way out, and is what commonHeaders may show.
    let message_id = n
        .mail
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("message-id"))
        .map(|h| h.value.clone())
        .or_else(|| n.mail.common_headers.and_then(|c| c.message_id));
    let source = FeedbackSource::Ses;
    match kind.as_str() {
        "Bounce" => {
            let bounce = n
                .bounce
                .ok_or_else(|| Refused::Malformed("an SES Bounce without its bounce".into()))?;
            let hard = bounce.bounce_type == "Permanent";
            Ok(bounce
                .bounced_recipients
                .into_iter()
                .map(|r| {
                    let detail = r.diagnostic_code.or_else(|| {
                        Some(format!(
                            "{} {}",
                            bounce.bounce_type,
                            bounce.bounce_sub_type.as_deref().unwrap_or("")
                        ))
                    });
                    let status = r
                        .status
                        .filter(|s| status_in(s).is_some())
                        .or_else(|| detail.as_deref().and_then(status_in));
                    feedback(
                        source,
                        if hard {
                            FeedbackKind::HardBounce
                        } else {
                            FeedbackKind::SoftBounce
                        },
                        Some(r.email_address),
                        message_id.clone(),
                        status,
                        detail,
                    )
                })
                .collect())
        }
        "Complaint" => {
            let complaint = n.complaint.ok_or_else(|| {
                Refused::Malformed("an SES Complaint without its complaint".into())
            })?;
            let kind = complaint
                .complaint_feedback_type
                .unwrap_or_else(|| "abuse".into());
            Ok(complaint
                .complained_recipients
                .into_iter()
                .map(|r| {
                    feedback(
                        source,
                        FeedbackKind::Complaint,
                        Some(r.email_address),
                        message_id.clone(),
                        Some(kind.clone()),
                        None,
                    )
                })
                .collect())
        }
        // Deliveries, sends, opens: not failures.
        _ => Ok(Vec::new()),
    }
}
