//! Metrics: the one place they are defined, exported in the Prometheus text format by
//! [`crate::http`] (`/metrics`).
//!
//! What is exported (every name starts with `brevvakt_`; counters end in `_total`, units
//! are in the name):
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `brevvakt_records_read_total` | counter | `source` | records (lines) read |
//! | `brevvakt_read_bytes_total` | counter | `source` | bytes of records read (uncompressed) |
//! | `brevvakt_events_total` | counter | `source`, `type` | events decoded |
//! | `brevvakt_decode_errors_total` | counter | `source`, `reason` | records that could not be decoded |
//! | `brevvakt_dead_letters_total` | counter | — | records written to the dead-letter file |
//! | `brevvakt_late_events_total` | counter | `source` | events older than the watermark when they arrived |
//! | `brevvakt_foreign_events_total` | counter | — | events about mailboxes whose partition another instance owns (not applied here) |
//! | `brevvakt_kafka_miskeyed_records_total` | counter | `reason` (`unkeyed`, `other_partition`) | Kafka records not keyed by a mailbox of their partition |
//! | `brevvakt_kafka_backpressure_pauses_total` | counter | — | times the Kafka reader paused fetching because the pipeline was not taking records |
//! | `brevvakt_kafka_rebalances_total` | counter | `kind` (`assigned`, `revoked`, `lost`) | consumer-group rebalance callbacks (`lost`: the group had already taken the partitions away) |
//! | `brevvakt_alerts_total` | counter | `rule`, `severity`, `status` | alerts written |
//! | `brevvakt_open_findings` | gauge | `rule` | findings opened and not yet resolved by this process |
//! | `brevvakt_watermark_seconds` | gauge | — | event-time watermark, unix seconds (absent until the first event) |
//! | `brevvakt_watermark_lag_seconds` | gauge | — | wall clock minus watermark, computed at scrape time |
//! | `brevvakt_consumer_lag_records` | gauge | `topic`, `partition` | records behind the partition's end (Kafka) |
//! | `brevvakt_consumer_committed_offset` | gauge | `topic`, `partition` | last committed offset (Kafka) |
//! | `brevvakt_state_mailboxes` | gauge | `shard` | mailboxes tracked by a shard worker |
//! | `brevvakt_state_bytes` | gauge | `shard` | estimated memory of the shard's per-mailbox state |
//! | `brevvakt_alert_latency_seconds` | summary | `quantile` | record read (its chunk's first line) → its alert written |
//! | `brevvakt_batch_latency_seconds` | summary | `quantile` | batch handed to the workers → its alerts merged and written |
//! | `brevvakt_ready` | gauge | — | 1 when `/readyz` answers 200 |
//! | `brevvakt_start_time_seconds` | gauge | — | process start, unix seconds |
//! | `brevvakt_build_info` | gauge | `version` | always 1 |
//!
//! The two consumer metrics are defined now and get values when the Kafka source lands
//! ([`Metrics::set_partition`]); until then they have no series. Latency quantiles
//! (0.5, 0.9, 0.99, 0.999) come from an HDR histogram (2 significant digits) over a
//! sliding window of the last 2.5–5 minutes; `_sum` and `_count` cover the whole run.
//!
//! **Label bounds.** No label ever carries a mailbox, a user, an address, a file path or
//! any other value from the data: every label value comes from a fixed, small set —
//! `source`: the input *kind* (`file`, `stdin`; later the configured Kafka topic);
//! `type`: the five event types; `reason`: the [`ErrorReason`]s; `rule`, `severity`,
//! `status`: the alert enums; `shard`: `0..workers`; `topic`, `partition`: the configured
//! topics and their partitions; `version`: the crate version. So the number of series is
//! bounded by the configuration, never by the traffic.
//!
//! **Cost.** Nothing here is touched per event: the decode stage keeps its running totals
//! (the run summary) and [`StageReporter`] pushes their differences once per batch through
//! counter handles resolved once per source; the collector pushes alert counts and
//! latencies once per batch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{Metric, MetricFamily, MetricType, Quantile, Summary};
use prometheus::{Encoder, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::alert::{Alert, Rule, Severity, Status};
use crate::decode::ErrorReason;
use crate::event::EVENT_TYPES;
use crate::pipeline::Summary as RunSummary;

/// `source` label of file inputs (never the path).
pub const SOURCE_FILE: &str = "file";
/// `source` label of standard input.
pub const SOURCE_STDIN: &str = "stdin";

/// The `source` label for a replay input, from its name (`-` is stdin).
pub fn source_kind(input_name: &str) -> &'static str {
    if input_name == "-" {
        SOURCE_STDIN
    } else {
        SOURCE_FILE
    }
}

