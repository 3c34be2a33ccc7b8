//! Invitations: create (R7–R9, R13), read, list, timeline, quota (R33), and the
//! commands on one invitation (R10–R15, R22) that its actor runs one at a time.

use super::emails::{EmailIds, member_invitation_email_with_ids};
use super::{ServiceResult, Services, event, lock_business, require_member};
use crate::domain::access::InvitationGrant;
use crate::domain::lifecycle::{self, Command, Effect};
use crate::domain::members::{check_capability, check_invite};
use crate::domain::quota::{QuotaStatus, check_resend_cooldown, check_seats};
use crate::domain::{
    BusinessId, Capability, DeliveryMode, DomainError, Email, InvitationId, InvitationKind,
    InvitationStatus, Locale, Metadata, RoleCatalog, SuppressedInvitee, TokenHash, TokenNonce,
    UserId,
};
use crate::events::catalog::{
    AddressCorrected, Event, InvitationCreated, InvitationRenewed, MemberAdded, MemberVia,
};
use crate::store::{
    BusinessRecord, DeliveryRecord, InvitationQuery, InvitationRecord, MemberRecord, NewInvitation,
    OutboxStatus, PartnershipRecord, StoreTx, TimelineEntry,
};
use chrono::{DateTime, Utc};

/// One invitee of a create request, already parsed except for the role, which
/// needs the business's catalog.
pub struct Invitee {
    pub email: Email,
    pub role: Option<String>,
    pub locale: Option<Locale>,
}

pub struct CreateInvitations {
    pub business: BusinessId,
    pub actor: UserId,
    pub invitees: Vec<Invitee>,
    pub message: Option<String>,
    /// R38: emailed (the default) or delivered by the app itself.
    pub delivery: DeliveryMode,
    /// R39: the lifetime asked for, already within 1h and
    /// `invitations.max_ttl`; `invitations.ttl` when `None`.
    pub ttl: Option<std::time::Duration>,
    /// R39: the app's own data, kept with every invitation of the request.
    pub metadata: Metadata,
}

/// A command on one invitation, with who gives it.
#[derive(Clone, Debug)]
pub enum InvitationCommand {
    /// The recipient accepts with the token; `user` becomes the member. A
    /// repeat by the user who accepted gets the same answer (R36).
    Accept {
        user: UserId,
        mfa_verified: bool,
    },
    /// The recipient declines with the token; a repeat gets the same answer
    /// (R36).
    Decline,
    Cancel {
        actor: UserId,
    },
    Resend {
        actor: UserId,
    },
    /// R46: `PATCH /v1/invitations/{id}`: a corrected address for a member
    /// invitation whose email did not get through.
    CorrectAddress {
        actor: UserId,
        email: Email,
    },
    /// `POST /v1/invitations/{id}/accept`. For a partner invitation, the
    /// owner or a manager of the receiving business accepts it (R21); for a
    /// member invitation, the invitee signed in to the app does, if the app
    /// verified their email (R37). The invitation's kind, read under its
    /// lock, decides. `mfa_verified` as for a token accept (R15).
    AcceptById {
        actor: UserId,
        mfa_verified: bool,
        email_verified: bool,
    },
    /// `POST /v1/invitations/{id}/decline`, decided by the kind likewise.
    DeclineById {
        actor: UserId,
        email_verified: bool,
    },
}

/// A command once the invitation's kind is known and its giver may give
/// it: what `execute` carries out.
enum Step {
    Cancel {
        actor: UserId,
    },
    Resend {
        actor: UserId,
    },
    /// A member invitation accepted with its token or in the app.
    AcceptMember {
        user: UserId,
        mfa_verified: bool,
        via: MemberVia,
    },
    /// A member invitation declined: with its token (nobody named) or in
    /// the app (the invitee named).
    DeclineMember {
        by: Option<UserId>,
    },
    /// A partner invitation answered by `me`, a member of `target`, the
    /// business it is addressed to (R21).
    AcceptPartner {
        mfa_verified: bool,
        target: BusinessRecord,
        me: MemberRecord,
    },
    DeclinePartner {
        target: BusinessRecord,
        me: MemberRecord,
    },
}

impl Step {
    fn command(&self) -> Command {
        match self {
            Step::Cancel { .. } => Command::Cancel,
            Step::Resend { .. } => Command::Resend,
            Step::AcceptMember { .. } | Step::AcceptPartner { .. } => Command::Accept,
            Step::DeclineMember { .. } | Step::DeclinePartner { .. } => Command::Decline,
        }
    }

