//! Delivering one claimed email: render it, send it, and record the attempt
//! with its outcome (sent, retry later, or failed for good) in one transaction
//! with the event it causes (`invitation.sent`, `notification.failed`); the
//! outcomes of attempts that end together share that transaction (`Recorder`).

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use rand::RngExt as _;

use super::{ServiceError, ServiceResult, Services, event};
use crate::domain::retry::RetryPolicy;
use crate::domain::{InvitationId, TokenNonce};
use crate::events::catalog::{
    Event, FailedLocale, InvitationSent, NotificationCancelled, NotificationFailed,
    NotificationLocaleFallback,
};
use crate::mail::contexts::{
    Brand, EXPIRES_AT_KEY, TokenLinks, UndeliveredReason, on_behalf_of, prepare,
};
use crate::mail::{Failure, MailError, Mailer, TemplateName, Templates, build_message};
use crate::metrics;
use crate::store::{AttemptOutcome, ClaimedEmail, EmailAttempt, NewEvent, OutboxStatus};

/// `mail.send_rate` as one token bucket. Every mailer worker of a process
/// shares it: the dispatcher takes a token per email before claiming it, so a
/// lease never runs while an email waits for its turn (R28).
pub type SendLimiter = governor::DefaultDirectRateLimiter;

/// The limiter of a configured rate: `count` per `per`, with a burst of
/// `count` (so `50/s` sends at most 50 in any second).
pub fn send_limiter(rate: crate::config::SendRate) -> SendLimiter {
    let count = std::num::NonZeroU32::new(rate.count.max(1)).expect("at least 1");
    let period = (rate.per / count.get()).max(std::time::Duration::from_nanos(1));
    let quota = governor::Quota::with_period(period)
        .expect("a positive period")
        .allow_burst(count);
    governor::RateLimiter::direct(quota)
}

/// What delivery needs besides the store.
pub struct Delivery {
    pub services: Services,
    pub templates: Arc<Templates>,
    pub mailer: Mailer,
    pub from: crate::mail::Sender,
    /// `mail.return_path`: each email's envelope sender names it (R43 b).
    pub return_path: Option<crate::mail::ReturnPath>,
    /// `[mail.dkim]`: every message is signed (R42).
    pub dkim: Option<crate::mail::DkimSigner>,
    /// `links.accept_url`, with `{token}` to replace.
    pub accept_url: String,
    /// `links.decline_url`, with `{token}` to replace (R40).
    pub decline_url: String,
    /// `links.partner_url`, with `{invitation_id}` to replace (R40).
    pub partner_url: String,
    /// `mail.product_name` and `mail.support_address` (R41).
    pub brand: Brand,
    /// `mail.reply_to_inviter` (R41).
    pub reply_to_inviter: bool,
    pub retry: RetryPolicy,
    pub send_rate: Arc<SendLimiter>,
    /// Writes the outcomes of attempts, several per transaction.
    pub recorder: Recorder,
}

/// One attempt's outcome as it is written: the attempt row with the outbox
/// row's new state, and the events it causes, if any.
pub struct Outcome {
    pub attempt: EmailAttempt,
    pub events: Vec<NewEvent>,
    /// R44, R46: a member invitation email given up: the invitation whose
    /// inviter is told, in the same transaction (see
    /// `Services::queue_undelivered_notice`), with the server's answer.
    pub undelivered: Option<(InvitationId, Option<String>)>,
}

/// What a lane does once an outcome is committed, or could not be.
pub type Recorded = Box<dyn FnOnce(ServiceResult<()>) + Send>;

struct PendingOutcome {
    outcome: Outcome,
    done: Recorded,
}

/// Records attempt outcomes in batches. A worker hands its outcome over and
/// goes on to its next email without waiting for the commit; what must wait
/// for the commit waits in the outcome's `done` (the dispatcher's permit for
/// the email, so no more than `delivery.workers` emails are ever claimed and
/// not yet recorded, and a crash leaves only those to their leases). A lane
/// takes whatever outcomes are waiting (up to `MAX_BATCH`) into one
/// transaction of two statements (`finish_email_attempts`, `insert_events`).
/// Why: one transaction per email cost a WAL flush and four round trips per
/// email; on this kind of machine every commit waits about a millisecond for
/// its flush under load, which capped delivery at a few hundred emails a
/// second (BENCHMARKS.md). A batch that fails is written again one outcome
/// per transaction, so one bad row cannot hold back the others.
#[derive(Clone)]
pub struct Recorder {
    queue: tokio::sync::mpsc::UnboundedSender<PendingOutcome>,
    /// The other end, taken in turn by the lanes.
    pending: Arc<tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<PendingOutcome>>>,
    services: Services,
}

