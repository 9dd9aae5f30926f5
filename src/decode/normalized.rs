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
//! Speed: a record is first read by the one-pass decoder: the [`flat_json`] scanner lays
//! its members out by key (borrowed from the line, no allocation) and the variant is built
//! from them. Any record it is in doubt about — a string with an escape sequence, a
//! duplicate key, a value of the wrong kind, a missing member — goes to the general path
//! (`serde_json` with the model's derived `Deserialize`), which alone produces error
//! messages, so a record always gives the same event or the same error whichever path it
//! took (unit tests, a property test and the `normalized` fuzz target check this).

use std::borrow::Cow;

use serde::de::value::BorrowedStrDeserializer;
use serde::Deserialize;

use super::flat_json::{self, Strs, Value};
use super::pool::Observed;
use super::{parse_time, utf8, DecodeError, Decoder, ErrorReason, Interest};
use crate::event::{addr, DelegationChange, Encryption, Event, EventBody, ForwardingChange, MailMessage, MailboxAccess, ProxyRequest, SourcePos, Text, Addresses};

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
        // Without an interest every body is built.
        let event = read(line, None, |time, body| match body {
            Body::Built(body) => Some(Event { time, source: pos.clone(), body }),
            Body::Ignored(_) => None,
        })?;
        out.extend(event);
        Ok(())
    }

    /// A message or proxy request that `interest` ignores is checked as thoroughly as any
    /// (a bad record is an error all the same) but not built: no strings copied, nothing
    /// allocated.
    fn decode_observed(&mut self, line: &[u8], pos: &SourcePos, interest: &dyn Interest, _scratch: &mut Vec<Event>, out: &mut Vec<Observed>) -> Result<(), DecodeError> {
        out.push(read(line, Some(interest), |time, body| match body {
            Body::Built(body) => Observed::from(Event { time, source: pos.clone(), body }),
            Body::Ignored(type_index) => Observed { time, type_index: type_index as u8, event: None },
        })?);
        Ok(())
    }
}

/// A record's body as read for an interest.
#[derive(Debug, PartialEq)]
enum Body {
    Built(EventBody),
    /// Ignored by the interest: checked, not built; its type ([`EventBody::type_index`]).
    Ignored(usize),
}

/// What `make` makes of a record's time and body; the body is ignored only where
/// `interest` ignores it. Handed to `make` rather than returned: a body (192 bytes) went
/// through four copies (`memcpy`, 1.9 % of a replay's instructions by callgrind) on its
/// way out, ignored or not.
fn read<T>(line: &[u8], interest: Option<&dyn Interest>, make: impl FnOnce(chrono::DateTime<chrono::Utc>, Body) -> T) -> Result<T, DecodeError> {
    let text = utf8(line)?;
    match one_pass(text, interest) {
        Some((time, body)) => Ok(make(parse_time(&time)?, body)),
        None => {
            let (time, body) = general(text).map_err(classify)?;
            Ok(make(parse_time(&time)?, Body::Built(body)))
        }
    }
}

/// The time of a record, read without building its event (for merging inputs by time):
/// its first `time` member, when the scanner reads the record up to it and the time
/// parses; `None` when only decoding the record can tell (then the caller decodes it).
/// The scan stops there: what follows is the decoder's to judge (a record whose time
/// reads goes by it even when the rest of it is bad, a second `time` included), and the
/// merge does not pay for scanning every line twice (the reader's thread spent as long
/// scanning as the decode pool's threads spent decoding, measured with `perf` on two
/// interleaved files).
pub fn record_time(line: &[u8]) -> Option<chrono::DateTime<chrono::Utc>> {
    let text = simdutf8::basic::from_utf8(line).ok()?;
    let mut time = None;
    let _ = flat_json::scan(text, |key, value| {
        if key == "time" {
            time = Some(value.as_str());
            return None; // stop: the time is all the merge needs
        }
        Some(())
    });
    parse_time(time??).ok()
}

