//! Kafka replay (`brevvakt replay --kafka-topic T --from T0 [--to T1]`): reads topics from a
//! point in time up to where they ended when the replay started, outside any consumer group.
//!
//! Threads: the consumer is owned and polled by the reader thread only.
//!
//! Guarantees:
//! - Nothing is committed and no group is joined: partitions are `assign`ed, never
//!   subscribed (librdkafka needs a `group.id` for that, but never contacts the group), so a
//!   replay cannot move the offsets of a live `run`.
//! - Bounded: every partition is read from its start offset up to its high watermark taken
//!   at start (exclusive), so the replay ends by itself while producers keep writing.
//! - Start: without `from`, the partition's low watermark; with `from`, the broker's answer
//!   to `offsets_for_times(from)`, i.e. the first offset whose record timestamp is at or after
//!   `from`. A partition with no such record below its high watermark is not read at all
//!   (it is not an input). Leading records whose timestamp is still before `from` are skipped
//!   too, so a broker that answers an earlier offset (tansu answers 0) costs reading, never
//!   changes what is replayed.
//! - `to`: a partition stops at its first record with a timestamp after `to`; that record and
//!   the rest of the partition are not read. A record without a timestamp counts as in range.
//! - Each partition read is one input of the pipeline, as in `run` (`topic/partition`, line
//!   = offset + 1, the topic's decoder): all are announced before the first record, so each
//!   holds the watermark from the start, and each ends with [`SourceMsg::End`] once read. A
//!   partition that makes no progress for `timeout` ends with an error instead of hanging.

use std::collections::BTreeMap;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use chrono::{DateTime, Utc};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, DefaultConsumerContext};
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::kafka::Chunker;
use super::SourceMsg;
use crate::decode::Format;

/// How long the reader waits on the consumer when no partition has anything.
const WAIT: Duration = Duration::from_millis(10);
/// Records taken from one partition before the next partition's turn.
const TURN: usize = 512;

/// What to replay.
pub struct KafkaReplayConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// `group.id` (required by librdkafka for `assign`; never joined, nothing committed).
    pub group_id: String,
    /// Topics and their decoders.
    pub topics: Vec<(String, Format)>,
    /// Resolved `[kafka.properties]` (secrets already read).
    pub properties: BTreeMap<String, String>,
    /// `input.max_line_bytes`.
    pub max_record_bytes: usize,
    /// Start every partition at its first record with a timestamp at or after this.
    pub from: Option<DateTime<Utc>>,
    /// Stop every partition at its first record with a timestamp after this.
    pub to: Option<DateTime<Utc>>,
    /// Limit of each request at start, and of a partition without progress.
    pub timeout: Duration,
}

/// The offsets one partition is replayed over: `start..end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRange {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// First offset read.
    pub start: i64,
    /// The high watermark at start: the first offset not read.
    pub end: i64,
}

/// The range of a partition with watermarks `(low, high)`, given the broker's answer to the
/// timestamp query (`None`: no `from`, start at the beginning); `None` when there is nothing
/// to read.
pub fn range_of(topic: &str, partition: i32, (low, high): (i64, i64), seek: Option<Offset>) -> Option<PartitionRange> {
    let start = match seek {
        None => low,
        Some(Offset::Offset(o)) => o.max(low),
        // `End`: no record at or after the time.
        Some(_) => return None,
    };
    (start < high).then(|| PartitionRange { topic: topic.to_string(), partition, start, end: high })
}

/// A consumer with its partition ranges, ready to be run on the reader thread.
pub struct KafkaReplay {
    consumer: Arc<BaseConsumer>,
    ranges: Vec<PartitionRange>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    timeout: Duration,
    out: Chunker,
}

impl KafkaReplay {
    /// Connects and fixes every partition's range now (the high watermarks at start); fails
    /// with a clear message when a topic does not exist or the brokers do not answer.
    pub fn new(cfg: KafkaReplayConfig) -> Result<Self> {
        let consumer = Arc::new(consumer(&cfg)?);
        let mut ranges = Vec::new();
        for (topic, _) in &cfg.topics {
            ranges.extend(plan_topic(&consumer, topic, cfg.from, cfg.timeout)?);
        }
        Ok(Self::with_ranges(consumer, ranges, &cfg))
    }

