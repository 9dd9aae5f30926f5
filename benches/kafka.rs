//! Kafka harness: how fast `brevvakt run` turns a topic into alerts, against how fast
//! `kcat -C` merely reads the same topic from the same broker, in one run.
//!
//! Setup: a tansu broker (tests/support, in-memory storage) with an input topic of
//! [`PARTITIONS`] partitions, filled with a generated archive (2,000 mailboxes × 14 days
//! by default, no malformed lines) keyed by mailbox as producers must key it.
//!
//! 1. **kcat** — `kcat -C -b ADDR -t TOPIC -e -q -o beginning -c TOTAL`, its output read
//!    by the harness. A record has been delivered when kcat printed it, so the clock runs
//!    from kcat's first output to its exit right after the last record (`-c`: it does not
//!    wait for end-of-partition signals), and the rate counts only the records after the
//!    first block read: starting, connecting and finding the partitions' beginnings are
//!    not counted (joining the group is not counted for brevvakt either). kcat must print
//!    every record. Without kcat, or when it cannot read from the broker, the figure is
//!    skipped with the reason (Debian 12's kcat 1.7.1 is built on librdkafka 2.0.2, which
//!    often cannot parse tansu 0.6's ApiVersions v3 answer: "Read underflow").
//! 2. **rdkafka read floor** — the same work as kcat (assign every partition from the
//!    beginning, no consumer group, print every record) in a child process of this
//!    harness, with the librdkafka brevvakt is built with (the `rdkafka` crate's bundled
//!    one), measured exactly as kcat is. It is always measured, so there is a ratio even
//!    where the distribution's kcat does not work.
//! 3. **brevvakt** — `brevvakt run --workers N --metrics-addr 127.0.0.1:0 --idle-exit 2`
//!    with a fresh consumer group each time (so it starts at the beginning), alerts and
//!    dead letters going to their topics. The harness scrapes the process's `/metrics`
//!    every [`POLL`] and watches `brevvakt_records_read_total` (records through the
//!    decode-and-route stage, pushed once per batch). The clock runs from the first scrape
//!    that shows records to the first that shows all of them, and the rate counts only the
//!    records read in between. So neither joining the group (kcat joins none) nor the
//!    idle-exit wait is counted. Everything after the stage (shard workers, collector,
//!    the alert producer) is fed through bounded channels, so the stage cannot run ahead
//!    of them by more than those hold (`pipeline.queue_batches` batches per worker): in
//!    steady state it runs at their pace, and only what they hold at the end falls outside
//!    the clock.
//!    After the process exits, the group's committed offsets must have reached the end of
//!    every partition (at-least-once held), else the harness fails. The figure is the best
//!    of the runs, with 1 worker and with one worker per core; "cores busy" is the child's
//!    CPU time over the same interval.
//!
//! Ratios (brevvakt ÷ kcat, brevvakt ÷ the rdkafka floor, in records/s) are what we
//! track; absolute numbers depend on the machine and on tansu, whose fetches arrive in
//! bursts (so a bigger topic gives steadier figures). Run: `cargo bench --bench kafka`;
//! `BREVVAKT_BENCH_MAILBOXES`, `BREVVAKT_BENCH_DAYS` and `BREVVAKT_BENCH_REPS` override
//! the defaults. Without `--bench` (as `cargo test --all-targets` runs it) it does a tiny
//! smoke run, and returns at once when tansu is not installed.

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "support/probe.rs"]
mod probe;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use brevvakt::generate::{generate, GenOptions};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use support::kafka::{self as k, ALERTS, BIN, DEAD, INPUT};
use support::Broker;

/// Partitions of the input topic.
const PARTITIONS: u32 = 3;
/// How often the harness scrapes a running brevvakt.
const POLL: Duration = Duration::from_millis(20);
/// `--idle-exit` of the brevvakt runs (not counted in the figures).
const IDLE_EXIT: &str = "2";
/// Set in the child that reads the topic (the rdkafka floor): the broker address.
const READ_CHILD: &str = "BREVVAKT_KAFKA_READ_CHILD";
/// Set in that child: how many records to read.
const TOTAL: &str = "BREVVAKT_KAFKA_TOTAL";
/// Longest a brevvakt run may take before the harness gives up.
const RUN_LIMIT: Duration = Duration::from_secs(600);

