//! Part 2b: the operator console against the API's own reads (issue 15: the
//! console "answers within the same latency budget as the API"). It runs in
//! the lifecycle part's daemon, on the database that part leaves (its
//! thousands of accepted invitations, their emails and attempts, the paced
//! creates), plus failed emails, suppressions and paused webhook endpoints
//! added here so every page has rows to show.
//!
//! Each console page and each API route is asked in turn, interleaved, so
//! both see the same load: first one request at a time, then several
//! clients at once. The API's budget is what its reads measure here (the
//! p99 of all of them together); the verdict is the worst page's p99 as a
//! multiple of it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::json;
use sqlx::PgPool;

use crate::util::pct;
use crate::{ADMIN_KEY, API_KEY, Args, wait_progress};

/// One invitation of the lifecycle part and who may read it.
#[derive(Clone)]
struct Target {
    invitation: String,
    business: String,
    /// The inviter, a member of the business: the API's `actor_user_id`.
    owner: String,
    /// The invitee's address (the console's search) and user id (the API's
    /// "invitations of a user", found by that address).
    email: String,
    user: String,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    Console,
    Api,
}

struct Route {
    side: Side,
    name: &'static str,
    path: fn(&Target) -> String,
}

fn routes() -> Vec<Route> {
    fn r(side: Side, name: &'static str, path: fn(&Target) -> String) -> Route {
        Route { side, name, path }
    }
    use Side::{Api, Console};
    vec![
        r(Console, "search by address", |t| {
            format!("/console/search?q={}", t.email)
        }),
        r(Console, "invitation", |t| {
            format!("/console/invitations/{}", t.invitation)
        }),
        r(Console, "business", |t| {
            format!("/console/businesses/{}", t.business)
        }),
        r(Console, "outboxes (charts)", |_| "/console/outbox".into()),
        r(Console, "failed deliveries", |_| "/console/failed".into()),
        r(Console, "webhook endpoints", |_| "/console/webhooks".into()),
        r(Console, "suppressions", |_| "/console/suppressions".into()),
        r(Api, "GET users/{u}/invitations", |t| {
            format!("/v1/users/{}/invitations", t.user)
        }),
        r(Api, "GET invitations/{id}", |t| {
            format!("/v1/invitations/{}?actor_user_id={}", t.invitation, t.owner)
        }),
        r(Api, "GET invitations/{id}/timeline", |t| {
            format!(
                "/v1/invitations/{}/timeline?actor_user_id={}",
                t.invitation, t.owner
            )
        }),
        r(Api, "GET businesses/{id}", |t| {
            format!("/v1/businesses/{}?actor_user_id={}", t.business, t.owner)
        }),
        r(Api, "GET businesses/{id}/members", |t| {
            format!(
                "/v1/businesses/{}/members?actor_user_id={}",
                t.business, t.owner
            )
        }),
        r(Api, "GET businesses/{id}/invitations", |t| {
            format!(
                "/v1/businesses/{}/invitations?actor_user_id={}",
                t.business, t.owner
            )
        }),
        r(Api, "GET businesses/{id}/invitation-quota", |t| {
            format!(
                "/v1/businesses/{}/invitation-quota?actor_user_id={}",
                t.business, t.owner
            )
        }),
        r(Api, "GET webhooks", |_| "/v1/webhooks".into()),
        r(Api, "GET suppressions", |_| "/v1/suppressions".into()),
    ]
}

/// A client for both sides: the API with its key, the console with a
/// signed-in session's cookie. Redirects are not followed, so a lost
/// session (303 to the sign-in page) is an error, not a fast page.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
    session: String,
}

