//! `brevvakt run` against a real Kafka-protocol broker (tansu, see `tests/support`):
//! the alerts of a Kafka run equal those of a file replay of the same stream; a run
//! stopped by SIGTERM halfway and started again misses no alert and keeps its state;
//! malformed records land on the dead-letter topic with their headers.
//!
//! Producers key records by mailbox (as the README requires of real producers).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use support::Broker;

const INPUT: &str = "mail-events";
const ALERTS: &str = "brevvakt-alerts";
const DEAD: &str = "brevvakt-dead-letter";
const UNTIL: &str = "2026-06-22T00:00:00+02:00";

/// A generated week (Midsummer week 2026) for a small organisation, and its roster file.
fn stream(dir: &Path) -> Vec<Vec<u8>> {
    let opts = brevvakt::generate::GenOptions { mailboxes: 80, days: 7, seed: 11, malformed: 0.004, ..Default::default() };
    let (mut events, mut roster, mut truth) = (Vec::new(), Vec::new(), Vec::new());
    brevvakt::generate::generate(&opts, &mut events, &mut roster, &mut truth).unwrap();
    std::fs::write(dir.join("roster.csv"), roster).unwrap();
    std::fs::write(dir.join("events.jsonl"), &events).unwrap();
    // Malformed lines may be any bytes (not UTF-8 either).
    let mut lines: Vec<Vec<u8>> = events.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    if lines.last().is_some_and(Vec::is_empty) {
        lines.pop();
    }
    lines
}

/// The mailbox a record is about: the partition key producers must use.
fn mailbox_key(line: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else { return "malformed".into() };
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    // A forwarded/redirected/expanded message belongs to the mailbox it was addressed to.
    if let Some(m) = s("mailbox").or_else(|| s("original_recipient")) {
        return m;
    }
    if v.get("type").and_then(|t| t.as_str()) == Some("proxy.request") {
        return s("user").unwrap_or_default();
    }
    let local = |a: &str| a.ends_with("exempel.se");
    if s("direction").as_deref() == Some("outbound") {
        return s("sender").unwrap_or_default();
    }
    let rcpts: Vec<String> = v.get("recipients").and_then(|r| r.as_array()).map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default();
    rcpts.iter().find(|r| local(r)).cloned().or_else(|| s("sender")).unwrap_or_default()
}

/// Alert ids and dead-lettered raw records of `brevvakt replay` over the same stream.
fn replay(dir: &Path) -> (BTreeSet<String>, BTreeSet<Vec<u8>>) {
    replay_with(dir, "replay", &[dir.join("events.jsonl").to_str().unwrap()])
}

/// Alert ids and dead-lettered raw records of `brevvakt replay ARGS` (outputs named `tag`).
fn replay_with(dir: &Path, tag: &str, args: &[&str]) -> (BTreeSet<String>, BTreeSet<Vec<u8>>) {
    let (alerts, dead) = (dir.join(format!("{tag}-alerts.jsonl")), dir.join(format!("{tag}-dead.jsonl")));
    let out = Command::new(env!("CARGO_BIN_EXE_brevvakt"))
        .args(["replay", "--quiet", "--until", UNTIL, "--workers", "2"])
        .arg("--roster").arg(dir.join("roster.csv"))
        .arg("--out").arg(&alerts)
        .arg("--dead-letter").arg(&dead)
        .args(args)
        .env("BREVVAKT_TEST_CLIENT_ID", "brevvakt-test")
        .output()
        .unwrap();
    assert!(out.status.success(), "replay {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    let ids = std::fs::read_to_string(alerts).unwrap().lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().to_string()).collect();
    use base64::Engine;
    let dead = std::fs::read_to_string(dead)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v = serde_json::from_str::<serde_json::Value>(l).unwrap();
            match v["raw"].as_str() {
                Some(raw) => raw.as_bytes().to_vec(),
                None => base64::engine::general_purpose::STANDARD.decode(v["raw_base64"].as_str().unwrap()).unwrap(),
            }
        })
        .collect();
    (ids, dead)
}

