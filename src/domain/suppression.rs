//! R45: the suppression list's vocabulary. An address on the list is never
//! invited again until it is taken off; why it is there is one of three
//! reasons, and the list is one for the whole daemon (an address that bounced
//! hard for one business bounces for all).

use super::{DomainError, Email};

/// Why an address is on the suppression list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SuppressionReason {
    /// A permanent delivery failure came back for it (R44).
    HardBounce,
    /// Its owner reported our email as spam (R44).
    Complaint,
    /// An operator put it there through the API.
    Manual,
}

impl SuppressionReason {
    pub const ALL: [SuppressionReason; 3] = [
        SuppressionReason::HardBounce,
        SuppressionReason::Complaint,
        SuppressionReason::Manual,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            SuppressionReason::HardBounce => "hard_bounce",
            SuppressionReason::Complaint => "complaint",
            SuppressionReason::Manual => "manual",
        }
    }

    pub fn parse(raw: &str) -> Option<SuppressionReason> {
        Self::ALL.into_iter().find(|r| r.as_str() == raw)
    }

    /// The reason an API caller may give: only `manual` (bounces and
    /// complaints are the feedback's to record, with their evidence).
    pub fn parse_api(raw: &str, field: &str) -> Result<SuppressionReason, DomainError> {
        match Self::parse(raw) {
            Some(SuppressionReason::Manual) => Ok(SuppressionReason::Manual),
            Some(_) => Err(DomainError::validation(
                field,
                "only `manual` can be given; bounces and complaints are recorded by the feedback they come with",
            )),
            None => Err(DomainError::validation(field, "must be `manual`")),
        }
    }
}

impl std::fmt::Display for SuppressionReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One invitee of a request whose address is on the list: the field that
/// names it (`invitees[1].email`), the address and why it is listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuppressedInvitee {
    pub field: String,
    pub email: Email,
    pub reason: SuppressionReason,
}

impl SuppressedInvitee {
    pub fn message(&self) -> String {
        format!(
            "{} is on the suppression list ({}); invite it only after it is taken off",
            self.email, self.reason
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip_and_only_manual_is_given_by_hand() {
        for r in SuppressionReason::ALL {
            assert_eq!(SuppressionReason::parse(r.as_str()), Some(r));
        }
        assert_eq!(SuppressionReason::parse("soft_bounce"), None);
        assert_eq!(
            SuppressionReason::parse_api("manual", "reason").unwrap(),
            SuppressionReason::Manual
        );
        for bad in ["hard_bounce", "complaint", "Manual", ""] {
            assert!(
                matches!(
                    SuppressionReason::parse_api(bad, "reason"),
                    Err(DomainError::Validation { ref field, .. }) if field == "reason"
                ),
                "{bad:?}"
            );
        }
    }
}
