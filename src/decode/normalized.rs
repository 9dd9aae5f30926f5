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
//!
//! Speed: a record whose first key is `type` (or `time` and then `type`), as brevvakt's
//! own writers and the generator emit, is decoded in one pass straight into its variant,
//! with keys and unescaped strings borrowed from the line. Any other record — and any
//! record the one-pass decoder refuses — is decoded by the general path (the tag may be
//! anywhere, so the object is buffered first), which alone produces error messages, so a
//! record always gives the same event or the same error whichever path it took.

use std::borrow::Cow;
use std::fmt;

use serde::de::value::{BorrowedStrDeserializer, MapAccessDeserializer, StringDeserializer};
use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, Visitor};
use serde::Deserialize;

use super::{parse_time, utf8, DecodeError, Decoder, ErrorReason};
use crate::event::{DelegationChange, Event, EventBody, ForwardingChange, MailMessage, MailboxAccess, ProxyRequest, SourcePos};

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
        let (time, body) = match one_pass(text) {
            Some(tb) => tb,
            None => {
                let wire: Wire = serde_json::from_str(text).map_err(classify)?;
                (wire.time, wire.body)
            }
        };
        let time = parse_time(&time)?;
        out.push(Event { time, source: pos.clone(), body });
        Ok(())
    }
}

/// The one-pass decoder; `None` sends the record to the general path.
fn one_pass(text: &str) -> Option<(Cow<'_, str>, EventBody)> {
    let mut de = serde_json::Deserializer::from_str(text);
    let tagged = de.deserialize_map(TagFirst).ok()?;
    de.end().ok()?;
    Some(tagged)
}

/// Visits an object whose `type` comes first (after at most a `time`).
struct TagFirst;

impl<'de> Visitor<'de> for TagFirst {
    type Value = (Cow<'de, str>, EventBody);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object starting with \"type\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut time: Option<Cow<'de, str>> = None;
        loop {
            let key: Cow<'de, str> = map.next_key()?.ok_or_else(|| A::Error::custom("no type"))?;
            match &*key {
                "type" => break,
                "time" if time.is_none() => time = Some(map.next_value()?),
                _ => return Err(A::Error::custom("type is not first")),
            }
        }
        let ty: Cow<'de, str> = map.next_value()?;
        let mut rest = Rest { map, time: &mut time };
        let body = match &*ty {
            "mail.message" => EventBody::Message(MailMessage::deserialize(MapAccessDeserializer::new(&mut rest))?),
            "mailbox.forwarding" => EventBody::Forwarding(ForwardingChange::deserialize(MapAccessDeserializer::new(&mut rest))?),
            "mailbox.access" => EventBody::Access(MailboxAccess::deserialize(MapAccessDeserializer::new(&mut rest))?),
            "proxy.request" => EventBody::Proxy(ProxyRequest::deserialize(MapAccessDeserializer::new(&mut rest))?),
            "mailbox.delegation" => EventBody::Delegation(DelegationChange::deserialize(MapAccessDeserializer::new(&mut rest))?),
            _ => return Err(A::Error::custom("unknown type")),
        };
        Ok((time.ok_or_else(|| A::Error::custom("no time"))?, body))
    }
}

