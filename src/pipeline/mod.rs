//! The pipeline: sources → decode → route → shards (detectors) → merge → sinks.
//!
//! Threads: one reader (read, decompress, split lines), the decode pool
//! ([`crate::decode::pool`]: `pipeline.decode_threads` threads decode the records of
//! stateless formats, do the stateless part of routing ([`router::Resolver`]) and hand
//! every message on in the reader's order), this thread (decode what the pool left,
//! watermark, complete the routing with the delegations events granted), N shard workers (each owns its
//! mailboxes' state: no locks), and one collector that merges the workers' alerts and
//! writes them. Every hand-over is a bounded channel, so a slow sink slows the reader
//! instead of growing memory (the Kafka group reader pauses fetching instead of
//! blocking, so it stays in its group: see `sources::kafka`).
//!
//! Guarantees: alerts are written in one deterministic order — by the stream position of
//! the record (or watermark step) that caused them, then by id — whatever the worker
//! count, decode thread count or batch size, so the same input always gives a
//! byte-identical alert file. Bad records are dead-lettered and counted; the stream goes
//! on. Days close by event time only.
//!
//! Checkpoints (with a state directory): at a batch boundary the router attaches a
//! snapshot of its own state and the input positions to the batch; every worker adds a copy
//! of its shard; the collector, once it has written and flushed every alert up to that
//! boundary, writes the checkpoint. A resumed run restores all of it, cuts the alert and
//! dead-letter files back to what the checkpoint covers, skips inputs already done and
//! re-decodes (without processing) the covered lines of a partly read input, so decoders
//! that keep state between lines (CSV headers, queue ids) are rebuilt.
//!
//! Sources ([`Source`]): files or Kafka partitions read to their end at start (a replay:
//! `--until` applies at the end), or Kafka as a group member (a live run). A replay's
//! files, each decoded in its own format, arrive merged by event time (see
//! [`read_merged`]) and share one watermark input, as one file would; a Kafka partition is
//! a watermark input of its own. When an input ends, its decoder hands over what it still
//! held ([`Decoder::finish`]): events, or a record it cannot complete, dead-lettered. In
//! Kafka mode snapshots are taken every `kafka.commit_interval` even without a
//! state directory (then the workers export nothing: the snapshot is positions only), and
//! once the collector has written the snapshot's alerts and the alerts sink has flushed
//! (for Kafka: every delivery acknowledged) — and, with a state directory, the checkpoint
//! is written — the snapshot's positions go back to the reader as a [`CommitRequest`].
//! The dead letters of a snapshot are flushed (acknowledged) when it is taken. So an offset
//! is committed only after everything it covers is done: at-least-once end to end.
//! `--until` applies in Kafka mode only when the source reports it was drained (idle exit),
//! never after a stop by signal.
//!
//! Consumer groups (Kafka): the source tells which partitions this instance owns
//! ([`SourceMsg::Owned`]); events about mailboxes of other partitions are counted
//! (`foreign`) and not applied, shards judge only owned mailboxes, and checkpoints are
//! written per owned partition (see `state::checkpoint`). A partition taken over arrives
//! as [`SourceMsg::Restore`]: its positions, delegations and mailboxes are taken on at that
//! stream position; the days its old owner had not judged are judged as the partition's
//! own records pass them ([`Item::CatchUp`]), or at `--until` if it delivers nothing more.
//!
//! Metrics (with [`Options::metrics`]): the stage pushes its running totals once per batch,
//! the workers their state size, the collector alert counts and latencies. When the input
//! is idle the partial batch is handed out at once, so alerts and figures never wait for a
//! full batch.

pub mod router;
pub mod watermark;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use chrono::{DateTime, Utc};

use crate::alert::{Rule, Status};
use crate::config::Settings;
use crate::decode::{DecodeError, Decoder, ErrorReason};
use crate::event::{Event, SourcePos};
use crate::metrics::{Arrivals, Metrics, ShardGauges, StageReporter, Totals};
use crate::roster::Roster;
use crate::sinks::dead_letter::DeadLetters;
use crate::sinks::{AlertSink, DeadLetterSink};
use crate::decode::pool::{self, Decoded, Observed};
use crate::detect::{MailboxId, MailboxState, Routed};
use crate::sources::file::{read_merged, FileInput, Input};
use crate::sources::kafka::KafkaSource;
use crate::sources::kafka_replay::KafkaReplay;
use crate::sources::{Chunk, CommitRequest, SourceMsg};
use crate::state::checkpoint::{self, Checkpoint, InputPosition};
use crate::state::ownership::Ownership;
use crate::state::shard::Shard;
use crate::state::{shard_of, Item, Ordered};
use router::{Router, RouterState};
use watermark::{PartitionDays, Watermark};

/// About how many bytes of lines the file reader puts in a chunk. Every chunk passes
/// through several threads (reader, decode pool, stage), each hand-over a wake-up: with
/// 256 KiB chunks a replay of 1.34 M lines made 7,000–7,500 voluntary context switches;
/// 512 KiB made 4,600–4,900, and two three-way interleaved A/Bs (8–10 runs each, medians)
/// gave wall −7 % and −4 % (1 MiB: −10 % and −2 %); peak RSS 33, 40 and 54 MB.
const FILE_CHUNK_BYTES: usize = 1 << 19;

/// How to run a replay.
pub struct Options {
    /// Shard workers.
    pub workers: usize,
    /// Declares the input complete up to this instant: days ending by then are judged.
    pub until: Option<DateTime<Utc>>,
    /// Progress display, advanced by bytes read.
    pub progress: Option<indicatif::ProgressBar>,
    /// Checkpoint directory; `None` disables checkpoints.
    pub state_dir: Option<PathBuf>,
    /// The checkpoint to continue from.
    pub resume: Option<Checkpoint>,
    /// Metrics to update (per batch), if exposed.
    pub metrics: Option<Arc<Metrics>>,
}

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// Records read.
    pub records: u64,
    /// Bytes of records read (uncompressed).
    pub bytes: u64,
    /// Events decoded, by type, in [`EVENT_TYPES`](crate::event::EVENT_TYPES) order.
    pub events: [u64; crate::event::EVENT_TYPES.len()],
    /// Bad records, by reason.
    pub bad: BTreeMap<ErrorReason, u64>,
    /// Events older than the watermark when they arrived.
    pub late: u64,
    /// Events about mailboxes whose partition another instance owns (not applied).
    pub foreign: u64,
    /// Alerts written, by rule and status.
    pub alerts: BTreeMap<(Rule, &'static str), u64>,
    /// Inputs that could not be read to the end, with the error.
    pub input_errors: Vec<String>,
    /// Mailboxes tracked at the end.
    pub mailboxes: usize,
    /// Wall-clock duration.
    pub elapsed: Duration,
    /// Workers used.
    pub workers: usize,
}

