//! `brevvakt explain ALERT_ID`: exactly which records produced an alert, for a
//! proportionate follow-up by the nearest manager.
//!
//! Reads the alert (or its follow-ups: an id matches an alert's `id` or `finding`) from an
//! alerts file and prints, for each evidence position, the record at that position in its
//! source file (plain, gzip or zstd; `file:line`). Only those records are read and shown —
//! nothing else about the person. Positions in Kafka topics are printed as
//! `topic/partition/offset` for retrieval with a Kafka client. A `mailbox_not_read` alert
//! rests on the *absence* of reads; its explanation says so and gives the last read seen.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{Context, Result};

use crate::alert::Alert;
use crate::event::SourcePos;
use crate::sources::file::{open, Input};

/// Writes the explanation of `id` found in `alerts_file`; returns false when no alert has it.
pub fn explain(alerts_file: &Path, id: &str, out: &mut dyn Write) -> Result<bool> {
    let alerts = matching(alerts_file, id)?;
    if alerts.is_empty() {
        return Ok(false);
    }
    for a in &alerts {
        describe(a, out)?;
    }
    let positions: Vec<&SourcePos> = alerts.iter().flat_map(|a| &a.evidence.events).collect();
    for (pos, record) in records(&positions)? {
        writeln!(out, "  {pos}\n    {record}")?;
    }
    Ok(true)
}

fn matching(alerts_file: &Path, id: &str) -> Result<Vec<Alert>> {
    let f = open(&Input::File(alerts_file.to_path_buf()))?;
    let mut found = Vec::new();
    for (n, line) in f.lines().enumerate() {
        let line = line?;
        let a: Alert = serde_json::from_str(&line).with_context(|| format!("{}:{}", alerts_file.display(), n + 1))?;
        if a.id == id || a.finding == id {
            found.push(a);
        }
    }
    Ok(found)
}

fn describe(a: &Alert, out: &mut dyn Write) -> Result<()> {
    writeln!(out, "{} {:?} {:?} at {} — mailbox {}", a.id, a.rule, a.status, a.time.to_rfc3339(), a.mailbox)?;
    writeln!(out, "  rule: {}", a.policy)?;
    if let Some(m) = &a.manager {
        writeln!(out, "  route to: {m}{}", a.org_unit.as_deref().map(|u| format!(" ({u})")).unwrap_or_default())?;
    }
    if let Some(day) = a.day.filter(|_| a.evidence.events.is_empty()) {
        let last = a.evidence.last_read.map_or("none in the stream".into(), |t| t.to_rfc3339());
        writeln!(out, "  no read by the owner, a delegate or a member on {day} (local time); last read seen: {last}")?;
    }
    writeln!(out, "  evidence: {} record(s)", a.evidence.count)?;
    Ok(())
}

/// The records at the given positions, read once per source file.
fn records(positions: &[&SourcePos]) -> Result<Vec<(String, String)>> {
    let mut by_file: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut out = Vec::new();
    for p in positions {
        match p.partition {
            Some(_) => out.push((p.to_string(), "(in Kafka: fetch it with a Kafka client at this offset)".into())),
            None => by_file.entry(&p.name).or_default().push(p.offset),
        }
    }
    for (file, mut lines) in by_file {
        lines.sort_unstable();
        lines.dedup();
        out.extend(read_lines(file, &lines));
    }
    Ok(out)
}

fn read_lines(file: &str, wanted: &[u64]) -> Vec<(String, String)> {
    let Ok(reader) = open(&Input::File(file.into())) else {
        return wanted.iter().map(|l| (format!("{file}:{l}"), "(source file not available)".into())).collect();
    };
    let mut found = Vec::new();
    for (i, line) in reader.split(b'\n').enumerate() {
        let n = i as u64 + 1;
        if wanted.binary_search(&n).is_ok() {
            let text = line.map(|l| String::from_utf8_lossy(&l).into_owned()).unwrap_or_else(|e| format!("(unreadable: {e})"));
            found.push((format!("{file}:{n}"), text));
        }
        if wanted.last().is_some_and(|&last| n >= last) {
            break;
        }
    }
    found
}
