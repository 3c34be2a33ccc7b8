//! Time-driven chores, run by the scheduler actor on
//! `invitations.expiry_schedule`: the expiry sweep (R11, and R51's join
//! requests), reminders (R32),
//! the purge of idempotency keys older than a day, of webhook delivery
//! attempts older than 30 days (R48) and of the sinks' counts per minute
//! older than two hours (the console's charts, R49). Each works in batches, one
//! transaction per batch, and is safe to run on every replica at once: rows
//! are claimed with `SKIP LOCKED` and every write is guarded by the state it
//! changes (an invitation expires only while pending; a reminder row is
//! unique), so each invitation expires once and gets each reminder once.

use std::time::Duration;

use super::{ServiceResult, Services, event};
use crate::domain::{DomainError, InvitationStatus};
use crate::events::catalog::{Event, ReminderQueued};

/// How many rows one transaction of a chore handles.
pub const BATCH: u32 = 500;

/// Idempotency keys are kept 24 hours (docs/api.md).
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

/// Delivery attempts of webhook endpoints are kept 30 days (docs/api.md).
pub const WEBHOOK_ATTEMPTS_TTL: chrono::TimeDelta = chrono::TimeDelta::days(30);

/// The sinks' counts per minute are kept two hours: the console charts the
/// last one (docs/console.md).
pub const SINK_MINUTES_TTL: chrono::TimeDelta = chrono::TimeDelta::hours(2);

/// What one run of the chores did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChoreReport {
    pub expired: u64,
    /// Join requests moved to `expired` (R51).
    pub join_requests_expired: u64,
    pub reminders_queued: u64,
    pub idempotency_keys_purged: u64,
    pub webhook_attempts_purged: u64,
    pub sink_minutes_purged: u64,
}

impl Services {
    /// Runs every chore once, each until nothing is left to do. An error in one
    /// chore does not keep the others from running; the first is returned.
    pub async fn run_chores(&self) -> ServiceResult<ChoreReport> {
        let mut report = ChoreReport::default();
        let expired = self.expire_due(BATCH).await;
        let requests = self.expire_due_join_requests(BATCH).await;
        let reminders = self.queue_due_reminders(BATCH).await;
        let purged: ServiceResult<u64> = self
            .store
            .purge_idempotency_keys(IDEMPOTENCY_TTL)
            .await
            .map_err(Into::into);
        report.expired = expired.as_ref().copied().unwrap_or(0);
        report.join_requests_expired = requests.as_ref().copied().unwrap_or(0);
        report.reminders_queued = reminders.as_ref().copied().unwrap_or(0);
        let attempts: ServiceResult<u64> = self
            .store
            .purge_webhook_deliveries(chrono::Utc::now() - WEBHOOK_ATTEMPTS_TTL)
            .await
            .map_err(Into::into);
        let minutes: ServiceResult<u64> = self
            .store
            .purge_chart_minutes(chrono::Utc::now() - SINK_MINUTES_TTL)
            .await
            .map_err(Into::into);
        report.idempotency_keys_purged = purged.as_ref().copied().unwrap_or(0);
        report.webhook_attempts_purged = attempts.as_ref().copied().unwrap_or(0);
        report.sink_minutes_purged = minutes.as_ref().copied().unwrap_or(0);
        expired?;
        requests?;
        reminders?;
        purged?;
        attempts?;
        minutes?;
        Ok(report)
    }

    /// R11: moves every pending invitation past its expiry to `expired`, with
    /// an `invitation.expired` event in the same transaction as each move.
    pub async fn expire_due(&self, batch: u32) -> ServiceResult<u64> {
        let mut total = 0;
        loop {
            let mut tx = self.store.begin().await?;
            let expired = tx.expire_due_invitations(batch).await?;
            for (id, business) in &expired {
                tx.insert_event(&event(
                    *business,
                    Some(*id),
                    None,
                    Some((InvitationStatus::Pending, InvitationStatus::Expired)),
                    Event::InvitationExpired,
                ))
                .await?;
            }
            tx.commit().await?;
            total += expired.len() as u64;
            if (expired.len() as u32) < batch {
                return Ok(total);
            }
        }
    }

    /// R32: queues each due reminder once. When the daemon was down long
    /// enough for several offsets to pass, only the latest one is sent.
    pub async fn queue_due_reminders(&self, batch: u32) -> ServiceResult<u64> {
        let offsets = self.settings.reminders.clone();
        let mut total = 0;
        for (i, offset) in offsets.iter().enumerate() {
            let next = offsets.get(i + 1).copied();
            loop {
                let (queued, seen) = self.queue_reminder_batch(*offset, next, batch).await?;
                total += queued;
                if seen < batch {
                    break;
                }
            }
        }
        Ok(total)
    }

    /// One transaction: the reminder row, the outbox row and the event of
    /// each due invitation. Returns (queued, rows looked at).
    async fn queue_reminder_batch(
        &self,
        offset: Duration,
        next: Option<Duration>,
        batch: u32,
    ) -> ServiceResult<(u64, u32)> {
        let mut tx = self.store.begin().await?;
        let due = tx.due_reminders(offset, next, batch).await?;
        let mut queued = 0;
        for id in &due {
            // Already locked by `due_reminders`; this reads the whole record.
            let Some(inv) = tx.lock_invitation(*id).await? else {
                continue;
            };
            // R38: `due_reminders` already leaves out invitations the app
            // delivers itself; this keeps a reminder from ever carrying
            // their link should a store not.
            if !inv.delivery_mode.sends_email() {
                continue;
            }
            // A plain read: the business row is not locked here, so the lock
            // order (business, then invitation) is never reversed.
            let business = self
                .store
                .get_business(inv.business_id)
                .await?
                .ok_or_else(|| DomainError::NotFound(format!("business {}", inv.business_id)))?;
            let Some(inviter) = tx.get_user(&inv.invited_by).await? else {
                continue;
            };
            let time_zone = match &inv.email {
                Some(address) => tx.time_zone_by_email(address).await?,
                None => None,
            };
            let email = self.reminder_email(&inv, &business, &inviter, time_zone);
            if !tx
                .record_reminder(inv.id, inv.business_id, offset, email.id)
                .await?
            {
                continue;
            }
            tx.enqueue_email(&email).await?;
            tx.insert_event(&event(
                inv.business_id,
                Some(inv.id),
                None,
                None,
                Event::InvitationReminderQueued(ReminderQueued {
                    after: offset,
                    message_id: email.message_id.clone(),
                }),
            ))
            .await?;
            queued += 1;
        }
        tx.commit().await?;
        Ok((queued, due.len() as u32))
    }
}
