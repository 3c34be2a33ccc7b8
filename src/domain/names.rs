//! Names that people read in emails: a user's display name and a business's
//! name. Both go into subjects and bodies (R30), so both refuse what would
//! change how the text around them reads: control characters (a CR/LF could
//! start a new header), and (R41) the invisible characters that reorder or
//! hide text: bidirectional overrides, embeddings, isolates and marks, and
//! zero-width characters. A business name with a right-to-left override
//! (U+202E) before "moc.live" shows in a subject as "evil.com"; a
//! zero-width space makes two names that look the same differ.

use std::fmt;

use super::DomainError;

/// The longest name, in characters, once trimmed.
pub const MAX_NAME_CHARS: usize = 200;

/// A character that changes how the text around it is displayed without
/// showing itself: U+202A–U+202E (embeddings and overrides), U+2066–U+2069
/// (isolates), U+200E, U+200F, U+061C (marks), U+200B–U+200D, U+2060 and
/// U+FEFF (zero-width).
pub fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{200B}'..='\u{200F}'
            | '\u{061C}'
            | '\u{2060}'
            | '\u{FEFF}'
    )
}

/// The shared rule: trimmed, 1 to 200 characters, none of them a control
/// or an invisible formatting character.
fn parse_name(raw: &str, field: &str, empty: &str) -> Result<String, DomainError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(DomainError::validation(
            field,
            format!("must be 1 to {MAX_NAME_CHARS} characters{empty}"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(DomainError::validation(
            field,
            "must not contain control characters",
        ));
    }
    if let Some(c) = name.chars().find(|c| is_invisible_format(*c)) {
        return Err(DomainError::validation(
            field,
            format!(
                "must not contain bidirectional-control or zero-width characters (found U+{:04X})",
                c as u32
            ),
        ));
    }
    Ok(name.to_string())
}

/// A user's display name (`PUT /v1/users/{user_id}`).
#[derive(Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse_field(raw: &str, field: &str) -> Result<DisplayName, DomainError> {
        parse_name(raw, field, " (or null)").map(DisplayName)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A business's name (and a profile's, which is written the same way).
#[derive(Clone, PartialEq, Eq)]
pub struct BusinessName(String);

impl BusinessName {
    pub fn parse_field(raw: &str, field: &str) -> Result<BusinessName, DomainError> {
        parse_name(raw, field, "").map(BusinessName)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DisplayName({:?})", self.0)
    }
}

impl fmt::Debug for BusinessName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BusinessName({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(e: DomainError) -> String {
        match e {
            DomainError::Validation { field, .. } => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            DisplayName::parse_field("  Ada Lovelace ", "display_name")
                .unwrap()
                .as_str(),
            "Ada Lovelace"
        );
        assert_eq!(
            BusinessName::parse_field("Analytical Engines", "name")
                .unwrap()
                .as_str(),
            "Analytical Engines"
        );
        // Right-to-left scripts and other non-ASCII letters are names.
        for ok in ["مؤسسة", "שלום", "Zoë & Søren", "日本"] {
            assert!(BusinessName::parse_field(ok, "name").is_ok(), "{ok}");
        }
        for bad in ["", "   ", "Ada\r\nBcc: x@y.example", &"x".repeat(201)] {
            let e = DisplayName::parse_field(bad, "display_name").unwrap_err();
            assert_eq!(field(e), "display_name", "{bad:?}");
        }
    }

    #[test]
    fn bidi_controls_and_zero_width_characters_are_refused() {
        let refused = [
            '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}',
            '\u{2068}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}', '\u{200B}', '\u{200C}',
            '\u{200D}', '\u{2060}', '\u{FEFF}',
        ];
        for c in refused {
            let name = format!("Acme{c}Corp");
            let e = BusinessName::parse_field(&name, "name").unwrap_err();
            assert_eq!(field(e), "name", "U+{:04X}", c as u32);
            let e = DisplayName::parse_field(&name, "display_name").unwrap_err();
            assert_eq!(field(e), "display_name", "U+{:04X}", c as u32);
        }
        // Their neighbours are not.
        for c in ['\u{200A}', '\u{2010}', '\u{2029}', '\u{206A}', '\u{FEFE}'] {
            let name = format!("Acme{c}Corp");
            assert_eq!(
                BusinessName::parse_field(&name, "name").is_ok(),
                !c.is_control() && !is_invisible_format(c),
                "U+{:04X}",
                c as u32
            );
        }
    }
}
