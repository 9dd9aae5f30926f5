//! Decoder for the Exchange Server message tracking log (`MSGTRK*.LOG`): CSV preceded by
//! `#Software`, `#Version`, `#Log-type`, `#Date` and `#Fields:` lines. The `#Fields:` line
//! gives the column order and is read every time it appears (files concatenated from
//! several servers or versions work); no position is assumed.
//!
//! | column | event field | notes |
//! |---|---|---|
//! | `date-time` | `Event::time` | required; RFC 3339 UTC (`2026-03-02T07:00:01.123Z`) |
//! | `event-id` | `action` | required; see below, other ids skipped |
//! | `recipient-address` | `recipients` | split on `;`, normalised; for `REDIRECT` the alternative recipient, for `EXPAND` the group's members |
//! | `related-recipient-address` | `original_recipient` | for `REDIRECT` and `EXPAND` only: the mailbox whose forwarding redirected the message, the group that was expanded |
//! | `return-path`, else `sender-address` | `sender` | the envelope sender when logged |
//! | `message-id` | `message_id` | angle brackets removed |
//! | `server-hostname` | `server` | |
//! | `message-subject` | `subject_len` | only the length in characters; the text is never kept |
//! | `directionality` | `direction` | `Incoming` means the sender is outside, `Originating` inside; else by domain (see [`mail`](super::mail)) |
//! | `custom-data` | `classification`, `encryption` | the convention below |
//! | `source` | — | `MAILBOXRULE` marks a copy made by an inbox rule |
//!
//! | `event-id` | action | what Exchange documents it as |
//! |---|---|---|
//! | `DELIVER` | `deliver` | delivered to a local mailbox |
//! | `SEND` | `relay` | sent by SMTP to another server or transport service |
//! | `REDIRECT` | `redirect` | redirected to an alternative recipient after an Active Directory lookup: the alternative recipient of a mailbox's forwarding (`ForwardingAddress`, `ForwardingSmtpAddress`); logged whether or not a copy is also delivered (`DeliverToMailboxAndForward`, which then logs its own `DELIVER`) |
//! | `EXPAND` | `expand` | a distribution group was expanded |
//! | `RECEIVE` with `source` `MAILBOXRULE` | `forward` | the forward/redirect copy an inbox rule made (no original recipient is logged) |
//! | `RESOLVE` | skipped | a recipient address (e.g. a secondary proxy address) was rewritten to the primary SMTP address of the *same* directory object (for a mail contact: its external address); it re-addresses nothing, and the message's later `DELIVER`/`SEND` carries the resolved address |
//! | others (`RECEIVE`, `SUBMIT`, `FAIL`, `DSN`, `TRANSFER`, `DEFER`, …) | skipped | |
//!
//! Sources for the event ids: the Exchange Server documentation "Message tracking" (event
//! types, and `related-recipient-address`: "used with EXPAND, REDIRECT, and RESOLVE events
//! to display other recipient email addresses"), "Recipient resolution in Exchange Server"
//! (REDIRECT: "redirected to an alternative recipient as specified by the ForwardingAddress
//! parameter"; RESOLVE: "a recipient email address was changed to the primary SMTP email
//! address of the corresponding Active Directory recipient object") and Microsoft Graph's
//! `messageEvent` ("Redirect means the message was sent to a different recipient (either a
//! redirection rule or a forwarding address)"; "Resolve means the message was sent to a
//! proxy address and we rewrote that address to the user's primary address").
//!
//! Classification convention: a transport rule or agent writes `S:Classification=N` and
//! `S:Encryption=E` items into `custom-data` (items separated by `;`, the `S:` type prefix
//! optional, keys case-insensitive), e.g. `S:Classification=2;S:Encryption=smime`. N is
//! 0–3, E one of `none`, `tls`, `smime`, `pgp`, `gateway:NAME`; other values are
//! `invalid_value`. Without them classification is absent and encryption `none`.
//!
//! Guarantees: quoted fields with commas, doubled quotes and line breaks work (see
//! [`csvline`]); a record whose field count differs from `#Fields:` is a
//! `syntax` error, as is a record before any `#Fields:` line. A line that begins like a new
//! record (`#` or a date) while a quoted field is still open means the earlier line was
//! truncated: that fragment is dropped with a warning naming its position. A record whose
//! quoted field is still open when the input ends is reported by [`Decoder::finish`] as a
//! `syntax` error at the line it began on, with its bytes.

