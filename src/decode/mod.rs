//! Decoders: raw records (one line of bytes) → normalized [`Event`]s.
//!
//! Guarantees: a decoder never panics on input; every record either yields zero or more
//! events or a [`DecodeError`] whose [`ErrorReason`] is one of a small fixed set (so it can
//! be a metric label) plus a human-readable detail for the dead-letter file. Decoders may
//! keep state between lines of one input (a CSV `#Fields:` header, a Postfix queue id
//! correlation), so one decoder instance serves exactly one input, in order. When the input
//! ends, [`Decoder::finish`] hands over what a decoder still holds: a record it can complete
//! becomes events, one it cannot (a CSV record whose quoted field never closed) is an
//! [`Unfinished`] record with its position and bytes, so it is counted and dead-lettered
//! like any bad line instead of vanishing.
//!
//! Not guaranteed: that an event is *relevant*; lines a format writes that carry nothing
//! the rules need (headers, unrelated cmdlets) are skipped silently (`Ok` with no event).

pub mod flat_json;
pub mod normalized;
pub mod pool;

pub mod csvline;
pub mod dovecot;
pub mod exchange_admin_audit;
pub mod exchange_cmdlet;
pub mod exchange_tracking;
pub mod m365;
pub mod mail;
pub mod postfix;
pub mod squid;
pub mod syslog;

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::{Event, SourcePos};
use pool::Observed;

/// Turns one record into events.
pub trait Decoder: Send {
    /// Decodes `line` (without its line terminator), read at `pos`, appending to `out`.
    fn decode(&mut self, line: &[u8], pos: &SourcePos, out: &mut Vec<Event>) -> Result<(), DecodeError>;

    /// Decodes `line` as [`Decoder::decode`] does, for a reader that takes every event's
    /// time and type but needs the event itself only where `interest` may (the decode
    /// pool). A decoder may leave out an event that `interest` ignores, and need not build
    /// it: the normalized decoder does so for mail delivered only where nobody acts on it and
    /// for browsing that is not webmail use.
    /// The default builds every event. `scratch` is an empty buffer to decode into.
    fn decode_observed(&mut self, line: &[u8], pos: &SourcePos, _interest: &dyn Interest, scratch: &mut Vec<Event>, out: &mut Vec<Observed>) -> Result<(), DecodeError> {
        let result = self.decode(line, pos, scratch);
        out.extend(scratch.drain(..).map(Observed::from));
        result
    }

    /// The input has ended: appends the events of anything still held to `out`, or reports
    /// the record that cannot be completed. Decoders that hold nothing between lines keep
    /// the default (nothing to do).
    fn finish(&mut self, _out: &mut Vec<Event>) -> Result<(), Unfinished> {
        Ok(())
    }
}

/// What a reader of decoded events needs built ([`Decoder::decode_observed`]).
pub trait Interest {
    /// Whether a message delivered to `recipient` (as written in the record), with no
    /// classification and no original recipient, is ignored there: `false` whenever in
    /// doubt.
    fn ignores_delivery_to(&self, recipient: &str) -> bool;

    /// Whether a proxy request to `host` (normalised) and `path`, answered with `status`,
    /// by a user when `by_user`, is ignored: `false` whenever in doubt.
    fn ignores_request(&self, host: &str, path: &str, status: u16, by_user: bool) -> bool;
}

/// An interest in every event: nothing is left out.
pub struct Everything;

impl Interest for Everything {
    fn ignores_delivery_to(&self, _recipient: &str) -> bool {
        false
    }

    fn ignores_request(&self, _host: &str, _path: &str, _status: u16, _by_user: bool) -> bool {
        false
    }
}

/// A record a decoder still held when its input ended and could not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfinished {
    /// Where the record began.
    pub pos: SourcePos,
    /// The record's bytes as read (its lines joined by `\n`).
    pub raw: Vec<u8>,
    /// Why it is bad.
    pub error: DecodeError,
}

/// Why a record could not be decoded: a bounded set, used as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorReason {
    /// The bytes are not valid UTF-8.
    NotUtf8,
    /// The record is longer than `input.max_line_bytes`.
    TooLong,
    /// Not syntactically valid for the format (not JSON, wrong CSV arity, no syslog header).
    Syntax,
    /// A required field is missing.
    MissingField,
    /// A field has a value of the wrong kind or out of range.
    InvalidValue,
    /// The event type is not one the model knows.
    UnknownType,
    /// The time is missing its UTC offset, unparsable, or outside the supported years.
    BadTime,
}

