//! What every fuzz target checks, shared by the one-per-format targets in `fuzz_targets/`.
//!
//! A decoder target feeds its input, split into lines at `\n`, through a fresh decoder of
//! one format and then ends the input. The property is the one `brevvakt::decode`
//! promises: no panic, and every line is either decoded (events within the supported
//! years) or rejected with a reason that says what was wrong; what the decoder still holds
//! at the end is handed over once, as events or as an unfinished record that began at one
//! of the lines fed. For the normalized format, the one-pass decoder must also read every
//! line it accepts as the general `serde_json` path does. The config target parses the input as a
//! config file: valid or a list of errors, never a panic.

use std::path::Path;

use brevvakt::config::Settings;
use brevvakt::decode::{DecodeError, DecodeOptions, Format, YEARS};
use brevvakt::domains::OrgDomains;
use brevvakt::event::{Event, InputName, SourcePos};
use chrono::Datelike;

/// The options a deployment sets: a year for RFC 3164 syslog, the organisation's domain.
fn options() -> DecodeOptions {
    DecodeOptions {
        syslog_year: Some(2026),
        org_domains: OrgDomains::new(&["exempel.se"]).expect("valid domain"),
        ..DecodeOptions::default()
    }
}

/// Decodes `data` line by line with one fresh decoder of `format`, then ends the input.
pub fn decode_lines(format: Format, data: &[u8]) {
    let mut decoder = format.decoder(&options());
    let name = InputName::new("fuzz");
    let mut lines = 0;
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        lines = i as u64 + 1;
        let mut out = Vec::new();
        let result = decoder.decode(line, &SourcePos::line(name, lines), &mut out);
        let decoded = result.is_ok();
        check(result, &out);
        if let (Format::Normalized, Ok(text)) = (format, std::str::from_utf8(line)) {
            if let Err(e) = brevvakt::decode::normalized::paths_agree(text) {
                panic!("the normalized decoder's two paths disagree on {text:?}: {e}");
            }
            // The merge orders by the time read without decoding: the decoded time, or none.
            if let (Some(quick), true, Some(ev)) = (format.quick_time(line), decoded, out.first()) {
                assert_eq!(quick, ev.time, "the time read without decoding {text:?} is not the decoded one");
            }
        }
    }
    let mut held = Vec::new();
    match decoder.finish(&mut held) {
        Ok(()) => check(Ok(()), &held),
        Err(u) => {
            assert!((1..=lines).contains(&u.pos.offset), "unfinished record at line {} of {lines}", u.pos.offset);
            check(Err(u.error), &[]);
        }
    }
    let handed_over = held.len();
    assert_eq!(decoder.finish(&mut held), Ok(()), "what was held is handed over once");
    assert_eq!(held.len(), handed_over, "what was held is handed over once");
}

/// A decoded record's events are within the supported years; a rejected one says why.
fn check(result: Result<(), DecodeError>, events: &[Event]) {
    match result {
        Ok(()) => {
            for ev in events {
                assert!(YEARS.contains(&ev.time.year()), "event time {} outside the supported years", ev.time);
            }
        }
        Err(e) => assert!(!e.detail.is_empty(), "a {:?} rejection without a detail", e.reason),
    }
}

/// Parses `data` as a config file (UTF-8 only: a config is read as text).
pub fn parse_config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Settings::from_toml(text, Path::new("."));
    }
}
