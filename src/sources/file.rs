//! File source: JSON Lines (or any line format) archives, plain, gzip or zstd, from paths,
//! directories, globs or stdin (`-`).
//!
//! Guarantees:
//! - Compression is detected by magic bytes (gzip `1f 8b`, zstd `28 b5 2f fd`), not by the
//!   file name; multi-member gzip files are read whole.
//! - Directories are expanded recursively and globs are expanded; the resulting files are
//!   read one after the other in *time order*: by the time of their first decodable
//!   record (files with none go last), ties by path. Each file is one input.
//! - Reading, decompression and line splitting run on their own thread and hand chunks
//!   over a bounded channel (backpressure, bounded memory).
//!
//! Not guaranteed: merging of files whose time ranges overlap — they are read one after
//! the other, so records of a later file that are older than the watermark count as late.
//! Replay overlapping archives with an allowed lateness that covers the overlap.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};

use super::{Chunk, Line, SourceMsg};
use crate::decode::{DecodeOptions, Format};
use crate::event::SourcePos;

/// One input to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Standard input.
    Stdin,
    /// A file.
    File(PathBuf),
}

impl Input {
    /// The name used in source positions.
    pub fn name(&self) -> String {
        match self {
            Input::Stdin => "-".into(),
            Input::File(p) => p.display().to_string(),
        }
    }
}

/// Expands command-line arguments into inputs: `-`, files, directories (recursive), globs.
pub fn expand(args: &[String]) -> Result<Vec<Input>> {
    let mut out = Vec::new();
    for arg in args {
        if arg == "-" {
            out.push(Input::Stdin);
        } else if Path::new(arg).is_dir() {
            out.extend(walk(Path::new(arg))?.into_iter().map(Input::File));
        } else if Path::new(arg).exists() {
            out.push(Input::File(arg.into()));
        } else {
            out.extend(glob_files(arg)?.into_iter().map(Input::File));
        }
    }
    Ok(out)
}

fn glob_files(pattern: &str) -> Result<Vec<PathBuf>> {
    let paths: Vec<_> = glob::glob(pattern)
        .with_context(|| format!("{pattern}: not a file, directory or valid glob"))?
        .filter_map(|p| p.ok())
        .filter(|p| p.is_file())
        .collect();
    if paths.is_empty() {
        bail!("{pattern}: no such file, directory or matching glob");
    }
    Ok(paths)
}

fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p)?);
        } else if !is_hidden(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

fn is_hidden(p: &Path) -> bool {
    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'))
}

/// Opens an input, transparently decompressing gzip and zstd (by magic bytes).
pub fn open(input: &Input) -> Result<Box<dyn BufRead + Send>> {
    let raw: Box<dyn Read + Send> = match input {
        Input::Stdin => Box::new(io::stdin()),
        Input::File(p) => Box::new(File::open(p).with_context(|| p.display().to_string())?),
    };
    decompress(BufReader::with_capacity(1 << 16, raw))
}

/// Wraps a reader in the decompressor its first bytes call for.
pub fn decompress<R: BufRead + Send + 'static>(mut r: R) -> Result<Box<dyn BufRead + Send>> {
    let head = r.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(BufReader::with_capacity(1 << 16, flate2::bufread::MultiGzDecoder::new(r)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(BufReader::with_capacity(1 << 16, zstd::stream::read::Decoder::with_buffer(r)?))
    } else {
        Box::new(r)
    })
}