impl Summary {
    /// Events decoded in total.
    pub fn total_events(&self) -> u64 {
        self.events.iter().sum()
    }

    /// Bad records in total.
    pub fn total_bad(&self) -> u64 {
        self.bad.values().sum()
    }
}

/// Work for one worker: a batch of items, numbered so results can be merged in order.
struct Batch {
    no: u64,
    items: Vec<Item>,
    /// Set when a checkpoint is taken after this batch.
    snapshot: Option<Arc<Snapshot>>,
    timing: Timing,
}

/// For latency metrics: when a batch was handed out, and when its records arrived (the
/// arrivals travel with the first worker's batch only).
struct Timing {
    sent: Instant,
    arrivals: Arrivals,
}

/// A worker's alerts for one batch.
struct BatchResult {
    no: u64,
    alerts: Vec<Ordered>,
    /// The worker's part of a checkpoint, and the router's.
    shard: Option<ShardPart>,
    snapshot: Option<Arc<Snapshot>>,
    timing: Timing,
}

/// The router stage's part of a checkpoint.
struct Snapshot {
    /// Whether the workers add their shards (a checkpoint is written).
    export: bool,
    /// The reader's barrier this snapshot answers.
    barrier: Option<u64>,
    seq: u64,
    inputs: Vec<InputPosition>,
    watermark_inputs: BTreeMap<usize, usize>,
    dead_letter_bytes: u64,
    router: RouterState,
    watermark: Watermark,
    /// With a consumer group: the partitions owned, each checkpointed on its own.
    ownership: Option<Arc<Ownership>>,
}

/// A worker's part of a checkpoint.
struct ShardPart {
    closed_through: Option<chrono::NaiveDate>,
    first_day: Option<chrono::NaiveDate>,
    /// Partitions whose taken-over mailboxes are not judged through `closed_through` yet.
    behind: BTreeMap<u32, chrono::NaiveDate>,
    mailboxes: Vec<(String, MailboxState)>,
}

/// Where the records come from.
pub enum Source {
    /// Files (or stdin), each with its format, merged by time and read to their end: a
    /// replay.
    Files(Vec<FileInput>),
    /// A Kafka consumer: a live run, committing every `commit_interval`.
    Kafka {
        /// The subscribed consumer.
        source: KafkaSource,
        /// How often to snapshot and commit.
        commit_interval: Duration,
    },
    /// Kafka partitions read to their end at start, outside any group: a replay.
    KafkaReplay(KafkaReplay),
}

/// Runs the whole pipeline over `inputs`, all in `input.format`, and returns the summary.
pub fn replay(settings: Arc<Settings>, roster: Arc<Roster>, inputs: Vec<Input>, sink: Box<dyn AlertSink>, dead: &mut DeadLetters, opts: Options) -> Result<Summary> {
    let format = settings.config.input.format;
    let inputs = inputs.into_iter().map(|input| FileInput { input, format }).collect();
    run(settings, roster, Source::Files(inputs), sink, dead, opts)
}

