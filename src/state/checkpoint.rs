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
    let tmp = dir.join(format!(".{name}.tmp"));
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
mod tests {
    use super::*;

    fn sample(seq: u64) -> Checkpoint {
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
        fs::write(dir.path().join(".checkpoint-00000000000000000001.bvck.tmp"), b"half").unwrap();
        assert!(load_newest(dir.path()).unwrap().is_none());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
