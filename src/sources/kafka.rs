//! The Kafka source: a consumer-group member that turns every assigned partition into one
//! input of the pipeline and commits what the pipeline reports done.
//!
//! Threads: the consumer (an rdkafka `BaseConsumer`) is owned and polled by the reader
//! thread only; rebalance callbacks run inside `poll` on that thread too. So the reader
//! never blocks on the pipeline: librdkafka heartbeats on its own, but a member that does
//! not call `poll` for `max.poll.interval.ms` is put out of the group, and a revocation is
//! served only inside `poll`.
//!
//! Backpressure: messages go to the pipeline's bounded channel with `try_send`. One that
//! does not fit waits in the reader's queue, and every later message queues behind it (see
//! `Outlet`). While anything is queued, fetching of every assigned partition is paused
//! (`pause`; counted in `brevvakt_kafka_backpressure_pauses_total`, logged at info at most
//! every 10 s), the reader keeps polling (every 10 ms) and retrying the queue, and once
//! the queue is empty fetching resumes. Partitions assigned while paused are paused at once;
//! partitions assigned while fetching are resumed explicitly (librdkafka keeps an
//! application pause across unassign/assign, so a partition paused, revoked and given back
//! would otherwise never be fetched again).
//! - No record is lost, duplicated or reordered by a pause: every record `poll` returns is
//!   added to its partition's chunk, and chunks leave in order through one FIFO queue,
//!   whether fetching was paused when the record came or not. (librdkafka discards
//!   records fetched but not yet returned when a partition is paused — a version barrier —
//!   and on resume fetches again from the one after the last returned; the reader does not
//!   rely on it: a record returned after the pause just queues behind the others.) Memory
//!   stays bounded: the queue holds what was read before the pause took effect.
//! - Cost: what librdkafka had prefetched when a pause came is fetched again after the
//!   resume, so a pipeline that is always just behind makes the brokers send some records
//!   more than once (`queued.max.messages.kbytes` bounds how much).
//! - Ticks are only offered (dropped while the pipeline is busy: it is not idle); a paused
//!   reader is never idle for `idle_exit`.
//! - A revocation while paused is served: the drain sends the queue and the barrier while
//!   it receives the pipeline's commits (that channel is unbounded, so neither side waits
//!   for the other), so the queued chunks of the revoked partitions are processed and
//!   committed before they are given up.
//! - If the drain times out, or the partitions were lost (put out of the group), the
//!   revoked partitions' records not yet taken by the pipeline are discarded. That is safe:
//!   a commit (and a checkpoint) covers only the processed prefix of a partition, so the
//!   committed offset is at or before the first of them, and the next owner reads them
//!   again.
//! - On stop, the queue is sent (waiting for room) before the channel is closed.
//!
//! Guarantees:
//! - At-least-once. Offsets are never auto-committed or auto-stored. An offset is committed
//!   only when the pipeline hands back a [`CommitRequest`] for a snapshot whose records
//!   were all processed, whose alerts and dead letters the broker acknowledged and (with a
//!   state directory) whose checkpoint was written. Positions are a contiguous prefix per
//!   partition (the pipeline processes a partition in offset order), so a commit is a
//!   high-water mark. Periodic commits are asynchronous; since one can still be refused
//!   after it was queued, its offsets count as stored only once a synchronous commit (on
//!   revocation and at stop) stores them, so the final commit is never skipped.
//! - Only partitions currently assigned are committed, so a revoked partition's position
//!   never overwrites its new owner's.
//! - State follows the partition (see `state::ownership`): the instance owns the mailboxes
//!   of the partition numbers assigned to it and tells the pipeline ([`SourceMsg::Owned`]).
//!   All input topics must have the same partition count (checked at start) and be
//!   co-located: with more than one topic the default assignor is `range`, which assigns
//!   the same partition numbers of every topic to one member; with one topic it is
//!   `cooperative-sticky`, which moves the fewest partitions.
//! - Revocation (rebalance, or leaving the group): the partial and queued chunks are sent,
//!   a barrier snapshot is requested, and the callback waits for its commit (synchronous;
//!   with a state directory the partition checkpoints are written first) before the
//!   partitions are given up and their mailboxes dropped.
//! - Assignment with a state directory: a partition whose checkpoint exists (written by
//!   its previous owner, or by this instance before a restart) starts at the checkpoint's
//!   offsets, and its state is handed to the pipeline ([`SourceMsg::Restore`]). The
//!   checkpoint is written before the commit, so it is never behind the group.
//! - Keys: a record without a key, or whose key hashes (murmur2, Kafka's default
//!   partitioner) to another partition, is counted (`brevvakt_kafka_miskeyed_records_total`)
//!   and processed.
//! - Stop: when the stop flag is set (SIGINT/SIGTERM) or, with `idle_exit`, when nothing
//!   arrived for that long, the reader stops fetching, hands over what it has, and keeps
//!   committing the pipeline's final snapshots until the pipeline is done.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;

use super::{Chunk, CommitRequest, Line, SourceMsg};
use crate::decode::Format;
use crate::metrics::Metrics;
use crate::state::checkpoint::{self, Checkpoint};
use crate::state::ownership::{partition_of, Ownership};

/// Bytes per chunk before it is handed over.
const CHUNK_BYTES: usize = 1 << 18;
/// A partial chunk is handed over at least this often, so a trickle is not delayed.
const CHUNK_LINGER: Duration = Duration::from_millis(200);
/// How long one poll waits for a record.
const POLL: Duration = Duration::from_millis(100);
/// How often an idle source nudges the pipeline (periodic commits).
const TICK: Duration = Duration::from_secs(1);
/// How often a queued message is tried again (the poll timeout while paused, and while a
/// revocation drains).
const RETRY: Duration = Duration::from_millis(10);
/// Pauses and resumes are logged at info at most this often (each one at debug).
const PAUSE_LOG_EVERY: Duration = Duration::from_secs(10);

/// How to build the consumer.
pub struct KafkaSourceConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// `group.id`.
    pub group_id: String,
    /// Topics and their decoders.
    pub topics: Vec<(String, Format)>,
    /// Resolved `[kafka.properties]` (secrets already read).
    pub properties: BTreeMap<String, String>,
    /// `input.max_line_bytes`.
    pub max_record_bytes: usize,
    /// Stop when no record arrived for this long (tests, batch jobs); `None`: run until
    /// stopped.
    pub idle_exit: Option<Duration>,
    /// How long a revocation waits for its commit.
    pub drain_timeout: Duration,
    /// The (shared) state directory holding the partition checkpoints.
    pub state_dir: Option<PathBuf>,
}

/// A subscribed consumer, ready to be run on the reader thread.
pub struct KafkaSource {
    consumer: BaseConsumer<Ctx>,
    stop: Arc<AtomicBool>,
    idle_exit: Option<Duration>,
}

