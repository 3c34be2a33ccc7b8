//! A real Prometheus (Debian's `prometheus` package, installed by .ci/run)
//! scrapes a running daemon; its query API then returns the daemon's metrics.
//!
//! Runs on Postgres: it tests the metrics pipeline, not the store.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use support::daemon::TestDaemon;

/// Kills Prometheus when the test ends, however it ends.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[sqlx::test(migrations = false)]
async fn prometheus_scrapes_the_daemon(pool: PgPool) {
    let d = TestDaemon::start(&pool).await;
    let target = d.base.trim_start_matches("http://").to_string();
    let dir = std::env::temp_dir().join(format!("invited-prometheus-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: invited\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let _prometheus = Prometheus(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is installed (.ci/run installs Debian's prometheus package)"),
    );

    d.user("olive", "olive@x.example", "en-US").await;
    let b = d.business("Brand", "olive").await;
    let (status, body) = d
        .post(
            &format!("/v1/businesses/{b}/invitations"),
            json!({"actor_user_id": "olive", "invitees": [{"email": "c@x.example"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Our own endpoint has it at once.
    let text = d
        .client()
        .get(d.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("invited_invitations_created_total{kind=\"member\"}"),
        "{text}"
    );
    assert!(text.contains("invited_http_requests_total"), "{text}");

    // Prometheus has it after a scrape or two.
    let query =
        format!("http://127.0.0.1:{port}/api/v1/query?query=invited_invitations_created_total");
    let client = reqwest::Client::new();
    let value = support::wait::eventually(
        Duration::from_secs(60),
        "Prometheus returning invited_invitations_created_total",
        || async {
            let resp = client
                .get(&query)
                .send()
                .await
                .map_err(|e| format!("no answer: {e}"))?;
            let body = resp
                .json::<Value>()
                .await
                .map_err(|e| format!("not JSON: {e}"))?;
            match body["data"]["result"].as_array().and_then(|r| r.first()) {
                Some(first) => Ok(first.clone()),
                None => Err(format!("no result: {body}")),
            }
        },
    )
    .await;
    assert_eq!(value["metric"]["kind"], "member");
    assert!(
        value["value"][1].as_str().unwrap().parse::<f64>().unwrap() >= 1.0,
        "{value}"
    );
    d.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