impl Client {
    async fn get(&self, side: Side, path: &str) -> anyhow::Result<Duration> {
        let request = self.http.get(format!("{}{path}", self.base));
        let request = match side {
            Side::Console => request.header(COOKIE, &self.session),
            Side::Api => request.bearer_auth(API_KEY),
        };
        let t0 = Instant::now();
        let response = request.send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        let took = t0.elapsed();
        anyhow::ensure!(
            status == StatusCode::OK,
            "GET {path}: {status} {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
        Ok(took)
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
}

/// `name=value` of a `Set-Cookie` of a response.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| pair.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// Signs in as an operator does: the form (its token in a cookie and a
/// hidden field), then the key posted with the token. Returns the session
/// cookie.
async fn sign_in(http: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let form = http.get(format!("{base}/console/login")).send().await?;
    let login = set_cookie(&form, "invited_console_login").context("no sign-in cookie")?;
    let html = form.text().await?;
    let at = html
        .find("name=\"csrf\" value=\"")
        .context("no form token in the sign-in page")?
        + "name=\"csrf\" value=\"".len();
    let token = &html[at..at + html[at..].find('"').context("an unterminated token")?];
    let signed_in = http
        .post(format!("{base}/console/login"))
        .header(COOKIE, login)
        .form(&[("key", API_KEY), ("csrf", token)])
        .send()
        .await?;
    anyhow::ensure!(
        signed_in.status() == StatusCode::SEE_OTHER,
        "sign-in answered {}",
        signed_in.status()
    );
    set_cookie(&signed_in, "invited_console").context("no session cookie")
}

/// Rows the lifecycle part does not make, so each page has something to
/// draw: failed emails with their last attempt (cloned from sent ones),
/// suppressed addresses, and paused webhook endpoints.
async fn fill(args: &Args, client: &Client, db: &PgPool) -> anyhow::Result<()> {
    let failed = args.console_failed as i64;
    sqlx::query(
        "WITH src AS (
             SELECT o.*, gen_random_uuid() AS new_id FROM email_outbox o
             WHERE o.template = 'member_invitation' AND o.status = 'sent'
             ORDER BY o.created_at DESC LIMIT $1
         ), ob AS (
             INSERT INTO email_outbox (id, business_id, invitation_id, template, locale, recipient,
                                       recipient_name, context, message_id, status, attempts,
                                       last_error, available_at, created_at, updated_at)
             SELECT new_id, business_id, invitation_id, template, locale, recipient,
                    recipient_name, context, '<' || new_id || '@bench.example>', 'failed', 5,
                    '550 5.1.1 <' || recipient || '>: Recipient address rejected',
                    now(), now(), now()
             FROM src
             RETURNING id, business_id, recipient
         )
         INSERT INTO email_attempts (id, outbox_id, business_id, outcome, smtp_code, detail,
                                     duration_ms)
         SELECT gen_random_uuid(), id, business_id, 'permanent', 550,
                '550 5.1.1 <' || recipient || '>: Recipient address rejected', 4
         FROM ob",
    )
    .bind(failed)
    .execute(db)
    .await?;
    sqlx::query(
        "INSERT INTO suppressions (email, reason, source, detail, created_at)
         SELECT 'suppressed' || g || '@bench.example', 'hard_bounce', 'smtp',
                '550 5.1.1 user unknown', now() - make_interval(secs => g)
         FROM generate_series(1, $1) g",
    )
    .bind(args.console_suppressions as i64)
    .execute(db)
    .await?;
    // Through the API (an `admin` key), so each has its cursor as the
    // daemon keeps it; paused at once: nothing listens at the URL.
    for i in 0..3 {
        let created: serde_json::Value = client
            .http
            .post(format!("{}/v1/webhooks", client.base))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({
                "url": format!("http://127.0.0.1:9/bench-hook-{i}"),
                "description": format!("benchmark endpoint {i}"),
            }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let id = created["id"].as_str().context("a webhook id")?;
        client
            .http
            .patch(format!("{}/v1/webhooks/{id}", client.base))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"disabled": true}))
            .send()
            .await?
            .error_for_status()?;
    }
    Ok(())
}

