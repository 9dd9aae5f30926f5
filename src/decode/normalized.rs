//! Decoder for brevvakt's normalized JSON Lines: one JSON object per line with `type`,
//! `time` and the type's fields (see `schemas/*.schema.json`).
//!
//! | JSON field | Event field | notes |
//! |---|---|---|
//! | `type` | [`EventBody`] variant | unknown type → `unknown_type` |
//! | `time` | `Event::time` | RFC 3339 with offset, 1990–2200, else `bad_time` |
//! | `source` | — | ignored: the reader's own position is attached |
//! | other | the variant's fields | unknown fields are ignored (forward compatible) |
//!
//! A `subject` field, if an upstream wrongly sends one, is ignored and never stored.

use serde::Deserialize;

use super::{parse_time, utf8, DecodeError, Decoder, ErrorReason};
use crate::event::{Event, EventBody, SourcePos};

/// Decodes normalized JSON Lines.
#[derive(Debug, Default, Clone, Copy)]
pub struct NormalizedDecoder;

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    time: std::borrow::Cow<'a, str>,
    #[serde(flatten)]
    body: EventBody,
}

impl Decoder for NormalizedDecoder {
    fn decode(&mut self, line: &[u8], pos: &SourcePos, out: &mut Vec<Event>) -> Result<(), DecodeError> {
        let text = utf8(line)?;
        let wire: Wire = serde_json::from_str(text).map_err(classify)?;
        let time = parse_time(&wire.time)?;
        out.push(Event { time, source: pos.clone(), body: wire.body });
        Ok(())
    }
}

/// Maps a serde_json error onto the bounded reasons.
fn classify(e: serde_json::Error) -> DecodeError {
    use serde_json::error::Category;
    let msg = e.to_string();
    let reason = match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => ErrorReason::Syntax,
        Category::Data if msg.starts_with("missing field") => ErrorReason::MissingField,
        Category::Data if msg.contains("`mail.message`") => ErrorReason::UnknownType,
        Category::Data => ErrorReason::InvalidValue,
    };
    DecodeError::new(reason, msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SourcePos;

    fn decode(line: &str) -> Result<Vec<Event>, DecodeError> {
        let mut out = Vec::new();
        NormalizedDecoder.decode(line.as_bytes(), &SourcePos::line("t".into(), 1), &mut out)?;
        Ok(out)
    }

    #[test]
    fn access_event_decodes_with_normalised_addresses() {
        let ev = decode(r#"{"type":"mailbox.access","time":"2026-03-02T08:00:00+01:00","mailbox":"Anna@Exempel.se","user":"anna@exempel.se","protocol":"imap","result":"success"}"#).unwrap();
        match &ev[0].body {
            EventBody::Access(a) => assert_eq!(a.mailbox, "anna@exempel.se"),
            other => panic!("{other:?}"),
        }
        assert_eq!(ev[0].time.to_rfc3339(), "2026-03-02T07:00:00+00:00");
    }

    #[test]
    fn reasons_are_classified() {
        let r = |l: &str| decode(l).unwrap_err().reason;
        assert_eq!(r("{not json"), ErrorReason::Syntax);
        assert_eq!(r(r#"{"type":"mail.carrier_pigeon","time":"2026-03-02T08:00:00+01:00"}"#), ErrorReason::UnknownType);
        assert_eq!(r(r#"{"type":"mailbox.access","time":"2026-03-02T08:00:00+01:00","user":"a@b.se","protocol":"imap","result":"success"}"#), ErrorReason::MissingField);
        assert_eq!(r(r#"{"type":"mailbox.access","time":"2026-03-02T08:00:00","mailbox":"a@b.se","user":"a@b.se","protocol":"imap","result":"success"}"#), ErrorReason::BadTime);
        assert_eq!(r(r#"{"type":"mailbox.access","time":"9999-03-02T08:00:00Z","mailbox":"a@b.se","user":"a@b.se","protocol":"imap","result":"success"}"#), ErrorReason::BadTime);
        assert_eq!(r(r#"{"type":"mail.message","time":"2026-03-02T08:00:00Z","message_id":"x","sender":"a@b.se","recipients":["c@d.se"],"direction":"inbound","action":"deliver","classification":7}"#), ErrorReason::InvalidValue);
    }
}
