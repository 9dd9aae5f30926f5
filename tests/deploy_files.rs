//! The Grafana dashboard and the Prometheus rules in deploy/ parse, and refer only to
//! metrics the binary actually exposes.

mod common;

use std::collections::BTreeSet;

use common::{exposed, metrics_exposition as exposition};
use serde_json::Value;

const DASHBOARD: &str = include_str!("../deploy/grafana/brevvakt-dashboard.json");
const RULES: &str = include_str!("../deploy/prometheus/brevvakt-rules.yml");



/// Every `brevvakt_…` name in a text.
fn referenced(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("brevvakt_") {
        let start = i + at;
        let mut end = start + "brevvakt_".len();
        while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end].is_ascii_digit() || bytes[end] == b'_') {
            end += 1;
        }
        let boundary = start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if boundary && end > start + "brevvakt_".len() {
            out.insert(text[start..end].to_string());
        }
        i = end;
    }
    out
}

fn check_names(file: &str, names: &BTreeSet<String>, exposed: &BTreeSet<String>) {
    assert!(!names.is_empty(), "{file} refers to no brevvakt metric");
    let missing: Vec<_> = names.difference(exposed).collect();
    assert!(missing.is_empty(), "{file} refers to metrics the binary does not expose: {missing:?}\nexposed: {exposed:?}");
}

#[test]
fn the_exposition_has_every_metric_and_no_person() {
    let text = exposition();
    assert!(!text.contains('@'), "{text}");
    let names = exposed(&text);
    for want in [
        "brevvakt_events_total",
        "brevvakt_decode_errors_total",
        "brevvakt_dead_letters_total",
        "brevvakt_alerts_total",
        "brevvakt_open_findings",
        "brevvakt_late_events_total",
        "brevvakt_watermark_seconds",
        "brevvakt_watermark_lag_seconds",
        "brevvakt_consumer_lag_records",
        "brevvakt_consumer_committed_offset",
        "brevvakt_state_mailboxes",
        "brevvakt_state_bytes",
        "brevvakt_alert_latency_seconds",
        "brevvakt_batch_latency_seconds_count",
        "brevvakt_build_info",
        "brevvakt_ready",
    ] {
        assert!(names.contains(want), "{want} not exposed:\n{text}");
    }
    // Counters end in _total; every name carries the prefix.
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let parts: Vec<_> = line.split(' ').collect();
        assert!(parts[2].starts_with("brevvakt_"), "{line}");
        if parts[3] == "counter" {
            assert!(parts[2].ends_with("_total"), "{line}");
        }
    }
    assert!(text.contains(r#"brevvakt_alerts_total{rule="classified_mail",severity="critical",status="open"} 1"#), "{text}");
    assert!(text.contains(r#"brevvakt_late_events_total{source="file"} 1"#), "{text}");
}

#[test]
fn the_dashboard_is_valid_json_and_uses_only_exposed_metrics() {
    let dash: Value = serde_json::from_str(DASHBOARD).expect("dashboard is JSON");
    assert!(dash["title"].is_string() && dash["uid"].is_string());
    let panels = dash["panels"].as_array().expect("panels");
    let mut exprs = Vec::new();
    for p in panels {
        for t in p["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().expect("every target has an expr").to_string());
        }
    }
    assert!(exprs.len() >= 10, "{exprs:?}");
    let all = exprs.join("\n");
    for wanted in ["brevvakt_events_total", "brevvakt_consumer_lag_records", "brevvakt_watermark_lag_seconds", "brevvakt_alerts_total", "brevvakt_decode_errors_total", "brevvakt_alert_latency_seconds"] {
        assert!(all.contains(wanted), "the dashboard shows {wanted}");
    }
    check_names("the dashboard", &referenced(DASHBOARD), &exposed(&exposition()));
}

#[test]
fn the_alerting_rules_are_valid_yaml_and_use_only_exposed_metrics() {
    let doc: serde_norway::Value = serde_norway::from_str(RULES).expect("rules are YAML");
    let groups = doc["groups"].as_sequence().expect("groups");
    let mut alerts = Vec::new();
    for g in groups {
        assert!(g["name"].as_str().is_some());
        for r in g["rules"].as_sequence().expect("rules") {
            let name = r["alert"].as_str().expect("alerting rules only");
            let expr = r["expr"].as_str().expect("expr");
            assert!(!expr.trim().is_empty(), "{name}");
            assert!(r["labels"]["severity"].as_str().is_some(), "{name} has a severity");
            assert!(r["annotations"]["summary"].as_str().is_some(), "{name} has a summary");
            alerts.push(name.to_string());
        }
    }
    for wanted in ["BrevvaktDown", "BrevvaktConsumerLagGrowing", "BrevvaktWatermarkStalled", "BrevvaktDeadLettersRising"] {
        assert!(alerts.iter().any(|a| a == wanted), "{wanted} in {alerts:?}");
    }
    check_names("the alerting rules", &referenced(RULES), &exposed(&exposition()));
}
