//! Decoder for Squid's access.log, in the native format or the common/combined format;
//! each line is judged on its own (a line starting with `digits[.digits]` is native).
//!
//! Native (`logformat squid`): `time elapsed client code/status bytes method URL user
//! hierarchy/peer type`, e.g.
//! `1710000000.123     45 10.0.0.5 TCP_MISS/200 1234 GET https://webmail.exempel.se/owa/ anna@exempel.se HIER_DIRECT/10.0.0.9 text/html`.
//!
//! Common/combined (`logformat common`/`combined`): `client ident user [time] "request"
//! status bytes ["referer" "agent"] [squid-status]`, e.g.
//! `10.0.0.5 - anna [02/Mar/2026:08:00:01 +0100] "GET https://webmail.exempel.se/owa/ HTTP/1.1" 200 1234 "-" "Mozilla/5.0"`.
//!
//! | field | event field | notes |
//! |---|---|---|
//! | native `time` / common `[time]` | `Event::time` | unix seconds.millis / `dd/Mon/yyyy:hh:mm:ss ±zzzz` |
//! | `user` (native), `user` else `ident` (common) | `user` | `-` → none; `%XX` escapes decoded; normalised |
//! | URL | `host`, `path` | host lower-cased, port and `[]` of IPv6 literals removed; path without query or fragment, `/` when empty |
//! | `CONNECT host:port` | `host`, path `/` | a tunnel shows no path |
//! | method | `method` | as logged |
//! | `code/status` / `status` | `status` | `NONE/000` → 0 |
//!
//! Clients may be IPv4 or IPv6 (the client field is not kept). A request whose URL names
//! no host (`error:invalid-request`, `-`, an origin-form `/path` from an accelerator
//! without host) is `missing_field`; a truncated line is `syntax`.
//!
//! Not supported: custom `logformat`s, access logs sent through syslog (strip the syslog
//! header first), and the request URL's query string (never kept).

use chrono::{DateTime, Utc};

use super::{check_year, utf8, DecodeError, Decoder, ErrorReason};
use crate::event::{addr, Event, EventBody, ProxyRequest, SourcePos, Text};

/// Decodes Squid access.log lines.
#[derive(Debug, Default, Clone, Copy)]
pub struct SquidDecoder;

impl Decoder for SquidDecoder {
    fn decode(&mut self, line: &[u8], pos: &SourcePos, out: &mut Vec<Event>) -> Result<(), DecodeError> {
        let text = utf8(line)?.trim();
        if text.is_empty() {
            return Ok(());
        }
        let native = text.split(' ').next().is_some_and(is_unix_time);
        let (time, request) = if native { native_line(text)? } else { common_line(text)? };
        out.push(Event { time: check_year(time)?, source: pos.clone(), body: EventBody::Proxy(request) });
        Ok(())
    }
}

/// Digits with at most one `.`: a native time, never an IPv4 client (three dots).
fn is_unix_time(token: &str) -> bool {
    !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && token.bytes().filter(|&b| b == b'.').count() <= 1
}

fn syntax(detail: &str) -> DecodeError {
    DecodeError::new(ErrorReason::Syntax, format!("squid: {detail}"))
}

fn native_line(text: &str) -> Result<(DateTime<Utc>, ProxyRequest), DecodeError> {
    let f: Vec<&str> = text.split_ascii_whitespace().collect();
    let [time, _elapsed, _client, code, _bytes, method, url, user, ..] = f.as_slice() else {
        return Err(syntax("native line has fewer than 8 fields"));
    };
    let status = code.rsplit_once('/').map(|(_, s)| s).ok_or_else(|| syntax("no code/status"))?;
    Ok((unix_time(time)?, request(method, url, user, status)?))
}

