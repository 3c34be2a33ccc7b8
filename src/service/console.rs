//! The operator console's use cases (R49): its sessions, the reads behind
//! its pages, and its actions. An action that changes an email writes its
//! `console.action` event in the same transaction, on the email's
//! invitation, so the invitation's timeline shows who did it.
//!
//! The console is for operators, not for a business's members: its reads
//! check no membership (the API key that signed in is the authority).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sha2::Digest as _;
use uuid::Uuid;

use super::{ServiceResult, Services};
use crate::config::Scope;
use crate::domain::quota::QuotaStatus;
use crate::domain::{BusinessId, DomainError, Email, InvitationId};
use crate::events::catalog::{ConsoleAction, ConsoleActionKind, Event, Subject};
use crate::store::{
    BusinessRecord, CONSOLE_LIMIT, ConsoleBusinessRow, ConsoleEmailRow, ConsoleInvitationRow,
    ConsoleSession, FailedFilter, InvitationRecord, MemberRecord, MinuteTally, OperatorActionRow,
    SinkLag, SinkMinute, SuppressionQuery, SuppressionRecord, TimelineEntry, WebhookEndpointRecord,
    endpoint_sink,
};

/// How long a console session lasts after signing in.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// The most emails one "retry all matching" puts back.
pub const RETRY_ALL_LIMIT: u32 = 1000;

/// A session as the console's pages use it.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub key_name: String,
    pub scope: Scope,
    pub csrf_token: String,
}

/// A new session: the id goes into the cookie and is never stored.
#[derive(Clone, Debug)]
pub struct NewSession {
    pub id: String,
    pub session: Session,
}

/// The console sessions this process found live lately, by their id's
/// hash. Only a hint for how a page orders its work
/// ([`Services::console_session_seen`]): a session is always checked in
/// the database, so a session signed out on another replica is refused
/// here too.
#[derive(Default)]
pub struct LiveSessions(Mutex<HashMap<Vec<u8>, Instant>>);

impl LiveSessions {
    /// How long a session found live counts as seen.
    const FOR: Duration = Duration::from_secs(600);
    /// The most sessions remembered; beyond it the stale ones go, and if
    /// none is stale, all (the hint is lost, nothing else).
    const MAX: usize = 10_000;

    fn seen(&self, hash: &[u8]) -> bool {
        let seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(hash).is_some_and(|at| at.elapsed() < Self::FOR)
    }

    fn live(&self, hash: Vec<u8>) {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= Self::MAX {
            seen.retain(|_, at| at.elapsed() < Self::FOR);
            if seen.len() >= Self::MAX {
                seen.clear();
            }
        }
        seen.insert(hash, Instant::now());
    }

    fn gone(&self, hash: &[u8]) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(hash);
    }
}

/// What the search found.
#[derive(Clone, Debug, Default)]
pub struct SearchResults {
    pub invitations: Vec<ConsoleInvitationRow>,
    pub businesses: Vec<ConsoleBusinessRow>,
}

/// One invitation's whole story.
#[derive(Clone, Debug)]
pub struct InvitationStory {
    pub invitation: InvitationRecord,
    pub business_name: String,
    /// The inviter's display name, when they gave one.
    pub inviter_display_name: Option<String>,
    pub timeline: Vec<TimelineEntry>,
    pub emails: Vec<ConsoleEmailRow>,
    /// The event sinks with their lag.
    pub sinks: Vec<SinkLag>,
    /// For each of its events (by id), the sinks whose cursor is past it:
    /// those that took it.
    pub taken_by: HashMap<Uuid, Vec<String>>,
}

/// A business as an operator sees it.
#[derive(Clone, Debug)]
pub struct BusinessView {
    pub business: BusinessRecord,
    pub members: Vec<MemberRecord>,
    pub pending: Vec<ConsoleInvitationRow>,
    /// Seats in use (R9): members and pending member invitations.
    pub seats_used: u64,
    pub quota: QuotaStatus,
}

/// One minute of the outbox chart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MinuteCounts {
    pub sent: u32,
    pub failed: u32,
}