    /// Who the event names.
    fn actor(&self) -> Option<&UserId> {
        match self {
            Step::Cancel { actor } | Step::Resend { actor } => Some(actor),
            Step::AcceptMember { user, .. } => Some(user),
            Step::DeclineMember { by } => by.as_ref(),
            Step::AcceptPartner { me, .. } | Step::DeclinePartner { me, .. } => Some(&me.user_id),
        }
    }

    /// The receiving business and the member answering for it.
    fn answering(&self) -> Option<(&BusinessRecord, &MemberRecord)> {
        match self {
            Step::AcceptPartner { target, me, .. } | Step::DeclinePartner { target, me } => {
                Some((target, me))
            }
            _ => None,
        }
    }
}

/// What a command produced.
#[derive(Clone, Debug)]
pub struct CommandOutcome {
    pub invitation: InvitationRecord,
    pub membership: Option<MemberRecord>,
    /// The partnership an accepted partner invitation established.
    pub partnership: Option<PartnershipRecord>,
}

/// Made for one invitee before a create's transaction ([`Services::mint`]).
struct Minted {
    id: InvitationId,
    nonce: TokenNonce,
    token_hash: TokenHash,
    email: Option<EmailIds>,
}

/// R45: refuses the whole request if any invitee's address is on the
/// suppression list, naming each such invitee. Runs under the business lock
/// and before the quota (R8) is counted, so a refused request uses none of
/// it. The store holds the addresses until commit: a suppression added while
/// this request runs waits for it, and one added before is seen.
///
/// Every member invitation is checked, whoever delivers it (R38): the list
/// says the address does not reach a person, and an app-delivered link to it
/// would as surely go nowhere. Partner invitations (R19, R20) name a
/// business, not an address, and are not checked.
async fn check_suppressions(
    tx: &mut dyn crate::store::StoreTx,
    invitees: &[Invitee],
) -> ServiceResult<()> {
    let emails: Vec<Email> = invitees.iter().map(|i| i.email.clone()).collect();
    let listed = tx.suppressed_among(&emails).await?;
    if listed.is_empty() {
        return Ok(());
    }
    let named = invitees
        .iter()
        .enumerate()
        .filter_map(|(i, invitee)| {
            listed
                .iter()
                .find(|s| s.email == invitee.email)
                .map(|s| SuppressedInvitee {
                    field: format!("invitees[{i}].email"),
                    email: s.email.clone(),
                    reason: s.reason,
                })
        })
        .collect();
    Err(DomainError::AddressSuppressed(named).into())
}

impl Services {
    /// Creates one invitation per invitee, all or nothing. The business row is
    /// locked first, so the quota count and the inserts of concurrent requests,
    /// from any replica, never interleave (R8).
    pub async fn create_invitations(
        &self,
        req: CreateInvitations,
    ) -> ServiceResult<Vec<InvitationRecord>> {
        self.create_invitations_linked(req, None).await
    }

    /// The one create path; renew (R31) takes it too, with `renewed_from`
    /// naming the invitation it replaces, so a renewal counts towards the
    /// quota under the same lock as any creation (R8).
    pub(crate) async fn create_invitations_linked(
        &self,
        req: CreateInvitations,
        renewed_from: Option<InvitationId>,
    ) -> ServiceResult<Vec<InvitationRecord>> {
        self.create_invitations_granting(req, Vec::new(), renewed_from)
            .await
    }

    /// The create path with the profile grants every invitation of the
    /// request carries (R7, R13): profiles of this business, checked here,
    /// applied when each invitation is accepted.
    pub async fn create_invitations_granting(
        &self,
        req: CreateInvitations,
        grants: Vec<InvitationGrant>,
        renewed_from: Option<InvitationId>,
    ) -> ServiceResult<Vec<InvitationRecord>> {
        self.create_invitations_from(req, grants, renewed_from, None)
            .await
    }