/// What one harness run covers.
struct Plan {
    full: bool,
    mailboxes: usize,
    days: u32,
    reps: usize,
    workers: Vec<usize>,
}

impl Plan {
    fn from_env() -> Plan {
        let full = std::env::args().any(|a| a == "--bench");
        let env_num = |key: &str, default: usize| std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if full {
            let mut workers = vec![1, cores];
            workers.dedup();
            Plan { full, mailboxes: env_num("BREVVAKT_BENCH_MAILBOXES", 2_000), days: env_num("BREVVAKT_BENCH_DAYS", 14) as u32, reps: env_num("BREVVAKT_BENCH_REPS", 3), workers }
        } else {
            Plan { full, mailboxes: 20, days: 2, reps: 1, workers: vec![1] }
        }
    }
}

/// One brevvakt run, as the harness saw it.
struct Run {
    /// Records counted between the first and the last timed scrape.
    records: f64,
    secs: f64,
    cpu_secs: f64,
}

impl Run {
    fn rate(&self) -> Option<f64> {
        (self.secs > 0.0 && self.records > 0.0).then(|| self.records / self.secs)
    }
}

fn main() {
    if let Ok(addr) = std::env::var(READ_CHILD) {
        read_topic(&addr, std::env::var(TOTAL).ok().and_then(|t| t.parse().ok()).expect("record count"));
        return;
    }
    if support::find_tansu().is_none() {
        println!("kafka harness skipped: the tansu broker is not installed (`.ci/tansu/install`)");
        return;
    }
    let plan = Plan::from_env();
    let dir = tempfile::tempdir().expect("temp dir");
    let lines = archive(dir.path(), plan.mailboxes, plan.days);
    let bytes: usize = lines.iter().map(Vec::len).sum();
    let broker = Broker::start();
    let ends = fill_topics(&broker, &lines);
    let total = lines.len();

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("brevvakt Kafka harness{}", if plan.full { "" } else { " (smoke run: pass --bench for the real one)" });
    println!(
        "topic: {} mailboxes × {} days, {total} records, {:.1} MB, {PARTITIONS} partitions on tansu (memory); {cores} cores; best of {} runs; load average before: {}",
        plan.mailboxes,
        plan.days,
        bytes as f64 / 1e6,
        plan.reps,
        probe::load_average()
    );
    let log = dir.path().join("readers.log");
    let kcat = best_rate(plan.reps, || kcat(&broker.addr, total), total, &log);
    if let Err(why) = &kcat {
        println!("kcat figure skipped: {why}");
    }
    let floor = best_rate(plan.reps, || read_child(&broker.addr, total), total, &log).expect("the rdkafka read floor");
    let runs: Vec<(usize, Option<Run>)> = plan.workers.iter().map(|&w| (w, best_run(dir.path(), &broker, &ends, w, plan.reps))).collect();
    let floors = [("kcat -C (read only)", kcat.ok()), ("rdkafka read floor (bundled librdkafka)", Some(floor))];
    report(&floors, &runs, bytes as f64 / total as f64);
    println!("load average after: {}", probe::load_average());
}

/// Creates the input, alerts and dead-letter topics and produces `lines` to the input,
/// keyed by mailbox; the end offset of every input partition.
fn fill_topics(broker: &Broker, lines: &[Vec<u8>]) -> BTreeMap<i32, i64> {
    for (topic, partitions) in [(INPUT, PARTITIONS), (ALERTS, 2), (DEAD, 1)] {
        broker.create_topic(topic, partitions);
    }
    let mut ends = BTreeMap::new();
    k::produce(&broker.link(), INPUT, lines, &mut ends);
    assert_eq!(ends.values().sum::<i64>(), lines.len() as i64, "every record on the topic");
    ends
}

