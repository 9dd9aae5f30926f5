//! The state store alone, and alert encoding.
//!
//! Criterion benchmarks:
//! - `shard_apply_events`: routed events (a day's reads and deliveries for 10,000
//!   mailboxes) applied to a fresh `Shard`, then the day closed — the worker's whole job
//!   without the pipeline around it;
//! - `shard_close_day_100k_mailboxes`: judging one required day for 10^5 tracked
//!   mailboxes, every one of them read that day;
//! - `alert_encode_*`: serializing an `Alert` to JSON, as the alert sink does.
//!
//! After criterion's report, a table gives the **state bytes per tracked mailbox** at 10^5
//! and 10^6 mailboxes: the live heap (counted by this binary's global allocator) after
//! building one shard with N mailboxes, each having seen a read, minus the live heap
//! before, divided by N. It counts the bytes requested from the allocator (map table,
//! keys, per-mailbox state); the allocator's own per-block overhead is not, so the growth
//! of the resident set per mailbox is printed beside it (that one includes the overhead
//! but leaves out reserved capacity never touched, so either can be the larger).
//!
//! Run: `cargo bench --bench state`. Without `--bench` (as `cargo test --all-targets` runs
//! it) criterion runs every benchmark once and the table uses 10^3 and 10^4 mailboxes.

use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use brevvakt::alert::{Alert, Evidence, Rule, Severity, Status};
use brevvakt::config::Settings;
use brevvakt::detect::{MailboxId, Roles, Routed};
use brevvakt::event::{
    AccessResult, Action, Direction, Encryption, Event, EventBody, MailMessage, MailboxAccess, Mechanism, Protocol, SourcePos,
};
use brevvakt::roster::Roster;
use brevvakt::state::shard::Shard;
use brevvakt::state::Item;
use chrono::{DateTime, NaiveDate, Utc};
use criterion::{BatchSize, Criterion, Throughput};

#[path = "support/counting.rs"]
mod counting;
use counting::{COUNTING, LIVE};

/// Monday 2026-03-02, a required reading day.
fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).expect("valid date")
}

fn at(hour: u32) -> DateTime<Utc> {
    day().and_hms_opt(hour, 0, 0).expect("valid time").and_utc()
}

fn address(i: usize) -> Box<str> {
    format!("tjansteman.{i}@exempel.se").into_boxed_str()
}

fn read_event(i: u64) -> Arc<Event> {
    read_at(at(8), i)
}

fn read_at(time: DateTime<Utc>, i: u64) -> Arc<Event> {
    let a = MailboxAccess { mailbox: "x@exempel.se".into(), user: "x@exempel.se".into(), protocol: Protocol::Imap, result: AccessResult::Success };
    Arc::new(Event { time, source: SourcePos::line("bench".into(), i), body: EventBody::Access(a) })
}

fn delivery(i: u64) -> Arc<Event> {
    let m = MailMessage {
        message_id: format!("{i:016x}@example.org").into(),
        sender: "someone@example.org".into(),
        recipients: ["x@exempel.se".into()].into_iter().collect(),
        direction: Direction::Inbound,
        action: Action::Deliver,
        original_recipient: None,
        server: Some("mx1.exempel.se".into()),
        subject_len: Some(40),
        subject_hash: None,
        classification: None,
        encryption: Encryption::Tls,
    };
    Arc::new(Event { time: at(9), source: SourcePos::line("bench".into(), i), body: EventBody::Message(m) })
}

fn shard() -> Shard {
    Shard::new(0, 1, Arc::new(Settings::default_settings()), Arc::new(Roster::default()))
}

/// A shard that has started: the day before `day()` is its starting point.
fn started_shard() -> Shard {
    let mut s = shard();
    let mut out = Vec::new();
    s.apply(Item::Close { seq: 0, through: day().pred_opt().expect("valid") }, &mut out);
    s
}

