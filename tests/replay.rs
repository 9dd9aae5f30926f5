//! `brevvakt replay` and friends, driven as a user drives them: the real binary, the
//! bundled sample, real gzip/zstd archives, stdin, directories.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_brevvakt");
const SAMPLE: &str = "samples/week-2026-06-15.jsonl.zst";
const ROSTER: &str = "samples/roster.csv";
const UNTIL: &str = "2026-06-22T00:00:00+02:00";

fn brevvakt(args: &[&str]) -> Output {
    Command::new(BIN).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap()
}

fn replay(dir: &Path, extra: &[&str], inputs: &[&str]) -> (String, String) {
    let dead = dir.join("dead.jsonl");
    let mut args = vec!["replay", "--quiet", "--roster", ROSTER, "--until", UNTIL, "--dead-letter", dead.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend_from_slice(inputs);
    let out = brevvakt(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

/// `brevvakt replay ARGS -` from the crate's directory, its standard streams piped.
fn replay_stdin(args: &[&str]) -> std::process::Child {
    Command::new(BIN).args(["replay", "--quiet"]).args(args).arg("-").current_dir(env!("CARGO_MANIFEST_DIR")).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

fn alerts(stdout: &str) -> Vec<Value> {
    stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn sample_plain(dir: &Path) -> PathBuf {
    let bytes = zstd::decode_all(std::fs::File::open(Path::new(env!("CARGO_MANIFEST_DIR")).join(SAMPLE)).unwrap()).unwrap();
    let p = dir.join("week.jsonl");
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The key an alert is listed under in the generator's truth file.
fn truth_key(a: &Value) -> Value {
    let ev = &a["evidence"];
    match a["rule"].as_str().unwrap() {
        "classified_mail" => json!({"rule": "classified_mail", "message_id": ev["message_id"], "level": ev["classification"]}),
        "external_forwarding" => json!({"rule": "external_forwarding", "mailbox": a["mailbox"], "target": ev["targets"][0]}),
        _ => json!({"rule": "mailbox_not_read", "mailbox": a["mailbox"], "day": a["day"]}),
    }
}

#[test]
fn the_bundled_sample_finds_every_injected_violation_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, stderr) = replay(dir.path(), &[], &[SAMPLE]);
    let found: BTreeSet<String> = alerts(&stdout).iter().filter(|a| a["status"] == "open").map(|a| truth_key(a).to_string()).collect();
    let truth_text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/truth.jsonl")).unwrap();
    let truth: BTreeSet<String> = truth_text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap().to_string()).collect();
    assert_eq!(found.difference(&truth).collect::<Vec<_>>(), Vec::<&String>::new(), "alerts that are not injected violations");
    assert_eq!(truth.difference(&found).collect::<Vec<_>>(), Vec::<&String>::new(), "injected violations not found");
    assert!(truth.len() >= 30);
    assert!(stderr.contains("brevvakt replay summary"), "{stderr}");
}

#[test]
fn malformed_lines_are_dead_lettered_with_file_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (_, stderr) = replay(dir.path(), &[], &[SAMPLE]);
    let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
    let entries: Vec<Value> = dead.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(entries.len(), 30, "{stderr}");
    let reasons = ["not_utf8", "syntax", "missing_field", "unknown_type", "bad_time"];
    for e in &entries {
        assert_eq!(e["source"]["name"], SAMPLE);
        assert!(e["source"]["offset"].as_u64().unwrap() > 0);
        assert!(reasons.contains(&e["reason"].as_str().unwrap()), "{e}");
        assert!(e.get("raw").is_some() || e.get("raw_base64").is_some(), "the original bytes are kept: {e}");
    }
    assert!(stderr.contains("bad records               30"), "{stderr}");
}

#[test]
fn plain_gzip_and_zstd_archives_give_the_same_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let plain = sample_plain(dir.path());
    // A gzip archive with a misleading name: compression is detected by magic bytes.
    let gz = dir.path().join("week.log");
    let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    enc.write_all(&std::fs::read(&plain).unwrap()).unwrap();
    enc.finish().unwrap();
    let ids = |p: &str| alerts(&replay(dir.path(), &[], &[p]).0).iter().map(|a| a["id"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    let from_zst = ids(SAMPLE);
    assert!(!from_zst.is_empty());
    assert_eq!(ids(plain.to_str().unwrap()), from_zst);
    assert_eq!(ids(gz.to_str().unwrap()), from_zst);
}

#[test]
fn replays_are_byte_identical_across_runs_and_worker_counts() {
    let dir = tempfile::tempdir().unwrap();
    let runs: Vec<String> = ["1", "2", "4", "4"].iter().map(|w| replay(dir.path(), &["--workers", w], &[SAMPLE]).0).collect();
    assert!(runs[0].lines().count() > 30);
    assert!(runs.iter().all(|r| *r == runs[0]));
}

/// The decode pool decodes chunks on several threads; alerts and dead letters come out as
/// they would from one.
#[test]
fn replays_are_byte_identical_across_decode_thread_counts() {
    let dir = tempfile::tempdir().unwrap();
    let runs: Vec<(String, String)> = ["1", "2", "4"]
        .iter()
        .map(|threads| {
            let cfg = dir.path().join(format!("decode-{threads}.toml"));
            let text = brevvakt::config::DEFAULT_TOML.replace("decode_threads = 0", &format!("decode_threads = {threads}"));
            assert!(text.contains(&format!("\ndecode_threads = {threads}\n")));
            std::fs::write(&cfg, text).unwrap();
            let alerts = replay(dir.path(), &["--config", cfg.to_str().unwrap()], &[SAMPLE]).0;
            (alerts, std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap())
        })
        .collect();
    assert!(runs[0].0.lines().count() > 30 && runs[0].1.lines().count() == 30);
    assert!(runs.iter().all(|r| *r == runs[0]));
}

#[test]
fn stdin_is_read_with_a_dash() {
    let dir = tempfile::tempdir().unwrap();
    let plain = sample_plain(dir.path());
    let dead = dir.path().join("dead.jsonl");
    let mut child = replay_stdin(&["--roster", ROSTER, "--until", UNTIL, "--dead-letter", dead.to_str().unwrap()]);
    let bytes = std::fs::read(&plain).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&bytes));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let from_stdin = alerts(&String::from_utf8(out.stdout).unwrap()).len();
    assert_eq!(from_stdin, alerts(&replay(dir.path(), &[], &[SAMPLE]).0).len());
}

/// A live writer on standard input (`tail -F mail.log | brevvakt replay -`): an inbox rule
/// forwarding to Gmail is alerted while the writer still holds the pipe open, not when it
/// closes it or when 256 KiB of later lines have come. The reader hands on what it has
/// when it has caught up with the writer, and the alert output is handed on when no more
/// alerts follow right behind.
#[test]
fn an_alert_from_a_live_pipe_is_written_while_the_pipe_stays_open() {
    let mut child = replay_stdin(&["--roster", ROSTER]);
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let lines = std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let _ = tx.send(line.unwrap());
        }
    });
    let access = r#"{"type":"mailbox.access","time":"2026-06-15T08:55:00+02:00","mailbox":"anna@exempel.se","user":"anna@exempel.se","protocol":"owa","result":"success"}"#;
    let forwarding = r#"{"type":"mailbox.forwarding","time":"2026-06-15T09:00:00+02:00","mailbox":"anna@exempel.se","mechanism":"inbox_rule","rule":"semester","targets":["anna.privat@gmail.com"],"state":"enabled"}"#;
    writeln!(stdin, "{access}\n{forwarding}").unwrap();
    stdin.flush().unwrap();
    let alert = rx.recv_timeout(std::time::Duration::from_secs(30)).expect("the alert is written while the pipe is open");
    let alert: Value = serde_json::from_str(&alert).unwrap();
    assert_eq!(alert["rule"], "external_forwarding");
    assert_eq!(alert["evidence"]["targets"][0], "anna.privat@gmail.com");
    drop(stdin);
    assert!(child.wait().unwrap().success());
    lines.join().unwrap();
}

