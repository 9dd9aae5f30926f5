//! File source: JSON Lines (or any line format) archives, plain, gzip or zstd, from paths,
//! directories, globs or stdin (`-`), each with the format of its records.
//!
//! Guarantees:
//! - Compression is detected by magic bytes (gzip `1f 8b`, zstd `28 b5 2f fd`), not by the
//!   file name; multi-member gzip files are read whole.
//! - Directories are expanded recursively and globs are expanded; each resulting file is
//!   one input. An argument `FORMAT:PATH` whose prefix before the first `:` is a format
//!   name ([`Format::from_name`]) reads PATH in that format; any other argument is a path
//!   in the default format ([`parse_arg`]).
//! - Several inputs are **merged into one stream in event-time order** ([`read_merged`]):
//!   the reader learns each line's time and always hands over the line with the earliest
//!   time among the inputs' next lines (ties: the input listed first; a line without a time
//!   goes with the line before it). Lines of one input keep their order. An input is
//!   opened only once the merged stream reaches the time of its first record, so a
//!   directory of a year of hourly logs keeps only the files that overlap open.
//! - A line's time: for normalized JSON, its (first) `time` member, read without decoding
//!   the record ([`Format::quick_time`]; a record with a readable time goes by it even
//!   when the rest of it is bad). Otherwise, or when that read is in doubt, the time of the first
//!   event the line decodes to, with a decoder of the input's own.
//! - No line is decoded twice for the merge: lines of a stateless format
//!   ([`Format::stateless`]) that were decoded for their times go over decoded
//!   ([`SourceMsg::Decoded`]); normalized JSON lines go over as lines (the decode pool
//!   decodes them). Formats that keep state between lines are the exception: they are
//!   decoded again downstream, by the stage's one decoder per input, which also hands over
//!   what it holds when the input ends.
//! - Inputs whose times interleave give short runs of lines. Inputs of one stateless
//!   format share chunks: a chunk holds their lines in the merged order, each with its own
//!   input and line number ([`Chunk::origins`], so positions, dead letters and checkpoints
//!   name the right file and line). Runs of other formats go over in batches of about a
//!   chunk's bytes ([`SourceMsg::Batch`]). Either way, not one hand-over per run.
//! - Standard input as the only input is read as a live pipe may be written: once the
//!   reader has taken everything the writer had written (`Paced`), it hands its partial
//!   chunk on, so a line does not wait for 256 KiB of later lines (`tail -F | brevvakt
//!   replay -`). Files, and standard input merged with files, go in full chunks.
//! - Reading, decompression, line splitting and merging run on their own thread and hand
//!   chunks over a bounded channel (backpressure, bounded memory: one pending line per open
//!   input plus the batch being filled).
//!
//! Not guaranteed: order across inputs beyond what their times say — a record far out of
//! order within its file (a clock jump) holds the rest of that file back until the other
//! inputs reach its time. With a single input, and for the last input left open once no
//! other waits, nothing is decoded on this thread (the decode pool decodes those lines).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};

use super::{Chunk, Line, Origin, SourceMsg};
use crate::decode::pool::DecodedLines;
use crate::decode::{DecodeError, DecodeOptions, Decoder, Format};
use crate::event::{Event, InputName, SourcePos};

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

/// One input and the format of its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInput {
    /// Where to read.
    pub input: Input,
    /// The decoder for its records.
    pub format: Format,
}

/// Splits a command-line input into its format and path: `FORMAT:PATH` when the text
/// before the first `:` names a format (e.g. `exchange_tracking:logs/MSGTRK*.LOG`,
/// `squid:-`), else the whole argument is a path read in `default` (so `./squid:x.log`
/// reads a file whose name starts with a format name).
pub fn parse_arg(arg: &str, default: Format) -> (Format, &str) {
    match arg.split_once(':') {
        Some((name, path)) if !path.is_empty() => match Format::from_name(name) {
            Some(format) => (format, path),
            None => (default, arg),
        },
        _ => (default, arg),
    }
}

/// Expands command-line arguments (see [`parse_arg`]) into inputs.
pub fn expand(args: &[String], default: Format) -> Result<Vec<FileInput>> {
    let mut out = Vec::new();
    for arg in args {
        let (format, path) = parse_arg(arg, default);
        out.extend(expand_path(path, format)?);
    }
    Ok(out)
}