use std::borrow::Cow;

use super::csvline::{self, Joiner};
use super::mail::{address_list, direction, message_id};
use super::{parse_time, utf8, DecodeError, DecodeOptions, Decoder, ErrorReason, Unfinished};
use crate::domains::OrgDomains;
use crate::event::{addr, Action, Encryption, Event, EventBody, MailMessage, SourcePos, Text};

/// Decodes a message tracking log; keeps the `#Fields:` order between lines.
#[derive(Debug)]
pub struct TrackingDecoder {
    columns: Option<Columns>,
    joiner: Joiner,
    org: OrgDomains,
}

/// Positions of the columns read, from `#Fields:`.
#[derive(Debug, Clone)]
struct Columns {
    count: usize,
    date_time: usize,
    event_id: usize,
    source: Option<usize>,
    message_id: Option<usize>,
    recipient: Option<usize>,
    related: Option<usize>,
    sender: Option<usize>,
    return_path: Option<usize>,
    subject: Option<usize>,
    server: Option<usize>,
    directionality: Option<usize>,
    custom_data: Option<usize>,
}

impl TrackingDecoder {
    /// A decoder for one log (uses the organisation's domains for `direction`).
    pub fn new(opts: &DecodeOptions) -> Self {
        TrackingDecoder { columns: None, joiner: Joiner::default(), org: opts.org_domains.clone() }
    }
}