#[test]
fn a_directory_of_archives_is_read_in_time_order_not_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read(sample_plain(dir.path())).unwrap();
    let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    let half = lines.len() / 2;
    let archive = dir.path().join("archive");
    std::fs::create_dir(&archive).unwrap();
    // The later half gets the name that sorts first.
    std::fs::write(archive.join("a-second-half.jsonl"), lines[half..].join(&b'\n')).unwrap();
    std::fs::write(archive.join("b-first-half.jsonl"), lines[..half].join(&b'\n')).unwrap();
    let (stdout, stderr) = replay(dir.path(), &[], &[archive.to_str().unwrap()]);
    let ids = |s: &str| alerts(s).iter().map(|a| a["id"].as_str().unwrap().to_string()).collect::<BTreeSet<_>>();
    assert_eq!(ids(&stdout), ids(&replay(dir.path(), &[], &[SAMPLE]).0));
    assert!(stderr.contains("late events                0"), "{stderr}");
}

/// Two mail servers' logs of the same week, interleaved in time (the sample's lines dealt
/// out in turn to two files): the alerts are the one file's, and every alert's evidence and
/// every dead letter names the file and line its record came from.
#[test]
fn two_interleaved_logs_give_the_alerts_of_one_and_name_each_records_own_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let whole = sample_plain(dir.path());
    let text = std::fs::read(&whole).unwrap();
    let lines: Vec<&[u8]> = text.strip_suffix(b"\n").unwrap_or(&text).split(|&b| b == b'\n').collect();
    let (a, b) = (dir.path().join("server-a.jsonl"), dir.path().join("server-b.jsonl"));
    for (path, first) in [(&a, 0), (&b, 1)] {
        let mine: Vec<&[u8]> = lines.iter().skip(first).step_by(2).copied().collect();
        std::fs::write(path, mine.join(&b'\n')).unwrap();
    }
    // A position in either file as the line of the whole week it was dealt from.
    let week_line = |pos: &Value| -> u64 {
        let (name, n) = (pos["name"].as_str().unwrap(), pos["offset"].as_u64().unwrap());
        match name.rsplit('/').next().unwrap() {
            "server-a.jsonl" => 2 * n - 1,
            "server-b.jsonl" => 2 * n,
            "week.jsonl" => n,
            other => panic!("evidence from {other}"),
        }
    };
    let run = |inputs: &[&Path]| {
        let paths: Vec<&str> = inputs.iter().map(|p| p.to_str().unwrap()).collect();
        let (stdout, _) = replay(dir.path(), &[], &paths);
        let found: std::collections::BTreeMap<String, Vec<u64>> = alerts(&stdout).iter().map(|a| {
            let events = a["evidence"]["events"].as_array().map_or(Vec::new(), |e| e.iter().map(week_line).collect());
            (a["id"].as_str().unwrap().to_string(), events)
        }).collect();
        let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
        let dead: BTreeSet<(u64, String)> = dead.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).map(|d| (week_line(&d["source"]), d["reason"].as_str().unwrap().to_string())).collect();
        (found, dead)
    };
    let (one, one_dead) = run(&[&whole]);
    assert!(one.len() > 30 && one.values().any(|e| !e.is_empty()) && one_dead.len() > 5);
    let (two, two_dead) = run(&[&a, &b]);
    assert_eq!(two, one, "the same alerts, with evidence at the same lines of the week");
    assert_eq!(two_dead, one_dead, "the same dead letters, each at its own line");
}

