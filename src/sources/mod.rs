//! Sources: where raw records come from, with their positions.
//!
//! A source yields [`Chunk`]s of raw lines in input order. Guarantees: every line read is
//! delivered exactly once with its 1-based line number; a line longer than the limit is
//! delivered cut to the limit and flagged (its full length kept), never buffered whole, so
//! memory stays bounded whatever the input. Decoding happens downstream.

pub mod file;

use std::sync::Arc;

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

/// A run of consecutive lines of one input.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Index of the input (order of reading).
    pub input: usize,
    /// The input's name for positions.
    pub name: Arc<str>,
    /// Line number of the first line.
    pub first_line: u64,
    /// The bytes of the lines, without terminators.
    pub data: Vec<u8>,
    /// The lines.
    pub lines: Vec<Line>,
    /// Compressed/on-disk bytes consumed so far for this input (progress).
    pub bytes_read: u64,
}

/// What a reader sends.
#[derive(Debug)]
pub enum SourceMsg {
    /// Lines.
    Chunk(Chunk),
    /// Input `input` is exhausted (or failed with the given error).
    End {
        /// The input.
        input: usize,
        /// Why it ended early, if it did.
        error: Option<String>,
    },
}