/// A generated archive without malformed lines: its lines, the roster in `dir/roster.csv`.
fn archive(dir: &Path, mailboxes: usize, days: u32) -> Vec<Vec<u8>> {
    let opts = GenOptions { mailboxes, days, seed: 42, malformed: 0.0, ..GenOptions::default() };
    let (mut events, mut roster) = (Vec::new(), Vec::new());
    generate(&opts, &mut events, &mut roster, &mut std::io::sink()).expect("generate");
    std::fs::write(dir.join("roster.csv"), roster).expect("write roster");
    events.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect()
}

/// `kcat -C` printing the `total` records of the input topic, from the beginning.
fn kcat(addr: &str, total: usize) -> Command {
    let mut c = Command::new("kcat");
    c.args(["-C", "-b", addr, "-t", INPUT, "-e", "-q", "-o", "beginning", "-c", &total.to_string()]);
    c
}

/// This harness as the rdkafka floor's child process.
fn read_child(addr: &str, total: usize) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("own path"));
    c.env(READ_CHILD, addr).env(TOTAL, total.to_string());
    c
}

/// The best records/s of `reps` runs of a reader (see [`reader_rate`]); the first failure
/// ends the attempt with its reason.
fn best_rate(reps: usize, cmd: impl Fn() -> Command, total: usize, log: &Path) -> Result<f64, String> {
    (0..reps).map(|_| reader_rate(cmd(), total, log)).try_fold(0.0f64, |best, r| r.map(|r| best.max(r)))
}

/// Runs a reader that prints one line per record (as `kcat -C` does) and reads its output:
/// records/s from its first output to its end (so starting, connecting and finding the
/// partitions' beginnings are not counted, as they are not for brevvakt), counting only the
/// records after the first block read. It must print `total` lines and exit 0.
fn reader_rate(mut cmd: Command, total: usize, log: &Path) -> Result<f64, String> {
    let stderr = std::fs::File::create(log).map_err(|e| e.to_string())?;
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(stderr).spawn().map_err(|e| format!("{:?} cannot start ({e}); for kcat: `apt-get install kcat`", cmd.get_program()))?;
    let mut out = child.stdout.take().expect("piped stdout");
    let mut buf = vec![0u8; 1 << 16];
    let (mut lines, mut first) = (0usize, None);
    loop {
        let n = out.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count();
        first.get_or_insert((Instant::now(), lines));
    }
    let end = Instant::now();
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() || lines != total {
        let text = k::read(log);
        let why = text.lines().find(|l| l.contains("ERROR")).or_else(|| text.lines().last()).unwrap_or_default();
        return Err(format!("{:?} read {lines} of {total} records ({status}): {why}", cmd.get_program()));
    }
    let (t0, lines0) = first.ok_or("no output")?;
    Ok((total - lines0) as f64 / end.duration_since(t0).as_secs_f64())
}

/// The rdkafka floor (in a child process): reads the `total` records of the input topic
/// from the beginning of every partition, without a consumer group, and prints each on a
/// line of its own, as `kcat -C -c TOTAL` does.
fn read_topic(addr: &str, total: usize) {
    let c: BaseConsumer = k::link(addr).config().set("group.id", "bench-read-floor").set("enable.auto.commit", "false").create().expect("consumer");
    let md = c.fetch_metadata(Some(INPUT), Duration::from_secs(10)).expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(INPUT, p.id(), Offset::Beginning).expect("partition");
    }
    c.assign(&tpl).expect("assign");
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    for seen in 0..total {
        match c.poll(Duration::from_secs(10)) {
            Some(Ok(m)) => out.write_all(m.payload().unwrap_or_default()).and_then(|()| out.write_all(b"\n")).expect("write"),
            Some(Err(e)) => panic!("reading {INPUT}: {e}"),
            None => panic!("reading {INPUT}: nothing for 10 s after {seen} records"),
        }
    }
    out.flush().expect("write");
}

/// The fastest of `reps` brevvakt runs with `workers` workers.
fn best_run(dir: &Path, broker: &Broker, ends: &BTreeMap<i32, i64>, workers: usize, reps: usize) -> Option<Run> {
    (0..reps).map(|rep| brevvakt_run(dir, broker, ends, workers, &format!("bench-{workers}w-{rep}"))).max_by(|a, b| a.rate().partial_cmp(&b.rate()).expect("rates compare"))
}