fn produce(broker: &Broker, lines: &[Vec<u8>]) {
    // Kafka's default partitioner for keyed records (the Java client's; librdkafka's
    // `murmur2_random`), which brevvakt assumes when it decides which mailboxes it owns.
    let p: BaseProducer = ClientConfig::new().set("bootstrap.servers", &broker.addr).set("enable.idempotence", "true").set("linger.ms", "5").set("partitioner", "murmur2_random").create().unwrap();
    for line in lines {
        let key = mailbox_key(line);
        let mut rec = BaseRecord::to(INPUT).key(key.as_bytes()).payload(line.as_slice());
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, r)) => {
                    rec = r;
                    p.poll(Duration::from_millis(20));
                }
            }
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(60)).unwrap();
}

/// Every line's record timestamp: its event time (ms), or for a line without a readable one
/// (malformed: a corrupted copy of the line before it) the time of the line before.
fn event_times(lines: &[Vec<u8>]) -> Vec<i64> {
    let mut last = 0;
    lines
        .iter()
        .map(|l| {
            let time = serde_json::from_slice::<serde_json::Value>(l).ok().and_then(|v| v["time"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()));
            last = time.map_or(last, |t| t.timestamp_millis());
            last
        })
        .collect()
}

/// Produces `lines` keyed by mailbox with their event times as record timestamps, one
/// record per batch: tansu 0.6 reports a partition's high watermark as the last *batch's*
/// base offset + 1, which is exact only then (checked below).
fn produce_stamped(broker: &Broker, lines: &[Vec<u8>], times: &[i64]) {
    let p: BaseProducer = ClientConfig::new().set("bootstrap.servers", &broker.addr).set("enable.idempotence", "true").set("linger.ms", "0").set("batch.num.messages", "1").create().unwrap();
    for (line, ts) in lines.iter().zip(times) {
        let key = mailbox_key(line);
        let mut rec = BaseRecord::to(INPUT).key(key.as_bytes()).payload(line.as_slice()).timestamp(*ts);
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, r)) => {
                    rec = r;
                    p.poll(Duration::from_millis(20));
                }
            }
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(60)).unwrap();
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &broker.addr).create().unwrap();
    let high: i64 = (0..3).map(|part| c.fetch_watermarks(INPUT, part, Duration::from_secs(10)).unwrap().1).sum();
    assert_eq!(high, lines.len() as i64, "the broker's high watermarks count every record");
}

/// One record read back: key, value, headers.
struct Rec {
    key: String,
    value: Vec<u8>,
    headers: BTreeMap<String, String>,
}

/// Every record of `topic`, read from the beginning to the end of every partition.
fn consume_all(broker: &Broker, topic: &str) -> Vec<Rec> {
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &broker.addr).set("group.id", "test-reader").set("enable.partition.eof", "true").set("enable.auto.commit", "false").create().unwrap();
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    let parts: Vec<i32> = md.topics()[0].partitions().iter().map(|p| p.id()).collect();
    let mut tpl = TopicPartitionList::new();
    let mut open = BTreeSet::new();
    for p in &parts {
        let (low, high) = c.fetch_watermarks(topic, *p, Duration::from_secs(10)).unwrap();
        if high > low {
            tpl.add_partition_offset(topic, *p, Offset::Beginning).unwrap();
            open.insert(*p);
        }
    }
    let mut out = Vec::new();
    if open.is_empty() {
        return out;
    }
    c.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !open.is_empty() && Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let headers = m.headers().map(|h| h.iter().map(|x| (x.key.to_string(), String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned())).collect()).unwrap_or_default();
                out.push(Rec { key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(), value: m.payload().unwrap_or_default().to_vec(), headers });
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(e)) => panic!("consuming {topic}: {e}"),
            None => {}
        }
    }
    assert!(open.is_empty(), "{topic}: partitions {open:?} not read to the end in time");
    out
}

fn config(dir: &Path, broker: &Broker, group: &str) -> std::path::PathBuf {
    let text = format!(
        "{}\n[kafka]\nbrokers = \"{}\"\ngroup_id = \"{group}\"\ntopics = [{{ name = \"{INPUT}\", format = \"normalized\" }}]\nalerts_topic = \"{ALERTS}\"\ndead_letter_topic = \"{DEAD}\"\ncommit_interval = \"1s\"\n[kafka.properties]\n\"client.id\" = \"${{env:BREVVAKT_TEST_CLIENT_ID}}\"\n",
        brevvakt::config::DEFAULT_TOML,
        broker.addr
    );
    let path = dir.join("brevvakt.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(dir: &Path, cfg: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_brevvakt"))
        .args(["run", "--no-metrics", "--workers", "2", "--config"])
        .arg(cfg)
        .arg("--roster").arg(dir.join("roster.csv"))
        .args(extra)
        .env("BREVVAKT_TEST_CLIENT_ID", "brevvakt-test")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for the process; panics (after killing it) past `limit`.