    /// The create path itself. `source_domain`: the verified domain (R52)
    /// an automatic invitation is created for, kept with each invitation
    /// and named by its `invitation.created` event (R53).
    ///
    /// Set-based: a handful of statements however many invitees (one read
    /// of the conflicts and seat counts, one suppression hold and one read,
    /// one time zone read, one insert each of the invitations, their events
    /// and their emails; the answer is built from what was written, not
    /// read back), so a bulk create costs about what a single one does. The
    /// ids, tokens and Message-IDs are made before the transaction opens:
    /// they need no database.
    pub(crate) async fn create_invitations_from(
        &self,
        req: CreateInvitations,
        grants: Vec<InvitationGrant>,
        renewed_from: Option<InvitationId>,
        source_domain: Option<crate::domain::MailDomain>,
    ) -> ServiceResult<Vec<InvitationRecord>> {
        let minted: Vec<Minted> = req
            .invitees
            .iter()
            .map(|_| self.mint(req.delivery))
            .collect();
        let mut tx = self.store.begin().await?;
        let business = lock_business(tx.as_mut(), req.business).await?;
        let catalog = self.catalog(business.role_preset);
        let mut roles = Vec::with_capacity(req.invitees.len());
        for (i, invitee) in req.invitees.iter().enumerate() {
            roles.push(match &invitee.role {
                Some(raw) => catalog.parse_role(raw, &format!("invitees[{i}].role"))?,
                None => catalog.default_role(),
            });
            if req.invitees[..i]
                .iter()
                .any(|earlier| earlier.email == invitee.email)
            {
                return Err(DomainError::validation(
                    format!("invitees[{i}].email"),
                    "is listed twice",
                )
                .into());
            }
        }
        let me = require_member(tx.as_mut(), req.business, &req.actor).await?;
        for role in &roles {
            check_invite(&catalog, &me.role, role)?;
        }
        let emails: Vec<Email> = req.invitees.iter().map(|i| i.email.clone()).collect();
        let found = tx.address_conflicts(req.business, &emails).await?;
        // The first invitee in the request's order that conflicts is named.
        for email in &emails {
            if found.members.contains(email) {
                return Err(DomainError::Conflict(format!("{email} is already a member")).into());
            }
            if found.pending.contains(email) {
                return Err(DomainError::Conflict(format!(
                    "{email} already has a pending invitation"
                ))
                .into());
            }
        }
        check_suppressions(tx.as_mut(), &req.invitees).await?;
        let requested = req.invitees.len() as u32;
        check_seats(
            business.seat_limit,
            found.member_count,
            found.pending_count,
            requested,
        )?;
        self.check_invitation_grants(tx.as_mut(), req.business, &grants)
            .await?;

        let now = self
            .check_quota(tx.as_mut(), req.business, requested)
            .await?;

        let inviter = tx
            .get_user(&req.actor)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("user {}", req.actor)))?;
        let ttl = req.ttl.unwrap_or(self.settings.ttl);
        let expires_at = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        let mut news = Vec::with_capacity(req.invitees.len());
        let mut events = Vec::with_capacity(req.invitees.len());
        let mut email_ids = Vec::with_capacity(req.invitees.len());
        for ((invitee, role), minted) in req.invitees.into_iter().zip(roles).zip(minted) {
            let new = NewInvitation {
                id: minted.id,
                business_id: req.business,
                kind: InvitationKind::Member,
                invited_by: req.actor.clone(),
                email: Some(invitee.email),
                partner_business_id: None,
                role: Some(role),
                message: req.message.clone(),
                locale: self.invitation_locale(invitee.locale, &business),
                grants: grants.clone(),
                token_hash: minted.token_hash,
                token_nonce: minted.nonce,
                created_at: now,
                expires_at,
                renewed_from,
                delivery_mode: req.delivery,
                metadata: req.metadata.clone(),
                source_domain: source_domain.clone(),
            };
            events.push(event(
                req.business,
                Some(new.id),
                Some(&req.actor),
                None,
                Event::InvitationCreated(
                    InvitationCreated::member(
                        new.email.clone(),
                        new.role.clone(),
                        new.delivery_mode,
                        new.metadata.clone(),
                    )
                    .from_domain(new.source_domain.clone()),
                ),
            ));
            if let Some(old) = renewed_from {
                events.push(renewed_event(req.business, old, &req.actor, new.id));
            }
            email_ids.push(minted.email);
            news.push(new);
        }
        tx.insert_invitations(&news).await?;
        tx.insert_events(&events).await?;
        // Built from what was inserted (pending, no delivery yet), not read
        // back row by row.
        let created: Vec<InvitationRecord> = news.iter().map(NewInvitation::to_record).collect();
        // R38: an invitation the app delivers itself is never emailed; the
        // caller hands out its link instead (`app_accept_url`).
        if req.delivery.sends_email() {
            // R41: each invitee's zone, if the address is a registered user's.
            let zones = tx.time_zones_by_email(&emails).await?;
            let queued: Vec<_> = created
                .iter()
                .zip(email_ids)
                .filter_map(|(record, ids)| {
                    let zone = record.email.as_ref().and_then(|e| zones.get(e).copied());
                    ids.map(|ids| {
                        member_invitation_email_with_ids(record, &business, &inviter, zone, ids)
                    })
                })
                .collect();
            tx.enqueue_emails(&queued).await?;
        }
        tx.commit().await?;
        // The answer is what was written, not a read of it: the rows as
        // inserted and, for an emailed invitation, its email as queued by
        // this commit (a read back was one more statement per create, planned
        // afresh each time for its list of ids).
        let queued = req.delivery.sends_email().then(DeliveryRecord::queued);
        let out: Vec<InvitationRecord> = created
            .into_iter()
            .map(|inv| InvitationRecord {
                delivery: queued.clone(),
                ..inv
            })
            .collect();
        crate::metrics::invitations_created(InvitationKind::Member.as_str(), out.len());
        Ok(out)
    }

    /// What a new member invitation needs that no read decides: its id, its
    /// token (R12: only the hash and the nonce are kept) and, if it is to be
    /// emailed (R38), the ids of its email.
    fn mint(&self, delivery: DeliveryMode) -> Minted {
        let id = InvitationId::new();
        let nonce = TokenNonce::generate();
        let token_hash = self.token_for(id.0, &nonce).hash();
        Minted {
            id,
            nonce,
            token_hash,
            email: delivery
                .sends_email()
                .then(|| EmailIds::new(&self.settings.message_id_domain)),
        }
    }

    /// R38: the accept link of a member invitation the app delivers itself,
    /// with its token (derived again from the stored nonce, so the same link
    /// every time); `None` for one the daemon emails. Handed out only in
    /// the answers of its creation, renewal and resend, never in a read.
    pub fn app_accept_url(&self, inv: &InvitationRecord) -> Option<String> {
        (inv.kind == InvitationKind::Member && !inv.delivery_mode.sends_email()).then(|| {
            let token = self.token_for(inv.id.0, &inv.token_nonce);
            self.settings.accept_url.replace("{token}", token.expose())
        })
    }

    /// R8: may `requested` more invitations be created now? The caller holds
    /// the business row lock (`lock_business`) and inserts in the same
    /// transaction, so no request, replica or restart slips a 6th through.
    /// Answers the database's now, read after the lock, for the inserts.
    pub(crate) async fn check_quota(
        &self,
        tx: &mut dyn StoreTx,
        business: BusinessId,
        requested: u32,
    ) -> ServiceResult<DateTime<Utc>> {
        let now = tx.now().await?;
        let quota = self.settings.quota;
        let recent = tx
            .invitation_times_since(business, quota.window_start(now))
            .await?;
        quota
            .check(&recent, requested, now)
            .inspect_err(|_| crate::metrics::rate_limited())?;
        Ok(now)
    }

    /// The invitation, for members of its business (and, for a partner
    /// invitation, of the business it is addressed to).
    pub async fn get_invitation(
        &self,
        id: InvitationId,
        actor: &UserId,
    ) -> ServiceResult<InvitationRecord> {
        let inv = self
            .store
            .get_invitation(id)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("invitation {id}")))?;
        let mut tx = self.store.begin().await?;
        if let Some(receiving) = inv.partner_business_id
            && tx.get_member(receiving, actor).await?.is_some()
        {
            return Ok(inv);
        }
        require_member(tx.as_mut(), inv.business_id, actor).await?;
        Ok(inv)
    }

    pub async fn list_invitations(
        &self,
        query: InvitationQuery,
        actor: &UserId,
    ) -> ServiceResult<Vec<InvitationRecord>> {
        self.get_business(query.business_id, actor).await?;
        Ok(self.store.list_invitations(&query).await?)
    }

    pub async fn timeline(
        &self,
        id: InvitationId,
        actor: &UserId,
    ) -> ServiceResult<Vec<TimelineEntry>> {
        self.get_invitation(id, actor).await?;
        Ok(self.store.timeline(id).await?)
    }

    /// R33: the quota as it stands, by the database clock.
    pub async fn invitation_quota(
        &self,
        business: BusinessId,
        actor: &UserId,
    ) -> ServiceResult<QuotaStatus> {
        self.get_business(business, actor).await?;
        let (_now, recent) = self
            .store
            .quota_window(business, self.settings.quota.window)
            .await?;
        Ok(self.settings.quota.status(&recent))
    }

    /// The invitation a presented token belongs to (R12): malformed and unknown
    /// tokens get the same answer.
    pub async fn resolve_token(&self, raw: &str) -> ServiceResult<InvitationId> {
        let token = crate::domain::InvitationToken::parse(raw).ok_or(DomainError::TokenInvalid)?;
        Ok(self
            .store
            .find_invitation_by_token(&token.hash())
            .await?
            .ok_or(DomainError::TokenInvalid)?)
    }

    /// Runs one command on one invitation in one transaction. Callers go through
    /// the invitation's actor, which serialises commands in this process; the
    /// row lock serialises them across processes.
    pub async fn execute(
        &self,
        id: InvitationId,
        cmd: InvitationCommand,
    ) -> ServiceResult<CommandOutcome> {
        // Lock order everywhere: the business, then the invitation.
        let mut tx = self.store.begin().await?;
        let business = tx
            .lock_business_of_invitation(id)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("invitation {id}")))?;
        let inv = tx
            .lock_invitation(id)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("invitation {id}")))?;
        let catalog = self.catalog(business.role_preset);
        // R46 is not a move of the state machine: it has its own check.
        if let InvitationCommand::CorrectAddress { actor, email } = cmd {
            self.check_inviter(tx.as_mut(), &inv, &catalog, &actor)
                .await?;
            return self.correct_address(tx, &business, inv, actor, email).await;
        }
        let step = self.step(tx.as_mut(), &inv, &catalog, cmd).await?;
        // R36: an answer already given is given again from what is stored
        // (so also to a retry after a crash), and nothing is written.
        if let Some(outcome) = repeated_answer(tx.as_mut(), &inv, &step).await? {
            return Ok(outcome);
        }
        let actor = step.actor().cloned();
        let now = tx.now().await?;
        let decision = lifecycle::apply(&inv.view(), step.command(), now)?;
        if let Step::Resend { .. } = step {
            if !inv.delivery_mode.sends_email() {
                // R38: the app delivers this invitation itself, so there is
                // nothing to send again and nothing changes: no email, no
                // `invitation.resent`, no cooldown. The caller answers the
                // same link again (`app_accept_url`); the transaction, which
                // wrote nothing, is rolled back on drop.
                return Ok(CommandOutcome {
                    invitation: inv,
                    membership: None,
                    partnership: None,
                });
            }
            let last = tx.last_invitation_email_at(id).await?;
            check_resend_cooldown(last, self.settings.resend_cooldown, now)?;
        }

        let mut membership = None;
        let mut accepted_by = None;
        if let Step::AcceptMember {
            user,
            mfa_verified,
            via,
        } = &step
        {
            let field = match via {
                MemberVia::InApp => "actor_user_id",
                _ => "user_id",
            };
            let accepter = tx
                .get_user(user)
                .await?
                .ok_or_else(|| unknown_user(field, user))?;
            if tx.get_member(inv.business_id, user).await?.is_some() {
                return Err(
                    DomainError::Conflict(format!("user {user} is already a member")).into(),
                );
            }
            let role = inv.role.clone().unwrap_or_else(|| catalog.default_role());
            business
                .require_2fa
                .check_accept(&catalog, &role, *mfa_verified)?;
            accepted_by = Some(accepter);
        }
        if let Step::AcceptPartner {
            mfa_verified,
            target,
            me,
        } = &step
        {
            self.check_partner_mfa(target, me, *mfa_verified)?;
            accepted_by = Some(
                tx.get_user(&me.user_id)
                    .await?
                    .ok_or_else(|| unknown_user("actor_user_id", &me.user_id))?,
            );
        }
        let mut partnership = None;

        let mut moved = None;
        if decision.to != inv.status {
            let accepted_by = actor
                .as_ref()
                .filter(|_| decision.to == InvitationStatus::Accepted);
            let updated_at = tx
                .set_invitation_status(id, decision.to, accepted_by)
                .await?;
            moved = Some((updated_at, accepted_by.cloned()));
        }
        // The command's own events are written together, in one statement,
        // in the order they were made; an effect that writes events of its
        // own first flushes these, so the log keeps that order too.
        let mut events = vec![event(
            inv.business_id,
            Some(id),
            actor.as_ref(),
            Some((inv.status, decision.to)),
            Event::of_command(step.command()),
        )];
        for effect in &decision.effects {
            if writes_own_events(*effect) {
                tx.insert_events(&std::mem::take(&mut events)).await?;
            }
            match effect {
                Effect::SendInvitationEmail => {
                    let inviter = tx
                        .get_user(&inv.invited_by)
                        .await?
                        .ok_or_else(|| DomainError::NotFound(format!("user {}", inv.invited_by)))?;
                    match &inv.partner_business_id {
                        Some(receiving) if inv.kind != InvitationKind::Member => {
                            let target = tx.read_business(*receiving).await?.ok_or_else(|| {
                                DomainError::NotFound(format!("business {receiving}"))
                            })?;
                            self.queue_partner_emails(
                                tx.as_mut(),
                                &inv,
                                &business,
                                &target,
                                &inviter,
                            )
                            .await?;
                        }
                        _ => {
                            let time_zone = match &inv.email {
                                Some(address) => tx.time_zone_by_email(address).await?,
                                None => None,
                            };
                            tx.enqueue_email(
                                &self.member_invitation_email(&inv, &business, &inviter, time_zone),
                            )
                            .await?;
                        }
                    }
                }
                Effect::EstablishPartnership => {
                    let accepter = &accepted_by
                        .as_ref()
                        .expect("accept has an accepter")
                        .user_id;
                    partnership = Some(
                        self.establish_partnership(tx.as_mut(), &inv, accepter)
                            .await?,
                    );
                }
                Effect::ApplyGrants => {
                    let accepter = &accepted_by
                        .as_ref()
                        .expect("accept has an accepter")
                        .user_id;
                    self.apply_accepted_grants(tx.as_mut(), &inv, accepter)
                        .await?;
                }
                Effect::AddMember => {
                    let accepter = accepted_by.as_ref().expect("accept has an accepter");
                    let user = &accepter.user_id;
                    let Step::AcceptMember { via, .. } = &step else {
                        unreachable!("only a member accept adds a member")
                    };
                    let role = inv.role.clone().unwrap_or_else(|| catalog.default_role());
                    let joined_at = tx.insert_member(inv.business_id, user, &role).await?;
                    events.push(event(
                        inv.business_id,
                        Some(id),
                        Some(user),
                        None,
                        Event::MemberAdded(MemberAdded {
                            user_id: user.clone(),
                            role: role.clone(),
                            // R53: an invitation a verified domain created
                            // (R52) is that way in, however it is accepted.
                            via: if inv.source_domain.is_some() {
                                MemberVia::Domain
                            } else {
                                *via
                            },
                        }),
                    ));
                    // The membership as `get_member` would read it back.
                    membership = Some(MemberRecord {
                        business_id: inv.business_id,
                        user_id: user.clone(),
                        email: accepter.email.clone(),
                        role,
                        joined_at,
                    });
                }
                Effect::SendAcceptedEmail => {
                    let accepter = accepted_by.as_ref().expect("accept has an accepter");
                    if let Some(inviter) = tx.get_user(&inv.invited_by).await? {
                        let email = match step.answering() {
                            Some((receiving, _)) => self.partner_accepted_email(
                                &inv, &business, receiving, &inviter, accepter,
                            ),
                            None => {
                                self.invitation_accepted_email(&inv, &business, &inviter, accepter)
                            }
                        };
                        tx.enqueue_email(&email).await?;
                    }
                }
            }
        }
        tx.insert_events(&events).await?;
        tx.commit().await?;
        if decision.to != inv.status {
            crate::metrics::invitation_transition(inv.kind.as_str(), decision.to.as_str());
        }
        let invitation = match moved {
            // A move of the state machine changed only the status, the time
            // and who accepted: the locked row with those is what the
            // transaction committed, with no read back.
            Some((updated_at, accepted_by)) => InvitationRecord {
                status: decision.to,
                updated_at,
                accepted_by,
                ..inv
            },
            // A resend queued a new email: read the row back with it.
            None => self
                .store
                .get_invitation(id)
                .await?
                .ok_or_else(|| DomainError::NotFound(format!("invitation {id}")))?,
        };
        Ok(CommandOutcome {
            invitation,
            membership,
            partnership,
        })
    }

    /// Who may give the command, by the invitation's kind: the sending
    /// business's inviters cancel and resend (R14); a token answers a member
    /// invitation only; an answer by id is the receiving business's for a
    /// partner invitation (R21) and the invitee's for a member one (R37).
    async fn step(
        &self,
        tx: &mut dyn StoreTx,
        inv: &InvitationRecord,
        catalog: &RoleCatalog,
        cmd: InvitationCommand,
    ) -> ServiceResult<Step> {
        Ok(match cmd {
            InvitationCommand::Cancel { actor } => {
                self.check_inviter(tx, inv, catalog, &actor).await?;
                Step::Cancel { actor }
            }
            InvitationCommand::Resend { actor } => {
                self.check_inviter(tx, inv, catalog, &actor).await?;
                Step::Resend { actor }
            }
            InvitationCommand::CorrectAddress { .. } => {
                unreachable!("`execute` carries out an address correction itself")
            }
            InvitationCommand::Accept { user, mfa_verified } => {
                token_answers(inv)?;
                Step::AcceptMember {
                    user,
                    mfa_verified,
                    via: MemberVia::Token,
                }
            }
            InvitationCommand::Decline => {
                token_answers(inv)?;
                Step::DeclineMember { by: None }
            }
            InvitationCommand::AcceptById {
                actor,
                mfa_verified,
                email_verified,
            } => {
                if inv.kind == InvitationKind::Member {
                    check_invitee(tx, inv, &actor, email_verified).await?;
                    Step::AcceptMember {
                        user: actor,
                        mfa_verified,
                        via: MemberVia::InApp,
                    }
                } else {
                    let (target, me) = self.partner_answerer(tx, inv, &actor).await?;
                    Step::AcceptPartner {
                        mfa_verified,
                        target,
                        me,
                    }
                }
            }
            InvitationCommand::DeclineById {
                actor,
                email_verified,
            } => {
                if inv.kind == InvitationKind::Member {
                    check_invitee(tx, inv, &actor, email_verified).await?;
                    Step::DeclineMember { by: Some(actor) }
                } else {
                    let (target, me) = self.partner_answerer(tx, inv, &actor).await?;
                    Step::DeclinePartner { target, me }
                }
            }
        })
    }

    /// R46, under the business and invitation locks `execute` took: the
    /// invitation gets the new address and a new token (so the old link
    /// stops working with the commit), a new invitation email to the new
    /// address, and `invitation.address_corrected` naming both addresses.
    /// Its `created_at` stays, and no quota is checked or used: the slot it
    /// took when created is the one it keeps (R8).
    async fn correct_address(
        &self,
        mut tx: Box<dyn StoreTx>,
        business: &BusinessRecord,
        inv: InvitationRecord,
        actor: UserId,
        email: Email,
    ) -> ServiceResult<CommandOutcome> {
        let now = tx.now().await?;
        lifecycle::check_correctable(&inv.view(), undelivered(&inv), now)?;
        let id = inv.id;
        let previous = inv
            .email
            .clone()
            .expect("a member invitation has an address");
        if email == previous {
            return Err(DomainError::validation(
                "email",
                "is the address whose email failed; give the corrected one",
            )
            .into());
        }
        if tx.is_member_email(inv.business_id, &email).await? {
            return Err(DomainError::Conflict(format!("{email} is already a member")).into());
        }
        if tx.has_pending_invitation(inv.business_id, &email).await? {
            return Err(
                DomainError::Conflict(format!("{email} already has a pending invitation")).into(),
            );
        }
        // R45: the corrected address is checked like any invitee's.
        if let Some(listed) = tx
            .suppressed_among(std::slice::from_ref(&email))
            .await?
            .into_iter()
            .next()
        {
            return Err(DomainError::AddressSuppressed(vec![SuppressedInvitee {
                field: "email".into(),
                email: listed.email,
                reason: listed.reason,
            }])
            .into());
        }
        let nonce = TokenNonce::generate();
        let token = self.token_for(id.0, &nonce);
        tx.correct_invitation_address(id, &email, &token.hash(), &nonce)
            .await?;
        tx.insert_event(&event(
            inv.business_id,
            Some(id),
            Some(&actor),
            None,
            Event::InvitationAddressCorrected(AddressCorrected {
                previous_email: previous,
                email: email.clone(),
            }),
        ))
        .await?;
        let corrected = tx
            .lock_invitation(id)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("invitation {id}")))?;
        let inviter = tx
            .get_user(&inv.invited_by)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("user {}", inv.invited_by)))?;
        // R41: the zone of a registered user with the new address, if any.
        let time_zone = tx.time_zone_by_email(&email).await?;
        tx.enqueue_email(&self.member_invitation_email(&corrected, business, &inviter, time_zone))
            .await?;
        tx.commit().await?;
        let invitation = self.store.get_invitation(id).await?.unwrap_or(corrected);
        Ok(CommandOutcome {
            invitation,
            membership: None,
            partnership: None,
        })
    }

    /// R14: cancel and resend need `members.invite` in the sending business.
    async fn check_inviter(
        &self,
        tx: &mut dyn StoreTx,
        inv: &InvitationRecord,
        catalog: &RoleCatalog,
        actor: &UserId,
    ) -> ServiceResult<()> {
        let me = require_member(tx, inv.business_id, actor).await?;
        check_capability(catalog, &me.role, Capability::MembersInvite)?;
        Ok(())
    }
}

