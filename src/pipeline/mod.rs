//! The pipeline: sources → decode → route → shards (detectors) → merge → sinks.
//!
//! Threads: one reader (read, decompress, split lines), this thread (decode, watermark,
//! route), N shard workers (each owns its mailboxes' state: no locks), and one collector
//! that merges the workers' alerts and writes them. Every hand-over is a bounded channel,
//! so a slow sink slows the reader instead of growing memory.
//!
//! Guarantees: alerts are written in one deterministic order — by the stream position of
//! the record (or watermark step) that caused them, then by id — whatever the worker count
//! or batch size, so the same input always gives a byte-identical alert file. Bad records
//! are dead-lettered and counted; the stream goes on. Days close by event time only.
//!
//! Checkpoints (with a state directory): at a batch boundary the router attaches a
//! snapshot of its own state and the input positions to the batch; every worker adds a copy
//! of its shard; the collector, once it has written and flushed every alert up to that
//! boundary, writes the checkpoint. A resumed run restores all of it, cuts the alert and
//! dead-letter files back to what the checkpoint covers, skips inputs already done and
//! re-decodes (without processing) the covered lines of a partly read input, so decoders
//! that keep state between lines (CSV headers, queue ids) are rebuilt.
//!
//! Metrics (with [`Options::metrics`]): the stage pushes its running totals once per batch,
//! the workers their state size, the collector alert counts and latencies. When the input
//! is idle the partial batch is handed out at once, so alerts and figures never wait for a
//! full batch.

pub mod router;
pub mod watermark;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
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
use crate::sinks::AlertSink;
use crate::detect::MailboxState;
use crate::sources::file::{read_all, Input};
use crate::sources::{Chunk, SourceMsg};
use crate::state::checkpoint::{self, Checkpoint, InputPosition};
use crate::state::shard::Shard;
use crate::state::{shard_of, Item, Ordered};
use router::{Router, RouterState};
use watermark::Watermark;

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
    /// Events decoded, by type.
    pub events: BTreeMap<&'static str, u64>,
    /// Bad records, by reason.
    pub bad: BTreeMap<ErrorReason, u64>,
    /// Events older than the watermark when they arrived.
    pub late: u64,
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
        self.events.values().sum()
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
    seq: u64,
    inputs: Vec<InputPosition>,
    watermark_inputs: BTreeMap<usize, usize>,
    dead_letter_bytes: u64,
    router: RouterState,
    watermark: Watermark,
}

/// A worker's part of a checkpoint.
struct ShardPart {
    closed_through: Option<chrono::NaiveDate>,
    first_day: Option<chrono::NaiveDate>,
    mailboxes: Vec<(String, MailboxState)>,
}