impl ErrorReason {
    /// Every reason, for metrics and summaries.
    pub const ALL: [ErrorReason; 7] = [
        ErrorReason::NotUtf8,
        ErrorReason::TooLong,
        ErrorReason::Syntax,
        ErrorReason::MissingField,
        ErrorReason::InvalidValue,
        ErrorReason::UnknownType,
        ErrorReason::BadTime,
    ];

    /// The snake_case label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorReason::NotUtf8 => "not_utf8",
            ErrorReason::TooLong => "too_long",
            ErrorReason::Syntax => "syntax",
            ErrorReason::MissingField => "missing_field",
            ErrorReason::InvalidValue => "invalid_value",
            ErrorReason::UnknownType => "unknown_type",
            ErrorReason::BadTime => "bad_time",
        }
    }
}

/// A record that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// The bounded category.
    pub reason: ErrorReason,
    /// What exactly was wrong (never contains message content beyond field names).
    pub detail: String,
}

impl DecodeError {
    /// A new error.
    pub fn new(reason: ErrorReason, detail: impl Into<String>) -> Self {
        DecodeError { reason, detail: detail.into() }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason.as_str(), self.detail)
    }
}

impl std::error::Error for DecodeError {}

/// The input formats brevvakt decodes, selectable per file or topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Format {
    /// brevvakt's normalized JSON Lines (see `schemas/`).
    #[default]
    Normalized,
    /// Microsoft 365 / Exchange Online unified audit log records, JSON (see [`m365`]).
    M365,
    /// Exchange Server admin audit log records, JSON lines or CSV (see [`exchange_admin_audit`]).
    #[serde(alias = "exchange-admin-audit")]
    #[value(alias = "exchange-admin-audit")]
    ExchangeAdminAudit,
    /// Exchange Server message tracking log, CSV with `#Fields:` (see [`exchange_tracking`]).
    #[serde(alias = "exchange-tracking")]
    #[value(alias = "exchange-tracking")]
    ExchangeTracking,
    /// Postfix and Dovecot lines from syslog, RFC 3164 or RFC 5424 (see [`syslog`]).
    #[serde(alias = "postfix", alias = "dovecot")]
    #[value(alias = "postfix", alias = "dovecot")]
    Syslog,
    /// Squid access.log, native or common/combined (see [`squid`]).
    Squid,
}

/// Options some formats need that the records themselves do not carry.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// The year of RFC 3164 syslog times (which carry none). `None` makes every RFC 3164
    /// line a `bad_time` error: the year is never guessed. Within one input the year steps
    /// up by one when the month goes from December to January.
    pub syslog_year: Option<i32>,
    /// The zone of RFC 3164 syslog times (which carry no offset); default Europe/Stockholm.
    pub syslog_timezone: chrono_tz::Tz,
    /// The organisation's domains: only used to fill `mail.message` `direction`. Empty
    /// (the default) makes every address with a domain count as outside.
    pub org_domains: crate::domains::OrgDomains,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            syslog_year: None,
            syslog_timezone: chrono_tz::Europe::Stockholm,
            org_domains: crate::domains::OrgDomains::default(),
        }
    }
}

impl Format {
    /// The format named `name` (`exchange_tracking` or `exchange-tracking`, any case, the
    /// aliases `postfix` and `dovecot` included), `None` for any other text.
    pub fn from_name(name: &str) -> Option<Format> {
        <Format as clap::ValueEnum>::from_str(&name.replace('-', "_"), true).ok()
    }

    /// The names of every format, for messages (`normalized, m365, …`).
    pub fn names() -> String {
        let names: Vec<String> = <Format as clap::ValueEnum>::value_variants()
            .iter()
            .filter_map(|f| clap::ValueEnum::to_possible_value(f).map(|v| v.get_name().to_owned()))
            .collect();
        names.join(", ")
    }

    /// Whether a decoder of this format keeps nothing between lines, so any run of lines
    /// can be decoded by a fresh one (on the [`pool`]'s threads).
    pub fn stateless(self) -> bool {
        matches!(self, Format::Normalized | Format::M365 | Format::Squid)
    }

    /// The time of a record of this format when it can be read without decoding the record
    /// (normalized JSON: [`normalized::record_time`]); `None`: decode it to know.
    pub fn quick_time(self, line: &[u8]) -> Option<chrono::DateTime<chrono::Utc>> {
        match self {
            Format::Normalized => normalized::record_time(line),
            _ => None,
        }
    }