impl Decoder for TrackingDecoder {
    fn decode(&mut self, line: &[u8], pos: &SourcePos, out: &mut Vec<Event>) -> Result<(), DecodeError> {
        let text = utf8(line)?.trim_start_matches('\u{feff}');
        self.drop_truncated(text);
        if let Some(fields) = text.strip_prefix("#Fields:") {
            self.columns = Some(Columns::parse(fields)?);
            return Ok(());
        }
        if text.starts_with('#') || (text.trim().is_empty() && !self.joiner.is_open()) {
            return Ok(());
        }
        let Some(record) = self.joiner.push(text, pos)? else { return Ok(()) };
        let cols = self
            .columns
            .as_ref()
            .ok_or_else(|| DecodeError::new(ErrorReason::Syntax, "tracking record before any #Fields: line"))?;
        let fields = csvline::split(&record)?;
        if let Some(body) = cols.message(&fields, &self.org)? {
            out.push(Event { time: parse_time(cols.get(&fields, Some(cols.date_time)))?, source: pos.clone(), body });
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<Event>) -> Result<(), Unfinished> {
        self.joiner.finish()
    }
}

impl TrackingDecoder {
    /// Drops a record left open by a truncated line when a new record begins.
    fn drop_truncated(&mut self, text: &str) {
        if let Some(start) = self.joiner.open_at().filter(|_| starts_record(text)) {
            tracing::warn!("{start}: record ended inside a quoted field (truncated); dropped");
            self.joiner.abandon();
        }
    }
}

/// A header line, or a line that begins with a date (`2026-`): a record of its own.
fn starts_record(text: &str) -> bool {
    let b = text.as_bytes();
    text.starts_with('#') || (b.len() > 4 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-')
}

impl Columns {
    fn parse(fields: &str) -> Result<Self, DecodeError> {
        let names: Vec<String> = csvline::split(fields.trim())?.iter().map(|n| n.trim().to_ascii_lowercase()).collect();
        let at = |name: &str| names.iter().position(|n| n == name);
        let required = |name: &str| {
            at(name).ok_or_else(|| DecodeError::new(ErrorReason::MissingField, format!("#Fields: has no {name}")))
        };
        Ok(Columns {
            count: names.len(),
            date_time: required("date-time")?,
            event_id: required("event-id")?,
            source: at("source"),
            message_id: at("message-id"),
            recipient: at("recipient-address"),
            related: at("related-recipient-address"),
            sender: at("sender-address"),
            return_path: at("return-path"),
            subject: at("message-subject"),
            server: at("server-hostname"),
            directionality: at("directionality"),
            custom_data: at("custom-data"),
        })
    }

    /// The field at an optional column, empty when the column is absent.
    fn get<'a>(&self, fields: &'a [Cow<'a, str>], col: Option<usize>) -> &'a str {
        col.and_then(|i| fields.get(i)).map_or("", |f| f.trim())
    }

    fn message(&self, fields: &[Cow<str>], org: &OrgDomains) -> Result<Option<EventBody>, DecodeError> {
        if fields.len() != self.count {
            return Err(DecodeError::new(
                ErrorReason::Syntax,
                format!("tracking record has {} fields, #Fields: names {}", fields.len(), self.count),
            ));
        }
        let field = |col| self.get(fields, col);
        let Some((action, related)) = action(field(Some(self.event_id)), field(self.source)) else { return Ok(None) };
        let (classification, encryption) = custom_data(field(self.custom_data))?;
        let sender =
            addr::normalize(Some(field(self.return_path)).filter(|s| !s.is_empty()).unwrap_or(field(self.sender)));
        let recipients = address_list(field(self.recipient));
        let sender_outside = match field(self.directionality) {
            d if d.eq_ignore_ascii_case("incoming") => true,
            d if d.eq_ignore_ascii_case("originating") => false,
            _ => org.is_external(&sender),
        };
        let subject = field(self.subject);
        Ok(Some(EventBody::Message(MailMessage {
            message_id: message_id(field(self.message_id)),
            direction: direction(org, sender_outside, &recipients),
            sender,
            recipients,
            action,
            original_recipient: related.then(|| addr::normalize(field(self.related))).filter(|r| !r.is_empty()),
            server: Some(field(self.server)).filter(|s| !s.is_empty()).map(Text::new),
            subject_len: (!subject.is_empty()).then(|| u32::try_from(subject.chars().count()).unwrap_or(u32::MAX)),
            subject_hash: None,
            classification,
            encryption,
        })))
    }
}

/// The action of an event id, and whether `related-recipient-address` is the original
/// recipient (`RESOLVE` and the other ids not listed are skipped: see the module doc).
fn action(event_id: &str, source: &str) -> Option<(Action, bool)> {
    let is = |id: &str| event_id.eq_ignore_ascii_case(id);
    if is("DELIVER") {
        Some((Action::Deliver, false))
    } else if is("SEND") {
        Some((Action::Relay, false))
    } else if is("REDIRECT") {
        Some((Action::Redirect, true))
    } else if is("EXPAND") {
        Some((Action::Expand, true))
    } else if is("RECEIVE") && source.eq_ignore_ascii_case("MAILBOXRULE") {
        Some((Action::Forward, false))
    } else {
        None
    }
}

/// Classification and encryption from `custom-data` (convention in the module doc).
fn custom_data(s: &str) -> Result<(Option<u8>, Encryption), DecodeError> {
    let mut classification = None;
    let mut encryption = Encryption::None;
    for item in s.split(';').map(str::trim) {
        let item = item.split_once(':').filter(|(t, _)| t.len() == 1).map_or(item, |(_, rest)| rest);
        let Some((key, value)) = item.split_once('=') else { continue };
        if key.trim().eq_ignore_ascii_case("classification") {
            classification = Some(value.trim().parse::<u8>().ok().filter(|c| *c <= 3).ok_or_else(|| {
                DecodeError::new(ErrorReason::InvalidValue, format!("classification {value:?} is not 0–3"))
            })?);
        } else if key.trim().eq_ignore_ascii_case("encryption") {
            encryption = Encryption::parse(value).map_err(|e| DecodeError::new(ErrorReason::InvalidValue, e))?;
        }
    }
    Ok((classification, encryption))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_data_convention() {
        assert_eq!(custom_data("S:Classification=2;S:Encryption=smime").unwrap(), (Some(2), Encryption::Smime));
        assert_eq!(
            custom_data("S:E2ELatency=1.2;encryption=gateway:sefos;S:CLASSIFICATION=3").unwrap(),
            (Some(3), Encryption::Gateway("sefos".into()))
        );
        assert_eq!(custom_data("").unwrap(), (None, Encryption::None));
        assert_eq!(custom_data("S:Classification=7").unwrap_err().reason, ErrorReason::InvalidValue);
        assert_eq!(custom_data("S:Encryption=rot13").unwrap_err().reason, ErrorReason::InvalidValue);
    }

    #[test]
    fn record_starts() {
        assert!(starts_record("2026-03-02T07:00:01.123Z,10.0.0.1"));
        assert!(starts_record("#Fields: date-time"));
        assert!(!starts_record("second line of a subject\",x"));
    }
}
