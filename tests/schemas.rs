//! The JSON Schemas in `schemas/` against the real thing: every line of the bundled
//! sample week is accepted by the schemas exactly when the normalized decoder accepts it,
//! the alerts a replay of that week writes match `alert.schema.json`, and records the
//! model forbids (a subject text, classification 4, unknown encryption, a time without an
//! offset, an unknown rule) are refused.
//!
//! The schemas refer to each other by relative `$ref`s resolved against their `$id`s;
//! every file is registered as a resource under its `$id`, so nothing is fetched (the
//! `jsonschema` dev-dependency is built without its file and HTTP resolvers).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use brevvakt::config::Settings;
use brevvakt::decode::normalized::NormalizedDecoder;
use brevvakt::decode::Decoder;
use brevvakt::event::{SourcePos, EVENT_TYPES};
use brevvakt::pipeline::{replay, Options};
use brevvakt::roster::Roster;
use brevvakt::sinks::dead_letter::DeadLetters;
use brevvakt::sinks::jsonl::{AlertFormat, JsonlSink};
use brevvakt::sources::file::Input;
use jsonschema::{Resource, Validator};
use serde_json::{json, Value};

const SAMPLE: &str = "samples/week-2026-06-15.jsonl.zst";
const ROSTER: &str = "samples/roster.csv";
const UNTIL: &str = "2026-06-22T00:00:00+02:00";
/// Lines of the bundled sample the decoder refuses (see `tests/replay.rs`).
const SAMPLE_BAD_LINES: usize = 30;
const ID_BASE: &str = "https://brevvakt.example/schemas/";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `schemas/*.schema.json`, by file name.
fn schema_files() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(root().join("schemas")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.ends_with(".schema.json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let schema: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            out.insert(name, schema);
        }
    }
    out
}

/// A draft 2020-12 validator for `schemas/<name>`, with every schema file registered
/// under its `$id` so that `$ref`s between them resolve offline.
fn validator(name: &str) -> Validator {
    let files = schema_files();
    let mut opts = jsonschema::draft202012::options();
    for schema in files.values() {
        let id = schema["$id"].as_str().unwrap().to_string();
        opts.with_resource(id, Resource::from_contents(schema.clone()).unwrap());
    }
    let schema = files.get(name).unwrap_or_else(|| panic!("schemas/{name} is missing"));
    opts.build(schema).unwrap_or_else(|e| panic!("schemas/{name} does not compile: {e}"))
}

/// The per-type validators, by event type.
fn type_validators() -> BTreeMap<&'static str, Validator> {
    EVENT_TYPES.iter().map(|t| (*t, validator(&format!("{t}.schema.json")))).collect()
}

/// Every error `v` reports for `instance`, one per line.
fn errors(v: &Validator, instance: &Value) -> String {
    v.iter_errors(instance).map(|e| format!("  {} at {}", e, e.instance_path)).collect::<Vec<_>>().join("\n")
}

/// The sample's lines (without terminators), as the file reader splits them.
fn sample_lines() -> Vec<Vec<u8>> {
    let bytes = zstd::decode_all(std::fs::File::open(root().join(SAMPLE)).unwrap()).unwrap();
    let mut lines: Vec<Vec<u8>> = bytes.split(|b| *b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec()).collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
}

#[test]
fn every_schema_file_is_draft_2020_12_with_id_title_and_described_properties() {
    fn walk(file: &str, at: &str, v: &Value, missing: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::Object(props)) = map.get("properties") {
                    for (name, prop) in props {
                        if prop.get("description").and_then(Value::as_str).filter(|d| !d.is_empty()).is_none() {
                            missing.push(format!("{file}: {at}/properties/{name}"));
                        }
                    }
                }
                // `if` subschemas only test a value: their properties define nothing.
                for (k, child) in map.iter().filter(|(k, _)| k.as_str() != "if") {
                    walk(file, &format!("{at}/{k}"), child, missing);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(file, &format!("{at}/{i}"), child, missing);
                }
            }
            _ => {}
        }
    }
    let files = schema_files();
    let mut expected: Vec<String> = EVENT_TYPES.iter().map(|t| format!("{t}.schema.json")).collect();
    expected.extend(["event.schema.json".to_string(), "alert.schema.json".to_string()]);
    for name in &expected {
        assert!(files.contains_key(name), "schemas/{name} is missing");
    }
    let mut missing = Vec::new();
    for (name, schema) in &files {
        assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema", "{name}");
        assert_eq!(schema["$id"], format!("{ID_BASE}{name}"), "{name}");
        assert!(schema["title"].as_str().is_some_and(|t| !t.is_empty()), "{name} has no title");
        assert!(schema["description"].as_str().is_some_and(|t| !t.is_empty()), "{name} has no description");
        walk(name, "", schema, &mut missing);
        // Compiling also checks the schema against the draft 2020-12 meta-schema.
        validator(name);
    }
    assert!(missing.is_empty(), "properties without a description:\n{}", missing.join("\n"));
}