/// The quantiles exported for latency summaries.
pub const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// By default the watermark counts as stalled (not ready) when it has not moved for this
/// long.
pub const DEFAULT_WATERMARK_STALL: Duration = Duration::from_secs(15 * 60);

/// Half the latency quantile window: the window rotates this often.
const WINDOW_HALF: Duration = Duration::from_secs(150);

/// Every metric of one process, in its own registry.
pub struct Metrics {
    registry: Registry,
    records: IntCounterVec,
    read_bytes: IntCounterVec,
    events: IntCounterVec,
    decode_errors: IntCounterVec,
    late: IntCounterVec,
    dead_letters: IntCounter,
    foreign: IntCounter,
    miskeyed: IntCounterVec,
    backpressure_pauses: IntCounter,
    rebalances: IntCounterVec,
    alerts: IntCounterVec,
    open_findings: IntGaugeVec,
    watermark: GaugeVec,
    watermark_lag: GaugeVec,
    consumer_lag: IntGaugeVec,
    committed_offset: IntGaugeVec,
    state_mailboxes: IntGaugeVec,
    state_bytes: IntGaugeVec,
    ready: IntGauge,
    alert_latency: LatencySummary,
    batch_latency: LatencySummary,
    sources_connected: AtomicBool,
    state_restored: AtomicBool,
    stall_after_ms: AtomicU64,
    watermark_state: Mutex<WatermarkState>,
}

#[derive(Debug, Default)]
struct WatermarkState {
    value: Option<DateTime<Utc>>,
    moved_at: Option<Instant>,
}

/// The readiness checks behind `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// The reader delivered from its first input (later: the Kafka consumer is assigned).
    pub sources_connected: bool,
    /// State was restored from the checkpoint, or there was none to restore.
    pub state_restored: bool,
    /// The watermark has a value and moved within the stall limit.
    pub watermark_moving: bool,
}

impl Readiness {
    /// All checks pass.
    pub fn is_ready(&self) -> bool {
        self.sources_connected && self.state_restored && self.watermark_moving
    }

    /// The failing checks, as short phrases.
    pub fn problems(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if !self.sources_connected {
            out.push("sources not connected");
        }
        if !self.state_restored {
            out.push("state not restored");
        }
        if !self.watermark_moving {
            out.push("watermark not moving");
        }
        out
    }
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric definition");
    r.register(Box::new(c.clone())).expect("metric registered once");
    c
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let v = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    r.register(Box::new(v.clone())).expect("metric registered once");
    v
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let v = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    r.register(Box::new(v.clone())).expect("metric registered once");
    v
}

