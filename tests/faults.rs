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
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use support::{Broker, BrokerOptions};

const BIN: &str = env!("CARGO_BIN_EXE_brevvakt");
const INPUT: &str = "mail-events";
const ALERTS: &str = "brevvakt-alerts";
const DEAD: &str = "brevvakt-dead-letter";
const UNTIL: &str = "2026-06-22T00:00:00+02:00";

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

// ── the stream, the replay, the broker ──

/// How the test's own clients reach the broker: its address, and for a broker that
/// requires authentication, SASL/PLAIN (which tansu accepts with any password).
struct Link {
    bootstrap: String,
    sasl_plain: bool,
}

impl Link {
    /// A client configuration for this broker.
    fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        if self.sasl_plain {
            c.set("security.protocol", "SASL_PLAINTEXT").set("sasl.mechanism", "PLAIN").set("sasl.username", "test-admin").set("sasl.password", "any");
        }
        c
    }
}

/// An unauthenticated link to `addr`.
fn link(addr: &str) -> Link {
    Link { bootstrap: addr.to_string(), sasl_plain: false }
}

/// A generated week (Midsummer week 2026) for a small organisation, and its roster file.
fn stream(dir: &Path) -> Vec<Vec<u8>> {
    let opts = brevvakt::generate::GenOptions { mailboxes: 60, days: 7, seed: 23, malformed: 0.004, ..Default::default() };
    let (mut events, mut roster, mut truth) = (Vec::new(), Vec::new(), Vec::new());
    brevvakt::generate::generate(&opts, &mut events, &mut roster, &mut truth).unwrap();
    std::fs::write(dir.join("roster.csv"), roster).unwrap();
    std::fs::write(dir.join("events.jsonl"), &events).unwrap();
    let mut lines: Vec<Vec<u8>> = events.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    if lines.last().is_some_and(Vec::is_empty) {
        lines.pop();
    }
    lines
}

/// The mailbox a record is about: the partition key producers must use (README).
fn mailbox_key(line: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else { return "malformed".into() };
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    if let Some(m) = s("mailbox").or_else(|| s("original_recipient")) {
        return m;
    }
    if v.get("type").and_then(|t| t.as_str()) == Some("proxy.request") {
        return s("user").unwrap_or_default();
    }
    if s("direction").as_deref() == Some("outbound") {
        return s("sender").unwrap_or_default();
    }
    let rcpts: Vec<String> = v.get("recipients").and_then(|r| r.as_array()).map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default();
    rcpts.iter().find(|r| r.ends_with("exempel.se")).cloned().or_else(|| s("sender")).unwrap_or_default()
}

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

/// Remembers, per partition, the offset after the last record acknowledged. (tansu's
/// `ListOffsets` answers the last *batch's* base offset + 1, not the end of the partition,
/// so the ends are taken from the delivery reports.)
#[derive(Default)]
struct Ends(Mutex<BTreeMap<i32, i64>>);

impl rdkafka::ClientContext for Ends {}

impl rdkafka::producer::ProducerContext for Ends {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &rdkafka::producer::DeliveryResult<'_>, _: ()) {
        let m = result.as_ref().expect("input record delivered");
        let mut ends = self.0.lock().unwrap();
        let end = ends.entry(m.partition()).or_default();
        *end = (*end).max(m.offset() + 1);
    }
}