/// Expands one path into inputs of `format`: `-`, a file, a directory (recursive), a glob.
pub fn expand_path(path: &str, format: Format) -> Result<Vec<FileInput>> {
    let inputs = if path == "-" {
        vec![Input::Stdin]
    } else if Path::new(path).is_dir() {
        walk(Path::new(path))?.into_iter().map(Input::File).collect()
    } else if Path::new(path).exists() {
        vec![Input::File(path.into())]
    } else {
        glob_files(path)?.into_iter().map(Input::File).collect()
    };
    Ok(inputs.into_iter().map(|input| FileInput { input, format }).collect())
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
    open_paced(input).map(|(r, _)| r)
}

/// [`open`], and for standard input the sign that the reader has caught up with the writer.
fn open_paced(input: &Input) -> Result<(Box<dyn BufRead + Send>, Option<CaughtUp>)> {
    match input {
        Input::Stdin => {
            let caught_up = CaughtUp::default();
            Ok((decompress(Paced::new(io::stdin(), caught_up.clone()))?, Some(caught_up)))
        }
        Input::File(p) => Ok((decompress(BufReader::with_capacity(1 << 16, File::open(p).with_context(|| p.display().to_string())?))?, None)),
    }
}

/// Set while a [`Paced`] reader has handed on everything its source gave it and the
/// source had given less than was asked for: the writer of a live pipe has paused.
#[derive(Clone, Default)]
struct CaughtUp(Arc<AtomicBool>);