fn float_gauge(r: &Registry, name: &str, help: &str) -> GaugeVec {
    let v = GaugeVec::new(Opts::new(name, help), &[]).expect("valid metric definition");
    r.register(Box::new(v.clone())).expect("metric registered once");
    v
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Defines every metric in a fresh registry.
    pub fn new() -> Self {
        let r = Registry::new();
        let m = Metrics {
            records: counter_vec(&r, "brevvakt_records_read_total", "Records (lines) read, by input kind.", &["source"]),
            read_bytes: counter_vec(&r, "brevvakt_read_bytes_total", "Bytes of records read (uncompressed), by input kind.", &["source"]),
            events: counter_vec(&r, "brevvakt_events_total", "Events decoded, by input kind and event type.", &["source", "type"]),
            decode_errors: counter_vec(&r, "brevvakt_decode_errors_total", "Records that could not be decoded, by input kind and reason.", &["source", "reason"]),
            late: counter_vec(&r, "brevvakt_late_events_total", "Events older than the watermark when they arrived (still applied).", &["source"]),
            dead_letters: counter(&r, "brevvakt_dead_letters_total", "Records written to the dead-letter file."),
            foreign: counter(&r, "brevvakt_foreign_events_total", "Events about mailboxes whose partition another instance of the group owns (not applied here)."),
            miskeyed: counter_vec(&r, "brevvakt_kafka_miskeyed_records_total", "Kafka records without a key, or keyed by a mailbox of another partition (producers must key by mailbox).", &["reason"]),
            backpressure_pauses: counter(&r, "brevvakt_kafka_backpressure_pauses_total", "Times the Kafka reader paused fetching its partitions because the pipeline was not taking records (it keeps polling the group)."),
            rebalances: counter_vec(&r, "brevvakt_kafka_rebalances_total", "Consumer-group rebalance callbacks: partitions assigned, revoked, or lost (taken away before they could be handed over).", &["kind"]),
            alerts: counter_vec(&r, "brevvakt_alerts_total", "Alerts written, by rule, severity and status (open or resolved).", &["rule", "severity", "status"]),
            open_findings: gauge_vec(&r, "brevvakt_open_findings", "Findings opened and not yet resolved during this process's life, by rule.", &["rule"]),
            watermark: float_gauge(&r, "brevvakt_watermark_seconds", "Event-time watermark (unix seconds): the stream is complete up to here."),
            watermark_lag: float_gauge(&r, "brevvakt_watermark_lag_seconds", "Wall clock minus the event-time watermark, in seconds, at scrape time."),
            consumer_lag: gauge_vec(&r, "brevvakt_consumer_lag_records", "Records between the committed offset and the end of the partition (Kafka).", &["topic", "partition"]),
            committed_offset: gauge_vec(&r, "brevvakt_consumer_committed_offset", "Last committed offset of the partition (Kafka).", &["topic", "partition"]),
            state_mailboxes: gauge_vec(&r, "brevvakt_state_mailboxes", "Mailboxes whose state a shard worker holds.", &["shard"]),
            state_bytes: gauge_vec(&r, "brevvakt_state_bytes", "Estimated memory of a shard's per-mailbox state (entries times entry size; heap-owned parts not counted).", &["shard"]),
            ready: {
                let g = IntGauge::new("brevvakt_ready", "1 when every readiness check passes (/readyz answers 200), else 0.").expect("valid metric definition");
                r.register(Box::new(g.clone())).expect("metric registered once");
                g
            },
            alert_latency: LatencySummary::register(&r, "brevvakt_alert_latency_seconds", "Seconds from a record being read (the first record of its chunk) to its alert being written."),
            batch_latency: LatencySummary::register(&r, "brevvakt_batch_latency_seconds", "Seconds from a batch being handed to the shard workers to its alerts being merged and written."),
            sources_connected: AtomicBool::new(false),
            state_restored: AtomicBool::new(false),
            stall_after_ms: AtomicU64::new(DEFAULT_WATERMARK_STALL.as_millis() as u64),
            watermark_state: Mutex::new(WatermarkState::default()),
            registry: r,
        };
        let start = IntGauge::new("brevvakt_start_time_seconds", "Process start time, unix seconds.").expect("valid metric definition");
        start.set(unix_seconds(SystemTime::now()) as i64);
        m.registry.register(Box::new(start)).expect("metric registered once");
        let info = gauge_vec(&m.registry, "brevvakt_build_info", "Build information; the value is always 1.", &["version"]);
        info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        for rule in Rule::ALL {
            m.open_findings.with_label_values(&[rule.as_str()]).set(0);
        }
        m
    }

    /// The exposition in the Prometheus text format (derived gauges are brought up to date
    /// first).
    pub fn render(&self) -> String {
        let readiness = self.readiness();
        self.ready.set(i64::from(readiness.is_ready()));
        if let Some(w) = self.watermark_state().value {
            let lag = unix_seconds(SystemTime::now()) - w.timestamp_millis() as f64 / 1000.0;
            self.watermark_lag.with_label_values(&[]).set(lag);
        }
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "metrics could not be encoded");
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    // ── readiness ──

    /// The current readiness.
    pub fn readiness(&self) -> Readiness {
        let stall = Duration::from_millis(self.stall_after_ms.load(Ordering::Relaxed));
        let moving = self.watermark_state().moved_at.is_some_and(|t| t.elapsed() < stall);
        Readiness {
            sources_connected: self.sources_connected.load(Ordering::Relaxed),
            state_restored: self.state_restored.load(Ordering::Relaxed),
            watermark_moving: moving,
        }
    }

    /// The sources delivered (replay: the reader's first message; later: Kafka assignment).
    pub fn set_sources_connected(&self, yes: bool) {
        self.sources_connected.store(yes, Ordering::Relaxed);
    }

    /// State has been restored from the checkpoint, or there was nothing to restore.
    pub fn set_state_restored(&self, yes: bool) {
        self.state_restored.store(yes, Ordering::Relaxed);
    }

    /// How long the watermark may stand still before `/readyz` fails.
    pub fn set_watermark_stall_after(&self, d: Duration) {
        self.stall_after_ms.store(d.as_millis().min(u128::from(u64::MAX)) as u64, Ordering::Relaxed);
    }

    fn watermark_state(&self) -> MutexGuard<'_, WatermarkState> {
        self.watermark_state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes the current watermark (once per batch).
    pub fn set_watermark(&self, w: Option<DateTime<Utc>>) {
        let Some(w) = w else { return };
        let mut st = self.watermark_state();
        if st.value != Some(w) {
            st.value = Some(w);
            st.moved_at = Some(Instant::now());
            self.watermark.with_label_values(&[]).set(w.timestamp_millis() as f64 / 1000.0);
        }
    }

    // ── updates ──

    /// A Kafka record without a key (`unkeyed`) or keyed for another partition
    /// (`other_partition`).
    pub fn count_miskeyed(&self, reason: &'static str) {
        self.miskeyed.with_label_values(&[reason]).inc();
    }

    /// The Kafka reader paused fetching (the pipeline is not taking records).
    pub fn count_backpressure_pause(&self) {
        self.backpressure_pauses.inc();
    }

    /// A rebalance callback: `assigned`, `revoked` or `lost`.
    pub fn count_rebalance(&self, kind: &'static str) {
        self.rebalances.with_label_values(&[kind]).inc();
    }

    /// Consumer position of one Kafka partition (defined now; the Kafka source calls it).
    pub fn set_partition(&self, topic: &str, partition: i32, lag: i64, committed_offset: i64) {
        let p = partition.to_string();
        self.consumer_lag.with_label_values(&[topic, &p]).set(lag);
        self.committed_offset.with_label_values(&[topic, &p]).set(committed_offset);
    }

    /// The gauges of shard worker `index`, resolved once.
    pub fn shard(&self, index: usize) -> ShardGauges {
        let i = index.to_string();
        ShardGauges { mailboxes: self.state_mailboxes.with_label_values(&[&i]), bytes: self.state_bytes.with_label_values(&[&i]) }
    }

    /// Records one merged batch: its alerts (with the stream sequence number that caused
    /// each), when its records arrived, and when it was handed to the workers.
    pub fn record_batch<'a>(&self, alerts: impl IntoIterator<Item = (u64, &'a Alert)>, arrivals: &Arrivals, sent: Instant, now: Instant) {
        let mut tally: HashMap<(Rule, Severity, Status), u64> = HashMap::new();
        let mut latencies = Vec::new();
        for (seq, a) in alerts {
            *tally.entry((a.rule, a.severity, a.status)).or_default() += 1;
            if let Some(t) = arrivals.of(seq) {
                latencies.push(now.saturating_duration_since(t));
            }
        }
        for ((rule, severity, status), n) in tally {
            self.alerts.with_label_values(&[rule.as_str(), severity_name(severity), status_name(status)]).inc_by(n);
            let open = self.open_findings.with_label_values(&[rule.as_str()]);
            match status {
                Status::Open => open.add(n as i64),
                Status::Resolved => open.set((open.get() - n as i64).max(0)),
            }
        }
        self.alert_latency.record_all(&latencies, now);
        self.batch_latency.record_all(&[now.saturating_duration_since(sent)], now);
    }
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Open => "open",
        Status::Resolved => "resolved",
    }
}

