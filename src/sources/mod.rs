//! Sources: where raw records come from, with their positions.
//!
//! A source yields [`Chunk`]s of raw lines in input order. Guarantees: every line read is
//! delivered exactly once with its 1-based line number; a line longer than the limit is
//! delivered cut to the limit and flagged (its full length kept), never buffered whole, so
//! memory stays bounded whatever the input. Decoding happens downstream.
//!
//! Kafka ([`kafka`]): each assigned partition is one input (announced with
//! [`SourceMsg::Opened`], named `topic/partition`), and a chunk's `first_line` is the first
//! record's offset **plus one**, so "lines processed" of a partition is exactly the next
//! offset to commit. A chunk holds contiguous offsets only (a gap starts a new chunk).
//! [`kafka_replay`] reads partitions the same way, from a point in time to their end at
//! start, without a consumer group (`replay --kafka-topic`).

pub mod file;
pub mod kafka;
pub mod kafka_replay;


/// One raw line inside a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    /// Byte range in `Chunk::data`.
    pub start: usize,
    /// End of the kept bytes.
    pub end: usize,
    /// The line's full length when it was longer than the limit and cut.
    pub cut_from: Option<u64>,
}

/// A run of consecutive lines of one input, or — when the reader merges several inputs of
/// one stateless format by time — lines of several inputs in the merged order, each with
/// its own input and line number ([`Chunk::origins`]).
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Index of the input (order of reading); of the first line when the chunk merges.
    pub input: usize,
    /// The input's name for positions.
    pub name: crate::event::InputName,
    /// Line number of the first line.
    pub first_line: u64,
    /// The bytes of the lines ([`Chunk::lines`] has each line's range, its terminator
    /// left out; terminators may remain between the ranges).
    pub data: Vec<u8>,
    /// The lines.
    pub lines: Vec<Line>,
    /// Per line, where it came from, when the chunk merges several inputs; empty for a run
    /// of `input`'s lines numbered from `first_line`. A merge of interleaved files handed
    /// each run of one input's lines over as a chunk of its own, often a single line: the
    /// per-chunk costs of the decode pool and the stage made the merge of two files about
    /// half again as costly as the same lines from one file.
    pub origins: Vec<Origin>,
    /// Bytes consumed so far, for progress: of this input, or of all inputs when the
    /// reader merges several.
    pub bytes_read: u64,
    /// Kafka partition (then `name` is the topic and `first_line - 1` the first offset).
    pub partition: Option<i32>,
    /// When its first line was read (a line from a file or pipe, a record from Kafka):
    /// where the alert latency of its records starts (`brevvakt_alert_latency_seconds`),
    /// so the time lines wait in the reader for their chunk to be handed over is in it.
    pub read_at: std::time::Instant,
}

/// Where one line of a merging chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// Index of the input.
    pub input: usize,
    /// The input's name.
    pub name: crate::event::InputName,
    /// The line's number in it.
    pub line: u64,
}

impl Chunk {
    /// An empty chunk of `input` whose first line will be number `first_line`.
    pub fn new(input: usize, name: crate::event::InputName, first_line: u64, partition: Option<i32>) -> Self {
        Chunk { input, name, first_line, data: Vec::new(), lines: Vec::new(), origins: Vec::new(), bytes_read: 0, partition, read_at: std::time::Instant::now() }
    }

    /// The room (bytes, lines) to reserve for the next chunk, taken to be like this one: as
    /// many bytes as it held (at most `full`, a chunk's size) plus one line as long as its
    /// longest, and one line more. A chunk ends with the line that takes it to `full`, so
    /// a buffer sized by the previous chunk's bytes alone was often too small for its last
    /// line, and regrowing it copied all of it (callgrind: 1 % of a replay's instructions,
    /// 8 % of its L1 write misses).
    pub fn room(&self, full: usize) -> (usize, usize) {
        let longest = self.lines.iter().map(|l| l.end - l.start).max().unwrap_or(0);
        (self.data.len().min(full) + longest, self.lines.len() + 1)
    }

    /// The chunk with `room` reserved ([`Chunk::room`]).
    pub fn with_room(mut self, (bytes, lines): (usize, usize)) -> Self {
        self.data.reserve(bytes);
        self.lines.reserve(lines);
        self
    }

    /// Where line `i` of the chunk came from.
    pub fn origin(&self, i: usize) -> Origin {
        match self.origins.get(i) {
            Some(o) => *o,
            None => Origin { input: self.input, name: self.name, line: self.first_line + i as u64 },
        }
    }

    /// The source position of line `i` of the chunk.
    pub fn pos(&self, i: usize) -> crate::event::SourcePos {
        let Origin { name, line, .. } = self.origin(i);
        match self.partition {
            Some(p) => crate::event::SourcePos { name, offset: line - 1, partition: Some(p) },
            None => crate::event::SourcePos::line(name, line),
        }
    }

    /// Whether the chunk holds a line of `input`.
    pub fn has_input(&self, input: usize) -> bool {
        self.input == input || self.origins.iter().any(|o| o.input == input)
    }
}

/// What a reader sends.
#[derive(Debug)]
pub enum SourceMsg {
    /// Lines.
    Chunk(Chunk),
    /// Lines already decoded by the decode pool (which sends it in place of the `Chunk`).
    Decoded(Chunk, crate::decode::pool::Decoded),
    /// Input `input` is exhausted (or failed with the given error).
    End {
        /// The input.
        input: usize,
        /// Why it ended early, if it did.
        error: Option<String>,
    },
    /// A new input (a Kafka partition) with its name and decoder; sent before its chunks.
    /// Inputs are announced in index order.
    Opened {
        /// The input's index.
        input: usize,
        /// `topic/partition`.
        name: String,
        /// The decoder for its records.
        format: crate::decode::Format,
    },
    /// Nothing arrived for a while: a chance to commit on time (live sources only).
    Tick,
    /// Take a snapshot now and report it with this barrier number (before a partition
    /// revocation, the reader waits for its commit).
    Barrier(u64),
    /// The source is drained (not merely stopped): `--until` may be applied at the end.
    Drained,
    /// The partitions this instance owns changed (a consumer-group rebalance). Sent after
    /// the `Opened` of new partitions and after the `End` of revoked ones.
    Owned(crate::state::ownership::Ownership),
    /// A partition taken over: the checkpoint its previous owner (or this instance, before
    /// a restart) wrote for it. Sent after the `Owned` that includes it.
    Restore(Box<crate::state::checkpoint::Checkpoint>),
    /// Several of the above, in order: the short runs of lines that merging interleaved
    /// inputs gives, handed over together so each hand-over carries about a chunk's bytes.
    Batch(Vec<SourceMsg>),
}

/// Sent back to a live source once everything before a snapshot is done: every record
/// before `positions` processed and the alerts and dead letters they caused acknowledged
/// (and the checkpoint written, with a state directory).
#[derive(Debug, Clone)]
pub struct CommitRequest {
    /// Input positions (for Kafka: `lines` is the next offset to commit).
    pub positions: Vec<crate::state::checkpoint::InputPosition>,
    /// The barrier this snapshot answers, if it was asked for by one.
    pub barrier: Option<u64>,
}