impl CaughtUp {
    fn now(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A buffered reader that notices when its source had less to give than it asked for.
/// A read from a pipe returns what is in it, so once such a short read has been consumed
/// whole, the line reader has caught up with the writer: it hands its partial chunk on
/// then ([`read_one`]), so a line written to a live pipe reaches the pipeline at once
/// instead of when 256 KiB have gathered behind it. A file gives full reads until its
/// end, so file replays chunk as before.
struct Paced<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    short: bool,
    caught_up: CaughtUp,
}

impl<R: Read> Paced<R> {
    fn new(inner: R, caught_up: CaughtUp) -> Self {
        Paced { inner, buf: vec![0; 1 << 16].into_boxed_slice(), pos: 0, len: 0, short: false, caught_up }
    }
}

impl<R: Read> Read for Paced<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = {
            let have = self.fill_buf()?;
            let n = have.len().min(out.len());
            out[..n].copy_from_slice(&have[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for Paced<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.len {
            self.len = self.inner.read(&mut self.buf)?;
            self.pos = 0;
            self.short = self.len < self.buf.len();
            self.caught_up.0.store(false, Ordering::Relaxed);
        }
        Ok(&self.buf[self.pos..self.len])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.len);
        if self.pos == self.len && self.short {
            self.caught_up.0.store(true, Ordering::Relaxed);
        }
    }
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
pub fn order_by_first_time(inputs: Vec<FileInput>, opts: &DecodeOptions) -> Vec<FileInput> {
    let mut keyed: Vec<_> = inputs.into_iter().map(|i| (first_time(&i, opts), i)).collect();
    keyed.sort_by(|(ta, a), (tb, b)| {
        let rank = |t: &Option<DateTime<Utc>>, i: &FileInput| (i.input == Input::Stdin, t.is_none(), *t);
        rank(ta, a).cmp(&rank(tb, b)).then_with(|| a.input.name().cmp(&b.input.name()))
    });
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// The time of the first of the first 100 lines that decodes.
fn first_time(input: &FileInput, opts: &DecodeOptions) -> Option<DateTime<Utc>> {
    if input.input == Input::Stdin {
        return None;
    }
    let reader = open(&input.input).ok()?;
    let mut decoder = input.format.decoder(opts);
    let name = InputName::new(&input.input.name());
    let mut out = Vec::new();
    for (i, line) in reader.split(b'\n').take(100).enumerate() {
        let line = line.ok()?;
        if decoder.decode(&line, &SourcePos::line(name, i as u64 + 1), &mut out).is_ok() {
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
    let (mut reader, caught_up) = open_paced(input)?;
    let name = InputName::new(&input.name());
    let mut splitter = LineSplitter::new(max_line);
    let mut chunk = Chunk::new(idx, name, 1, None);
    loop {
        let first = chunk.lines.is_empty();
        let more = splitter.next_lines(&mut reader, &mut chunk, chunk_bytes)?;
        if first {
            chunk.read_at = std::time::Instant::now();
        }
        // A live writer that paused: what it wrote goes on now, not when the chunk is full.
        if !more || chunk.data.len() >= chunk_bytes || caught_up.as_ref().is_some_and(CaughtUp::now) {
            let next_line = chunk.first_line + chunk.lines.len() as u64;
            // The next chunk will be about as big: sized at once, not grown by doubling.
            let next = Chunk::new(idx, name, next_line, None).with_room(chunk.room(chunk_bytes));
            let full = std::mem::replace(&mut chunk, next);
            if !full.lines.is_empty() && tx.send(SourceMsg::Chunk(full)).is_err() {
                return Ok(false);
            }
        }
        if !more {
            return Ok(true);
        }
    }
}

/// Reads the inputs not marked `done` (already covered by a checkpoint) and sends their
/// lines merged into one stream in event-time order (see the module doc), each input
/// ending with its [`SourceMsg::End`]. A single input is read as [`read_all`] reads it.
/// Stops early (without error) when the receiver hangs up.
pub fn read_merged(inputs: &[FileInput], done: &[bool], tx: &SyncSender<SourceMsg>, max_line: usize, chunk_bytes: usize, opts: &DecodeOptions) {
    let todo: Vec<usize> = (0..inputs.len()).filter(|&i| !done.get(i).copied().unwrap_or(false)).collect();
    if todo.len() <= 1 {
        let plain: Vec<Input> = inputs.iter().map(|i| i.input.clone()).collect();
        return read_all(&plain, done, tx, max_line, chunk_bytes);
    }
    let mut merge = Merge::new(inputs, tx, max_line, chunk_bytes, opts);
    merge.schedule(&todo);
    if merge.run() {
        merge.flush();
    }
}

/// Order of a head line in the merge: its time (`None`: before any record of its input
/// had a time), then the input's index.
type Key = Reverse<(Option<DateTime<Utc>>, usize)>;

/// The merge of several inputs into one stream by time.
struct Merge<'a> {
    inputs: &'a [FileInput],
    tx: &'a SyncSender<SourceMsg>,
    max_line: usize,
    chunk_bytes: usize,
    opts: &'a DecodeOptions,
    /// Inputs not opened yet with the time of their first record, the latest first.
    waiting: Vec<(DateTime<Utc>, usize)>,
    /// The open inputs by the key of their next line (each open input is in it once).
    heads: BinaryHeap<Key>,
    open: BTreeMap<usize, Cursor>,
    /// Lines taken from one input and not sent yet, with their events when they are
    /// handed over decoded.
    out: Option<(Chunk, Option<DecodedLines>)>,
    /// Messages not sent yet (runs of lines and ends), and the bytes of their lines: they
    /// go as one [`SourceMsg::Batch`] once they hold about a chunk's bytes.
    batch: Vec<SourceMsg>,
    batch_bytes: usize,
    /// Bytes consumed by inputs already finished (progress).
    consumed_before: u64,
    /// The room to reserve for the next chunk ([`Chunk::room`] of the last one sent).
    room: (usize, usize),
}

/// One open input of the merge: where its next line (the head) comes from and its time.
struct Cursor {
    reader: Box<dyn BufRead + Send>,
    splitter: LineSplitter,
    decoder: Box<dyn Decoder>,
    name: InputName,
    /// Holds exactly the head line.
    head: Chunk,
    /// The head's line number.
    line: u64,
    /// The time of the head, else of the last line before it that had one.
    time: Option<DateTime<Utc>>,
    format: Format,
    /// The head's events and result, when it was decoded and is handed over decoded.
    decoded: Option<(Vec<Event>, Result<(), DecodeError>)>,
    events: Vec<Event>,
}

impl Cursor {
    fn open(idx: usize, input: &FileInput, max_line: usize, opts: &DecodeOptions) -> Result<Cursor> {
        let name = InputName::new(&input.input.name());
        Ok(Cursor {
            reader: open(&input.input)?,
            splitter: LineSplitter::new(max_line),
            decoder: input.format.decoder(opts),
            head: Chunk::new(idx, name, 1, None),
            name,
            line: 0,
            time: None,
            format: input.format,
            decoded: None,
            events: Vec::new(),
        })
    }

    /// Reads the next line as the head and, when `timed`, learns its time (keeping its
    /// events when they are handed over decoded); `Ok(false)` at end of input.
    fn advance(&mut self, timed: bool) -> io::Result<bool> {
        self.head.data.clear();
        self.head.lines.clear();
        self.decoded = None;
        if !self.splitter.next_line(&mut self.reader, &mut self.head)? {
            return Ok(false);
        }
        self.line += 1;
        if !timed {
            return Ok(true);
        }
        let l = self.head.lines[0];
        let line = &self.head.data[l.start..l.end];
        if let Some(t) = l.cut_from.is_none().then(|| self.format.quick_time(line)).flatten() {
            // Read without decoding the record: the decode pool decodes it, once.
            self.time = Some(t);
            return Ok(true);
        }
        // A cut line is never decoded downstream either: it has no time and no events.
        let result = match l.cut_from {
            Some(_) => Ok(()),
            None => self.decoder.decode(line, &SourcePos::line(self.name, self.line), &mut self.events),
        };
        if let Some(e) = self.events.first() {
            self.time = Some(e.time);
        }
        match self.format.stateless() {
            true => self.decoded = Some((std::mem::take(&mut self.events), result)),
            false => self.events.clear(),
        }
        Ok(true)
    }
}

impl<'a> Merge<'a> {
    fn new(inputs: &'a [FileInput], tx: &'a SyncSender<SourceMsg>, max_line: usize, chunk_bytes: usize, opts: &'a DecodeOptions) -> Self {
        Merge { inputs, tx, max_line, chunk_bytes, opts, waiting: Vec::new(), heads: BinaryHeap::new(), open: BTreeMap::new(), out: None, batch: Vec::new(), batch_bytes: 0, consumed_before: 0, room: (0, 0) }
    }

    /// Lines the inputs up by the time of their first record; those whose first time is
    /// unknown (stdin, nothing decodable at the start) are opened before any line with a
    /// time is handed over.
    fn schedule(&mut self, todo: &[usize]) {
        for &idx in todo {
            match first_time(&self.inputs[idx], self.opts) {
                Some(t) => self.waiting.push((t, idx)),
                None => self.waiting.push((DateTime::<Utc>::MIN_UTC, idx)),
            }
        }
        self.waiting.sort_by(|a, b| b.cmp(a));
    }

    /// Merges until every input is done; false when the receiver went away.
    fn run(&mut self) -> bool {
        loop {
            if !self.open_due() {
                return false;
            }
            let Some(Reverse((_, idx))) = self.heads.pop() else { return true };
            if !self.take(idx) {
                return false;
            }
        }
    }

    /// Opens every waiting input whose first record is not later than the next line to
    /// hand over (or the next waiting input when none is open); false when the receiver
    /// went away.
    fn open_due(&mut self) -> bool {
        while let Some(&(first, idx)) = self.waiting.last() {
            let due = match self.heads.peek() {
                None => true,
                Some(Reverse((time, _))) => time.is_some_and(|t| first <= t),
            };
            if !due {
                break;
            }
            self.waiting.pop();
            if !self.start(idx) {
                return false;
            }
        }
        true
    }

    /// Opens input `idx` and reads its first line; false when the receiver went away.
    fn start(&mut self, idx: usize) -> bool {
        let mut cursor = match Cursor::open(idx, &self.inputs[idx], self.max_line, self.opts) {
            Ok(c) => c,
            Err(e) => return self.end(idx, Some(format!("{e:#}"))),
        };
        match cursor.advance(true) {
            Ok(true) => {
                self.heads.push(Reverse((cursor.time, idx)));
                self.open.insert(idx, cursor);
                true
            }
            Ok(false) => self.end(idx, None),
            Err(e) => self.end(idx, Some(format!("{}: {e}", cursor.name))),
        }
    }

    /// Hands over the head of input `idx` and reads its next line; false when the receiver
    /// went away.
    fn take(&mut self, idx: usize) -> bool {
        let decoded = self.open.get(&idx).is_some_and(|c| c.decoded.is_some());
        // A chunk is handed over decoded or not as a whole, and holds the lines of several
        // inputs only when they share a stateless format (one decoder reads them all).
        let fits = |c: &Chunk| c.input == idx || self.mergeable(c.input, idx);
        if self.out.as_ref().is_some_and(|(c, d)| d.is_some() != decoded || !fits(c)) && !self.send_out() {
            return false;
        }
        let Some(cursor) = self.open.get_mut(&idx) else { return true };
        let room = self.room;
        let (out, lines) = self.out.get_or_insert_with(|| (Chunk::new(idx, cursor.name, cursor.line, None).with_room(room), decoded.then(DecodedLines::default)));
        if out.input != idx || !out.origins.is_empty() {
            if out.origins.is_empty() {
                out.origins = (0..out.lines.len()).map(|i| out.origin(i)).collect();
            }
            out.origins.push(Origin { input: idx, name: cursor.name, line: cursor.line });
        }
        let l = cursor.head.lines[0];
        let start = out.data.len();
        out.data.extend_from_slice(&cursor.head.data[l.start..l.end]);
        out.lines.push(Line { start, end: out.data.len(), cut_from: l.cut_from });
        if let (Some(lines), Some((events, result))) = (lines, cursor.decoded.take()) {
            lines.push_line(events, result);
        }
        let full = out.data.len() >= self.chunk_bytes;
        // The last input left: its times decide nothing any more.
        let last = self.waiting.is_empty() && self.heads.is_empty();
        let next = cursor.advance(!last);
        if full && !self.send_out() {
            return false;
        }
        match next {
            Ok(true) => {
                let time = self.open.get(&idx).and_then(|c| c.time);
                self.heads.push(Reverse((time, idx)));
                true
            }
            Ok(false) => self.close(idx, None),
            Err(e) => self.close(idx, Some(format!("{}: {e}", self.inputs[idx].input.name()))),
        }
    }

    /// Whether lines of inputs `a` and `b` may share a chunk.
    fn mergeable(&self, a: usize, b: usize) -> bool {
        let (fa, fb) = (self.inputs[a].format, self.inputs[b].format);
        fa == fb && fa.stateless()
    }

    /// Input `idx` is done: its pending lines go out, then its end.
    fn close(&mut self, idx: usize, error: Option<String>) -> bool {
        if self.out.as_ref().is_some_and(|(c, _)| c.has_input(idx)) && !self.send_out() {
            return false;
        }
        if let Some(c) = self.open.remove(&idx) {
            self.consumed_before += c.splitter.consumed;
        }
        self.end(idx, error)
    }

    fn end(&mut self, input: usize, error: Option<String>) -> bool {
        self.emit(SourceMsg::End { input, error }, 0)
    }

    /// Adds a message to the batch and sends the batch once it holds a chunk's bytes;
    /// false when the receiver went away.
    fn emit(&mut self, msg: SourceMsg, bytes: usize) -> bool {
        self.batch.push(msg);
        self.batch_bytes += bytes;
        self.batch_bytes < self.chunk_bytes || self.flush()
    }

    /// Sends what the batch holds (a lone message as it is); false when the receiver went
    /// away.
    fn flush(&mut self) -> bool {
        self.batch_bytes = 0;
        let msg = match self.batch.len() {
            0 => return true,
            1 => self.batch.remove(0),
            _ => SourceMsg::Batch(std::mem::take(&mut self.batch)),
        };
        self.tx.send(msg).is_ok()
    }

    /// Sends the lines taken so far; false when the receiver went away.
    fn send_out(&mut self) -> bool {
        let Some((mut chunk, lines)) = self.out.take() else { return true };
        chunk.bytes_read = self.consumed_before + self.open.values().map(|c| c.splitter.consumed).sum::<u64>();
        if chunk.lines.is_empty() {
            return true;
        }
        let bytes = chunk.data.len();
        self.room = chunk.room(self.chunk_bytes);
        let msg = match lines {
            Some(lines) => SourceMsg::Decoded(chunk, lines.done()),
            None => SourceMsg::Chunk(chunk),
        };
        self.emit(msg, bytes)
    }
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

    /// Appends the whole lines the reader holds to `chunk`, until its data reaches `full`
    /// bytes: one copy and one consume for them all, and the line feeds found in one
    /// vectorised pass. A line the reader holds only in part, or one to cut, goes through
    /// [`LineSplitter::next_line`]. `Ok(false)` at end of input (no line appended).
    /// Line by line, the reader thread's own instructions were about a twentieth of a
    /// replay's (callgrind): a search set up, a copy and a consume per line.
    fn next_lines(&mut self, r: &mut dyn BufRead, chunk: &mut Chunk, full: usize) -> io::Result<bool> {
        let buf = r.fill_buf()?;
        let base = chunk.data.len();
        let mut used = 0;
        for nl in memchr::memchr_iter(b'\n', buf) {
            if nl - used > self.max {
                break;
            }
            let end = if nl > used && buf[nl - 1] == b'\r' { nl - 1 } else { nl };
            chunk.lines.push(Line { start: base + used, end: base + end, cut_from: None });
            used = nl + 1;
            if base + used >= full {
                break;
            }
        }
        if used == 0 {
            return self.next_line(r, chunk);
        }
        // The line feeds between the lines are kept: each line's range leaves its own out.
        chunk.data.extend_from_slice(&buf[..used]);
        r.consume(used);
        self.consumed += used as u64;
        chunk.bytes_read = self.consumed;
        Ok(true)
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

/// The first line feed (the `memchr` crate's vectorised search: a byte-by-byte loop cost
/// more than a tenth of a replay's instructions, measured with callgrind).
fn memchr(buf: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', buf)
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
        let name = InputName::new("t");
        let mut c = Chunk::new(0, name, 1, None);
        while s.next_line(&mut r, &mut c).unwrap() {}
        c.lines.iter().map(|l| (c.data[l.start..l.end].to_vec(), l.cut_from)).collect()
    }

    /// The chunks of `input` of about `full` bytes each, read through a buffer of
    /// `capacity` bytes.
    fn split_in_chunks(input: &[u8], max: usize, capacity: usize, full: usize) -> Vec<Chunk> {
        let mut r = io::BufReader::with_capacity(capacity, input);
        let mut s = LineSplitter::new(max);
        let (mut chunks, mut c) = (Vec::new(), Chunk::new(0, InputName::new("t"), 1, None));
        while s.next_lines(&mut r, &mut c, full).unwrap() {
            if c.data.len() >= full {
                chunks.push(std::mem::replace(&mut c, Chunk::new(0, InputName::new("t"), 1, None)));
            }
        }
        chunks.push(c);
        chunks
    }

    proptest::proptest! {
        /// Taking whole lines in bulk gives the lines read one by one — empty lines, CRLF,
        /// lines cut at the limit, lines split between two reads, a last line without its
        /// line feed — and a chunk takes no line once it is full.
        #[test]
        fn lines_taken_in_bulk_are_the_lines_read_one_by_one(input in "[a\r\n]{0,300}", max in 1usize..12, capacity in 1usize..40, full in 1usize..64) {
            let chunks = split_in_chunks(input.as_bytes(), max, capacity, full);
            let lines: Vec<_> = chunks.iter().flat_map(|c| c.lines.iter().map(|l| (c.data[l.start..l.end].to_vec(), l.cut_from))).collect();
            proptest::prop_assert_eq!(lines, split(input.as_bytes(), max));
            proptest::prop_assert_eq!(chunks.iter().map(|c| c.bytes_read).max(), Some(input.len() as u64));
            for c in &chunks {
                proptest::prop_assert!(c.lines.last().is_none_or(|l| l.start < full), "a line was taken by a full chunk");
            }
        }
    }

    #[test]
    fn a_format_prefix_is_taken_only_when_it_names_a_format() {
        let d = Format::Normalized;
        assert_eq!(parse_arg("squid:/var/log/squid/access.log.1.gz", d), (Format::Squid, "/var/log/squid/access.log.1.gz"));
        assert_eq!(parse_arg("exchange-tracking:logs/MSGTRK*.LOG", d), (Format::ExchangeTracking, "logs/MSGTRK*.LOG"));
        assert_eq!(parse_arg("Postfix:mail.log", d), (Format::Syslog, "mail.log"));
        assert_eq!(parse_arg("m365:-", d), (Format::M365, "-"));
        for path in ["logs/a:b.log", "C:\\logs\\x.log", "./squid:x.log", "squid:", "archive.jsonl"] {
            assert_eq!(parse_arg(path, Format::M365), (Format::M365, path), "{path}");
        }
    }

    /// (input, text) of each line handed over; (input, error) of each end.
    type Handed = (Vec<(usize, String)>, Vec<(usize, Option<String>)>);

    /// Reads `inputs` merged; returns what was handed over.
    fn merged(inputs: &[FileInput]) -> Handed {
        merged_in(inputs, 64).0
    }

    /// What a merge handed over, in chunks of about `chunk_bytes`.
    struct Merged {
        /// The inputs' formats.
        formats: Vec<Format>,
        /// Messages sent (a batch is one).
        hand_overs: usize,
        /// Lines handed over decoded, by input, each checked to carry the events its own
        /// text decodes to.
        decoded: BTreeMap<usize, usize>,
        /// Chunks that held the lines of more than one input.
        shared: usize,
        /// By input, the line numbers of its lines in the order handed over.
        numbers: BTreeMap<usize, Vec<u64>>,
    }

    fn merged_in(inputs: &[FileInput], chunk_bytes: usize) -> (Handed, Merged) {
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        let formats = inputs.iter().map(|i| i.format).collect();
        let inputs = inputs.to_vec();
        let reader = std::thread::spawn(move || read_merged(&inputs, &[], &tx, 1 << 16, chunk_bytes, &DecodeOptions::default()));
        let (mut handed, mut stats) = ((Vec::new(), Vec::new()), Merged { formats, hand_overs: 0, decoded: BTreeMap::new(), shared: 0, numbers: BTreeMap::new() });
        for msg in rx {
            stats.hand_overs += 1;
            take(msg, &mut handed, &mut stats);
        }
        reader.join().unwrap();
        (handed, stats)
    }

    fn take(msg: SourceMsg, handed: &mut Handed, stats: &mut Merged) {
        let text = |c: &Chunk, l: &Line| String::from_utf8_lossy(&c.data[l.start..l.end]).into_owned();
        match msg {
            SourceMsg::Chunk(c) => {
                stats.shared += usize::from(c.lines.iter().enumerate().any(|(i, _)| c.origin(i).input != c.input));
                for (i, l) in c.lines.iter().enumerate() {
                    let origin = c.origin(i);
                    assert_eq!(c.pos(i).offset, origin.line, "a line's position is its own input's line");
                    handed.0.push((origin.input, text(&c, l)));
                    stats.numbers.entry(origin.input).or_default().push(origin.line);
                }
            }
            SourceMsg::Decoded(c, mut d) => {
                for (i, l) in c.lines.iter().enumerate() {
                    let origin = c.origin(i);
                    let mut events = Vec::new();
                    let ok = d.next_line(&mut events, &mut Vec::new()).is_ok();
                    let mut again = Vec::new();
                    let decoded_again = stats.formats[origin.input].decoder(&DecodeOptions::default()).decode(text(&c, l).as_bytes(), &c.pos(i), &mut again).is_ok();
                    assert_eq!(ok, decoded_again, "line {} keeps its result", origin.line);
                    assert!(events.iter().map(|e| e.event.as_deref().unwrap()).eq(again.iter()), "line {} carries its own events", origin.line);
                    *stats.decoded.entry(origin.input).or_default() += usize::from(ok && events.len() == 1);
                    handed.0.push((origin.input, text(&c, l)));
                    stats.numbers.entry(origin.input).or_default().push(origin.line);
                }
            }
            SourceMsg::End { input, error } => handed.1.push((input, error)),
            SourceMsg::Batch(msgs) => msgs.into_iter().for_each(|m| take(m, handed, stats)),
            other => panic!("{other:?}"),
        }
    }

    fn event(t: &str, mailbox: &str) -> String {
        format!(r#"{{"type":"mailbox.access","time":"{t}","mailbox":"{mailbox}","user":"{mailbox}","protocol":"imap","result":"success"}}"#)
    }

    #[test]
    fn inputs_are_merged_by_time_keeping_each_inputs_order() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, lines: &[String]| {
            let p = dir.path().join(name);
            std::fs::write(&p, lines.join("\n") + "\n").unwrap();
            FileInput { input: Input::File(p), format: Format::Normalized }
        };
        let a = write("a.jsonl", &[event("2026-03-02T08:00:00Z", "a1"), "not json".into(), event("2026-03-02T10:00:00Z", "a3"), event("2026-03-02T12:00:00Z", "a4")]);
        let b = write("b.jsonl", &[event("2026-03-02T09:00:00Z", "b1"), event("2026-03-02T10:00:00Z", "b2"), event("2026-03-02T11:00:00+00:00", "b3")]);
        // Starts after both others end: opened last, after they are done.
        let c = write("c.jsonl", &[event("2026-03-03T08:00:00Z", "c1")]);
        let missing = FileInput { input: Input::File(dir.path().join("gone.jsonl")), format: Format::Normalized };
        let (lines, ends) = merged(&[a, b, missing, c]);
        let order: Vec<String> = lines.iter().map(|(i, l)| {
            let who = serde_json::from_str::<serde_json::Value>(l).ok().map_or("bad".to_string(), |v| v["mailbox"].as_str().unwrap().to_string());
            format!("{i}:{who}")
        }).collect();
        assert_eq!(order, ["0:a1", "0:bad", "1:b1", "0:a3", "1:b2", "1:b3", "0:a4", "3:c1"], "ties go to the input listed first; a line without a time goes with the one before it");
        let ended: Vec<(usize, bool)> = ends.iter().map(|(i, e)| (*i, e.is_some())).collect();
        assert_eq!(ended, [(2, true), (1, false), (0, false), (3, false)], "an unreadable input ends with its error; the others are read to the end");
    }

    /// Two inputs whose lines alternate in time: the runs of one line each go over in
    /// batches of about a chunk's bytes, not one hand-over per line, and no line is decoded
    /// twice. The normalized JSON input's times are read without decoding its records (the
    /// decode pool decodes them); the Microsoft 365 input's records had to be decoded for
    /// their times, so they go over decoded. Each line was read while the other input was
    /// still open, so all of the second input's are.
    #[test]
    fn interleaved_inputs_go_over_in_batches_and_are_decoded_once() {
        let dir = tempfile::tempdir().unwrap();
        let time = |h: u32, second: u32| format!("2026-03-02T{:02}:{:02}:{second:02}", h / 6 + 8, h % 6 * 10);
        let m365 = |t: String| format!(r#"{{"CreationTime":"{t}","Id":"b20e","Operation":"MailboxLogin","RecordType":2,"ResultStatus":"Succeeded","UserType":0,"Workload":"Exchange","UserId":"b@exempel.se","ClientInfoString":"Client=Microsoft.Exchange.Imap4","MailboxOwnerUPN":"b@exempel.se"}}"#);
        let write = |name: &str, lines: Vec<String>, format| {
            let p = dir.path().join(name);
            std::fs::write(&p, lines.join("\n") + "\n").unwrap();
            FileInput { input: Input::File(p), format }
        };
        let a = write("a.jsonl", (0..60).map(|h| event(&format!("{}Z", time(h, 0)), "a@exempel.se")).collect(), Format::Normalized);
        let b = write("b.jsonl", (0..60).map(|h| m365(time(h, 30))).collect(), Format::M365);
        let ((lines, ends), stats) = merged_in(&[a, b], 4096);
        let order: Vec<usize> = lines.iter().map(|(i, _)| *i).collect();
        assert_eq!(&order[..6], [0, 1, 0, 1, 0, 1], "the lines alternate");
        assert_eq!((lines.len(), ends.len()), (120, 2));
        let bytes: usize = lines.iter().map(|(_, l)| l.len()).sum();
        assert!(stats.hand_overs <= bytes / 4096 + 3, "{} hand-overs for {bytes} bytes", stats.hand_overs);
        assert_eq!(stats.decoded, BTreeMap::from([(1, 60)]), "only the Microsoft 365 records arrive decoded, all of them");
    }

    /// Two mail servers' logs of one format whose lines alternate in time: their lines
    /// share chunks (one hand-over per chunk's bytes, not per run of one input), and every
    /// line keeps its own input and line number.
    #[test]
    fn interleaved_inputs_of_one_stateless_format_share_chunks_and_keep_their_positions() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, second: u32| {
            let p = dir.path().join(name);
            let lines: Vec<String> = (0..60).map(|m| event(&format!("2026-03-02T09:{m:02}:{second:02}Z"), name)).collect();
            std::fs::write(&p, lines.join("\n") + "\n").unwrap();
            FileInput { input: Input::File(p), format: Format::Normalized }
        };
        let ((lines, ends), stats) = merged_in(&[write("a", 0), write("b", 30)], 4096);
        let order: Vec<usize> = lines.iter().map(|(i, _)| *i).collect();
        assert_eq!(&order[..6], [0, 1, 0, 1, 0, 1], "the lines alternate");
        assert!(lines.iter().all(|(i, l)| l.contains(["\"a\"", "\"b\""][*i])), "each line is named after its own input");
        assert_eq!((lines.len(), ends.len()), (120, 2));
        let bytes: usize = lines.iter().map(|(_, l)| l.len()).sum();
        assert!(stats.hand_overs <= bytes / 4096 + 3, "{} hand-overs for {bytes} bytes", stats.hand_overs);
        assert!(stats.shared >= bytes / 4096 - 1, "{} of the chunks hold both inputs", stats.shared);
        let numbered: Vec<u64> = (1..=60).collect();
        assert_eq!(stats.numbers, BTreeMap::from([(0, numbered.clone()), (1, numbered)]), "each input's lines are numbered 1, 2, … in its own order");
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
