//! Kafka sinks: alerts to the alerts topic, bad records to the dead-letter topic.
//!
//! Guarantees: every producer is idempotent with `acks=all`; `flush` returns only when
//! every record sent so far has been acknowledged by the broker, and fails if any delivery
//! failed (then nothing after it is committed: the run stops with an error and the records
//! are read again by the next run). Alerts are keyed by mailbox and carry their id in the
//! `alert_id` header; dead letters carry the original bytes as the value and
//! `source_topic`, `source_partition`, `source_offset`, `reason`, `detail` (and
//! `full_length` for a cut record) as headers.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use super::jsonl::{ocsf, AlertFormat};
use super::{AlertSink, DeadLetterSink};
use crate::alert::Alert;
use crate::decode::DecodeError;
use crate::event::SourcePos;

/// How long a flush may wait for the broker's acknowledgements.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

/// Remembers the first failed delivery.
#[derive(Default)]
pub struct Deliveries {
    failed: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        if let Err((e, m)) = result {
            use rdkafka::Message;
            let mut f = self.failed.lock().unwrap_or_else(|p| p.into_inner());
            if f.is_none() {
                *f = Some(format!("delivery to {} failed: {e}", m.topic()));
            }
        }
    }
}

/// An idempotent, `acks=all` producer configured from `brokers` and the resolved
/// `[kafka.properties]`.
pub fn producer(brokers: &str, properties: &BTreeMap<String, String>) -> Result<BaseProducer<Deliveries>> {
    let mut cfg = ClientConfig::new();
    for (k, v) in properties {
        cfg.set(k, v);
    }
    cfg.set("bootstrap.servers", brokers).set("enable.idempotence", "true").set("acks", "all");
    // Consumer-only properties in the shared table are ignored by the producer; keep the log quiet about it.
    cfg.set_log_level(rdkafka::config::RDKafkaLogLevel::Error);
    cfg.create_with_context(Deliveries::default()).map_err(|e| anyhow!("cannot create the Kafka producer: {e}"))
}

/// Sends with back-pressure: a full local queue is drained (by polling) and retried.
fn send(p: &BaseProducer<Deliveries>, mut record: BaseRecord<'_, [u8], [u8]>) -> Result<()> {
    loop {
        match p.send(record) {
            Ok(()) => {
                p.poll(Duration::ZERO);
                return Ok(());
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                p.poll(Duration::from_millis(50));
            }
            Err((e, _)) => bail!("cannot produce to {}: {e}", record_topic(&e)),
        }
    }
}

fn record_topic(e: &KafkaError) -> String {
    e.to_string()
}

/// Waits for every acknowledgement; fails if any delivery failed.
fn flush(p: &BaseProducer<Deliveries>) -> Result<()> {
    p.flush(FLUSH_TIMEOUT).map_err(|e| anyhow!("Kafka producer flush: {e}"))?;
    if let Some(e) = p.context().failed.lock().unwrap_or_else(|p| p.into_inner()).clone() {
        bail!("{e}");
    }
    Ok(())
}

/// Alerts to a topic.
pub struct KafkaAlertSink {
    producer: BaseProducer<Deliveries>,
    topic: String,
    format: AlertFormat,
    count: u64,
    buf: Vec<u8>,
}

impl KafkaAlertSink {
    /// Alerts go to `topic` through `producer`; `count` alerts were written before (resume).
    pub fn new(producer: BaseProducer<Deliveries>, topic: &str, format: AlertFormat, count: u64) -> Self {
        KafkaAlertSink { producer, topic: topic.to_string(), format, count, buf: Vec::with_capacity(1024) }
    }
}

impl AlertSink for KafkaAlertSink {
    fn write(&mut self, alert: &Alert) -> Result<()> {
        self.buf.clear();
        match self.format {
            AlertFormat::Json => serde_json::to_writer(&mut self.buf, alert)?,
            AlertFormat::Ocsf => serde_json::to_writer(&mut self.buf, &ocsf(alert))?,
        }
        let headers = OwnedHeaders::new().insert(Header { key: "alert_id", value: Some(alert.id.as_bytes()) });
        let record = BaseRecord::to(&self.topic).key(alert.mailbox.as_bytes()).payload(self.buf.as_slice()).headers(headers);
        send(&self.producer, record)?;
        self.count += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        flush(&self.producer)
    }

    /// Alerts written (a topic has no byte position to cut back to).
    fn position(&self) -> u64 {
        self.count
    }
}

/// Dead letters to a topic.
pub struct KafkaDeadLetters {
    producer: BaseProducer<Deliveries>,
    topic: String,
    count: u64,
}

impl KafkaDeadLetters {
    /// Dead letters go to `topic` through `producer`.
    pub fn new(producer: BaseProducer<Deliveries>, topic: &str) -> Self {
        KafkaDeadLetters { producer, topic: topic.to_string(), count: 0 }
    }
}

impl DeadLetterSink for KafkaDeadLetters {
    fn write(&mut self, pos: &SourcePos, err: &DecodeError, raw: &[u8], full_length: Option<u64>) -> Result<()> {
        let partition = pos.partition.map(|p| p.to_string());
        let offset = pos.offset.to_string();
        let full = full_length.map(|l| l.to_string());
        let mut headers = OwnedHeaders::new()
            .insert(Header { key: "source_topic", value: Some(pos.name.as_bytes()) })
            .insert(Header { key: "source_offset", value: Some(offset.as_bytes()) })
            .insert(Header { key: "reason", value: Some(err.reason.as_str().as_bytes()) })
            .insert(Header { key: "detail", value: Some(err.detail.as_bytes()) });
        if let Some(p) = &partition {
            headers = headers.insert(Header { key: "source_partition", value: Some(p.as_bytes()) });
        }
        if let Some(f) = &full {
            headers = headers.insert(Header { key: "full_length", value: Some(f.as_bytes()) });
        }
        let key = format!("{pos}");
        send(&self.producer, BaseRecord::to(&self.topic).key(key.as_bytes()).payload(raw).headers(headers))?;
        self.count += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        flush(&self.producer)
    }

    fn position(&self) -> u64 {
        self.count
    }

    fn count(&self) -> u64 {
        self.count
    }
}