/// Outcomes per transaction at most.
const MAX_BATCH: usize = 128;
/// Transactions being written at once. Two: each lane takes whatever waits
/// when it is free, so more lanes mean smaller batches, and every batch
/// pays two statements and a commit whatever its size. With four lanes a
/// 10,000-email delivery wrote ~1,400 batches of ~7 outcomes (2,047-2,480
/// emails/s), with two ~370 of ~27 (3,111-3,943/s), with one ~120 of ~80
/// (2,881-3,517/s: the one commit in flight holds every permit it frees
/// for a flush); same run, BENCHMARKS.md.
const LANES: usize = 2;

impl Recorder {
    /// A recorder whose lanes are not running yet: its owner runs
    /// [`Recorder::lanes`] (the dispatcher, as a task it owns, so a lane that
    /// panics is seen and the lanes restarted with the dispatcher).
    pub fn new(services: Services) -> Recorder {
        let (queue, rx) = tokio::sync::mpsc::unbounded_channel();
        Recorder {
            queue,
            pending: Arc::new(tokio::sync::Mutex::new(rx)),
            services,
        }
    }

    /// Runs the lanes, each a task of its own, until this future is dropped
    /// (which stops them). A lane that panics ends them all with its panic;
    /// the outcomes it held are dropped unrecorded (their leases retry them,
    /// and dropping their `done` returns their permits) and a new run takes
    /// over the queue.
    pub fn lanes(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut lanes = tokio::task::JoinSet::new();
        for _ in 0..LANES {
            lanes.spawn(record_lane(self.services.clone(), self.pending.clone()));
        }
        async move {
            while let Some(ended) = lanes.join_next().await {
                if let Err(error) = ended
                    && error.is_panic()
                {
                    std::panic::resume_unwind(error.into_panic());
                }
            }
        }
    }

    /// Queues one outcome, to be written together with whatever else is
    /// waiting; `done` is called with the result of its transaction.
    pub fn hand_over(&self, outcome: Outcome, done: Recorded) {
        if let Err(refused) = self.queue.send(PendingOutcome { outcome, done }) {
            (refused.0.done)(Err(ServiceError::Unavailable(
                "the delivery recorder stopped".into(),
            )));
        }
    }
}

async fn record_lane(
    services: Services,
    rx: Arc<tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<PendingOutcome>>>,
) {
    loop {
        let mut batch = Vec::new();
        {
            let mut rx = rx.lock().await;
            match rx.recv().await {
                Some(first) => batch.push(first),
                None => return,
            }
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
        }
        // One lock order for every batch.
        batch.sort_by_key(|p| p.outcome.attempt.outbox_id);
        if batch.len() > 1 {
            let outcomes: Vec<&Outcome> = batch.iter().map(|p| &p.outcome).collect();
            if write_outcomes(&services, &outcomes).await.is_ok() {
                for pending in batch {
                    (pending.done)(Ok(()));
                }
                continue;
            }
        }
        for pending in batch {
            let result = write_outcomes(&services, &[&pending.outcome]).await;
            (pending.done)(result);
        }
    }
}