type Samples = BTreeMap<(Side, &'static str), Vec<Duration>>;

/// The console beside the API, in the lifecycle part's daemon at `base`.
pub async fn console(args: &Args, base: &str, db: &PgPool) -> anyhow::Result<()> {
    println!(
        "\n== 2b. Console against the API: {} pages and {} API reads, {} rounds one at a time, \
         then {} clients x {} rounds",
        routes().iter().filter(|r| r.side == Side::Console).count(),
        routes().iter().filter(|r| r.side == Side::Api).count(),
        args.console_rounds,
        args.console_clients,
        args.console_concurrent_rounds,
    );
    // The emails of the paced creates go out first: the reads are measured
    // on a daemon that is not delivering.
    wait_progress("outbox drained", Duration::from_secs(60), async || {
        let (left, total): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status IN ('queued', 'retrying', 'sending')), count(*)
             FROM email_outbox",
        )
        .fetch_one(db)
        .await?;
        Ok(((total - left) as u64, total as u64))
    })
    .await?;
    let http = http_client();
    let session = sign_in(&http, base).await?;
    let client = Client {
        http,
        base: base.to_string(),
        session,
    };
    fill(args, &client, db).await?;
    // The rows above were written within the last minute, before
    // autovacuum's first look: the planner would guess every table's size
    // and pick plans a running daemon never gets (a sequential scan of the
    // attempts, 4 ms, where the index takes 0.1 ms). Statistics as
    // autoanalyze would keep them, so both sides read as they would in
    // production.
    sqlx::query("ANALYZE").execute(db).await?;
    let (invitations, outbox, attempts, events, members): (i64, i64, i64, i64, i64) =
        sqlx::query_as(
            "SELECT (SELECT count(*) FROM invitations), (SELECT count(*) FROM email_outbox),
                    (SELECT count(*) FROM email_attempts), (SELECT count(*) FROM events),
                    (SELECT count(*) FROM members)",
        )
        .fetch_one(db)
        .await?;
    println!(
        "database: {invitations} invitations, {outbox} emails ({} failed), {attempts} attempts, \
         {events} events, {members} members, {} suppressions, 3 paused webhook endpoints",
        args.console_failed, args.console_suppressions
    );
    // Accepted invitations of the lifecycle part: each has two emails, two
    // attempts and four events.
    let targets: Vec<Target> = sqlx::query_as::<_, (String, String, String, String, String)>(
        "SELECT i.id::text, i.business_id::text, i.invited_by, i.email, i.accepted_by
         FROM invitations i WHERE i.status = 'accepted' ORDER BY random() LIMIT 100",
    )
    .fetch_all(db)
    .await?
    .into_iter()
    .map(|(invitation, business, owner, email, user)| Target {
        invitation,
        business,
        owner,
        email,
        user,
    })
    .collect();
    anyhow::ensure!(!targets.is_empty(), "no accepted invitation to read");
    let routes = routes();

    // Warm-up: one of each (templates compiled, connections open).
    for route in &routes {
        client.get(route.side, &(route.path)(&targets[0])).await?;
    }

    // One at a time, interleaved: round k asks every route once.
    let mut sequential: Samples = BTreeMap::new();
    for k in 0..args.console_rounds {
        let target = &targets[k % targets.len()];
        for route in &routes {
            let took = client.get(route.side, &(route.path)(target)).await?;
            sequential
                .entry((route.side, route.name))
                .or_default()
                .push(took);
        }
    }

    // Several clients at once, each going round the routes from its own
    // starting point, so every route is asked under the same mix.
    let mut tasks = Vec::new();
    for c in 0..args.console_clients {
        let (client, targets) = (client.clone(), targets.clone());
        let rounds = args.console_concurrent_rounds;
        tasks.push(tokio::spawn(async move {
            let routes = self::routes();
            let mut mine: Samples = BTreeMap::new();
            for k in 0..rounds {
                let target = &targets[(c * rounds + k) % targets.len()];
                for j in 0..routes.len() {
                    let route = &routes[(c + j) % routes.len()];
                    let took = client.get(route.side, &(route.path)(target)).await?;
                    mine.entry((route.side, route.name)).or_default().push(took);
                }
            }
            anyhow::Ok(mine)
        }));
    }
    let mut concurrent: Samples = BTreeMap::new();
    for task in tasks {
        for (key, v) in task.await?? {
            concurrent.entry(key).or_default().extend(v);
        }
    }

    report("one at a time", sequential);
    report(
        &format!("{} clients at once", args.console_clients),
        concurrent,
    );
    Ok(())
}

/// Each route's p50/p99, the API's budget (the p99 of all its reads) and
/// the verdict.
fn report(phase: &str, samples: Samples) {
    println!("-- {phase}");
    let mut api_all = Vec::new();
    let mut pages = Vec::new();
    for ((side, name), v) in samples {
        let label = match side {
            Side::Console => format!("console {name}"),
            Side::Api => format!("API {name}"),
        };
        let mut sorted = v.clone();
        sorted.sort();
        // `summary`'s layout with a wider name column: the routes are long.
        println!(
            "{label:<44} n={:<6} p50={:>8.2} ms  p99={:>8.2} ms  max={:>8.2} ms",
            sorted.len(),
            pct(&sorted, 50.0),
            pct(&sorted, 99.0),
            sorted.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
        );
        match side {
            Side::Console => pages.push((name, pct(&sorted, 99.0))),
            Side::Api => api_all.extend(v),
        }
    }
    api_all.sort();
    let budget = pct(&api_all, 99.0);
    let Some((worst, worst_p99)) = pages.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1)) else {
        return;
    };
    println!(
        "API latency budget ({phase}): p99 of all {} API reads = {budget:.2} ms (p50 {:.2} ms)",
        api_all.len(),
        pct(&api_all, 50.0)
    );
    println!(
        "verdict ({phase}): console p99 <= API p99 x k with k = {:.2}: worst page \"{worst}\" \
         p99 {worst_p99:.2} ms against the API's {budget:.2} ms; {} of {} pages within the budget",
        worst_p99 / budget,
        pages.iter().filter(|(_, p)| *p <= budget).count(),
        pages.len()
    );
}