#[test]
fn the_sample_week_is_accepted_by_the_schemas_exactly_where_the_decoder_accepts_it() {
    let by_type = type_validators();
    let any_event = validator("event.schema.json");
    let lines = sample_lines();
    let name = brevvakt::event::InputName::new(SAMPLE);
    let mut decoder = NormalizedDecoder;
    let (mut decoder_rejected, mut schema_rejected) = (0, 0);
    let mut validated: BTreeMap<&str, usize> = BTreeMap::new();
    let mut disagreements = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let no = i as u64 + 1;
        let mut out = Vec::new();
        let decoded = decoder.decode(line, &SourcePos::line(name, no), &mut out);
        if decoded.is_err() {
            decoder_rejected += 1;
        }
        // Accepted by the schemas: parses as JSON, has a known type, and validates against
        // that type's schema (and, equally, against the combined event schema).
        let (accepted, why) = match serde_json::from_slice::<Value>(line) {
            Err(e) => (false, format!("  not JSON: {e}")),
            Ok(v) => {
                let combined = any_event.is_valid(&v);
                match v.get("type").and_then(Value::as_str).and_then(|t| by_type.get_key_value(t)) {
                    None => {
                        assert!(!combined, "line {no}: event.schema.json accepts an unknown type");
                        (false, "  unknown type".to_string())
                    }
                    Some((t, schema)) => {
                        let ok = schema.is_valid(&v);
                        assert_eq!(ok, combined, "line {no}: {t} schema and event.schema.json disagree:\n{}", errors(&any_event, &v));
                        if ok {
                            *validated.entry(t).or_default() += 1;
                        }
                        (ok, errors(schema, &v))
                    }
                }
            }
        };
        if !accepted {
            schema_rejected += 1;
        }
        if accepted != decoded.is_ok() {
            let text = String::from_utf8_lossy(line);
            disagreements.push(format!("line {no}: decoder {decoded:?}, schema {accepted}\n{why}\n  {text}"));
        }
    }
    assert!(disagreements.is_empty(), "schemas and decoder disagree:\n{}", disagreements.join("\n"));
    assert_eq!(decoder_rejected, SAMPLE_BAD_LINES);
    assert_eq!(schema_rejected, decoder_rejected);
    assert_eq!(validated.values().sum::<usize>(), lines.len() - SAMPLE_BAD_LINES);
    for t in EVENT_TYPES {
        assert!(validated.get(t).is_some_and(|n| *n > 0), "the sample has no valid {t} line: {validated:?}");
    }
}

/// Replays the sample week through the library and returns the alert lines as written.
fn sample_alerts() -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("alerts.jsonl");
    let sink = Box::new(JsonlSink::new(std::fs::File::create(&out).unwrap(), AlertFormat::Json, 0));
    let mut dead = DeadLetters::new(&dir.path().join("dead.jsonl"));
    let roster = Roster::load(&root().join(ROSTER)).unwrap();
    let until = chrono::DateTime::parse_from_rfc3339(UNTIL).unwrap().with_timezone(&chrono::Utc);
    let opts = Options { workers: 2, until: Some(until), progress: None, state_dir: None, resume: None, metrics: None };
    let input: PathBuf = root().join(SAMPLE);
    replay(Arc::new(Settings::default_settings()), Arc::new(roster), vec![Input::File(input)], sink, &mut dead, opts).unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn alerts_from_replaying_the_sample_week_match_the_alert_schema() {
    let schema = validator("alert.schema.json");
    let alerts = sample_alerts();
    assert!(!alerts.is_empty());
    let mut bad = Vec::new();
    for a in &alerts {
        if !schema.is_valid(a) {
            bad.push(format!("{a}\n{}", errors(&schema, a)));
        }
    }
    assert!(bad.is_empty(), "{} of {} alerts do not match alert.schema.json:\n{}", bad.len(), alerts.len(), bad.join("\n"));
    for rule in ["external_forwarding", "mailbox_not_read", "classified_mail"] {
        assert!(alerts.iter().any(|a| a["rule"] == rule), "no {rule} alert to check");
    }
}

/// A valid `mail.message` line, for the negative cases to break.
fn message() -> Value {
    json!({
        "type": "mail.message", "time": "2026-06-16T08:00:00+02:00",
        "message_id": "abc@exempel.se", "sender": "anna@exempel.se", "recipients": ["x@gmail.com"],
        "direction": "outbound", "action": "relay", "server": "mx1.exempel.se",
        "subject_len": 12, "subject_hash": "59767215954764f9", "classification": 2, "encryption": "gateway:sefos",
        "source": {"name": "kafka-topic", "offset": 17, "partition": 3}, "some_future_field": {"x": 1}
    })
}

