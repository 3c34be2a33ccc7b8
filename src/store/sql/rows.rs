//! One decoder per record, for both adapters: columns are read through
//! [`StoredRow`] and parsed into domain types (a value that does not parse
//! is a corrupt row, reported as such).

use super::StoredRow;
use crate::domain::access::{Grantee, Permission};
use crate::domain::partners::Direction;
use crate::domain::{
    BusinessId, DeliveryMode, GrantId, InvitationId, InvitationKind, Metadata, PartnershipId,
    ProfileId, PublicBusinessId, Role, RolePreset, TimeZone, TokenNonce,
};
use crate::store::stored::{
    corrupt, email, grants, locale, outbox_status, status, template, two_factor, user_id,
};
use crate::store::{
    BusinessRecord, ClaimedEmail, DeliveryRecord, EventPosition, EventRecord, GrantRecord,
    InvitationRecord, MemberRecord, PartnershipRecord, ProfileRecord, StoreResult, TimelineEntry,
    UserRecord,
};

pub(crate) fn user(row: &impl StoredRow) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        user_id: user_id(row.text("user_id")?)?,
        email: email(row.text("email")?)?,
        display_name: row.text_opt("display_name")?,
        locale: locale(row.text("locale")?)?,
        time_zone: time_zone(row.text_opt("time_zone")?),
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

/// A stored time zone. The name was checked when it was written; one the
/// zone database no longer knows (a later release dropped it) reads as no
/// zone, so emails say UTC, rather than making the user's row unreadable.
pub(crate) fn time_zone(stored: Option<String>) -> Option<TimeZone> {
    stored.and_then(|name| TimeZone::parse(&name).ok())
}

