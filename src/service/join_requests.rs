//! Join requests (R51, R53): a user asks to join a business by its public
//! Business ID; its owner and every member with `members.invite` hear of it
//! by email; one of them approves (choosing the role, R3, within the seats,
//! R9) or denies it, and the user hears the outcome by email. An approval
//! makes the same membership and `member.added` as any other way in, with
//! `via: request`, and every event of the request names it (its timeline).
//!
//! A request's commands take turns like an invitation's: the business's row,
//! then the request's row, are locked before the state machine
//! (`domain::join_requests::apply`) decides, so of two answers at once one
//! wins and the other finds the request no longer pending.

use super::emails::Envelope;
use super::{ServiceResult, Services, event, lock_business, require_member};
use crate::domain::join_requests::{self, JoinCommand};
use crate::domain::members::{check_capability, check_invite};
use crate::domain::quota::check_seats;
use crate::domain::{
    BusinessId, Capability, DomainError, JoinRequestId, JoinRequestStatus, PublicBusinessId,
    RoleCatalog, UserId,
};
use crate::events::catalog::{
    Event, JoinRequestApproved, JoinRequestCreated, JoinRequestDenied, JoinRequestExpired,
    MemberAdded, MemberVia,
};
use crate::mail::EmailContent;
use crate::mail::contexts::{JoinRequestAnsweredContext, JoinRequestContext};
use crate::store::{
    BusinessRecord, JoinRequestQuery, JoinRequestRecord, MemberRecord, NewEvent, NewJoinRequest,
    StoreTx, TimelineEntry, UserRecord,
};

/// `POST /v1/join-requests`, parsed.
pub struct CreateJoinRequest {
    pub user: UserId,
    pub business: PublicBusinessId,
    /// Already within R7's limits.
    pub message: Option<String>,
}

/// An answer to a request, with who gives it.
#[derive(Clone, Debug)]
pub enum JoinAnswer {
    /// `role`: a role of the business's catalog; its default role if `None`.
    Approve {
        actor: UserId,
        role: Option<String>,
    },
    Deny {
        actor: UserId,
    },
}

impl JoinAnswer {
    fn actor(&self) -> &UserId {
        match self {
            JoinAnswer::Approve { actor, .. } | JoinAnswer::Deny { actor } => actor,
        }
    }

    fn command(&self) -> JoinCommand {
        match self {
            JoinAnswer::Approve { .. } => JoinCommand::Approve,
            JoinAnswer::Deny { .. } => JoinCommand::Deny,
        }
    }
}

/// What an answer produced: the request, and the membership of an approval.
#[derive(Clone, Debug)]
pub struct JoinOutcome {
    pub request: JoinRequestRecord,
    pub membership: Option<MemberRecord>,
}

/// The owner, and the members whose role has `members.invite` (R2): who
/// hears of a request and may answer it.
fn answers_requests(catalog: &RoleCatalog, member: &MemberRecord) -> bool {
    member.role.is_owner() || catalog.can(&member.role, Capability::MembersInvite)
}

/// An event row naming the request (R53).
fn request_event(
    business: BusinessId,
    request: JoinRequestId,
    actor: &UserId,
    data: Event,
) -> NewEvent {
    let mut row = event(business, None, Some(actor), None, data);
    row.join_request_id = Some(request);
    row
}

