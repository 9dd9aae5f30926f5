//! The sample generator: deterministic, well-formed where it should be, malformed where it
//! should be, and with a ground truth that covers every rule. (Whether the detectors find
//! exactly the truth is the end-to-end test's business, not this file's.)

use std::collections::{BTreeSet, HashSet};

use brevvakt::calendar::TZ;
use brevvakt::event::{EventBody, EVENT_TYPES};
use brevvakt::generate::{generate, GenOptions, GenStats};
use chrono::{DateTime, NaiveDate, Offset, Utc};
use serde_json::Value;

struct Sample {
    events: Vec<u8>,
    roster: String,
    truth: String,
    stats: GenStats,
}

fn sample(opts: &GenOptions) -> Sample {
    let (mut events, mut roster, mut truth) = (Vec::new(), Vec::new(), Vec::new());
    let stats = generate(opts, &mut events, &mut roster, &mut truth).expect("generate");
    Sample { events, roster: String::from_utf8(roster).unwrap(), truth: String::from_utf8(truth).unwrap(), stats }
}

fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty())
}

/// A line the normalized decoder accepts: UTF-8 JSON, a known type, a time with its
/// offset, and every required field of the type.
fn good_event(line: &[u8]) -> Option<(DateTime<Utc>, &str, EventBody, Value)> {
    let v: Value = serde_json::from_str(std::str::from_utf8(line).ok()?).ok()?;
    let ty = EVENT_TYPES.iter().find(|t| v["type"] == **t)?;
    let time = DateTime::parse_from_rfc3339(v["time"].as_str()?).ok()?;
    let body: EventBody = serde_json::from_value(v.clone()).ok()?;
    Some((time.with_timezone(&Utc), ty, body, v))
}

fn truth_lines(s: &Sample) -> Vec<Value> {
    s.truth.lines().map(|l| serde_json::from_str(l).expect("truth line is JSON")).collect()
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let opts = GenOptions::default();
    let (a, b) = (sample(&opts), sample(&opts));
    assert_eq!(a.events, b.events);
    assert_eq!(a.roster, b.roster);
    assert_eq!(a.truth, b.truth);
    assert_eq!(a.stats, b.stats);
    let c = sample(&GenOptions { seed: 2, ..opts });
    assert_ne!(a.events, c.events);
    assert_ne!(a.roster, c.roster);
    assert_ne!(a.truth, c.truth);
}

#[test]
fn every_good_line_is_a_known_event_with_the_stockholm_offset_in_time_order() {
    let s = sample(&GenOptions::default());
    let (mut good, mut bad, mut types) = (0u64, 0u64, BTreeSet::new());
    let mut last: Option<DateTime<Utc>> = None;
    for line in lines(&s.events) {
        let Some((t, ty, _, v)) = good_event(line) else {
            bad += 1;
            continue;
        };
        let offset = DateTime::parse_from_rfc3339(v["time"].as_str().unwrap()).unwrap().offset().local_minus_utc();
        assert_eq!(offset, t.with_timezone(&TZ).offset().fix().local_minus_utc(), "{v}");
        assert!(last.is_none_or(|l| l <= t), "out of order: {v}");
        last = Some(t);
        types.insert(ty);
        good += 1;
    }
    assert_eq!((good, bad), (s.stats.events, s.stats.malformed));
    assert_eq!(types, EVENT_TYPES.into_iter().collect());
}

#[test]
fn malformed_lines_are_the_requested_fraction() {
    for (fraction, opts) in [
        (0.002, GenOptions::default()),
        (0.05, GenOptions { mailboxes: 100, days: 3, malformed: 0.05, ..GenOptions::default() }),
        (0.0, GenOptions { mailboxes: 100, days: 3, malformed: 0.0, ..GenOptions::default() }),
    ] {
        let s = sample(&opts);
        let total = lines(&s.events).count() as f64;
        let bad = lines(&s.events).filter(|l| good_event(l).is_none()).count() as f64;
        assert_eq!(bad as u64, s.stats.malformed);
        assert!((bad / total - fraction).abs() <= fraction * 0.25 + 1.0 / total, "{bad} of {total} for {fraction}");
    }
}

