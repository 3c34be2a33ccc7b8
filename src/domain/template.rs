//! The names of the emails this daemon sends: what the service queues, what
//! the outbox stores and what the mailer renders (`mail::templates`).

use serde::{Serialize, Serializer};

/// The emails this daemon sends. The string form is the file stem on disk
/// and the value of the outbox's `template` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TemplateName {
    MemberInvitation,
    InvitationAccepted,
    /// R32: the member invitation again; the same context keys.
    Reminder,
    /// R20: to the owner and managers of a business another one invites to
    /// be its partner (direction `invite`).
    PartnerInvitation,
    /// R20: to the owner and managers of a business another one asks for
    /// access (direction `request`). Same subject and keys as `PartnerInvitation`.
    PartnerRequest,
    /// R44, R46: to the inviter, when the member invitation email was
    /// given up, bounced or complained about: "We couldn't deliver your
    /// invitation to …", saying the address can be corrected.
    DeliveryFailed,
    /// R51: to the owner and each member with `members.invite`: "{name}
    /// asked to join {business}", with a button to the request.
    JoinRequest,
    /// R51: to the user who asked, when the request was approved or denied.
    JoinRequestAnswered,
}

impl TemplateName {
    pub const ALL: [TemplateName; 8] = [
        TemplateName::MemberInvitation,
        TemplateName::InvitationAccepted,
        TemplateName::Reminder,
        TemplateName::PartnerInvitation,
        TemplateName::PartnerRequest,
        TemplateName::DeliveryFailed,
        TemplateName::JoinRequest,
        TemplateName::JoinRequestAnswered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TemplateName::MemberInvitation => "member_invitation",
            TemplateName::InvitationAccepted => "invitation_accepted",
            TemplateName::Reminder => "reminder",
            TemplateName::PartnerInvitation => "partner_invitation",
            TemplateName::PartnerRequest => "partner_request",
            TemplateName::DeliveryFailed => "delivery_failed",
            TemplateName::JoinRequest => "join_request",
            TemplateName::JoinRequestAnswered => "join_request_answered",
        }
    }

    pub fn parse(raw: &str) -> Option<TemplateName> {
        TemplateName::ALL
            .into_iter()
            .find(|name| name.as_str() == raw)
    }
}

/// As its string form (event data names the template of an email).
impl Serialize for TemplateName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in TemplateName::ALL {
            assert_eq!(TemplateName::parse(name.as_str()), Some(name));
            assert_eq!(serde_json::to_value(name).unwrap(), name.as_str());
        }
        assert_eq!(TemplateName::parse("nope"), None);
    }
}
