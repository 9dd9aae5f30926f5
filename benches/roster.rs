//! Per-event roster lookups under three ways of sharing the roster between threads:
//! (a) what brevvakt does — each shard owns an `Arc<Roster>`, replaced at a stream position
//! by an item in its queue, so a lookup is a plain read; (b) one `ArcSwap<Roster>` loaded
//! per lookup; (c) a `DashMap` keyed by mailbox (and one keyed by reader) updated in place.
//!
//! A lookup is what one read event costs the router and a shard: the mailbox's primary
//! address (aliases), the mailboxes the user may read for (delegates, members) with their
//! relation on that day, and the mailbox's own entry. Rosters of 10^4 and 10^5 mailboxes;
//! one in five events names an address that is not on the roster.
//!
//! After criterion's single-thread report, a table gives lookups per second, single-threaded
//! and with two threads reading while a third replaces the roster (or updates entries)
//! every millisecond, as ratios to (a) in the same run.
//!
//! Run: `cargo bench --bench roster` (needs `[[bench]] name = "roster" harness = false`).

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use brevvakt::roster::{MailboxKind, Roster, RosterEntry};
use chrono::NaiveDate;
use criterion::{BenchmarkId, Criterion, Throughput};
use dashmap::DashMap;

const SIZES: [usize; 2] = [10_000, 100_000];
/// Events per pass (a shard's batch of items).
const EVENTS: usize = 4096;

/// The `i`th mailbox: every tenth is a function mailbox with two members, every fifth
/// individual one has a delegate; every seventh has an alias.
fn entry(i: usize) -> RosterEntry {
    let address = format!("user{i}@exempel.se");
    let (kind, members) = match i % 10 {
        0 => (MailboxKind::Function, vec![format!("user{}@exempel.se", i + 1), format!("user{}@exempel.se", i + 2)]),
        5 => (MailboxKind::Individual, vec![format!("user{}@exempel.se", i + 3)]),
        _ => (MailboxKind::Individual, Vec::new()),
    };
    let aliases = if i.is_multiple_of(7) { vec![format!("alias{i}@exempel.se")] } else { Vec::new() };
    RosterEntry { address, kind, members, aliases, org_unit: Some("Enhet".into()), ..RosterEntry::default() }
}

fn roster(n: usize) -> Roster {
    Roster::new((0..n).map(entry).collect())
}

/// (user, mailbox) of `EVENTS` read events, pseudo-random; one in five off the roster.
fn events(n: usize) -> Vec<(String, String)> {
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as usize
    };
    (0..EVENTS)
        .map(|_| {
            let (u, m) = (next() % n, next() % n);
            let user = if next() % 5 == 0 { format!("external{u}@annan.se") } else { format!("user{u}@exempel.se") };
            (user, format!("user{m}@exempel.se"))
        })
        .collect()
}

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 6, 16).expect("a date")
}

/// One event's lookups on an owned roster (a, and b once loaded).
fn lookup(r: &Roster, user: &str, mailbox: &str, day: NaiveDate) -> usize {
    let primary = r.canonical(mailbox);
    let readable = r.readable_by(user).filter(|e| e.relation(user, day).is_some()).count();
    readable + r.get(primary).map_or(0, |e| e.members.len() + 1)
}

/// The roster as concurrent maps (c): entries by address and alias, addresses by reader.
struct Maps {
    by_address: DashMap<String, Arc<RosterEntry>>,
    by_reader: DashMap<String, Vec<String>>,
}

impl Maps {
    fn new(r: &Roster) -> Maps {
        let maps = Maps { by_address: DashMap::new(), by_reader: DashMap::new() };
        for e in r.entries() {
            maps.put(Arc::new(e.clone()));
        }
        maps
    }

    /// Inserts or replaces one entry (a roster update in place).
    fn put(&self, e: Arc<RosterEntry>) {
        for reader in std::iter::once(&e.address).chain(&e.owners).chain(&e.members) {
            let mut list = self.by_reader.entry(reader.clone()).or_default();
            if !list.contains(&e.address) {
                list.push(e.address.clone());
            }
        }
        for a in std::iter::once(&e.address).chain(&e.aliases) {
            self.by_address.insert(a.clone(), e.clone());
        }
    }

    /// One event's lookups (c).
    fn lookup(&self, user: &str, mailbox: &str, day: NaiveDate) -> usize {
        let own = self.by_address.get(mailbox).map_or(0, |e| e.members.len() + 1);
        let readable = self.by_reader.get(user).map_or(0, |list| list.iter().filter(|a| self.by_address.get(a.as_str()).is_some_and(|e| e.relation(user, day).is_some())).count());
        own + readable
    }
}

/// The three ways, ready to look up.
struct Shared {
    owned: Arc<Roster>,
    swap: ArcSwap<Roster>,
    maps: Maps,
}

