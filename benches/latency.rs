//! Latency harness: brevvakt's alert latency (`brevvakt_alert_latency_seconds`: a
//! record read → its alert written) under a steady, paced load of
//! 50,000 events/s, read the way Prometheus reads it.
//!
//! How: a generated archive (2,000 mailboxes, as many days as the run needs, no malformed
//! lines) is written to the standard input of `brevvakt replay --quiet --metrics-addr
//! 127.0.0.1:0 -` (a child process, alerts to a file) on a fixed schedule: every
//! [`TICK`] the harness writes the lines due by then (rate × time since the start), so the
//! rate stays steady and a write that blocked is caught up at the next tick. The metrics
//! address comes from the child's `metrics listening on ADDR` log line. A scraper thread
//! reads `/metrics` over HTTP once a second during the run; the figures come from one
//! scrape taken right after the last paced write (and a short settle), before standard
//! input is closed, so the end of input, where the replay closes what is left, is not in
//! them.
//!
//! The summary's quantiles cover a sliding window of the last 2.5–5 minutes (an HDR
//! histogram in `src/metrics.rs`, rotated every 150 s), so a run shorter than 150 s is
//! covered whole, start-up included. `_count` is the number of samples: one per alert
//! whose causing record's arrival is known. Mail-flow and classified-mail alerts are raised
//! at once; not-read alerts when the watermark closes a day, which at this rate happens
//! every few hundred milliseconds of wall time. The per-second scrapes show how evenly the
//! samples come (fewest and most per second).
//!
//! Not in the metric: the time a line waits in the reader before its chunk is handed to
//! the decode pool. Standard input is read as a live pipe: the reader hands on what it has
//! once it has taken everything written so far, here at each tick's write (until this
//! round it waited for 256 KiB, about 20 ms at 50,000 lines/s of ~250 bytes). Nor is the
//! time an alert waits in the output's buffer: the collector hands the output on whenever
//! no more alerts follow right behind (`AlertSink::hand_on`).
//!
//! Run: `cargo bench --bench latency`. `BREVVAKT_BENCH_RATE` (lines/s, default 50,000),
//! `BREVVAKT_BENCH_SECONDS` (default 20) and `BREVVAKT_BENCH_MAILBOXES` (default 2,000)
//! override the defaults. Without `--bench` (as `cargo test --all-targets` runs it) it does
//! a one-second smoke run at a low rate. Nothing is asserted about the figures.

#[path = "support/probe.rs"]
mod probe;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use brevvakt::generate::{generate, GenOptions};

const BIN: &str = env!("CARGO_BIN_EXE_brevvakt");
/// How often the harness writes the lines due.
const TICK: Duration = Duration::from_millis(10);
/// Wait after the last paced write before the final scrape.
const SETTLE: Duration = Duration::from_millis(200);
/// The summary metric read.
const LATENCY: &str = "brevvakt_alert_latency_seconds";
/// Generated lines per mailbox and day, a little under what the generator gives (≈ 8.3).
const LINES_PER_MAILBOX_DAY: usize = 8;

/// What one harness run covers.
struct Plan {
    full: bool,
    rate: usize,
    secs: usize,
    mailboxes: usize,
}

impl Plan {
    fn from_env() -> Plan {
        let env_num = |key: &str, default: usize| std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
        if std::env::args().any(|a| a == "--bench") {
            Plan { full: true, rate: env_num("BREVVAKT_BENCH_RATE", 50_000), secs: env_num("BREVVAKT_BENCH_SECONDS", 20), mailboxes: env_num("BREVVAKT_BENCH_MAILBOXES", 2_000) }
        } else {
            Plan { full: false, rate: 2_000, secs: 1, mailboxes: 20 }
        }
    }
}

/// How the pacing went.
struct Paced {
    lines: usize,
    secs: f64,
    /// The furthest the writes fell behind the schedule.
    max_behind: Duration,
    /// CPU time brevvakt used meanwhile.
    cpu_secs: f64,
}

fn main() {
    let plan = Plan::from_env();
    let dir = tempfile::tempdir().expect("temp dir");
    let (data, ends) = archive(dir.path(), plan.mailboxes, plan.rate * plan.secs);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("brevvakt latency harness{}", if plan.full { "" } else { " (smoke run: pass --bench for the real one)" });
    println!(
        "paced stdin replay: {} lines/s for {} s ({} lines, {:.0} bytes/line, {} mailboxes); {cores} cores; load average before: {}",
        plan.rate,
        plan.secs,
        ends.len(),
        data.len() as f64 / ends.len() as f64,
        plan.mailboxes,
        probe::load_average()
    );
    let log = dir.path().join("replay.log");
    let mut child = spawn_replay(dir.path(), &log);
    let addr = probe::listening_addr(&log, Duration::from_secs(30));
    let running = Arc::new(AtomicBool::new(true));
    let scraper = scrape_every_second(addr, running.clone());
    let mut stdin = child.stdin.take().expect("piped stdin");
    let paced = pace(&mut stdin, child.id(), &data, &ends, plan.rate);
    std::thread::sleep(SETTLE);
    let last = probe::scrape(addr).expect("final scrape");
    running.store(false, Ordering::Relaxed);
    let per_second = scraper.join().expect("scraper");
    drop(stdin);
    finish(&mut child, &log);
    report(&paced, plan.rate, &last, &per_second);
    println!("load average after: {}", probe::load_average());
}