/// The rest of the object, as the variant sees it: `time` is taken out on the way, and
/// a second `type` or `time` is refused (the general path reports it).
struct Rest<'t, 'de, A> {
    map: A,
    time: &'t mut Option<Cow<'de, str>>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for &mut Rest<'_, 'de, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        loop {
            let Some(key) = self.map.next_key::<Cow<'de, str>>()? else { return Ok(None) };
            match &*key {
                "time" if self.time.is_none() => *self.time = Some(self.map.next_value()?),
                "time" | "type" => return Err(A::Error::custom("duplicate field")),
                _ => {
                    return match key {
                        Cow::Borrowed(k) => seed.deserialize(BorrowedStrDeserializer::new(k)).map(Some),
                        Cow::Owned(k) => seed.deserialize(StringDeserializer::new(k)).map(Some),
                    }
                }
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
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

    /// The general path alone, for comparison.
    fn general(line: &str) -> Result<(Cow<'_, str>, EventBody), String> {
        serde_json::from_str::<Wire>(line).map(|w| (w.time, w.body)).map_err(|e| e.to_string())
    }

    #[test]
    fn both_paths_agree() {
        let lines = [
            r#"{"type":"mail.message","time":"2026-03-02T08:00:00+01:00","message_id":"a@b","sender":"<X@Gmail.com>","recipients":["SMTP:Anna@Exempel.se",""],"direction":"inbound","action":"deliver","server":"mx1","subject_len":4,"subject":"secret","classification":2,"encryption":"Gateway:Sefos"}"#,
            r#"{"time":"2026-03-02T08:00:00Z","type":"mailbox.access","mailbox":"Anna@Exempel.se","user":"anna@exempel.se","protocol":"imap","result":"success","extra":{"x":[1,2,{"y":null}]}}"#,
            r#"{ "type" : "proxy.request" , "time":"2026-03-02T08:00:00Z","user":null,"host":"Webmail.Exempel.se","path":"/owa/\u00e5","method":"GET","status":200}"#,
            r#"{"type":"mailbox.forwarding","time":"2026-03-02T08:00:00Z","mailbox":"anna@exempel.se","mechanism":"inbox_rule","targets":["x@gmail.com"],"keep_copy":true,"state":"enabled","rule":"r\"1"}"#,
            r#"{"type":"mailbox.delegation","time":"2026-03-02T08:00:00Z","mailbox":"a@exempel.se","delegate":"b@exempel.se","state":"granted"}"#,
            r#"{"t\u0079pe":"mailbox.delegation","time":"2026-03-02T08:00:00Z","mailbox":"a@exempel.se","delegate":"b@exempel.se","state":"removed"}"#,
        ];
        for l in lines {
            let fast = one_pass(l).unwrap_or_else(|| panic!("one pass refused {l}"));
            assert_eq!(Ok(fast), general(l), "{l}");
        }
    }

    #[test]
    fn the_one_pass_decoder_leaves_every_doubtful_record_to_the_general_path() {
        let lines = [
            r#"{"time":"2026-03-02T08:00:00Z","mailbox":"a@b.se","type":"mailbox.access","user":"a@b.se","protocol":"imap","result":"success"}"#,
            r#"{"type":"mailbox.access","mailbox":"a@b.se","user":"a@b.se","protocol":"imap","result":"success"}"#,
            r#"{"type":"mailbox.access","time":"2026-03-02T08:00:00Z","time":"2026-03-02T09:00:00Z","mailbox":"a@b.se","user":"a@b.se","protocol":"imap","result":"success"}"#,
            r#"{"type":"mailbox.access","time":"2026-03-02T08:00:00Z","mailbox":"a@b.se","user":"a@b.se","protocol":"imap","result":"success","type":"proxy.request"}"#,
            r#"{"type":"mailbox.access","time":"2026-03-02T08:00:00Z","mailbox":"a@b.se","mailbox":"c@b.se","user":"a@b.se","protocol":"imap","result":"success"}"#,
            r#"{"type":"mail.fax","time":"2026-03-02T08:00:00Z"}"#,
            r#"{"type":"mailbox.access","time":"2026-03-02T08:00:00Z","mailbox":"a@b.se","user":"a@b.se","protocol":"imap","result":"success"} x"#,
            r#"{"type":"mailbox.access","time":"2026-03-02T08:00:00Z","mailbox":" ","user":"a@b.se","protocol":"imap","result":"success"}"#,
            r#"{"type":"mail.message","time":"2026-03-02T08:00:00Z","message_id":"x","sender":"a@b.se","recipients":["c@d.se"],"direction":"inbound","action":"deliver","classification":7}"#,
            r#"{"type":"proxy.request","time":"2026-03-02T08:00:00Z","host":"h","path":"/","method":"GET","status":70000}"#,
            r#"["type"]"#,
            r#"{"type":"mailbox.access""#,
        ];
        for l in lines {
            assert!(one_pass(l).is_none(), "{l}");
        }
        // What the general path makes of them is what the decoder reports.
        for l in lines {
            let via_decoder = decode(l).map(|e| e[0].body.clone()).map_err(|e| e.detail);
            let via_general = general(l).map(|(_, b)| b);
            match (via_decoder, via_general) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{l}"),
                (Err(a), Err(b)) => assert_eq!(a, b, "{l}"),
                (a, b) => panic!("{l}: {a:?} vs {b:?}"),
            }
        }
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