fn wait(mut child: Child, limit: Duration) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(_status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            return (out.status, String::from_utf8_lossy(&out.stderr).into_owned());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("brevvakt run did not finish within {limit:?}:\n{}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn alert_ids(recs: &[Rec]) -> BTreeSet<String> {
    recs.iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(&r.value).unwrap();
            let id = v["id"].as_str().unwrap().to_string();
            assert_eq!(r.headers.get("alert_id"), Some(&id), "alert_id header");
            assert_eq!(r.key, v["mailbox"].as_str().unwrap(), "alerts are keyed by mailbox");
            id
        })
        .collect()
}

/// The broker tests run one at a time: each starts its own broker, and three brokers plus
/// three brevvakt processes on a 2-core machine starve each other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn setup() -> (std::sync::MutexGuard<'static, ()>, tempfile::TempDir, Broker, Vec<Vec<u8>>) {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    broker.create_topic(INPUT, 3);
    broker.create_topic(ALERTS, 2);
    broker.create_topic(DEAD, 1);
    let lines = stream(dir.path());
    (guard, dir, broker, lines)
}

#[test]
fn kafka_run_gives_the_alerts_of_a_file_replay_and_dead_letters_bad_records() {
    let t0 = Instant::now();
    let (_serial, dir, broker, lines) = setup();
    let (want, want_dead) = replay(dir.path());
    assert!(!want.is_empty() && !want_dead.is_empty());
    produce(&broker, &lines);
    let cfg = config(dir.path(), &broker, "brevvakt-e2e");
    let (status, stderr) = wait(run(dir.path(), &cfg, &["--idle-exit", "3", "--until", UNTIL]), Duration::from_secs(120));
    assert!(status.success(), "run failed:\n{stderr}");
    assert!(!stderr.contains("brevvakt-test"), "property values are never logged");
    let recs = consume_all(&broker, ALERTS);
    let got = alert_ids(&recs);
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    for r in recs.iter().filter(|r| !want.contains(&r.headers["alert_id"])).take(5) {
        eprintln!("extra: {}", String::from_utf8_lossy(&r.value));
    }
    assert!(missing.is_empty() && extra.is_empty(), "alert ids differ from the replay: missing {missing:?}, extra {extra:?}");

    let dead = consume_all(&broker, DEAD);
    assert_eq!(dead.len(), want_dead.len(), "every malformed record is dead-lettered once");
    for d in &dead {
        assert_eq!(d.headers.get("source_topic").map(String::as_str), Some(INPUT));
        let p: i32 = d.headers["source_partition"].parse().unwrap();
        assert!((0..3).contains(&p));
        let _offset: u64 = d.headers["source_offset"].parse().unwrap();
        assert!(!d.headers["reason"].is_empty());
        assert!(want_dead.contains(&d.value), "original bytes kept");
    }
    eprintln!("kafka e2e: {} records, {} alerts, {} dead letters, {:.1} s", lines.len(), got.len(), dead.len(), t0.elapsed().as_secs_f64());
}

/// Records covered by the newest checkpoint of every partition in the state directory.
fn covered(state: &Path) -> u64 {
    (0..3).filter_map(|p| brevvakt::state::checkpoint::load_partition(state, p).ok().flatten()).map(|c| c.inputs.iter().map(|p| p.lines).sum::<u64>()).sum()
}