impl Services {
    /// R51: creates a pending request and emails the business's owner and
    /// inviters, each in their locale. Refused, with nothing written: an
    /// unknown user or Business ID, a user already a member, a second
    /// pending request to the business, and the user's rate limit spent.
    pub async fn create_join_request(
        &self,
        req: CreateJoinRequest,
    ) -> ServiceResult<JoinRequestRecord> {
        let mut tx = self.store.begin().await?;
        let found = tx
            .get_business_by_public_id(&req.business)
            .await?
            .ok_or_else(|| {
                DomainError::NotFound(format!(
                    "no business has the Business ID {}",
                    req.business.as_str()
                ))
            })?;
        // Lock order everywhere: the business first.
        let business = lock_business(tx.as_mut(), found.id).await?;
        // The user's row serialises their requests to any business, so the
        // rate limit's count and the insert never interleave.
        let user = tx.lock_join_requester(&req.user).await?.ok_or_else(|| {
            DomainError::validation(
                "user_id",
                format!(
                    "unknown user {}; register it with PUT /v1/users/{{id}} first",
                    req.user
                ),
            )
        })?;
        if tx.get_member(business.id, &user.user_id).await?.is_some() {
            return Err(DomainError::Conflict(format!(
                "user {} is already a member of this business",
                user.user_id
            ))
            .into());
        }
        if tx
            .has_pending_join_request(business.id, &user.user_id)
            .await?
        {
            return Err(DomainError::Conflict(format!(
                "user {} already has a pending join request to this business",
                user.user_id
            ))
            .into());
        }
        let now = tx.now().await?;
        let quota = self.settings.join_request_quota;
        let recent = tx
            .join_request_times_since(&user.user_id, quota.window_start(now))
            .await?;
        quota
            .check(&recent, 1, now)
            .map_err(|e| match e {
                DomainError::RateLimited { retry_after, .. } => DomainError::RateLimited {
                    retry_after,
                    detail: format!(
                        "at most {} join requests per user per {} s; {} sent",
                        quota.limit,
                        quota.window.as_secs(),
                        recent.len()
                    ),
                },
                other => other,
            })
            .inspect_err(|_| crate::metrics::rate_limited())?;

        let id = JoinRequestId::new();
        let expires_at =
            now + chrono::Duration::from_std(self.settings.ttl).unwrap_or(chrono::Duration::MAX);
        tx.insert_join_request(&NewJoinRequest {
            id,
            business_id: business.id,
            user_id: user.user_id.clone(),
            message: req.message.clone(),
            created_at: now,
            expires_at,
        })
        .await?;
        tx.insert_event(&request_event(
            business.id,
            id,
            &user.user_id,
            Event::JoinRequestCreated(JoinRequestCreated {
                join_request_id: id,
                user_id: user.user_id.clone(),
                has_message: req.message.is_some(),
            }),
        ))
        .await?;
        let request = tx
            .lock_join_request(id)
            .await?
            .expect("inserted in this transaction");
        self.queue_join_request_emails(tx.as_mut(), &request, &business, &user)
            .await?;
        tx.commit().await?;
        crate::metrics::join_request("created");
        Ok(request)
    }

    /// "{name} asked to join {business}" to the owner and every member with
    /// `members.invite`, each in their own locale and time zone.
    async fn queue_join_request_emails(
        &self,
        tx: &mut dyn StoreTx,
        request: &JoinRequestRecord,
        business: &BusinessRecord,
        requester: &UserRecord,
    ) -> ServiceResult<()> {
        let catalog = self.catalog(business.role_preset);
        let url = self
            .settings
            .join_request_url
            .replace("{join_request_id}", &request.id.to_string());
        for m in tx.members_of_business(business.id).await? {
            if !answers_requests(&catalog, &m) {
                continue;
            }
            let Some(recipient) = tx.get_user(&m.user_id).await? else {
                continue;
            };
            let content = EmailContent::JoinRequest(JoinRequestContext {
                recipient_name: recipient.name().to_string(),
                requester_name: requester.name().to_string(),
                requester_email: requester.email.as_str().to_string(),
                business_name: business.name.clone(),
                message: request.message.clone(),
                expires_at: request.expires_at,
                time_zone: recipient.time_zone.as_ref().map(|z| z.as_str().to_string()),
                join_request_url: url.clone(),
            });
            let envelope = Envelope {
                business: business.id,
                invitation: None,
                locale: recipient.locale.clone(),
                recipient: recipient.email.clone(),
                recipient_name: recipient.display_name.clone(),
            };
            let mut email = self.new_email(envelope, content);
            email.join_request_id = Some(request.id);
            tx.enqueue_email(&email).await?;
        }
        Ok(())
    }