    /// A fresh decoder for one input of this format.
    pub fn decoder(self, opts: &DecodeOptions) -> Box<dyn Decoder> {
        match self {
            Format::Normalized => Box::new(normalized::NormalizedDecoder),
            Format::M365 => Box::new(m365::M365Decoder),
            Format::ExchangeAdminAudit => Box::new(exchange_admin_audit::AdminAuditDecoder::default()),
            Format::ExchangeTracking => Box::new(exchange_tracking::TrackingDecoder::new(opts)),
            Format::Syslog => Box::new(syslog::SyslogDecoder::new(opts)),
            Format::Squid => Box::new(squid::SquidDecoder),
        }
    }
}

/// The first and last year an event time may have (the calendar's supported range).
pub const YEARS: std::ops::RangeInclusive<i32> = crate::calendar::MIN_YEAR..=crate::calendar::MAX_YEAR;

/// Parses an RFC 3339 time that carries an offset, within the supported years.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, DecodeError> {
    if let Some(t) = parse_plain_time(s.as_bytes()) {
        return check_year(t);
    }
    let t = DateTime::parse_from_rfc3339(s).map_err(|e| {
        DecodeError::new(ErrorReason::BadTime, format!("time {s:?} is not RFC 3339 with an offset ({e})"))
    })?;
    check_year(t.with_timezone(&Utc))
}

