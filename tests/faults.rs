//! Faults (issue #10), against the real Kafka-protocol broker (tansu, see `tests/support`):
//! - the broker becomes unreachable mid-run (a forwarder in front of it drops every
//!   connection and refuses new ones) and comes back: the run recovers and the alerts
//!   topic holds exactly the alert ids of a file replay; SIGTERM still exits 0;
//! - the alerts topic does not exist: nothing is committed past the first record whose
//!   alert is unacknowledged; once the topic exists every alert arrives and everything is
//!   committed; a delivery that finally fails stops the run (exit 1) without committing
//!   past it, and the next run delivers everything;
//! - the checkpoint directory becomes unwritable: the replay (and the run) stops with an
//!   error naming the directory, the newest checkpoint on disk still loads, and resuming
//!   from it gives the alerts of an uninterrupted replay (the run commits nothing beyond
//!   its last checkpoint);
//! - the broker refuses the SASL credentials: the run says so, and the password (from the
//!   environment or a file) never appears in its log (see the SASL section for why a
//!   successful login cannot be tested on tansu).
//!
//! tansu keeps its data in memory, so "the broker stops" is simulated by the forwarder,
//! never by killing tansu. Every wait is bounded; the tests run one at a time.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::kafka::*;
use support::{Broker, BrokerOptions};

// ── a TCP forwarder that can play "broker down" ──

/// Forwards loopback connections to the broker; [`Forwarder::down`] drops every forwarded
/// connection and refuses new ones until [`Forwarder::up`].
struct Forwarder {
    addr: String,
    down: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Forwarder {
    /// Binds the forwarder's port first: the broker must advertise it.
    fn bind() -> (TcpListener, String) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        (l, addr)
    }