/// One transaction for the batch: every attempt and outbox row in one
/// statement, then every event in one statement (on Postgres; SQLite writes
/// them row by row under its single writer).
async fn write_outcomes(services: &Services, outcomes: &[&Outcome]) -> ServiceResult<()> {
    let attempts: Vec<EmailAttempt> = outcomes.iter().map(|o| o.attempt.clone()).collect();
    let events: Vec<NewEvent> = outcomes
        .iter()
        .flat_map(|o| o.events.iter().cloned())
        .collect();
    let mut tx = services.store.begin().await?;
    tx.finish_email_attempts(&attempts).await?;
    tx.insert_events(&events).await?;
    for (invitation, detail) in outcomes.iter().filter_map(|o| o.undelivered.as_ref()) {
        services
            .queue_undelivered_notice(
                tx.as_mut(),
                *invitation,
                UndeliveredReason::Failed,
                detail.as_deref(),
            )
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

impl Delivery {
    /// Sends one email and hands the attempt to the recorder; returns once
    /// the outcome is queued there, not written. `recorded` is called when
    /// the outcome is committed, with the outcome (`None`: nothing was
    /// attempted, a reminder whose invitation is over), or with the error
    /// that kept it from being written: the lease then runs out and the
    /// email is tried again (at least once, R29).
    pub async fn deliver(
        &self,
        email: &ClaimedEmail,
        recorded: impl FnOnce(ServiceResult<Option<AttemptOutcome>>) + Send + 'static,
    ) {
        if email.template == TemplateName::Reminder {
            match self.reminder_moot(email).await {
                Ok(false) => {}
                moot_or_error => return recorded(moot_or_error.map(|_| None)),
            }
        }
        let started = Instant::now();
        let deadline = self.retry.deadline(email.created_at, expires_at(email));
        // Locales whose template failed before the one that rendered.
        let mut fallback = None;
        let sent = if self.mailer.is_holding() && Utc::now() >= deadline {
            // Held back by the open circuit breaker until after its give-up
            // deadline (R27): given up without touching the server. Its
            // claim was a probe's; the next email may probe at once.
            self.mailer.probe_unused();
            Err(MailError::Transient(Failure::Other(
                "not sent: the SMTP transport was down until the give-up deadline".into(),
            )))
        } else {
            match self.compose(email) {
                Ok((message, fell_back)) => {
                    fallback = fell_back;
                    let sender = self.return_path.as_ref().map(|p| p.address_for(email.id));
                    self.mailer.send_from(&message, sender.as_ref()).await
                }
                Err(e) => Err(e),
            }
        };
        let elapsed = started.elapsed();
        let now = Utc::now();
        let (outcome, kind, code, detail) = match &sent {
            Ok(reply) => (
                AttemptOutcome::Sent,
                "sent",
                Some(reply.code),
                Some(reply.to_string()),
            ),
            Err(error) => {
                let detail = Some(error.failure().to_string());
                let retry_after = match self.mailer.probe_interval() {
                    // Not this email's fault: it waits for the transport's
                    // next probe, with no backoff of its own.
                    Some(probe) if error.is_transport_fault() => (now
                        + chrono::Duration::from_std(probe).unwrap_or(chrono::Duration::MAX)
                        < deadline)
                        .then_some(probe),
                    _ if error.is_transient() => self.retry.next_retry(
                        email.attempts,
                        rand::rng().random::<f64>(),
                        now,
                        deadline,
                    ),
                    _ => None,
                };
                let outcome = match retry_after {
                    Some(after) => AttemptOutcome::Retry { after },
                    None => AttemptOutcome::Failed,
                };
                log_failure(email, error, &outcome);
                (outcome, error.kind(), error.code(), detail)
            }
        };
        metrics::email_attempt(email.template.as_str(), kind, elapsed.as_secs_f64());

        let attempt = EmailAttempt {
            outbox_id: email.id,
            business_id: email.business_id,
            outcome: outcome.clone(),
            kind,
            smtp_code: code,
            detail: detail.clone(),
            duration: elapsed,
        };
        let mut events: Vec<NewEvent> = Vec::new();
        // Noted once, with the attempt that ends the email (sent or given
        // up), not on every retry.
        if let Some(fallback) = fallback
            && !matches!(outcome, AttemptOutcome::Retry { .. })
        {
            events.push(event(
                email.business_id,
                email.invitation_id,
                None,
                None,
                Event::NotificationLocaleFallback(fallback),
            ));
        }
        let sent_or_failed = match &outcome {
            // The invitation itself reached someone: the member invitation, or
            // a partner invitation/request to one of the receiving managers.
            AttemptOutcome::Sent
                if [
                    TemplateName::MemberInvitation,
                    TemplateName::PartnerInvitation,
                    TemplateName::PartnerRequest,
                ]
                .contains(&email.template) =>
            {
                Some(event(
                    email.business_id,
                    email.invitation_id,
                    None,
                    None,
                    Event::InvitationSent(InvitationSent {
                        message_id: email.message_id.clone(),
                        attempts: email.attempts,
                        smtp_reply: detail,
                    }),
                ))
            }
            AttemptOutcome::Failed => Some(event(
                email.business_id,
                email.invitation_id,
                None,
                None,
                Event::NotificationFailed(NotificationFailed {
                    template: email.template,
                    message_id: email.message_id.clone(),
                    attempts: email.attempts,
                    smtp_code: code,
                    error: detail,
                }),
            )),
            _ => None,
        };
        events.extend(sent_or_failed);
        // R44, R46: the inviter hears of an invitation email given up.
        let undelivered = match (&outcome, email.invitation_id) {
            (AttemptOutcome::Failed, Some(invitation))
                if email.template == TemplateName::MemberInvitation =>
            {
                Some((invitation, attempt.detail.clone()))
            }
            _ => None,
        };
        let (template, locale) = (email.template, email.locale.clone());
        self.recorder.hand_over(
            Outcome {
                attempt,
                events,
                undelivered,
            },
            Box::new(move |result| {
                if result.is_ok() {
                    match &outcome {
                        AttemptOutcome::Sent => metrics::email_sent(template.as_str(), &locale),
                        AttemptOutcome::Failed => metrics::email_failed(template.as_str()),
                        AttemptOutcome::Retry { .. } => {}
                    }
                }
                recorded(result.map(|()| Some(outcome)));
            }),
        );
    }

    /// A reminder is never sent once its invitation left `pending` or passed
    /// its expiry (R32), nor to an address corrected since it was queued
    /// (R46): checked under the invitation's row lock, by database time,
    /// just before the send. The row is marked `cancelled` (no attempt
    /// was made) with an event for the timeline.
    async fn reminder_moot(&self, email: &ClaimedEmail) -> ServiceResult<bool> {
        let Some(invitation) = email.invitation_id else {
            return Ok(false);
        };
        let mut tx = self.services.store.begin().await?;
        let inv = tx.lock_invitation(invitation).await?;
        let now = tx.now().await?;
        let status = inv.as_ref().map(|i| i.view().effective_status(now));
        // R44: a bounce or a complaint about the invitation email stops
        // its reminders.
        let refused = inv
            .as_ref()
            .and_then(|i| i.delivery.as_ref())
            .map(|d| d.status)
            .filter(|s| matches!(s, OutboxStatus::Bounced | OutboxStatus::Complained));
        // R46: a reminder queued before the address was corrected goes to
        // the old address with the old token: it no longer applies (the new
        // address got its own invitation email).
        let readdressed = inv.as_ref().is_some_and(|i| {
            i.email
                .as_ref()
                .is_some_and(|e| !e.as_str().eq_ignore_ascii_case(&email.recipient))
        });
        let pending = status == Some(crate::domain::InvitationStatus::Pending);
        if pending && refused.is_none() && !readdressed {
            return Ok(false);
        }
        let why = match refused {
            _ if pending && readdressed => {
                "not sent: the invitation's address was corrected".to_string()
            }
            Some(s) if pending => format!("not sent: the invitation email {}", s.as_str()),
            _ => format!(
                "not sent: the invitation is {}",
                status.map_or("gone", |s| s.as_str())
            ),
        };
        tx.cancel_email(email.id, &why).await?;
        tx.insert_event(&event(
            email.business_id,
            email.invitation_id,
            None,
            None,
            Event::NotificationCancelled(NotificationCancelled {
                template: email.template,
                message_id: email.message_id.clone(),
                reason: why,
            }),
        ))
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Renders the stored context into a message. The token is derived again
    /// here and exists only in the message (see `domain::token`); so do the
    /// decline link made of it and the partner link (R40). A template that
    /// fails at run time falls back along the locale chain (issue 12): the
    /// message is then in another locale, and the second value says which
    /// locales failed, for the timeline. Only when every locale fails is the
    /// email failed (permanently: rendering again cannot help).
    fn compose(
        &self,
        email: &ClaimedEmail,
    ) -> Result<(lettre::Message, Option<NotificationLocaleFallback>), crate::mail::MailError> {
        let permanent =
            |what: String| crate::mail::MailError::Permanent(crate::mail::Failure::Other(what));
        let template: TemplateName = email.template;
        let partner_url = match template {
            TemplateName::PartnerInvitation | TemplateName::PartnerRequest => {
                email.invitation_id.map(|id| {
                    self.partner_url
                        .replace("{invitation_id}", &id.0.to_string())
                })
            }
            _ => None,
        };
        let context = prepare(&email.context, &self.brand, partner_url, |nonce| {
            let invitation = email
                .invitation_id
                .ok_or_else(|| "token without invitation".to_string())?;
            let token = self.services.token_for(invitation.0, &TokenNonce(nonce));
            Ok(TokenLinks {
                accept_url: self.accept_url.replace("{token}", token.expose()),
                decline_url: self.decline_url.replace("{token}", token.expose()),
            })
        })
        .map_err(permanent)?;
        let crate::mail::Fallback { rendered, failed } = self
            .templates
            .render_with_fallback(template, &email.locale, &context)
            .map_err(|e| permanent(e.to_string()))?;
        let fallback = (!failed.is_empty()).then(|| {
            for (locale, error) in &failed {
                tracing::warn!(
                    email_id = %email.id, template = %template, requested_locale = %email.locale,
                    failed_locale = %locale, used_locale = %rendered.locale, error = %error,
                    "an email template failed to render; the email is sent in the next locale of the fallback chain"
                );
            }
            NotificationLocaleFallback {
                template,
                message_id: email.message_id.clone(),
                requested_locale: email.locale.clone(),
                locale: rendered.locale.clone(),
                failed: failed
                    .into_iter()
                    .map(|(locale, error)| FailedLocale { locale, error })
                    .collect(),
            }
        });
        // R41: a reply goes to the person the email speaks for, when the
        // operator wants that; an address that does not parse (a row
        // queued long ago) leaves the header out rather than the email.
        let reply_to = self
            .reply_to_inviter
            .then(|| on_behalf_of(&email.context))
            .flatten()
            .and_then(|(name, address)| {
                let name = crate::mail::one_line(&name);
                // An inviter without a display name is named by the address.
                let name = (!name.is_empty() && name != address).then_some(name);
                Some(lettre::message::Mailbox::new(name, address.parse().ok()?))
            });
        let mut message = build_message(
            &self.from,
            &email.recipient,
            email.recipient_name.as_deref(),
            &email.message_id,
            &rendered,
            reply_to.as_ref(),
        )?;
        // Signed last, over the message as it will be sent (R42).
        if let Some(dkim) = &self.dkim {
            dkim.sign_message(&mut message)
                .map_err(|e| permanent(format!("DKIM signing failed: {e}")))?;
        }
        Ok((message, fallback))
    }
}

/// Every failed attempt at WARN, every email given up at ERROR, with what
/// identifies it and the server's reply; never the token or the body (the
/// error describes the exchange, not the message).
fn log_failure(email: &ClaimedEmail, error: &MailError, outcome: &AttemptOutcome) {
    let invitation_id = email
        .invitation_id
        .map(|i| i.0.to_string())
        .unwrap_or_default();
    match outcome {
        AttemptOutcome::Retry { after } => tracing::warn!(
            %invitation_id, email_id = %email.id, template = %email.template, locale = %email.locale,
            attempt = email.attempts, smtp_reply = %error.failure(), retry_in = ?after,
            "email delivery attempt failed; it will be retried"
        ),
        AttemptOutcome::Failed => tracing::error!(
            %invitation_id, email_id = %email.id, template = %email.template, locale = %email.locale,
            attempt = email.attempts, smtp_reply = %error.failure(),
            "email given up: it will not be sent (notification.failed)"
        ),
        AttemptOutcome::Sent => {}
    }
}

fn expires_at(email: &ClaimedEmail) -> Option<DateTime<Utc>> {
    email
        .context
        .get(EXPIRES_AT_KEY)
        .and_then(|v| v.as_str())
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}
