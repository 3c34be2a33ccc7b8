//! The files in deploy/ stay true to the daemon: every metric a Grafana query
//! or an alert rule names is one the daemon exports (names in src/metrics.rs).

use std::collections::BTreeSet;

/// Every `invited_*` identifier in a text.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("invited_") {
        let start = i + pos;
        let preceded_by_ident =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(text.len(), |e| start + e);
        if !preceded_by_ident {
            names.insert(text[start..end].to_string());
        }
        i = end;
    }
    names
}

fn exported() -> BTreeSet<String> {
    metric_names(include_str!("../src/metrics.rs"))
}

/// A histogram is queried through its `_bucket`, `_sum` and `_count` series.
fn base_name(name: &str) -> &str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            return base;
        }
    }
    name
}

#[test]
fn every_dashboard_query_names_an_exported_metric() {
    let exported = exported();
    assert!(exported.len() >= 15, "{exported:?}");
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../deploy/grafana/invited.json")).unwrap();
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let names = metric_names(expr);
            assert!(!names.is_empty(), "query names no metric: {expr}");
            for name in names {
                assert!(
                    exported.contains(base_name(&name)),
                    "{name} in {expr:?} is not exported"
                );
                queried += 1;
            }
        }
    }
    assert!(queried >= 15);
}

#[test]
fn every_alert_names_an_exported_metric() {
    let exported = exported();
    let rules = include_str!("../deploy/prometheus/alerts.yaml");
    let names = metric_names(rules);
    assert!(names.len() >= 5, "{names:?}");
    for name in names {
        assert!(
            exported.contains(base_name(&name)),
            "{name} in alerts.yaml is not exported"
        );
    }
}

#[test]
fn the_metric_name_scanner_sees_what_it_should() {
    let names = metric_names("sum(rate(invited_email_send_seconds_bucket[5m])) / not_invited_x");
    assert_eq!(
        names,
        BTreeSet::from(["invited_email_send_seconds_bucket".to_string()])
    );
}