/// One shard worker's state-size gauges.
#[derive(Clone)]
pub struct ShardGauges {
    mailboxes: IntGauge,
    bytes: IntGauge,
}

impl ShardGauges {
    /// Rough bytes per tracked mailbox: the map entry (key and state) plus an address.
    const ENTRY_BYTES: usize = std::mem::size_of::<(Box<str>, crate::detect::MailboxState)>() + 32;

    /// Sets the shard's size from its mailbox count (`Shard::len`).
    pub fn set(&self, mailboxes: usize) {
        self.mailboxes.set(mailboxes as i64);
        self.bytes.set((mailboxes * Self::ENTRY_BYTES) as i64);
    }
}

/// When the records of a batch were read: marks of (first stream sequence number of a
/// chunk, when the chunk's first line was read), in order.
#[derive(Debug, Default, Clone)]
pub struct Arrivals {
    marks: Vec<(u64, Instant)>,
}

impl Arrivals {
    /// Records from sequence number `first_seq` on arrived at `at`.
    pub fn mark(&mut self, first_seq: u64, at: Instant) {
        self.marks.push((first_seq, at));
    }

    /// Hands the marks over for a batch being flushed; the newest stays, as the records
    /// after the cut arrived with it.
    pub fn take_for_batch(&mut self) -> Arrivals {
        let last = self.marks.last().copied();
        let out = Arrivals { marks: std::mem::take(&mut self.marks) };
        self.marks.extend(last);
        out
    }

