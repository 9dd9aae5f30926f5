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

pub mod router;
pub mod watermark;

use std::collections::BTreeMap;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use chrono::{DateTime, Utc};

use crate::alert::{Rule, Status};
use crate::config::Settings;
use crate::decode::{DecodeError, DecodeOptions, Decoder, ErrorReason};
use crate::event::{Event, SourcePos};
use crate::roster::Roster;
use crate::sinks::dead_letter::DeadLetters;
use crate::sinks::AlertSink;
use crate::sources::file::{read_all, Input};
use crate::sources::{Chunk, SourceMsg};
use crate::state::shard::Shard;
use crate::state::{shard_of, Item, Ordered};
use router::Router;
use watermark::Watermark;

/// How to run a replay.
pub struct Options {
    /// Shard workers.
    pub workers: usize,
    /// Declares the input complete up to this instant: days ending by then are judged.
    pub until: Option<DateTime<Utc>>,
    /// Progress display, advanced by bytes read.
    pub progress: Option<indicatif::ProgressBar>,
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
}

/// A worker's alerts for one batch.
struct BatchResult {
    no: u64,
    alerts: Vec<Ordered>,
}

/// Runs the whole pipeline over `inputs` and returns the summary.
pub fn replay(settings: Arc<Settings>, roster: Arc<Roster>, inputs: Vec<Input>, sink: Box<dyn AlertSink>, dead: &mut DeadLetters, opts: Options) -> Result<Summary> {
    let started = Instant::now();
    let n = opts.workers.max(1);
    let (raw_tx, raw_rx) = sync_channel::<SourceMsg>(8);
    let max_line = settings.config.input.max_line_bytes;
    let reader = thread::Builder::new().name("reader".into()).spawn(move || read_all(&inputs, &raw_tx, max_line, 1 << 18))?;
    let (res_tx, res_rx) = sync_channel::<BatchResult>(n * settings.config.pipeline.queue_batches);
    let collector = thread::Builder::new().name("collector".into()).spawn(move || collect(res_rx, n, sink))?;
    let mut worker_txs = Vec::new();
    let mut workers = Vec::new();
    for i in 0..n {
        let (tx, rx) = sync_channel::<Batch>(settings.config.pipeline.queue_batches);
        let shard = Shard::new(i, n, settings.clone(), roster.clone());
        let res = res_tx.clone();
        workers.push(thread::Builder::new().name(format!("shard-{i}")).spawn(move || work(shard, rx, res))?);
        worker_txs.push(tx);
    }
    drop(res_tx);
    let mut stage = Stage::new(settings.clone(), roster, worker_txs, dead, opts.progress.clone());
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

/// Runs one shard until its queue closes; returns the mailboxes it tracked.
fn work(mut shard: Shard, rx: Receiver<Batch>, res: SyncSender<BatchResult>) -> usize {
    for batch in rx {
        let mut alerts = Vec::new();
        for item in batch.items {
            shard.apply(item, &mut alerts);
        }
        if res.send(BatchResult { no: batch.no, alerts }).is_err() {
            break;
        }
    }
    shard.len()
}

type AlertCounts = BTreeMap<(Rule, &'static str), u64>;

/// Merges the workers' results batch by batch, in batch order, and writes the alerts.
fn collect(rx: Receiver<BatchResult>, workers: usize, mut sink: Box<dyn AlertSink>) -> Result<AlertCounts> {
    let mut pending: BTreeMap<u64, (usize, Vec<Ordered>)> = BTreeMap::new();
    let mut next = 0u64;
    let mut counts = AlertCounts::new();
    for r in rx {
        let slot = pending.entry(r.no).or_default();
        slot.0 += 1;
        slot.1.extend(r.alerts);
        while pending.get(&next).is_some_and(|(k, _)| *k == workers) {
            let (_, mut alerts) = pending.remove(&next).expect("checked above");
            alerts.sort_by(|a, b| a.key().cmp(&b.key()));
            for o in &alerts {
                sink.write(&o.alert)?;
                *counts.entry((o.alert.rule, status_name(o.alert.status))).or_default() += 1;
            }
            next += 1;
        }
    }
    sink.flush()?;
    Ok(counts)
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
    decoders: BTreeMap<usize, (Box<dyn Decoder>, usize)>,
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
}

impl<'a> Stage<'a> {
    fn new(settings: Arc<Settings>, roster: Arc<Roster>, workers: Vec<SyncSender<Batch>>, dead: &'a mut DeadLetters, progress: Option<indicatif::ProgressBar>) -> Self {
        let n = workers.len();
        Stage {
            watermark: Watermark::new(settings.config.reading.allowed_lateness),
            router: Router::new(settings.clone(), roster),
            settings,
            decoders: BTreeMap::new(),
            workers,
            pending: (0..n).map(|_| Vec::new()).collect(),
            in_batch: 0,
            batch_no: 0,
            seq: 0,
            dead,
            summary: Summary::default(),
            progress,
            events: Vec::new(),
            routed: Vec::new(),
        }
    }

    fn run(&mut self, rx: Receiver<SourceMsg>, until: Option<DateTime<Utc>>) -> Result<()> {
        for msg in rx {
            match msg {
                SourceMsg::Chunk(c) => self.chunk(&c)?,
                SourceMsg::End { input, error } => self.end_input(input, error),
            }
        }
        if let Some(t) = until {
            self.watermark.advance_to(t);
            self.check_close();
        }
        self.flush()?;
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
        if let Some((_, wm)) = self.decoders.get(&input) {
            self.watermark.deactivate(*wm);
        }
        if let Some(e) = error {
            tracing::error!(input, error = %e, "input could not be read to the end");
            self.summary.input_errors.push(e);
        }
    }

    fn chunk(&mut self, c: &Chunk) -> Result<()> {
        let (mut decoder, wm_input) = match self.decoders.remove(&c.input) {
            Some(d) => d,
            None => (self.settings.config.input.format.decoder(&DecodeOptions::default()), self.watermark.add_input()),
        };
        for (i, line) in c.lines.iter().enumerate() {
            let pos = SourcePos::line(c.name.clone(), c.first_line + i as u64);
            let raw = &c.data[line.start..line.end];
            self.summary.records += 1;
            self.summary.bytes += raw.len() as u64 + 1;
            self.seq += 1;
            let result = match line.cut_from {
                Some(len) => Err(DecodeError::new(ErrorReason::TooLong, format!("record of {len} bytes exceeds input.max_line_bytes"))),
                None => decoder.decode(raw, &pos, &mut self.events),
            };
            if let Err(e) = result {
                self.bad_record(&pos, &e, raw, line.cut_from)?;
            }
            self.dispatch_events(wm_input)?;
        }
        self.decoders.insert(c.input, (decoder, wm_input));
        if let Some(p) = &self.progress {
            p.set_position(c.bytes_read);
        }
        Ok(())
    }

    fn bad_record(&mut self, pos: &SourcePos, e: &DecodeError, raw: &[u8], cut_from: Option<u64>) -> Result<()> {
        *self.summary.bad.entry(e.reason).or_default() += 1;
        self.dead.write(pos, e, raw, cut_from)
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
        if self.in_batch >= self.settings.config.pipeline.batch_size {
            self.flush()?;
        }
        Ok(())
    }

    /// Broadcasts a day close to every shard, in stream position.
    fn check_close(&mut self) {
        if let Some(through) = self.watermark.take_close() {
            for p in &mut self.pending {
                p.push(Item::Close { seq: self.seq, through });
            }
        }
    }

    /// Sends the pending items to every worker (empty batches too: the collector waits
    /// for every worker's answer to a batch number).
    fn flush(&mut self) -> Result<()> {
        for (tx, items) in self.workers.iter().zip(self.pending.iter_mut()) {
            let batch = Batch { no: self.batch_no, items: std::mem::take(items) };
            tx.send(batch).map_err(|_| anyhow!("a shard worker stopped (see errors above)"))?;
        }
        self.batch_no += 1;
        self.in_batch = 0;
        Ok(())
    }
}