    /// The replay of exactly `ranges` (the ranges are not checked against the broker).
    fn with_ranges(consumer: Arc<BaseConsumer>, ranges: Vec<PartitionRange>, cfg: &KafkaReplayConfig) -> Self {
        let out = Chunker::new(cfg.topics.iter().cloned().collect(), cfg.max_record_bytes, BTreeMap::new());
        let (from_ms, to_ms) = (cfg.from.map(|t| t.timestamp_millis()), cfg.to.map(|t| t.timestamp_millis()));
        KafkaReplay { consumer, ranges, from_ms, to_ms, timeout: cfg.timeout, out }
    }

    /// The partitions that will be read, with their offsets.
    pub fn ranges(&self) -> &[PartitionRange] {
        &self.ranges
    }

    /// Reads every range to its end, sending chunks to `tx`, and ends each partition's
    /// input; returns when all are read (or the pipeline is gone).
    pub fn run(mut self, tx: SyncSender<SourceMsg>) {
        self.out.connect(tx);
        let mut reads = Vec::new();
        for r in std::mem::take(&mut self.ranges) {
            let Some(input) = self.out.input(&r.topic, r.partition) else { return };
            reads.push(Read { range: r, input, queue: None, skipping: self.from_ms.is_some(), records: 0, skipped: 0, last: Instant::now(), ended: None });
        }
        if let Err(e) = self.assign(&mut reads) {
            for read in reads {
                self.out.send(SourceMsg::End { input: read.input, error: Some(e.to_string()) });
            }
            return;
        }
        while !reads.is_empty() {
            let Some(progress) = self.round(&mut reads) else { return };
            let (done, open): (Vec<Read>, Vec<Read>) = reads.into_iter().partition(|r| r.outcome(self.timeout).is_some());
            reads = open;
            for read in done {
                if !self.finish(read) {
                    return;
                }
            }
            if !progress && self.main_queue(&mut reads, WAIT).is_none() {
                return;
            }
            if self.out.handover_due() && !self.out.hand_over() {
                return;
            }
        }
        self.out.hand_over();
    }

    /// Assigns every range at its start offset and gives each its own queue (so the end of
    /// a partition is told apart from the same partition number of another topic).
    fn assign(&self, reads: &mut [Read]) -> Result<()> {
        if reads.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for r in reads.iter() {
            tpl.add_partition_offset(&r.range.topic, r.range.partition, Offset::Offset(r.range.start))?;
        }
        self.consumer.assign(&tpl).map_err(|e| anyhow!("cannot assign the partitions to replay: {e}"))?;
        for r in reads.iter_mut() {
            r.queue = Some(self.consumer.split_partition_queue(&r.range.topic, r.range.partition).ok_or_else(|| anyhow!("no queue for {}/{}", r.range.topic, r.range.partition))?);
        }
        Ok(())
    }

    /// One turn for every partition (records that reached the consumer's own queue before
    /// the split first); `Some(progress)`, or `None` when the pipeline is gone.
    fn round(&mut self, reads: &mut [Read]) -> Option<bool> {
        let mut progress = self.main_queue(reads, Duration::ZERO)?;
        for read in reads.iter_mut() {
            let Some(queue) = read.queue.take() else { continue };
            let mut taken = 0;
            while taken < TURN && read.ended.is_none() {
                match queue.poll(Duration::ZERO) {
                    Some(polled) => {
                        if !self.take(read, polled) {
                            return None;
                        }
                        taken += 1;
                    }
                    None => break,
                }
            }
            progress |= taken > 0;
            read.queue = Some(queue);
        }
        Some(progress)
    }