    /// Adds the marks of another part of the same batch.
    pub fn merge(&mut self, other: Arrivals) {
        self.marks.extend(other.marks);
        self.marks.sort_by_key(|m| m.0);
    }

    /// When the record with sequence number `seq` arrived.
    pub fn of(&self, seq: u64) -> Option<Instant> {
        let i = self.marks.partition_point(|m| m.0 <= seq);
        self.marks.get(i.checked_sub(1)?).map(|m| m.1)
    }
}

/// Running totals of the decode stage, comparable between two batches.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Records read.
    pub records: u64,
    /// Bytes of records read.
    pub bytes: u64,
    /// Events decoded, in [`EVENT_TYPES`] order.
    pub events: [u64; EVENT_TYPES.len()],
    /// Bad records, in [`ErrorReason::ALL`] order.
    pub bad: [u64; ErrorReason::ALL.len()],
    /// Late events.
    pub late: u64,
    /// Records dead-lettered.
    pub dead_letters: u64,
    /// Events about mailboxes another instance owns.
    pub foreign: u64,
}

impl Totals {
    /// The totals of a run summary so far, with the dead-letter count.
    pub fn of(s: &RunSummary, dead_letters: u64) -> Totals {
        let mut t = Totals { records: s.records, bytes: s.bytes, late: s.late, dead_letters, foreign: s.foreign, events: s.events, ..Totals::default() };
        for (reason, n) in &s.bad {
            if let Some(i) = ErrorReason::ALL.iter().position(|x| x == reason) {
                t.bad[i] = *n;
            }
        }
        t
    }
}

/// Counter handles of one source label.
struct SourceCounters {
    label: String,
    records: IntCounter,
    bytes: IntCounter,
    late: IntCounter,
    events: Vec<IntCounter>,
    bad: Vec<IntCounter>,
}

/// Pushes the decode stage's running totals as counter increments, once per batch and on
/// each change of source, attributing them to the current `source` label.
pub struct StageReporter {
    metrics: Arc<Metrics>,
    current: Option<SourceCounters>,
    last: Totals,
}

impl StageReporter {
    /// A reporter starting from `start` (the totals already accounted for).
    pub fn new(metrics: Arc<Metrics>, start: Totals) -> Self {
        StageReporter { metrics, current: None, last: start }
    }

    /// The metrics reported to.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The records about to be counted come from `source` (an input kind or topic): pushes
    /// what was counted so far under the previous source when it changes. `totals` is only
    /// called on a change.
    pub fn set_source(&mut self, source: &str, totals: impl FnOnce() -> Totals) {
        if self.current.as_ref().is_some_and(|c| c.label == source) {
            return;
        }
        self.push(totals());
        let m = &self.metrics;
        self.current = Some(SourceCounters {
            label: source.to_string(),
            records: m.records.with_label_values(&[source]),
            bytes: m.read_bytes.with_label_values(&[source]),
            late: m.late.with_label_values(&[source]),
            events: EVENT_TYPES.iter().map(|t| m.events.with_label_values(&[source, t])).collect(),
            bad: ErrorReason::ALL.iter().map(|r| m.decode_errors.with_label_values(&[source, r.as_str()])).collect(),
        });
    }