#[test]
fn an_overlong_line_is_dead_lettered_and_the_stream_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("huge.jsonl");
    let huge = format!("{{\"type\":\"mail.message\",\"pad\":\"{}\"}}", "x".repeat(3 << 20));
    let ok = r#"{"type":"mailbox.forwarding","time":"2026-06-15T09:00:00+02:00","mailbox":"anna@exempel.se","mechanism":"inbox_rule","targets":["anna@gmail.com"],"state":"enabled"}"#;
    std::fs::write(&input, format!("{huge}\n{ok}\n")).unwrap();
    let (stdout, _) = replay(dir.path(), &[], &[input.to_str().unwrap()]);
    let forwarding = alerts(&stdout).into_iter().filter(|a| a["rule"] == "external_forwarding").count();
    assert_eq!(forwarding, 1, "the record after the huge one is processed");
    let dead: Value = serde_json::from_str(std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap().trim()).unwrap();
    assert_eq!(dead["reason"], "too_long");
    assert_eq!(dead["source"]["offset"], 1);
    assert_eq!(dead["full_length"], huge.len());
}

/// Lines cut at the length limit amid others of the same chunk (the decode pool leaves them
/// undecoded): every record after them is still processed, the last of the chunk too.
#[test]
fn overlong_lines_amid_a_chunk_lose_none_of_the_records_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("small-lines.toml");
    let default = std::fs::read_to_string("deploy/brevvakt.default.toml").unwrap();
    std::fs::write(&config, default.replace("max_line_bytes = 1048576", "max_line_bytes = 1000")).unwrap();
    let forwarding = |n: usize| format!(r#"{{"type":"mailbox.forwarding","time":"2026-06-15T09:{n:02}:00+02:00","mailbox":"anna@exempel.se","mechanism":"inbox_rule","rule":"r{n}","targets":["anna{n}@gmail.com"],"state":"enabled"}}"#);
    let huge = format!("{{\"type\":\"mail.message\",\"pad\":\"{}\"}}", "x".repeat(3000));
    let lines = [forwarding(1), huge.clone(), forwarding(2), forwarding(3), huge, forwarding(4)];
    let input = dir.path().join("cut.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let (stdout, stderr) = replay(dir.path(), &["--config", config.to_str().unwrap()], &[input.to_str().unwrap()]);
    let rules: BTreeSet<String> = alerts(&stdout).iter().filter(|a| a["rule"] == "external_forwarding").map(|a| a["evidence"]["rule_name"].as_str().unwrap_or_default().to_string()).collect();
    assert!(stderr.contains("mailbox.forwarding         4"), "{stderr}");
    assert!(stderr.contains("too_long                   2"), "{stderr}");
    assert_eq!(rules.len(), 4, "one alert per forwarding rule: {rules:?}");
}

#[test]
fn alerts_can_be_written_as_ocsf_detection_findings() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, _) = replay(dir.path(), &["--format", "ocsf"], &[SAMPLE]);
    let first = &alerts(&stdout)[0];
    assert_eq!(first["class_uid"], 2004);
    assert!(first["finding_info"]["uid"].as_str().unwrap().len() == 32);
}

