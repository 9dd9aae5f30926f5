//! Per-mailbox state, partitioned into shards by a stable hash of the mailbox address.
//!
//! Guarantees: a mailbox always maps to the same shard for a given shard count (FNV-1a,
//! fixed for all versions, so it never depends on a hasher's random seed); a shard is
//! owned by exactly one worker thread, so state is updated without locks. Items reach a
//! shard in the order the router produced them.

pub mod checkpoint;
pub mod ownership;
pub mod shard;

use chrono::NaiveDate;

use crate::alert::Alert;
use crate::detect::Routed;

/// The shard (0..n) that owns `mailbox`.
pub fn shard_of(mailbox: &str, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    (fnv1a(mailbox.as_bytes()) % n as u64) as usize
}

/// 64-bit FNV-1a.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Work for a shard, in stream order.
#[derive(Debug, Clone)]
pub enum Item {
    /// An event routed to one of the shard's mailboxes; `seq` is the record's number in
    /// the whole stream.
    Event {
        /// Stream sequence number of the record.
        seq: u64,
        /// The routed event.
        routed: Routed,
    },
    /// The watermark passed the end of `through`: judge every day up to it. The very first
    /// `Close` only sets the starting point (the day before the stream's first day).
    Close {
        /// Stream sequence number of the record after which the watermark moved.
        seq: u64,
        /// The last day now closed.
        through: NaiveDate,
    },
    /// The roster was reloaded (SIGHUP or file change): from here on, use this one.
    Roster(std::sync::Arc<crate::roster::Roster>),
    /// The partitions this instance owns changed (Kafka consumer group): drop the
    /// mailboxes of partitions given up, adopt the roster mailboxes of new ones.
    Own(std::sync::Arc<ownership::Ownership>),
    /// A partition's own records passed the end of `through` (its newest event time minus
    /// the allowed lateness): its taken-over mailboxes are judged up to that day (never past
    /// the shard's last closed day), so a partition that lags the others is not judged on
    /// days whose records it has not delivered yet.
    CatchUp {
        /// Stream sequence number of the record that moved the partition on.
        seq: u64,
        /// The partition number.
        partition: u32,
        /// The last day the partition's records have completed.
        through: NaiveDate,
    },
    /// A partition taken over: its checkpointed mailboxes, from their previous owner.
    Restore {
        /// Stream sequence number at which the partition was taken over.
        seq: u64,
        /// The partition's checkpoint.
        checkpoint: std::sync::Arc<checkpoint::Checkpoint>,
    },
}

/// An alert with its position in the stream, so alerts from many shards can be merged
/// into one deterministic order: by `seq`, then `phase` (0 = caused by the record,
/// 1 = caused by the watermark after it), then id.
#[derive(Debug, Clone)]
pub struct Ordered {
    /// Stream sequence number.
    pub seq: u64,
    /// 0 for event alerts, 1 for day-close alerts.
    pub phase: u8,
    /// The alert.
    pub alert: Alert,
}

impl Ordered {
    /// The merge key.
    pub fn key(&self) -> (u64, u8, &str) {
        (self.seq, self.phase, &self.alert.id)
    }
}