impl KafkaSource {
    /// Creates the consumer, checks that the topics are co-partitioned, and subscribes.
    pub fn new(cfg: KafkaSourceConfig, stop: Arc<AtomicBool>, metrics: Option<Arc<Metrics>>) -> Result<Self> {
        let mut cc = ClientConfig::new();
        let assignor = if cfg.topics.len() > 1 { "range" } else { "cooperative-sticky" };
        cc.set("partition.assignment.strategy", assignor).set("auto.offset.reset", "earliest");
        for (k, v) in &cfg.properties {
            cc.set(k, v);
        }
        cc.set("bootstrap.servers", &cfg.brokers)
            .set("group.id", &cfg.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        cc.set_log_level(RDKafkaLogLevel::Warning);
        let consumer: BaseConsumer<Ctx> = cc.create_with_context(Ctx::new(&cfg, metrics)).map_err(|e| anyhow!("cannot create the Kafka consumer: {e}"))?;
        let names: Vec<&str> = cfg.topics.iter().map(|(t, _)| t.as_str()).collect();
        consumer.context().lock().partitions = co_partitioned(&consumer, &names)?;
        consumer.subscribe(&names).map_err(|e| anyhow!("cannot subscribe to {names:?}: {e}"))?;
        Ok(KafkaSource { consumer, stop, idle_exit: cfg.idle_exit })
    }

    /// Polls until stopped (or idle, with `idle_exit`), sending chunks to `tx` and
    /// committing what comes back on `commits`; returns once the pipeline has finished
    /// (the commit channel closed) and the last commit is done.
    pub fn run(self, tx: SyncSender<SourceMsg>, commits: Receiver<CommitRequest>) {
        let c = &self.consumer;
        {
            let mut s = c.context().lock();
            s.out.connect_queued(tx);
            s.commits = Some(commits);
        }
        let mut last_record = Instant::now();
        let mut last_tick = Instant::now();
        let mut drained = false;
        while !self.stop.load(Ordering::Relaxed) {
            let (ok, wait) = {
                let mut s = c.context().lock();
                (s.serve(c), s.poll_wait())
            };
            if !ok {
                break;
            }
            let polled = c.poll(wait);
            let mut s = c.context().lock();
            let ok = match polled {
                Some(Ok(m)) => {
                    last_record = Instant::now();
                    let (topic, partition, offset) = (m.topic().to_string(), m.partition(), m.offset());
                    s.check_key(partition, m.key());
                    s.out.add(&topic, partition, offset, m.payload().unwrap_or_default())
                }
                Some(Err(KafkaError::PartitionEOF(_))) => true,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "Kafka consumer");
                    true
                }
                None => {
                    let ok = s.out.hand_over();
                    let idle = s.idle_since(last_record).map(|at| at.elapsed());
                    if self.idle_exit.zip(idle).is_some_and(|(d, idle)| idle >= d) {
                        tracing::info!("no record for the idle-exit period: input drained");
                        drained = true;
                        break;
                    }
                    ok
                }
            };
            let ok = ok && (!s.out.handover_due() || s.out.hand_over());
            let ok = ok && (last_tick.elapsed() < TICK || s.out.offer(SourceMsg::Tick));
            if last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
            }
            if !ok {
                break;
            }
        }
        // Hand over what was read, tell the pipeline to finish, and commit its last
        // snapshots until it is done.
        let commits = {
            let mut s = c.context().lock();
            s.out.hand_over();
            if drained {
                s.out.send(SourceMsg::Drained);
            }
            s.out.disconnect();
            s.commits.take()
        };
        if let Some(commits) = commits {
            let mut last = None;
            for req in commits {
                if let Some(prev) = last.replace(req) {
                    c.context().lock().commit(c, &prev, CommitMode::Async);
                }
            }
            if let Some(req) = last {
                c.context().lock().commit(c, &req, CommitMode::Sync);
            }
        }
        // Leave the group now (revocation without a pipeline: nothing to drain).
        c.unsubscribe();
        tracing::info!("Kafka consumer stopped");
    }
}

/// The partition count shared by every topic; an error names the topics that differ.
fn co_partitioned(c: &BaseConsumer<Ctx>, topics: &[&str]) -> Result<u32> {
    let mut counts = BTreeMap::new();
    for t in topics {
        let md = c.fetch_metadata(Some(t), Duration::from_secs(10)).map_err(|e| anyhow!("kafka.topics: cannot read the metadata of {t:?}: {e}"))?;
        let n = md.topics().first().map_or(0, |m| m.partitions().len());
        if n == 0 {
            return Err(anyhow!("kafka.topics: topic {t:?} does not exist (or has no partitions)"));
        }
        counts.insert(t.to_string(), n as u32);
    }
    let distinct: BTreeSet<u32> = counts.values().copied().collect();
    if distinct.len() > 1 {
        return Err(anyhow!("kafka.topics: the input topics must have the same partition count (state follows the partition, keyed by mailbox), found {counts:?}"));
    }
    Ok(distinct.into_iter().next().unwrap_or(1))
}

/// `topic/partition` → (topic, partition).
pub fn parse_input_name(name: &str) -> Option<(String, i32)> {
    let (t, p) = name.rsplit_once('/')?;
    Some((t.to_string(), p.parse().ok()?))
}

/// Turns partitions' records into the pipeline's messages: each partition is announced
/// once as an input (`topic/partition`, with its topic's decoder), and its records become
/// chunks of contiguous offsets (line = offset + 1; a gap starts a new chunk), records over
/// the limit cut and flagged. Used by the group consumer and by the replay reader.
pub(super) struct Chunker {
    formats: BTreeMap<String, Format>,
    max_record: usize,
    /// Input index of every partition seen.
    inputs: BTreeMap<(String, i32), usize>,
    announced: BTreeSet<usize>,
    /// Partial chunk per input.
    chunks: BTreeMap<usize, Chunk>,
    /// Per input, the room to reserve for its next chunk ([`Chunk::room`] of the last one).
    rooms: BTreeMap<usize, (usize, usize)>,
    last_handover: Instant,
    outlet: Outlet,
}

/// Where a [`Chunker`]'s messages go.
enum Outlet {
    /// Not connected: every send fails.
    Closed,
    /// A send waits for room in the channel (the replay reader: no group to stay in).
    Blocking(SyncSender<SourceMsg>),
    /// A send never waits: a message that does not fit waits in the queue, in order, and
    /// the queue goes first (the group reader, which must keep polling).
    Queued(SyncSender<SourceMsg>, VecDeque<SourceMsg>),
}

impl Chunker {
    /// A chunker numbering new partitions after `inputs` (the ones already known).
    pub(super) fn new(formats: BTreeMap<String, Format>, max_record: usize, inputs: BTreeMap<(String, i32), usize>) -> Self {
        Chunker { formats, max_record, inputs, announced: BTreeSet::new(), chunks: BTreeMap::new(), rooms: BTreeMap::new(), last_handover: Instant::now(), outlet: Outlet::Closed }
    }