/// The common shape, `YYYY-MM-DDTHH:MM:SS` then `Z` or `±HH:MM`, read directly into
/// seconds since the epoch. chrono's general RFC 3339 parser cost about 450 instructions a
/// time; building the instant through chrono's date and time types (validated date,
/// then the offset subtracted with date arithmetic) still cost about 430 by callgrind,
/// a twentieth of all the pipeline's instructions; counting the days directly costs a
/// fraction of that. `None` for anything else — fractions, a leap second, `t` or a space
/// as separator, an invalid date — which the general parser then reads or refuses.
fn parse_plain_time(b: &[u8]) -> Option<DateTime<Utc>> {
    const DIGITS: [usize; 14] = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
    const PUNCT: [(usize, u8); 5] = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    let offset_minutes = match (b.len(), b.get(19)) {
        (20, Some(b'Z')) => 0,
        (25, Some(sign @ (b'+' | b'-'))) if b[22] == b':' && [20, 21, 23, 24].iter().all(|&i| b[i].is_ascii_digit()) => {
            let (h, m) = (two_digits(b, 20), two_digits(b, 23));
            (h < 24 && m < 60).then_some(())?;
            let minutes = i64::from(h * 60 + m);
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    // The length is 20 or 25 here: every index below is in the slice.
    if !(DIGITS.iter().all(|&i| b[i].is_ascii_digit()) && PUNCT.iter().all(|&(i, c)| b[i] == c)) {
        return None;
    }
    let (year, month, day) = (two_digits(b, 0) * 100 + two_digits(b, 2), two_digits(b, 5), two_digits(b, 8));
    let (h, m, sec) = (two_digits(b, 11), two_digits(b, 14), two_digits(b, 17));
    let valid = (1..=12).contains(&month) && (1..=days_in_month(year, month)).contains(&day) && h < 24 && m < 60 && sec < 60;
    valid.then_some(())?;
    let local = days_from_epoch(year, month, day) * 86_400 + i64::from(h * 3600 + m * 60 + sec);
    DateTime::from_timestamp(local - offset_minutes * 60, 0)
}

/// The number written by the two ASCII digits at `at`.
fn two_digits(b: &[u8], at: usize) -> u32 {
    u32::from(b[at] - b'0') * 10 + u32::from(b[at + 1] - b'0')
}

/// Days in `month` (1–12) of `year` (proleptic Gregorian).
fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a valid date of years 0–9999 (proleptic Gregorian). The year
/// is counted from March, so its leap day falls at its end, and shifted by 400 years
/// (146,097 days) so that January and February of year 0 stay positive.
const fn days_from_epoch(year: u32, month: u32, day: u32) -> i64 {
    let y = year + 400 - (month <= 2) as u32;
    let from_march = (month + 9) % 12;
    let day_of_year = (153 * from_march + 2) / 5 + day - 1;
    let days = 365 * y + y / 4 - y / 100 + y / 400 + day_of_year;
    days as i64 - 719_468 - 146_097
}

/// The supported years as seconds since the epoch, UTC: from the start of the first to
/// the start of the year after the last.
const YEAR_SECONDS: std::ops::Range<i64> =
    days_from_epoch(*YEARS.start() as u32, 1, 1) * 86_400..days_from_epoch(*YEARS.end() as u32 + 1, 1, 1) * 86_400;

/// Refuses instants outside the supported years. Compares the instant's seconds: asking
/// chrono for its year builds the calendar date (about 1 % of a replay's `perf` samples).
pub fn check_year(t: DateTime<Utc>) -> Result<DateTime<Utc>, DecodeError> {
    if YEAR_SECONDS.contains(&t.timestamp()) {
        Ok(t)
    } else {
        Err(DecodeError::new(
            ErrorReason::BadTime,
            format!("time {t} is outside the supported years {}–{}", YEARS.start(), YEARS.end()),
        ))
    }
}

/// Checks that a record is UTF-8, with the standard error.
pub fn utf8(line: &[u8]) -> Result<&str, DecodeError> {
    // SIMD validation first (callgrind: the standard library's took about 200
    // instructions a normalized line); the standard one only to say where a bad line
    // goes wrong.
    if let Ok(text) = simdutf8::basic::from_utf8(line) {
        return Ok(text);
    }
    std::str::from_utf8(line).map_err(|e| {
        DecodeError::new(ErrorReason::NotUtf8, format!("invalid UTF-8 at byte {}", e.valid_up_to()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;
    use proptest::prelude::*;

    /// chrono's RFC 3339 parser, the reference for the direct reading.
    fn by_chrono(s: &str) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
    }

    #[test]
    fn plain_times_are_read_as_chrono_reads_them() {
        for s in ["2026-03-02T08:00:00+01:00", "2026-03-02T08:00:00Z", "2024-02-29T23:59:59-12:30", "1990-01-01T00:00:00+23:59", "2000-02-29T12:00:00Z", "1969-12-31T23:59:59Z", "0000-01-01T00:00:00-01:00", "9999-12-31T23:59:59Z", "2026-12-31T23:30:00-01:00", "2026-01-01T00:30:00+01:00"] {
            assert_eq!(parse_plain_time(s.as_bytes()), by_chrono(s), "{s}");
            assert!(parse_plain_time(s.as_bytes()).is_some(), "{s}");
        }
        for s in ["2026-02-29T08:00:00Z", "1900-02-29T08:00:00Z", "2026-04-31T08:00:00Z", "2026-13-01T08:00:00Z", "2026-00-10T08:00:00Z", "2026-01-00T08:00:00Z", "2026-03-02T08:00:60Z", "2026-03-02T24:00:00Z", "2026-03-02t08:00:00Z", "2026-03-02T08:00:00.5Z", "2026-03-02T08:00:00", "2026-03-02T08:00:00+0100", "+2026-03-02T08:00:00Z"] {
            assert_eq!(parse_plain_time(s.as_bytes()), None, "{s}");
        }
    }

    #[test]
    fn the_supported_years_end_at_their_first_and_last_second() {
        let (first, last) = (*YEARS.start(), *YEARS.end());
        for (s, ok) in [
            (format!("{}-12-31T23:59:59Z", first - 1), false),
            (format!("{first}-01-01T00:00:00Z"), true),
            (format!("{first}-01-01T00:30:00+01:00"), false),
            (format!("{last}-12-31T23:59:59Z"), true),
            (format!("{last}-12-31T23:30:00-01:00"), false),
            (format!("{}-01-01T00:00:00Z", last + 1), false),
        ] {
            let t = by_chrono(&s).unwrap();
            assert_eq!(check_year(t).is_ok(), ok, "{s}");
            assert_eq!(check_year(t).is_ok(), YEARS.contains(&t.year()), "{s}: the year of the instant in UTC decides");
        }
    }

    proptest! {
        /// Whatever the direct reading accepts, chrono reads the same, and it accepts every
        /// plain time chrono does.
        #[test]
        fn the_direct_reading_agrees_with_chrono(d in "[0-9]{4}-[0-2][0-9]-[0-3][0-9][T ][0-2][0-9]:[0-6][0-9]:[0-6][0-9](Z|[+-][0-2][0-9]:[0-6][0-9])") {
            // The direct reading takes every time of the plain shape chrono takes (a
            // leap second and a space as separator are left to chrono).
            let plain_shape = d.as_bytes()[10] == b'T' && &d[17..19] < "60";
            match parse_plain_time(d.as_bytes()) {
                Some(t) => prop_assert_eq!(Some(t), by_chrono(&d)),
                None => prop_assert!(!plain_shape || by_chrono(&d).is_none(), "{} left to chrono", d),
            }
        }
    }
}
