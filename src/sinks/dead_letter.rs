//! The dead-letter file: every record that could not be decoded, with where it came from
//! and why, as JSON Lines.
//!
//! Guarantees: nothing is lost silently — each bad record is written with its source
//! position (file:line or topic/partition/offset), the bounded reason, the detail, and the
//! original bytes: as text when they are UTF-8, else base64 (`raw_base64`). A record cut
//! because it was over the size limit keeps its first `input.max_line_bytes` bytes and
//! states its full length (`full_length`); the position lets an operator fetch the rest.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine;
use serde::Serialize;

use crate::decode::DecodeError;
use crate::event::SourcePos;

/// One dead-lettered record.
#[derive(Debug, Serialize)]
struct Entry<'a> {
    source: &'a SourcePos,
    reason: &'static str,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    full_length: Option<u64>,
}

/// Writes dead letters to a file (created on the first bad record).
pub struct DeadLetters {
    path: std::path::PathBuf,
    out: Option<BufWriter<File>>,
    count: u64,
    position: u64,
    line: Vec<u8>,
}

impl DeadLetters {
    /// Dead letters go to `path`; the file is created only if a record is bad.
    pub fn new(path: &Path) -> Self {
        DeadLetters { path: path.to_path_buf(), out: None, count: 0, position: 0, line: Vec::new() }
    }

    /// Continues `path` after a checkpoint that covered its first `position` bytes: what
    /// was written after that is cut off (it will be written again).
    pub fn resume(path: &Path, position: u64) -> Result<Self> {
        let mut d = Self::new(path);
        if position > 0 {
            let f = crate::sinks::open_truncated(path, position)?;
            d.out = Some(BufWriter::new(f));
            d.position = position;
        }
        Ok(d)
    }

    /// Bytes written to the file so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Records written.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Writes one bad record.
    pub fn write(&mut self, pos: &SourcePos, err: &DecodeError, raw: &[u8], full_length: Option<u64>) -> Result<()> {
        let text = std::str::from_utf8(raw).ok();
        let entry = Entry {
            source: pos,
            reason: err.reason.as_str(),
            detail: &err.detail,
            raw: text,
            raw_base64: text.is_none().then(|| base64::engine::general_purpose::STANDARD.encode(raw)),
            full_length,
        };
        self.line.clear();
        serde_json::to_writer(&mut self.line, &entry)?;
        self.line.push(b'\n');
        let line = std::mem::take(&mut self.line);
        self.writer()?.write_all(&line)?;
        self.position += line.len() as u64;
        self.line = line;
        self.count += 1;
        Ok(())
    }

    fn writer(&mut self) -> Result<&mut BufWriter<File>> {
        if self.out.is_none() {
            let f = File::create(&self.path).with_context(|| format!("dead-letter file {}", self.path.display()))?;
            self.out = Some(BufWriter::new(f));
        }
        Ok(self.out.as_mut().expect("set above"))
    }

    /// Flushes and fsyncs the file.
    pub fn flush(&mut self) -> Result<()> {
        match &mut self.out {
            Some(o) => {
                o.flush()?;
                Ok(o.get_ref().sync_data()?)
            }
            None => Ok(()),
        }
    }
}
