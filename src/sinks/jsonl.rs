//! Alerts as JSON Lines, in brevvakt's own model or as OCSF Detection Findings.
//!
//! Guarantees: one alert per line, no wall-clock field, so two runs over the same input
//! produce byte-identical files.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::{AlertSink, Durable};
use crate::alert::Alert;

/// Output shape of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum AlertFormat {
    /// brevvakt's alert model (`schemas/alert.schema.json`).
    #[default]
    Json,
    /// OCSF 1.x Detection Finding (class 2004).
    Ocsf,
}

/// Writes alerts to a file or pipe.
pub struct JsonlSink<W: Durable> {
    out: W,
    format: AlertFormat,
    position: u64,
    line: Vec<u8>,
}

impl<W: Durable> JsonlSink<W> {
    /// A sink writing to `out`, which already holds `position` bytes of earlier alerts.
    pub fn new(out: W, format: AlertFormat, position: u64) -> Self {
        JsonlSink { out, format, position, line: Vec::with_capacity(1024) }
    }
}

impl<W: Durable> AlertSink for JsonlSink<W> {
    fn write(&mut self, alert: &Alert) -> Result<()> {
        self.line.clear();
        match self.format {
            AlertFormat::Json => serde_json::to_writer(&mut self.line, alert)?,
            AlertFormat::Ocsf => serde_json::to_writer(&mut self.line, &ocsf(alert))?,
        }
        self.line.push(b'\n');
        self.out.write_all(&self.line)?;
        self.position += self.line.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        Ok(self.out.sync()?)
    }

    fn hand_on(&mut self) -> Result<()> {
        Ok(self.out.flush()?)
    }

    fn position(&self) -> u64 {
        self.position
    }
}

/// The OCSF 1.3 Detection Finding (class_uid 2004) for an alert.
pub fn ocsf(a: &Alert) -> serde_json::Value {
    use crate::alert::{Severity, Status};
    let severity_id = match a.severity {
        Severity::Low => 2,
        Severity::Medium => 3,
        Severity::High => 4,
        Severity::Critical => 5,
    };
    let (activity_id, status_id) = match a.status {
        Status::Open => (1, 1),
        Status::Resolved => (3, 4),
    };
    serde_json::json!({
        "class_uid": 2004,
        "category_uid": 2,
        "type_uid": 2004 * 100 + activity_id,
        "activity_id": activity_id,
        "status_id": status_id,
        "severity_id": severity_id,
        "time": a.time.timestamp_millis(),
        "message": a.policy,
        "metadata": { "version": "1.3.0", "product": { "name": "brevvakt", "vendor_name": "brevvakt" }, "uid": a.id },
        "finding_info": {
            "uid": a.finding,
            "title": a.rule.as_str(),
            "desc": a.policy,
            "types": [a.rule.as_str()],
        },
        "resources": [{ "type": "mailbox", "name": a.mailbox, "owner": { "name": a.manager } , "group": { "name": a.org_unit } }],
        "evidences": [{ "data": a.evidence }],
        "unmapped": { "day": a.day },
    })
}
