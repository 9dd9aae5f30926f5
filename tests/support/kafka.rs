//! Kafka test plumbing shared by the broker tests (`kafka.rs`, `faults.rs`, …): the
//! generated stream and its partition keys, producing and reading topics, the group's
//! committed offsets, and `brevvakt run` processes whose log goes to a file.
//!
//! Every wait is bounded; the tests of one binary run one at a time ([`serial`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::Broker;

pub const BIN: &str = env!("CARGO_BIN_EXE_brevvakt");
pub const INPUT: &str = "mail-events";
pub const ALERTS: &str = "brevvakt-alerts";
pub const DEAD: &str = "brevvakt-dead-letter";
/// The generated Midsummer week is complete up to this instant.
pub const UNTIL: &str = "2026-06-22T00:00:00+02:00";

/// How a test client reaches the broker (directly, or through a forwarder).
pub struct Link {
    pub bootstrap: String,
    pub sasl_plain: bool,
}

impl Link {
    /// A client configuration for this broker.
    pub fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        if self.sasl_plain {
            c.set("security.protocol", "SASL_PLAINTEXT").set("sasl.mechanism", "PLAIN").set("sasl.username", "test-admin").set("sasl.password", "any");
        }
        c
    }
}

/// An unauthenticated link to `addr`.
pub fn link(addr: &str) -> Link {
    Link { bootstrap: addr.to_string(), sasl_plain: false }
}

impl Broker {
    /// An unauthenticated link to this broker.
    pub fn link(&self) -> Link {
        link(&self.addr)
    }
}