/// A day of work for `n` mailboxes: two deliveries and one read each.
fn day_items(n: usize) -> Vec<Item> {
    let (read, mail) = (read_event(1), delivery(2));
    let mut items = Vec::with_capacity(3 * n);
    for i in 0..n {
        let mailbox = address(i);
        let seq = 3 * i as u64;
        items.push(Item::Event { seq, routed: Routed { mailbox: MailboxId::Address(mailbox.clone()), roles: Roles::RECIPIENT, event: mail.clone() } });
        items.push(Item::Event { seq: seq + 1, routed: Routed { mailbox: MailboxId::Address(mailbox.clone()), roles: Roles::READ, event: read.clone() } });
        items.push(Item::Event { seq: seq + 2, routed: Routed { mailbox: MailboxId::Address(mailbox), roles: Roles::RECIPIENT, event: mail.clone() } });
    }
    items.push(Item::Close { seq: 3 * n as u64, through: day() });
    items
}

fn bench_shard(c: &mut Criterion) {
    let n = 10_000;
    let items = day_items(n);
    let mut g = c.benchmark_group("state");
    g.throughput(Throughput::Elements(items.len() as u64 - 1));
    g.bench_function("shard_apply_events_10k_mailboxes", |b| {
        b.iter_batched(
            || (started_shard(), items.clone()),
            |(mut s, items)| {
                let mut out = Vec::new();
                for it in items {
                    s.apply(it, &mut out);
                }
                (s, out)
            },
            BatchSize::LargeInput,
        )
    });
    g.throughput(Throughput::Elements(100_000));
    let next = day().succ_opt().expect("valid");
    let big = {
        // 10^5 mailboxes after one day, each read on the next day too.
        let mut s = started_shard();
        let mut out = Vec::new();
        for it in day_items(100_000) {
            s.apply(it, &mut out);
        }
        let read = read_at(next.and_hms_opt(8, 0, 0).expect("valid").and_utc(), 3);
        for i in 0..100_000 {
            s.apply(Item::Event { seq: u64::MAX - 1, routed: Routed { mailbox: MailboxId::Address(address(i)), roles: Roles::READ, event: read.clone() } }, &mut out);
        }
        s
    };
    g.sample_size(10);
    g.bench_function("shard_close_day_100k_mailboxes", |b| {
        // Closing consumes the day, so each iteration closes it on a fresh copy of the
        // shard, made outside the timing.
        b.iter_batched_ref(
            || rebuild(&big),
            |s| {
                let mut out = Vec::new();
                s.apply(Item::Close { seq: u64::MAX, through: next }, &mut out);
                out.len()
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// A shard with the state of `big` (mailboxes with a read each), via a checkpoint-style
/// export and restore.
fn rebuild(big: &Shard) -> Shard {
    let (closed_through, first_day) = big.days();
    let cp = brevvakt::state::checkpoint::Checkpoint {
        version: brevvakt::state::checkpoint::FORMAT_VERSION,
        seq: 0,
        inputs: Vec::new(),
        watermark_inputs: Default::default(),
        alerts_bytes: 0,
        dead_letter_bytes: 0,
        router: Default::default(),
        watermark: brevvakt::pipeline::watermark::Watermark::new(std::time::Duration::ZERO),
        closed_through,
        first_day,
        mailboxes: big.export(),
    };
    let mut s = shard();
    s.restore(&cp);
    s
}

fn sample_alerts() -> Vec<(&'static str, Alert)> {
    let not_read = Alert {
        id: "5b0d1f0c8a4e4a3c9f2e1d0c8b7a6f5e".into(),
        finding: "5b0d1f0c8a4e4a3c9f2e1d0c8b7a6f5e".into(),
        rule: Rule::MailboxNotRead,
        severity: Severity::Medium,
        status: Status::Open,
        time: at(22),
        mailbox: "anna.andersson@exempel.se".into(),
        manager: Some("chef@exempel.se".into()),
        org_unit: Some("Kansliet".into()),
        day: Some(day()),
        evidence: Evidence { consecutive_missed: Some(2), last_read: Some(at(8)), ..Evidence::default() },
        policy: brevvakt::detect::policy(Rule::MailboxNotRead).into(),
    };
    let forwarding = Alert {
        id: "0f1e2d3c4b5a69788796a5b4c3d2e1f0".into(),
        finding: "0f1e2d3c4b5a69788796a5b4c3d2e1f0".into(),
        rule: Rule::ExternalForwarding,
        severity: Severity::High,
        status: Status::Open,
        time: at(10),
        mailbox: "bo.berg@exempel.se".into(),
        manager: Some("chef@exempel.se".into()),
        org_unit: Some("Socialtjänsten".into()),
        day: None,
        evidence: Evidence {
            events: vec![SourcePos::line("/var/log/brevvakt/2026-03-02.jsonl.zst".into(), 123_456)],
            count: 1,
            targets: vec!["bo.berg72@gmail.com".into()],
            mechanism: Some(Mechanism::InboxRule),
            rule_name: Some("vidarebefordra".into()),
            keep_copy: Some(true),
            ..Evidence::default()
        },
        policy: brevvakt::detect::policy(Rule::ExternalForwarding).into(),
    };
    vec![("mailbox_not_read", not_read), ("external_forwarding", forwarding)]
}

fn bench_alerts(c: &mut Criterion) {
    let mut g = c.benchmark_group("alert_encode");
    for (name, alert) in sample_alerts() {
        let mut line = Vec::with_capacity(1024);
        serde_json::to_writer(&mut line, &alert).expect("encode");
        g.throughput(Throughput::Bytes(line.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                line.clear();
                serde_json::to_writer(&mut line, black_box(&alert)).expect("encode");
                line.len()
            })
        });
        g.bench_function(format!("{name}_ocsf"), |b| {
            b.iter(|| {
                line.clear();
                serde_json::to_writer(&mut line, &brevvakt::sinks::jsonl::ocsf(black_box(&alert))).expect("encode");
                line.len()
            })
        });
    }
    g.finish();
}

/// Resident set size of this process, in bytes.
fn rss() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0.0);
    kb * 1024.0
}

/// Live heap bytes per mailbox of a shard holding `n` mailboxes that each saw a read, and
/// the growth of the resident set per mailbox (allocator overhead included).
fn bytes_per_mailbox(n: usize) -> (f64, f64) {
    let mut s = started_shard();
    let read = read_event(1);
    let mut out = Vec::new();
    let rss_before = rss();
    COUNTING.store(true, Ordering::SeqCst);
    let before = LIVE.load(Ordering::SeqCst);
    for i in 0..n {
        // The routed item is built and dropped while counting: only what the shard keeps
        // stays counted.
        let routed = Routed { mailbox: MailboxId::Address(address(i)), roles: Roles::READ, event: read.clone() };
        s.apply(Item::Event { seq: i as u64, routed }, &mut out);
    }
    let after = LIVE.load(Ordering::SeqCst);
    COUNTING.store(false, Ordering::SeqCst);
    let rss_after = rss();
    assert_eq!(s.len(), n);
    assert!(out.is_empty());
    ((after - before) as f64 / n as f64, (rss_after - rss_before) / n as f64)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let mut c = Criterion::default().configure_from_args();
    bench_shard(&mut c);
    bench_alerts(&mut c);
    c.final_summary();
    let sizes: &[usize] = if full { &[100_000, 1_000_000] } else { &[1_000, 10_000] };
    println!("\nstate bytes per tracked mailbox (live heap of one shard / mailboxes; target ≤ 200 at 10^6):");
    for &n in sizes {
        let (heap, rss) = bytes_per_mailbox(n);
        println!("  {n:>9} mailboxes: {heap:>6.1} bytes per mailbox (heap requested); resident set grew {rss:>6.1} bytes per mailbox");
    }
    println!("  (size_of::<MailboxState>() = {} bytes)", std::mem::size_of::<brevvakt::detect::MailboxState>());
}