#[test]
fn a_bad_config_is_refused_with_every_field_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[organisation]\nname = \"X\"\ndomains = [\"exa mple.se\"]\n[classification]\napproved_encryption = [\"tls\"]\n").unwrap();
    let out = brevvakt(&["check-config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("organisation.domains[0]: "), "{err}");
    assert!(err.contains("classification.approved_encryption[0]: "), "{err}");
    let out = brevvakt(&["replay", "--config", cfg.to_str().unwrap(), SAMPLE]);
    assert_eq!(out.status.code(), Some(2), "replay refuses it at start too");
}

#[test]
fn the_printed_default_config_passes_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let out = brevvakt(&["check-config", "--print-default"]);
    let cfg = dir.path().join("default.toml");
    std::fs::write(&cfg, out.stdout).unwrap();
    let out = brevvakt(&["check-config", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn explain_shows_the_records_behind_an_alert_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, _) = replay(dir.path(), &[], &[SAMPLE]);
    let alerts_file = dir.path().join("alerts.jsonl");
    std::fs::write(&alerts_file, &stdout).unwrap();
    let fwd = alerts(&stdout).into_iter().find(|a| a["rule"] == "external_forwarding").unwrap();
    let pos = &fwd["evidence"]["events"][0];
    let out = brevvakt(&["explain", "--alerts", alerts_file.to_str().unwrap(), fwd["id"].as_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&format!("{SAMPLE}:{}", pos["offset"])), "{text}");
    assert!(text.contains("\"type\":\"mailbox.forwarding\"") || text.contains("\"type\":\"mail.message\""), "the source record is shown: {text}");
    assert_eq!(text.matches("{\"type\"").count(), fwd["evidence"]["events"].as_array().unwrap().len(), "only the evidence records");
    let missing = brevvakt(&["explain", "--alerts", alerts_file.to_str().unwrap(), "0000"]);
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn pseudonymised_alerts_name_no_person_but_keep_routing_and_the_external_domain() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), "a-test-key-of-at-least-16-bytes\n").unwrap();
    let cfg = brevvakt::config::DEFAULT_TOML.to_string() + "\n[privacy]\npseudonymize = true\nkey_file = \"key\"\n";
    std::fs::write(dir.path().join("brevvakt.toml"), cfg).unwrap();
    let cfg_path = dir.path().join("brevvakt.toml");
    let (clear, _) = replay(dir.path(), &[], &[SAMPLE]);
    let (private, _) = replay(dir.path(), &["--config", cfg_path.to_str().unwrap()], &[SAMPLE]);
    let (clear, private) = (alerts(&clear), alerts(&private));
    assert_eq!(clear.len(), private.len());
    for (c, p) in clear.iter().zip(&private) {
        let mailbox = c["mailbox"].as_str().unwrap();
        let text = p.to_string();
        assert!(!text.contains(mailbox), "{mailbox} appears in {text}");
        assert!(p["mailbox"].as_str().unwrap().starts_with("ps:"));
        assert_eq!(p["manager"], c["manager"], "routing stays");
        assert_ne!(p["id"], c["id"], "plain ids could be reversed from guessable inputs");
    }
    let gmail = private.iter().flat_map(|a| a["evidence"]["targets"].as_array().cloned().unwrap_or_default()).filter(|t| t.as_str().unwrap().ends_with("@gmail.com")).count();
    assert!(gmail > 0, "external domains stay visible");
}