    /// Starts forwarding what `listener` accepts to `upstream`.
    fn start(listener: TcpListener, upstream: &str) -> Forwarder {
        let addr = listener.local_addr().unwrap().to_string();
        let (down, stop) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (d, s, c, up) = (down.clone(), stop.clone(), conns.clone(), upstream.to_string());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                if d.load(Ordering::SeqCst) {
                    continue; // refused: closed at once
                }
                let Ok(server) = TcpStream::connect(&up) else { continue };
                let mut list = c.lock().unwrap();
                list.push(client.try_clone().unwrap());
                list.push(server.try_clone().unwrap());
                pump(client.try_clone().unwrap(), server.try_clone().unwrap());
                pump(server, client);
            }
        });
        Forwarder { addr, down, stop, conns }
    }

    /// "The broker stops": every connection is cut, new ones are refused.
    fn down(&self) {
        self.down.store(true, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// "The broker is back".
    fn up(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.down();
        let _ = TcpStream::connect(&self.addr); // wakes the accept loop
    }
}

/// Copies `from` → `to` on its own thread until either side closes.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

// ── the replay to compare with ──

/// The alerts of `brevvakt replay` over the same stream (with `--until`, if given).
fn replay(dir: &Path, until: Option<&str>) -> Vec<serde_json::Value> {
    let out = dir.join("replay-alerts.jsonl");
    let mut cmd = Command::new(BIN);
    cmd.args(["replay", "--quiet", "--workers", "2", "--roster"]).arg(dir.join("roster.csv")).arg("--out").arg(&out).arg("--dead-letter").arg(dir.join("replay-dead.jsonl"));
    if let Some(t) = until {
        cmd.args(["--until", t]);
    }
    let res = cmd.arg(dir.join("events.jsonl")).output().unwrap();
    assert!(res.status.success(), "replay failed: {}", String::from_utf8_lossy(&res.stderr));
    std::fs::read_to_string(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn ids(alerts: &[serde_json::Value]) -> BTreeSet<String> {
    alerts.iter().map(|a| a["id"].as_str().unwrap().to_string()).collect()
}

// ── broker outage ──

#[test]
fn a_broker_outage_mid_run_loses_no_alert_and_sigterm_still_exits_0() {
    let _serial = serial();
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (listener, fwd_addr) = Forwarder::bind();
    let broker = Broker::start_with(&BrokerOptions { advertised: Some(fwd_addr), ..Default::default() });
    broker.create_topic(INPUT, 3);
    broker.create_topic(ALERTS, 2);
    broker.create_topic(DEAD, 1);
    let fwd = Forwarder::start(listener, &broker.addr);
    let lines = week(dir.path(), 60, 23);
    let want = ids(&replay(dir.path(), None));
    assert!(!want.is_empty());
    let half = lines.len() / 2;
    let mut ends = BTreeMap::new();
    produce(&link(&fwd.addr), INPUT, &lines[..half], &mut ends);

    let group = "brevvakt-outage";
    let cfg = config(dir.path(), &fwd.addr, group, "");
    let log = dir.path().join("run.log");
    let mut child = run(dir.path(), &cfg, &log, &[]);
    // The outage starts as soon as the run has committed something: mid-run.
    wait_for(Duration::from_secs(60), "a first commit", &log, || committed(&link(&fwd.addr), group, INPUT).values().any(Option::is_some));
    fwd.down();
    std::thread::sleep(Duration::from_secs(6));
    assert!(child.try_wait().unwrap().is_none(), "the run must ride out a broker outage:\n{}", read(&log));
    fwd.up();
    let outage_over = Instant::now();
    produce(&link(&fwd.addr), INPUT, &lines[half..], &mut ends);
    wait_for(Duration::from_secs(90), "every record committed after the outage", &log, || all_committed(&link(&fwd.addr), group, &ends));
    let recovered = outage_over.elapsed().as_secs_f64();
    sigterm(&child);
    let status = wait(&mut child, Duration::from_secs(30), &log);
    assert!(status.success(), "SIGTERM after an outage must exit 0:\n{}", read(&log));

    let got = topic_alert_ids(&link(&fwd.addr));
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(missing.is_empty() && extra.is_empty(), "after a broker outage: missing {missing:?}, extra {extra:?}");
    eprintln!("broker outage: {} records, {} alerts, everything committed {recovered:.1} s after the broker came back, {:.1} s in all", lines.len(), got.len(), t0.elapsed().as_secs_f64());
}


// ── the alerts topic unavailable ──

/// A broker with the input (one partition: offset = line − 1) and dead-letter topics, but
/// no alerts topic. Returns the stream, the replay's alert ids, and the offset of the first
/// record that raises an alert.
fn without_alerts_topic(dir: &Path) -> (Broker, Vec<Vec<u8>>, BTreeSet<String>, i64) {
    let broker = Broker::start();
    broker.create_topic(INPUT, 1);
    broker.create_topic(DEAD, 1);
    let lines = week(dir, 60, 23);
    let alerts = replay(dir, Some(UNTIL));
    let first = first_alerting_offset(&lines, &alerts);
    (broker, lines, ids(&alerts), first)
}

/// The offset of the first record that raises an alert: a forwarding or classified-mail
/// alert is raised by the newest record of its evidence; the first reading-duty alerts
/// (Monday's) by the first record at or past Tuesday 02:00, when the watermark (event
/// time minus the default 2 h of allowed lateness) passes Monday's end.
fn first_alerting_offset(lines: &[Vec<u8>], alerts: &[serde_json::Value]) -> i64 {
    let immediate = alerts
        .iter()
        .filter(|a| a["rule"] != "mailbox_not_read")
        .map(|a| a["evidence"]["events"].as_array().unwrap().iter().map(|e| e["offset"].as_i64().unwrap()).max().unwrap() - 1)
        .min()
        .expect("the stream raises an immediate alert");
    assert!(alerts.iter().any(|a| a["rule"] == "mailbox_not_read" && a["day"] == "2026-06-15"), "Monday is judged");
    let tuesday_2am = chrono::DateTime::parse_from_rfc3339("2026-06-16T02:00:00+02:00").unwrap();
    let time = |l: &Vec<u8>| serde_json::from_slice::<serde_json::Value>(l).ok().and_then(|v| v["time"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()));
    let monday_closed = lines.iter().position(|l| time(l).is_some_and(|t| t >= tuesday_2am)).unwrap() as i64;
    immediate.min(monday_closed)
}

/// Offsets of the dead letters on the dead-letter topic.
fn dead_letter_offsets(link: &Link) -> Vec<i64> {
    consume_all(link, DEAD).iter().map(|r| r.headers["source_offset"].parse().unwrap()).collect()
}

/// Nothing is committed at or past `first` (the record whose alert is not acknowledged).
fn assert_not_committed_past(link: &Link, group: &str, first: i64, log: &Path) {
    let at = committed(link, group, INPUT)[&0];
    assert!(at.is_none_or(|o| o <= first), "committed {at:?} past offset {first}, whose alert was never acknowledged:\n{}", read(log));
}

#[test]
fn a_missing_alerts_topic_holds_the_commit_back_and_every_alert_arrives_once_it_exists() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (broker, lines, want, first) = without_alerts_topic(dir.path());
    let group = "brevvakt-no-alerts-topic";
    let cfg = config(dir.path(), &broker.addr, group, "");
    let log = dir.path().join("run.log");
    let mut child = run(dir.path(), &cfg, &log, &["--idle-exit", "10", "--until", UNTIL]);
    // Records that owe no alert are committed, alerts topic or not...
    let mut ends = BTreeMap::new();
    produce(&link(&broker.addr), INPUT, &lines[..first as usize], &mut ends);
    wait_for(Duration::from_secs(60), "the records before the first alert committed", &log, || committed(&link(&broker.addr), group, INPUT)[&0] == Some(first));
    // ...then the run reads on past the first alerting record (its dead letters past it
    // arrive) but commits nothing past it, however long the alerts topic is missing.
    produce(&link(&broker.addr), INPUT, &lines[first as usize..], &mut ends);
    wait_for(Duration::from_secs(60), "dead letters from past the first alert", &log, || dead_letter_offsets(&link(&broker.addr)).iter().any(|&o| o > first));
    for _ in 0..3 {
        assert_eq!(committed(&link(&broker.addr), group, INPUT)[&0], Some(first), "committed past offset {first}, whose alert was never acknowledged:\n{}", read(&log));
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(child.try_wait().unwrap().is_none(), "the run waits for the alerts topic:\n{}", read(&log));
    broker.create_topic(ALERTS, 2);
    let status = wait(&mut child, Duration::from_secs(90), &log);
    assert!(status.success(), "{}", read(&log));
    let got = topic_alert_ids(&link(&broker.addr));
    assert_eq!(got, want, "every alert arrives once the topic exists");
    assert!(all_committed(&link(&broker.addr), group, &ends), "and then everything is committed: {:?}", committed(&link(&broker.addr), group, INPUT));
    eprintln!("alerts topic missing: committed up to the first alerting record ({first}) and held there; once the topic existed, {} alerts and {:?} committed", got.len(), ends);
}

#[test]
fn a_delivery_that_finally_fails_stops_the_run_uncommitted_and_the_next_run_delivers_it() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (broker, lines, want, first) = without_alerts_topic(dir.path());
    let mut ends = BTreeMap::new();
    produce(&link(&broker.addr), INPUT, &lines, &mut ends);
    let group = "brevvakt-delivery-fails";
    // The producer gives a record up after 3 s (librdkafka's default is 5 minutes).
    let cfg = config(dir.path(), &broker.addr, group, "\"message.timeout.ms\" = \"3000\"");
    let log = dir.path().join("run.log");
    let mut child = run(dir.path(), &cfg, &log, &["--idle-exit", "3", "--until", UNTIL]);
    let status = wait(&mut child, Duration::from_secs(60), &log);
    let stderr = read(&log);
    assert_eq!(status.code(), Some(1), "a failed delivery fails the run:\n{stderr}");
    assert!(stderr.contains(&format!("delivery to {ALERTS} failed")), "the error names the alerts topic:\n{stderr}");
    assert_not_committed_past(&link(&broker.addr), group, first, &log);
    let error = stderr.lines().find(|l| l.starts_with("error:")).unwrap_or_default().to_string();
    eprintln!("delivery failed: {error}; committed {:?}, first alerting record at {first}", committed(&link(&broker.addr), group, INPUT)[&0]);

    broker.create_topic(ALERTS, 2);
    let cfg = config(dir.path(), &broker.addr, group, "");
    let mut child = run(dir.path(), &cfg, &log, &["--idle-exit", "3", "--until", UNTIL]);
    let status = wait(&mut child, Duration::from_secs(90), &log);
    assert!(status.success(), "{}", read(&log));
    assert_eq!(topic_alert_ids(&link(&broker.addr)), want, "the next run delivers every alert");
    assert!(all_committed(&link(&broker.addr), group, &ends));
}

// ── the checkpoint directory fails ──

/// A configuration that checkpoints every 500 records.
fn checkpointing_config(dir: &Path) -> PathBuf {
    let path = dir.join("checkpointing.toml");
    let text = brevvakt::config::DEFAULT_TOML.replace("checkpoint_records = 1000000", "checkpoint_records = 500");
    assert!(text != brevvakt::config::DEFAULT_TOML);
    std::fs::write(&path, text).unwrap();
    path
}

/// `brevvakt replay -` (stdin) writing `dir/<out>.jsonl`, checkpointing in `dir/state`
/// if `checkpoint`.
fn replay_stdin(dir: &Path, cfg: &Path, out: &str, checkpoint: bool, log: &Path) -> Child {
    let mut cmd = Command::new(BIN);
    cmd.args(["replay", "--quiet", "--workers", "2", "--until", UNTIL, "--config"]).arg(cfg).arg("--roster").arg(dir.join("roster.csv"));
    cmd.arg("--out").arg(dir.join(format!("{out}.jsonl"))).arg("--dead-letter").arg(dir.join(format!("{out}-dead.jsonl")));
    if checkpoint {
        cmd.arg("--state-dir").arg(dir.join("state"));
    }
    cmd.arg("-").stdin(Stdio::piped()).stdout(Stdio::null()).stderr(std::fs::File::create(log).unwrap()).spawn().unwrap()
}

/// Writes `lines` to the child's stdin; false if it stopped reading (a broken pipe).
fn feed(stdin: &mut std::process::ChildStdin, lines: &[Vec<u8>]) -> bool {
    lines.iter().all(|l| stdin.write_all(l).and_then(|()| stdin.write_all(b"\n")).is_ok())
}

/// The alerts file of an uninterrupted replay of `lines` from stdin.
fn uninterrupted(dir: &Path, cfg: &Path, lines: &[Vec<u8>]) -> Vec<u8> {
    let log = dir.join("reference.log");
    let mut child = replay_stdin(dir, cfg, "reference", false, &log);
    assert!(feed(child.stdin.as_mut().unwrap(), lines));
    drop(child.stdin.take());
    assert!(wait(&mut child, Duration::from_secs(60), &log).success(), "{}", read(&log));
    std::fs::read(dir.join("reference.jsonl")).unwrap()
}

fn checkpoints(state: &Path) -> usize {
    std::fs::read_dir(state).map_or(0, |d| d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().ends_with(".bvck")).count())
}

/// Checkpoint files of every partition directory (`run` checkpoints per partition).
fn partition_checkpoints(state: &Path) -> usize {
    (0..3).map(|p| checkpoints(&brevvakt::state::checkpoint::partition_dir(state, p))).sum()
}

#[test]
fn an_unwritable_checkpoint_directory_stops_the_replay_with_a_clear_error_and_the_last_checkpoint_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lines = week(d, 60, 23);
    let cfg = checkpointing_config(d);
    let reference = uninterrupted(d, &cfg, &lines);
    assert!(!reference.is_empty());
    let (state, saved, log) = (d.join("state"), d.join("state.saved"), d.join("replay.log"));

    // The first half goes in; once a checkpoint is on disk the directory is replaced by a
    // regular file (root ignores permissions, so chmod would not stop the writes).
    let mut child = replay_stdin(d, &cfg, "alerts", true, &log);
    let mut stdin = child.stdin.take().unwrap();
    let half = lines.len() / 2;
    assert!(feed(&mut stdin, &lines[..half]));
    wait_for(Duration::from_secs(30), "a first checkpoint", &log, || checkpoints(&state) > 0);
    std::fs::rename(&state, &saved).unwrap();
    std::fs::write(&state, b"not a directory").unwrap();
    // The rest: the replay may stop before it has read it all (a broken pipe is expected).
    feed(&mut stdin, &lines[half..]);
    drop(stdin);
    let status = wait(&mut child, Duration::from_secs(60), &log);
    let stderr = read(&log);
    assert_eq!(status.code(), Some(1), "a replay that cannot checkpoint stops with status 1:\n{stderr}");
    let error = stderr.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("no error line:\n{stderr}"));
    assert!(error.contains("cannot write a checkpoint") && error.contains(&state.display().to_string()), "the error names the state directory: {error}");

    // Every checkpoint left in the directory is whole, and the newest one loads.
    for e in std::fs::read_dir(&saved).unwrap().filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().ends_with(".bvck")) {
        brevvakt::state::checkpoint::read(&e.path()).unwrap_or_else(|err| panic!("{}: {err:#}", e.path().display()));
    }
    let newest = brevvakt::state::checkpoint::load_newest(&saved).unwrap().expect("the last good checkpoint loads");
    assert!(newest.inputs[0].lines > 0);

    // Once the directory is back, the same replay resumes from it and ends with the alerts
    // of an uninterrupted replay.
    std::fs::remove_file(&state).unwrap();
    std::fs::rename(&saved, &state).unwrap();
    let mut child = replay_stdin(d, &cfg, "alerts", true, &log);
    assert!(feed(child.stdin.as_mut().unwrap(), &lines));
    drop(child.stdin.take());
    let status = wait(&mut child, Duration::from_secs(60), &log);
    assert!(status.success(), "{}", read(&log));
    assert!(read(&log).contains("resuming from checkpoint"));
    assert!(std::fs::read(d.join("alerts.jsonl")).unwrap() == reference, "the resumed replay's alerts equal an uninterrupted replay's");
    eprintln!("checkpoint directory failure: {error}; resumed from line {} of {}", newest.inputs[0].lines, lines.len());
}