    /// From now on, messages go to `tx`, a send waiting for room.
    pub(super) fn connect(&mut self, tx: SyncSender<SourceMsg>) {
        self.outlet = Outlet::Blocking(tx);
    }

    /// From now on, messages go to `tx`, a send never waiting: what does not fit is queued
    /// (see [`Chunker::flush`], [`Chunker::backed_up`]).
    fn connect_queued(&mut self, tx: SyncSender<SourceMsg>) {
        self.outlet = Outlet::Queued(tx, VecDeque::new());
    }

    /// Whether a pipeline is connected.
    fn is_connected(&self) -> bool {
        !matches!(self.outlet, Outlet::Closed)
    }

    /// Drops the sender (the pipeline sees the source end), after sending what is queued
    /// (waiting for room).
    pub(super) fn disconnect(&mut self) {
        if let Outlet::Queued(tx, queue) = std::mem::replace(&mut self.outlet, Outlet::Closed) {
            for msg in queue {
                if tx.send(msg).is_err() {
                    break;
                }
            }
        }
    }

    /// Sends what is queued, in order, as far as the channel has room; false when the
    /// pipeline is gone.
    fn flush(&mut self) -> bool {
        let Outlet::Queued(tx, queue) = &mut self.outlet else { return self.is_connected() };
        while let Some(msg) = queue.pop_front() {
            match tx.try_send(msg) {
                Ok(()) => {}
                Err(TrySendError::Full(msg)) => {
                    queue.push_front(msg);
                    return true;
                }
                Err(TrySendError::Disconnected(_)) => return false,
            }
        }
        true
    }

    /// Whether messages wait for the pipeline (queued mode).
    fn backed_up(&self) -> bool {
        matches!(&self.outlet, Outlet::Queued(_, queue) if !queue.is_empty())
    }

    /// Sends `msg` only if it goes through at once (a nudge such as a tick: worthless once
    /// late); false when the pipeline is gone.
    fn offer(&mut self, msg: SourceMsg) -> bool {
        match &self.outlet {
            Outlet::Queued(tx, queue) if queue.is_empty() => !matches!(tx.try_send(msg), Err(TrySendError::Disconnected(_))),
            Outlet::Queued(..) => true,
            _ => self.send(msg),
        }
    }

    /// Forgets the records of `inputs` not yet taken by the pipeline (queued chunks and
    /// partial ones); the number of records forgotten.
    fn discard(&mut self, inputs: &BTreeSet<usize>) -> usize {
        let mut records = 0;
        self.chunks.retain(|input, c| {
            let keep = !inputs.contains(input);
            records += if keep { 0 } else { c.lines.len() };
            keep
        });
        if let Outlet::Queued(_, queue) = &mut self.outlet {
            queue.retain(|m| match m {
                SourceMsg::Chunk(c) if inputs.contains(&c.input) => {
                    records += c.lines.len();
                    false
                }
                _ => true,
            });
        }
        records
    }

    /// Whether records wait in partial chunks.
    fn holds_records(&self) -> bool {
        !self.chunks.is_empty()
    }

    /// Whether the partial chunks have waited long enough to be handed over.
    pub(super) fn handover_due(&self) -> bool {
        self.last_handover.elapsed() >= CHUNK_LINGER
    }

    /// The input index of a partition already seen.
    pub(super) fn index_of(&self, topic: &str, partition: i32) -> Option<usize> {
        self.inputs.get(&(topic.to_string(), partition)).copied()
    }

    /// Sends to the pipeline (or queues, see [`Outlet`]); false when it is gone.
    pub(super) fn send(&mut self, msg: SourceMsg) -> bool {
        match &mut self.outlet {
            Outlet::Closed => false,
            Outlet::Blocking(tx) => tx.send(msg).is_ok(),
            Outlet::Queued(_, queue) => {
                queue.push_back(msg);
                self.flush()
            }
        }
    }

    /// The input index of a partition, announcing it first if new.
    pub(super) fn input(&mut self, topic: &str, partition: i32) -> Option<usize> {
        let key = (topic.to_string(), partition);
        let next = self.inputs.len();
        let idx = *self.inputs.entry(key).or_insert(next);
        if !self.announced.contains(&idx) {
            let format = self.formats.get(topic).copied().unwrap_or_default();
            if !self.send(SourceMsg::Opened { input: idx, name: format!("{topic}/{partition}"), format }) {
                return None;
            }
            self.announced.insert(idx);
        }
        Some(idx)
    }

    /// Adds one record; false when the pipeline is gone.
    pub(super) fn add(&mut self, topic: &str, partition: i32, offset: i64, payload: &[u8]) -> bool {
        let Some(idx) = self.input(topic, partition) else { return false };
        let line_no = offset as u64 + 1;
        let contiguous = self.chunks.get(&idx).is_some_and(|c| c.first_line + c.lines.len() as u64 == line_no);
        if !contiguous {
            if let Some(old) = self.chunks.remove(&idx) {
                if !self.send_chunk(old) {
                    return false;
                }
            }
            let name = crate::event::InputName::new(topic);
            let room = self.rooms.get(&idx).copied().unwrap_or_default();
            self.chunks.insert(idx, Chunk::new(idx, name, line_no, Some(partition)).with_room(room));
        }
        let chunk = self.chunks.get_mut(&idx).expect("inserted above");
        let keep = payload.len().min(self.max_record);
        let start = chunk.data.len();
        chunk.data.extend_from_slice(&payload[..keep]);
        chunk.lines.push(Line { start, end: chunk.data.len(), cut_from: (payload.len() > self.max_record).then_some(payload.len() as u64) });
        if chunk.data.len() >= CHUNK_BYTES {
            let full = self.chunks.remove(&idx).expect("present");
            return self.send_chunk(full);
        }
        true
    }

    /// Sends every partial chunk; false when the pipeline is gone.
    pub(super) fn hand_over(&mut self) -> bool {
        self.last_handover = Instant::now();
        for (_, c) in std::mem::take(&mut self.chunks) {
            if !self.send_chunk(c) {
                return false;
            }
        }
        true
    }

    /// Sends a chunk, keeping the room its input's next chunk will reserve.
    fn send_chunk(&mut self, c: Chunk) -> bool {
        self.rooms.insert(c.input, c.room(CHUNK_BYTES));
        self.send(SourceMsg::Chunk(c))
    }
}

/// The reader's state, reachable from the rebalance callback (same thread).
struct Shared {
    /// Records → inputs and chunks for the pipeline.
    out: Chunker,
    /// The partition count of every input topic.
    partitions: u32,
    /// Where partition checkpoints are.
    state_dir: Option<PathBuf>,
    /// The partitions assigned now.
    assigned: BTreeSet<(String, i32)>,
    commits: Option<Receiver<CommitRequest>>,
    next_barrier: u64,
    /// Last offset per partition a commit is known to have stored: a synchronous one that
    /// returned Ok. (An asynchronous commit returning Ok is only queued: it can still fail,
    /// so its offsets are sent again by every commit until a synchronous one stores them.)
    committed: BTreeMap<(String, i32), i64>,
    /// Last offset per partition sent in any commit (the lag metric is updated on change).
    sent: BTreeMap<(String, i32), i64>,
    drain_timeout: Duration,
    metrics: Option<Arc<Metrics>>,
    /// When partitions were last assigned.
    assigned_at: Option<Instant>,
    /// Whether fetching is paused because the pipeline is not taking records.
    backpressure: Backpressure,
}

