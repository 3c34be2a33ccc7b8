//! The invitee's reads (R35, R37): the member invitation a token opens, and
//! the member invitations addressed to a user's email in every business.
//! Neither changes anything; the answers to them (accept and decline, by
//! token or in the app) are commands on one invitation (`invitations`).

use super::{ServiceResult, Services};
use crate::domain::{DomainError, InvitationId, InvitationStatus, UserId};
use crate::store::{InviteeInvitationRecord, InviteeQuery};

/// Which of a user's invitations to list, and the page.
#[derive(Clone, Debug)]
pub struct UserInvitationsQuery {
    pub status: Option<InvitationStatus>,
    pub before: Option<InvitationId>,
    pub limit: u32,
}

impl Services {
    /// R35: the member invitation a token opens, with the database's now.
    /// A malformed token, an unknown one and a partner invitation's (never
    /// sent, so unknown to any holder) get the same `token_invalid`.
    pub async fn preview(&self, raw_token: &str) -> ServiceResult<InviteeInvitationRecord> {
        let id = self.resolve_token(raw_token).await?;
        Ok(self
            .store
            .invitee_invitation(id)
            .await?
            .ok_or(DomainError::TokenInvalid)?)
    }

    /// R37: the member invitations addressed to the user's email (the
    /// user's address as registered, compared case-insensitively), in every
    /// business, newest first.
    pub async fn user_invitations(
        &self,
        user: &UserId,
        query: UserInvitationsQuery,
    ) -> ServiceResult<Vec<InviteeInvitationRecord>> {
        let user = self
            .store
            .get_user(user)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("user {user}")))?;
        Ok(self
            .store
            .invitations_for_email(&InviteeQuery {
                email: user.email,
                status: query.status,
                before: query.before,
                limit: query.limit,
            })
            .await?)
    }
}