#[test]
fn an_unwritable_checkpoint_directory_stops_the_run_without_committing_past_its_last_checkpoint() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let broker = Broker::start();
    broker.create_topic(INPUT, 3);
    broker.create_topic(ALERTS, 2);
    broker.create_topic(DEAD, 1);
    let lines = week(d, 60, 23);
    let want = ids(&replay(d, Some(UNTIL)));
    let (state, saved, log) = (d.join("state"), d.join("state.saved"), d.join("run.log"));
    let state_arg = state.to_str().unwrap();
    let group = "brevvakt-checkpoint-fails";
    let cfg = config(d, &broker.addr, group, "");
    let half = lines.len() / 2;
    let mut ends = BTreeMap::new();
    produce(&link(&broker.addr), INPUT, &lines[..half], &mut ends);
    let mut child = run(d, &cfg, &log, &["--state-dir", state_arg]);
    wait_for(Duration::from_secs(60), "a first checkpoint", &log, || partition_checkpoints(&state) > 0);
    std::fs::rename(&state, &saved).unwrap();
    std::fs::write(&state, b"not a directory").unwrap();
    produce(&link(&broker.addr), INPUT, &lines[half..], &mut ends);
    let status = wait(&mut child, Duration::from_secs(60), &log);
    let stderr = read(&log);
    assert_eq!(status.code(), Some(1), "a run that cannot checkpoint stops with status 1:\n{stderr}");
    let error = stderr.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("no error line:\n{stderr}"));
    assert!(error.contains("cannot write a checkpoint") && error.contains(state_arg), "the error names the state directory: {error}");

    // The group never got ahead of the newest checkpoint (it is written before the commit).
    for (p, at) in committed(&link(&broker.addr), group, INPUT) {
        let newest = brevvakt::state::checkpoint::load_partition(&saved, p as u32).unwrap();
        let covered = newest.and_then(|cp| cp.inputs.iter().find(|i| i.name == format!("{INPUT}/{p}")).map(|i| i.lines as i64)).unwrap_or(0);
        assert!(at.unwrap_or(0) <= covered, "partition {p}: committed {at:?}, but the newest checkpoint covers only {covered}");
    }

    // With the directory back, the next run resumes from it and misses nothing.
    std::fs::remove_file(&state).unwrap();
    std::fs::rename(&saved, &state).unwrap();
    let mut child = run(d, &cfg, &log, &["--state-dir", state_arg, "--idle-exit", "3", "--until", UNTIL]);
    let status = wait(&mut child, Duration::from_secs(90), &log);
    assert!(status.success(), "{}", read(&log));
    assert!(read(&log).contains("partition state restored"));
    assert_eq!(topic_alert_ids(&link(&broker.addr)), want);
    assert!(all_committed(&link(&broker.addr), group, &ends));
}