/// The effects whose service code writes events of its own (the
/// partnership's, the grants'), before which the command's pending events
/// are written so that the log keeps the order they happened in.
fn writes_own_events(effect: Effect) -> bool {
    matches!(effect, Effect::EstablishPartnership | Effect::ApplyGrants)
}

/// R46: the invitation email did not get through: its latest one was
/// given up (`failed`), bounced or complained about. Only an invitation the
/// daemon emails has one.
pub(crate) fn undelivered(inv: &InvitationRecord) -> bool {
    inv.delivery_mode.sends_email()
        && inv.delivery.as_ref().is_some_and(|d| {
            matches!(
                d.status,
                OutboxStatus::Failed | OutboxStatus::Bounced | OutboxStatus::Complained
            )
        })
}

/// R37: a member invitation is answered by id only by the user it is
/// addressed to, and only on the app's word that the address is theirs. The
/// address is compared as stored: both sides are lower-cased when parsed.
async fn check_invitee(
    tx: &mut dyn StoreTx,
    inv: &InvitationRecord,
    actor: &UserId,
    email_verified: bool,
) -> ServiceResult<()> {
    if !email_verified {
        return Err(DomainError::EmailUnverified.into());
    }
    let user = tx
        .get_user(actor)
        .await?
        .ok_or_else(|| unknown_user("actor_user_id", actor))?;
    if inv.email.as_ref() != Some(&user.email) {
        return Err(DomainError::forbidden(format!(
            "this invitation is not addressed to the email of user {actor}"
        ))
        .into());
    }
    Ok(())
}