/// Whether the one-pass decoder's reading of `line`, when it gives one, is the general
/// path's (for the tests and the `normalized` fuzz target): `Err` says how they differ.
pub fn paths_agree(line: &str) -> Result<(), String> {
    let Some(fast) = one_pass(line, None) else { return Ok(()) };
    match general(line) {
        Ok((time, body)) if time == fast.0 && matches!(&fast.1, Body::Built(b) if *b == body) => Ok(()),
        other => Err(format!("one pass: {fast:?}, general path: {other:?}")),
    }
}

/// The general path alone.
fn general(line: &str) -> Result<(Cow<'_, str>, EventBody), serde_json::Error> {
    serde_json::from_str::<Wire>(line).map(|w| (w.time, w.body))
}

/// The one-pass decoder; `None` sends the record to the general path. The body is
/// ignored for a message or proxy request that `interest` ignores (checked, not built).
fn one_pass<'a>(text: &'a str, interest: Option<&dyn Interest>) -> Option<(Cow<'a, str>, Body)> {
    let mut f = Fields::default();
    flat_json::scan(text, |key, value| f.set(key, value))?;
    let built = |body: Option<EventBody>, type_index| body.map_or(Body::Ignored(type_index), Body::Built);
    let body = match f.take(TYPE)? {
        Value::Str("mail.message") => built(f.message(interest)?.map(EventBody::Message), EventBody::MESSAGE_INDEX),
        Value::Str("mailbox.forwarding") => Body::Built(EventBody::Forwarding(f.forwarding()?)),
        Value::Str("mailbox.access") => Body::Built(EventBody::Access(f.access()?)),
        Value::Str("proxy.request") => built(f.proxy(interest)?.map(EventBody::Proxy), EventBody::PROXY_INDEX),
        Value::Str("mailbox.delegation") => Body::Built(EventBody::Delegation(f.delegation()?)),
        _ => return None,
    };
    Some((Cow::Borrowed(f.string(TIME)?), body))
}

/// The members of the model, by slot; every other key is ignored, as the general path does.
const TYPE: usize = 0;
const TIME: usize = 1;
const MESSAGE_ID: usize = 2;
const SENDER: usize = 3;
const RECIPIENTS: usize = 4;
const DIRECTION: usize = 5;
const ACTION: usize = 6;
const ORIGINAL_RECIPIENT: usize = 7;
const SERVER: usize = 8;
const SUBJECT_LEN: usize = 9;
const SUBJECT_HASH: usize = 10;
const CLASSIFICATION: usize = 11;
const ENCRYPTION: usize = 12;
const MAILBOX: usize = 13;
const ACTOR: usize = 14;
const MECHANISM: usize = 15;
const RULE: usize = 16;
const TARGETS: usize = 17;
const KEEP_COPY: usize = 18;
const STATE: usize = 19;
const USER: usize = 20;
const PROTOCOL: usize = 21;
const RESULT: usize = 22;
const HOST: usize = 23;
const PATH: usize = 24;
const METHOD: usize = 25;
const STATUS: usize = 26;
const DELEGATE: usize = 27;
const SLOTS: usize = 28;

/// The slot of a member of the model.
fn slot(key: &str) -> Option<usize> {
    Some(match key {
        "type" => TYPE,
        "time" => TIME,
        "message_id" => MESSAGE_ID,
        "sender" => SENDER,
        "recipients" => RECIPIENTS,
        "direction" => DIRECTION,
        "action" => ACTION,
        "original_recipient" => ORIGINAL_RECIPIENT,
        "server" => SERVER,
        "subject_len" => SUBJECT_LEN,
        "subject_hash" => SUBJECT_HASH,
        "classification" => CLASSIFICATION,
        "encryption" => ENCRYPTION,
        "mailbox" => MAILBOX,
        "actor" => ACTOR,
        "mechanism" => MECHANISM,
        "rule" => RULE,
        "targets" => TARGETS,
        "keep_copy" => KEEP_COPY,
        "state" => STATE,
        "user" => USER,
        "protocol" => PROTOCOL,
        "result" => RESULT,
        "host" => HOST,
        "path" => PATH,
        "method" => METHOD,
        "status" => STATUS,
        "delegate" => DELEGATE,
        _ => return None,
    })
}

/// A record's members by slot. Every reader returns `None` where the general path could
/// differ: a duplicate key, a value of the wrong kind, a missing required member.
#[derive(Default)]
struct Fields<'a>([Option<Value<'a>>; SLOTS]);

