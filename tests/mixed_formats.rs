//! Issue #7's "done when": a mixed replay (Exchange message tracking, Microsoft 365 audit
//! and Squid logs, each file with its own format) of the same organisation gives the same
//! alerts as the equivalent normalized stream, also when killed and restarted. Also: the
//! ways to name a file's format (`FORMAT:PATH`, `--input-format`, `[[input.files]]`), and
//! that a decoder's end-of-input hook dead-letters a record left open instead of losing it.

#[path = "support/render.rs"]
mod render;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use brevvakt::decode::Format;
use brevvakt::event::{Event, SourcePos};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_brevvakt");
const UNTIL: &str = "2026-06-22T00:00:00+02:00";

/// A generated week rendered in the three formats.
struct Mixed {
    dir: tempfile::TempDir,
    rendered: render::Rendered,
}

impl Mixed {
    fn new() -> Mixed {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(BIN)
            .args(["generate", "--mailboxes", "150", "--days", "7", "--seed", "11", "--malformed", "0", "--roster-out"])
            .arg(dir.path().join("roster.csv"))
            .arg("--truth-out")
            .arg(dir.path().join("truth.jsonl"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let rendered = render::render(std::str::from_utf8(&out.stdout).unwrap(), dir.path());
        Mixed { dir, rendered }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `replay` writing alerts to `out`; returns the alerts (JSON) and the summary.
    fn replay(&self, out: &str, extra: &[&str], inputs: &[String]) -> (Vec<Value>, String) {
        let output = Command::new(BIN)
            .args(["replay", "--quiet", "--workers", "2", "--until", UNTIL, "--roster"])
            .arg(self.path("roster.csv"))
            .arg("--out")
            .arg(self.path(out))
            .arg("--dead-letter")
            .arg(self.path(&format!("{out}.dead")))
            .args(extra)
            .args(inputs)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{stderr}");
        let text = std::fs::read_to_string(self.path(out)).unwrap();
        (text.lines().map(|l| serde_json::from_str(l).unwrap()).collect(), stderr)
    }

    /// The rendered files as `FORMAT:PATH` arguments (tracking logs by a glob).
    fn prefixed_args(&self) -> Vec<String> {
        let mut args = vec![format!("exchange_tracking:{}", self.path("MSGTRK*.LOG").display())];
        args.extend(self.rendered.files.iter().filter(|(f, _)| *f != "exchange_tracking").map(|(f, p)| format!("{f}:{}", p.display())));
        args
    }

    /// Alerts of the mixed run with every evidence position moved to the reference line
    /// that holds the same event.
    fn as_reference(&self, alerts: &[Value]) -> Vec<Value> {
        let reference = self.rendered.reference.display().to_string();
        let mut alerts = alerts.to_vec();
        for a in &mut alerts {
            for pos in a["evidence"]["events"].as_array_mut().unwrap() {
                let key = (pos["name"].as_str().unwrap().to_string(), pos["offset"].as_u64().unwrap());
                let line = self.rendered.origin.get(&key).unwrap_or_else(|| panic!("evidence {key:?} is no carried event"));
                *pos = serde_json::json!({"name": reference, "offset": line});
            }
        }
        alerts
    }
}

/// Every event of a file, by line, decoded as a replay decodes it.
fn decode_file(path: &Path, format: Format) -> BTreeMap<u64, Vec<Event>> {
    let mut decoder = format.decoder(&brevvakt::config::Settings::default_settings().decode_options());
    let name = brevvakt::event::InputName::new(&path.display().to_string());
    let text = std::fs::read(path).unwrap();
    let mut out = BTreeMap::new();
    for (i, line) in text.strip_suffix(b"\n").unwrap_or(&text).split(|&b| b == b'\n').enumerate() {
        let mut events = Vec::new();
        decoder.decode(line, &SourcePos::line(name, i as u64 + 1), &mut events).unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1));
        if !events.is_empty() {
            out.insert(i as u64 + 1, events);
        }
    }
    assert_eq!(decoder.finish(&mut Vec::new()), Ok(()), "{}: nothing left open", path.display());
    out
}

/// The key of an open alert in the generator's truth file.
fn truth_key(a: &Value) -> String {
    let ev = &a["evidence"];
    match a["rule"].as_str().unwrap() {
        "classified_mail" => serde_json::json!({"rule": "classified_mail", "message_id": ev["message_id"], "level": ev["classification"]}),
        "external_forwarding" => serde_json::json!({"rule": "external_forwarding", "mailbox": a["mailbox"], "target": ev["targets"][0]}),
        _ => serde_json::json!({"rule": "mailbox_not_read", "mailbox": a["mailbox"], "day": a["day"]}),
    }
    .to_string()
}

#[test]
fn the_three_formats_carry_exactly_the_reference_events() {
    let m = Mixed::new();
    let reference = decode_file(&m.rendered.reference, Format::Normalized);
    let mut carried = 0;
    for (format, path) in &m.rendered.files {
        for (line, events) in decode_file(path, Format::from_name(format).unwrap()) {
            let at = m.rendered.origin.get(&(path.display().to_string(), line));
            let want = &reference[at.unwrap_or_else(|| panic!("{}:{line} decodes to an event the reference lacks", path.display()))];
            assert_eq!((events.len(), &events[0].time, &events[0].body), (1, &want[0].time, &want[0].body), "{}:{line}", path.display());
            carried += 1;
        }
    }
    assert_eq!(carried, reference.len(), "every reference event is carried by one line");
    let types: std::collections::BTreeSet<&str> = reference.values().map(|e| e[0].body.type_name()).collect();
    assert_eq!(types.len(), 5, "all five event types are carried: {types:?}");
    assert_eq!(m.rendered.uncarried.keys().collect::<Vec<_>>(), ["mailbox.forwarding sieve_redirect"], "and only sieve redirects are not");
}

#[test]
fn a_mixed_replay_gives_the_alerts_of_the_equivalent_normalized_stream() {
    let m = Mixed::new();
    let (mixed, stderr) = m.replay("mixed.jsonl", &[], &m.prefixed_args());
    let (normalized, _) = m.replay("normalized.jsonl", &[], &[m.rendered.reference.display().to_string()]);
    assert!(stderr.contains("late events                0"), "the files are merged by time: {stderr}");
    assert!(stderr.contains("bad records                0"), "{stderr}");
    let mixed = m.as_reference(&mixed);
    assert_eq!(mixed.len(), normalized.len());
    for (i, (a, b)) in mixed.iter().zip(&normalized).enumerate() {
        assert_eq!(a, b, "alert {i} differs");
    }
    // Non-trivial: every rule, opened and (reading duty) judged per day.
    let count = |rule: &str| mixed.iter().filter(|a| a["rule"] == rule && a["status"] == "open").count();
    let mechanisms: std::collections::BTreeSet<String> =
        mixed.iter().filter(|a| a["rule"] == "external_forwarding").map(|a| a["evidence"]["mechanism"].as_str().unwrap_or("mail flow").to_string()).collect();
    assert!(count("mailbox_not_read") >= 5 && count("classified_mail") >= 4 && count("external_forwarding") >= 5, "{mixed:?}");
    assert_eq!(mechanisms.into_iter().collect::<Vec<_>>(), ["inbox_rule", "mail flow", "mailbox_forwarding"]);
    // And they are the generator's injected violations, but for the uncarried sieve redirect.
    let truth = std::fs::read_to_string(m.path("truth.jsonl")).unwrap();
    let truth: std::collections::BTreeSet<String> = truth.lines().map(|l| serde_json::from_str::<Value>(l).unwrap().to_string()).collect();
    let found: std::collections::BTreeSet<String> = mixed.iter().filter(|a| a["status"] == "open").map(truth_key).collect();
    let missing: Vec<&String> = truth.difference(&found).collect();
    assert!(found.is_subset(&truth), "alerts that are not injected violations: {:?}", found.difference(&truth).collect::<Vec<_>>());
    assert_eq!(missing.len(), 1, "only the sieve redirect is missing: {missing:?}");
    assert!(missing[0].contains("external_forwarding"), "{missing:?}");
}

#[test]
fn input_files_in_the_config_and_input_format_name_formats_too() {
    let m = Mixed::new();
    let (by_prefix, _) = m.replay("prefix.jsonl", &[], &m.prefixed_args());
    let config = format!(
        "{}\n", brevvakt::config::DEFAULT_TOML.replace(
            "[input]\n",
            "[input]\nfiles = [{ path = \"MSGTRK*.LOG\", format = \"exchange-tracking\" }, { path = \"ual.jsonl\", format = \"m365\" }]\n"
        )
    );
    std::fs::write(m.path("brevvakt.toml"), config).unwrap();
    let config_arg = m.path("brevvakt.toml").display().to_string();
    let access_log = m.path("access.log").display().to_string();
    let (by_config, _) = m.replay("config.jsonl", &["--config", &config_arg, "--input-format", "squid"], &[access_log]);
    // The config names its files relative to itself: positions carry that spelling.
    let text = |alerts: &[Value]| serde_json::to_string(alerts).unwrap().replace(&format!("{}/", m.dir.path().display()), "");
    assert_eq!(text(&by_config), text(&by_prefix));
}

#[test]
fn replay_without_any_input_is_refused() {
    let out: Output = Command::new(BIN).args(["replay", "--quiet"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no inputs"));
}

#[test]
fn a_tracking_log_ending_inside_a_quoted_field_is_dead_lettered_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("MSGTRK20260302-1.LOG");
    let fields = "#Fields: date-time,server-hostname,event-id,message-id,recipient-address,message-subject,sender-address,directionality,custom-data";
    let good = "2026-03-02T07:00:00.000Z,EXCH01,SEND,<a@x>,anna@gmail.com,Hej,bo@exempel.se,Originating,S:Classification=3";
    let cut = "2026-03-02T07:05:00.000Z,EXCH01,SEND,<b@x>,bertil@gmail.com,\"Avbrutet ämne,";
    std::fs::write(&log, format!("#Software: Microsoft Exchange Server\n{fields}\n{good}\n{cut}\nandra raden utan slut\n")).unwrap();
    let dead = dir.path().join("dead.jsonl");
    let out = Command::new(BIN)
        .args(["replay", "--quiet", "--dead-letter"])
        .arg(&dead)
        .arg(format!("exchange_tracking:{}", log.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("bad records                1"), "{stderr}");
    assert!(stderr.contains("syntax                     1"), "{stderr}");
    let alerts = String::from_utf8(out.stdout).unwrap();
    assert_eq!(alerts.lines().count(), 1, "the complete record before it is processed: {alerts}");
    let entry: Value = serde_json::from_str(std::fs::read_to_string(&dead).unwrap().trim()).unwrap();
    assert_eq!(entry["source"]["offset"], 4, "the line the record began on");
    assert_eq!(entry["reason"], "syntax");
    assert_eq!(entry["raw"], format!("{cut}\nandra raden utan slut"), "its original bytes are kept");
}

#[test]
fn a_mixed_replay_killed_and_restarted_ends_with_the_alerts_of_an_uninterrupted_one() {
    // Merged inputs stop at different lines; a restart re-merges them and skips what the
    // checkpoint covers, input by input.
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["generate", "--mailboxes", "200", "--days", "14", "--seed", "7", "--start", "2026-03-16", "--malformed", "0", "--roster-out"])
        .arg(dir.path().join("roster.csv"))
        .output()
        .unwrap();
    let rendered = render::render(std::str::from_utf8(&out.stdout).unwrap(), dir.path());
    let config = brevvakt::config::DEFAULT_TOML.replace("batch_size = 1024", "batch_size = 256").replace("checkpoint_records = 1000000", "checkpoint_records = 3000");
    std::fs::write(dir.path().join("brevvakt.toml"), config).unwrap();
    let replay = |out: &str, state: &str| {
        let mut c = Command::new(BIN);
        c.args(["replay", "--quiet", "--workers", "2", "--until", "2026-03-30T00:00:00+02:00", "--config"])
            .arg(dir.path().join("brevvakt.toml"))
            .arg("--roster")
            .arg(dir.path().join("roster.csv"))
            .arg("--out")
            .arg(dir.path().join(out))
            .arg("--dead-letter")
            .arg(dir.path().join(format!("{out}.dead")))
            .arg("--state-dir")
            .arg(dir.path().join(state))
            .args(rendered.files.iter().map(|(f, p)| format!("{f}:{}", p.display())))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    };
    let started = std::time::Instant::now();
    assert!(replay("reference.jsonl", "reference-state").status().unwrap().success());
    let full_run = started.elapsed();
    let reference = std::fs::read(dir.path().join("reference.jsonl")).unwrap();
    assert!(reference.split(|&b| b == b'\n').count() > 20);
    let (mut interrupted, mut resumed) = (0, 0);
    for i in 0..4u32 {
        let (out, state) = (format!("run{i}.jsonl"), format!("state{i}"));
        let mut child = replay(&out, &state).spawn().unwrap();
        std::thread::sleep(full_run.mul_f64((f64::from(i) + 0.5) / 4.0));
        if child.try_wait().unwrap().is_none() {
            interrupted += 1;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let restart = replay(&out, &state).stderr(std::process::Stdio::piped()).output().unwrap();
        assert!(restart.status.success(), "restart {i} failed");
        resumed += usize::from(String::from_utf8_lossy(&restart.stderr).contains("resuming from checkpoint"));
        assert_eq!(std::fs::read(dir.path().join(&out)).unwrap(), reference, "run {i}: alerts differ from the uninterrupted run");
    }
    assert!(interrupted >= 2 && resumed >= 2, "kills must land while the replay runs, after a checkpoint (interrupted {interrupted}, resumed {resumed})");
}