/// R36: the answer an invitation already got, when the same answer comes
/// again: an accept by the user who accepted it (while still a member: the
/// answer is the invitation and that membership), a decline of a declined
/// one. Decided from the locked row, never from memory.
async fn repeated_answer(
    tx: &mut dyn StoreTx,
    inv: &InvitationRecord,
    step: &Step,
) -> ServiceResult<Option<CommandOutcome>> {
    let membership = match (step, inv.status) {
        (Step::AcceptMember { user, .. }, InvitationStatus::Accepted)
            if inv.accepted_by.as_ref() == Some(user) =>
        {
            match tx.get_member(inv.business_id, user).await? {
                Some(m) => Some(m),
                // Gone since: the first answer no longer holds (`token_used`).
                None => return Ok(None),
            }
        }
        (Step::DeclineMember { .. }, InvitationStatus::Declined) => None,
        _ => return Ok(None),
    };
    Ok(Some(CommandOutcome {
        invitation: inv.clone(),
        membership,
        partnership: None,
    }))
}

fn unknown_user(field: &str, user: &UserId) -> DomainError {
    DomainError::validation(
        field,
        format!("unknown user {user}; register it with PUT /v1/users/{{id}} first"),
    )
}

/// The token commands answer member invitations only: a partner invitation's
/// token is never sent, so as far as a token holder can tell there is none.
fn token_answers(inv: &InvitationRecord) -> Result<(), DomainError> {
    if inv.kind == InvitationKind::Member {
        Ok(())
    } else {
        Err(DomainError::TokenInvalid)
    }
}

/// On the old invitation's timeline, in the same transaction as the new one
/// (R31): which invitation replaced it.
pub(crate) fn renewed_event(
    business: BusinessId,
    old: InvitationId,
    actor: &UserId,
    new: InvitationId,
) -> crate::store::NewEvent {
    event(
        business,
        Some(old),
        Some(actor),
        None,
        Event::InvitationRenewed(InvitationRenewed { renewed_to: new }),
    )
}
