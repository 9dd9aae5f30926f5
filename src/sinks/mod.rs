//! Sinks: where alerts and dead letters go.
//!
//! Guarantees: alerts are written in the order they are given, one JSON object per line,
//! and `flush` returns only when they are durable: fsynced for files, handed to the OS for
//! pipes (or acknowledged by the broker, for Kafka). `position` counts the bytes written,
//! so a checkpoint can record how much of an alerts file it covers.

pub mod dead_letter;
pub mod jsonl;
pub mod kafka;
pub mod pseudonym;

use crate::alert::Alert;

/// Receives alerts in their final order.
pub trait AlertSink: Send {
    /// Writes one alert.
    fn write(&mut self, alert: &Alert) -> anyhow::Result<()>;
    /// Makes everything written so far durable in the sink's sense.
    fn flush(&mut self) -> anyhow::Result<()>;
    /// Hands what is buffered on to the output, without waiting for it to be durable. The
    /// collector calls it whenever no more alerts wait right behind the ones it wrote, so
    /// whoever reads a live output (a pipe, `tail -f`) sees an alert when it is written,
    /// not when a buffer fills. Nothing to do for a sink that sends on its own.
    fn hand_on(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
    /// Bytes written since the start of the output (including what a resumed run kept).
    fn position(&self) -> u64;
}

/// Receives records that could not be decoded (a file, or a Kafka dead-letter topic).
pub trait DeadLetterSink {
    /// Writes one bad record with its position, the reason and the original bytes.
    fn write(&mut self, pos: &crate::event::SourcePos, err: &crate::decode::DecodeError, raw: &[u8], full_length: Option<u64>) -> anyhow::Result<()>;
    /// Makes everything written so far durable (fsynced, or acknowledged by the broker).
    fn flush(&mut self) -> anyhow::Result<()>;
    /// Bytes (file) or records (topic) written so far.
    fn position(&self) -> u64;
    /// Records written.
    fn count(&self) -> u64;
}

impl DeadLetterSink for dead_letter::DeadLetters {
    fn write(&mut self, pos: &crate::event::SourcePos, err: &crate::decode::DecodeError, raw: &[u8], full_length: Option<u64>) -> anyhow::Result<()> {
        dead_letter::DeadLetters::write(self, pos, err, raw, full_length)
    }
    fn flush(&mut self) -> anyhow::Result<()> {
        dead_letter::DeadLetters::flush(self)
    }
    fn position(&self) -> u64 {
        dead_letter::DeadLetters::position(self)
    }
    fn count(&self) -> u64 {
        dead_letter::DeadLetters::count(self)
    }
}

/// A writer that can make what it wrote durable.
pub trait Durable: std::io::Write + Send {
    /// Flushes buffers and, for files, fsyncs.
    fn sync(&mut self) -> std::io::Result<()>;
}

impl Durable for std::io::BufWriter<std::fs::File> {
    fn sync(&mut self) -> std::io::Result<()> {
        std::io::Write::flush(self)?;
        self.get_ref().sync_data()
    }
}

impl Durable for std::fs::File {
    fn sync(&mut self) -> std::io::Result<()> {
        self.sync_data()
    }
}

impl Durable for std::io::BufWriter<std::io::Stdout> {
    fn sync(&mut self) -> std::io::Result<()> {
        std::io::Write::flush(self)
    }
}

/// Opens `path` for appending after cutting it to its first `len` bytes: the part a
/// checkpoint covers. Fails when the file is shorter than that (it is not the same output).
pub fn open_truncated(path: &std::path::Path, len: u64) -> anyhow::Result<std::fs::File> {
    use anyhow::Context;
    let f = std::fs::OpenOptions::new().read(true).write(true).open(path).with_context(|| format!("{} (to resume)", path.display()))?;
    let have = f.metadata()?.len();
    if have < len {
        anyhow::bail!("{} has {have} bytes but the checkpoint covers {len}: not the output of this run", path.display());
    }
    f.set_len(len)?;
    let mut f = f;
    std::io::Seek::seek(&mut f, std::io::SeekFrom::End(0))?;
    Ok(f)
}
