//! The operations endpoint of `replay --metrics-addr`, scraped over HTTP while the binary
//! runs: counters move as events are fed, readiness waits for the sources, nothing in the
//! exposition names a person or a path, and `--linger` keeps it up after the input ends.
//! Loopback only; every wait is bounded.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use common::{forwarding, tick};

const TIMEOUT: Duration = Duration::from_secs(60);

/// The child, killed if the test fails before it exits.
struct Proc {
    child: Child,
    stderr: Receiver<String>,
    seen: Vec<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn start(args: &[&str], dir: &std::path::Path) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_brevvakt"))
            .arg("replay")
            .args(["--quiet", "--workers", "2", "--metrics-addr", "127.0.0.1:0"])
            .arg("--out")
            .arg(dir.join("alerts.jsonl"))
            .arg("--dead-letter")
            .arg(dir.join("dead.jsonl"))
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("brevvakt starts");
        let err = child.stderr.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { child, stderr: rx, seen: Vec::new() }
    }

    /// Waits for a stderr line containing `needle`; returns it.
    fn wait_stderr(&mut self, needle: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(_) => panic!("no {needle:?} on stderr within {TIMEOUT:?}; saw:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// The address from the `metrics listening on ADDR` log line.
    fn addr(&mut self) -> SocketAddr {
        let line = self.wait_stderr("metrics listening on ");
        let rest = &line[line.find("metrics listening on ").unwrap() + "metrics listening on ".len()..];
        let addr: SocketAddr = rest.split(|c: char| c.is_whitespace() || c == '"').next().unwrap().parse().unwrap();
        assert!(addr.ip().is_loopback());
        addr
    }

    fn stdin(&mut self) -> &mut ChildStdin {
        self.child.stdin.as_mut().unwrap()
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "brevvakt did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A plain HTTP/1.1 GET: status and body.
fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_string());
    Ok((status, body))
}

/// Scrapes `/metrics`: sample lines (`name{labels}` → value). Checks on every scrape that
/// nothing in the exposition could name a person.
fn scrape(addr: SocketAddr) -> BTreeMap<String, f64> {
    let (status, body) = get(addr, "/metrics").expect("scrape");
    assert_eq!(status, 200);
    assert!(!body.contains('@'), "an '@' in the exposition:\n{body}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

fn value(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

/// Sum of every sample of metric `name`.
fn sum(m: &BTreeMap<String, f64>, name: &str) -> f64 {
    m.iter().filter(|(k, _)| k.as_str() == name || k.starts_with(&format!("{name}{{"))).map(|(_, v)| v).sum()
}

/// Scrapes until `ok` holds (bounded).
fn scrape_until(addr: SocketAddr, what: &str, ok: impl Fn(&BTreeMap<String, f64>) -> bool) -> BTreeMap<String, f64> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let m = scrape(addr);
        if ok(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "{what}: not reached within {TIMEOUT:?}; last scrape: {m:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const FORWARDING_ALERT: &str = r#"brevvakt_alerts_total{rule="external_forwarding",severity="high",status="open"}"#;

/// Access events of an unmonitored user, one second apart from 08:00 on, all on one day.
fn ticks(from: usize, n: usize) -> String {
    (from..from + n).map(|i| tick(&format!("2026-03-02T{:02}:{:02}:{:02}+01:00", 8 + i / 3600, i / 60 % 60, i % 60)) + "\n").collect()
}

#[test]
fn counters_move_as_stdin_is_fed_and_the_endpoint_lingers() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Proc::start(&["--linger", "5", "-"], dir.path());
    let addr = p.addr();

    // Nothing read yet: up, but not ready.
    assert_eq!(get(addr, "/healthz").unwrap().0, 200);
    let (status, body) = get(addr, "/readyz").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("sources not connected"), "{body}");
    let m = scrape(addr);
    assert_eq!(sum(&m, "brevvakt_events_total"), 0.0);
    assert_eq!(value(&m, "brevvakt_build_info{version=\"0.1.0\"}"), 1.0);

    // Step 1: a malformed line, external forwarding to gmail, then enough ordinary events
    // that the reader hands a chunk on (it reads stdin in chunks of up to 256 KiB).
    let mut step1 = String::from("{not json\n");
    step1 += &(forwarding("2026-03-02T07:59:00+01:00", "anna@exempel.se", "inbox_rule", &["anna.privat@gmail.com"], "enabled") + "\n");
    step1 += &ticks(0, 3000);
    assert!(step1.len() > 300_000);
    p.stdin().write_all(step1.as_bytes()).unwrap();
    p.stdin().flush().unwrap();

    let m = scrape_until(addr, "first events counted", |m| value(m, FORWARDING_ALERT) >= 1.0);
    assert_eq!(value(&m, FORWARDING_ALERT), 1.0);
    assert_eq!(value(&m, r#"brevvakt_decode_errors_total{reason="syntax",source="stdin"}"#), 1.0);
    assert_eq!(value(&m, "brevvakt_dead_letters_total"), 1.0);
    assert_eq!(value(&m, r#"brevvakt_events_total{source="stdin",type="mailbox.forwarding"}"#), 1.0);
    let first = value(&m, r#"brevvakt_events_total{source="stdin",type="mailbox.access"}"#);
    assert!(first >= 1000.0, "a first chunk was counted: {first}");
    assert_eq!(value(&m, r#"brevvakt_open_findings{rule="external_forwarding"}"#), 1.0);
    assert!(value(&m, "brevvakt_alert_latency_seconds_count") >= 1.0);
    assert!(value(&m, "brevvakt_batch_latency_seconds_count") >= 1.0);
    assert!(value(&m, "brevvakt_watermark_seconds") > 1.77e9, "watermark set (2026)");
    assert!(sum(&m, "brevvakt_state_mailboxes") >= 1.0);
    assert!(!m.keys().any(|k| k.contains("source=\"file\"")), "stdin is labelled as stdin");
    let (status, body) = get(addr, "/readyz").unwrap();
    assert_eq!(status, 200, "ready once the source delivered: {body}");

    // Step 2: more events and a second bad line, then end of input.
    let step2 = ticks(3000, 500) + "{\"type\":\"mailbox.access\"}\n";
    p.stdin().write_all(step2.as_bytes()).unwrap();
    drop(p.child.stdin.take());
    p.wait_stderr("replay summary");

    // The run is over; --linger keeps the final figures readable.
    let m = scrape_until(addr, "final figures", |m| value(m, r#"brevvakt_records_read_total{source="stdin"}"#) == 3503.0);
    assert_eq!(value(&m, r#"brevvakt_events_total{source="stdin",type="mailbox.access"}"#), 3500.0);
    assert_eq!(sum(&m, "brevvakt_events_total"), 3501.0);
    assert_eq!(sum(&m, "brevvakt_decode_errors_total"), 2.0);
    assert_eq!(value(&m, "brevvakt_dead_letters_total"), 2.0);
    assert_eq!(value(&m, FORWARDING_ALERT), 1.0);
    assert!(value(&m, r#"brevvakt_read_bytes_total{source="stdin"}"#) > first * 100.0);
    assert_eq!(get(addr, "/healthz").unwrap().0, 200);

    let status = p.wait_exit();
    assert!(status.success(), "{status}");
    assert!(get(addr, "/healthz").is_err(), "the endpoint closes after the linger");
}

#[test]
fn file_inputs_are_labelled_by_kind_never_by_path() {
    let dir = tempfile::tempdir().unwrap();
    // A path that would leak if it were ever used as a label.
    let sub = dir.path().join("anna@exempel.se");
    std::fs::create_dir(&sub).unwrap();
    let input = sub.join("events.jsonl");
    std::fs::write(&input, ticks(0, 20) + "garbage\n").unwrap();
    let mut p = Proc::start(&["--linger", "5", input.to_str().unwrap()], dir.path());
    let addr = p.addr();
    let m = scrape_until(addr, "file counted", |m| value(m, r#"brevvakt_records_read_total{source="file"}"#) == 21.0);
    assert_eq!(value(&m, r#"brevvakt_events_total{source="file",type="mailbox.access"}"#), 20.0);
    assert_eq!(value(&m, r#"brevvakt_decode_errors_total{reason="syntax",source="file"}"#), 1.0);
    assert!(p.wait_exit().success());
}