/// Produces `lines` keyed by mailbox; adds the partitions' new ends to `ends`.
fn produce(link: &Link, topic: &str, lines: &[Vec<u8>], ends: &mut BTreeMap<i32, i64>) {
    let p: BaseProducer<Ends> = link.config().set("enable.idempotence", "true").set("linger.ms", "5").create_with_context(Ends::default()).unwrap();
    for line in lines {
        let key = mailbox_key(line);
        let mut rec = BaseRecord::to(topic).key(key.as_bytes()).payload(line.as_slice());
        while let Err((_, r)) = p.send(rec) {
            rec = r;
            p.poll(Duration::from_millis(20));
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(60)).unwrap();
    for (partition, end) in p.context().0.lock().unwrap().iter() {
        let e = ends.entry(*partition).or_default();
        *e = (*e).max(*end);
    }
}

/// A record read back: its value and headers.
type Record = (Vec<u8>, Vec<(String, String)>);

/// Every record of `topic`, from the beginning to the current end.
fn consume_all(link: &Link, topic: &str) -> Vec<Record> {
    let c: BaseConsumer = link.config().set("group.id", "fault-test-reader").set("enable.partition.eof", "true").set("enable.auto.commit", "false").create().unwrap();
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    let mut tpl = TopicPartitionList::new();
    let mut open = BTreeSet::new();
    for p in md.topics()[0].partitions() {
        let (low, high) = c.fetch_watermarks(topic, p.id(), Duration::from_secs(10)).unwrap();
        if high > low {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning).unwrap();
            open.insert(p.id());
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
                out.push((m.payload().unwrap_or_default().to_vec(), headers));
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

/// Alert ids on the alerts topic (every record carries its id in the `alert_id` header).
fn topic_alert_ids(link: &Link) -> BTreeSet<String> {
    consume_all(link, ALERTS)
        .iter()
        .map(|(value, headers)| {
            let v: serde_json::Value = serde_json::from_slice(value).unwrap();
            let id = v["id"].as_str().unwrap().to_string();
            assert!(headers.iter().any(|(k, h)| k == "alert_id" && *h == id), "alert_id header");
            id
        })
        .collect()
}

/// The group's committed offset per partition of `topic` (`None`: nothing committed).
fn committed(link: &Link, group: &str, topic: &str) -> BTreeMap<i32, Option<i64>> {
    let c: BaseConsumer = link.config().set("group.id", group).set("enable.auto.commit", "false").create().unwrap();
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition(topic, p.id());
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    got.elements()
        .iter()
        .map(|e| {
            let at = match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            };
            (e.partition(), at)
        })
        .collect()
}

/// Whether the group committed every partition up to its end.
fn all_committed(link: &Link, group: &str, ends: &BTreeMap<i32, i64>) -> bool {
    let at = committed(link, group, INPUT);
    ends.iter().all(|(p, end)| at.get(p) == Some(&Some(*end)))
}

/// Waits (polling) until `done` holds; panics with `what` and the run's log after `limit`.
fn wait_for(limit: Duration, what: &str, log: &Path, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {limit:?}: {what}; the run's log:\n{}", read(log));
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A configuration for `run` against `bootstrap`, with extra `[kafka.properties]` lines.
fn config(dir: &Path, bootstrap: &str, group: &str, properties: &str) -> PathBuf {
    let text = format!(
        "{}\n[kafka]\nbrokers = \"{bootstrap}\"\ngroup_id = \"{group}\"\ntopics = [{{ name = \"{INPUT}\", format = \"normalized\" }}]\nalerts_topic = \"{ALERTS}\"\ndead_letter_topic = \"{DEAD}\"\ncommit_interval = \"1s\"\n[kafka.properties]\n{properties}\n",
        brevvakt::config::DEFAULT_TOML
    );
    let path = dir.join(format!("{group}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// `brevvakt run`, its stderr going to `stderr` (a file: a pipe could fill and block it).
fn run(dir: &Path, cfg: &Path, stderr: &Path, extra: &[&str]) -> Child {
    run_cmd(dir, cfg, stderr, extra).spawn().unwrap()
}

fn run_cmd(dir: &Path, cfg: &Path, stderr: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd
        .args(["run", "--no-metrics", "--workers", "2", "--config"])
        .arg(cfg)
        .arg("--roster")
        .arg(dir.join("roster.csv"))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr).unwrap());
    cmd
}

/// Waits for the process; kills it and panics past `limit`.
fn wait(child: &mut Child, limit: Duration, stderr: &Path) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("brevvakt did not finish within {limit:?}:\n{}", read(stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn sigterm(child: &Child) {
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
}

/// The broker tests run one at a time (2 cores: two brokers and two runs starve each other).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
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
    let lines = stream(dir.path());
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
    let lines = stream(dir);
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
    consume_all(link, DEAD).iter().filter_map(|(_, h)| h.iter().find(|(k, _)| k == "source_offset").map(|(_, v)| v.parse().unwrap())).collect()
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
    let lines = stream(d);
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
    let lines = stream(d);
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
    stream(d);
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