impl<'a> Fields<'a> {
    fn set(&mut self, key: &str, value: Value<'a>) -> Option<()> {
        let Some(slot) = slot(key) else { return Some(()) };
        self.0[slot].replace(value).is_none().then_some(())
    }

    fn take(&mut self, slot: usize) -> Option<Value<'a>> {
        self.0[slot].take()
    }

    /// A required string.
    fn string(&mut self, slot: usize) -> Option<&'a str> {
        self.take(slot)?.as_str()
    }

    /// An optional member: absent or `null` is `Some(None)`, any other value goes to `read`.
    fn opt<T>(&mut self, slot: usize, read: impl FnOnce(Value<'a>) -> Option<T>) -> Option<Option<T>> {
        match self.take(slot) {
            None | Some(Value::Null) => Some(None),
            Some(v) => read(v).map(Some),
        }
    }

    fn opt_string(&mut self, slot: usize) -> Option<Option<Text>> {
        self.opt(slot, |v| v.as_str().map(Text::new))
    }

    /// `addr::one`: required and not empty once normalised.
    fn address(&mut self, slot: usize) -> Option<Text> {
        Some(addr::normalize(self.string(slot)?)).filter(|a| !a.is_empty())
    }

    /// `addr::opt`: absent, `null` or empty once normalised are none.
    fn opt_address(&mut self, slot: usize) -> Option<Option<Text>> {
        let a = self.opt(slot, |v| v.as_str().map(addr::normalize))?;
        Some(a.filter(|a| !a.is_empty()))
    }

    /// `addr::many`: every non-empty normalised address of an array of strings.
    fn addresses(&mut self, slot: usize) -> Option<Addresses> {
        Some(addresses(self.strs(slot)?))
    }

    /// A required array of strings.
    fn strs(&mut self, slot: usize) -> Option<Strs<'a>> {
        match self.take(slot)? {
            Value::Strs(list) => Some(list),
            _ => None,
        }
    }

    /// A unit enum by its serde name (the derived `Deserialize`: one list of names).
    fn unit<T: Deserialize<'a>>(&mut self, slot: usize) -> Option<T> {
        T::deserialize(BorrowedStrDeserializer::<serde::de::value::Error>::new(self.string(slot)?)).ok()
    }

    fn opt_uint(&mut self, slot: usize, max: u64) -> Option<Option<u64>> {
        self.opt(slot, |v| match v {
            Value::UInt(n) if n <= max => Some(n),
            _ => None,
        })
    }

    /// A message, checked whole first; `Some(None)` when `interest` ignores it: not
    /// classified, not re-addressed, and delivered only where `interest` ignores it.
    fn message(&mut self, interest: Option<&dyn Interest>) -> Option<Option<MailMessage>> {
        let (message_id, sender, recipients) = (self.string(MESSAGE_ID)?, self.string(SENDER)?, self.strs(RECIPIENTS)?);
        let (direction, action) = (self.unit(DIRECTION)?, self.unit(ACTION)?);
        let original_recipient = self.opt_address(ORIGINAL_RECIPIENT)?;
        let (server, subject_hash) = (self.opt(SERVER, Value::as_str)?, self.opt(SUBJECT_HASH, Value::as_str)?);
        let subject_len = self.opt_uint(SUBJECT_LEN, u32::MAX.into())?.map(|n| n as u32);
        let classification = self.opt_uint(CLASSIFICATION, 3)?.map(|n| n as u8);
        let encryption = match self.take(ENCRYPTION) {
            None => Encryption::None,
            Some(Value::Str(s)) => Encryption::parse(s).ok()?,
            Some(_) => return None,
        };
        let plain_delivery = original_recipient.is_none() && classification.is_none();
        if plain_delivery && interest.is_some_and(|i| recipients.iter().all(|r| i.ignores_delivery_to(r))) {
            return Some(None);
        }
        Some(Some(MailMessage {
            message_id: Text::new(message_id),
            sender: addr::normalize(sender),
            recipients: addresses(recipients),
            direction,
            action,
            original_recipient,
            server: server.map(Text::new),
            subject_len,
            subject_hash: subject_hash.map(Text::new),
            classification,
            encryption,
        }))
    }

    fn forwarding(&mut self) -> Option<ForwardingChange> {
        Some(ForwardingChange {
            mailbox: self.opt_address(MAILBOX)?,
            actor: self.opt_address(ACTOR)?,
            mechanism: self.unit(MECHANISM)?,
            rule: self.opt_string(RULE)?,
            targets: if self.0[TARGETS].is_some() { self.addresses(TARGETS)? } else { Addresses::new() },
            keep_copy: self.opt(KEEP_COPY, |v| if let Value::Bool(b) = v { Some(b) } else { None })?,
            state: self.unit(STATE)?,
        })
    }

    fn access(&mut self) -> Option<MailboxAccess> {
        Some(MailboxAccess { mailbox: self.address(MAILBOX)?, user: self.address(USER)?, protocol: self.unit(PROTOCOL)?, result: self.unit(RESULT)? })
    }

    /// A proxy request, checked whole first; `Some(None)` when `interest` ignores it.
    fn proxy(&mut self, interest: Option<&dyn Interest>) -> Option<Option<ProxyRequest>> {
        let (user, host, path, method) = (self.opt_address(USER)?, self.address(HOST)?, self.string(PATH)?, self.string(METHOD)?);
        let status = match self.take(STATUS)? {
            Value::UInt(n) => u16::try_from(n).ok()?,
            _ => return None,
        };
        if interest.is_some_and(|i| i.ignores_request(&host, path, status, user.is_some())) {
            return Some(None);
        }
        Some(Some(ProxyRequest { user, host, path: Text::new(path), method: Text::new(method), status }))
    }

    fn delegation(&mut self) -> Option<DelegationChange> {
        Some(DelegationChange { mailbox: self.address(MAILBOX)?, delegate: self.address(DELEGATE)?, state: self.unit(STATE)?, actor: self.opt_address(ACTOR)? })
    }
}