/// Sorts file inputs by the time of their first decodable record (stdin stays in place
/// at the end: it cannot be peeked without consuming it).
pub fn order_by_first_time(inputs: Vec<Input>, format: Format, opts: &DecodeOptions) -> Vec<Input> {
    let mut keyed: Vec<_> = inputs.into_iter().map(|i| (first_time(&i, format, opts), i)).collect();
    keyed.sort_by(|(ta, a), (tb, b)| {
        let rank = |t: &Option<DateTime<Utc>>, i: &Input| (matches!(i, Input::Stdin), t.is_none(), *t);
        rank(ta, a).cmp(&rank(tb, b)).then_with(|| a.name().cmp(&b.name()))
    });
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// The time of the first of the first 100 lines that decodes.
fn first_time(input: &Input, format: Format, opts: &DecodeOptions) -> Option<DateTime<Utc>> {
    if *input == Input::Stdin {
        return None;
    }
    let reader = open(input).ok()?;
    let mut decoder = format.decoder(opts);
    let name: Arc<str> = input.name().into();
    let mut out = Vec::new();
    for (i, line) in reader.split(b'\n').take(100).enumerate() {
        let line = line.ok()?;
        if decoder.decode(&line, &SourcePos::line(name.clone(), i as u64 + 1), &mut out).is_ok() {
            if let Some(e) = out.first() {
                return Some(e.time);
            }
        }
    }
    None
}

/// Reads every input in order on the calling thread, sending chunks of about `chunk_bytes`,
/// except those marked `done` (already covered by a checkpoint). Stops early (without
/// error) when the receiver hangs up.
pub fn read_all(inputs: &[Input], done: &[bool], tx: &SyncSender<SourceMsg>, max_line: usize, chunk_bytes: usize) {
    for (idx, input) in inputs.iter().enumerate() {
        if done.get(idx).copied().unwrap_or(false) {
            continue;
        }
        let error = match read_one(idx, input, tx, max_line, chunk_bytes) {
            Ok(true) => None,
            Ok(false) => return,
            Err(e) => Some(format!("{e:#}")),
        };
        if tx.send(SourceMsg::End { input: idx, error }).is_err() {
            return;
        }
    }
}

/// Reads one input; `Ok(false)` when the receiver went away.
fn read_one(idx: usize, input: &Input, tx: &SyncSender<SourceMsg>, max_line: usize, chunk_bytes: usize) -> Result<bool> {
    let mut reader = open(input)?;
    let name: Arc<str> = input.name().into();
    let mut splitter = LineSplitter::new(max_line);
    let mut chunk = new_chunk(idx, &name, 1);
    loop {
        let more = splitter.next_line(&mut reader, &mut chunk)?;
        if !more || chunk.data.len() >= chunk_bytes {
            let next_line = chunk.first_line + chunk.lines.len() as u64;
            let full = std::mem::replace(&mut chunk, new_chunk(idx, &name, next_line));
            if !full.lines.is_empty() && tx.send(SourceMsg::Chunk(full)).is_err() {
                return Ok(false);
            }
        }
        if !more {
            return Ok(true);
        }
    }
}

fn new_chunk(input: usize, name: &Arc<str>, first_line: u64) -> Chunk {
    Chunk { input, name: name.clone(), first_line, data: Vec::new(), lines: Vec::new(), bytes_read: 0, partition: None }
}

/// Splits a byte stream into lines, keeping at most `max` bytes of any line.
struct LineSplitter {
    max: usize,
    consumed: u64,
}

impl LineSplitter {
    fn new(max: usize) -> Self {
        LineSplitter { max, consumed: 0 }
    }

    /// Appends the next line to `chunk`; `Ok(false)` at end of input (no line appended).
    fn next_line(&mut self, r: &mut dyn BufRead, chunk: &mut Chunk) -> io::Result<bool> {
        let start = chunk.data.len();
        let mut total: u64 = 0;
        let mut saw_any = false;
        loop {
            let buf = r.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            saw_any = true;
            let (part, found) = match memchr(buf) {
                Some(i) => (&buf[..i], true),
                None => (buf, false),
            };
            let room = self.max.saturating_sub(total as usize);
            chunk.data.extend_from_slice(&part[..part.len().min(room)]);
            total += part.len() as u64;
            let used = part.len() + usize::from(found);
            r.consume(used);
            self.consumed += used as u64;
            if found {
                break;
            }
        }
        if !saw_any {
            return Ok(false);
        }
        let end = trim_cr(&chunk.data, start);
        chunk.data.truncate(end);
        let cut_from = (total > self.max as u64).then_some(total);
        chunk.lines.push(Line { start, end, cut_from });
        chunk.bytes_read = self.consumed;
        Ok(true)
    }
}

fn memchr(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

/// Drops a trailing `\r` (CRLF files).
fn trim_cr(data: &[u8], start: usize) -> usize {
    match data.last() {
        Some(b'\r') if data.len() > start => data.len() - 1,
        _ => data.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &[u8], max: usize) -> Vec<(Vec<u8>, Option<u64>)> {
        let mut r = io::Cursor::new(input.to_vec());
        let mut s = LineSplitter::new(max);
        let name: Arc<str> = "t".into();
        let mut c = new_chunk(0, &name, 1);
        while s.next_line(&mut r, &mut c).unwrap() {}
        c.lines.iter().map(|l| (c.data[l.start..l.end].to_vec(), l.cut_from)).collect()
    }

    #[test]
    fn lines_crlf_and_missing_final_newline() {
        let got = split(b"a\r\nbb\n\nccc", 100);
        let texts: Vec<_> = got.iter().map(|(t, _)| t.as_slice()).collect();
        assert_eq!(texts, [b"a".as_slice(), b"bb", b"", b"ccc"]);
    }

    #[test]
    fn overlong_line_is_cut_and_flagged_and_the_next_line_survives() {
        let mut input = vec![b'x'; 10_000];
        input.extend_from_slice(b"\nok\n");
        let got = split(&input, 256);
        assert_eq!(got[0].0.len(), 256);
        assert_eq!(got[0].1, Some(10_000));
        assert_eq!(got[1], (b"ok".to_vec(), None));
    }
}