#[test]
fn reads_out_of_order_within_the_allowed_lateness_give_the_same_alerts_as_sorted_input() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read(sample_plain(dir.path())).unwrap();
    let mut lines: Vec<&[u8]> = text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    // Reverse every run of consecutive read events (access and webmail requests) that
    // spans less than an hour: disorder well inside the 2 h allowed lateness.
    let is_read = |l: &[u8]| {
        let v: Option<Value> = serde_json::from_slice(l).ok();
        v.is_some_and(|v| (v["type"] == "mailbox.access" || v["type"] == "proxy.request") && chrono::DateTime::parse_from_rfc3339(v["time"].as_str().unwrap_or("")).is_ok())
    };
    let mut i = 0;
    let mut reversed_runs = 0;
    while i < lines.len() {
        let j = (i..lines.len()).take_while(|&k| is_read(lines[k])).take(40).count() + i;
        let time = |l: &[u8]| chrono::DateTime::parse_from_rfc3339(serde_json::from_slice::<Value>(l).unwrap()["time"].as_str().unwrap()).unwrap();
        if j - i > 1 && (time(lines[j - 1]) - time(lines[i])).num_seconds() < 3600 {
            lines[i..j].reverse();
            reversed_runs += 1;
        }
        i = j.max(i + 1);
    }
    assert!(reversed_runs > 100);
    let shuffled = dir.path().join("shuffled.jsonl");
    std::fs::write(&shuffled, lines.join(&b'\n')).unwrap();
    let ids = |p: &str| alerts(&replay(dir.path(), &[], &[p]).0).iter().map(|a| a["id"].as_str().unwrap().to_string()).collect::<BTreeSet<_>>();
    assert_eq!(ids(shuffled.to_str().unwrap()), ids(SAMPLE));
}