/// A generated archive of at least `lines` lines if the generator gives them (the first
/// `lines`), roster in `dir/roster.csv`: the bytes and the end of every line.
fn archive(dir: &Path, mailboxes: usize, lines: usize) -> (Vec<u8>, Vec<usize>) {
    let days = (lines / (mailboxes * LINES_PER_MAILBOX_DAY) + 2) as u32;
    let opts = GenOptions { mailboxes, days, seed: 42, malformed: 0.0, ..GenOptions::default() };
    let (mut data, mut roster) = (Vec::new(), Vec::new());
    generate(&opts, &mut data, &mut roster, &mut std::io::sink()).expect("generate");
    std::fs::write(dir.join("roster.csv"), roster).expect("write roster");
    let ends: Vec<usize> = data.iter().enumerate().filter(|(_, &b)| b == b'\n').map(|(i, _)| i + 1).take(lines).collect();
    data.truncate(ends.last().copied().unwrap_or(0));
    (data, ends)
}

/// `brevvakt replay` reading standard input, alerts to `dir/alerts.jsonl`, log to `log`.
fn spawn_replay(dir: &Path, log: &Path) -> Child {
    Command::new(BIN)
        .args(["replay", "--quiet", "--metrics-addr", "127.0.0.1:0", "--roster"])
        .arg(dir.join("roster.csv"))
        .arg("--out")
        .arg(dir.join("alerts.jsonl"))
        .arg("--dead-letter")
        .arg(dir.join("dead.jsonl"))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("create log"))
        .spawn()
        .expect("start brevvakt replay")
}

/// Writes the lines on schedule to process `pid`: at every tick, all lines due by then.
fn pace(stdin: &mut ChildStdin, pid: u32, data: &[u8], ends: &[usize], rate: usize) -> Paced {
    let (start, cpu) = (Instant::now(), probe::cpu_secs(pid));
    let (mut sent, mut max_behind) = (0usize, Duration::ZERO);
    for tick in 1u32.. {
        let due_at = start + TICK * tick;
        if let Some(wait) = due_at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        max_behind = max_behind.max(Instant::now().saturating_duration_since(due_at));
        let due = ((TICK * tick).as_secs_f64() * rate as f64) as usize;
        let upto = due.min(ends.len());
        if upto > sent {
            let from = if sent == 0 { 0 } else { ends[sent - 1] };
            stdin.write_all(&data[from..ends[upto - 1]]).expect("write to brevvakt");
            sent = upto;
        }
        if sent == ends.len() {
            break;
        }
    }
    Paced { lines: sent, secs: start.elapsed().as_secs_f64(), max_behind, cpu_secs: probe::cpu_secs(pid) - cpu }
}

/// Scrapes once a second until `running` is cleared: (seconds since start, samples so far).
fn scrape_every_second(addr: SocketAddr, running: Arc<AtomicBool>) -> JoinHandle<Vec<(f64, f64)>> {
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut out = Vec::new();
        while running.load(Ordering::Relaxed) {
            if let Ok(m) = probe::scrape(addr) {
                out.push((start.elapsed().as_secs_f64(), m.get(&format!("{LATENCY}_count")).copied().unwrap_or(0.0)));
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        out
    })
}

/// Waits for the replay to finish after its input closed; fails with its log if it does
/// not, or fails.
fn finish(child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for brevvakt") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("brevvakt replay did not finish:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "brevvakt replay failed ({status}):\n{}", std::fs::read_to_string(log).unwrap_or_default());
}


/// The figures: achieved rate, quantiles, samples and how evenly they came.
fn report(paced: &Paced, rate: usize, last: &BTreeMap<String, f64>, per_second: &[(f64, f64)]) {
    let achieved = paced.lines as f64 / paced.secs;
    println!();
    println!(
        "achieved: {achieved:.0} lines/s ({} lines in {:.2} s; target {rate}); writes at most {:.1} ms behind schedule",
        paced.lines,
        paced.secs,
        paced.max_behind.as_secs_f64() * 1e3
    );
    println!("brevvakt kept {:.2} cores busy meanwhile", paced.cpu_secs / paced.secs);
    println!("records read by brevvakt at the final scrape: {:.0}", probe::sum(last, "brevvakt_records_read_total"));
    for (name, q) in [("p50", "0.5"), ("p90", "0.9"), ("p99", "0.99"), ("p99.9", "0.999")] {
        let v = last.get(&format!("{LATENCY}{{quantile=\"{q}\"}}")).copied().unwrap_or(f64::NAN);
        println!("alert latency {name:<6} {:>9.3} ms", v * 1e3);
    }
    let count = last.get(&format!("{LATENCY}_count")).copied().unwrap_or(0.0);
    let sum = last.get(&format!("{LATENCY}_sum")).copied().unwrap_or(0.0);
    println!("samples: {count:.0} (mean {:.3} ms), alerts written: {:.0}", if count > 0.0 { sum / count * 1e3 } else { f64::NAN }, probe::sum(last, "brevvakt_alerts_total"));
    let steps: Vec<f64> = per_second.windows(2).map(|w| (w[1].1 - w[0].1) / (w[1].0 - w[0].0)).collect();
    if let (Some(lo), Some(hi)) = (steps.iter().copied().reduce(f64::min), steps.iter().copied().reduce(f64::max)) {
        println!("samples per second during the run (scraped every second): fewest {lo:.0}, most {hi:.0} over {} intervals", steps.len());
    }
    println!("(target: p99 < 5 ms at 50,000 events/s)");
}
