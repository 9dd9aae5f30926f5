//! Decoder for a mail server's syslog (`/var/log/mail.log`): Postfix and Dovecot lines,
//! mixed in one input as syslog writes them. Lines of other programs are skipped.
//!
//! Headers understood:
//!
//! | form | example | time |
//! |---|---|---|
//! | RFC 3164 | `Mar  2 08:00:01 mx1 postfix/smtp[123]: …` (an optional `<PRI>` first) | `syslog_year` + `syslog_timezone` |
//! | RFC 3339 stamp (rsyslog file format) | `2026-03-02T08:00:01.123456+01:00 mx1 postfix/smtp[123]: …` | its own offset |
//! | RFC 5424 | `<22>1 2026-03-02T08:00:01.123+01:00 mx1 postfix/smtp 123 - [sd …] …` | its own offset |
//! | Dovecot's own log file | `Mar 02 08:00:01 imap-login: Info: Login: …` (no host) | as RFC 3164 |
//!
//! | header part | used as |
//! |---|---|
//! | HOSTNAME | `server` of `mail.message` events |
//! | tag / APP-NAME | `postfix…/SERVICE` → [`postfix`]; `dovecot` or a Dovecot process (`imap-login`, `lmtp(…)` …) → [`dovecot`] |
//! | message | the program's text |
//!
//! Time: RFC 3164 carries no year and no zone. `DecodeOptions::syslog_year` must be set
//! (never guessed: without it such lines are `bad_time` errors when they would give an
//! event); the year steps up by one when the month goes from December to January within
//! one input. The local time is read in `DecodeOptions::syslog_timezone` (default
//! Europe/Stockholm, DST-aware): the repeated hour at the end of summer time takes the
//! earlier instant; a time inside the skipped hour is `bad_time`.
//!
//! RFC 5424 structured data (`[id k="v" …]`, several elements, `\"`, `\\` and `\]` escaped
//! in values) is skipped, never read; a UTF-8 BOM before the message is dropped.
//!
//! End of input: nothing is held back. The Postfix queue-id correlation remembers only the
//! sender and Message-ID for *later* delivery lines (each delivery line is an event at once),
//! so [`Decoder::finish`] keeps its default: what is still
//! remembered then is metadata no event is waiting for.
//!
//! Not supported: syslog over the network framing (octet counts), lines of programs other
//! than Postfix and Dovecot, RFC 3164 lines whose host field is missing and whose tag does
//! not end in `:`.

use chrono::{DateTime, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::{check_year, utf8, DecodeError, DecodeOptions, Decoder, ErrorReason};
use super::{dovecot, postfix};
use crate::domains::OrgDomains;
use crate::event::{Event, EventBody, SourcePos, Text};

/// Decodes Postfix and Dovecot syslog lines of one input.
#[derive(Debug)]
pub struct SyslogDecoder {
    clock: Clock,
    queue: postfix::Queue,
    org: OrgDomains,
}

impl SyslogDecoder {
    /// A decoder for one input, with the year and zone for RFC 3164 times.
    pub fn new(opts: &DecodeOptions) -> Self {
        SyslogDecoder {
            clock: Clock { year: opts.syslog_year, last_month: 0, zone: opts.syslog_timezone },
            queue: postfix::Queue::default(),
            org: opts.org_domains.clone(),
        }
    }
}

impl Decoder for SyslogDecoder {
    fn decode(&mut self, line: &[u8], pos: &SourcePos, out: &mut Vec<Event>) -> Result<(), DecodeError> {
        let text = utf8(line)?;
        if text.trim().is_empty() {
            return Ok(());
        }
        let header = parse(text)?;
        self.clock.observe(&header.stamp);
        let cx = Context { header: &header, clock: &self.clock, org: &self.org, pos };
        if let Some(service) = postfix::service(header.program) {
            self.queue.line(service, header.msg, &cx, out)
        } else if header.program == "dovecot" {
            header.msg.split_once(": ").map_or(Ok(()), |(process, rest)| dovecot::line(process, rest, &cx, out))
        } else if dovecot::is_process(header.program) {
            dovecot::line(header.program, header.msg, &cx, out)
        } else {
            Ok(())
        }
    }
}

/// What a program handler needs to emit an event.
pub struct Context<'a> {
    /// The parsed header.
    pub header: &'a Header<'a>,
    clock: &'a Clock,
    /// The organisation's domains (for `direction`).
    pub org: &'a OrgDomains,
    pos: &'a SourcePos,
}

