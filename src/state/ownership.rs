//! Which mailboxes this instance owns when several instances share a Kafka consumer group.
//!
//! The Kafka partition is the unit of state ownership. Producers key every record by its
//! mailbox address (lower case), so with Kafka's default partitioner a mailbox's records
//! all land in one partition number, `murmur2(address) mod partitions` — the same number in
//! every input topic, which must therefore all have the same partition count
//! (co-partitioned). An instance owns the mailboxes of the partition numbers assigned to it:
//! only it applies their events, judges their reading days and checkpoints their state (in
//! `partition-<n>/` of the shared state directory), and when a partition moves, its new
//! owner restores that state.
//!
//! Guarantees: [`murmur2`] is bit-for-bit the Java client's (and librdkafka's `murmur2`
//! partitioner's) hash, so brevvakt agrees with the producers on where a mailbox lives.
//! Not guaranteed: an event about a mailbox that lives in a partition another instance
//! owns (e.g. a delegate's proxy request keyed by the delegate) cannot be applied here; it
//! is counted, never silently dropped.

use std::collections::BTreeSet;

/// The partition numbers this instance owns, out of `partitions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    partitions: u32,
    owned: BTreeSet<u32>,
}

impl Ownership {
    /// Owns `owned` out of `partitions` partition numbers.
    pub fn new(partitions: u32, owned: BTreeSet<u32>) -> Self {
        Ownership { partitions: partitions.max(1), owned }
    }

    /// The partition number `mailbox` lives in.
    pub fn partition_of(&self, mailbox: &str) -> u32 {
        partition_of(mailbox, self.partitions)
    }

    /// True when this instance owns `mailbox`.
    pub fn owns(&self, mailbox: &str) -> bool {
        self.owned.contains(&self.partition_of(mailbox))
    }

    /// The partition numbers owned.
    pub fn owned(&self) -> &BTreeSet<u32> {
        &self.owned
    }

    /// The partition count.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }
}

/// The partition Kafka's default partitioner picks for the key `mailbox` among `partitions`.
pub fn partition_of(mailbox: &str, partitions: u32) -> u32 {
    (murmur2(mailbox.as_bytes()) as u32 & 0x7fff_ffff) % partitions.max(1)
}

/// MurmurHash2 as Kafka's Java client computes it (seed `0x9747b28c`), as a signed value.
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut blocks = data.chunks_exact(4);
    for b in &mut blocks {
        let mut k = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate().rev() {
            h ^= u32::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_kafka_java_clients_test_vectors() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            (b"abc", 479_470_107),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key), want, "{:?}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn an_instance_owns_exactly_the_mailboxes_of_its_partitions() {
        let half = Ownership::new(4, [0, 2].into_iter().collect());
        let other = Ownership::new(4, [1, 3].into_iter().collect());
        let boxes = (0..200).map(|i| format!("user{i}@kommun.se")).collect::<Vec<_>>();
        for b in &boxes {
            assert_ne!(half.owns(b), other.owns(b), "{b} has exactly one owner");
        }
        assert!(boxes.iter().any(|b| half.owns(b)) && boxes.iter().any(|b| other.owns(b)));
    }
}