fn common_line(text: &str) -> Result<(DateTime<Utc>, ProxyRequest), DecodeError> {
    let (who, rest) = text.split_once(" [").ok_or_else(|| syntax("no [time]"))?;
    let (stamp, rest) = rest.split_once("] \"").ok_or_else(|| syntax("no quoted request after [time]"))?;
    let (req, rest) = closing_quote(rest).ok_or_else(|| syntax("request quote not closed"))?;
    let mut who = who.split_ascii_whitespace().skip(1);
    let (ident, user) = (who.next().unwrap_or("-"), who.next().unwrap_or("-"));
    let user = if user == "-" { ident } else { user };
    let mut parts = req.split_ascii_whitespace();
    let (method, url) = (parts.next().unwrap_or(""), parts.next().ok_or_else(|| syntax("request has no URL"))?);
    let status = rest.split_ascii_whitespace().next().ok_or_else(|| syntax("no status"))?;
    let time = DateTime::parse_from_str(stamp, "%d/%b/%Y:%H:%M:%S %z").map_err(|e| {
        DecodeError::new(ErrorReason::BadTime, format!("time {stamp:?} is not dd/Mon/yyyy:hh:mm:ss ±zzzz ({e})"))
    })?;
    Ok((time.with_timezone(&Utc), request(method, url, user, status)?))
}

/// Splits at the first `"` not escaped by `\`: the quoted text and what follows.
fn closing_quote(s: &str) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some((s.get(..i)?, s.get(i + 1..)?)),
            _ => escaped = false,
        }
    }
    None
}

fn unix_time(s: &str) -> Result<DateTime<Utc>, DecodeError> {
    let bad = || DecodeError::new(ErrorReason::BadTime, format!("time {s:?} is not unix seconds.millis"));
    let (secs, frac) = s.split_once('.').unwrap_or((s, "0"));
    let millis = format!("{frac:0<3}").get(..3).and_then(|m| m.parse::<i64>().ok()).ok_or_else(bad)?;
    let secs = secs.parse::<i64>().map_err(|_| bad())?;
    secs.checked_mul(1000)
        .and_then(|ms| ms.checked_add(millis))
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(bad)
}

fn request(method: &str, url: &str, user: &str, status: &str) -> Result<ProxyRequest, DecodeError> {
    let status = status
        .parse::<u16>()
        .map_err(|_| DecodeError::new(ErrorReason::InvalidValue, format!("status {status:?} is not a number")))?;
    let (host, path) = if method.eq_ignore_ascii_case("CONNECT") { (url, "/") } else { split_url(url) };
    let host = Text::from(host_without_port(host).to_lowercase());
    if host.is_empty() || host.contains('/') {
        return Err(DecodeError::new(
            ErrorReason::MissingField,
            format!("request URL names no host ({} bytes)", url.len()),
        ));
    }
    let path = path.split(['?', '#']).next().filter(|p| !p.is_empty()).unwrap_or("/");
    Ok(ProxyRequest {
        user: Some(addr::normalize(&percent_decode(user))).filter(|u| !u.is_empty() && u != "-"),
        host,
        path: Text::new(path),
        method: Text::new(method),
        status,
    })
}

/// `scheme://authority/path…` → (authority, `/path…`); anything else has no host.
fn split_url(url: &str) -> (&str, &str) {
    let Some((_, rest)) = url.split_once("://") else { return ("", url) };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    (authority.rsplit_once('@').map_or(authority, |(_, h)| h), path)
}

/// `host:port` → `host`; `[v6]:port` → `v6`.
fn host_without_port(authority: &str) -> &str {
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split_once(']').map_or(v6, |(h, _)| h);
    }
    match authority.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

/// Decodes `%XX` escapes (Squid escapes user names, `EXEMPEL%5Canna`).
fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let hex =
            b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (c, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_hosts_and_ports() {
        assert_eq!(
            split_url("https://user@Webmail.Exempel.se:8443/owa/?a=1"),
            ("Webmail.Exempel.se:8443", "/owa/?a=1")
        );
        assert_eq!(split_url("http://host"), ("host", ""));
        assert_eq!(host_without_port("[2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(host_without_port("webmail.exempel.se:443"), "webmail.exempel.se");
        assert_eq!(host_without_port("2001:db8::1"), "2001:db8::1");
    }

    #[test]
    fn user_escapes_and_times() {
        assert_eq!(percent_decode("EXEMPEL%5Canna%4"), "EXEMPEL\\anna%4");
        assert_eq!(unix_time("1710000000.5").unwrap().to_rfc3339(), "2024-03-09T16:00:00.500+00:00");
        assert_eq!(unix_time("1710000000").unwrap().timestamp(), 1_710_000_000);
        assert_eq!(unix_time("17.1.0").unwrap_err().reason, ErrorReason::BadTime);
    }
}