/// A valid alert, for the negative cases to break.
fn alert() -> Value {
    json!({
        "id": "0123456789abcdef0123456789abcdef", "finding": "0123456789abcdef0123456789abcdef",
        "rule": "classified_mail", "severity": "critical", "status": "open",
        "time": "2026-06-15T08:03:30Z", "mailbox": "anna@exempel.se", "manager": "chef@exempel.se",
        "org_unit": "Kansliet", "day": "2026-06-15",
        "evidence": {"events": [{"name": "week.jsonl", "offset": 12}, {"name": "topic", "offset": 9, "partition": 0}],
                     "count": 2, "message_id": "abc@exempel.se", "classification": 3, "encryption": "tls"},
        "policy": "Classified mail must be encrypted."
    })
}

#[test]
fn records_the_model_forbids_are_refused() {
    let msg_schema = validator("mail.message.schema.json");
    let any_event = validator("event.schema.json");
    let alert_schema = validator("alert.schema.json");
    assert!(msg_schema.is_valid(&message()), "{}", errors(&msg_schema, &message()));
    assert!(any_event.is_valid(&message()), "{}", errors(&any_event, &message()));
    assert!(alert_schema.is_valid(&alert()), "{}", errors(&alert_schema, &alert()));

    let patch = |f: &dyn Fn(&mut Value)| {
        let mut v = message();
        f(&mut v);
        v
    };
    let bad_events = [
        ("a subject text", patch(&|v| v["subject"] = json!("Lönelista"))),
        ("a null subject", patch(&|v| v["subject"] = Value::Null)),
        ("classification 4", patch(&|v| v["classification"] = json!(4))),
        ("classification -1", patch(&|v| v["classification"] = json!(-1))),
        ("encryption rot13", patch(&|v| v["encryption"] = json!("rot13"))),
        ("encryption gateway without a name", patch(&|v| v["encryption"] = json!("gateway:"))),
        ("a time without an offset", patch(&|v| v["time"] = json!("2026-06-16T08:00:00"))),
        ("an offset without a colon", patch(&|v| v["time"] = json!("2026-06-16T08:00:00+0200"))),
        ("a year out of range", patch(&|v| v["time"] = json!("9999-06-16T08:00:00Z"))),
        ("no time", patch(&|v| {
            v.as_object_mut().unwrap().remove("time");
        })),
        ("no recipients", patch(&|v| {
            v.as_object_mut().unwrap().remove("recipients");
        })),
        ("an unknown direction", patch(&|v| v["direction"] = json!("sideways"))),
        ("a negative source offset", patch(&|v| v["source"]["offset"] = json!(-1))),
    ];
    for (what, v) in &bad_events {
        assert!(!msg_schema.is_valid(v), "mail.message schema accepts {what}: {v}");
        assert!(!any_event.is_valid(v), "event schema accepts {what}: {v}");
    }
    let unknown_type = patch(&|v| v["type"] = json!("mail.fax"));
    assert!(!any_event.is_valid(&unknown_type), "event schema accepts an unknown type");

    // The subject is refused by every type, not only mail.message.
    let access = json!({"type": "mailbox.access", "time": "2026-06-16T08:00:00Z", "mailbox": "a@exempel.se",
                        "user": "a@exempel.se", "protocol": "imap", "result": "success"});
    assert!(any_event.is_valid(&access), "{}", errors(&any_event, &access));
    let mut with_subject = access.clone();
    with_subject["subject"] = json!("Hej");
    assert!(!any_event.is_valid(&with_subject));

    let patch_alert = |f: &dyn Fn(&mut Value)| {
        let mut v = alert();
        f(&mut v);
        v
    };
    let bad_alerts = [
        ("an unknown rule", patch_alert(&|v| v["rule"] = json!("reply_all"))),
        ("an upper-case id", patch_alert(&|v| v["id"] = json!("0123456789ABCDEF0123456789ABCDEF"))),
        ("a short finding", patch_alert(&|v| v["finding"] = json!("0123456789abcdef"))),
        ("a non-UTC time", patch_alert(&|v| v["time"] = json!("2026-06-15T10:03:30+02:00"))),
        ("an unknown property", patch_alert(&|v| v["subject"] = json!("Hej"))),
        ("an unknown evidence property", patch_alert(&|v| v["evidence"]["body"] = json!("..."))),
        ("evidence without count", patch_alert(&|v| {
            v["evidence"].as_object_mut().unwrap().remove("count");
        })),
        ("classification 4", patch_alert(&|v| v["evidence"]["classification"] = json!(4))),
        ("a day with a time", patch_alert(&|v| v["day"] = json!("2026-06-15T00:00:00Z"))),
    ];
    for (what, v) in &bad_alerts {
        assert!(!alert_schema.is_valid(v), "alert schema accepts {what}: {v}");
    }
}
