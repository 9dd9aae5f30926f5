//! Sinks: where alerts and dead letters go.
//!
//! Guarantees: alerts are written in the order they are given, one JSON object per line,
//! and `flush` returns only when they are handed to the OS (or the broker, for Kafka).

pub mod dead_letter;
pub mod jsonl;

use crate::alert::Alert;

/// Receives alerts in their final order.
pub trait AlertSink: Send {
    /// Writes one alert.
    fn write(&mut self, alert: &Alert) -> anyhow::Result<()>;
    /// Makes everything written so far durable in the sink's sense.
    fn flush(&mut self) -> anyhow::Result<()>;
}
