//! The VERP return path (`mail.return_path`, R43 b): every email's SMTP
//! envelope sender names the email (`bounces+{id}@bounces.example.com`, with
//! `{id}` its outbox id), so the bounce a receiving server sends back to it
//! says which email bounced, whatever the bounce looks like inside.

use std::fmt;
use std::str::FromStr;

use lettre::Address;
use uuid::Uuid;

const PLACEHOLDER: &str = "{id}";

/// A parsed `mail.return_path`: the local part around `{id}`, and the
/// domain, which is also the only domain the feedback listener takes mail for.
#[derive(Clone, PartialEq, Eq)]
pub struct ReturnPath {
    text: String,
    prefix: String,
    suffix: String,
    domain: String,
}

impl ReturnPath {
    /// The envelope sender of the email `id`.
    pub fn address_for(&self, id: Uuid) -> Address {
        Address::new(format!("{}{id}{}", self.prefix, self.suffix), &self.domain)
            .expect("checked when the configuration was loaded")
    }

    /// The email a recipient address of the return path names, if it is one
    /// (any case; the id must be a uuid).
    pub fn id_of(&self, address: &str) -> Option<Uuid> {
        let address = address.trim().trim_start_matches('<').trim_end_matches('>');
        let (local, domain) = address.rsplit_once('@')?;
        if !domain.eq_ignore_ascii_case(&self.domain) {
            return None;
        }
        let lower = local.to_ascii_lowercase();
        let inner = lower
            .strip_prefix(&self.prefix.to_ascii_lowercase())?
            .strip_suffix(&self.suffix.to_ascii_lowercase())?;
        Uuid::parse_str(inner).ok()
    }

    /// Whether `address` is in the return path's domain (what the listener
    /// accepts as a recipient).
    pub fn is_in_domain(&self, address: &str) -> bool {
        let address = address.trim().trim_start_matches('<').trim_end_matches('>');
        address.rsplit_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.eq_ignore_ascii_case(&self.domain)
        })
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for ReturnPath {
    type Err = String;

    fn from_str(text: &str) -> Result<ReturnPath, String> {
        let text = text.trim();
        let hint =
            "use an address with {id} in its local part, like bounces+{id}@bounces.example.com";
        let (local, domain) = text
            .rsplit_once('@')
            .ok_or_else(|| format!("{text:?} is not an address ({hint})"))?;
        if local.matches(PLACEHOLDER).count() != 1 || domain.contains(PLACEHOLDER) {
            return Err(format!(
                "{text:?} must contain {{id}} once, in the local part ({hint})"
            ));
        }
        let (prefix, suffix) = local.split_once(PLACEHOLDER).expect("counted above");
        let path = ReturnPath {
            text: text.to_owned(),
            prefix: prefix.to_owned(),
            suffix: suffix.to_owned(),
            domain: domain.to_owned(),
        };
        // lettre writes MAIL FROM, so its parser decides.
        Address::new(format!("{prefix}{}{suffix}", Uuid::nil()), domain)
            .map_err(|_| format!("{text:?} is not an address ({hint})"))?;
        Ok(path)
    }
}

impl fmt::Display for ReturnPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for ReturnPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReturnPath({:?})", self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_email_and_reads_it_back() {
        let rp: ReturnPath = "bounces+{id}@Bounce.Example.com".parse().unwrap();
        let id = Uuid::now_v7();
        let address = rp.address_for(id);
        assert_eq!(
            address.to_string(),
            format!("bounces+{id}@Bounce.Example.com")
        );
        assert_eq!(rp.id_of(address.as_ref()), Some(id));
        assert_eq!(
            rp.id_of(&format!("<BOUNCES+{id}@bounce.example.COM>")),
            Some(id)
        );
        assert_eq!(rp.id_of(&format!("bounces+{id}@other.example")), None);
        assert_eq!(rp.id_of("bounces+nope@bounce.example.com"), None);
        assert!(rp.is_in_domain("postmaster@bounce.example.com"));
        assert!(!rp.is_in_domain("x@example.com"));
    }

    #[test]
    fn refuses_a_template_without_one_id() {
        for bad in [
            "bounces@x.example",
            "{id}{id}@x.example",
            "a@{id}.example",
            "no-at",
            "a b{id}@x.example",
        ] {
            assert!(bad.parse::<ReturnPath>().is_err(), "{bad}");
        }
    }
}
