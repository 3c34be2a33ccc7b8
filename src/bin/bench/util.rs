//! Small helpers: percentiles, resident memory, the fresh database, and
//! pulling the accept token out of a raw email.

use std::str::FromStr as _;
use std::time::Duration;

use base64::Engine as _;
use sqlx::ConnectOptions as _;
use sqlx::postgres::PgConnectOptions;

/// p-th percentile (0..=100) of sorted durations, in milliseconds.
pub fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

pub fn summary(name: &str, mut v: Vec<Duration>) -> String {
    v.sort();
    format!(
        "{name:<28} n={:<7} p50={:>8.2} ms  p99={:>8.2} ms  max={:>8.2} ms",
        v.len(),
        pct(&v, 50.0),
        pct(&v, 99.0),
        v.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    )
}

/// (VmRSS, VmHWM) in KiB of a process.
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Drops and creates the benchmark database.
pub async fn recreate_database(url: &str) -> anyhow::Result<()> {
    let options = PgConnectOptions::from_str(url)?;
    let name = options
        .get_database()
        .ok_or_else(|| anyhow::anyhow!("the database URL names no database"))?
        .to_string();
    anyhow::ensure!(
        name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "database name {name:?}: letters, digits and _ only"
    );
    let mut admin = options.database("postgres").connect().await?;
    // The name was checked above: letters, digits and _ only.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await?;
    Ok(())
}

/// The text of a raw MIME message with quoted-printable and base64 parts
/// decoded (crudely, enough to find a link).
pub fn decoded_text(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = text.replace("=\r\n", "").replace("=3D", "=");
    // Base64 parts: decode every run of base64-looking lines.
    let mut block = String::new();
    for line in text.lines() {
        let l = line.trim();
        if !l.is_empty()
            && l.len() >= 16
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
        {
            block.push_str(l);
        } else if !block.is_empty() {
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&block) {
                out.push('\n');
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
            block.clear();
        }
    }
    out
}

/// The token of the accept link in a raw email.
pub fn token_from(raw: &[u8]) -> Option<String> {
    let text = decoded_text(raw);
    let start = text.find("token=")? + "token=".len();
    let token: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    (!token.is_empty()).then_some(token)
}
