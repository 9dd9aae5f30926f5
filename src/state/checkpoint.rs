//! Durable checkpoints: every shard's state *together with* the input positions and output
//! offsets it covers, so a restarted run continues exactly where the checkpoint ends.
//!
//! File format (`checkpoint-<seq>.bvck`): one header line
//! `BREVVAKT-CHECKPOINT <format version> <payload bytes> <sha256 of payload, hex>` followed
//! by the payload: zstd-compressed JSON of [`Checkpoint`].
//!
//! Guarantees:
//! - Atomic: written to a temporary file, fsynced, renamed into place, and the directory
//!   fsynced; a crash at any point leaves either the previous or the new checkpoint, never
//!   a torn one. Temporary files of a crashed write are removed on the next start.
//! - Verified: a checkpoint whose checksum or length does not match is skipped (with a
//!   warning) in favour of the next older valid one; one written by a *newer* format
//!   version is refused with a clear error, never half-loaded.
//! - Consistent: the shards' states, the router's and watermark's state and the positions
//!   are all taken at the same batch boundary (see `pipeline`), and the alerts up to that
//!   boundary were flushed to the sink before the checkpoint was written.
//!
//! The newest [`KEEP`] checkpoints are kept.
//!
//! Partition checkpoints (`run` against Kafka): the state of each partition this instance
//! owns goes to `partition-<n>/` of the state directory, which instances of one consumer
//! group share (a shared file system): [`Checkpoint::of_partition`] cuts one out of a whole
//! snapshot and [`load_partition`] gives the new owner of a partition the newest valid one.
//! Their `seq` is the sum of the partition's input offsets, so files written by different
//! instances order by stream position; temporary files carry the writer's process id, and
//! loading a shared partition directory never removes another instance's temporary file.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::detect::MailboxState;
use crate::pipeline::router::RouterState;
use crate::pipeline::watermark::Watermark;
use crate::sources::kafka::parse_input_name;
use crate::state::ownership::Ownership;

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Checkpoints kept in the directory.
pub const KEEP: usize = 2;
const MAGIC: &str = "BREVVAKT-CHECKPOINT";

/// How far one input was processed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputPosition {
    /// The input's name (path or `-`).
    pub name: String,
    /// Lines fully processed.
    pub lines: u64,
    /// Whether the input was read to its end.
    pub done: bool,
}

/// Everything needed to continue a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format version of the payload.
    pub version: u32,
    /// Stream sequence number of the last record covered.
    pub seq: u64,
    /// Input positions, in reading order.
    pub inputs: Vec<InputPosition>,
    /// Watermark input index of each input that had one.
    pub watermark_inputs: BTreeMap<usize, usize>,
    /// Bytes of the alerts file covered (alerts after it are regenerated on resume).
    pub alerts_bytes: u64,
    /// Bytes of the dead-letter file covered.
    pub dead_letter_bytes: u64,
    /// The router's state.
    pub router: RouterState,
    /// The watermark.
    pub watermark: Watermark,
    /// The last closed day, once known.
    pub closed_through: Option<NaiveDate>,
    /// The stream's first day, once known.
    pub first_day: Option<NaiveDate>,
    /// Every mailbox's state, sorted by address.
    pub mailboxes: Vec<(String, MailboxState)>,
}

/// Writes `cp` atomically into `dir` and prunes old checkpoints; returns the file written.
/// Any failure (a missing or unwritable directory, a full disk) names the directory, and
/// leaves the checkpoints already there untouched.
pub fn write(dir: &Path, cp: &Checkpoint) -> Result<PathBuf> {
    write_in(dir, cp).with_context(|| format!("cannot write a checkpoint in the state directory {}", dir.display()))
}

fn write_in(dir: &Path, cp: &Checkpoint) -> Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let json = serde_json::to_vec(cp)?;
    let payload = zstd::encode_all(json.as_slice(), 3)?;
    let digest = hex(&Sha256::digest(&payload));
    let name = format!("checkpoint-{:020}.bvck", cp.seq);
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut f = File::create(&tmp)?;
    writeln!(f, "{MAGIC} {FORMAT_VERSION} {} {digest}", payload.len())?;
    f.write_all(&payload)?;
    f.sync_all().context("fsync of checkpoint")?;
    drop(f);
    let path = dir.join(&name);
    fs::rename(&tmp, &path)?;
    File::open(dir)?.sync_all().context("fsync of state directory")?;
    prune(dir)?;
    Ok(path)
}