impl Context<'_> {
    /// Pushes an event at this line's time and position.
    pub fn emit(&self, body: EventBody, out: &mut Vec<Event>) -> Result<(), DecodeError> {
        out.push(Event { time: self.clock.time(&self.header.stamp)?, source: self.pos.clone(), body });
        Ok(())
    }

    /// The logging host, if the header named one.
    pub fn server(&self) -> Option<Text> {
        Some(self.header.host).filter(|h| !h.is_empty() && *h != "-").map(Text::new)
    }
}

/// A syslog header split from its message.
#[derive(Debug, Clone, PartialEq)]
pub struct Header<'a> {
    stamp: Stamp,
    /// HOSTNAME, empty when the line has none.
    pub host: &'a str,
    /// Program name: the tag without `[pid]`, or APP-NAME.
    pub program: &'a str,
    /// The message text.
    pub msg: &'a str,
}

/// A time as written: complete, or RFC 3164 month/day/time without year and zone.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stamp {
    Exact(DateTime<Utc>),
    Local { month: u32, day: u32, time: NaiveTime },
}

/// Turns RFC 3164 stamps into instants; follows the month to step the year.
#[derive(Debug)]
struct Clock {
    year: Option<i32>,
    last_month: u32,
    zone: Tz,
}

impl Clock {
    fn observe(&mut self, stamp: &Stamp) {
        if let Stamp::Local { month, .. } = *stamp {
            if self.last_month == 12 && month == 1 {
                self.year = self.year.map(|y| y + 1);
            }
            self.last_month = month;
        }
    }

    fn time(&self, stamp: &Stamp) -> Result<DateTime<Utc>, DecodeError> {
        let (month, day, time) = match *stamp {
            Stamp::Exact(t) => return Ok(t),
            Stamp::Local { month, day, time } => (month, day, time),
        };
        let bad = |detail: String| DecodeError::new(ErrorReason::BadTime, detail);
        let year = self.year.ok_or_else(|| bad("RFC 3164 time has no year: set input.syslog_year".into()))?;
        let date =
            NaiveDate::from_ymd_opt(year, month, day).ok_or_else(|| bad(format!("{year}-{month}-{day} is no date")))?;
        let local = date.and_time(time);
        match self.zone.from_local_datetime(&local) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => check_year(t.with_timezone(&Utc)),
            LocalResult::None => Err(bad(format!("{local} does not exist in {} (clock change)", self.zone))),
        }
    }
}

fn syntax(detail: &str) -> DecodeError {
    DecodeError::new(ErrorReason::Syntax, format!("syslog: {detail}"))
}

/// Splits a syslog line into header and message.
pub fn parse(line: &str) -> Result<Header<'_>, DecodeError> {
    let (pri, rest) = match line.strip_prefix('<') {
        Some(r) => r.split_once('>').ok_or_else(|| syntax("<PRI> not closed"))?,
        None => ("", line),
    };
    if !pri.is_empty() && (pri.len() > 3 || !pri.bytes().all(|b| b.is_ascii_digit())) {
        return Err(syntax("PRI is not a number"));
    }
    match rest.strip_prefix("1 ") {
        Some(r5424) if !pri.is_empty() => rfc5424(r5424),
        _ if rest.starts_with(|c: char| c.is_ascii_digit()) => rfc3339_stamped(rest),
        _ => rfc3164(rest),
    }
}