/// Runs the whole pipeline over `inputs` and returns the summary.
pub fn replay(settings: Arc<Settings>, roster: Arc<Roster>, inputs: Vec<Input>, sink: Box<dyn AlertSink>, dead: &mut DeadLetters, opts: Options) -> Result<Summary> {
    let started = Instant::now();
    let n = opts.workers.max(1);
    let names: Vec<String> = inputs.iter().map(Input::name).collect();
    if let Some(cp) = &opts.resume {
        check_same_inputs(cp, &inputs)?;
    }
    let done: Vec<bool> = match &opts.resume {
        Some(cp) => cp.inputs.iter().map(|p| p.done).collect(),
        None => vec![false; inputs.len()],
    };
    let (raw_tx, raw_rx) = sync_channel::<SourceMsg>(8);
    let max_line = settings.config.input.max_line_bytes;
    let reader = thread::Builder::new().name("reader".into()).spawn(move || read_all(&inputs, &done, &raw_tx, max_line, 1 << 18))?;
    let (res_tx, res_rx) = sync_channel::<BatchResult>(n * settings.config.pipeline.queue_batches);
    let state_dir = opts.state_dir.clone();
    let metrics = opts.metrics.clone();
    let collector = thread::Builder::new().name("collector".into()).spawn(move || collect(res_rx, n, sink, state_dir, metrics))?;
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
    let mut stage = Stage::new(settings.clone(), roster, worker_txs, dead, &opts, names);
    let routed = stage.run(raw_rx, opts.until);
    let mut summary = stage.finish();
    let mailboxes: usize = workers.into_iter().map(|w| w.join().unwrap_or(0)).sum();
    let alerts = collector.join().map_err(|_| anyhow!("collector thread panicked"))?;
    let _ = reader.join();
    routed?;
    summary.alerts = alerts?;
    summary.mailboxes = mailboxes;
    summary.workers = n;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// A checkpoint can only continue the same inputs, in the same order.
pub fn check_same_inputs(cp: &Checkpoint, inputs: &[Input]) -> Result<()> {
    let names: Vec<String> = inputs.iter().map(Input::name).collect();
    let covered: Vec<&str> = cp.inputs.iter().map(|p| p.name.as_str()).collect();
    if covered != names.iter().map(String::as_str).collect::<Vec<_>>() {
        bail!("the checkpoint covers the inputs {covered:?}, not {names:?}: replay the same inputs, or use a fresh --state-dir");
    }
    Ok(())
}

/// Runs one shard until its queue closes; returns the mailboxes it tracked.
fn work(mut shard: Shard, rx: Receiver<Batch>, res: SyncSender<BatchResult>, gauges: Option<ShardGauges>) -> usize {
    for batch in rx {
        let mut alerts = Vec::new();
        for item in batch.items {
            shard.apply(item, &mut alerts);
        }
        let part = batch.snapshot.as_ref().map(|_| {
            let (closed_through, first_day) = shard.days();
            ShardPart { closed_through, first_day, mailboxes: shard.export() }
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

/// Merges the workers' results batch by batch, in batch order, writes the alerts, and
/// writes a checkpoint after the alerts it covers are flushed.
fn collect(rx: Receiver<BatchResult>, workers: usize, mut sink: Box<dyn AlertSink>, state_dir: Option<PathBuf>, metrics: Option<Arc<Metrics>>) -> Result<AlertCounts> {
    let mut pending: BTreeMap<u64, Pending> = BTreeMap::new();
    let mut next = 0u64;
    let mut counts = AlertCounts::new();
    for r in rx {
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
            for o in &done.alerts {
                sink.write(&o.alert)?;
                *counts.entry((o.alert.rule, status_name(o.alert.status))).or_default() += 1;
            }
            if let (Some(m), Some(sent)) = (&metrics, done.sent) {
                m.record_batch(done.alerts.iter().map(|o| (o.seq, &o.alert)), &done.arrivals, sent, Instant::now());
            }
            if let (Some(dir), true) = (&state_dir, done.parts.len() == workers) {
                sink.flush()?;
                write_checkpoint(dir, sink.position(), done)?;
            }
            next += 1;
        }
    }
    sink.flush()?;
    Ok(counts)
}

fn write_checkpoint(dir: &std::path::Path, alerts_bytes: u64, done: Pending) -> Result<()> {
    let Some(snap) = done.snapshot else { return Ok(()) };
    let first = done.parts.first();
    let (closed_through, first_day) = (first.and_then(|p| p.closed_through), first.and_then(|p| p.first_day));
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
    let path = checkpoint::write(dir, &cp)?;
    tracing::debug!(checkpoint = %path.display(), seq = cp.seq, "checkpoint written");
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
    router: Router,
    watermark: Watermark,
    decoders: BTreeMap<usize, Box<dyn Decoder>>,
    watermark_inputs: BTreeMap<usize, usize>,
    positions: Vec<InputPosition>,
    workers: Vec<SyncSender<Batch>>,
    pending: Vec<Vec<Item>>,
    in_batch: usize,
    batch_no: u64,
    seq: u64,
    dead: &'a mut DeadLetters,
    summary: Summary,
    progress: Option<indicatif::ProgressBar>,
    events: Vec<Event>,
    routed: Vec<crate::detect::Routed>,
    checkpoints: bool,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    /// Metrics: totals pushed per batch, and when the records of the next batch arrived.
    reporter: Option<StageReporter>,
    arrivals: Arrivals,
}

impl<'a> Stage<'a> {
    fn new(settings: Arc<Settings>, roster: Arc<Roster>, workers: Vec<SyncSender<Batch>>, dead: &'a mut DeadLetters, opts: &Options, names: Vec<String>) -> Self {
        let n = workers.len();
        let cp = opts.resume.as_ref();
        let positions = match cp {
            Some(cp) => cp.inputs.clone(),
            None => names.into_iter().map(|name| InputPosition { name, lines: 0, done: false }).collect(),
        };
        Stage {
            watermark: cp.map_or_else(|| Watermark::new(settings.config.reading.allowed_lateness), |c| c.watermark.clone()),
            router: Router::new(settings.clone(), roster, cp.map(|c| c.router.clone()).unwrap_or_default()),
            watermark_inputs: cp.map(|c| c.watermark_inputs.clone()).unwrap_or_default(),
            seq: cp.map_or(0, |c| c.seq),
            settings,
            decoders: BTreeMap::new(),
            positions,
            workers,
            pending: (0..n).map(|_| Vec::new()).collect(),
            in_batch: 0,
            batch_no: 0,
            summary: Summary::default(),
            progress: opts.progress.clone(),
            events: Vec::new(),
            routed: Vec::new(),
            checkpoints: opts.state_dir.is_some(),
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            reporter: opts.metrics.clone().map(|m| StageReporter::new(m, Totals { dead_letters: dead.count(), ..Totals::default() })),
            dead,
            arrivals: Arrivals::default(),
        }
    }

    fn run(&mut self, rx: Receiver<SourceMsg>, until: Option<DateTime<Utc>>) -> Result<()> {
        loop {
            let msg = match rx.try_recv() {
                Ok(msg) => msg,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    // The input is idle: hand out the partial batch, so alerts and metrics
                    // do not wait for more input (the output does not depend on batching).
                    if self.in_batch > 0 {
                        self.flush(self.checkpoint_due())?;
                    }
                    match rx.recv() {
                        Ok(msg) => msg,
                        Err(_) => break,
                    }
                }
            };
            if let Some(r) = &self.reporter {
                r.metrics().set_sources_connected(true);
            }
            match msg {
                SourceMsg::Chunk(c) => self.chunk(&c)?,
                SourceMsg::End { input, error } => self.end_input(input, error),
            }
        }
        if let Some(t) = until {
            self.watermark.advance_to(t);
            self.check_close();
        }
        self.flush(self.checkpoints)?;
        self.workers.clear();
        Ok(())
    }

    fn finish(mut self) -> Summary {
        if let Some(p) = &self.progress {
            p.finish_and_clear();
        }
        let _ = self.dead.flush();
        std::mem::take(&mut self.summary)
    }

    fn end_input(&mut self, input: usize, error: Option<String>) {
        if let Some(wm) = self.watermark_inputs.get(&input) {
            self.watermark.deactivate(*wm);
        }
        self.decoders.remove(&input);
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
    }

    fn chunk(&mut self, c: &Chunk) -> Result<()> {
        let mut decoder = match self.decoders.remove(&c.input) {
            Some(d) => d,
            None => self.settings.config.input.format.decoder(&self.settings.decode_options()),
        };
        let wm_input = *self.watermark_inputs.entry(c.input).or_insert_with(|| self.watermark.add_input());
        let covered = self.positions.get(c.input).map_or(0, |p| p.lines);
        self.arrivals.mark(self.seq + 1, Instant::now());
        if let Some(r) = &mut self.reporter {
            r.set_source(crate::metrics::source_kind(&c.name), || Totals::of(&self.summary, self.dead.count()));
        }
        for (i, line) in c.lines.iter().enumerate() {
            let number = c.first_line + i as u64;
            let pos = SourcePos::line(c.name.clone(), number);
            let raw = &c.data[line.start..line.end];
            if number <= covered {
                // Covered by the checkpoint: rebuild the decoder's state only.
                let _ = decoder.decode(raw, &pos, &mut self.events);
                self.events.clear();
                continue;
            }
            self.record(decoder.as_mut(), &pos, raw, line.cut_from)?;
            self.dispatch_events(wm_input)?;
            if let Some(p) = self.positions.get_mut(c.input) {
                p.lines = number;
            }
        }
        self.decoders.insert(c.input, decoder);
        if let Some(p) = &self.progress {
            p.set_position(c.bytes_read);
        }
        Ok(())
    }

    /// Decodes one record; a bad one is counted and dead-lettered.
    fn record(&mut self, decoder: &mut dyn Decoder, pos: &SourcePos, raw: &[u8], cut_from: Option<u64>) -> Result<()> {
        self.summary.records += 1;
        self.summary.bytes += raw.len() as u64 + 1;
        self.seq += 1;
        let result = match cut_from {
            Some(len) => Err(DecodeError::new(ErrorReason::TooLong, format!("record of {len} bytes exceeds input.max_line_bytes"))),
            None => decoder.decode(raw, pos, &mut self.events),
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                *self.summary.bad.entry(e.reason).or_default() += 1;
                self.dead.write(pos, &e, raw, cut_from)
            }
        }
    }

    fn dispatch_events(&mut self, wm_input: usize) -> Result<()> {
        let n = self.workers.len();
        for ev in std::mem::take(&mut self.events) {
            *self.summary.events.entry(ev.body.type_name()).or_default() += 1;
            if self.watermark.observe(wm_input, ev.time) {
                self.summary.late += 1;
            }
            self.check_close();
            let ev = Arc::new(ev);
            self.router.route(&ev, &mut self.routed);
            for routed in self.routed.drain(..) {
                let shard = shard_of(&routed.mailbox, n);
                self.pending[shard].push(Item::Event { seq: self.seq, routed });
            }
        }
        self.in_batch += 1;
        self.since_checkpoint += 1;
        if self.in_batch >= self.settings.config.pipeline.batch_size {
            self.flush(self.checkpoint_due())?;
        }
        Ok(())
    }

    fn checkpoint_due(&self) -> bool {
        let cfg = &self.settings.config.state;
        self.checkpoints && (self.since_checkpoint >= cfg.checkpoint_records || self.last_checkpoint.elapsed() >= cfg.checkpoint_interval)
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
            seq: self.seq,
            inputs: self.positions.clone(),
            watermark_inputs: self.watermark_inputs.clone(),
            dead_letter_bytes: self.dead.position(),
            router: self.router.state().clone(),
            watermark: self.watermark.clone(),
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
            let batch = Batch { no: self.batch_no, items: std::mem::take(items), snapshot: snapshot.clone(), timing };
            tx.send(batch).map_err(|_| anyhow!("a shard worker stopped (see errors above)"))?;
        }
        self.batch_no += 1;
        self.in_batch = 0;
        Ok(())
    }
}