    /// Pushes the increments since the last push.
    pub fn push(&mut self, now: Totals) {
        let last = std::mem::replace(&mut self.last, now);
        let inc = |c: &IntCounter, new: u64, old: u64| {
            if new > old {
                c.inc_by(new - old);
            }
        };
        inc(&self.metrics.dead_letters, now.dead_letters, last.dead_letters);
        inc(&self.metrics.foreign, now.foreign, last.foreign);
        let Some(c) = &self.current else { return };
        inc(&c.records, now.records, last.records);
        inc(&c.bytes, now.bytes, last.bytes);
        inc(&c.late, now.late, last.late);
        for (i, counter) in c.events.iter().enumerate() {
            inc(counter, now.events[i], last.events[i]);
        }
        for (i, counter) in c.bad.iter().enumerate() {
            inc(counter, now.bad[i], last.bad[i]);
        }
    }
}

/// A latency summary: quantiles from an HDR histogram over a sliding window, sum and count
/// over the whole run.
#[derive(Clone)]
struct LatencySummary {
    desc: Desc,
    window: Arc<Mutex<Window>>,
}

struct Window {
    current: Histogram<u64>,
    previous: Histogram<u64>,
    rotated_at: Instant,
    count: u64,
    sum_seconds: f64,
}

/// Microseconds, up to an hour, 2 significant digits (about 1 % error, ~30 KiB).
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid histogram bounds")
}

impl Window {
    fn new(now: Instant) -> Self {
        Window { current: new_histogram(), previous: new_histogram(), rotated_at: now, count: 0, sum_seconds: 0.0 }
    }

    /// Ages the window: every `WINDOW_HALF` the current half becomes the previous one.
    fn rotate(&mut self, now: Instant) {
        let age = now.saturating_duration_since(self.rotated_at);
        if age < WINDOW_HALF {
            return;
        }
        if age >= 2 * WINDOW_HALF {
            self.previous.reset();
        } else {
            std::mem::swap(&mut self.previous, &mut self.current);
        }
        self.current.reset();
        self.rotated_at = now;
    }

    fn record(&mut self, d: Duration) {
        self.current.saturating_record((d.as_micros().min(u128::from(u64::MAX)) as u64).max(1));
        self.count += 1;
        self.sum_seconds += d.as_secs_f64();
    }

    fn summary(&mut self, now: Instant) -> Summary {
        self.rotate(now);
        let mut merged = self.previous.clone();
        let _ = merged.add(&self.current);
        let quantiles = QUANTILES
            .iter()
            .map(|&q| {
                let mut x = Quantile::default();
                x.set_quantile(q);
                x.set_value(if merged.is_empty() { f64::NAN } else { merged.value_at_quantile(q) as f64 / 1e6 });
                x
            })
            .collect();
        let mut s = Summary::default();
        s.set_sample_count(self.count);
        s.set_sample_sum(self.sum_seconds);
        s.set_quantile(quantiles);
        s
    }
}

impl LatencySummary {
    fn register(r: &Registry, name: &str, help: &str) -> Self {
        let desc = Desc::new(name.into(), help.into(), Vec::new(), HashMap::new()).expect("valid metric definition");
        let s = LatencySummary { desc, window: Arc::new(Mutex::new(Window::new(Instant::now()))) };
        r.register(Box::new(s.clone())).expect("metric registered once");
        s
    }

    fn lock(&self) -> MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record_all(&self, ds: &[Duration], now: Instant) {
        let mut w = self.lock();
        w.rotate(now);
        for d in ds {
            w.record(*d);
        }
    }

    fn family(&self, now: Instant) -> MetricFamily {
        let mut m = Metric::default();
        m.set_summary(self.lock().summary(now));
        let mut f = MetricFamily::default();
        f.set_name(self.desc.fq_name.clone());
        f.set_help(self.desc.help.clone());
        f.set_field_type(MetricType::SUMMARY);
        f.set_metric(vec![m]);
        f
    }
}