/// `2026-03-02T08:00:01.123+01:00 host tag: msg` (rsyslog's high-precision format).
fn rfc3339_stamped(s: &str) -> Result<Header<'_>, DecodeError> {
    let (stamp, rest) = s.split_once(' ').ok_or_else(|| syntax("nothing after the time"))?;
    let t = super::parse_time(stamp)?;
    host_tag_msg(Stamp::Exact(t), rest)
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// `Mmm dd hh:mm:ss host tag: msg`.
fn rfc3164(s: &str) -> Result<Header<'_>, DecodeError> {
    let head = s.get(..15).ok_or_else(|| syntax("line too short for an RFC 3164 time"))?;
    let month = MONTHS.iter().position(|m| head.get(..3) == Some(m)).ok_or_else(|| syntax("no RFC 3164 month"))?;
    let day = head.get(4..6).and_then(|d| d.trim().parse::<u32>().ok()).ok_or_else(|| syntax("no RFC 3164 day"))?;
    let time = head
        .get(7..15)
        .and_then(|t| NaiveTime::parse_from_str(t, "%H:%M:%S").ok())
        .ok_or_else(|| DecodeError::new(ErrorReason::BadTime, "RFC 3164 time is not hh:mm:ss"))?;
    let rest = s.get(15..).and_then(|r| r.strip_prefix(' ')).ok_or_else(|| syntax("nothing after the time"))?;
    host_tag_msg(Stamp::Local { month: month as u32 + 1, day, time }, rest)
}

/// `host tag[pid]: msg`, or `tag: msg` when the first word already ends in `:`.
fn host_tag_msg(stamp: Stamp, rest: &str) -> Result<Header<'_>, DecodeError> {
    let rest = rest.trim_start();
    let first = rest.split(' ').next().unwrap_or("");
    let (host, tagged) = if first.ends_with(':') {
        ("", rest)
    } else {
        rest.split_once(' ').ok_or_else(|| syntax("no tag after the host"))?
    };
    let (tag, msg) = match tagged.split_once(": ") {
        Some(split) => split,
        None => (tagged.strip_suffix(':').ok_or_else(|| syntax("no `tag:`"))?, ""),
    };
    let program = tag.split('[').next().unwrap_or(tag);
    Ok(Header { stamp, host, program, msg })
}

/// `TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG]` after `<PRI>1 `.
fn rfc5424(s: &str) -> Result<Header<'_>, DecodeError> {
    let mut parts = s.splitn(6, ' ');
    let mut next =
        |what: &str| parts.next().filter(|p| !p.is_empty()).ok_or_else(|| syntax(&format!("RFC 5424 has no {what}")));
    let stamp = next("TIMESTAMP")?;
    let host = next("HOSTNAME")?;
    let program = next("APP-NAME")?;
    next("PROCID")?;
    next("MSGID")?;
    let sd_and_msg = next("STRUCTURED-DATA")?;
    if stamp == "-" {
        return Err(DecodeError::new(ErrorReason::BadTime, "RFC 5424 line has no time"));
    }
    let after_sd = skip_structured_data(sd_and_msg)?;
    let msg = after_sd.strip_prefix(' ').unwrap_or(after_sd);
    Ok(Header {
        stamp: Stamp::Exact(super::parse_time(stamp)?),
        host,
        program,
        msg: msg.strip_prefix('\u{feff}').unwrap_or(msg),
    })
}

/// What follows RFC 5424 STRUCTURED-DATA (`-` or `[…]` elements).
fn skip_structured_data(s: &str) -> Result<&str, DecodeError> {
    if let Some(rest) = s.strip_prefix('-') {
        return Ok(rest);
    }
    let b = s.as_bytes();
    if b.first() != Some(&b'[') {
        return Err(syntax("RFC 5424 STRUCTURED-DATA is neither - nor ["));
    }
    let mut i = 0;
    while b.get(i) == Some(&b'[') {
        let mut quoted = false;
        i += 1;
        loop {
            match b.get(i) {
                None => return Err(syntax("RFC 5424 STRUCTURED-DATA not closed")),
                Some(b'\\') if quoted => i += 2,
                Some(b'"') => {
                    quoted = !quoted;
                    i += 1;
                }
                Some(b']') if !quoted => {
                    i += 1;
                    break;
                }
                Some(_) => i += 1,
            }
        }
    }
    Ok(s.get(i..).unwrap_or(""))
}