#[test]
fn kafka_run_stopped_by_sigterm_resumes_with_its_state_and_misses_nothing() {
    let t0 = Instant::now();
    let (_serial, dir, broker, lines) = setup();
    let (want, _) = replay(dir.path());
    let half = lines.len() / 2;
    produce(&broker, &lines[..half]);
    let cfg = config(dir.path(), &broker, "brevvakt-restart");
    let state = dir.path().join("state");
    let state_arg = state.to_str().unwrap();

    // First run: consume the first half, then SIGTERM.
    let child = run(dir.path(), &cfg, &["--state-dir", state_arg]);
    let deadline = Instant::now() + Duration::from_secs(90);
    while covered(&state) < half as u64 {
        assert!(Instant::now() < deadline, "the first run did not checkpoint the first half in time");
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = child.id().to_string();
    let sent = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let (status, stderr) = wait(child, Duration::from_secs(30));
    let stop_secs = sent.elapsed().as_secs_f64();
    assert!(status.success(), "SIGTERM must exit 0:\n{stderr}");
    let first = alert_ids(&consume_all(&broker, ALERTS));
    assert!(!first.is_empty(), "the first half raises alerts");

    // Second run: the rest of the stream, resumed from the checkpoint.
    produce(&broker, &lines[half..]);
    let (status, stderr) = wait(run(dir.path(), &cfg, &["--state-dir", state_arg, "--idle-exit", "3", "--until", UNTIL]), Duration::from_secs(120));
    assert!(status.success(), "second run failed:\n{stderr}");
    assert!(stderr.contains("partition state restored"), "{stderr}");
    let got = alert_ids(&consume_all(&broker, ALERTS));
    let missing: Vec<_> = want.difference(&got).collect();
    // An alert the replay does not have would be a mailbox whose reads before the restart
    // were forgotten (state not carried over).
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(missing.is_empty() && extra.is_empty(), "after a restart: missing {missing:?}, extra {extra:?}");
    eprintln!("kafka restart: {} records, {} alerts, SIGTERM→exit {:.2} s, {:.1} s in all", lines.len(), got.len(), stop_secs, t0.elapsed().as_secs_f64());
}

#[test]
fn a_partition_moving_to_a_second_instance_takes_its_mailboxes_state_along() {
    let t0 = Instant::now();
    let (_serial, dir, broker, lines) = setup();
    let (want, _) = replay(dir.path());
    let half = lines.len() / 2;
    produce(&broker, &lines[..half]);
    let cfg = config(dir.path(), &broker, "brevvakt-pair");
    let state = dir.path().join("shared-state");
    let state_arg = state.to_str().unwrap();
    let args = ["--state-dir", state_arg, "--idle-exit", "20", "--until", UNTIL];

    // A alone reads the first half (it owns every partition), then B joins the group: the
    // partitions B is given move with the state A checkpointed for them.
    let a = run(dir.path(), &cfg, &args);
    let deadline = Instant::now() + Duration::from_secs(90);
    while covered(&state) < half as u64 {
        assert!(Instant::now() < deadline, "instance A did not checkpoint the first half in time");
        std::thread::sleep(Duration::from_millis(100));
    }
    let b = run(dir.path(), &cfg, &args);
    std::thread::sleep(Duration::from_secs(8));
    produce(&broker, &lines[half..]);
    let (sa, ea) = wait(a, Duration::from_secs(150));
    let (sb, eb) = wait(b, Duration::from_secs(150));
    assert!(sa.success() && sb.success(), "A:\n{ea}\nB:\n{eb}");
    assert!(ea.contains("partition revoked"), "B's joining moved partitions away from A:\n{ea}");
    assert!(eb.contains("partition state restored"), "B took over A's state:\n{eb}");

    let got = alert_ids(&consume_all(&broker, ALERTS));
    let missing: Vec<_> = want.difference(&got).collect();
    // A mailbox judged by B without A's reads would show up as an extra not-read alert.
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(missing.is_empty() && extra.is_empty(), "two instances: missing {missing:?}, extra {extra:?}\nA:\n{ea}\nB:\n{eb}");
    eprintln!("kafka pair: {} records, {} alerts, {:.1} s\nA:\n{ea}\nB:\n{eb}", lines.len(), got.len(), t0.elapsed().as_secs_f64());
}

#[test]
fn a_quiet_night_closes_the_day_by_the_wall_clock_when_every_partition_is_idle() {
    let (_serial, dir, broker, lines) = setup();
    // Only Monday 2026-06-15 is produced; then every partition goes quiet.
    let monday: Vec<Vec<u8>> = lines.into_iter().filter(|l| String::from_utf8_lossy(l).contains("\"time\":\"2026-06-15T")).collect();
    assert!(monday.len() > 100);
    produce(&broker, &monday);
    let cfg = config(dir.path(), &broker, "brevvakt-quiet-night");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("idle_timeout = \"15m\"", "idle_timeout = \"1s\"");
    std::fs::write(&cfg, text).unwrap();
    let (status, stderr) = wait(run(dir.path(), &cfg, &["--idle-exit", "6"]), Duration::from_secs(120));
    assert!(status.success(), "{stderr}");
    // Tuesday has no event at all: only the wall clock can have closed it.
    let tuesday = consume_all(&broker, ALERTS)
        .iter()
        .map(|r| serde_json::from_slice::<serde_json::Value>(&r.value).unwrap())
        .filter(|a| a["rule"] == "mailbox_not_read" && a["day"] == "2026-06-16")
        .count();
    assert!(tuesday > 0, "no day was closed by the wall clock:\n{stderr}");
}

#[test]
fn kafka_replay_from_a_time_gives_the_alerts_of_a_file_replay_of_the_records_from_that_time() {
    let t0 = Instant::now();
    let (_serial, dir, broker, lines) = setup();
    let dir = dir.path();
    let times = event_times(&lines);
    produce_stamped(&broker, &lines, &times);
    let kafka = |tag: &str, extra: &[&str]| replay_with(dir, tag, &[&["--kafka-brokers", &broker.addr, "--kafka-topic", INPUT], extra].concat());

    // The whole topic: as the file replay of the whole stream; brokers and properties may
    // come from the [kafka] section.
    let (want, want_dead) = replay(dir);
    assert!(!want.is_empty() && !want_dead.is_empty());
    let cfg = config(dir, &broker, "brevvakt-replay-test");
    let whole = replay_with(dir, "kafka-config", &["--config", cfg.to_str().unwrap(), "--kafka-topic", INPUT]);
    assert_eq!(whole, (want.clone(), want_dead.clone()), "a Kafka replay of the whole topic differs from the file replay");
    assert_eq!(kafka("kafka-early", &["--from", "2026-06-01T00:00:00+02:00"]), (want.clone(), want_dead), "--from before the first record reads everything");

    // From Thursday noon: as the file replay of exactly the records from that time on.
    let from = "2026-06-18T12:00:00+02:00";
    let from_ms = chrono::DateTime::parse_from_rfc3339(from).unwrap().timestamp_millis();
    let cut: Vec<u8> = lines.iter().zip(&times).filter(|(_, t)| **t >= from_ms).flat_map(|(l, _)| [l.as_slice(), b"\n"].concat()).collect();
    assert!(cut.len() > 1000 && lines.len() > cut.iter().filter(|&&b| b == b'\n').count() + 1000, "the cut is in the middle");
    std::fs::write(dir.join("cut.jsonl"), cut).unwrap();
    let (want_cut, want_cut_dead) = replay_with(dir, "file-cut", &[dir.join("cut.jsonl").to_str().unwrap()]);
    assert!(!want_cut.is_empty() && want_cut != want, "cutting the stream changes the alerts");
    let (got, got_dead) = kafka("kafka-cut", &["--from", from]);
    let missing: Vec<_> = want_cut.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want_cut).collect();
    assert!(missing.is_empty() && extra.is_empty(), "replay --from {from}: missing {missing:?}, extra {extra:?}");
    assert_eq!(got_dead, want_cut_dead, "the same records dead-lettered");
    eprintln!("kafka replay: {} records, {} alerts whole, {} from {from}, {:.1} s in all", lines.len(), want.len(), got.len(), t0.elapsed().as_secs_f64());
}

#[test]
fn kafka_replay_is_refused_with_file_inputs_or_a_state_dir() {
    for (args, says) in [
        (&["--kafka-topic", INPUT, "events.jsonl"][..], "cannot be combined with file inputs"),
        (&["--kafka-topic", INPUT, "--input-format", "squid"][..], "--input-format applies to file inputs"),
        (&["--kafka-topic", INPUT, "--state-dir", "state"][..], "--state-dir is not supported with --kafka-topic"),
        (&["--kafka-topic", INPUT][..], "--kafka-brokers"),
        (&["--kafka-topic", INPUT, "--kafka-brokers", "127.0.0.1:1", "--from", "2026-06-18T00:00:00Z", "--to", "2026-06-17T00:00:00Z"][..], "before --from"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_brevvakt")).arg("replay").args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
