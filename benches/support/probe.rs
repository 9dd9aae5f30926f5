//! Probing a running brevvakt from a harness: its `/metrics` (the address from its
//! `metrics listening on ADDR` log line, and a real Prometheus text scrape over HTTP/1.1:
//! sample lines `name{labels}` → value), its CPU time, and the machine's load.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// The address logged as `metrics listening on ADDR` in the log file `log`, waiting up to
/// `limit` for the line to appear.
pub fn listening_addr(log: &Path, limit: Duration) -> SocketAddr {
    const MARK: &str = "metrics listening on ";
    let deadline = Instant::now() + limit;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(i) = text.find(MARK) {
            let rest = &text[i + MARK.len()..];
            let addr = rest.split(|c: char| c.is_whitespace() || c == '"').next().unwrap_or_default();
            return addr.parse().unwrap_or_else(|e| panic!("bad metrics address {addr:?}: {e}"));
        }
        assert!(Instant::now() < deadline, "no `{MARK}` line within {limit:?}; log:\n{text}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One scrape of `/metrics`: every sample line, `name{labels}` → value.
pub fn scrape(addr: SocketAddr) -> std::io::Result<BTreeMap<String, f64>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok(body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' ').and_then(|(k, v)| Some((k.to_string(), v.parse().ok()?))))
        .collect())
}

/// The sum of every series of the metric `name` (all label sets).
pub fn sum(m: &BTreeMap<String, f64>, name: &str) -> f64 {
    m.iter().filter(|(k, _)| k.strip_prefix(name).is_some_and(|r| r.is_empty() || r.starts_with('{'))).map(|(_, v)| v).sum()
}

/// CPU time (user + system) process `pid` has used so far, in seconds.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (in parentheses, may hold spaces); utime and stime are
    // the 12th and 13th of them, in clock ticks of 1/100 s.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    rest.split_whitespace().skip(11).take(2).filter_map(|x| x.parse::<f64>().ok()).sum::<f64>() / 100.0
}

/// The 1-, 5- and 15-minute load averages.
pub fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}