/// One `brevvakt run` from the beginning of the topic (a fresh group), timed through its
/// metrics; checks afterwards that the group committed every partition to its end.
fn brevvakt_run(dir: &Path, broker: &Broker, ends: &BTreeMap<i32, i64>, workers: usize, group: &str) -> Run {
    let cfg = k::config(dir, &broker.addr, group, "");
    let log = dir.join(format!("{group}.log"));
    let mut child = Command::new(BIN)
        .args(["run", "--workers", &workers.to_string(), "--metrics-addr", "127.0.0.1:0", "--idle-exit", IDLE_EXIT, "--config"])
        .arg(&cfg)
        .arg("--roster")
        .arg(dir.join("roster.csv"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("create log"))
        .spawn()
        .expect("start brevvakt run");
    let addr = probe::listening_addr(&log, Duration::from_secs(30));
    let total: f64 = ends.values().sum::<i64>() as f64;
    let run = time_stage(addr, &mut child, total, &log);
    let status = k::wait(&mut child, RUN_LIMIT, &log);
    assert!(status.success(), "brevvakt run failed ({status}):\n{}", k::read(&log));
    assert!(k::all_committed(&broker.link(), group, ends), "group {group} did not commit every partition to its end:\n{}", k::read(&log));
    run
}

/// Scrapes until the stage has read `total` records: records and seconds between the
/// first scrape that shows any and the first that shows all, and the process's CPU time
/// over the same interval. Fails with the log if the process exits before.
fn time_stage(addr: std::net::SocketAddr, child: &mut Child, total: f64, log: &Path) -> Run {
    let deadline = Instant::now() + RUN_LIMIT;
    let mut first: Option<(Instant, f64, f64)> = None;
    loop {
        if let Some(status) = child.try_wait().expect("wait for brevvakt") {
            panic!("brevvakt run exited ({status}) before reading every record:\n{}", k::read(log));
        }
        let (t, cpu) = (Instant::now(), probe::cpu_secs(child.id()));
        let read = probe::scrape(addr).map_or(0.0, |m| probe::sum(&m, "brevvakt_records_read_total"));
        if read > 0.0 && first.is_none() {
            first = Some((t, read, cpu));
        }
        if let Some((t0, read0, cpu0)) = first.filter(|_| read >= total) {
            return Run { records: read - read0, secs: t.duration_since(t0).as_secs_f64(), cpu_secs: cpu - cpu0 };
        }
        assert!(Instant::now() < deadline, "brevvakt read {read} of {total} records within {RUN_LIMIT:?}:\n{}", k::read(log));
        std::thread::sleep(POLL);
    }
}

/// The table: absolute rates and the ratios to each read floor measured.
fn report(floors: &[(&str, Option<f64>)], runs: &[(usize, Option<Run>)], bytes_per_record: f64) {
    let measured: Vec<(&str, f64)> = floors.iter().filter_map(|(name, rate)| Some((*name, (*rate)?))).collect();
    println!();
    let ratio_heads: Vec<String> = measured.iter().map(|(name, _)| format!("÷ {}", name.split_whitespace().next().unwrap_or_default())).collect();
    println!("{:<42} {:>12} {:>8} {:>12} {}", "", "records/s", "MB/s", "cores busy", ratio_heads.iter().map(|h| format!("{h:>12}")).collect::<String>());
    for (name, rate) in &measured {
        println!("{name:<42} {rate:>12.0} {:>8.1}", rate * bytes_per_record / 1e6);
    }
    for (w, run) in runs {
        let name = format!("brevvakt run, {w} worker{}", if *w == 1 { "" } else { "s" });
        match run.as_ref().and_then(|r| r.rate().map(|rate| (r, rate))) {
            Some((r, rate)) => {
                let ratios: String = measured.iter().map(|(_, f)| format!("{:>12.3}", rate / f)).collect();
                println!("{name:<42} {rate:>12.0} {:>8.1} {:>12.2} {ratios}", rate * bytes_per_record / 1e6, r.cpu_secs / r.secs);
            }
            None => println!("{name:<42} {:>12}   (finished within one scrape: too small to time)", "n/a"),
        }
    }
    println!("(target: brevvakt ≥ 0.80 × kcat)");
}
