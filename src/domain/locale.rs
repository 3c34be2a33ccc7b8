//! `Locale`: a BCP 47 language tag in its canonical case (`fr-CA`, `zh-TW`,
//! `zh-Hant-TW`). A well-formed tag without templates of its own is not an error
//! (R18); the mail module falls back along `fr-CA -> fr -> en-US` (R25).

use std::fmt;

use super::DomainError;

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Locale(String);

impl Locale {
    pub fn parse(raw: &str) -> Result<Locale, String> {
        let mut parts = raw.split(['-', '_']);
        let language = parts.next().unwrap_or_default();
        if !(2..=3).contains(&language.len()) || !language.bytes().all(|b| b.is_ascii_alphabetic())
        {
            return Err("not a language tag (like en-US or fr-CA)".into());
        }
        let mut out = language.to_ascii_lowercase();
        let mut seen_region = false;
        for (i, part) in parts.enumerate() {
            let alpha = part.bytes().all(|b| b.is_ascii_alphabetic());
            let digit = part.bytes().all(|b| b.is_ascii_digit());
            let canonical = match part.len() {
                4 if i == 0 && alpha => {
                    let mut s = part.to_ascii_lowercase();
                    s[..1].make_ascii_uppercase();
                    s
                }
                2 if alpha && !seen_region => {
                    seen_region = true;
                    part.to_ascii_uppercase()
                }
                3 if digit && !seen_region => {
                    seen_region = true;
                    part.to_string()
                }
                _ => return Err("not a language tag (like en-US or fr-CA)".into()),
            };
            out.push('-');
            out.push_str(&canonical);
        }
        Ok(Locale(out))
    }

    pub fn parse_field(raw: &str, field: &str) -> Result<Locale, DomainError> {
        Locale::parse(raw).map_err(|m| DomainError::validation(field, m))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Locale({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonicalises_well_formed_tags() {
        for (raw, want) in [
            ("en-US", "en-US"),
            ("fr-ca", "fr-CA"),
            ("zh_tw", "zh-TW"),
            ("zh-hant-tw", "zh-Hant-TW"),
            ("de", "de"),
            ("es-419", "es-419"),
        ] {
            assert_eq!(Locale::parse(raw).unwrap().as_str(), want, "{raw}");
        }
    }

    #[test]
    fn refuses_malformed_tags() {
        for raw in [
            "",
            "e",
            "english",
            "en-",
            "en-USA-x",
            "en US",
            "fr-CA\r\n",
            "12-US",
        ] {
            assert!(Locale::parse(raw).is_err(), "{raw:?}");
        }
    }
}