/// Loads the newest valid checkpoint in `dir`, if any.
pub fn load_newest(dir: &Path) -> Result<Option<Checkpoint>> {
    if !dir.exists() {
        return Ok(None);
    }
    remove_temporaries(dir)?;
    newest_valid(dir)
}

/// The directory of partition `partition`'s checkpoints under the state directory `dir`.
pub fn partition_dir(dir: &Path, partition: u32) -> PathBuf {
    dir.join(format!("partition-{partition}"))
}

/// Loads the newest valid checkpoint of a partition, if any (leaving temporary files alone:
/// another instance may be writing).
pub fn load_partition(dir: &Path, partition: u32) -> Result<Option<Checkpoint>> {
    let dir = partition_dir(dir, partition);
    if !dir.exists() {
        return Ok(None);
    }
    newest_valid(&dir)
}

impl Checkpoint {
    /// The part of this checkpoint that belongs to partition `partition`: its inputs (of
    /// every topic), its mailboxes and their delegations.
    pub fn of_partition(&self, partition: u32, ownership: &Ownership) -> Checkpoint {
        let ours = |mailbox: &str| ownership.partition_of(mailbox) == partition;
        let inputs: Vec<InputPosition> = self.inputs.iter().filter(|p| parse_input_name(&p.name).is_some_and(|(_, n)| n as u32 == partition)).cloned().collect();
        let mut router = self.router.clone();
        router.delegates.retain(|m, _| ours(m));
        Checkpoint {
            seq: inputs.iter().map(|p| p.lines).sum(),
            inputs,
            watermark_inputs: BTreeMap::new(),
            router,
            mailboxes: self.mailboxes.iter().filter(|(m, _)| ours(m)).cloned().collect(),
            ..self.clone_header()
        }
    }

    /// Everything but the per-input and per-mailbox parts.
    fn clone_header(&self) -> Checkpoint {
        Checkpoint {
            version: self.version,
            seq: self.seq,
            inputs: Vec::new(),
            watermark_inputs: BTreeMap::new(),
            alerts_bytes: self.alerts_bytes,
            dead_letter_bytes: self.dead_letter_bytes,
            router: RouterState::default(),
            watermark: self.watermark.clone(),
            closed_through: self.closed_through,
            first_day: self.first_day,
            mailboxes: Vec::new(),
        }
    }
}

fn newest_valid(dir: &Path) -> Result<Option<Checkpoint>> {
    for path in list(dir)?.into_iter().rev() {
        match read(&path) {
            Ok(cp) => return Ok(Some(cp)),
            Err(e) if e.downcast_ref::<NewerFormat>().is_some() => return Err(e),
            Err(e) => tracing::warn!(checkpoint = %path.display(), error = %format!("{e:#}"), "skipping invalid checkpoint"),
        }
    }
    Ok(None)
}

/// A checkpoint written by a newer brevvakt.
#[derive(Debug, thiserror::Error)]
#[error("{path}: checkpoint format {found} is newer than this brevvakt understands ({FORMAT_VERSION}); upgrade brevvakt or use a fresh --state-dir")]
pub struct NewerFormat {
    path: String,
    found: u32,
}

/// Reads and verifies one checkpoint file.
pub fn read(path: &Path) -> Result<Checkpoint> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let nl = bytes.iter().position(|&b| b == b'\n').context("no header line")?;
    let header = std::str::from_utf8(&bytes[..nl]).context("header is not text")?;
    let (version, len, digest) = parse_header(header)?;
    if version > FORMAT_VERSION {
        return Err(NewerFormat { path: path.display().to_string(), found: version }.into());
    }
    let payload = &bytes[nl + 1..];
    if payload.len() as u64 != len || hex(&Sha256::digest(payload)) != digest {
        bail!("checksum or length mismatch (truncated or corrupted)");
    }
    let json = zstd::decode_all(payload)?;
    let cp: Checkpoint = serde_json::from_slice(&json)?;
    if cp.version != version {
        bail!("payload version {} differs from header version {version}", cp.version);
    }
    Ok(cp)
}

fn parse_header(h: &str) -> Result<(u32, u64, String)> {
    let parts: Vec<&str> = h.split(' ').collect();
    match parts.as_slice() {
        [MAGIC, v, len, digest] => Ok((v.parse()?, len.parse()?, digest.to_string())),
        _ => bail!("not a brevvakt checkpoint"),
    }
}

fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("checkpoint-") && n.ends_with(".bvck")))
        .collect();
    files.sort();
    Ok(files)
}