/// Runs the whole pipeline over `source` and returns the summary.
pub fn run(settings: Arc<Settings>, roster: Arc<Roster>, source: Source, sink: Box<dyn AlertSink>, dead: &mut dyn DeadLetterSink, opts: Options) -> Result<Summary> {
    let started = Instant::now();
    let n = opts.workers.max(1);
    let (raw_tx, raw_rx) = sync_channel::<SourceMsg>(8);
    let (names, formats, live, commit_tx, reader) = match source {
        Source::Files(inputs) => {
            let names: Vec<String> = inputs.iter().map(|i| i.input.name()).collect();
            let formats: BTreeMap<usize, crate::decode::Format> = inputs.iter().map(|i| i.format).enumerate().collect();
            if let Some(cp) = &opts.resume {
                check_same_inputs(cp, &inputs)?;
            }
            let done: Vec<bool> = match &opts.resume {
                Some(cp) => cp.inputs.iter().map(|p| p.done).collect(),
                None => vec![false; inputs.len()],
            };
            let (max_line, decode) = (settings.config.input.max_line_bytes, settings.decode_options());
            let reader = thread::Builder::new().name("reader".into()).spawn(move || read_merged(&inputs, &done, &raw_tx, max_line, FILE_CHUNK_BYTES, &decode))?;
            (names, formats, None, None, reader)
        }
        Source::Kafka { source, commit_interval } => {
            let (commit_tx, commit_rx) = channel::<CommitRequest>();
            let reader = thread::Builder::new().name("reader".into()).spawn(move || source.run(raw_tx, commit_rx))?;
            (Vec::new(), BTreeMap::new(), Some(commit_interval), Some(commit_tx), reader)
        }
        Source::KafkaReplay(source) => (Vec::new(), BTreeMap::new(), None, None, thread::Builder::new().name("reader".into()).spawn(move || source.run(raw_tx))?),
    };
    let (res_tx, res_rx) = sync_channel::<BatchResult>(n * settings.config.pipeline.queue_batches);
    let state_dir = opts.state_dir.clone();
    let metrics = opts.metrics.clone();
    let collector = thread::Builder::new().name("collector".into()).spawn(move || collect(res_rx, n, sink, state_dir, metrics, commit_tx))?;
    let mut worker_txs = Vec::new();
    let mut workers = Vec::new();
    for i in 0..n {
        let (tx, rx) = sync_channel::<Batch>(settings.config.pipeline.queue_batches);
        let mut shard = Shard::new(i, n, settings.clone(), roster.clone());
        if let Some(cp) = &opts.resume {
            shard.restore(cp);
        }
        let res = res_tx.clone();
        let gauges = opts.metrics.as_ref().map(|m| m.shard(i));
        workers.push(thread::Builder::new().name(format!("shard-{i}")).spawn(move || work(shard, rx, res, gauges))?);
        worker_txs.push(tx);
    }
    drop(res_tx);
    let default_format = settings.config.input.format;
    let routing = pool::Routing::new(settings.clone(), roster.clone());
    let (decoded_rx, decoders) = pool::spawn(raw_rx, formats.clone(), default_format, &settings.decode_options(), settings.decode_threads(), Some(routing.clone()))?;
    let mut stage = Stage::new(settings.clone(), roster, worker_txs, dead, &opts, names, live);
    stage.formats = formats;
    stage.routing = Some(routing);
    let routed = stage.run(decoded_rx, opts.until);
    let mut summary = stage.finish();
    let mailboxes: usize = workers.into_iter().map(|w| w.join().unwrap_or(0)).sum();
    let alerts = collector.join().map_err(|_| anyhow!("collector thread panicked"))?;
    let _ = reader.join();
    decoders.into_iter().for_each(|d| {
        let _ = d.join();
    });
    // A failed sink or checkpoint stops the collector first; the stage then only sees its
    // workers gone, so the collector's error is the one to report.
    summary.alerts = alerts?;
    routed?;
    summary.mailboxes = mailboxes;
    summary.workers = n;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// A checkpoint can only continue the same inputs, in the same order.
pub fn check_same_inputs(cp: &Checkpoint, inputs: &[FileInput]) -> Result<()> {
    let names: Vec<String> = inputs.iter().map(|i| i.input.name()).collect();
    let covered: Vec<&str> = cp.inputs.iter().map(|p| p.name.as_str()).collect();
    if covered != names.iter().map(String::as_str).collect::<Vec<_>>() {
        bail!("the checkpoint covers the inputs {covered:?}, not {names:?}: replay the same inputs, or use a fresh --state-dir");
    }
    Ok(())
}

/// Per roster position: the shard that mailbox's state lives in, or that another
/// instance owns it, worked out the first time a copy is routed to it. Working it out
/// reads the roster entry's address (likely not in the stage's cache) and hashes it (FNV
/// for the shard, murmur2 for the Kafka partition): once per mailbox instead of once per
/// routed copy. Cleared when the roster or the owned partitions change.
#[derive(Default)]
struct Placements(Vec<u32>);

impl Placements {
    /// Not worked out yet.
    const UNKNOWN: u32 = u32::MAX;
    /// Owned by another instance.
    const FOREIGN: u32 = u32::MAX - 1;

    /// The shard (of `n`) of `mailbox`; `None` when another instance owns it.
    fn of(&mut self, mailbox: &MailboxId, roster: &Roster, n: usize, ownership: Option<&Ownership>) -> Option<usize> {
        if n == 1 && ownership.is_none() {
            return Some(0); // one shard, every mailbox ours: nothing to look up
        }
        let place = |address: &str| match ownership {
            Some(o) if !o.owns(address) => Self::FOREIGN,
            _ => shard_of(address, n) as u32,
        };
        let known = match mailbox {
            MailboxId::Roster(p) => {
                let p = *p as usize;
                if self.0.len() <= p {
                    self.0.resize(roster.entries().len().max(p + 1), Self::UNKNOWN);
                }
                if self.0[p] == Self::UNKNOWN {
                    self.0[p] = place(mailbox.address(roster));
                }
                self.0[p]
            }
            MailboxId::Address(a) => place(a),
        };
        (known != Self::FOREIGN).then_some(known as usize)
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// Runs one shard until its queue closes; returns the mailboxes it tracked.
fn work(mut shard: Shard, rx: Receiver<Batch>, res: SyncSender<BatchResult>, gauges: Option<ShardGauges>) -> usize {
    for batch in rx {
        let mut alerts = Vec::new();
        let mut items = batch.items.into_iter();
        while let Some(item) = items.next() {
            if let Some(ahead) = items.as_slice().get(crate::cache::AHEAD) {
                shard.prefetch(ahead);
            }
            shard.apply(item, &mut alerts);
        }
        let part = batch.snapshot.as_ref().filter(|s| s.export).map(|_| {
            let (closed_through, first_day) = shard.days();
            ShardPart { closed_through, first_day, behind: shard.behind(), mailboxes: shard.export() }
        });
        if let Some(g) = &gauges {
            g.set(shard.len());
        }
        if res.send(BatchResult { no: batch.no, alerts, shard: part, snapshot: batch.snapshot, timing: batch.timing }).is_err() {
            break;
        }
    }
    shard.len()
}

type AlertCounts = BTreeMap<(Rule, &'static str), u64>;

/// Results of one batch number, gathered from every worker.
#[derive(Default)]
struct Pending {
    answers: usize,
    alerts: Vec<Ordered>,
    parts: Vec<ShardPart>,
    snapshot: Option<Arc<Snapshot>>,
    arrivals: Arrivals,
    sent: Option<Instant>,
}

/// The next message, `None` once every sender is gone. When none is waiting, `idle` runs
/// first: what is held back for more input is handed on before waiting for it.
fn next_or_idle<T>(rx: &Receiver<T>, idle: impl FnOnce() -> Result<()>) -> Result<Option<T>> {
    match rx.try_recv() {
        Ok(msg) => Ok(Some(msg)),
        Err(TryRecvError::Disconnected) => Ok(None),
        Err(TryRecvError::Empty) => {
            idle()?;
            Ok(rx.recv().ok())
        }
    }
}

/// Merges the workers' results batch by batch, in batch order, writes the alerts, and
/// writes a checkpoint after the alerts it covers are flushed.
fn collect(rx: Receiver<BatchResult>, workers: usize, mut sink: Box<dyn AlertSink>, state_dir: Option<PathBuf>, metrics: Option<Arc<Metrics>>, commit: Option<Sender<CommitRequest>>) -> Result<AlertCounts> {
    let mut pending: BTreeMap<u64, Pending> = BTreeMap::new();
    let mut next = 0u64;
    let mut counts = AlertCounts::new();
    let mut written = false;
    loop {
        // Nothing right behind: a live reader of the output gets the alerts now.
        let Some(r) = next_or_idle(&rx, || if std::mem::take(&mut written) { sink.hand_on() } else { Ok(()) })? else { break };
        let slot = pending.entry(r.no).or_default();
        slot.answers += 1;
        slot.alerts.extend(r.alerts);
        slot.parts.extend(r.shard);
        slot.snapshot = slot.snapshot.take().or(r.snapshot);
        slot.arrivals.merge(r.timing.arrivals);
        slot.sent = slot.sent.or(Some(r.timing.sent));
        while pending.get(&next).is_some_and(|p| p.answers == workers) {
            let mut done = pending.remove(&next).expect("checked above");
            done.alerts.sort_by(|a, b| a.key().cmp(&b.key()));
            written |= !done.alerts.is_empty();
            for o in &done.alerts {
                sink.write(&o.alert)?;
                *counts.entry((o.alert.rule, status_name(o.alert.status))).or_default() += 1;
            }
            if let (Some(m), Some(sent)) = (&metrics, done.sent) {
                m.record_batch(done.alerts.iter().map(|o| (o.seq, &o.alert)), &done.arrivals, sent, Instant::now());
            }
            let request = done.snapshot.as_ref().map(|s| CommitRequest { positions: s.inputs.clone(), barrier: s.barrier });
            if request.is_some() {
                sink.flush()?;
            }
            if let (Some(dir), true) = (&state_dir, done.parts.len() == workers) {
                write_checkpoint(dir, sink.position(), done)?;
            }
            // Only now is everything before the snapshot done: hand it back for commit.
            if let (Some(tx), Some(req)) = (&commit, request) {
                let _ = tx.send(req);
            }
            next += 1;
        }
    }
    sink.flush()?;
    Ok(counts)
}

/// Per partition, the first day some shard has still to judge for its taken-over mailboxes.
fn behind(parts: &[ShardPart]) -> BTreeMap<u32, chrono::NaiveDate> {
    let mut behind = BTreeMap::new();
    for (&partition, &next) in parts.iter().flat_map(|p| &p.behind) {
        let day = behind.entry(partition).or_insert(next);
        *day = (*day).min(next);
    }
    behind
}

/// The last day a partition's mailboxes are judged through, for its checkpoint: the
/// shards' last closed day, unless the partition is still catching up from `next` on (its
/// days from there are its next owner's to judge) — also when the shards have closed no
/// day yet (a restored run that read nothing), so the days before `next` are not lost.
fn judged_through(closed: Option<chrono::NaiveDate>, next: Option<chrono::NaiveDate>) -> Option<chrono::NaiveDate> {
    match (closed, next.and_then(|n| n.pred_opt())) {
        (Some(c), Some(n)) => Some(c.min(n)),
        (c, n) => n.or(c),
    }
}

fn write_checkpoint(dir: &std::path::Path, alerts_bytes: u64, done: Pending) -> Result<()> {
    let Some(snap) = done.snapshot else { return Ok(()) };
    let first = done.parts.first();
    let (closed_through, first_day) = (first.and_then(|p| p.closed_through), first.and_then(|p| p.first_day));
    let behind = behind(&done.parts);
    let mut mailboxes: Vec<_> = done.parts.into_iter().flat_map(|p| p.mailboxes).collect();
    mailboxes.sort_by(|a, b| a.0.cmp(&b.0));
    let cp = Checkpoint {
        version: checkpoint::FORMAT_VERSION,
        seq: snap.seq,
        inputs: snap.inputs.clone(),
        watermark_inputs: snap.watermark_inputs.clone(),
        alerts_bytes,
        dead_letter_bytes: snap.dead_letter_bytes,
        router: snap.router.clone(),
        watermark: snap.watermark.clone(),
        closed_through,
        first_day,
        mailboxes,
    };
    match &snap.ownership {
        None => {
            let path = checkpoint::write(dir, &cp)?;
            tracing::debug!(checkpoint = %path.display(), seq = cp.seq, "checkpoint written");
        }
        Some(own) => {
            for &partition in own.owned() {
                let mut part = cp.of_partition(partition, own);
                part.closed_through = judged_through(part.closed_through, behind.get(&partition).copied());
                let path = checkpoint::write(&checkpoint::partition_dir(dir, partition), &part)?;
                tracing::debug!(checkpoint = %path.display(), partition, "partition checkpoint written");
            }
        }
    }
    Ok(())
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Open => "open",
        Status::Resolved => "resolved",
    }
}

/// The decode-and-route stage, on the calling thread.
struct Stage<'a> {
    settings: Arc<Settings>,
    reloader: Option<crate::roster::Reloader>,
    router: Router,
    watermark: Watermark,
    /// With a consumer group: how far each partition's own records are (see [`PartitionDays`]).
    partition_days: PartitionDays,
    /// The earliest last closed day of the partition checkpoints restored.
    restored_through: Option<chrono::NaiveDate>,
    decoders: BTreeMap<usize, Box<dyn Decoder>>,
    watermark_inputs: BTreeMap<usize, usize>,
    positions: Vec<InputPosition>,
    workers: Vec<SyncSender<Batch>>,
    pending: Vec<Vec<Item>>,
    placements: Placements,
    in_batch: usize,
    batch_no: u64,
    seq: u64,
    dead: &'a mut dyn DeadLetterSink,
    summary: Summary,
    progress: Option<indicatif::ProgressBar>,
    /// The events of the line at hand (the decoder's own output, before it is shared).
    decoded: Vec<Event>,
    events: Vec<Observed>,
    /// The copies of the line's events that the decode pool routed (see `pool::Routing`).
    prerouted: Vec<Routed>,
    /// Whether the pool routed the chunk at hand (with the router's roster: see `chunk`);
    /// else the router routes.
    prerouted_valid: bool,
    routed: Vec<Routed>,
    /// The decode pool's routing, told of roster reloads.
    routing: Option<pool::Routing>,
    checkpoints: bool,
    /// Whether the workers export their shards at a snapshot (a state directory is set).
    export: bool,
    /// Live source: snapshot (commit) at least this often; `--until` only when drained.
    live: Option<Duration>,
    drained: bool,
    /// Decoder per input, for sources that name one (Kafka topics).
    formats: BTreeMap<usize, crate::decode::Format>,
    barrier: Option<u64>,
    /// Live inputs: when each last delivered (wall clock), and those deactivated as idle.
    last_seen: BTreeMap<usize, Instant>,
    idle: std::collections::BTreeSet<usize>,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    /// Metrics: totals pushed per batch, and when the records of the next batch arrived.
    reporter: Option<StageReporter>,
    arrivals: Arrivals,
    /// With a consumer group: the partitions owned (`None`: every mailbox is ours).
    ownership: Option<Arc<Ownership>>,
}

impl<'a> Stage<'a> {
    fn new(settings: Arc<Settings>, roster: Arc<Roster>, workers: Vec<SyncSender<Batch>>, dead: &'a mut dyn DeadLetterSink, opts: &Options, names: Vec<String>, live: Option<Duration>) -> Self {
        let n = workers.len();
        let cp = opts.resume.as_ref();
        let positions = match cp {
            Some(cp) => cp.inputs.clone(),
            None => names.into_iter().map(|name| InputPosition { name, lines: 0, done: false }).collect(),
        };
        let reloader = settings.roster_path().and_then(|p| match crate::roster::Reloader::new(p) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the roster: it will not be reloaded");
                None
            }
        });
        Stage {
            reloader,
            watermark: cp.map_or_else(|| Watermark::new(settings.config.reading.allowed_lateness), |c| c.watermark.clone()),
            partition_days: PartitionDays::new(settings.config.reading.allowed_lateness),
            restored_through: None,
            router: Router::new(settings.clone(), roster, cp.map(|c| c.router.clone()).unwrap_or_default()),
            watermark_inputs: cp.map(|c| c.watermark_inputs.clone()).unwrap_or_default(),
            seq: cp.map_or(0, |c| c.seq),
            settings,
            decoders: BTreeMap::new(),
            positions,
            workers,
            pending: (0..n).map(|_| Vec::new()).collect(),
            placements: Placements::default(),
            in_batch: 0,
            batch_no: 0,
            summary: Summary::default(),
            progress: opts.progress.clone(),
            decoded: Vec::new(),
            events: Vec::new(),
            prerouted: Vec::new(),
            prerouted_valid: false,
            routed: Vec::new(),
            routing: None,
            checkpoints: opts.state_dir.is_some() || live.is_some(),
            export: opts.state_dir.is_some(),
            live,
            drained: false,
            formats: BTreeMap::new(),
            barrier: None,
            last_seen: BTreeMap::new(),
            idle: std::collections::BTreeSet::new(),
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            reporter: opts.metrics.clone().map(|m| StageReporter::new(m, Totals { dead_letters: dead.count(), ..Totals::default() })),
            dead,
            arrivals: Arrivals::default(),
            // A live (Kafka) instance owns nothing until partitions are assigned.
            ownership: live.map(|_| Arc::new(Ownership::new(1, Default::default()))),
        }
    }

    fn run(&mut self, rx: Receiver<SourceMsg>, until: Option<DateTime<Utc>>) -> Result<()> {
        loop {
            // The input is idle: hand out the partial batch, so alerts and metrics do not
            // wait for more input (the output does not depend on batching).
            let Some(msg) = next_or_idle(&rx, || if self.in_batch > 0 { self.flush(self.checkpoint_due()) } else { Ok(()) })? else { break };
            if let Some(r) = &self.reporter {
                r.metrics().set_sources_connected(true);
            }
            self.reload_roster();
            self.handle(msg)?;
        }
        if let Some(t) = until.filter(|_| self.live.is_none() || self.drained) {
            // Restored partitions that delivered nothing since: their days after the
            // checkpoints' last closed day are still to be judged.
            if let Some(day) = self.restored_through {
                self.watermark.start_at(day);
                self.check_close();
            }
            self.watermark.advance_to(t);
            self.check_close();
        }
        self.flush(self.checkpoints)?;
        self.workers.clear();
        Ok(())
    }

    /// Handles one message of the source (through the decode pool).
    fn handle(&mut self, msg: SourceMsg) -> Result<()> {
        match msg {
            SourceMsg::Chunk(c) => self.chunk(&c, None)?,
            SourceMsg::Decoded(c, d) => self.chunk(&c, Some(d))?,
            SourceMsg::End { input, error } => self.end_input(input, error)?,
            SourceMsg::Opened { input, name, format } => self.open_input(input, name, format),
            SourceMsg::Tick => {
                self.deactivate_idle();
                if self.since_checkpoint > 0 && self.checkpoint_due() {
                    self.flush(true)?;
                }
            }
            SourceMsg::Barrier(id) => {
                self.barrier = Some(id);
                self.flush(true)?;
            }
            SourceMsg::Drained => self.drained = true,
            SourceMsg::Owned(own) => self.own(own),
            SourceMsg::Restore(cp) => self.restore(*cp),
            SourceMsg::Batch(msgs) => msgs.into_iter().try_for_each(|m| self.handle(m))?,
        }
        Ok(())
    }

    /// Swaps in a reloaded roster at this stream position: the router uses it from the next
    /// event on, and every shard receives it in order with its items.
    fn reload_roster(&mut self) {
        let Some(roster) = self.reloader.as_mut().and_then(crate::roster::Reloader::poll) else { return };
        let roster = Arc::new(roster);
        self.router.set_roster(roster.clone());
        self.placements.clear();
        if let Some(r) = &self.routing {
            r.set_roster(roster.clone());
        }
        for p in &mut self.pending {
            p.push(Item::Roster(roster.clone()));
        }
    }

    /// Takes on a new set of owned partitions, in stream position: every shard drops the
    /// mailboxes of partitions given up (after the checkpoint that handed them over).
    fn own(&mut self, own: Ownership) {
        tracing::info!(partitions = ?own.owned(), of = own.partitions(), "owned partitions");
        let own = Arc::new(own);
        self.router.retain(|m| own.owns(m));
        for p in &mut self.pending {
            p.push(Item::Own(own.clone()));
        }
        self.ownership = Some(own);
        self.placements.clear();
    }

    /// Takes on a partition's checkpoint: its positions, delegations and mailboxes.
    fn restore(&mut self, cp: Checkpoint) {
        for p in &cp.inputs {
            if let Some(pos) = self.positions.iter_mut().find(|x| x.name == p.name) {
                pos.lines = p.lines;
            }
        }
        self.router.take_over(&cp.router);
        self.restored_through = self.restored_through.into_iter().chain(cp.closed_through).min();
        for (_, partition) in cp.inputs.iter().filter_map(|p| crate::sources::kafka::parse_input_name(&p.name)) {
            self.partition_days.reset(partition as u32);
        }
        let checkpoint = Arc::new(cp);
        for p in &mut self.pending {
            p.push(Item::Restore { seq: self.seq, checkpoint: checkpoint.clone() });
        }
    }

    fn finish(mut self) -> Summary {
        if let Some(p) = &self.progress {
            p.finish_and_clear();
        }
        let _ = self.dead.flush();
        std::mem::take(&mut self.summary)
    }

    /// A live input (a partition): its position (kept when a checkpoint covers it) and
    /// its decoder.
    fn open_input(&mut self, input: usize, name: String, format: crate::decode::Format) {
        while self.positions.len() <= input {
            self.positions.push(InputPosition { name: String::new(), lines: 0, done: false });
        }
        let p = &mut self.positions[input];
        if p.name != name {
            *p = InputPosition { name, lines: 0, done: false };
        }
        p.done = false;
        self.formats.insert(input, format);
        // The partition holds the watermark back until it delivers (or goes idle).
        match self.watermark_inputs.get(&input) {
            Some(&wm) => self.watermark.activate(wm),
            None => {
                let wm = self.watermark.add_held_input();
                self.watermark_inputs.insert(input, wm);
            }
        }
        self.idle.remove(&input);
        self.last_seen.insert(input, Instant::now());
    }

    /// Live mode: a partition with nothing for `reading.idle_timeout` stops holding the
    /// watermark back until it delivers again.
    fn deactivate_idle(&mut self) {
        let limit = self.settings.config.reading.idle_timeout;
        let idle: Vec<usize> = self.last_seen.iter().filter(|(i, t)| t.elapsed() >= limit && !self.idle.contains(i)).map(|(i, _)| *i).collect();
        for input in idle {
            if let Some(&wm) = self.watermark_inputs.get(&input) {
                tracing::info!(input = %self.positions.get(input).map_or("?", |p| p.name.as_str()), "input idle: no longer holds the watermark back");
                self.watermark.deactivate(wm);
                self.check_close();
            }
            self.idle.insert(input);
        }
        self.follow_wall_clock_when_all_idle();
    }

    /// Live mode: when every input is idle, the wall clock (minus the allowed lateness)
    /// stands in for event time, so a quiet night still closes the day.
    fn follow_wall_clock_when_all_idle(&mut self) {
        let all_idle = !self.watermark_inputs.is_empty() && self.watermark_inputs.keys().all(|i| self.idle.contains(i));
        if self.live.is_some() && all_idle {
            let lateness = chrono::Duration::from_std(self.settings.config.reading.allowed_lateness).unwrap_or_default();
            self.watermark.advance_to(Utc::now() - lateness);
            self.check_close();
        }
    }

    fn end_input(&mut self, input: usize, error: Option<String>) -> Result<()> {
        // Merged files share one watermark input, which stays active to the end; a
        // partition's own input stops holding the watermark back.
        if let Some(&wm) = self.watermark_inputs.get(&input) {
            if self.live.is_some() || self.watermark_inputs.values().filter(|&&w| w == wm).count() == 1 {
                self.watermark.deactivate(wm);
            }
        }
        self.finish_decoder(input)?;
        match error {
            Some(e) => {
                tracing::error!(input, error = %e, "input could not be read to the end");
                self.summary.input_errors.push(e);
            }
            None => {
                if let Some(p) = self.positions.get_mut(input) {
                    p.done = true;
                }
            }
        }
        Ok(())
    }

    /// The input ended: its decoder hands over what it still held — events, or a record it
    /// cannot complete, which is counted and dead-lettered at the position it began.
    fn finish_decoder(&mut self, input: usize) -> Result<()> {
        let Some(mut decoder) = self.decoders.remove(&input) else { return Ok(()) };
        let held = decoder.finish(&mut self.decoded);
        self.events.extend(self.decoded.drain(..).map(Observed::from));
        if held.is_ok() && self.events.is_empty() {
            return Ok(());
        }
        self.seq += 1;
        if let Err(u) = held {
            *self.summary.bad.entry(u.error.reason).or_default() += 1;
            self.dead.write(&u.pos, &u.error, &u.raw, None)?;
        }
        let wm_input = self.watermark_input(input);
        self.dispatch_events(wm_input, None)
    }

    /// The watermark input of `input`: its own for a live input (a partition); for files,
    /// which the reader merges into one stream in time order, one shared by all.
    fn watermark_input(&mut self, input: usize) -> usize {
        if let Some(&wm) = self.watermark_inputs.get(&input) {
            return wm;
        }
        let wm = match self.watermark_inputs.values().next() {
            Some(&shared) if self.live.is_none() => {
                // An input that ended alone may have released the shared clock (files one
                // after the other in time): the next one takes it up again.
                self.watermark.activate(shared);
                shared
            }
            _ => self.watermark.add_input(),
        };
        self.watermark_inputs.insert(input, wm);
        wm
    }

    /// One chunk of lines, decoded here or already by the decode pool (`pre`). A chunk
    /// that merges several inputs is of one stateless format: one decoder reads it all.
    fn chunk(&mut self, c: &Chunk, mut pre: Option<Decoded>) -> Result<()> {
        // Routed with a roster since replaced: the pool let go of the events that concerned
        // no mailbox by that roster, so they are decoded again here and routed by this one.
        if pre.as_ref().and_then(Decoded::routed_with).is_some_and(|r| !Arc::ptr_eq(r, self.router.roster())) {
            pre = None;
        }
        let mut decoder = match pre {
            Some(_) => None,
            None => Some(self.decoders.remove(&c.input).unwrap_or_else(|| self.format_of(c.input).decoder(&self.settings.decode_options()))),
        };
        let (mut input, mut wm_input) = (c.input, self.watermark_input(c.input));
        self.note_arrival(c, wm_input);
        self.prerouted_valid = pre.as_ref().and_then(Decoded::routed_with).is_some();
        let mut covered = self.positions.get(input).map_or(0, |p| p.lines);
        for (i, line) in c.lines.iter().enumerate() {
            let origin = c.origin(i);
            if origin.input != input {
                input = origin.input;
                wm_input = self.watermark_input(input);
                covered = self.positions.get(input).map_or(0, |p| p.lines);
            }
            let number = origin.line;
            let pos = c.pos(i);
            let raw = &c.data[line.start..line.end];
            let (decoded, prerouted) = (&mut self.decoded, &mut self.prerouted);
            // Every line is taken from the pool's lines, a cut one too (the pool left it
            // undecoded): they stay in step with the chunk's.
            let mut decode = |events: &mut Vec<Observed>| match (&mut pre, &mut decoder) {
                (Some(pre), _) => pre.next_line(events, prerouted),
                (None, Some(_)) if line.cut_from.is_some() => Ok(()),
                (None, Some(d)) => {
                    let result = d.decode(raw, &pos, decoded);
                    events.extend(decoded.drain(..).map(Observed::from));
                    result
                }
                (None, None) => unreachable!("a chunk is decoded here or by the pool"),
            };
            if number <= covered {
                // Covered by the checkpoint: rebuild the decoder's state only.
                let _ = decode(&mut self.events);
                self.events.clear();
                self.prerouted.clear();
                continue;
            }
            let decoded = decode(&mut self.events);
            let result = match line.cut_from {
                Some(len) => Err(DecodeError::new(ErrorReason::TooLong, format!("record of {len} bytes exceeds input.max_line_bytes"))),
                None => decoded,
            };
            self.record(&pos, raw, line.cut_from, result)?;
            self.dispatch_events(wm_input, c.partition)?;
            if let Some(p) = self.positions.get_mut(input) {
                p.lines = number;
            }
        }
        if let Some(d) = decoder {
            self.decoders.insert(c.input, d);
        }
        if let Some(p) = &self.progress {
            p.set_position(c.bytes_read);
        }
        Ok(())
    }

    fn format_of(&self, input: usize) -> crate::decode::Format {
        self.formats.get(&input).copied().unwrap_or(self.settings.config.input.format)
    }

    /// A chunk arrived: the input is not idle, and when its first line was read is kept
    /// for latency. Only a Kafka run is live, and its chunks never merge inputs, so the
    /// chunk's one input is `c.input`.
    fn note_arrival(&mut self, c: &Chunk, wm_input: usize) {
        if self.live.is_some() {
            self.last_seen.insert(c.input, Instant::now());
            if self.idle.remove(&c.input) {
                self.watermark.activate(wm_input);
            }
        }
        self.arrivals.mark(self.seq + 1, c.read_at);
        if let Some(r) = &mut self.reporter {
            let kind = if c.partition.is_some() { "kafka" } else { crate::metrics::source_kind(&c.name) };
            r.set_source(kind, || Totals::of(&self.summary, self.dead.count()));
        }
    }

    /// Counts one record with its decoding result; a bad one is dead-lettered.
    fn record(&mut self, pos: &SourcePos, raw: &[u8], cut_from: Option<u64>, result: Result<(), DecodeError>) -> Result<()> {
        self.summary.records += 1;
        self.summary.bytes += raw.len() as u64 + 1;
        self.seq += 1;
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                *self.summary.bad.entry(e.reason).or_default() += 1;
                self.dead.write(pos, &e, raw, cut_from)
            }
        }
    }

    fn dispatch_events(&mut self, wm_input: usize, partition: Option<i32>) -> Result<()> {
        let n = self.workers.len();
        let mut events = std::mem::take(&mut self.events);
        for ob in &events {
            self.summary.events[usize::from(ob.type_index)] += 1;
            if self.watermark.observe(wm_input, ob.time) {
                self.summary.late += 1;
            }
            self.check_catch_up(partition, ob.time);
            self.check_close();
            let Some(ev) = &ob.event else { continue };
            self.route(ev);
            for routed in self.routed.drain(..) {
                match self.placements.of(&routed.mailbox, self.router.roster(), n, self.ownership.as_deref()) {
                    Some(shard) => self.pending[shard].push(Item::Event { seq: self.seq, routed }),
                    None => self.summary.foreign += 1,
                }
            }
        }
        // The buffers go back empty: their capacity serves the next line.
        events.clear();
        self.events = events;
        self.prerouted.clear();
        self.in_batch += 1;
        self.since_checkpoint += 1;
        if self.in_batch >= self.settings.config.pipeline.batch_size {
            self.flush(self.checkpoint_due())?;
        }
        Ok(())
    }

    /// Routes one event of the line at hand into `self.routed` (empty): completes the
    /// copies the decode pool routed, or routes it here.
    fn route(&mut self, ev: &Arc<Event>) {
        if !self.prerouted_valid {
            return self.router.route(ev, &mut self.routed);
        }
        let own = self.prerouted.iter().take_while(|r| Arc::ptr_eq(&r.event, ev)).count();
        if own == self.prerouted.len() {
            std::mem::swap(&mut self.routed, &mut self.prerouted);
        } else {
            self.routed.extend(self.prerouted.drain(..own));
        }
        self.router.complete(ev, 0, &mut self.routed);
    }

    fn checkpoint_due(&self) -> bool {
        let cfg = &self.settings.config.state;
        let interval = self.live.unwrap_or(cfg.checkpoint_interval);
        self.checkpoints && (self.since_checkpoint >= cfg.checkpoint_records || self.last_checkpoint.elapsed() >= interval)
    }

    /// With a consumer group: tells every shard, in stream position, when the partition of
    /// the record moved on by a day (its taken-over mailboxes are judged by it).
    fn check_catch_up(&mut self, partition: Option<i32>, t: DateTime<Utc>) {
        let Some(partition) = partition.filter(|_| self.ownership.is_some()).map(|p| p as u32) else { return };
        if let Some(through) = self.partition_days.observe(partition, t) {
            for p in &mut self.pending {
                p.push(Item::CatchUp { seq: self.seq, partition, through });
            }
        }
    }

    /// Broadcasts a day close to every shard, in stream position.
    fn check_close(&mut self) {
        if let Some(through) = self.watermark.take_close() {
            for p in &mut self.pending {
                p.push(Item::Close { seq: self.seq, through });
            }
        }
    }

    /// The router's part of a checkpoint at the current position.
    fn snapshot(&mut self) -> Result<Arc<Snapshot>> {
        self.dead.flush()?;
        self.since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        Ok(Arc::new(Snapshot {
            export: self.export,
            barrier: self.barrier.take(),
            seq: self.seq,
            inputs: self.positions.clone(),
            watermark_inputs: self.watermark_inputs.clone(),
            dead_letter_bytes: self.dead.position(),
            router: self.router.state().clone(),
            watermark: self.watermark.clone(),
            ownership: self.ownership.clone(),
        }))
    }

    /// Sends the pending items to every worker (empty batches too: the collector waits
    /// for every worker's answer to a batch number), with a checkpoint request if asked.
    fn flush(&mut self, checkpoint: bool) -> Result<()> {
        let snapshot = if checkpoint { Some(self.snapshot()?) } else { None };
        if let Some(r) = &mut self.reporter {
            r.push(Totals::of(&self.summary, self.dead.count()));
            r.metrics().set_watermark(self.watermark.value());
        }
        let (sent, mut arrivals) = (Instant::now(), self.arrivals.take_for_batch());
        for (tx, items) in self.workers.iter().zip(self.pending.iter_mut()) {
            let timing = Timing { sent, arrivals: std::mem::take(&mut arrivals) };
            // The next batch starts with room for as many items (no regrowing by doubling).
            let items = std::mem::replace(items, Vec::with_capacity(items.len()));
            let batch = Batch { no: self.batch_no, items, snapshot: snapshot.clone(), timing };
            tx.send(batch).map_err(|_| anyhow!("a shard worker stopped (see errors above)"))?;
        }
        self.batch_no += 1;
        self.in_batch = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{judged_through, Placements};
    use crate::detect::MailboxId;
    use crate::roster::{Roster, RosterEntry};
    use crate::state::ownership::Ownership;
    use crate::state::shard_of;
    use chrono::NaiveDate;

    /// The decode pool routed a chunk with the roster of the moment and let go of the
    /// events that concerned no mailbox by it: a message delivered to anna, on that roster.
    /// The roster is reloaded (anna has left it) before the stage takes the chunk: the
    /// stage decodes it again and routes it by the new roster, where the message makes
    /// anna a mailbox off the roster that receives mail.
    #[test]
    fn a_chunk_routed_with_a_replaced_roster_is_decoded_again_and_routed_by_the_new_one() {
        use super::{pool, Options, SourceMsg, Stage};
        use crate::config::Settings;
        use crate::decode::{DecodeOptions, Format};
        use crate::detect::Roles;
        use crate::sources::{Chunk, Line};
        use crate::state::Item;
        use std::sync::{mpsc::sync_channel, Arc};

        let settings = Arc::new(Settings::default_settings());
        let anna = RosterEntry { address: "anna@exempel.se".into(), owners: vec!["anna@exempel.se".into()], ..RosterEntry::default() };
        let (before, after) = (Arc::new(Roster::new(vec![anna])), Arc::new(Roster::new(Vec::new())));
        let line = r#"{"type":"mail.message","time":"2026-06-15T08:00:00+02:00","message_id":"m","sender":"x@gmail.com","recipients":["anna@exempel.se"],"direction":"inbound","action":"deliver"}"#;
        let mut chunk = Chunk::new(0, "t".into(), 1, None);
        chunk.data.extend_from_slice(line.as_bytes());
        chunk.lines.push(Line { start: 0, end: line.len(), cut_from: None });
        let (to_pool, rx) = sync_channel(1);
        let (from_pool, _decoders) = pool::spawn(rx, Default::default(), Format::Normalized, &DecodeOptions::default(), 1, Some(pool::Routing::new(settings.clone(), before))).unwrap();
        to_pool.send(SourceMsg::Chunk(chunk)).unwrap();
        let decoded = from_pool.recv().unwrap();

        let dir = tempfile::tempdir().unwrap();
        let mut dead = crate::sinks::dead_letter::DeadLetters::new(&dir.path().join("dead.jsonl"));
        let (worker, batches) = sync_channel(4);
        let opts = Options { workers: 1, until: None, progress: None, state_dir: None, resume: None, metrics: None };
        let mut stage = Stage::new(settings, after, vec![worker], &mut dead, &opts, vec!["t".into()], None);
        stage.handle(decoded).unwrap();
        stage.flush(false).unwrap();
        let copies: Vec<(MailboxId, Roles)> = batches
            .recv()
            .unwrap()
            .items
            .into_iter()
            .filter_map(|i| match i {
                Item::Event { routed, .. } => Some((routed.mailbox, routed.roles)),
                _ => None,
            })
            .collect();
        assert_eq!(copies, [(MailboxId::Address("anna@exempel.se".into()), Roles::RECIPIENT)]);
    }

    /// The stage works out a mailbox's shard and owner once; the answer is always the one
    /// its address gives (FNV for the shard, murmur2 for the Kafka partition), also after
    /// a rebalance hands this instance other partitions.
    #[test]
    fn a_mailbox_goes_to_the_shard_and_instance_its_address_names_asked_once_or_again() {
        let roster = Roster::new((0..200).map(|i| RosterEntry { address: format!("person{i}@kommun.se"), ..RosterEntry::default() }).collect());
        let mut placements = Placements::default();
        for _ in 0..2 {
            for (p, e) in roster.entries().iter().enumerate() {
                assert_eq!(placements.of(&MailboxId::Roster(p as u32), &roster, 3, None), Some(shard_of(&e.address, 3)), "{}", e.address);
            }
        }
        for owned in [[0, 2], [1, 3]] {
            let own = Ownership::new(4, owned.into());
            placements.clear();
            for _ in 0..2 {
                for (p, e) in roster.entries().iter().enumerate() {
                    let want = own.owns(&e.address).then(|| shard_of(&e.address, 3));
                    assert_eq!(placements.of(&MailboxId::Roster(p as u32), &roster, 3, Some(&own)), want, "{}", e.address);
                }
            }
            let stranger = MailboxId::Address("x@annan.se".into());
            assert_eq!(placements.of(&stranger, &roster, 3, Some(&own)), own.owns("x@annan.se").then(|| shard_of("x@annan.se", 3)));
        }
    }

    fn day(d: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(2026, 6, d)
    }

    /// A partition checkpoint never claims a day judged that the partition's taken-over
    /// mailboxes have not been judged on — also when this run closed no day at all (it
    /// restored the partition, read nothing and was stopped): the restored last closed day
    /// is kept, so the next owner judges Midsummer week's days after it instead of
    /// skipping them.
    #[test]
    fn a_partition_checkpoint_keeps_the_days_its_taken_over_mailboxes_still_owe() {
        assert_eq!(judged_through(day(18), None), day(18), "nothing owed: the shards' last closed day");
        assert_eq!(judged_through(day(18), day(16)), day(15), "catching up from the 16th: judged through the 15th");
        assert_eq!(judged_through(day(14), day(16)), day(14), "never past the shards' own last closed day");
        assert_eq!(judged_through(None, day(16)), day(15), "a run that closed nothing keeps the restored day");
        assert_eq!(judged_through(None, None), None);
    }
}