    /// Serves the consumer's own queue (callbacks, and records fetched before the split)
    /// for up to `wait`; `Some(whether anything came)`, or `None` when the pipeline is gone.
    fn main_queue(&mut self, reads: &mut [Read], wait: Duration) -> Option<bool> {
        let consumer = self.consumer.clone();
        let mut any = false;
        while let Some(polled) = consumer.poll(if any { Duration::ZERO } else { wait }) {
            match polled {
                Ok(m) => {
                    let read = reads.iter_mut().find(|r| r.range.topic == m.topic() && r.range.partition == m.partition());
                    if read.is_some_and(|read| !self.take(read, Ok(m))) {
                        return None;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "Kafka replay consumer"),
            }
            any = true;
        }
        Some(any)
    }

    /// Takes one polled item of `read`'s partition; false when the pipeline is gone.
    fn take(&mut self, read: &mut Read, polled: Result<BorrowedMessage<'_>, KafkaError>) -> bool {
        let m = match polled {
            Ok(m) => m,
            Err(KafkaError::PartitionEOF(_)) => {
                read.last = Instant::now();
                read.ended = Some(Ended::Complete);
                return true;
            }
            Err(e) => {
                tracing::warn!(topic = %read.range.topic, partition = read.range.partition, error = %e, "Kafka replay fetch");
                return true;
            }
        };
        read.last = Instant::now();
        let (offset, ts) = (m.offset(), m.timestamp().to_millis());
        if read.ended.is_some() || offset < read.range.start {
            return true;
        }
        if offset >= read.range.end || ts.zip(self.to_ms).is_some_and(|(t, to)| t > to) {
            read.ended = Some(Ended::Complete);
            return true;
        }
        if read.skipping && ts.zip(self.from_ms).is_some_and(|(t, from)| t < from) {
            read.skipped += 1;
            return true;
        }
        read.skipping = false;
        read.records += 1;
        if offset + 1 >= read.range.end {
            read.ended = Some(Ended::Complete);
        }
        self.out.add(&read.range.topic, read.range.partition, offset, m.payload().unwrap_or_default())
    }

    /// Stops fetching a read partition and ends its input; false when the pipeline is gone.
    fn finish(&mut self, read: Read) -> bool {
        let r = &read.range;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&r.topic, r.partition);
        if let Err(e) = self.consumer.pause(&tpl) {
            tracing::warn!(topic = %r.topic, partition = r.partition, error = %e, "cannot pause a replayed partition");
        }
        let error = match read.outcome(self.timeout) {
            Some(Ended::Stalled) => Some(format!("{}/{}: nothing arrived for {:?} before offset {} (the high watermark at start); not read to the end", r.topic, r.partition, self.timeout, r.end)),
            _ => None,
        };
        tracing::info!(topic = %r.topic, partition = r.partition, records = read.records, skipped_before_from = read.skipped, complete = error.is_none(), "partition replayed");
        self.out.hand_over() && self.out.send(SourceMsg::End { input: read.input, error })
    }
}

/// How a partition's read ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Read up to its end (or to `to`).
    Complete,
    /// No progress for the timeout.
    Stalled,
}

/// One partition being read.
struct Read {
    range: PartitionRange,
    input: usize,
    queue: Option<PartitionQueue<DefaultConsumerContext>>,
    /// Still before the first record at or after `from`.
    skipping: bool,
    records: u64,
    skipped: u64,
    /// When the partition last delivered anything.
    last: Instant,
    ended: Option<Ended>,
}

impl Read {
    /// How the read ended, if it did.
    fn outcome(&self, timeout: Duration) -> Option<Ended> {
        self.ended.or_else(|| (self.last.elapsed() >= timeout).then_some(Ended::Stalled))
    }
}