/// The pause state of the reader's fetching.
#[derive(Default)]
struct Backpressure {
    /// When fetching was paused (`None`: fetching).
    paused_at: Option<Instant>,
    /// When fetching was last resumed.
    resumed_at: Option<Instant>,
    /// Pauses since the last one logged at info.
    unlogged: u64,
    /// When a pause was last logged at info.
    logged_at: Option<Instant>,
    /// Whether the current pause was logged at info (then its resume is too).
    logged: bool,
}

impl Shared {
    /// The partition numbers owned now.
    fn ownership(&self) -> Ownership {
        Ownership::new(self.partitions, self.assigned.iter().map(|(_, p)| *p as u32).collect())
    }

    /// Counts a rebalance callback (`assigned`, `revoked`, `lost`).
    fn count_rebalance(&self, kind: &'static str) {
        if let Some(m) = &self.metrics {
            m.count_rebalance(kind);
        }
    }

    /// Counts a record that is not keyed by a mailbox of its partition.
    fn check_key(&self, partition: i32, key: Option<&[u8]>) {
        let Some(m) = &self.metrics else { return };
        match key.map(|k| String::from_utf8_lossy(k)) {
            None => m.count_miskeyed("unkeyed"),
            Some(k) if partition_of(&k, self.partitions) != partition as u32 => m.count_miskeyed("other_partition"),
            Some(_) => {}
        }
    }

    /// New partitions: their inputs announced, their checkpoints (if any) loaded and their
    /// start offsets set in `tpl`; then the new ownership and the restored states are sent.
    fn take_assignment(&mut self, tpl: &mut TopicPartitionList) {
        let before = self.ownership();
        let keys: Vec<(String, i32)> = tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
        for key in &keys {
            tracing::info!(topic = %key.0, partition = key.1, "partition assigned");
            self.out.input(&key.0, key.1);
            self.assigned.insert(key.clone());
        }
        let own = self.ownership();
        let new: Vec<u32> = own.owned().difference(before.owned()).copied().collect();
        let restored: Vec<Checkpoint> = new.iter().filter_map(|&p| self.load_partition(p)).collect();
        for cp in &restored {
            for p in &cp.inputs {
                if let Some((t, n)) = parse_input_name(&p.name).filter(|k| keys.contains(k)) {
                    let _ = tpl.set_partition_offset(&t, n, Offset::Offset(p.lines as i64));
                }
            }
        }
        if own != before {
            self.out.send(SourceMsg::Owned(own));
        }
        for cp in restored {
            self.out.send(SourceMsg::Restore(Box::new(cp)));
        }
        self.assigned_at = Some(Instant::now());
    }

    /// The newest valid checkpoint of partition `p` in the state directory.
    fn load_partition(&self, p: u32) -> Option<Checkpoint> {
        let dir = self.state_dir.as_ref()?;
        match checkpoint::load_partition(dir, p) {
            Ok(Some(cp)) => {
                tracing::info!(partition = p, offsets = ?cp.inputs.iter().map(|i| (&i.name, i.lines)).collect::<Vec<_>>(), "partition state restored");
                Some(cp)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::error!(partition = p, error = %format!("{e:#}"), "partition checkpoint refused; the partition starts from the committed offset without state");
                None
            }
        }
    }

    /// One turn of the reader between polls: commits what the pipeline reports done, sends
    /// what waits for it, and pauses or resumes fetching accordingly; false when the
    /// pipeline finished (or failed).
    fn serve(&mut self, c: &BaseConsumer<Ctx>) -> bool {
        let ok = self.serve_commits(c) && self.out.flush();
        self.steer(c);
        ok
    }

    /// How long the next poll may wait: briefly while messages wait for the pipeline (it
    /// must not run dry while the reader sleeps); not at all while records wait in partial
    /// chunks, so that once the reader has taken everything librdkafka has fetched (the
    /// poll comes back empty) it hands them over at once instead of after the wait.
    fn poll_wait(&self) -> Duration {
        if self.out.backed_up() {
            RETRY
        } else if self.out.holds_records() {
            Duration::ZERO
        } else {
            POLL
        }
    }

    /// Pauses fetching every assigned partition while messages wait for the pipeline, and
    /// resumes once it has taken them all (acts on transitions only).
    fn steer(&mut self, c: &BaseConsumer<Ctx>) {
        match (self.out.backed_up(), self.backpressure.paused_at) {
            (true, None) => self.pause(c),
            (false, Some(since)) => self.resume(c, since),
            _ => {}
        }
    }

    /// Pauses fetching the whole assignment; counted, logged at info if due.
    fn pause(&mut self, c: &BaseConsumer<Ctx>) {
        set_fetching(c, None, true);
        if let Some(m) = &self.metrics {
            m.count_backpressure_pause();
        }
        let bp = &mut self.backpressure;
        bp.paused_at = Some(Instant::now());
        bp.unlogged += 1;
        bp.logged = bp.logged_at.is_none_or(|at| at.elapsed() >= PAUSE_LOG_EVERY);
        if bp.logged {
            tracing::info!(pauses = bp.unlogged, "the pipeline is not taking records: fetching paused, the group membership kept by polling");
            bp.logged_at = bp.paused_at;
            bp.unlogged = 0;
        } else {
            tracing::debug!("fetching paused");
        }
    }

    /// Resumes fetching the whole assignment (paused `since`), logged at info if the pause
    /// was.
    fn resume(&mut self, c: &BaseConsumer<Ctx>, since: Instant) {
        set_fetching(c, None, false);
        let bp = &mut self.backpressure;
        bp.paused_at = None;
        bp.resumed_at = Some(Instant::now());
        let paused_ms = since.elapsed().as_millis() as u64;
        if bp.logged {
            tracing::info!(paused_ms, "the pipeline takes records again: fetching resumed");
        } else {
            tracing::debug!(paused_ms, "fetching resumed");
        }
    }

    /// Newly assigned partitions follow the pause state. (librdkafka keeps a partition's
    /// application pause across unassign/assign, so a partition paused, revoked and given
    /// back later would otherwise stay paused for good.)
    fn follow_pause(&self, c: &BaseConsumer<Ctx>, tpl: &TopicPartitionList) {
        set_fetching(c, Some(tpl), self.backpressure.paused_at.is_some());
    }