/// `addr::many`: every non-empty normalised address of `list`. Pushed one by one:
/// `collect` into a SmallVec goes through its general `extend` (a reserve from the size
/// hint, then a second loop); the pushes cost about 120 instructions a message less by
/// callgrind.
fn addresses(list: Strs) -> Addresses {
    let mut out = Addresses::new();
    for a in list.iter().map(addr::normalize).filter(|a| !a.is_empty()) {
        out.push(a);
    }
    out
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
    use proptest::prelude::*;

    fn decode(line: &str) -> Result<Vec<Event>, DecodeError> {
        let mut out = Vec::new();
        NormalizedDecoder.decode(line.as_bytes(), &SourcePos::line("t".into(), 1), &mut out)?;
        Ok(out)
    }

    /// Ignores deliveries to one roster-like address only.
    struct IgnoresAnna;

    impl Interest for IgnoresAnna {
        fn ignores_delivery_to(&self, recipient: &str) -> bool {
            recipient == "anna@exempel.se"
        }

        /// And every request but a user's successful one to webmail.
        fn ignores_request(&self, host: &str, path: &str, status: u16, by_user: bool) -> bool {
            !(by_user && status < 400 && host == "webmail.exempel.se" && path.starts_with("/owa"))
        }
    }

    /// Whether each event `line` decodes to for [`IgnoresAnna`] is built.
    fn built_for_anna(line: &str) -> Result<Vec<bool>, DecodeError> {
        let mut out = Vec::new();
        NormalizedDecoder.decode_observed(line.as_bytes(), &SourcePos::line("t".into(), 1), &IgnoresAnna, &mut Vec::new(), &mut out)?;
        Ok(out.iter().map(|o| o.event.is_some()).collect())
    }

    /// Browsing that is not webmail use is checked whole but not built; webmail use is
    /// built with its host in normal form; a bad request is an error all the same.
    #[test]
    fn a_request_that_is_not_webmail_use_is_checked_but_not_built() {
        let request = |user: &str, host: &str, status: &str| format!(r#"{{"type":"proxy.request","time":"2026-06-15T08:00:00+02:00","user":{user},"host":"{host}","path":"/owa/","method":"GET","status":{status}}}"#);
        let anna = r#""anna@exempel.se""#;
        for ignored in [request(anna, "www.dn.se", "200"), request(anna, "webmail.exempel.se", "404"), request("null", "webmail.exempel.se", "200"), request(r#""  ""#, "webmail.exempel.se", "200")] {
            assert_eq!(built_for_anna(&ignored), Ok(vec![false]), "{ignored}");
        }
        assert_eq!(built_for_anna(&request(anna, "Webmail.Exempel.se", "200")), Ok(vec![true]));
        for bad in [request(anna, "www.dn.se", "70000"), request(anna, " ", "200"), request(anna, "www.dn.se", r#""200""#), request(anna, "www.dn.se", "200").replace(r#""method":"GET","#, "")] {
            assert!(built_for_anna(&bad).is_err(), "{bad}");
        }
    }

    /// A message delivered only where the interest ignores it is checked whole but not
    /// built; anything classified, re-addressed, delivered elsewhere too, or with an
    /// address not in its normal form is built; a bad record is an error all the same.
    #[test]
    fn a_message_delivered_only_where_nobody_acts_on_it_is_checked_but_not_built() {
        let message = |recipients: &str, extra: &str| format!(r#"{{"type":"mail.message","time":"2026-06-15T08:00:00+02:00","message_id":"m","sender":"x@gmail.com","recipients":[{recipients}],"direction":"inbound","action":"deliver"{extra}}}"#);
        let anna = r#""anna@exempel.se""#;
        let observe = built_for_anna;
        assert_eq!(observe(&message(anna, "")), Ok(vec![false]));
        assert_eq!(observe(&message(&format!("{anna},{anna}"), r#","subject_len":3,"encryption":"tls""#)), Ok(vec![false]));
        for built in [
            message(anna, r#","classification":2"#),
            message(anna, r#","original_recipient":"anna@exempel.se""#),
            message(&format!(r#"{anna},"bo@exempel.se""#), ""),
            message(r#""Anna@exempel.se""#, ""),
        ] {
            assert_eq!(observe(&built), Ok(vec![true]), "{built}");
        }
        for bad in [message(anna, r#","direction":"sideways""#).replace(r#""direction":"inbound","#, ""), message(anna, r#","encryption":"rot13""#), message(anna, "").replace(r#""message_id":"m","#, "")] {
            assert!(observe(&bad).is_err(), "{bad}");
        }
    }

    /// The merge of several inputs orders lines by the time read without decoding: it is
    /// the time the decoder gives, and when it is in doubt it answers nothing (the merge
    /// decodes the record then).
    #[test]
    fn a_record_time_read_without_decoding_is_the_decoded_time() {
        let access = r#"{"type":"mailbox.access","time":"2026-03-02T08:00:00+01:00","mailbox":"anna@exempel.se","user":"anna@exempel.se","protocol":"imap","result":"success"}"#;
        assert_eq!(record_time(access.as_bytes()), Some(decode(access).unwrap()[0].time));
        // The rest of the record is the decoder's to judge: it refuses both of these.
        let t = record_time(access.as_bytes());
        for bad_rest in [
            r#"{"type":"mailbox.access","time":"2026-03-02T08:00:00+01:00","time":"2026-03-03T08:00:00+01:00"}"#,
            r#"{"type":"mailbox.access","time":"2026-03-02T08:00:00+01:00","mailbox":"#,
        ] {
            assert!(decode(bad_rest).is_err());
            assert_eq!(record_time(bad_rest.as_bytes()), t, "{bad_rest}");
        }
        for doubtful in [
            r#"{"type":"mailbox.access","time":"2026-03-02T08:00:00"}"#,
            r#"{"type":"mailbox.access","time":1772434800}"#,
            r#"{"type":"mailbox.access","tim\u0065":"2026-03-02T08:00:00+01:00"}"#,
            r#"{"type":"mailbox.access"}"#,
            "not json",
        ] {
            assert_eq!(record_time(doubtful.as_bytes()), None, "{doubtful}");
        }
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
    fn both_paths_agree() {
        let lines = [
            r#"{"type":"mail.message","time":"2026-03-02T08:00:00+01:00","message_id":"a@b","sender":"<X@Gmail.com>","recipients":["SMTP:Anna@Exempel.se",""],"direction":"inbound","action":"deliver","server":"mx1","subject_len":4,"subject":"secret","classification":2,"encryption":"Gateway:Sefos"}"#,
            r#"{"time":"2026-03-02T08:00:00Z","type":"mailbox.access","mailbox":"Anna@Exempel.se","user":"anna@exempel.se","protocol":"imap","result":"success","extra":{"x":[1,2,{"y":null}]}}"#,
            r#"{ "type" : "proxy.request" , "time":"2026-03-02T08:00:00Z","user":null,"host":"Webmail.Exempel.se","path":"/owa/å","method":"GET","status":200}"#,
            r#"{"type":"proxy.request","time":"2026-03-02T08:00:00Z","user":"Anna@Exempel.se","host":"webmail.exempel.se","path":"/owa/","method":"GET","status":0,"bytes":-1.5e3}"#,
            r#"{"time":"2026-03-02T08:00:00Z","mailbox":"a@b.se","type":"mailbox.access","user":"a@b.se","protocol":"imap","result":"success"}"#,
            r#"{"type":"mailbox.forwarding","time":"2026-03-02T08:00:00Z","mechanism":"transport_rule","rule":"Alla till Gmail","state":"disabled","keep_copy":null,"mailbox":null}"#,
            r#"{"type":"mail.message","time":"2026-03-02T08:00:00Z","message_id":"m","sender":"","recipients":[],"direction":"internal","action":"expand","original_recipient":"  ","subject_len":null,"classification":null}"#,
            r#"{"type":"mailbox.forwarding","time":"2026-03-02T08:00:00Z","mailbox":"anna@exempel.se","mechanism":"inbox_rule","targets":["x@gmail.com"],"keep_copy":true,"state":"enabled","rule":"r1"}"#,
            r#"{"type":"mailbox.delegation","time":"2026-03-02T08:00:00Z","mailbox":"a@exempel.se","delegate":"b@exempel.se","state":"granted"}"#,
        ];
        for l in lines {
            assert!(one_pass(l, None).is_some(), "one pass refused {l}");
            assert_eq!(paths_agree(l), Ok(()));
        }
    }

    #[test]
    fn the_one_pass_decoder_leaves_every_doubtful_record_to_the_general_path() {
        let lines = [
            r#"{"t\u0079pe":"mailbox.delegation","time":"2026-03-02T08:00:00Z","mailbox":"a@exempel.se","delegate":"b@exempel.se","state":"removed"}"#,
            r#"{"type":"mailbox.forwarding","time":"2026-03-02T08:00:00Z","mailbox":"anna@exempel.se","mechanism":"inbox_rule","targets":["x@gmail.com"],"state":"enabled","rule":"r\"1"}"#,
            r#"{"type":"mailbox.forwarding","time":"2026-03-02T08:00:00Z","mailbox":"anna@exempel.se","mechanism":"inbox_rule","targets":null,"state":"enabled"}"#,
            r#"{"type":"mailbox.access","time":"2026-03-02T08:00:00Z","mailbox":"a@b.se","user":"a@b.se","protocol":"IMAP","result":"success"}"#,
            r#"{"type":"mail.message","time":"2026-03-02T08:00:00Z","message_id":"x","sender":"a@b.se","recipients":["c@d.se",7],"direction":"inbound","action":"deliver"}"#,
            r#"{"type":"mail.message","time":"2026-03-02T08:00:00Z","message_id":"x","sender":"a@b.se","recipients":["c@d.se"],"direction":"inbound","action":"deliver","encryption":null}"#,
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
            assert!(one_pass(l, None).is_none(), "{l}");
        }
        // What the general path makes of them is what the decoder reports.
        for l in lines {
            let via_decoder = decode(l).map(|e| e[0].body.clone()).map_err(|e| e.detail);
            let via_general = general(l).map(|(_, b)| b).map_err(|e| e.to_string());
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

    #[test]
    fn every_generated_record_takes_the_one_pass_decoder() {
        let opts = crate::generate::GenOptions { mailboxes: 60, days: 3, malformed: 0.0, ..Default::default() };
        let mut events = Vec::new();
        crate::generate::generate(&opts, &mut events, &mut std::io::sink(), &mut std::io::sink()).unwrap();
        let text = String::from_utf8(events).unwrap();
        for l in text.lines() {
            assert!(one_pass(l, None).is_some(), "one pass refused {l}");
            assert_eq!(paths_agree(l), Ok(()));
        }
    }

    /// A member's value as text: right and wrong kinds, addresses to normalise, escapes.
    fn member_value() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "mail.message", "mailbox.forwarding", "mailbox.access", "proxy.request", "mailbox.delegation", "mail.fax",
                "2026-03-02T08:00:00+01:00", "2026-03-02T08:00:00", "inbound", "outbound", "Inbound", "deliver", "forward",
                "imap", "owa", "success", "failure", "inbox_rule", "sieve_redirect", "enabled", "removed", "granted",
                "tls", "Gateway:Sefos", "gateway:", "rot13", "GET", "/owa/", "", " ", "<>",
            ])
            .prop_map(|s| format!("{s:?}")),
            "[ <>a-zA-Z@.:Åå]{0,14}".prop_map(|s| format!("{s:?}")),
            Just(r#""a\"b@c.se""#.to_string()),
            Just(r#""\u0041@b.se""#.to_string()),
            prop::sample::select(vec!["0", "3", "7", "200", "70000", "4294967296", "-1", "1.5", "null", "true", "false", "{}", r#"{"a":[1]}"#])
                .prop_map(str::to_string),
            prop::collection::vec("[ <>a-zA-Z@.:]{0,10}", 0..3).prop_map(|v| serde_json::to_string(&v).unwrap()),
            Just(r#"["a@b.se",1]"#.to_string()),
        ]
    }

    /// A record: mostly the model's keys, in any order, sometimes repeated or unknown.
    fn record() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            8 => prop::sample::select(vec!["type", "time"]),
            20 => prop::sample::select(vec![
                "message_id", "sender", "recipients", "direction", "action", "original_recipient", "server", "subject_len",
                "subject_hash", "classification", "encryption", "mailbox", "actor", "mechanism", "rule", "targets",
                "keep_copy", "state", "user", "protocol", "result", "host", "path", "method", "status", "delegate",
            ]),
            2 => prop::sample::select(vec!["subject", "source", "extra"]),
        ];
        prop::collection::vec((key, member_value()), 0..12)
            .prop_map(|m| format!("{{{}}}", m.iter().map(|(k, v)| format!("{k:?}:{v}")).collect::<Vec<_>>().join(",")))
    }

    proptest::proptest! {
        /// Whatever the one-pass decoder makes of a record, the general path makes too.
        #[test]
        fn the_one_pass_decoder_agrees_with_the_general_path(line in record()) {
            proptest::prop_assert_eq!(paths_agree(&line), Ok(()));
        }

        /// Records that are valid for one type agree too (most random records are not).
        #[test]
        fn valid_records_agree(ty in 0usize..5, extra in prop::collection::vec((prop::sample::select(vec!["server", "user", "actor", "rule", "keep_copy", "original_recipient", "extra"]), member_value()), 0..3)) {
            let base = [
                r#""type":"mail.message","time":"2026-03-02T08:00:00Z","message_id":"x","sender":"a@b.se","recipients":["c@d.se"],"direction":"inbound","action":"forward""#,
                r#""type":"mailbox.forwarding","time":"2026-03-02T08:00:00Z","mechanism":"inbox_rule","state":"enabled""#,
                r#""type":"mailbox.access","time":"2026-03-02T08:00:00Z","mailbox":"A@b.se","protocol":"ews","result":"success""#,
                r#""type":"proxy.request","time":"2026-03-02T08:00:00Z","host":"h.se","path":"/","method":"GET","status":200"#,
                r#""type":"mailbox.delegation","time":"2026-03-02T08:00:00Z","mailbox":"a@b.se","delegate":"c@b.se","state":"granted""#,
            ][ty];
            let line = format!("{{{base}{}}}", extra.iter().map(|(k, v)| format!(",{k:?}:{v}")).collect::<String>());
            proptest::prop_assert_eq!(paths_agree(&line), Ok(()));
        }
    }
}
