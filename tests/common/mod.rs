//! Test helpers: build events in the normalized format, run the real pipeline over them,
//! and read the alerts back.
#![allow(dead_code)]

use std::sync::Arc;

use brevvakt::alert::{Alert, Rule, Status};
use brevvakt::config::Settings;
use brevvakt::pipeline::{replay, Options, Summary};
use brevvakt::roster::{Roster, RosterEntry};
use brevvakt::sinks::dead_letter::DeadLetters;
use brevvakt::sinks::jsonl::{AlertFormat, JsonlSink};
use brevvakt::sources::file::Input;
use serde_json::json;

/// The sample organisation's settings, optionally patched with extra TOML appended to
/// the default.
pub fn settings() -> Settings {
    Settings::default_settings()
}

/// Runs the pipeline over `lines` with `workers` shards; returns alerts and summary.
pub fn run_with(settings: Settings, lines: &[String], roster: Vec<RosterEntry>, until: Option<&str>, workers: usize) -> (Vec<Alert>, Summary) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out = dir.path().join("alerts.jsonl");
    let sink = Box::new(JsonlSink::new(std::fs::File::create(&out).unwrap(), AlertFormat::Json, 0));
    let mut dead = DeadLetters::new(&dir.path().join("dead.jsonl"));
    let until = until.map(|u| chrono::DateTime::parse_from_rfc3339(u).unwrap().with_timezone(&chrono::Utc));
    let opts = Options { workers, until, progress: None, state_dir: None, resume: None, metrics: None };
    let summary = replay(Arc::new(settings), Arc::new(Roster::new(roster)), vec![Input::File(input)], sink, &mut dead, opts).unwrap();
    // Positions name the input file; strip the temporary directory so runs compare equal.
    let text = std::fs::read_to_string(&out).unwrap().replace(&format!("{}/", dir.path().display()), "");
    (text.lines().map(|l| serde_json::from_str(l).unwrap()).collect(), summary)
}

/// Runs with the default settings and two workers.
pub fn run(lines: &[String], roster: Vec<RosterEntry>, until: Option<&str>) -> Vec<Alert> {
    run_with(settings(), lines, roster, until, 2).0
}

/// Open alerts of one rule.
pub fn open(alerts: &[Alert], rule: Rule) -> Vec<&Alert> {
    alerts.iter().filter(|a| a.rule == rule && a.status == Status::Open).collect()
}

/// Days (as text) of open `mailbox_not_read` alerts for `mailbox`.
pub fn unread_days(alerts: &[Alert], mailbox: &str) -> Vec<String> {
    open(alerts, Rule::MailboxNotRead).iter().filter(|a| a.mailbox == mailbox).map(|a| a.day.unwrap().to_string()).collect()
}

pub fn access(time: &str, mailbox: &str, user: &str) -> String {
    json!({"type":"mailbox.access","time":time,"mailbox":mailbox,"user":user,"protocol":"imap","result":"success"}).to_string()
}

pub fn failed_access(time: &str, mailbox: &str, user: &str) -> String {
    json!({"type":"mailbox.access","time":time,"mailbox":mailbox,"user":user,"protocol":"owa","result":"failure"}).to_string()
}

pub fn proxy(time: &str, user: &str, host: &str, path: &str) -> String {
    json!({"type":"proxy.request","time":time,"user":user,"host":host,"path":path,"method":"GET","status":200}).to_string()
}

pub fn forwarding(time: &str, mailbox: &str, mechanism: &str, targets: &[&str], state: &str) -> String {
    json!({"type":"mailbox.forwarding","time":time,"mailbox":mailbox,"actor":mailbox,"mechanism":mechanism,"rule":"vidarebefordra","targets":targets,"keep_copy":true,"state":state}).to_string()
}

pub fn delegation(time: &str, mailbox: &str, delegate: &str) -> String {
    json!({"type":"mailbox.delegation","time":time,"mailbox":mailbox,"delegate":delegate,"state":"granted"}).to_string()
}

pub fn message(time: &str, id: &str, sender: &str, recipients: &[&str], action: &str, original: Option<&str>) -> String {
    let mut v = json!({"type":"mail.message","time":time,"message_id":id,"sender":sender,"recipients":recipients,"direction":"outbound","action":action,"subject_len":12});
    if let Some(o) = original {
        v["original_recipient"] = json!(o);
    }
    v.to_string()
}

pub fn classified(time: &str, id: &str, level: u8, encryption: &str, to: &str) -> String {
    json!({"type":"mail.message","time":time,"message_id":id,"sender":"anna@exempel.se","recipients":[to],"direction":"outbound","action":"relay","classification":level,"encryption":encryption}).to_string()
}

/// An event for an unrelated, unmonitored user that only moves the watermark.
pub fn tick(time: &str) -> String {
    access(time, "klocka@exempel.se", "klocka@exempel.se")
}

/// An individual mailbox on the roster.
pub fn person(address: &str) -> RosterEntry {
    RosterEntry { address: address.into(), manager: Some("chef@exempel.se".into()), org_unit: Some("Kansliet".into()), ..RosterEntry::default() }
}

/// The exposition after a real pipeline run with metrics (and a Kafka partition position,
/// which only the Kafka source will set).
pub fn metrics_exposition() -> String {
    let metrics = Arc::new(brevvakt::metrics::Metrics::new());
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.jsonl");
    let lines = [
        "not json".to_string(),
        forwarding("2026-03-02T09:00:00+01:00", "anna@exempel.se", "inbox_rule", &["anna@gmail.com"], "enabled"),
        classified("2026-03-02T10:00:00+01:00", "m1", 3, "none", "bo@exempel.se"),
        tick("2026-03-02T11:00:00+01:00"),
        tick("2026-03-02T08:00:00+01:00"),
    ];
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let sink = Box::new(JsonlSink::new(std::fs::File::create(dir.path().join("alerts.jsonl")).unwrap(), AlertFormat::Json, 0));
    let mut dead = DeadLetters::new(&dir.path().join("dead.jsonl"));
    let opts = Options { workers: 2, until: None, progress: None, state_dir: None, resume: None, metrics: Some(metrics.clone()) };
    replay(Arc::new(settings()), Arc::new(Roster::default()), vec![Input::File(input)], sink, &mut dead, opts).unwrap();
    metrics.set_partition("mail-logs", 0, 12, 3400);
    metrics.set_state_restored(true);
    metrics.render()
}

/// Metric names with samples in the exposition.
pub fn exposed(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}