impl Shared {
    fn new(n: usize) -> Shared {
        let r = Arc::new(roster(n));
        Shared { swap: ArcSwap::new(r.clone()), maps: Maps::new(&r), owned: r }
    }
}

/// A roster size, the roster shared three ways, and the events looked up.
type Case = (usize, Shared, Vec<(String, String)>);

#[derive(Clone, Copy, Debug)]
enum Way {
    Owned,
    Swap,
    Map,
}

const WAYS: [(Way, &str); 3] = [(Way::Owned, "a owned Arc<Roster>"), (Way::Swap, "b ArcSwap load"), (Way::Map, "c DashMap")];

/// One pass over the events; `owned` is the reader's own roster for (a).
fn pass(way: Way, owned: &Roster, s: &Shared, events: &[(String, String)]) -> usize {
    let day = day();
    match way {
        Way::Owned => events.iter().map(|(u, m)| lookup(owned, u, m, day)).sum(),
        Way::Swap => events.iter().map(|(u, m)| lookup(&s.swap.load(), u, m, day)).sum(),
        Way::Map => events.iter().map(|(u, m)| s.maps.lookup(u, m, day)).sum(),
    }
}

fn bench(c: &mut Criterion, cases: &[Case]) {
    let mut group = c.benchmark_group("roster_lookup");
    group.throughput(Throughput::Elements(EVENTS as u64));
    for (n, shared, events) in cases {
        for (way, label) in WAYS {
            group.bench_with_input(BenchmarkId::new(label, n), events, |b, ev| b.iter(|| pass(way, &shared.owned, shared, black_box(ev))));
        }
    }
    group.finish();
}

/// Lookups per second of one thread, over at least half a second.
fn rate(mut one_pass: impl FnMut() -> usize) -> f64 {
    let (start, mut passes) = (Instant::now(), 0u32);
    while passes < 3 || start.elapsed() < Duration::from_millis(500) {
        black_box(one_pass());
        passes += 1;
    }
    (EVENTS as f64) * f64::from(passes) / start.elapsed().as_secs_f64()
}

/// Lookups per second of two reader threads together while a writer changes the roster
/// every millisecond: (a) a new `Arc<Roster>` sent to each reader, taken between passes as
/// a shard takes an item; (b) a new roster stored; (c) one entry replaced in place.
fn concurrent(way: Way, n: usize, s: &Shared, events: &[(String, String)]) -> f64 {
    let stop = AtomicBool::new(false);
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..2).map(|_| channel::<Arc<Roster>>()).unzip();
    std::thread::scope(|scope| {
        let readers: Vec<_> = receivers.into_iter().map(|rx| scope.spawn(|| reader(way, s, events, rx))).collect();
        scope.spawn(|| {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                write(way, n, s, &senders, &mut i);
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let total = readers.into_iter().map(|r| r.join().expect("reader")).sum();
        stop.store(true, Ordering::Relaxed);
        total
    })
}

fn reader(way: Way, s: &Shared, events: &[(String, String)], rx: Receiver<Arc<Roster>>) -> f64 {
    let mut own = s.owned.clone();
    rate(|| {
        if let Some(newer) = rx.try_iter().last() {
            own = newer;
        }
        pass(way, &own, s, events)
    })
}

/// One roster change by the writer.
fn write(way: Way, n: usize, s: &Shared, senders: &[std::sync::mpsc::Sender<Arc<Roster>>], i: &mut usize) {
    *i += 1;
    match way {
        // A reloaded roster is built once and shared; the build is the same for (a) and (b)
        // and not what is measured, so the current one is passed on again.
        Way::Owned => senders.iter().for_each(|tx| drop(tx.send(s.owned.clone()))),
        Way::Swap => s.swap.store(s.owned.clone()),
        Way::Map => s.maps.put(Arc::new(entry(*i * 7919 % n))),
    }
}

fn ratios(cases: &[Case]) {
    println!("\n{:<22} {:>8} {:>14} {:>9} {:>14} {:>9}", "way", "roster", "1 thread /s", "vs (a)", "2 threads /s", "vs (a)");
    for (n, s, events) in cases {
        let single: Vec<f64> = WAYS.iter().map(|(way, _)| rate(|| pass(*way, &s.owned, s, events))).collect();
        let two: Vec<f64> = WAYS.iter().map(|(way, _)| concurrent(*way, *n, s, events)).collect();
        for (k, (_, label)) in WAYS.iter().enumerate() {
            println!("{label:<22} {n:>8} {:>14.0} {:>8.2}x {:>14.0} {:>8.2}x", single[k], single[k] / single[0], two[k], two[k] / two[0]);
        }
    }
}

fn main() {
    let cases: Vec<_> = SIZES.iter().map(|&n| (n, Shared::new(n), events(n))).collect();
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &cases);
    c.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        ratios(&cases);
    }
}
