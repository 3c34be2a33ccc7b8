//! Metric names in one place, as `OPERATIONS.md` lists them. Recording goes
//! through the `metrics` facade; the Prometheus exporter that serves them is
//! installed by the composition root.

pub fn actors_live(actor: &'static str, n: usize) {
    metrics::gauge!("invited_actors_live", "actor" => actor).set(n as f64);
}

pub fn actor_restarted(actor: &'static str) {
    metrics::counter!("invited_actor_restarts_total", "actor" => actor).increment(1);
}

pub fn invitations_created(kind: &'static str, n: usize) {
    metrics::counter!("invited_invitations_created_total", "kind" => kind).increment(n as u64);
}

pub fn invitation_transition(kind: &'static str, to: &'static str) {
    metrics::counter!("invited_invitation_transitions_total", "kind" => kind, "to" => to)
        .increment(1);
}

pub fn rate_limited() {
    metrics::counter!("invited_rate_limited_total").increment(1);
}

pub fn email_attempt(template: &str, outcome: &'static str, seconds: f64) {
    let template = template.to_string();
    metrics::counter!("invited_email_attempts_total", "template" => template.clone(), "outcome" => outcome).increment(1);
    metrics::histogram!("invited_email_send_seconds", "template" => template).record(seconds);
}

pub fn email_sent(template: &str, locale: &str) {
    metrics::counter!("invited_emails_sent_total", "template" => template.to_string(), "locale" => locale.to_string())
        .increment(1);
}

pub fn email_failed(template: &str) {
    metrics::counter!("invited_email_failed_total", "template" => template.to_string())
        .increment(1);
}