#[test]
fn the_roster_is_reloaded_on_sighup_and_on_change() {
    let dir = tempfile::tempdir().unwrap();
    let roster = dir.path().join("roster.csv");
    let header = "address,kind,owners,members,manager,org_unit,aliases,exemptions\n";
    std::fs::write(&roster, format!("{header}bo@exempel.se,individual,,,chef@exempel.se,Kansliet,,\n")).unwrap();
    let dead = dir.path().join("dead.jsonl");
    let mut child = replay_stdin(&["--roster", roster.to_str().unwrap(), "--dead-letter", dead.to_str().unwrap()]);
    // Let it start and watch the roster, then add anna and signal.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    std::fs::write(&roster, format!("{header}bo@exempel.se,individual,,,chef@exempel.se,Kansliet,,\nanna@exempel.se,individual,,,chef@exempel.se,Kansliet,,\n")).unwrap();
    Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let tick = |t: &str| json!({"type":"mailbox.access","time":t,"mailbox":"bo@exempel.se","user":"bo@exempel.se","protocol":"imap","result":"success"}).to_string();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}\n{}", tick("2026-03-02T08:00:00+01:00"), tick("2026-03-04T12:00:00+01:00")).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("roster reloaded"), "{stderr}");
    let anna: BTreeSet<String> = alerts(&String::from_utf8(out.stdout).unwrap())
        .into_iter()
        .filter(|a| a["mailbox"] == "anna@exempel.se")
        .map(|a| a["day"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(anna, BTreeSet::from(["2026-03-02".to_string(), "2026-03-03".to_string()]), "anna, added by the reload, is held to the duty");
}

/// With two shard workers, the stage remembers which shard each roster mailbox lives in
/// by its place in the roster. A reloaded roster that lists the same mailboxes in another
/// order must not send a mailbox's reads to the shard of the mailbox that had its place
/// before (there they would be another mailbox's reads, and its own shard would judge it
/// not read).
#[test]
fn after_a_roster_reload_that_reorders_mailboxes_each_read_still_reaches_its_own_mailbox() {
    // Two mailboxes that live in different shards of two.
    let names: Vec<String> = (0..).map(|i| format!("person{i}@exempel.se")).take(20).collect();
    let x = names[0].clone();
    let y = names.iter().find(|n| brevvakt::state::shard_of(n, 2) != brevvakt::state::shard_of(&x, 2)).unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let roster = dir.path().join("roster.csv");
    let header = "address,kind,owners,members,manager,org_unit,aliases,exemptions\n";
    let row = |a: &str| format!("{a},individual,,,chef@exempel.se,Kansliet,,\n");
    std::fs::write(&roster, format!("{header}{}{}", row(&x), row(&y))).unwrap();
    let dead = dir.path().join("dead.jsonl");
    let mut child = replay_stdin(&["--workers", "2", "--roster", roster.to_str().unwrap(), "--dead-letter", dead.to_str().unwrap()]);
    let read = |who: &str, t: &str| json!({"type":"mailbox.access","time":t,"mailbox":who,"user":who,"protocol":"imap","result":"success"}).to_string();
    let mut stdin = child.stdin.take().unwrap();
    // Monday's reads go to the shards by the first roster's order.
    writeln!(stdin, "{}\n{}", read(&x, "2026-03-02T08:00:00+01:00"), read(&y, "2026-03-02T08:05:00+01:00")).unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    std::fs::write(&roster, format!("{header}{}{}", row(&y), row(&x))).unwrap();
    Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // Tuesday's reads come after the reload; Wednesday nobody reads; Thursday closes both.
    writeln!(stdin, "{}\n{}", read(&x, "2026-03-03T08:00:00+01:00"), read(&y, "2026-03-03T08:05:00+01:00")).unwrap();
    writeln!(stdin, "{}", read(&x, "2026-03-05T12:00:00+01:00")).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("roster reloaded"), "{stderr}");
    let not_read: BTreeSet<(String, String)> = alerts(&String::from_utf8(out.stdout).unwrap())
        .into_iter()
        .filter(|a| a["rule"] == "mailbox_not_read" && a["status"] == "open")
        .map(|a| (a["mailbox"].as_str().unwrap().to_string(), a["day"].as_str().unwrap().to_string()))
        .collect();
    let wednesday = |m: &str| (m.to_string(), "2026-03-04".to_string());
    assert_eq!(not_read, BTreeSet::from([wednesday(&x), wednesday(&y)]), "only Wednesday went unread");
}

#[test]
fn files_one_after_the_other_in_time_give_the_alerts_of_one_file_without_until() {
    // Each file ends before the next begins: the watermark must go on through the second
    // (no --until here, which would close the days at the end whatever the watermark did).
    let dir = tempfile::tempdir().unwrap();
    let whole = std::fs::read(sample_plain(dir.path())).unwrap();
    let half = whole.iter().enumerate().filter(|(_, &b)| b == b'\n').map(|(i, _)| i + 1).nth(whole.iter().filter(|&&b| b == b'\n').count() / 2).unwrap();
    let (first, second) = (dir.path().join("1.jsonl"), dir.path().join("2.jsonl"));
    std::fs::write(&first, &whole[..half]).unwrap();
    std::fs::write(&second, &whole[half..]).unwrap();
    let ids = |inputs: &[&Path]| -> BTreeSet<String> {
        let dead = dir.path().join("dead.jsonl");
        let mut args = vec!["replay", "--quiet", "--roster", ROSTER, "--dead-letter", dead.to_str().unwrap()];
        args.extend(inputs.iter().map(|p| p.to_str().unwrap()));
        let out = brevvakt(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        alerts(&String::from_utf8(out.stdout).unwrap()).iter().map(|a| a["id"].as_str().unwrap().to_string()).collect()
    };
    let one = ids(&[&dir.path().join("week.jsonl")]);
    assert!(one.len() > 30);
    assert_eq!(ids(&[&first, &second]), one);
}