/// An assign-only consumer: no auto-commit, no offset store, end-of-partition events on.
fn consumer(cfg: &KafkaReplayConfig) -> Result<BaseConsumer> {
    let mut cc = ClientConfig::new();
    for (k, v) in &cfg.properties {
        cc.set(k, v);
    }
    cc.set("bootstrap.servers", &cfg.brokers)
        .set("group.id", &cfg.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true");
    cc.set_log_level(RDKafkaLogLevel::Warning);
    cc.create().map_err(|e| anyhow!("cannot create the Kafka consumer: {e}"))
}

/// The ranges of every partition of `topic`.
fn plan_topic(c: &BaseConsumer, topic: &str, from: Option<DateTime<Utc>>, timeout: Duration) -> Result<Vec<PartitionRange>> {
    let md = c.fetch_metadata(Some(topic), timeout).map_err(|e| anyhow!("topic {topic}: cannot read its metadata: {e}"))?;
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else { bail!("topic {topic}: not in the brokers' metadata") };
    if let Some(err) = t.error() {
        bail!("topic {topic}: {}", rdkafka::error::RDKafkaErrorCode::from(err));
    }
    let partitions: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    let seeks = match from {
        Some(time) => seek_by_time(c, topic, &partitions, time, timeout)?,
        None => BTreeMap::new(),
    };
    let mut ranges = Vec::new();
    for p in partitions {
        let marks = c.fetch_watermarks(topic, p, timeout).map_err(|e| anyhow!("{topic}/{p}: cannot read its watermarks: {e}"))?;
        let range = range_of(topic, p, marks, from.map(|_| seeks.get(&p).copied().unwrap_or(Offset::End)));
        match &range {
            Some(r) => tracing::info!(topic, partition = p, start = r.start, end = r.end, "partition to replay"),
            None => tracing::info!(topic, partition = p, "partition has nothing to replay"),
        }
        ranges.extend(range);
    }
    Ok(ranges)
}

/// The broker's `offsets_for_times` answer per partition.
fn seek_by_time(c: &BaseConsumer, topic: &str, partitions: &[i32], time: DateTime<Utc>, timeout: Duration) -> Result<BTreeMap<i32, Offset>> {
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition_offset(topic, p, Offset::Offset(time.timestamp_millis()))?;
    }
    let answer = c.offsets_for_times(tpl, timeout).map_err(|e| anyhow!("topic {topic}: cannot look up the offsets at {time}: {e}"))?;
    let mut seeks = BTreeMap::new();
    for e in answer.elements() {
        if let Err(err) = e.error() {
            bail!("{topic}/{}: cannot look up the offset at {time}: {err}", e.partition());
        }
        seeks.insert(e.partition(), e.offset());
    }
    Ok(seeks)
}

