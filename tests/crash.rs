//! Crash test for `brevvakt run` against a real Kafka-protocol broker (tansu, see
//! `tests/support`): a run killed with SIGKILL at ten points of the stream — before its
//! first checkpoint, between checkpoints, in the middle of a commit — and started again
//! each time with the same arguments ends with exactly the alert ids of a file replay of
//! the same stream. Nothing is lost; an alert emitted again after a restart carries the
//! same id and the same body, and is counted. Every malformed record is dead-lettered
//! (again, perhaps: counted too).
//!
//! The replay half of the crash test is `checkpoint.rs`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use support::kafka::*;
use support::Broker;

/// How many times the run is killed before the last run goes to the end.
const KILLS: u64 = 10;
/// The seed of the kill points.
const SEED: u64 = 0x6b69_6c6c;
/// Records a run killed by checkpoint coverage covers beyond where it started, at least.
const MIN_PROGRESS: u64 = 300;

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

/// A small deterministic pseudo-random sequence (xorshift), so a failing kill point can be
/// reproduced.
struct Dice(u64);

impl Dice {
    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Where a run is killed.
#[derive(Debug, Clone, Copy)]
enum KillPoint {
    /// This long after the process started (before its first checkpoint, for short ones).
    After(Duration),
    /// Once the checkpoints cover this many records, plus a delay within one commit interval
    /// (so the kill lands anywhere in a commit: checkpoint, delivery, offset commit).
    Covering(u64, Duration),
}

/// Ten kill points spread over a stream of `records` records: three early ones (random
/// delays from start), then seven at increasing checkpoint coverage with random jitter.
fn kill_points(records: u64, dice: &mut Dice) -> Vec<KillPoint> {
    let mut points: Vec<KillPoint> = (0..3).map(|_| KillPoint::After(Duration::from_millis(100 + dice.below(1500)))).collect();
    points.extend((1..=KILLS - 3).map(|k| KillPoint::Covering(records * k / (KILLS - 2), Duration::from_millis(dice.below(300)))));
    points
}

/// Runs `brevvakt run` until `point`, then SIGKILLs it; panics (with its log) if it exited
/// on its own first.
fn run_and_kill(dir: &Path, cfg: &Path, state: &Path, log: &Path, point: KillPoint, total: u64) {
    let mut child = Killed(run(dir, cfg, log, &["--state-dir", state.to_str().unwrap()]));
    let child = &mut child.0;
    match point {
        KillPoint::After(delay) => std::thread::sleep(delay),
        KillPoint::Covering(records, jitter) => {
            // Past a point an earlier run overshot: this run gets some way of its own first.
            let records = records.max(covered(state) + MIN_PROGRESS).min(total);
            let deadline = Instant::now() + Duration::from_secs(60);
            while covered(state) < records && !exited(child) {
                assert!(Instant::now() < deadline, "timed out: checkpoints covering {records} records; the run's log:\n{}", read(log));
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::sleep(jitter);
        }
    }
    assert!(!exited(child), "the run stopped by itself before the kill at {point:?}:\n{}", read(log));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// A process killed when it goes out of scope (also when the test panics).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn exited(child: &mut Child) -> bool {
    child.try_wait().unwrap().is_some()
}

/// Every alert record of the topic grouped by id: the bodies emitted under each id.
fn bodies_by_id(recs: &[Rec]) -> BTreeMap<String, Vec<serde_json::Value>> {
    let mut by_id: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    alert_ids(recs); // checks headers and keys
    for r in recs {
        let v = json(&r.value);
        by_id.entry(v["id"].as_str().unwrap().to_string()).or_default().push(v);
    }
    by_id
}

/// An alert without the fields that depend on how the partitions' records interleaved
/// (which no run fixes): `evidence.last_read`, the newest read seen when a day was judged,
/// may be a delegate's read that came in on another partition — earlier or later relative
/// to the day's judgement in one run than in another.
fn without_order_dependent_fields(alert: &serde_json::Value) -> serde_json::Value {
    let mut a = alert.clone();
    if let Some(evidence) = a["evidence"].as_object_mut() {
        evidence.remove("last_read");
    }
    a
}

/// Checks the dead-letter topic holds every malformed record and nothing else; the number
/// of dead letters emitted more than once.
fn check_dead_letters(link: &Link, want: &BTreeSet<Vec<u8>>) -> usize {
    let dead = consume_all(link, DEAD);
    let got: BTreeSet<Vec<u8>> = dead.iter().map(|d| d.value.clone()).collect();
    let missing = want.difference(&got).count();
    let extra = got.difference(want).count();
    assert!(missing == 0 && extra == 0, "dead letters: {missing} malformed records missing, {extra} records that are not malformed");
    dead.len() - got.len()
}

fn setup(dir: &Path) -> (Broker, Vec<Vec<u8>>, PathBuf) {
    let broker = Broker::start();
    broker.create_topic(INPUT, 3);
    broker.create_topic(ALERTS, 2);
    broker.create_topic(DEAD, 1);
    let lines = week(dir, 150, 23);
    produce_one_per_batch(&broker.link(), INPUT, &lines, &mut BTreeMap::new());
    let cfg = crash_config(dir, &broker);
    (broker, lines, cfg)
}

/// A run configuration that checkpoints every few hundred records, so kills land between
/// checkpoints all along the stream.
fn crash_config(dir: &Path, broker: &Broker) -> PathBuf {
    // A killed member's partitions go to the next one once its session has timed out, and
    // a rebalance waits for a member killed in it no longer than the poll interval.
    let cfg = config(dir, &broker.addr, "brevvakt-crash", "\"session.timeout.ms\" = \"2000\"\n\"heartbeat.interval.ms\" = \"500\"\n\"max.poll.interval.ms\" = \"3000\"");
    let text = read(&cfg).replace("batch_size = 1024", "batch_size = 128").replace("checkpoint_records = 1000000", "checkpoint_records = 500");
    assert!(text.contains("checkpoint_records = 500") && text.contains("batch_size = 128"), "the default configuration changed");
    std::fs::write(&cfg, text).unwrap();
    cfg
}

#[test]
fn a_kafka_run_killed_at_ten_points_and_restarted_loses_no_alert_and_dead_letter() {
    let t0 = Instant::now();
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (broker, lines, cfg) = setup(dir);
    let (want, want_dead) = replay(dir);
    assert!(want.len() >= 10 && !want_dead.is_empty(), "the stream raises alerts ({}) and has malformed records ({})", want.len(), want_dead.len());
    let state = dir.join("state");

    let mut dice = Dice(SEED);
    for (i, point) in kill_points(lines.len() as u64, &mut dice).into_iter().enumerate() {
        run_and_kill(dir, &cfg, &state, &dir.join(format!("run-{i}.log")), point, lines.len() as u64);
        eprintln!("crash: killed at {point:?}, checkpoints then covered {} of {} records", covered(&state), lines.len());
    }
    let log = dir.join("run-last.log");
    let mut last = run(dir, &cfg, &log, &["--state-dir", state.to_str().unwrap(), "--idle-exit", "3", "--until", UNTIL]);
    let status = wait(&mut last, Duration::from_secs(120), &log);
    assert!(status.success(), "the last run failed:\n{}", read(&log));

    let recs = consume_all(&broker.link(), ALERTS);
    let by_id = bodies_by_id(&recs);
    let got: BTreeSet<String> = by_id.keys().cloned().collect();
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    for id in extra.iter().take(5) {
        eprintln!("extra: {}", by_id[*id][0]);
    }
    for line in read(&dir.join("replay-alerts.jsonl")).lines().filter(|l| missing.iter().any(|id| l.contains(id.as_str()))).take(5) {
        eprintln!("missing: {line}");
    }
    assert!(missing.is_empty() && extra.is_empty(), "after {KILLS} kills: missing {missing:?}, extra {extra:?}");
    for (id, bodies) in &by_id {
        let bodies: Vec<_> = bodies.iter().map(without_order_dependent_fields).collect();
        assert!(bodies.iter().all(|b| b == &bodies[0]), "alert {id} emitted again with another body: {bodies:#?}");
    }
    let duplicates = recs.len() - got.len();
    let dead_duplicates = check_dead_letters(&broker.link(), &want_dead);
    eprintln!(
        "crash: {} records, {} alerts, {duplicates} alert duplicates, {} dead letters ({dead_duplicates} duplicates), {KILLS} kills, {:.1} s",
        lines.len(),
        got.len(),
        want_dead.len(),
        t0.elapsed().as_secs_f64()
    );
}