/// The value of `key=` in a `key=value, key=<value>` list (Postfix and Dovecot): the text
/// inside `<…>`, else up to the next `,` or space.
pub fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(i) = text.get(from..).and_then(|t| t.find(key)) {
        let at = from + i;
        let after = at + key.len();
        let boundary = at == 0 || matches!(text.as_bytes().get(at - 1), Some(b' ' | b',' | b'('));
        if boundary && text.as_bytes().get(after) == Some(&b'=') {
            let value = text.get(after + 1..).unwrap_or("");
            return Some(match value.strip_prefix('<') {
                Some(inner) => inner.split_once('>').map_or(inner, |(v, _)| v),
                None => value.split([',', ' ']).next().unwrap_or(""),
            });
        }
        from = after;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_data_with_escapes_is_skipped() {
        let h = parse(r#"<22>1 2026-03-02T08:00:01.123+01:00 mx1 postfix/smtp 123 - [a@1 x="q\"]" y="\]"][b@2 z="\\"] 3F: to=<a@b.se>"#)
            .unwrap();
        assert_eq!((h.host, h.program, h.msg), ("mx1", "postfix/smtp", "3F: to=<a@b.se>"));
        assert!(parse(r#"<22>1 2026-03-02T08:00:01Z mx1 app 1 - [a x="open]"#).is_err());
    }

    #[test]
    fn three_header_forms_and_hostless_dovecot() {
        let h = parse("Mar  2 08:00:01 mx1 postfix/qmgr[77]: 3F: removed").unwrap();
        assert_eq!((h.host, h.program, h.msg), ("mx1", "postfix/qmgr", "3F: removed"));
        let h = parse("2026-03-02T08:00:01.5+01:00 mx1 dovecot[9]: imap-login: Login: user=<a>").unwrap();
        assert_eq!(h.stamp, Stamp::Exact("2026-03-02T07:00:01.5Z".parse().unwrap()));
        let h = parse("Mar 02 08:00:01 imap-login: Info: Login: user=<a>").unwrap();
        assert_eq!((h.host, h.program, h.msg), ("", "imap-login", "Info: Login: user=<a>"));
    }

    #[test]
    fn stockholm_time_and_year_rollover() {
        let mut c = Clock { year: Some(2025), last_month: 0, zone: chrono_tz::Europe::Stockholm };
        let local = |month, day, t: &str| Stamp::Local { month, day, time: t.parse().unwrap() };
        let dec = local(12, 31, "23:59:59");
        c.observe(&dec);
        assert_eq!(c.time(&dec).unwrap().to_rfc3339(), "2025-12-31T22:59:59+00:00");
        let jan = local(1, 1, "00:00:01");
        c.observe(&jan);
        assert_eq!(c.time(&jan).unwrap().to_rfc3339(), "2025-12-31T23:00:01+00:00");
        assert_eq!(c.time(&local(7, 1, "12:00:00")).unwrap().to_rfc3339(), "2026-07-01T10:00:00+00:00");
        assert_eq!(c.time(&local(3, 29, "02:30:00")).unwrap_err().reason, ErrorReason::BadTime);
        assert_eq!(c.time(&local(2, 30, "02:30:00")).unwrap_err().reason, ErrorReason::BadTime);
    }

    #[test]
    fn fields_respect_word_boundaries() {
        let t = "to=<x@gmail.com>, orig_to=<anna@exempel.se>, relay=mx[1.2.3.4]:25, status=sent (250 ok)";
        assert_eq!(field(t, "to"), Some("x@gmail.com"));
        assert_eq!(field(t, "orig_to"), Some("anna@exempel.se"));
        assert_eq!(field(t, "relay"), Some("mx[1.2.3.4]:25"));
        assert_eq!(field(t, "status"), Some("sent"));
        assert_eq!(field(t, "dsn"), None);
    }
}