    /// R51: approves or denies a request, in one transaction under the
    /// business's and the request's row locks. The approver needs
    /// `members.invite` and may not give a role above their own (R3); an
    /// approval needs a free seat (R9). The requester hears the outcome by
    /// email in their locale.
    pub async fn answer_join_request(
        &self,
        id: JoinRequestId,
        answer: JoinAnswer,
    ) -> ServiceResult<JoinOutcome> {
        let business_id = self
            .store
            .get_join_request(id)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("join request {id}")))?
            .business_id;
        let mut tx = self.store.begin().await?;
        let business = lock_business(tx.as_mut(), business_id).await?;
        let request = tx
            .lock_join_request(id)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("join request {id}")))?;
        let catalog = self.catalog(business.role_preset);
        let actor = answer.actor().clone();
        let me = require_member(tx.as_mut(), business.id, &actor).await?;
        check_capability(&catalog, &me.role, Capability::MembersInvite)?;
        let now = tx.now().await?;
        let to = join_requests::apply(&request.view(), answer.command(), now)?;
        let requester = tx
            .get_user(&request.user_id)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("user {}", request.user_id)))?;

        let mut membership = None;
        match &answer {
            JoinAnswer::Approve { role, .. } => {
                let role = match role {
                    Some(raw) => catalog.parse_role(raw, "role")?,
                    None => catalog.default_role(),
                };
                check_invite(&catalog, &me.role, &role)?;
                if tx
                    .get_member(business.id, &request.user_id)
                    .await?
                    .is_some()
                {
                    return Err(DomainError::Conflict(format!(
                        "user {} is already a member of this business",
                        request.user_id
                    ))
                    .into());
                }
                let members = tx.count_members(business.id).await?;
                let pending = tx.count_pending_member_invitations(business.id).await?;
                check_seats(business.seat_limit, members, pending, 1)?;
                self.decide(tx.as_mut(), &request, to, &actor, Some(&role))
                    .await?;
                tx.insert_member(business.id, &request.user_id, &role)
                    .await?;
                tx.insert_events(&[
                    request_event(
                        business.id,
                        id,
                        &actor,
                        Event::JoinRequestApproved(JoinRequestApproved {
                            join_request_id: id,
                            user_id: request.user_id.clone(),
                            role: role.clone(),
                        }),
                    ),
                    // R53: the same `member.added` as every way in.
                    request_event(
                        business.id,
                        id,
                        &actor,
                        Event::MemberAdded(MemberAdded {
                            user_id: request.user_id.clone(),
                            role: role.clone(),
                            via: MemberVia::Request {
                                join_request_id: id,
                            },
                        }),
                    ),
                ])
                .await?;
                membership = tx.get_member(business.id, &request.user_id).await?;
                self.queue_answered_email(tx.as_mut(), id, &business, &requester, Some(&role))
                    .await?;
            }
            JoinAnswer::Deny { .. } => {
                self.decide(tx.as_mut(), &request, to, &actor, None).await?;
                tx.insert_event(&request_event(
                    business.id,
                    id,
                    &actor,
                    Event::JoinRequestDenied(JoinRequestDenied {
                        join_request_id: id,
                        user_id: request.user_id.clone(),
                    }),
                ))
                .await?;
                self.queue_answered_email(tx.as_mut(), id, &business, &requester, None)
                    .await?;
            }
        }
        tx.commit().await?;
        crate::metrics::join_request(to.as_str());
        let request = self
            .store
            .get_join_request(id)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("join request {id}")))?;
        Ok(JoinOutcome {
            request,
            membership,
        })
    }

    /// [`Services::answer_join_request`] with an approval: the request and
    /// the membership it made.
    pub async fn approve_join_request(
        &self,
        id: JoinRequestId,
        actor: UserId,
        role: Option<String>,
    ) -> ServiceResult<(JoinRequestRecord, MemberRecord)> {
        let outcome = self
            .answer_join_request(id, JoinAnswer::Approve { actor, role })
            .await?;
        let membership = outcome.membership.ok_or_else(|| {
            crate::service::ServiceError::Store(crate::store::StoreError::Other(format!(
                "the approval of join request {id} left no membership"
            )))
        })?;
        Ok((outcome.request, membership))
    }

    /// The state change the machine decided, on the locked row.
    async fn decide(
        &self,
        tx: &mut dyn StoreTx,
        request: &JoinRequestRecord,
        to: JoinRequestStatus,
        actor: &UserId,
        role: Option<&crate::domain::Role>,
    ) -> ServiceResult<()> {
        if !tx.decide_join_request(request.id, to, actor, role).await? {
            // Under the row lock the request was pending; this cannot be.
            return Err(DomainError::JoinRequestTransition {
                from: request.status.as_str().to_string(),
                command: to.as_str().to_string(),
            }
            .into());
        }
        Ok(())
    }

    /// The outcome, to the requester in their locale: approved (with the
    /// role) when `role` is given, else denied.
    async fn queue_answered_email(
        &self,
        tx: &mut dyn StoreTx,
        request: JoinRequestId,
        business: &BusinessRecord,
        requester: &UserRecord,
        role: Option<&crate::domain::Role>,
    ) -> ServiceResult<()> {
        let content = EmailContent::JoinRequestAnswered(JoinRequestAnsweredContext {
            requester_name: requester.name().to_string(),
            business_name: business.name.clone(),
            approved: role.is_some(),
            role: role.map(|r| r.as_str().to_string()),
        });
        let envelope = Envelope {
            business: business.id,
            invitation: None,
            locale: requester.locale.clone(),
            recipient: requester.email.clone(),
            recipient_name: requester.display_name.clone(),
        };
        let mut email = self.new_email(envelope, content);
        email.join_request_id = Some(request);
        tx.enqueue_email(&email).await?;
        Ok(())
    }

    /// One request: for its requester, or for the business's owner and
    /// members with `members.invite`.
    pub async fn get_join_request(
        &self,
        id: JoinRequestId,
        actor: &UserId,
    ) -> ServiceResult<JoinRequestRecord> {
        let request = self
            .store
            .get_join_request(id)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("join request {id}")))?;
        if &request.user_id == actor {
            return Ok(request);
        }
        self.require_inviter(request.business_id, actor).await?;
        Ok(request)
    }

    /// A business's requests, newest first, for its owner and inviters.
    pub async fn list_join_requests(
        &self,
        query: JoinRequestQuery,
        actor: &UserId,
    ) -> ServiceResult<Vec<JoinRequestRecord>> {
        self.require_inviter(query.business_id, actor).await?;
        Ok(self.store.list_join_requests(&query).await?)
    }

    /// R53: the events of a request, oldest first (its creation, its answer
    /// and the `member.added` of an approval, or its expiry).
    pub async fn join_request_timeline(
        &self,
        id: JoinRequestId,
        actor: &UserId,
    ) -> ServiceResult<Vec<TimelineEntry>> {
        self.get_join_request(id, actor).await?;
        Ok(self.store.join_request_timeline(id).await?)
    }

    /// The actor may answer the business's requests (R2): `not_found` for
    /// no business, `forbidden` for anyone else.
    async fn require_inviter(&self, business: BusinessId, actor: &UserId) -> ServiceResult<()> {
        let found = self
            .store
            .get_business(business)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("business {business}")))?;
        let me = self
            .store
            .get_member(business, actor)
            .await?
            .ok_or_else(|| {
                DomainError::forbidden(format!("user {actor} is not a member of this business"))
            })?;
        check_capability(
            &self.catalog(found.role_preset),
            &me.role,
            Capability::MembersInvite,
        )?;
        Ok(())
    }

    /// The sweep (like R11's): every pending request past its expiry moves
    /// to `expired`, with `join_request.expired` in the same transaction.
    pub async fn expire_due_join_requests(&self, batch: u32) -> ServiceResult<u64> {
        let mut total = 0;
        loop {
            let mut tx = self.store.begin().await?;
            let expired = tx.expire_due_join_requests(batch).await?;
            for r in &expired {
                let mut row = event(
                    r.business_id,
                    None,
                    None,
                    None,
                    Event::JoinRequestExpired(JoinRequestExpired {
                        join_request_id: r.id,
                        user_id: r.user_id.clone(),
                    }),
                );
                row.join_request_id = Some(r.id);
                tx.insert_event(&row).await?;
            }
            tx.commit().await?;
            for _ in &expired {
                crate::metrics::join_request("expired");
            }
            total += expired.len() as u64;
            if (expired.len() as u32) < batch {
                return Ok(total);
            }
        }
    }
}