/// Against librdkafka's mock cluster (in-process, no broker needed). The mock answers every
/// timestamp query with "no record at or after" (`FIXME: by timestamp` in
/// `rdkafka_mock_handlers.c`), so the timestamp seek itself is covered by [`range_of`] here
/// and by the tansu test in `tests/kafka.rs`; the reading is covered end to end.
#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
    use std::sync::mpsc::sync_channel;

    const TOPIC: &str = "mail-events";

    fn cluster(partitions: i32) -> MockCluster<'static, DefaultProducerContext> {
        let c = MockCluster::new(1).unwrap();
        c.create_topic(TOPIC, partitions, 1).unwrap();
        c
    }

    /// Produces `(timestamp ms, payload)` records to one partition.
    fn produce(c: &MockCluster<'static, DefaultProducerContext>, partition: i32, records: &[(i64, &str)]) {
        let p: BaseProducer = ClientConfig::new().set("bootstrap.servers", c.bootstrap_servers()).create().unwrap();
        for (ts, payload) in records {
            p.send(BaseRecord::<(), str>::to(TOPIC).partition(partition).timestamp(*ts).payload(*payload)).unwrap();
        }
        p.flush(Duration::from_secs(5)).unwrap();
    }

    fn config(c: &MockCluster<'static, DefaultProducerContext>, from: Option<i64>, to: Option<i64>) -> KafkaReplayConfig {
        let at = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap();
        KafkaReplayConfig {
            brokers: c.bootstrap_servers(),
            group_id: "brevvakt-replay-test".into(),
            topics: vec![(TOPIC.into(), Format::Normalized)],
            properties: BTreeMap::new(),
            max_record_bytes: 1 << 20,
            from: from.map(at),
            to: to.map(at),
            timeout: Duration::from_secs(2),
        }
    }

    /// Everything the replay sends, until it ends by itself (bounded: panics after 10 s).
    fn read(replay: KafkaReplay) -> Vec<SourceMsg> {
        let (tx, rx) = sync_channel(64);
        let reader = std::thread::spawn(move || replay.run(tx));
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut msgs = Vec::new();
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(m) => msgs.push(m),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(e) => panic!("the replay did not end by itself: {e}"),
            }
        }
        reader.join().unwrap();
        msgs
    }

    /// Per input name: the records (offset, payload) in the order sent, and how the input
    /// ended (`None`: it did not; `Some(error)`).
    type Partitions = BTreeMap<String, (Vec<(i64, String)>, Option<Option<String>>)>;

    fn by_partition(msgs: &[SourceMsg]) -> Partitions {
        let mut names = BTreeMap::new();
        let mut out = Partitions::new();
        for m in msgs {
            match m {
                SourceMsg::Opened { input, name, .. } => {
                    names.insert(*input, name.clone());
                    out.entry(name.clone()).or_default();
                }
                SourceMsg::Chunk(c) => {
                    let entry = out.get_mut(&names[&c.input]).expect("announced before its records");
                    assert!(entry.1.is_none(), "no record after the end");
                    for (i, l) in c.lines.iter().enumerate() {
                        entry.0.push((c.first_line as i64 - 1 + i as i64, String::from_utf8_lossy(&c.data[l.start..l.end]).into_owned()));
                    }
                }
                SourceMsg::End { input, error } => out.get_mut(&names[input]).unwrap().1 = Some(error.clone()),
                other => panic!("a replay sends no {other:?}"),
            }
        }
        out
    }

    fn recs(items: &[(i64, &str)]) -> Vec<(i64, String)> {
        items.iter().map(|(o, p)| (*o, p.to_string())).collect()
    }

    #[test]
    fn the_start_offset_follows_the_brokers_answer_to_the_timestamp_query() {
        let r = |start, end| Some(PartitionRange { topic: TOPIC.into(), partition: 2, start, end });
        assert_eq!(range_of(TOPIC, 2, (3, 10), None), r(3, 10), "no --from: from the low watermark");
        assert_eq!(range_of(TOPIC, 2, (3, 10), Some(Offset::Offset(7))), r(7, 10), "the first offset at or after --from");
        assert_eq!(range_of(TOPIC, 2, (3, 10), Some(Offset::Offset(1))), r(3, 10), "never below the low watermark (deleted records)");
        assert_eq!(range_of(TOPIC, 2, (3, 10), Some(Offset::End)), None, "no record at or after --from");
        assert_eq!(range_of(TOPIC, 2, (3, 10), Some(Offset::Offset(10))), None, "only records produced after the start");
        assert_eq!(range_of(TOPIC, 2, (0, 0), None), None, "an empty partition");
    }

    #[test]
    fn every_partition_is_read_to_its_high_watermark_at_start_and_an_empty_one_not_at_all() {
        let c = cluster(3);
        produce(&c, 0, &[(1000, "a0"), (2000, "a1"), (3000, "a2"), (4000, "a3"), (5000, "a4")]);
        produce(&c, 1, &[(1500, "b0"), (2500, "b1"), (3500, "b2")]);
        let replay = KafkaReplay::new(config(&c, None, None)).unwrap();
        let ranges: Vec<(i32, i64, i64)> = replay.ranges().iter().map(|r| (r.partition, r.start, r.end)).collect();
        assert_eq!(ranges, [(0, 0, 5), (1, 0, 3)], "partition 2 is empty: not an input");
        // Produced after the start: not part of the replay.
        produce(&c, 0, &[(6000, "late0"), (7000, "late1")]);
        produce(&c, 2, &[(6500, "late2")]);
        let msgs = read(replay);
        let first_chunk = msgs.iter().position(|m| matches!(m, SourceMsg::Chunk(_))).unwrap();
        assert_eq!(msgs.iter().take(first_chunk).filter(|m| matches!(m, SourceMsg::Opened { format: Format::Normalized, .. })).count(), 2, "every input is announced before the first record");
        let got = by_partition(&msgs);
        assert_eq!(got.keys().collect::<Vec<_>>(), ["mail-events/0", "mail-events/1"]);
        assert_eq!(got["mail-events/0"], (recs(&[(0, "a0"), (1, "a1"), (2, "a2"), (3, "a3"), (4, "a4")]), Some(None)));
        assert_eq!(got["mail-events/1"], (recs(&[(0, "b0"), (1, "b1"), (2, "b2")]), Some(None)));
    }

    #[test]
    fn to_stops_a_partition_at_its_first_record_after_to() {
        let c = cluster(2);
        produce(&c, 0, &[(1000, "a0"), (2000, "a1"), (5000, "a2"), (2200, "a3")]);
        produce(&c, 1, &[(1500, "b0"), (2400, "b1")]);
        let got = by_partition(&read(KafkaReplay::new(config(&c, None, Some(2500))).unwrap()));
        assert_eq!(got["mail-events/0"], (recs(&[(0, "a0"), (1, "a1")]), Some(None)), "stopped at a2, so a3 is not read either");
        assert_eq!(got["mail-events/1"], (recs(&[(0, "b0"), (1, "b1")]), Some(None)));
    }

    #[test]
    fn leading_records_before_from_are_skipped_when_the_broker_answers_an_earlier_offset() {
        let c = cluster(1);
        produce(&c, 0, &[(1000, "a0"), (2000, "a1"), (3000, "a2"), (1500, "a3"), (4000, "a4")]);
        // As tansu does: the broker answered offset 0 for --from 2.5 s.
        let cfg = config(&c, Some(2500), None);
        let consumer = Arc::new(consumer(&cfg).unwrap());
        let ranges = vec![PartitionRange { topic: TOPIC.into(), partition: 0, start: 0, end: 5 }];
        let got = by_partition(&read(KafkaReplay::with_ranges(consumer, ranges, &cfg)));
        // From the first record at or after --from on, every record counts (as after an exact
        // seek): a3 is older but comes after a2.
        assert_eq!(got["mail-events/0"], (recs(&[(2, "a2"), (3, "a3"), (4, "a4")]), Some(None)));
    }

    #[test]
    fn a_partition_without_a_record_at_or_after_from_is_not_read() {
        let c = cluster(2);
        produce(&c, 0, &[(1000, "a0")]);
        // The mock broker answers "none" to every timestamp query.
        let replay = KafkaReplay::new(config(&c, Some(500), None)).unwrap();
        assert!(replay.ranges().is_empty());
        assert!(read(replay).is_empty(), "nothing to read: the replay ends at once");
    }

    #[test]
    fn a_topic_that_does_not_exist_is_refused_at_start_by_name() {
        let c = cluster(1);
        let mut cfg = config(&c, None, None);
        cfg.topics = vec![("no-such-topic".into(), Format::Normalized)];
        let err = KafkaReplay::new(cfg).err().expect("refused").to_string();
        assert!(err.contains("no-such-topic"), "{err}");
    }

    #[test]
    fn a_partition_whose_broker_goes_away_ends_with_an_error_instead_of_hanging() {
        let c = cluster(1);
        produce(&c, 0, &[(1000, "a0"), (2000, "a1")]);
        let replay = KafkaReplay::new(config(&c, None, None)).unwrap();
        c.broker_down(1).unwrap();
        let got = by_partition(&read(replay));
        let (records, end) = &got["mail-events/0"];
        assert!(records.is_empty());
        let error = end.clone().flatten().expect("ended with an error");
        assert!(error.contains("mail-events/0") && error.contains("not read to the end"), "{error}");
    }
}
