//! The alert model (`schemas/alert.schema.json`).
//!
//! Guarantees: an alert's `id` is a hash of what the finding *is* — rule, mailbox and the
//! finding's key (day, target, message) — never of wall-clock time, so a replay and a live
//! run, or runs with different worker counts, give the same ids. A follow-up that closes a
//! finding has status `resolved`, its own id, and the open alert's id in `finding`.
//! Alerts carry metadata only: addresses, times, counts and source positions.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::event::{Mechanism, SourcePos};

/// The rules brevvakt enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Mail automatically forwarded outside the organisation.
    ExternalForwarding,
    /// A mailbox not read on a required reading day.
    MailboxNotRead,
    /// Classified mail sent without the required protection.
    ClassifiedMail,
}

impl Rule {
    /// Every rule, in a fixed order.
    pub const ALL: [Rule; 3] = [Rule::ExternalForwarding, Rule::MailboxNotRead, Rule::ClassifiedMail];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::ExternalForwarding => "external_forwarding",
            Rule::MailboxNotRead => "mailbox_not_read",
            Rule::ClassifiedMail => "classified_mail",
        }
    }
}

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Informational follow-ups.
    Low,
    /// A duty missed.
    Medium,
    /// A policy breach that may leak information.
    High,
    /// Information that must never be mailed was mailed.
    Critical,
}

/// Whether the alert opens or closes a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A new finding.
    Open,
    /// The finding is no longer true (forwarding removed, late read arrived).
    Resolved,
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Deterministic id (32 hex digits).
    pub id: String,
    /// The id of the open alert this one belongs to (equal to `id` for open alerts).
    pub finding: String,
    /// The rule.
    pub rule: Rule,
    /// Severity.
    pub severity: Severity,
    /// Open or resolved.
    pub status: Status,
    /// Event time the alert is about (the triggering event, or the end of the judged day).
    pub time: DateTime<Utc>,
    /// The mailbox concerned.
    pub mailbox: String,
    /// The nearest manager, from the roster, for routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    /// The organisational unit, from the roster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_unit: Option<String>,
    /// The local day judged (reading duty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<NaiveDate>,
    /// What the alert rests on.
    pub evidence: Evidence,
    /// The rule text enforced.
    pub policy: Cow<'static, str>,
}

/// The evidence behind an alert. Rule-specific fields are absent when they do not apply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The records that produced the alert (bounded; `count` tells how many there were).
    pub events: Vec<SourcePos>,
    /// How many events the finding covers.
    pub count: u64,
    /// Forwarding targets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// Forwarding mechanism.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mechanism: Option<Mechanism>,
    /// Name of the rule that forwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_name: Option<String>,
    /// Whether the forwarding keeps a copy in the mailbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_copy: Option<bool>,
    /// Messages to the same target suppressed during the previous window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed_before: Option<u64>,
    /// Required reading days missed in a row, this one included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_missed: Option<u32>,
    /// Last read seen (reading duty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_read: Option<DateTime<Utc>>,
    /// Message-ID of the classified message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Classification level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<u8>,
    /// Encryption the message had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
}

/// A deterministic id from the parts that identify a finding.
pub fn alert_id(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0x1f]);
    }
    let digest = h.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The id of the alert that resolves finding `open_id`.
pub fn resolved_id(open_id: &str) -> String {
    alert_id(&[open_id, "resolved"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_depend_on_every_part_and_on_boundaries() {
        let a = alert_id(&["mailbox_not_read", "anna@exempel.se", "2026-06-18"]);
        assert_eq!(a.len(), 32);
        assert_eq!(a, alert_id(&["mailbox_not_read", "anna@exempel.se", "2026-06-18"]));
        assert_ne!(a, alert_id(&["mailbox_not_read", "anna@exempel.se", "2026-06-17"]));
        assert_ne!(alert_id(&["ab", "c"]), alert_id(&["a", "bc"]));
    }
}