// ── SASL ──
//
// tansu 0.6.0 cannot authenticate a client successfully in a test: PLAIN is not compiled
// into its SASL library (only SCRAM-SHA-256/512 and OAUTHBEARER; a PLAIN handshake fails
// with `NoSharedMechanism`), and a SCRAM credential can only be stored through
// AlterUserScramCredentials, which a broker started with `--authentication` refuses on
// every unauthenticated connection, while in-memory storage does not survive a restart
// without it. What can be tested is the refusal.

/// `[kafka.properties]` for SCRAM-SHA-512 as `brevvakt` with `password` (a secret reference).
fn scram(password: &str) -> String {
    format!("\"security.protocol\" = \"SASL_PLAINTEXT\"\n\"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\"sasl.username\" = \"brevvakt\"\n\"sasl.password\" = \"{password}\"\n")
}

#[test]
fn a_broker_refusing_the_sasl_credentials_is_reported_and_the_secret_is_never_logged() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    week(d, 60, 23);
    let broker = Broker::start_with(&BrokerOptions { authentication: true, ..Default::default() });
    const SECRET: &str = "Kallt-Vatten-7f3a9c";
    let log = d.join("run.log");
    // From the environment...
    let cfg = config(d, &broker.addr, "brevvakt-sasl-env", &scram("${env:BREVVAKT_KAFKA_PASSWORD}"));
    // The run reads the topics' metadata at start: refused credentials stop it there, with
    // status 1 and an error naming the topic, instead of retrying unseen.
    let mut child = run_cmd(d, &cfg, &log, &[]).env("BREVVAKT_KAFKA_PASSWORD", SECRET).spawn().unwrap();
    assert_eq!(wait(&mut child, Duration::from_secs(40), &log).code(), Some(1), "{}", read(&log));
    let env_log = read(&log);
    // ...and from a file.
    let secret = d.join("kafka-password");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let cfg = config(d, &broker.addr, "brevvakt-sasl-file", &scram(&format!("${{file:{}}}", secret.display())));
    let mut child = run(d, &cfg, &log, &[]);
    assert_eq!(wait(&mut child, Duration::from_secs(40), &log).code(), Some(1), "{}", read(&log));
    let file_log = read(&log);
    for l in [&env_log, &file_log] {
        assert!(!l.contains(SECRET) && !l.contains("Kallt"), "the password is never logged:\n{l}");
        assert!(!l.contains("partition assigned"), "nothing is consumed without authentication:\n{l}");
        assert!(l.contains("cannot read the metadata of \"mail-events\""), "a clear error at start:\n{l}");
    }
}
