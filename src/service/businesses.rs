//! Users and businesses: the app registers its users, creates businesses with an
//! owner, and reads them back.

use super::{ServiceResult, Services, event, require_member};
use crate::domain::{
    BusinessId, BusinessName, DomainError, Email, Locale, PublicBusinessId, Role, RolePreset,
    TimeZone, UserId,
};
use crate::events::catalog::{Event, MemberAdded, MemberVia};
use crate::store::{BusinessRecord, NewBusiness, NewUser, UserRecord};

pub struct NewBusinessInput {
    pub name: String,
    pub owner: UserId,
    pub preset: Option<RolePreset>,
    pub seat_limit: Option<u32>,
    pub locale: Option<Locale>,
}

/// A business name (and a profile's): see `domain::names` for the rule
/// (R30, R41).
pub fn parse_business_name(raw: &str, field: &str) -> Result<String, DomainError> {
    BusinessName::parse_field(raw, field).map(BusinessName::into_string)
}

impl Services {
    pub async fn put_user(
        &self,
        user_id: UserId,
        email: Email,
        display_name: Option<String>,
        locale: Option<Locale>,
        time_zone: Option<TimeZone>,
    ) -> ServiceResult<UserRecord> {
        let mut tx = self.store.begin().await?;
        let before = tx.get_user(&user_id).await?;
        let user = tx
            .upsert_user(&NewUser {
                user_id,
                email,
                display_name,
                locale: locale.unwrap_or_else(|| self.settings.default_locale.clone()),
                time_zone,
            })
            .await?;
        tx.commit().await?;
        // R52: a new user, or a new address, at a verified `auto_invite`
        // domain gets its invitation (after the commit: the create path is
        // a transaction of its own).
        if before.is_none_or(|b| b.email != user.email) {
            self.invite_by_domain(&user).await?;
        }
        Ok(user)
    }

    pub async fn create_business(&self, input: NewBusinessInput) -> ServiceResult<BusinessRecord> {
        let mut tx = self.store.begin().await?;
        if tx.get_user(&input.owner).await?.is_none() {
            return Err(DomainError::validation(
                "owner_user_id",
                format!(
                    "unknown user {}; register it with PUT /v1/users/{{id}} first",
                    input.owner
                ),
            )
            .into());
        }
        let business = tx
            .insert_business(&NewBusiness {
                id: BusinessId::new(),
                public_id: PublicBusinessId::generate(),
                name: input.name,
                role_preset: input.preset.unwrap_or(self.settings.default_preset),
                seat_limit: input.seat_limit,
                locale: input.locale,
            })
            .await?;
        let owner = Role::from_stored(Role::OWNER);
        tx.insert_member(business.id, &input.owner, &owner).await?;
        tx.insert_event(&event(
            business.id,
            None,
            Some(&input.owner),
            None,
            Event::MemberAdded(MemberAdded {
                user_id: input.owner.clone(),
                role: owner,
                via: MemberVia::Created,
            }),
        ))
        .await?;
        tx.commit().await?;
        Ok(business)
    }

    /// A business, for its members only.
    pub async fn get_business(
        &self,
        id: BusinessId,
        actor: &UserId,
    ) -> ServiceResult<BusinessRecord> {
        let business = self
            .store
            .get_business(id)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("business {id}")))?;
        let mut tx = self.store.begin().await?;
        require_member(tx.as_mut(), id, actor).await?;
        Ok(business)
    }
}
