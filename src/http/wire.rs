//! The JSON the API answers with, built from store records. Field names and
//! shapes here are the v1 interface (docs/api.md): change them only with it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::access::InvitationGrant;
use crate::domain::quota::QuotaStatus;
use crate::store::{
    BusinessRecord, DeliveryRecord, InvitationRecord, MemberRecord, TimelineEntry, UserRecord,
};

/// `{"items": [...]}`: a whole, unpaginated list.
#[derive(Serialize, ToSchema)]
pub struct Items<T> {
    pub items: Vec<T>,
}

/// `{"items": [...], "next_cursor": ...}`: one page of a list.
#[derive(Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `?cursor=` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UserJson {
    pub user_id: String,
    pub email: String,
    pub display_name: Option<String>,
    pub locale: String,
    /// The user's IANA time zone (R41), or `null`.
    #[schema(example = "America/Los_Angeles")]
    pub time_zone: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&UserRecord> for UserJson {
    fn from(u: &UserRecord) -> Self {
        UserJson {
            user_id: u.user_id.as_str().to_string(),
            email: u.email.as_str().to_string(),
            display_name: u.display_name.clone(),
            locale: u.locale.as_str().to_string(),
            time_zone: u.time_zone.map(|z| z.as_str().to_string()),
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct BusinessJson {
    /// The internal id, used in paths.
    #[schema(value_type = uuid::Uuid)]
    pub id: String,
    /// The public Business ID partners type in.
    pub business_id: String,
    pub name: String,
    #[schema(value_type = super::openapi::values::RolePreset)]
    pub role_preset: &'static str,
    pub seat_limit: Option<u32>,
    pub locale: Option<String>,
    #[schema(value_type = super::openapi::values::TwoFactorPolicy)]
    pub require_2fa: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&BusinessRecord> for BusinessJson {
    fn from(b: &BusinessRecord) -> Self {
        BusinessJson {
            id: b.id.to_string(),
            business_id: b.public_id.as_str().to_string(),
            name: b.name.clone(),
            role_preset: b.role_preset.as_str(),
            seat_limit: b.seat_limit,
            locale: b.locale.as_ref().map(|l| l.as_str().to_string()),
            require_2fa: b.require_2fa.as_str().to_string(),
            created_at: b.created_at,
            updated_at: b.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MemberJson {
    pub user_id: String,
    pub email: String,
    pub role: String,
    pub joined_at: DateTime<Utc>,
}

impl From<&MemberRecord> for MemberJson {
    fn from(m: &MemberRecord) -> Self {
        MemberJson {
            user_id: m.user_id.as_str().to_string(),
            email: m.email.as_str().to_string(),
            role: m.role.as_str().to_string(),
            joined_at: m.joined_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryJson {
    #[schema(value_type = super::openapi::values::DeliveryStatus)]
    pub status: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
}

impl From<&DeliveryRecord> for DeliveryJson {
    fn from(d: &DeliveryRecord) -> Self {
        DeliveryJson {
            status: d.status.as_str().to_string(),
            attempts: d.attempts,
            last_error: d.last_error.clone(),
            sent_at: d.sent_at,
        }
    }
}

/// The invitation object of docs/api.md, and nothing more: the token nonce, who
/// accepted and what it renewed stay inside.
#[derive(Serialize, ToSchema)]
pub struct InvitationJson {
    #[schema(value_type = uuid::Uuid)]
    pub id: String,
    #[schema(value_type = super::openapi::values::InvitationKind)]
    pub kind: &'static str,
    /// The sending business (internal id).
    #[schema(value_type = uuid::Uuid)]
    pub business_id: String,
    pub invited_by: String,
    /// Member invitations only.
    pub email: Option<String>,
    /// Partner invitations only: the receiving business (internal id).
    #[schema(value_type = Option<uuid::Uuid>)]
    pub partner_business_id: Option<String>,
    pub role: Option<String>,
    pub message: Option<String>,
    pub locale: String,
    /// The profile grants the invitation carries:
    /// `[{"profile_id": "<uuid>", "permission": "publisher"}]`.
    #[schema(value_type = Vec<Object>)]
    pub grants: serde_json::Value,
    #[schema(value_type = super::openapi::values::InvitationStatus)]
    pub status: &'static str,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The invitation this one renewed (R31), if any.
    #[schema(value_type = Option<uuid::Uuid>)]
    pub renewed_from: Option<String>,
    /// `null` while no invitation email exists (partner invitations, and
    /// member invitations with `delivery_mode: "none"`).
    pub delivery: Option<DeliveryJson>,
    /// R38: `email`, or `none` when the app delivers the invitation itself.
    #[schema(value_type = super::openapi::values::DeliveryMode)]
    pub delivery_mode: &'static str,
    /// R39: the app's own data, as given at creation (`{}` when none was).
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// R53: the verified domain (R52, mode `auto_invite`) this invitation
    /// was created for when its invitee registered; `null` for any other.
    pub source_domain: Option<String>,
    /// R38: only in the answer that creates (or renews) an invitation with
    /// `delivery_mode: "none"`: its accept link, with the token. Never in a
    /// read of the invitation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_url: Option<String>,
}

impl From<&InvitationRecord> for InvitationJson {
    fn from(i: &InvitationRecord) -> Self {
        InvitationJson {
            id: i.id.to_string(),
            kind: i.kind.as_str(),
            business_id: i.business_id.to_string(),
            invited_by: i.invited_by.as_str().to_string(),
            email: i.email.as_ref().map(|e| e.as_str().to_string()),
            partner_business_id: i.partner_business_id.map(|b| b.to_string()),
            role: i.role.as_ref().map(|r| r.as_str().to_string()),
            message: i.message.clone(),
            locale: i.locale.as_str().to_string(),
            grants: InvitationGrant::to_stored(&i.grants),
            status: i.status.as_str(),
            created_at: i.created_at,
            expires_at: i.expires_at,
            updated_at: i.updated_at,
            renewed_from: i.renewed_from.map(|r| r.to_string()),
            delivery: i.delivery.as_ref().map(DeliveryJson::from),
            delivery_mode: i.delivery_mode.as_str(),
            metadata: i.metadata.to_value(),
            source_domain: i.source_domain.as_ref().map(|d| d.as_str().to_string()),
            accept_url: None,
        }
    }
}

impl InvitationJson {
    /// The invitation as a creation (or renewal) answers it: with the accept
    /// link when the app delivers it itself (R38).
    pub fn created(i: &InvitationRecord, accept_url: Option<String>) -> Self {
        InvitationJson {
            accept_url,
            ..InvitationJson::from(i)
        }
    }
}

/// `POST /v1/invitations/{id}/resend` of an invitation the app delivers
/// itself (R38): the same link again; nothing is sent.
#[derive(Serialize, ToSchema)]
pub struct AcceptUrlJson {
    pub accept_url: String,
}

/// `POST /v1/invitations/accept`, and the accept by id of a member
/// invitation (R37).
#[derive(Serialize, ToSchema)]
pub struct AcceptJson {
    pub invitation: InvitationJson,
    #[schema(required = true)]
    pub membership: Option<MemberJson>,
}

#[derive(Serialize, ToSchema)]
pub struct QuotaJson {
    pub limit: u32,
    pub window_seconds: u64,
    pub used: u32,
    pub remaining: u32,
    pub next_slot_at: Option<DateTime<Utc>>,
}

impl From<&QuotaStatus> for QuotaJson {
    fn from(q: &QuotaStatus) -> Self {
        QuotaJson {
            limit: q.limit,
            window_seconds: q.window_seconds,
            used: q.used,
            remaining: q.remaining,
            next_slot_at: q.next_slot_at,
        }
    }
}

/// One timeline item (R34): `type` is the event type, `delivery_attempt` or
/// `delivery_feedback`.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum TimelineItemJson {
    /// An event of the invitation (`invitation.created`, ...).
    Event {
        #[serde(rename = "type")]
        kind: String,
        at: DateTime<Utc>,
        #[schema(value_type = uuid::Uuid)]
        id: String,
        actor_user_id: Option<String>,
        #[schema(value_type = Option<super::openapi::values::InvitationStatus>)]
        from_status: Option<&'static str>,
        #[schema(value_type = Option<super::openapi::values::InvitationStatus>)]
        to_status: Option<&'static str>,
        data: serde_json::Value,
    },
    /// One attempt to deliver an email of the invitation.
    Delivery {
        /// Always `delivery_attempt`.
        #[serde(rename = "type")]
        kind: &'static str,
        at: DateTime<Utc>,
        id: String,
        template: String,
        recipient: String,
        outcome: String,
        smtp_code: Option<u16>,
        detail: Option<String>,
        duration_ms: u32,
    },
    /// A bounce or complaint that came back about an email of the
    /// invitation (R44); a soft bounce shows only here.
    Feedback {
        /// Always `delivery_feedback`.
        #[serde(rename = "type")]
        kind: &'static str,
        at: DateTime<Utc>,
        id: String,
        template: String,
        recipient: String,
        /// `hard_bounce`, `soft_bounce` or `complaint`.
        feedback: String,
        /// Where it came from: `smtp` (the inbound listener) or the provider
        /// (`ses`, `postmark`, `sendgrid`, `mailgun`, `resend`).
        source: String,
        /// The RFC 3463 status code (`5.1.1`), or the complaint's feedback type.
        status_code: Option<String>,
        /// The diagnostic text.
        detail: Option<String>,
    },
}

impl From<&TimelineEntry> for TimelineItemJson {
    fn from(entry: &TimelineEntry) -> Self {
        match entry {
            TimelineEntry::Event {
                id,
                event_type,
                at,
                actor_user_id,
                from_status,
                to_status,
                data,
            } => TimelineItemJson::Event {
                kind: event_type.clone(),
                at: *at,
                id: id.to_string(),
                actor_user_id: actor_user_id.clone(),
                from_status: from_status.map(|s| s.as_str()),
                to_status: to_status.map(|s| s.as_str()),
                data: data.clone(),
            },
            TimelineEntry::Delivery {
                id,
                at,
                template,
                recipient,
                outcome,
                smtp_code,
                detail,
                duration_ms,
            } => TimelineItemJson::Delivery {
                kind: "delivery_attempt",
                at: *at,
                id: id.to_string(),
                template: template.clone(),
                recipient: recipient.clone(),
                outcome: outcome.clone(),
                smtp_code: *smtp_code,
                detail: detail.clone(),
                duration_ms: *duration_ms,
            },
            TimelineEntry::Feedback {
                id,
                at,
                template,
                recipient,
                kind,
                source,
                status_code,
                detail,
            } => TimelineItemJson::Feedback {
                kind: "delivery_feedback",
                at: *at,
                id: id.to_string(),
                template: template.clone(),
                recipient: recipient.clone(),
                feedback: kind.clone(),
                source: source.clone(),
                status_code: status_code.clone(),
                detail: detail.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use uuid::Uuid;

    use super::*;
    use crate::domain::{
        BusinessId, Email, InvitationId, InvitationKind, InvitationStatus, Locale, Role,
        TokenNonce, UserId,
    };

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    fn invitation() -> InvitationRecord {
        InvitationRecord {
            id: InvitationId::new(),
            business_id: BusinessId::new(),
            kind: InvitationKind::Member,
            invited_by: UserId::parse("u1").unwrap(),
            email: Some(Email::parse("a@b.example").unwrap()),
            partner_business_id: None,
            role: Some(Role::from_stored("employee")),
            message: None,
            locale: Locale::parse("fr-FR").unwrap(),
            grants: Vec::new(),
            token_nonce: TokenNonce(vec![1, 2, 3]),
            status: InvitationStatus::Pending,
            created_at: at(0),
            expires_at: at(7 * 86_400),
            updated_at: at(0),
            accepted_by: None,
            renewed_from: None,
            delivery_mode: crate::domain::DeliveryMode::Email,
            metadata: crate::domain::Metadata::default(),
            source_domain: None,
            delivery: None,
        }
    }

    #[test]
    fn an_invitation_has_exactly_the_api_fields() {
        let json = serde_json::to_value(InvitationJson::from(&invitation())).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "business_id",
                "created_at",
                "delivery",
                "delivery_mode",
                "email",
                "expires_at",
                "grants",
                "id",
                "invited_by",
                "kind",
                "locale",
                "message",
                "metadata",
                "partner_business_id",
                "renewed_from",
                "role",
                "source_domain",
                "status",
                "updated_at"
            ]
        );
        assert_eq!(json["delivery"], serde_json::Value::Null);
        assert_eq!(json["delivery_mode"], "email");
        assert_eq!(json["metadata"], serde_json::json!({}));
        assert_eq!(json["status"], "pending");
        assert_eq!(json["created_at"], "2027-01-15T08:00:00Z");
    }

    /// R38: the accept link is in a creation's answer only, when given.
    #[test]
    fn only_a_creation_answer_carries_the_accept_url() {
        let inv = invitation();
        let read = serde_json::to_value(InvitationJson::from(&inv)).unwrap();
        assert!(read.get("accept_url").is_none());
        let emailed = serde_json::to_value(InvitationJson::created(&inv, None)).unwrap();
        assert!(emailed.get("accept_url").is_none());
        let own = serde_json::to_value(InvitationJson::created(
            &inv,
            Some("https://x/a?t=1".into()),
        ))
        .unwrap();
        assert_eq!(own["accept_url"], "https://x/a?t=1");
    }

    #[test]
    fn timeline_items_carry_their_type_and_time() {
        let event = TimelineEntry::Event {
            id: Uuid::now_v7(),
            event_type: "invitation.created".into(),
            at: at(0),
            actor_user_id: Some("u1".into()),
            from_status: None,
            to_status: Some(InvitationStatus::Pending),
            data: serde_json::json!({}),
        };
        let json = serde_json::to_value(TimelineItemJson::from(&event)).unwrap();
        assert_eq!(json["type"], "invitation.created");
        assert_eq!(json["to_status"], "pending");
        let delivery = TimelineEntry::Delivery {
            id: Uuid::now_v7(),
            at: at(5),
            template: "member_invitation".into(),
            recipient: "a@b.example".into(),
            outcome: "sent".into(),
            smtp_code: Some(250),
            detail: None,
            duration_ms: 12,
        };
        let json = serde_json::to_value(TimelineItemJson::from(&delivery)).unwrap();
        assert_eq!(json["type"], "delivery_attempt");
        assert_eq!(json["smtp_code"], 250);
        assert_eq!(json["at"], "2027-01-15T08:00:05Z");
    }
}