impl Collector for LatencySummary {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        vec![self.family(Instant::now())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line `name` (with labels, exactly as exposed).
    fn sample(text: &str, name: &str) -> f64 {
        let line = text.lines().find(|l| l.starts_with(name) && l[name.len()..].starts_with(' ')).unwrap_or_else(|| panic!("{name} not in\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    #[test]
    fn latency_quantiles_are_exported_in_seconds() {
        let m = Metrics::new();
        let now = Instant::now();
        let ds: Vec<Duration> = (1..=1000).map(Duration::from_millis).collect();
        m.alert_latency.record_all(&ds, now);
        let text = m.render();
        assert!(text.contains("# TYPE brevvakt_alert_latency_seconds summary"), "{text}");
        for (q, want) in [("0.5", 0.5), ("0.9", 0.9), ("0.99", 0.99), ("0.999", 0.999)] {
            let got = sample(&text, &format!("brevvakt_alert_latency_seconds{{quantile=\"{q}\"}}"));
            assert!((got - want).abs() <= want * 0.01 + 1e-6, "quantile {q}: {got} vs {want}");
        }
        assert_eq!(sample(&text, "brevvakt_alert_latency_seconds_count"), 1000.0);
        assert!((sample(&text, "brevvakt_alert_latency_seconds_sum") - 500.5).abs() < 1e-6);
        // No sample yet: the quantiles are NaN, as Prometheus expects of an empty summary.
        assert!(sample(&text, "brevvakt_batch_latency_seconds{quantile=\"0.5\"}").is_nan());
    }

    #[test]
    fn the_quantile_window_slides_but_sum_and_count_stay() {
        let t0 = Instant::now();
        let mut w = Window::new(t0);
        w.record(Duration::from_secs(2));
        let s = w.summary(t0 + WINDOW_HALF);
        assert!((s.get_quantile()[0].get_value() - 2.0).abs() < 0.02, "still in the previous half");
        let s = w.summary(t0 + WINDOW_HALF * 3);
        assert!(s.get_quantile()[0].get_value().is_nan(), "aged out");
        assert_eq!((s.get_sample_count(), s.get_sample_sum()), (1, 2.0));
    }

    #[test]
    fn arrivals_find_the_chunk_a_record_came_with() {
        let t0 = Instant::now();
        let (t1, t2) = (t0 + Duration::from_millis(5), t0 + Duration::from_millis(9));
        let mut a = Arrivals::default();
        a.mark(1, t0);
        a.mark(100, t1);
        let batch = a.take_for_batch();
        a.mark(250, t2);
        assert_eq!((batch.of(1), batch.of(99), batch.of(100), batch.of(180)), (Some(t0), Some(t0), Some(t1), Some(t1)));
        assert_eq!((a.of(180), a.of(250)), (Some(t1), Some(t2)), "the newest mark carries over");
    }

    #[test]
    fn readiness_needs_sources_state_and_a_moving_watermark() {
        let m = Metrics::new();
        assert_eq!(m.readiness().problems(), ["sources not connected", "state not restored", "watermark not moving"]);
        m.set_sources_connected(true);
        m.set_state_restored(true);
        assert!(!m.readiness().is_ready());
        m.set_watermark(Some(Utc::now()));
        assert!(m.readiness().is_ready());
        assert!(m.render().contains("brevvakt_ready 1"));
        m.set_watermark_stall_after(Duration::ZERO);
        assert_eq!(m.readiness().problems(), ["watermark not moving"]);
        assert!(m.render().contains("brevvakt_ready 0"));
    }

    #[test]
    fn stage_increments_go_to_the_source_they_came_from() {
        let m = Arc::new(Metrics::new());
        let mut r = StageReporter::new(m.clone(), Totals::default());
        let t1 = Totals { records: 3, events: [2, 0, 0, 0, 0], bad: [0, 0, 1, 0, 0, 0, 0], dead_letters: 1, ..Totals::default() };
        r.set_source(SOURCE_FILE, Totals::default);
        r.set_source(SOURCE_STDIN, || t1);
        let t2 = Totals { records: 5, events: [4, 0, 0, 0, 0], ..t1 };
        r.push(t2);
        let text = m.render();
        assert_eq!(sample(&text, "brevvakt_records_read_total{source=\"file\"}"), 3.0);
        assert_eq!(sample(&text, "brevvakt_records_read_total{source=\"stdin\"}"), 2.0);
        assert_eq!(sample(&text, "brevvakt_events_total{source=\"file\",type=\"mail.message\"}"), 2.0);
        assert_eq!(sample(&text, "brevvakt_events_total{source=\"stdin\",type=\"mail.message\"}"), 2.0);
        assert_eq!(sample(&text, "brevvakt_decode_errors_total{reason=\"syntax\",source=\"file\"}"), 1.0);
        assert_eq!(sample(&text, "brevvakt_dead_letters_total"), 1.0);
    }
}