    /// Since when the input counts as idle (for `idle_exit`): the later of the last record,
    /// the last assignment (joining the group takes a while and is not idleness) and the
    /// last resume; `None` while unassigned or paused (a paused reader is not drained).
    fn idle_since(&self, last_record: Instant) -> Option<Instant> {
        if self.backpressure.paused_at.is_some() {
            return None;
        }
        let at = self.assigned_at?.max(last_record);
        Some(self.backpressure.resumed_at.map_or(at, |r| r.max(at)))
    }

    /// Commits every request waiting; false when the pipeline finished (or failed).
    fn serve_commits(&mut self, c: &BaseConsumer<Ctx>) -> bool {
        loop {
            let next = match &self.commits {
                Some(rx) => rx.try_recv(),
                None => return false,
            };
            match next {
                Ok(req) => self.commit(c, &req, CommitMode::Async),
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
    }

    /// Commits the positions of the partitions still assigned that moved.
    fn commit(&mut self, c: &BaseConsumer<Ctx>, req: &CommitRequest, mode: CommitMode) {
        let assigned: BTreeSet<(String, i32)> = match c.assignment() {
            Ok(a) => a.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "Kafka assignment unknown; commit skipped");
                return;
            }
        };
        let mut tpl = TopicPartitionList::new();
        let mut moved = Vec::new();
        for p in &req.positions {
            let Some(tp) = parse_input_name(&p.name) else { continue };
            let offset = p.lines as i64;
            if p.lines == 0 || !assigned.contains(&tp) || self.committed.get(&tp) == Some(&offset) {
                continue;
            }
            if tpl.add_partition_offset(&tp.0, tp.1, Offset::Offset(offset)).is_ok() {
                moved.push((tp, offset));
            }
        }
        if moved.is_empty() {
            return;
        }
        match c.commit(&tpl, mode) {
            Ok(()) => {
                for (tp, offset) in moved {
                    tracing::debug!(topic = %tp.0, partition = tp.1, offset, sync = matches!(mode, CommitMode::Sync), "committed");
                    if self.sent.insert(tp.clone(), offset) != Some(offset) {
                        self.report_lag(c, &tp, offset);
                    }
                    if matches!(mode, CommitMode::Sync) {
                        self.committed.insert(tp, offset);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "Kafka offset commit failed (the next commit covers it)"),
        }
    }

    fn report_lag(&self, c: &BaseConsumer<Ctx>, tp: &(String, i32), offset: i64) {
        if let Some(m) = &self.metrics {
            let lag = c.fetch_watermarks(&tp.0, tp.1, Duration::from_millis(200)).map_or(0, |(_, high)| (high - offset).max(0));
            m.set_partition(&tp.0, tp.1, lag, offset);
        }
    }

    /// Before partitions are revoked: everything read is handed over (queued messages
    /// included), and a barrier snapshot is taken (checkpointing every owned partition) and
    /// committed synchronously. Commits are received while queued messages wait for room,
    /// so neither side waits for the other.
    fn drain_for_revoke(&mut self, c: &BaseConsumer<Ctx>) {
        if !self.out.is_connected() || !self.out.hand_over() {
            return;
        }
        let id = self.next_barrier;
        self.next_barrier += 1;
        if !self.out.send(SourceMsg::Barrier(id)) {
            return;
        }
        let deadline = Instant::now() + self.drain_timeout;
        while let Some(rx) = &self.commits {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(if self.out.backed_up() { left.min(RETRY) } else { left }) {
                Ok(req) => {
                    let ours = req.barrier == Some(id);
                    self.commit(c, &req, if ours { CommitMode::Sync } else { CommitMode::Async });
                    if ours {
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) if left.is_zero() => {
                    tracing::warn!("revocation: the pipeline did not finish in time; the uncommitted records will be read again");
                    break;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if !self.out.flush() {
                break;
            }
        }
    }

    /// Gives up revoked partitions: their inputs end, and the pipeline drops their
    /// mailboxes. Their records the pipeline has not taken (a drain that timed out, or
    /// partitions lost) are forgotten: never processed, so never committed, so the next
    /// owner reads them again from the committed offset (or the checkpoint, written before
    /// it).
    fn release(&mut self, revoked: &TopicPartitionList) {
        let before = self.ownership();
        let inputs: BTreeSet<usize> = revoked.elements().iter().filter_map(|e| self.out.index_of(e.topic(), e.partition())).collect();
        let forgotten = self.out.discard(&inputs);
        if forgotten > 0 {
            tracing::info!(records = forgotten, "records of revoked partitions not yet processed are left to their next owner");
        }
        for e in revoked.elements() {
            let key = (e.topic().to_string(), e.partition());
            self.assigned.remove(&key);
            if let Some(idx) = self.out.index_of(&key.0, key.1) {
                self.out.announced.remove(&idx);
                self.committed.remove(&key);
                self.sent.remove(&key);
                self.out.send(SourceMsg::End { input: idx, error: None });
            }
        }
        let own = self.ownership();
        if own != before {
            self.out.send(SourceMsg::Owned(own));
        }
    }
}

/// Pauses (or resumes) fetching `tpl`, or the whole assignment.
fn set_fetching(c: &BaseConsumer<Ctx>, tpl: Option<&TopicPartitionList>, paused: bool) {
    let assignment;
    let tpl = match tpl {
        Some(t) => t,
        None => match c.assignment() {
            Ok(a) => {
                assignment = a;
                &assignment
            }
            Err(e) => return tracing::warn!(error = %e, "Kafka assignment unknown; fetching not paused or resumed"),
        },
    };
    let r = if paused { c.pause(tpl) } else { c.resume(tpl) };
    if let Err(e) = r {
        tracing::warn!(error = %e, paused, "Kafka pause/resume failed");
    }
}

/// The consumer context: rebalance handling.
pub struct Ctx {
    shared: Mutex<Shared>,
}

impl Ctx {
    fn new(cfg: &KafkaSourceConfig, metrics: Option<Arc<Metrics>>) -> Ctx {
        let shared = Shared {
            out: Chunker::new(cfg.topics.iter().cloned().collect(), cfg.max_record_bytes, BTreeMap::new()),
            partitions: 1,
            state_dir: cfg.state_dir.clone(),
            assigned: BTreeSet::new(),
            commits: None,
            next_barrier: 0,
            committed: BTreeMap::new(),
            sent: BTreeMap::new(),
            drain_timeout: cfg.drain_timeout,
            metrics,
            assigned_at: None,
            backpressure: Backpressure::default(),
        };
        Ctx { shared: Mutex::new(shared) }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ClientContext for Ctx {}

impl ConsumerContext for Ctx {
    fn rebalance(&self, c: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let cooperative = matches!(c.rebalance_protocol(), RebalanceProtocol::Cooperative);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let mut s = self.lock();
                s.count_rebalance("assigned");
                s.take_assignment(tpl);
                let r = if cooperative { c.incremental_assign(tpl) } else { c.assign(tpl) };
                match r {
                    Ok(()) => s.follow_pause(c, tpl),
                    Err(e) => tracing::error!(error = %e, "Kafka assignment failed"),
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                for e in tpl.elements() {
                    tracing::info!(topic = e.topic(), partition = e.partition(), "partition revoked");
                }
                let mut s = self.lock();
                let lost = c.assignment_lost();
                s.count_rebalance(if lost { "lost" } else { "revoked" });
                if !lost {
                    s.drain_for_revoke(c);
                }
                s.release(tpl);
                drop(s);
                let r = if cooperative { c.incremental_unassign(tpl) } else { c.unassign() };
                if let Err(e) = r {
                    tracing::warn!(error = %e, "Kafka unassignment failed");
                }
            }
            other => tracing::error!(error = ?other, "Kafka rebalance error"),
        }
    }
}

/// The chunking, and the reader under backpressure against librdkafka's mock cluster
/// (in-process; group membership, `max.poll.interval.ms` and rebalances are real
/// librdkafka behaviour) with a stand-in pipeline that can be stalled.
#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc::{channel, sync_channel, Sender};
    use std::thread;

    const TOPIC: &str = "mail-events";
    const PAUSES: &str = "brevvakt_kafka_backpressure_pauses_total";
    /// Records per partition, of `RECORD_BYTES` each: a few records per chunk, so many
    /// chunks per partition.
    const RECORDS: i64 = 40;
    const RECORD_BYTES: usize = 100_000;

    /// `(offset, payload)` per partition.
    type Records = BTreeMap<i32, Vec<(i64, String)>>;

    /// A mock cluster whose topic has `partitions` partitions of [`RECORDS`] records each;
    /// the records.
    fn loaded_cluster(partitions: i32) -> (MockCluster<'static, DefaultProducerContext>, Records) {
        let c = MockCluster::new(1).unwrap();
        c.create_topic(TOPIC, partitions, 1).unwrap();
        // One record per batch: a fetch (see `source`) then brings one record per partition.
        let p: BaseProducer = ClientConfig::new().set("bootstrap.servers", c.bootstrap_servers()).set("batch.num.messages", "1").create().unwrap();
        let mut produced = Records::new();
        for partition in 0..partitions {
            for offset in 0..RECORDS {
                let payload = format!("{partition}-{offset}-{}", "x".repeat(RECORD_BYTES));
                p.send(BaseRecord::<(), str>::to(TOPIC).partition(partition).payload(&payload)).unwrap();
                produced.entry(partition).or_default().push((offset, payload));
            }
            p.flush(Duration::from_secs(10)).unwrap();
        }
        (c, produced)
    }

    /// Group-membership timings short enough for a test: a member that does not poll for
    /// `max_poll` is put out of the group. (The session timeout must outlast the mock
    /// coordinator's 3 s initial rebalance delay, or the joining member is dropped for
    /// silence; the poll interval may not be shorter than it.)
    fn membership(max_poll: Duration) -> BTreeMap<String, String> {
        let ms = max_poll.as_millis().to_string();
        [("session.timeout.ms", ms.clone()), ("heartbeat.interval.ms", "200".into()), ("max.poll.interval.ms", ms)].into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// The reader, and the flag that stops it. A fetch brings about one record
    /// per partition, so the partitions' records arrive interleaved and every partition has
    /// records read (handed over or queued) when fetching is paused. `instance`: its
    /// `group.instance.id` (see [`JOINING_MEMBER`]).
    fn source(c: &MockCluster<'static, DefaultProducerContext>, max_poll: Duration, metrics: &Arc<Metrics>, instance: Option<&str>) -> (KafkaSource, Arc<AtomicBool>) {
        let mut properties = membership(max_poll);
        properties.insert("max.partition.fetch.bytes".into(), (RECORD_BYTES + 1000).to_string());
        if let Some(id) = instance {
            properties.insert("group.instance.id".into(), id.into());
        }
        let cfg = KafkaSourceConfig {
            brokers: c.bootstrap_servers(),
            group_id: "brevvakt-backpressure".into(),
            topics: vec![(TOPIC.into(), Format::Normalized)],
            properties,
            max_record_bytes: 1 << 20,
            idle_exit: None,
            drain_timeout: Duration::from_secs(30),
            state_dir: None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        (KafkaSource::new(cfg, stop.clone(), Some(metrics.clone())).unwrap(), stop)
    }

    /// The value of a counter series (`name` or `name{labels}`); 0 when absent.
    fn counted(m: &Metrics, series: &str) -> u64 {
        m.render().lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse::<f64>().ok()).map_or(0, |v| v as u64)
    }

    fn rebalances(m: &Metrics, kind: &str) -> u64 {
        counted(m, &format!("brevvakt_kafka_rebalances_total{{kind=\"{kind}\"}}"))
    }

    /// Polls `done` until it holds; panics with `what` after `limit`.
    fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !done() {
            assert!(Instant::now() < deadline, "timed out after {limit:?}: {what}");
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// A stand-in pipeline, on its own thread.
    struct Pipeline {
        /// While false, nothing is taken from the channel.
        open: Arc<AtomicBool>,
        /// Records taken so far.
        taken: Arc<AtomicUsize>,
        /// Its records per partition once the source is done.
        done: Receiver<Records>,
    }

    /// Starts a pipeline taking the reader's messages from `rx` once opened (waiting `pace`
    /// after each): it keeps the records per partition, answers every barrier and tick with
    /// the positions taken so far (as the real one does once they are processed, and every
    /// commit interval), and hands back its final positions when the source ends.
    /// `stall_at`: 0, stalled from the start; n, open from the start until it has taken
    /// records of n partitions, then stalled (closed) until opened again.
    fn pipeline(rx: Receiver<SourceMsg>, commits: Sender<CommitRequest>, pace: Duration, stall_at: usize) -> Pipeline {
        let (open, taken, (done_tx, done)) = (Arc::new(AtomicBool::new(stall_at > 0)), Arc::new(AtomicUsize::new(0)), channel());
        let (gate, count) = (open.clone(), taken.clone());
        thread::spawn(move || {
            let (mut records, mut positions, mut stall_at) = (Records::new(), BTreeMap::<String, u64>::new(), stall_at);
            let answer = |positions: &BTreeMap<String, u64>, barrier| {
                let positions = positions.iter().map(|(name, &lines)| checkpoint::InputPosition { name: name.clone(), lines, done: false }).collect();
                let _ = commits.send(CommitRequest { positions, barrier });
            };
            loop {
                if !gate.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(5));
                    continue;
                }
                match rx.recv() {
                    Ok(SourceMsg::Chunk(c)) => {
                        let partition = c.partition.expect("a Kafka chunk");
                        let mine = records.entry(partition).or_default();
                        for (i, l) in c.lines.iter().enumerate() {
                            mine.push((c.first_line as i64 - 1 + i as i64, String::from_utf8_lossy(&c.data[l.start..l.end]).into_owned()));
                        }
                        count.fetch_add(c.lines.len(), Ordering::SeqCst);
                        positions.insert(format!("{}/{partition}", c.name), c.first_line - 1 + c.lines.len() as u64);
                        if records.len() == stall_at && std::mem::take(&mut stall_at) > 0 {
                            gate.store(false, Ordering::SeqCst);
                        }
                    }
                    Ok(SourceMsg::Barrier(id)) => answer(&positions, Some(id)),
                    Ok(SourceMsg::Tick) => answer(&positions, None),
                    Ok(_) => {}
                    Err(_) => break,
                }
                thread::sleep(pace);
            }
            answer(&positions, None);
            let _ = done_tx.send(records);
        });
        Pipeline { open, taken, done }
    }

    /// The reader on its own thread, sending to a channel of 8 messages (as the real
    /// pipeline's: a few chunks, so fetching is paused in the middle of the records), and a
    /// stalled pipeline taking them.
    fn start(source: KafkaSource, pace: Duration, stall_at: usize) -> (Pipeline, thread::JoinHandle<()>) {
        let (tx, rx) = sync_channel(8);
        let (commit_tx, commit_rx) = channel();
        let pipe = pipeline(rx, commit_tx, pace, stall_at);
        (pipe, thread::spawn(move || source.run(tx, commit_rx)))
    }

    /// Stops the reader; its pipeline's records once both have ended.
    fn finish(pipe: Pipeline, reader: thread::JoinHandle<()>, stop: &AtomicBool) -> Records {
        stop.store(true, Ordering::SeqCst);
        let records = pipe.done.recv_timeout(Duration::from_secs(60)).expect("the reader stops and the pipeline ends");
        reader.join().unwrap();
        records
    }

    #[test]
    fn a_slow_pipeline_pauses_the_partitions_and_the_member_stays_in_the_group() {
        let (c, produced) = loaded_cluster(2);
        let max_poll = Duration::from_secs(4);
        let metrics = Arc::new(Metrics::new());
        let (source, stop) = source(&c, max_poll, &metrics, None);
        let (pipe, reader) = start(source, Duration::from_millis(20), 0);
        wait_until(Duration::from_secs(30), "the reader pauses fetching", || counted(&metrics, PAUSES) > 0);
        // Stalled for twice the poll interval: a reader blocked on the pipeline would be put
        // out of the group.
        thread::sleep(max_poll * 2);
        pipe.open.store(true, Ordering::SeqCst);
        let total = produced.values().map(Vec::len).sum::<usize>();
        wait_until(Duration::from_secs(60), "the pipeline takes every record", || pipe.taken.load(Ordering::SeqCst) >= total);
        let (assigned, revoked, lost) = (rebalances(&metrics, "assigned"), rebalances(&metrics, "revoked"), rebalances(&metrics, "lost"));
        let pauses = counted(&metrics, PAUSES);
        let got = finish(pipe, reader, &stop);
        assert_eq!((assigned, revoked, lost), (1, 0, 0), "one assignment, never revoked or lost: the member stayed in the group");
        assert!(pauses > 1, "paused while stalled, and again while the pipeline was slow: {pauses}");
        for (partition, want) in &produced {
            let have = got.get(partition).map_or(&[][..], Vec::as_slice);
            assert_eq!(have.len(), want.len(), "partition {partition}: every record exactly once");
            assert!(have == want.as_slice(), "partition {partition}: the records in offset order");
        }
    }

    /// A second member of the group (a plain consumer) on its own thread.
    struct Member {
        /// What it read, per partition.
        records: Arc<Mutex<Records>>,
        /// Whether it has been given partitions.
        assigned: Arc<AtomicBool>,
        stop: Arc<AtomicBool>,
        thread: thread::JoinHandle<()>,
    }

    /// The `group.instance.id`s of the two members of the hand-over test. The mock
    /// coordinator elects the member with the smallest one leader (without them, the first
    /// to join: the paused member), and it ends a SyncGroup round as soon as the leader's
    /// request brings every member's assignment: a follower whose SyncGroup comes later is
    /// refused (`INVALID_REQUEST`) and rejoins at once, which starts the next rebalance
    /// while the paused member serves its revocation, and the mock refuses an offset commit
    /// while the group is joining (`REBALANCE_IN_PROGRESS`; a broker accepts one from the
    /// current generation). The revocation's commit then fails, the partition moves with
    /// an older committed offset, and the second member reads again what the first one took
    /// (at-least-once, but not the exact hand-over the test checks). With the joining member
    /// the leader, the paused member's revocation comes from a round every member has
    /// synced, so nothing restarts the rebalance before it has committed and rejoined.
    const JOINING_MEMBER: &str = "a-joining-member";
    const PAUSED_MEMBER: &str = "b-paused-member";

    fn second_member(c: &MockCluster<'static, DefaultProducerContext>, max_poll: Duration) -> Member {
        let mut cc = ClientConfig::new();
        cc.set("bootstrap.servers", c.bootstrap_servers()).set("group.id", "brevvakt-backpressure").set("partition.assignment.strategy", "cooperative-sticky").set("enable.auto.commit", "false").set("auto.offset.reset", "earliest");
        cc.set("group.instance.id", JOINING_MEMBER);
        for (k, v) in membership(max_poll) {
            cc.set(k, v);
        }
        let consumer: BaseConsumer = cc.create().unwrap();
        consumer.subscribe(&[TOPIC]).unwrap();
        let (records, assigned, stop) = (Arc::new(Mutex::new(Records::new())), Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let (mine, given, done) = (records.clone(), assigned.clone(), stop.clone());
        let thread = thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                if let Some(Ok(m)) = consumer.poll(POLL) {
                    let payload = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                    mine.lock().unwrap().entry(m.partition()).or_default().push((m.offset(), payload));
                }
                given.store(consumer.assignment().is_ok_and(|a| a.count() > 0), Ordering::SeqCst);
            }
        });
        Member { records, assigned, stop, thread }
    }

    #[test]
    fn a_member_joining_while_the_pipeline_is_stalled_gets_its_partitions_and_every_record_is_read_once() {
        let (c, produced) = loaded_cluster(2);
        let max_poll = Duration::from_secs(4);
        let metrics = Arc::new(Metrics::new());
        let (source, stop) = source(&c, max_poll, &metrics, Some(PAUSED_MEMBER));
        // The pipeline stalls once it has taken records of both partitions: whichever one
        // moves, the first member has read records of it. (Stalled from the start, the
        // reader may fill the channel with one partition's records before the other's first
        // fetch, and then give up a partition it never read.)
        let (pipe, reader) = start(source, Duration::ZERO, 2);
        wait_until(Duration::from_secs(30), "the pipeline stalls and the reader pauses fetching", || !pipe.open.load(Ordering::SeqCst) && counted(&metrics, PAUSES) > 0);
        let second = second_member(&c, max_poll);
        // The revocation reaches the first member while fetching is paused and the pipeline
        // stalled: it is served (the callback runs) instead of waiting behind a send.
        wait_until(Duration::from_secs(30), "the paused member is asked to give up a partition", || rebalances(&metrics, "revoked") > 0);
        pipe.open.store(true, Ordering::SeqCst);
        wait_until(Duration::from_secs(30), "the second member is given the partition", || second.assigned.load(Ordering::SeqCst));
        let total = produced.values().map(Vec::len).sum::<usize>();
        let read_by_second = || second.records.lock().unwrap().values().map(Vec::len).sum::<usize>();
        wait_until(Duration::from_secs(60), "every record is read by one member or the other", || pipe.taken.load(Ordering::SeqCst) + read_by_second() >= total);
        let lost = rebalances(&metrics, "lost");
        second.stop.store(true, Ordering::SeqCst);
        second.thread.join().unwrap();
        let first = finish(pipe, reader, &stop);
        assert_eq!(lost, 0, "the first member was never put out of the group");
        let second = second.records.lock().unwrap().clone();
        let moved: Vec<i32> = second.keys().copied().collect();
        let spans = |m: &Records| m.iter().map(|(p, r)| (*p, r.first().map(|x| x.0), r.len())).collect::<Vec<_>>();
        assert_eq!(moved.len(), 1, "one of the two partitions moved to the second member: (partition, first offset, records) first {:?}, second {:?}", spans(&first), spans(&second));
        assert!(first.get(&moved[0]).is_some_and(|r| !r.is_empty()), "the first member had read records of the partition it gave up");
        for (partition, want) in &produced {
            let both: Vec<(i64, String)> = [&first, &second].iter().flat_map(|m| m.get(partition).cloned().unwrap_or_default()).collect();
            let offsets = |m: &Records| m.get(partition).map(|r| r.iter().map(|x| x.0).collect::<Vec<_>>()).unwrap_or_default();
            assert_eq!(both.len(), want.len(), "partition {partition}: every record exactly once (the first member's, then the second's from its commit): first {:?}, second {:?}", offsets(&first), offsets(&second));
            assert!(both == *want, "partition {partition}: in offset order across the hand-over");
        }
    }

    #[test]
    fn a_full_channel_queues_in_order_and_a_revoked_partitions_queued_records_can_be_forgotten() {
        let (tx, rx) = sync_channel(1);
        let mut s = Chunker::new([("t".to_string(), Format::Syslog)].into_iter().collect(), 1 << 20, BTreeMap::new());
        s.connect_queued(tx);
        // Partition 1 has a gap (a second chunk); the channel takes only the first message.
        assert!(s.add("t", 0, 0, b"a0") && s.add("t", 1, 0, b"b0") && s.add("t", 0, 1, b"a1") && s.add("t", 1, 5, b"b5") && s.hand_over());
        assert!(s.backed_up(), "nothing waited for room");
        assert_eq!(s.discard(&BTreeSet::from([1])), 2, "partition 1's two queued records are forgotten");
        let mut got = Vec::new();
        while let Ok(m) = rx.try_recv() {
            got.push(m);
            assert!(s.flush());
        }
        assert!(!s.backed_up());
        let names: Vec<String> = got.iter().map(|m| match m {
            SourceMsg::Opened { name, .. } => name.clone(),
            SourceMsg::Chunk(c) => format!("{}/{}@{}+{}", c.name, c.input, c.first_line, c.lines.len()),
            other => panic!("unexpected {other:?}"),
        }).collect();
        assert_eq!(names, ["t/0", "t/1", "t/0@1+2"], "in order, partition 1 announced but its records gone");
    }

    #[test]
    fn input_names_are_topic_slash_partition() {
        assert_eq!(parse_input_name("mail-events/2"), Some(("mail-events".into(), 2)));
        assert_eq!(parse_input_name("logs/mail.log"), None);
        assert_eq!(parse_input_name("-"), None);
    }

    #[test]
    fn records_become_contiguous_chunks_with_offset_plus_one_as_line() {
        let (tx, rx) = sync_channel(16);
        let mut s = Chunker::new([("t".to_string(), Format::Syslog)].into_iter().collect(), 4, BTreeMap::new());
        s.connect(tx);
        assert!(s.add("t", 1, 10, b"ab") && s.add("t", 1, 11, b"toolong") && s.add("t", 1, 13, b"c") && s.hand_over());
        let msgs: Vec<SourceMsg> = rx.try_iter().collect();
        assert!(matches!(&msgs[0], SourceMsg::Opened { input: 0, name, format: Format::Syslog } if name == "t/1"));
        let SourceMsg::Chunk(a) = &msgs[1] else { panic!() };
        assert_eq!((a.first_line, a.lines.len(), a.partition), (11, 2, Some(1)));
        assert_eq!(a.lines[1].cut_from, Some(7), "over the limit: cut and flagged");
        let SourceMsg::Chunk(b) = &msgs[2] else { panic!() };
        assert_eq!(b.first_line, 14, "a gap in the offsets starts a new chunk");
    }

    /// An asynchronous commit returning Ok is only queued, and the broker may still refuse
    /// it: a synchronous commit at the same offset (at shutdown or revocation) is sent all
    /// the same, so the offset is stored and the next run does not read those records again.
    #[test]
    fn a_synchronous_commit_is_sent_even_when_an_asynchronous_one_at_that_offset_was_refused() {
        use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr as Err};
        let (c, _) = loaded_cluster(1);
        let cfg = KafkaSourceConfig {
            brokers: c.bootstrap_servers(),
            group_id: "brevvakt-refused-commit".into(),
            topics: vec![(TOPIC.into(), Format::Normalized)],
            properties: BTreeMap::new(),
            max_record_bytes: 1 << 20,
            idle_exit: None,
            drain_timeout: Duration::from_secs(5),
            state_dir: None,
        };
        let consumer: BaseConsumer<Ctx> = ClientConfig::new()
            .set("bootstrap.servers", c.bootstrap_servers())
            .set("group.id", &cfg.group_id)
            .set("enable.auto.commit", "false")
            .create_with_context(Ctx::new(&cfg, None))
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(TOPIC, 0);
        consumer.assign(&tpl).unwrap();
        let stored = || consumer.committed_offsets(tpl.clone(), Duration::from_secs(5)).unwrap().find_partition(TOPIC, 0).map(|e| e.offset());
        let req = CommitRequest { positions: vec![crate::state::checkpoint::InputPosition { name: format!("{TOPIC}/0"), lines: 5, done: false }], barrier: None };
        c.request_errors(RDKafkaApiKey::OffsetCommit, &[Err::RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE]);
        consumer.context().lock().commit(&consumer, &req, CommitMode::Async);
        for _ in 0..25 {
            consumer.poll(Duration::from_millis(20));
        }
        assert_eq!(stored(), Some(Offset::Invalid), "the broker refused the asynchronous commit");
        consumer.context().lock().commit(&consumer, &req, CommitMode::Sync);
        assert_eq!(stored(), Some(Offset::Offset(5)), "the synchronous commit stored the offset after all");
    }
}