/// The outboxes: emails and the event sinks (webhooks, NATS).
#[derive(Clone, Debug)]
pub struct OutboxView {
    pub email_depth: u64,
    pub email_oldest_age_seconds: f64,
    pub sinks: Vec<SinkLag>,
    /// Emails sent and given up: sixty minutes, oldest first, ending with
    /// the current one.
    pub emails: Chart,
    /// Deliveries to webhook endpoints (R48) that got a 2xx or did not.
    pub webhooks: Chart,
    /// The sinks that keep no per-attempt rows (NATS, the configured
    /// webhooks): events delivered and failed attempts, by sink name.
    pub sink_charts: Vec<SinkChart>,
    pub now: DateTime<Utc>,
}

/// One sink's chart, from its `sink_minutes` counts.
#[derive(Clone, Debug)]
pub struct SinkChart {
    pub sink: String,
    pub chart: Chart,
}

/// Sent and failed per minute over the last hour.
#[derive(Clone, Debug)]
pub struct Chart {
    pub minutes: Vec<MinuteCounts>,
    /// Its counts were cut short (a sink chart that read
    /// [`SINK_MINUTES_LIMIT`] rows).
    pub truncated: bool,
}

impl Chart {
    fn of(
        now: DateTime<Utc>,
        tallies: impl IntoIterator<Item = MinuteTally>,
        truncated: bool,
    ) -> Chart {
        Chart {
            minutes: sixty_minutes(now, tallies),
            truncated,
        }
    }
}

/// The failed deliveries page.
#[derive(Clone, Debug)]
pub struct FailedView {
    pub emails: Vec<ConsoleEmailRow>,
    pub total: u64,
}

/// A webhook endpoint with its cursor's lag and the latest console actions
/// on it.
#[derive(Clone, Debug)]
pub struct EndpointView {
    pub endpoint: WebhookEndpointRecord,
    pub lag: Option<SinkLag>,
    /// Newest first, at most [`ENDPOINT_ACTIONS`].
    pub actions: Vec<EndpointAction>,
}

/// A pause, resume or replay of an endpoint, from its `console.action`
/// event.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointAction {
    pub at: DateTime<Utc>,
    pub action: ConsoleActionKind,
    pub key_name: String,
    /// A replay's starting time.
    pub since: Option<DateTime<Utc>>,
}

/// The console actions the webhook endpoints page shows per endpoint.
pub const ENDPOINT_ACTIONS: usize = 5;

/// The operator events the webhook endpoints page reads (for all its
/// endpoints together).
pub const OPERATOR_ACTIONS_LIMIT: u32 = 200;

/// The most `sink_minutes` rows the outbox page reads: an hour of minutes
/// and [`CLOCK_SKEW`]'s margin for 100 sinks.
pub const SINK_MINUTES_LIMIT: u32 = 6_600;

/// How far this process's clock may be from the database's before the
/// outbox page's charts lose their oldest minutes.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// The actions of `rows` on `endpoint`, newest first. A row that does not
/// parse (an action of a newer build, say) is left out.
fn actions_on(endpoint: Uuid, rows: &[OperatorActionRow]) -> Vec<EndpointAction> {
    let target = endpoint.to_string();
    rows.iter()
        .filter(|r| r.target.as_deref() == Some(target.as_str()))
        .filter_map(|r| {
            Some(EndpointAction {
                at: r.occurred_at,
                action: ConsoleActionKind::parse(r.action.as_deref()?)?,
                key_name: r.key_name.clone()?,
                since: r.since.as_deref().and_then(|s| s.parse().ok()),
            })
        })
        .take(ENDPOINT_ACTIONS)
        .collect()
}

/// The `console.action` event of an action on a webhook endpoint: an
/// operator event, on no business.
fn endpoint_action(
    action: ConsoleActionKind,
    key_name: &str,
    endpoint: Uuid,
    since: Option<DateTime<Utc>>,
) -> crate::store::NewEvent {
    ConsoleAction {
        action,
        key_name: key_name.to_owned(),
        target: endpoint.to_string(),
        since,
    }
    .into_operator_event()
}

