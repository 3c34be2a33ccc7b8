//! Part 5: the ceiling of a lifecycle's durable writes (issue 17). `pgbench`
//! runs `scripts/bench-lifecycle.pgbench` (one script run = one lifecycle:
//! four commits, each one statement) against a database the daemon's own
//! migrations created, so the ratio of the daemon's lifecycles/s to what
//! the machine's Postgres can commit of the same rows is visible.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;

use crate::{Args, bench_config, pool, util};

/// Businesses (and invitee users) created for the script: lifecycle n
/// pairs business n % B with user n / B, so B² lifecycles never repeat a
/// membership. 1,000 is good for a million.
const BUSINESSES: u64 = 1_000;

/// Runs the script; returns lifecycles/s.
pub async fn ceiling(args: &Args, lifecycles_per_s: Option<f64>) -> anyhow::Result<f64> {
    println!(
        "\n== 5. pgbench lifecycle ceiling: {} for {} s, {} clients, no daemon",
        args.pgbench_script.display(),
        args.pgbench_secs,
        args.clients
    );
    let pgbench = which_pgbench().context(
        "pgbench not found (Debian: postgresql-client); --skip-pgbench runs without this part",
    )?;
    util::recreate_database(&args.database_url).await?;
    // The schema is the daemon's: its own migrations, as `invited migrate`.
    let config = bench_config(args, "smtp://127.0.0.1:1", Duration::from_secs(60));
    invited::app::migrate(&config).await?;
    let db = pool(&args.database_url, 2).await?;
    let setup = Instant::now();
    sqlx::query(
        "INSERT INTO users (user_id, email, display_name, locale)
         SELECT p || g, p || g || '@bench.example', p || g, 'en-US'
         FROM generate_series(0, $1 - 1) g, (VALUES ('pbo'), ('pbu')) AS prefix(p)",
    )
    .bind(BUSINESSES as i64)
    .execute(&db)
    .await?;
    sqlx::query(
        "INSERT INTO businesses (id, public_id, name, role_preset)
         SELECT lpad(to_hex(g), 32, '0')::uuid, 'pb' || g, 'Business ' || g, 'business_manager'
         FROM generate_series(0, $1 - 1) g",
    )
    .bind(BUSINESSES as i64)
    .execute(&db)
    .await?;
    sqlx::query(
        "INSERT INTO members (business_id, user_id, role)
         SELECT lpad(to_hex(g), 32, '0')::uuid, 'pbo' || g, 'owner'
         FROM generate_series(0, $1 - 1) g",
    )
    .bind(BUSINESSES as i64)
    .execute(&db)
    .await?;
    sqlx::query("CREATE SEQUENCE bench_lifecycle_seq")
        .execute(&db)
        .await?;
    sqlx::query("VACUUM ANALYZE").execute(&db).await?;
    let (fsync, sync_commit): (String, String) =
        sqlx::query_as("SELECT current_setting('fsync'), current_setting('synchronous_commit')")
            .fetch_one(&db)
            .await?;
    println!(
        "setup: {BUSINESSES} businesses with their owners, {BUSINESSES} invitee users in {:.1} s \
         (fsync={fsync}, synchronous_commit={sync_commit})",
        setup.elapsed().as_secs_f64()
    );

    // `-M prepared`: the daemon's statements are prepared too (sqlx caches
    // them per connection). `-n`: no vacuum of pgbench's own tables.
    let mut command = tokio::process::Command::new(&pgbench);
    command
        .arg("-n")
        .args(["-M", "prepared"])
        .arg("-f")
        .arg(&args.pgbench_script)
        .arg("-D")
        .arg(format!("businesses={BUSINESSES}"))
        .args(["-c", &args.clients.to_string()])
        .args(["-j", "2"])
        .args(["-T", &args.pgbench_secs.to_string()])
        // libpq takes a URL where a database name goes.
        .arg(&args.database_url)
        .kill_on_drop(true);
    println!(
        "command: {} -n -M prepared -f {} -D businesses={BUSINESSES} -c {} -j 2 -T {} <database URL>",
        pgbench.display(),
        args.pgbench_script.display(),
        args.clients,
        args.pgbench_secs
    );
    let out = command.output().await.context("running pgbench")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(
        out.status.success(),
        "pgbench failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let tps = tps(&stdout).with_context(|| format!("no tps in pgbench's output:\n{stdout}"))?;
    for line in stdout.lines().filter(|l| {
        l.starts_with("number of transactions actually processed")
            || l.starts_with("number of failed transactions")
            || l.starts_with("latency average")
    }) {
        println!("pgbench: {line}");
    }

    // What the script left: every lifecycle accepted and both emails sent.
    let (accepted, members, sent, events): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM invitations WHERE status = 'accepted'),
                (SELECT count(*) FROM members WHERE role <> 'owner'),
                (SELECT count(*) FROM email_outbox WHERE status = 'sent'),
                (SELECT count(*) FROM events)",
    )
    .fetch_one(&db)
    .await?;
    println!(
        "check: {accepted} accepted invitations, {members} new members, {sent} emails marked sent, \
         {events} events"
    );
    // A client's last lifecycle may be cut short when the time is up.
    anyhow::ensure!(
        accepted > 0
            && members == accepted
            && (sent - 2 * accepted).unsigned_abs() <= 2 * args.clients as u64,
        "the script's lifecycles are incomplete"
    );
    db.close().await;

    println!("pgbench lifecycle ceiling: {tps:.0} lifecycles/s");
    let mut line = json!({
        "side": "invited",
        "figure": "lifecycle",
        "pgbench_ceiling_per_s": tps,
        "clients": args.clients,
    });
    if let Some(rate) = lifecycles_per_s {
        println!(
            "invited lifecycles/s / pgbench ceiling: {rate:.0} / {tps:.0} = {:.1} %",
            100.0 * rate / tps
        );
        line["lifecycles_per_s"] = json!(rate);
        line["ratio_to_ceiling"] = json!(rate / tps);
    }
    // One line of JSON like the side-by-side figures (`scripts/bench-compare`).
    println!("{line}");
    Ok(tps)
}

/// pgbench's `tps = N (without initial connection time)`.
fn tps(stdout: &str) -> Option<f64> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// `pgbench` on the PATH, or in Debian's server packages.
fn which_pgbench() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("pgbench"))
        .chain(
            std::fs::read_dir("/usr/lib/postgresql")
                .into_iter()
                .flatten()
                .flatten()
                .map(|v| v.path().join("bin/pgbench")),
        )
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_tps() {
        let out = "latency average = 12.3 ms\ntps = 2602.431 (without initial connection time)\n";
        assert_eq!(super::tps(out), Some(2602.431));
    }
}