pub(crate) fn business(row: &impl StoredRow) -> StoreResult<BusinessRecord> {
    let preset = row.text("role_preset")?;
    let public_id = row.text("public_id")?;
    Ok(BusinessRecord {
        id: BusinessId(row.uuid("id")?),
        public_id: PublicBusinessId::parse(&public_id)
            .map_err(|_| corrupt("business id", &public_id))?,
        name: row.text("name")?,
        role_preset: RolePreset::parse(&preset).ok_or_else(|| corrupt("role preset", &preset))?,
        seat_limit: row.int_opt("seat_limit")?.map(|n| n as u32),
        locale: row.text_opt("locale")?.map(locale).transpose()?,
        require_2fa: two_factor(row.text("require_2fa")?)?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

pub(crate) fn member(row: &impl StoredRow) -> StoreResult<MemberRecord> {
    Ok(MemberRecord {
        business_id: BusinessId(row.uuid("business_id")?),
        user_id: user_id(row.text("user_id")?)?,
        email: email(row.text("email")?)?,
        role: Role::from_stored(&row.text("role")?),
        joined_at: row.time("joined_at")?,
    })
}

pub(crate) fn invitation(row: &impl StoredRow) -> StoreResult<InvitationRecord> {
    let kind = row.text("kind")?;
    let delivery_mode = row.text("delivery_mode")?;
    let delivery = match row.text_opt("delivery_status")? {
        Some(status) => Some(DeliveryRecord {
            status: outbox_status(status)?,
            attempts: row.int("delivery_attempts")? as u32,
            last_error: row.text_opt("delivery_last_error")?,
            sent_at: row.time_opt("delivery_sent_at")?,
        }),
        None => None,
    };
    Ok(InvitationRecord {
        id: InvitationId(row.uuid("id")?),
        business_id: BusinessId(row.uuid("business_id")?),
        kind: InvitationKind::parse(&kind).ok_or_else(|| corrupt("kind", &kind))?,
        invited_by: user_id(row.text("invited_by")?)?,
        email: row.text_opt("email")?.map(email).transpose()?,
        partner_business_id: row.uuid_opt("partner_business_id")?.map(BusinessId),
        role: row.text_opt("role")?.map(|r| Role::from_stored(&r)),
        message: row.text_opt("message")?,
        locale: locale(row.text("locale")?)?,
        grants: grants(row.json("grants")?)?,
        token_nonce: TokenNonce(row.bytes("token_nonce")?),
        status: status(&row.text("status")?)?,
        created_at: row.time("created_at")?,
        expires_at: row.time("expires_at")?,
        updated_at: row.time("updated_at")?,
        accepted_by: row.text_opt("accepted_by")?.map(user_id).transpose()?,
        renewed_from: row.uuid_opt("renewed_from")?.map(InvitationId),
        delivery_mode: DeliveryMode::parse(&delivery_mode)
            .ok_or_else(|| corrupt("delivery mode", &delivery_mode))?,
        metadata: Metadata::from_stored(row.json("metadata")?)
            .ok_or_else(|| corrupt("metadata", "not a JSON object"))?,
        source_domain: row
            .text_opt("source_domain")?
            .map(|d| {
                crate::domain::MailDomain::from_stored(&d).ok_or_else(|| corrupt("domain", &d))
            })
            .transpose()?,
        delivery,
    })
}

pub(crate) fn partnership(row: &impl StoredRow) -> StoreResult<PartnershipRecord> {
    let direction = row.text("direction")?;
    Ok(PartnershipRecord {
        id: PartnershipId(row.uuid("id")?),
        business_id: BusinessId(row.uuid("business_id")?),
        business_name: row.text("business_name")?,
        partner_business_id: BusinessId(row.uuid("partner_business_id")?),
        partner_name: row.text("partner_name")?,
        invitation_id: row.uuid_opt("invitation_id")?.map(InvitationId),
        direction: Direction::parse(&direction).ok_or_else(|| corrupt("direction", &direction))?,
        established_at: row.time("established_at")?,
    })
}

pub(crate) fn profile(row: &impl StoredRow) -> StoreResult<ProfileRecord> {
    Ok(ProfileRecord {
        id: ProfileId(row.uuid("id")?),
        business_id: BusinessId(row.uuid("business_id")?),
        business_name: row.text("business_name")?,
        name: row.text("name")?,
        created_by: user_id(row.text("created_by")?)?,
        created_at: row.time("created_at")?,
    })
}

pub(crate) fn grant(row: &impl StoredRow) -> StoreResult<GrantRecord> {
    let permission = row.text("permission")?;
    let grantee = match (
        row.text_opt("grantee_user_id")?,
        row.uuid_opt("grantee_business_id")?,
    ) {
        (Some(user), None) => Grantee::User(user_id(user)?),
        (None, Some(business)) => Grantee::Business(BusinessId(business)),
        _ => return Err(corrupt("grantee", "both or neither")),
    };
    Ok(GrantRecord {
        id: GrantId(row.uuid("id")?),
        business_id: BusinessId(row.uuid("business_id")?),
        profile_id: ProfileId(row.uuid("profile_id")?),
        permission: Permission::parse(&permission)
            .ok_or_else(|| corrupt("permission", &permission))?,
        grantee,
        holder: BusinessId(row.uuid("holder_business_id")?),
        parent: row.uuid_opt("parent_grant_id")?.map(GrantId),
        granted_by: user_id(row.text("granted_by")?)?,
        invitation_id: row.uuid_opt("invitation_id")?.map(InvitationId),
        created_at: row.time("created_at")?,
    })
}

/// An invitation an expiry sweep moved, with its business.
pub(crate) fn expired(row: &impl StoredRow) -> StoreResult<(InvitationId, BusinessId)> {
    Ok((
        InvitationId(row.uuid("id")?),
        BusinessId(row.uuid("business_id")?),
    ))
}

/// An event of the log, at the position the adapter read it at.
pub(crate) fn event(row: &impl StoredRow, position: EventPosition) -> StoreResult<EventRecord> {
    Ok(EventRecord {
        position,
        id: row.uuid("id")?,
        event_type: row.text("type")?,
        occurred_at: row.time("occurred_at")?,
        business_id: row.uuid_opt("business_id")?.map(BusinessId),
        invitation_id: row.uuid_opt("invitation_id")?.map(InvitationId),
        actor_user_id: row.text_opt("actor_user_id")?,
        from_status: row.text_opt("from_status")?,
        to_status: row.text_opt("to_status")?,
        data: row.json("data")?,
    })
}

pub(crate) fn claimed_email(row: &impl StoredRow) -> StoreResult<ClaimedEmail> {
    Ok(ClaimedEmail {
        id: row.uuid("id")?,
        business_id: BusinessId(row.uuid("business_id")?),
        invitation_id: row.uuid_opt("invitation_id")?.map(InvitationId),
        template: template(row.text("template")?)?,
        locale: row.text("locale")?,
        recipient: row.text("recipient")?,
        recipient_name: row.text_opt("recipient_name")?,
        context: row.json("context")?,
        message_id: row.text("message_id")?,
        attempts: row.int("attempts")? as u32,
        created_at: row.time("created_at")?,
    })
}

/// An event of a timeline. The timeline's rows (these three) name their
/// instant `at`, whatever the table calls it.
pub(crate) fn timeline_event(row: &impl StoredRow) -> StoreResult<TimelineEntry> {
    Ok(TimelineEntry::Event {
        id: row.uuid("id")?,
        event_type: row.text("type")?,
        at: row.time("at")?,
        actor_user_id: row.text_opt("actor_user_id")?,
        from_status: row
            .text_opt("from_status")?
            .map(|s| status(&s))
            .transpose()?,
        to_status: row.text_opt("to_status")?.map(|s| status(&s)).transpose()?,
        data: row.json("data")?,
    })
}

pub(crate) fn timeline_delivery(row: &impl StoredRow) -> StoreResult<TimelineEntry> {
    Ok(TimelineEntry::Delivery {
        id: row.uuid("id")?,
        at: row.time("at")?,
        template: row.text("template")?,
        recipient: row.text("recipient")?,
        outcome: row.text("outcome")?,
        smtp_code: row.int_opt("smtp_code")?.map(|c| c as u16),
        detail: row.text_opt("detail")?,
        duration_ms: row.int("duration_ms")? as u32,
    })
}

pub(crate) fn timeline_feedback(row: &impl StoredRow) -> StoreResult<TimelineEntry> {
    Ok(TimelineEntry::Feedback {
        id: row.uuid("id")?,
        at: row.time("at")?,
        template: row.text("template")?,
        recipient: row.text("recipient")?,
        kind: row.text("kind")?,
        source: row.text("source")?,
        status_code: row.text_opt("status_code")?,
        detail: row.text_opt("detail")?,
    })
}