/// The hash under which a session id is stored.
pub fn session_hash(id: &str) -> Vec<u8> {
    sha2::Sha256::digest(id.as_bytes()).to_vec()
}

fn random_token() -> String {
    use base64::Engine as _;
    use rand::RngExt as _;
    let bytes: [u8; 32] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A chart for every sink but the runtime endpoints (drawn together in
/// the webhooks chart, [`endpoints_chart`]): those with a cursor (an idle
/// sink gets an empty chart) and those with counts (a sink since removed
/// from the configuration), by name.
pub fn sink_charts(
    now: DateTime<Utc>,
    cursors: &[SinkLag],
    minutes: &[SinkMinute],
    truncated: bool,
) -> Vec<SinkChart> {
    let mut names: std::collections::BTreeSet<&str> = cursors
        .iter()
        .map(|l| l.sink.as_str())
        .chain(minutes.iter().map(|m| m.sink.as_str()))
        .collect();
    names.retain(|name| !is_endpoint(name));
    names
        .into_iter()
        .map(|sink| SinkChart {
            sink: sink.to_owned(),
            chart: Chart::of(
                now,
                minutes.iter().filter(|m| m.sink == sink).map(tally),
                truncated,
            ),
        })
        .collect()
}

/// The deliveries to every runtime endpoint (R48) together.
pub fn endpoints_chart(now: DateTime<Utc>, minutes: &[SinkMinute], truncated: bool) -> Chart {
    let endpoints = minutes.iter().filter(|m| is_endpoint(&m.sink)).map(tally);
    Chart::of(now, endpoints, truncated)
}

fn is_endpoint(sink: &str) -> bool {
    sink.starts_with("endpoint:")
}

fn tally(m: &SinkMinute) -> MinuteTally {
    MinuteTally {
        minute: m.minute,
        sent: m.sent,
        failed: m.failed,
    }
}

/// The chart's sixty bars, oldest first, ending with the minute of `now`;
/// a minute without a tally is empty, one that began an hour or more
/// before `now` is left out.
pub fn sixty_minutes(
    now: DateTime<Utc>,
    tallies: impl IntoIterator<Item = MinuteTally>,
) -> Vec<MinuteCounts> {
    let mut minutes = vec![MinuteCounts::default(); 60];
    for tally in tallies {
        let ago = (now - tally.minute).num_seconds();
        if !(0..3600).contains(&ago) {
            continue;
        }
        let slot = &mut minutes[59 - (ago / 60) as usize];
        let clamp = |n: u64| n.min(u64::from(u32::MAX)) as u32;
        slot.sent = slot.sent.saturating_add(clamp(tally.sent));
        slot.failed = slot.failed.saturating_add(clamp(tally.failed));
    }
    minutes
}

impl Services {
    /// Signs in an API key (already checked by the caller) for
    /// [`SESSION_TTL`].
    pub async fn console_sign_in(&self, key_name: &str, scope: Scope) -> ServiceResult<NewSession> {
        let id = random_token();
        let session = Session {
            key_name: key_name.to_owned(),
            scope,
            csrf_token: random_token(),
        };
        let ttl = chrono::Duration::from_std(SESSION_TTL).unwrap_or(chrono::Duration::hours(12));
        self.store
            .insert_console_session(&ConsoleSession {
                id_hash: session_hash(&id),
                key_name: session.key_name.clone(),
                scope: scope.as_str().to_owned(),
                csrf_token: session.csrf_token.clone(),
                expires_at: Utc::now() + ttl,
            })
            .await?;
        tracing::info!(key = %key_name, %scope, "console: signed in");
        Ok(NewSession { id, session })
    }

    /// The live session with this id.
    pub async fn console_session(&self, id: &str) -> ServiceResult<Option<Session>> {
        let hash = session_hash(id);
        let Some(stored) = self.store.console_session(&hash).await? else {
            self.console_sessions.gone(&hash);
            return Ok(None);
        };
        let Some(scope) = Scope::parse(&stored.scope) else {
            return Ok(None);
        };
        self.console_sessions.live(hash);
        Ok(Some(Session {
            key_name: stored.key_name,
            scope,
            csrf_token: stored.csrf_token,
        }))
    }

    /// Whether the session with this id was found live here lately: a page
    /// may then start its reads while the session is checked.
    pub fn console_session_seen(&self, id: &str) -> bool {
        self.console_sessions.seen(&session_hash(id))
    }

    pub async fn console_sign_out(&self, id: &str) -> ServiceResult<()> {
        let hash = session_hash(id);
        self.console_sessions.gone(&hash);
        Ok(self.store.delete_console_session(&hash).await?)
    }

    /// Searches by invitation id, recipient address, business id (or its
    /// public id) or a part of a business's name.
    pub async fn console_search(&self, q: &str) -> ServiceResult<SearchResults> {
        let q = q.trim();
        if q.is_empty() {
            return Ok(SearchResults::default());
        }
        let uuid = Uuid::parse_str(q).ok();
        let email = q.contains('@').then_some(q);
        let businesses = async {
            match email {
                Some(_) => Ok(Vec::new()),
                None => {
                    self.store
                        .console_search_businesses(uuid.map(BusinessId), q)
                        .await
                }
            }
        };
        let (invitations, businesses) = tokio::try_join!(
            self.store
                .console_search_invitations(uuid.map(InvitationId), email),
            businesses,
        )?;
        Ok(SearchResults {
            invitations,
            businesses,
        })
    }

    /// The page's reads run at once (each on a connection of its own), so
    /// it answers in about the time of its slowest read rather than their
    /// sum; the same for the other pages with several reads.
    pub async fn console_invitation(&self, id: InvitationId) -> ServiceResult<InvitationStory> {
        // Four statements (the timeline is one); the names come with the
        // invitation, the sinks that took each event with their lag.
        let (found, timeline, emails, taking) = tokio::try_join!(
            self.store.console_invitation(id),
            self.store.timeline(id),
            self.store.console_invitation_emails(id),
            self.store.event_lag_taking(id),
        )?;
        let found = found.ok_or_else(|| DomainError::NotFound(format!("invitation {id}")))?;
        let mut taken_by: HashMap<Uuid, Vec<String>> = HashMap::new();
        let mut sinks = Vec::with_capacity(taking.len());
        for sink in taking {
            for event in sink.taken {
                taken_by
                    .entry(event)
                    .or_default()
                    .push(sink.lag.sink.clone());
            }
            sinks.push(sink.lag);
        }
        Ok(InvitationStory {
            invitation: found.invitation,
            business_name: found.business_name,
            inviter_display_name: found.inviter_display_name,
            timeline,
            emails,
            sinks,
            taken_by,
        })
    }

    pub async fn console_business(&self, id: BusinessId) -> ServiceResult<BusinessView> {
        let (business, members, pending, pending_members, (_now, recent)) = tokio::try_join!(
            self.store.get_business(id),
            self.store.list_members(id),
            self.store.console_pending_invitations(id),
            self.store.console_pending_member_count(id),
            self.store.quota_window(id, self.settings.quota.window),
        )?;
        let business = business.ok_or_else(|| DomainError::NotFound(format!("business {id}")))?;
        let seats_used = members.len() as u64 + pending_members;
        Ok(BusinessView {
            business,
            members,
            pending,
            seats_used,
            quota: self.settings.quota.status(&recent),
        })
    }

    /// The charts are drawn by the database's clock (the counters' minutes
    /// are its minutes), read together with the counters: they are read
    /// from a little more than an hour before this process's clock, so a
    /// few minutes of skew between the two clocks cost nothing.
    pub async fn console_outbox(&self) -> ServiceResult<OutboxView> {
        let since = Utc::now() - chrono::Duration::hours(1) - CLOCK_SKEW;
        let (now, (email_depth, email_oldest_age_seconds), lags, emails, minutes) = tokio::try_join!(
            self.store.console_now(),
            self.store.console_email_depth(),
            self.store.event_lag(),
            self.store.console_email_minutes(since),
            self.store
                .console_sink_minutes_since(since, SINK_MINUTES_LIMIT),
        )?;
        // The limit cut the oldest rows off: the charts say so.
        let truncated = minutes.len() as u32 >= SINK_MINUTES_LIMIT;
        let hour_ago = now - chrono::Duration::hours(1);
        let minutes: Vec<_> = minutes
            .into_iter()
            .filter(|m| m.minute >= hour_ago)
            .collect();
        let sink_charts = sink_charts(now, &lags, &minutes, truncated);
        Ok(OutboxView {
            email_depth,
            email_oldest_age_seconds,
            sinks: lags,
            emails: Chart::of(now, emails, false),
            webhooks: endpoints_chart(now, &minutes, truncated),
            sink_charts,
            now,
        })
    }

    pub async fn console_failed(&self, filter: &FailedFilter) -> ServiceResult<FailedView> {
        let (emails, total) = tokio::try_join!(
            self.store.console_failed_emails(filter, CONSOLE_LIMIT),
            self.store.console_count_failed(filter),
        )?;
        Ok(FailedView { emails, total })
    }

    pub async fn console_count_failed(&self, filter: &FailedFilter) -> ServiceResult<u64> {
        Ok(self.store.console_count_failed(filter).await?)
    }

    /// Puts failed emails back in the outbox (one, or every one matching
    /// `filter`, at most [`RETRY_ALL_LIMIT`]) with a `console.action` event
    /// each, in one transaction; the dispatcher is woken at commit.
    pub async fn console_retry(
        &self,
        key_name: &str,
        only: Option<Uuid>,
        filter: &FailedFilter,
    ) -> ServiceResult<Vec<ConsoleEmailRow>> {
        let mut tx = self.store.begin().await?;
        let requeued = tx
            .requeue_failed_emails(only, filter, RETRY_ALL_LIMIT)
            .await?;
        let events = requeued
            .iter()
            .map(|email| {
                Event::ConsoleAction(ConsoleAction {
                    action: ConsoleActionKind::RetryEmail,
                    key_name: key_name.to_owned(),
                    target: email.message_id.clone(),
                    since: None,
                })
                .into_new_event(Subject {
                    business: email.business_id,
                    invitation: email.invitation_id,
                    actor: None,
                    transition: None,
                })
            })
            .collect::<Vec<_>>();
        tx.insert_events(&events).await?;
        tx.commit().await?;
        crate::metrics::console_action(
            ConsoleActionKind::RetryEmail.as_str(),
            requeued.len() as u64,
        );
        tracing::info!(key = %key_name, count = requeued.len(), "console: failed emails put back in the outbox");
        Ok(requeued)
    }

    pub async fn console_webhooks(&self) -> ServiceResult<Vec<EndpointView>> {
        let (endpoints, lags, actions) = tokio::try_join!(
            self.store.webhook_endpoints(),
            self.store.event_lag(),
            self.store.console_operator_actions(OPERATOR_ACTIONS_LIMIT),
        )?;
        Ok(endpoints
            .into_iter()
            .map(|endpoint| {
                let sink = endpoint_sink(endpoint.id);
                let lag = lags.iter().find(|l| l.sink == sink).cloned();
                let actions = actions_on(endpoint.id, &actions);
                EndpointView {
                    endpoint,
                    lag,
                    actions,
                }
            })
            .collect())
    }

    /// Pauses (`true`) or resumes a webhook endpoint, with its
    /// `console.action` event in the same transaction. Endpoints belong to
    /// no business, so the event is an operator event (no business, R49).
    pub async fn console_pause_webhook(
        &self,
        key_name: &str,
        id: Uuid,
        paused: bool,
    ) -> ServiceResult<()> {
        let action = if paused {
            ConsoleActionKind::PauseWebhook
        } else {
            ConsoleActionKind::ResumeWebhook
        };
        let mut tx = self.store.begin().await?;
        tx.pause_webhook_endpoint(id, paused)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("webhook endpoint {id}")))?;
        tx.insert_event(&endpoint_action(action, key_name, id, None))
            .await?;
        tx.commit().await?;
        crate::metrics::console_action(action.as_str(), 1);
        tracing::info!(key = %key_name, endpoint = %id, paused, "console.action: webhook endpoint paused or resumed");
        Ok(())
    }

    /// Replays an endpoint's events since `since` (R48's replay), with its
    /// `console.action` event in the same transaction (an operator event,
    /// as for a pause). The endpoint gets that event too: it commits after
    /// the cursor's new place.
    pub async fn console_replay_webhook(
        &self,
        key_name: &str,
        id: Uuid,
        since: DateTime<Utc>,
    ) -> ServiceResult<()> {
        // Read before the transaction, as the API's replay does: on
        // Postgres it must see the commits numbered so far on its own.
        let to = self.store.event_position_before(since).await?;
        let mut tx = self.store.begin().await?;
        if !tx.replay_webhook_endpoint_to(id, to).await? {
            return Err(DomainError::NotFound(format!("webhook endpoint {id}")).into());
        }
        tx.insert_event(&endpoint_action(
            ConsoleActionKind::ReplayWebhook,
            key_name,
            id,
            Some(since),
        ))
        .await?;
        tx.commit().await?;
        crate::metrics::console_action(ConsoleActionKind::ReplayWebhook.as_str(), 1);
        tracing::info!(key = %key_name, endpoint = %id, %since, "console.action: webhook endpoint replayed");
        Ok(())
    }

    /// A page of the suppression list, from `after`, or the one address.
    pub async fn console_suppressions(
        &self,
        email: Option<Email>,
        after: Option<String>,
    ) -> ServiceResult<Vec<SuppressionRecord>> {
        Ok(self
            .store
            .list_suppressions(&SuppressionQuery {
                email,
                after,
                limit: CONSOLE_LIMIT,
            })
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_fall_into_their_bar() {
        let now: DateTime<Utc> = "2026-12-03T10:00:30Z".parse().unwrap();
        let tally = |minute: &str, sent, failed| MinuteTally {
            minute: minute.parse().unwrap(),
            sent,
            failed,
        };
        let minutes = sixty_minutes(
            now,
            [
                tally("2026-12-03T10:00:00Z", 2, 0),
                tally("2026-12-03T09:59:00Z", 0, 1),
                tally("2026-12-03T09:01:00Z", 1, 0),
                tally("2026-12-03T09:00:00Z", 5, 5),
            ],
        );
        assert_eq!(minutes.len(), 60);
        assert_eq!(minutes[59], MinuteCounts { sent: 2, failed: 0 });
        assert_eq!(minutes[58], MinuteCounts { sent: 0, failed: 1 });
        assert_eq!(minutes[0], MinuteCounts { sent: 1, failed: 0 });
        let total: u32 = minutes.iter().map(|m| m.sent + m.failed).sum();
        assert_eq!(total, 4, "the minute that began an hour ago is not drawn");
    }

    #[test]
    fn a_session_counts_as_seen_from_found_live_until_gone() {
        let sessions = LiveSessions::default();
        let (a, b) = (session_hash("a"), session_hash("b"));
        assert!(!sessions.seen(&a));
        sessions.live(a.clone());
        assert!(sessions.seen(&a));
        assert!(!sessions.seen(&b));
        sessions.gone(&a);
        assert!(!sessions.seen(&a));
        // Full (none stale): all hints go at once; never more than the
        // bound, and the newest is kept.
        for n in 0..LiveSessions::MAX + 5 {
            sessions.live(session_hash(&n.to_string()));
        }
        let kept = sessions.0.lock().unwrap().len();
        assert!(kept <= LiveSessions::MAX, "{kept} remembered");
        assert!(sessions.seen(&session_hash(&(LiveSessions::MAX + 4).to_string())));
    }

    #[test]
    fn session_ids_are_stored_hashed() {
        let id = random_token();
        assert_eq!(id.len(), 43);
        assert_ne!(session_hash(&id), id.as_bytes());
        assert_eq!(session_hash(&id).len(), 32);
    }
}