fn prune(dir: &Path) -> Result<()> {
    let files = list(dir)?;
    for old in files.iter().take(files.len().saturating_sub(KEEP)) {
        fs::remove_file(old)?;
    }
    Ok(())
}

fn remove_temporaries(dir: &Path) -> Result<()> {
    for e in fs::read_dir(dir)? {
        let p = e?.path();
        if p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(".checkpoint-") && n.ends_with(".tmp")) {
            fs::remove_file(&p)?;
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small checkpoint at `seq`.
    pub(crate) fn sample(seq: u64) -> Checkpoint {
        Checkpoint {
            version: FORMAT_VERSION,
            seq,
            inputs: vec![InputPosition { name: "a.jsonl".into(), lines: seq, done: false }],
            watermark_inputs: BTreeMap::from([(0, 0)]),
            alerts_bytes: 10,
            dead_letter_bytes: 0,
            router: RouterState::default(),
            watermark: Watermark::new(std::time::Duration::from_secs(60)),
            closed_through: None,
            first_day: None,
            mailboxes: vec![("anna@exempel.se".into(), MailboxState::default())],
        }
    }

    #[test]
    fn round_trip_keeps_the_newest_and_prunes() {
        let dir = tempfile::tempdir().unwrap();
        for s in [5, 10, 15] {
            write(dir.path(), &sample(s)).unwrap();
        }
        assert_eq!(list(dir.path()).unwrap().len(), KEEP);
        assert_eq!(load_newest(dir.path()).unwrap().unwrap().seq, 15);
    }

    #[test]
    fn a_corrupt_newest_checkpoint_falls_back_to_the_older_valid_one() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &sample(5)).unwrap();
        let newest = write(dir.path(), &sample(10)).unwrap();
        let mut bytes = fs::read(&newest).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&newest, bytes).unwrap();
        assert!(read(&newest).is_err());
        assert_eq!(load_newest(dir.path()).unwrap().unwrap().seq, 5);
    }

    #[test]
    fn a_newer_format_is_refused_not_half_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), &sample(5)).unwrap();
        let text = fs::read(&p).unwrap();
        let patched = [format!("{MAGIC} 99").as_bytes(), &text[MAGIC.len() + 2..]].concat();
        fs::write(&p, patched).unwrap();
        let err = load_newest(dir.path()).unwrap_err().to_string();
        assert!(err.contains("newer than this brevvakt"), "{err}");
    }

    #[test]
    fn leftover_temporary_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".checkpoint-00000000000000000001.bvck.77.tmp"), b"half").unwrap();
        assert!(load_newest(dir.path()).unwrap().is_none());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_partition_checkpoint_holds_only_that_partitions_inputs_and_mailboxes() {
        let own = Ownership::new(2, [0, 1].into_iter().collect());
        let boxes: Vec<String> = (0..20).map(|i| format!("user{i}@kommun.se")).collect();
        let mut cp = sample(0);
        cp.inputs = vec![
            InputPosition { name: "mail/0".into(), lines: 7, done: false },
            InputPosition { name: "mail/1".into(), lines: 9, done: false },
            InputPosition { name: "proxy/1".into(), lines: 4, done: false },
        ];
        cp.mailboxes = boxes.iter().map(|b| (b.clone(), MailboxState::default())).collect();
        cp.router.delegates = boxes.iter().map(|b| (b.clone(), ["delegate".to_string()].into())).collect();
        let one = cp.of_partition(1, &own);
        assert_eq!(one.inputs.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["mail/1", "proxy/1"]);
        assert_eq!(one.seq, 13, "ordered by the partition's stream position");
        assert!(!one.mailboxes.is_empty() && one.mailboxes.iter().all(|(m, _)| own.partition_of(m) == 1));
        assert_eq!(one.mailboxes.len() + cp.of_partition(0, &own).mailboxes.len(), boxes.len());
        assert!(one.router.delegates.keys().all(|m| own.partition_of(m) == 1));
        let dir = tempfile::tempdir().unwrap();
        write(&partition_dir(dir.path(), 1), &one).unwrap();
        let writing = partition_dir(dir.path(), 1).join(".checkpoint-00000000000000000020.bvck.9.tmp");
        fs::write(&writing, b"another instance is writing").unwrap();
        assert_eq!(load_partition(dir.path(), 1).unwrap().unwrap().seq, 13);
        assert!(writing.exists(), "another instance's temporary file is left alone");
        assert!(load_partition(dir.path(), 0).unwrap().is_none());
    }
}