/// A generated week (Midsummer week 2026) of `mailboxes` mailboxes with a few malformed
/// lines, written to `dir/events.jsonl` with its roster `dir/roster.csv`; the lines.
pub fn week(dir: &Path, mailboxes: usize, seed: u64) -> Vec<Vec<u8>> {
    let opts = brevvakt::generate::GenOptions { mailboxes, days: 7, seed, malformed: 0.004, ..Default::default() };
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

/// The mailbox a record is about: the partition key producers must use (README).
pub fn mailbox_key(line: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else { return "malformed".into() };
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    // A forwarded/redirected/expanded message belongs to the mailbox it was addressed to.
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

/// Produces `lines` to `topic` keyed by mailbox with Kafka's default partitioner for keyed
/// records (the Java client's; librdkafka's `murmur2_random`), which brevvakt assumes when
/// it decides which mailboxes it owns. Adds the partitions' new ends to `ends`.
pub fn produce(link: &Link, topic: &str, lines: &[Vec<u8>], ends: &mut BTreeMap<i32, i64>) {
    send_all(link.config().set("linger.ms", "5"), topic, lines, ends);
}

/// Produces as [`produce`] does, one record per batch: tansu 0.6 serves a fetch only from
/// a batch's first record (a fetch from inside a batch gets the next batch), so a consumer
/// resuming at any offset (a restart from a checkpoint) needs every offset to start one.
pub fn produce_one_per_batch(link: &Link, topic: &str, lines: &[Vec<u8>], ends: &mut BTreeMap<i32, i64>) {
    send_all(link.config().set("linger.ms", "0").set("batch.num.messages", "1"), topic, lines, ends);
}

fn send_all(config: &mut ClientConfig, topic: &str, lines: &[Vec<u8>], ends: &mut BTreeMap<i32, i64>) {
    let p: BaseProducer<Ends> = config.set("enable.idempotence", "true").set("partitioner", "murmur2_random").create_with_context(Ends::default()).unwrap();
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

/// One record read back: key, value, headers.
pub struct Rec {
    pub key: String,
    pub value: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

/// Every record of `topic`, from the beginning to the current end of every partition.
pub fn consume_all(link: &Link, topic: &str) -> Vec<Rec> {
    let c: BaseConsumer = link.config().set("group.id", "test-reader").set("enable.partition.eof", "true").set("enable.auto.commit", "false").create().unwrap();
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
            Some(Ok(m)) => out.push(rec(&m)),
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

fn rec(m: &rdkafka::message::BorrowedMessage<'_>) -> Rec {
    let headers = m.headers().map(|h| h.iter().map(|x| (x.key.to_string(), String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned())).collect()).unwrap_or_default();
    Rec { key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(), value: m.payload().unwrap_or_default().to_vec(), headers }
}

/// The ids of alert records, checking that each carries its id in the `alert_id` header and
/// is keyed by its mailbox.
pub fn alert_ids(recs: &[Rec]) -> BTreeSet<String> {
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

/// Alert ids on the alerts topic.
pub fn topic_alert_ids(link: &Link) -> BTreeSet<String> {
    alert_ids(&consume_all(link, ALERTS))
}

/// The group's committed offset per partition of `topic` (`None`: nothing committed).
pub fn committed(link: &Link, group: &str, topic: &str) -> BTreeMap<i32, Option<i64>> {
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

/// Whether the group committed every partition of the input topic up to its end.
pub fn all_committed(link: &Link, group: &str, ends: &BTreeMap<i32, i64>) -> bool {
    let at = committed(link, group, INPUT);
    ends.iter().all(|(p, end)| at.get(p) == Some(&Some(*end)))
}

/// A configuration for `run` against `bootstrap` (group `group`, written to
/// `dir/GROUP.toml`), with extra `[kafka.properties]` lines.
pub fn config(dir: &Path, bootstrap: &str, group: &str, properties: &str) -> PathBuf {
    let text = format!(
        "{}\n[kafka]\nbrokers = \"{bootstrap}\"\ngroup_id = \"{group}\"\ntopics = [{{ name = \"{INPUT}\", format = \"normalized\" }}]\nalerts_topic = \"{ALERTS}\"\ndead_letter_topic = \"{DEAD}\"\ncommit_interval = \"1s\"\n[kafka.properties]\n{properties}\n",
        brevvakt::config::DEFAULT_TOML
    );
    let path = dir.join(format!("{group}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// `brevvakt run` with the roster `dir/roster.csv`, its stderr going to the file `log` (a
/// pipe could fill and block it).
pub fn run(dir: &Path, cfg: &Path, log: &Path, extra: &[&str]) -> Child {
    run_cmd(dir, cfg, log, extra).spawn().unwrap()
}

/// The command [`run`] spawns, for a test to add to.
pub fn run_cmd(dir: &Path, cfg: &Path, log: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--no-metrics", "--workers", "2", "--config"])
        .arg(cfg)
        .arg("--roster")
        .arg(dir.join("roster.csv"))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    cmd
}

/// Waits for the process; kills it and panics with its log past `limit`.
pub fn wait(child: &mut Child, limit: Duration, log: &Path) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("brevvakt did not finish within {limit:?}:\n{}", read(log));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (polling) until `done` holds; panics with `what` and the run's log after `limit`.
pub fn wait_for(limit: Duration, what: &str, log: &Path, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {limit:?}: {what}; the run's log:\n{}", read(log));
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A file's text, or "" if it cannot be read.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

pub fn sigterm(child: &Child) {
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
}

/// The broker tests run one at a time: each starts its own broker, and several brokers and
/// brevvakt processes on a 2-core machine starve each other.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Alert ids and dead-lettered raw records of `brevvakt replay` over the same stream.
pub fn replay(dir: &Path) -> (BTreeSet<String>, BTreeSet<Vec<u8>>) {
    replay_with(dir, "replay", &[dir.join("events.jsonl").to_str().unwrap()])
}

/// Alert ids and dead-lettered raw records of `brevvakt replay ARGS` (outputs named `tag`).
pub fn replay_with(dir: &Path, tag: &str, args: &[&str]) -> (BTreeSet<String>, BTreeSet<Vec<u8>>) {
    let (alerts, dead) = (dir.join(format!("{tag}-alerts.jsonl")), dir.join(format!("{tag}-dead.jsonl")));
    let out = Command::new(BIN)
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

/// Records covered by the newest checkpoint of every partition in the state directory.
pub fn covered(state: &Path) -> u64 {
    (0..3).filter_map(|p| brevvakt::state::checkpoint::load_partition(state, p).ok().flatten()).map(|c| c.inputs.iter().map(|p| p.lines).sum::<u64>()).sum()
}