#[test]
fn malformed_lines_cover_every_kind_of_damage() {
    let opts = GenOptions { mailboxes: 100, days: 3, malformed: 0.05, ..GenOptions::default() };
    let s = sample(&opts);
    let mut kinds = BTreeSet::new();
    for line in lines(&s.events).filter(|l| good_event(l).is_none()) {
        let kind = match std::str::from_utf8(line) {
            Err(_) => "not_utf8",
            Ok(text) => match serde_json::from_str::<Value>(text) {
                Err(_) => "syntax",
                Ok(v) if v["type"] == "mail.fax" => "unknown_type",
                Ok(v) if v.get("time").is_none() => "missing_field",
                Ok(_) => "bad_time",
            },
        };
        kinds.insert(kind);
    }
    assert_eq!(kinds, ["bad_time", "missing_field", "not_utf8", "syntax", "unknown_type"].into_iter().collect());
}

#[test]
fn truth_covers_every_rule_sorted_and_unique() {
    let s = sample(&GenOptions::default());
    let truth = truth_lines(&s);
    assert_eq!(truth.len() as u64, s.stats.violations);
    let count = |rule: &str| truth.iter().filter(|t| t["rule"] == rule).count();
    assert!(count("mailbox_not_read") >= 3, "{}", s.truth);
    assert!(count("external_forwarding") >= 3, "{}", s.truth);
    assert!(count("classified_mail") >= 3, "{}", s.truth);
    let listed: Vec<&str> = s.truth.lines().collect();
    let mut sorted = listed.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(listed, sorted);
}

#[test]
fn unread_days_are_required_days_and_targets_are_lower_case() {
    let s = sample(&GenOptions::default());
    let calendar = brevvakt::calendar::Calendar::swedish();
    for t in truth_lines(&s) {
        match t["rule"].as_str().unwrap() {
            "mailbox_not_read" => {
                let day: NaiveDate = t["day"].as_str().unwrap().parse().unwrap();
                assert!(calendar.is_required(day).unwrap(), "{t}");
            }
            "external_forwarding" => {
                let target = t["target"].as_str().unwrap();
                assert_eq!(target, target.to_lowercase());
                assert!(!target.ends_with("exempel.se"), "{t}");
            }
            _ => assert!(matches!(t["level"].as_u64(), Some(2 | 3)), "{t}"),
        }
    }
}

#[test]
fn each_classified_violation_is_one_message_event() {
    let s = sample(&GenOptions::default());
    let mut seen: Vec<String> = Vec::new();
    for (_, _, body, _) in lines(&s.events).filter_map(good_event) {
        if let EventBody::Message(m) = body {
            seen.push(m.message_id.into());
        }
    }
    for t in truth_lines(&s).iter().filter(|t| t["rule"] == "classified_mail") {
        let id = t["message_id"].as_str().unwrap();
        assert_eq!(seen.iter().filter(|s| *s == id).count(), 1, "{id}");
    }
}

#[test]
fn roster_lists_every_local_sender_and_recipient() {
    let s = sample(&GenOptions::default());
    let mut rows = s.roster.lines();
    assert_eq!(rows.next(), Some("address,kind,owners,members,manager,org_unit,aliases,exemptions"));
    let addresses: HashSet<&str> = rows.map(|r| r.split(',').next().unwrap()).collect();
    assert_eq!(addresses.len(), GenOptions::default().mailboxes);
    let local = |a: &str| a == "exempel.se" || a.ends_with("@exempel.se") || a.ends_with(".exempel.se");
    for (_, _, body, v) in lines(&s.events).filter_map(good_event) {
        if let EventBody::Message(m) = body {
            for a in std::iter::once(&m.sender).chain(&m.recipients).chain(&m.original_recipient).filter(|a| local(a)) {
                assert!(addresses.contains(a.as_str()), "{a} in {v}");
            }
        }
    }
}

#[test]
fn no_subject_text_anywhere() {
    let s = sample(&GenOptions::default());
    for line in lines(&s.events) {
        let text = String::from_utf8_lossy(line);
        assert!(!text.contains("\"subject\""), "{text}");
    }
}

#[test]
fn impossible_options_are_refused() {
    let refused = |opts: GenOptions| {
        let err = generate(&opts, &mut Vec::new(), &mut Vec::new(), &mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{opts:?}");
    };
    refused(GenOptions { mailboxes: 5, ..GenOptions::default() });
    refused(GenOptions { days: 0, ..GenOptions::default() });
    refused(GenOptions { malformed: 1.0, ..GenOptions::default() });
    refused(GenOptions { malformed: f64::NAN, ..GenOptions::default() });
}
