//! Hostile input: a million malformed records of every kind an attacker or a broken
//! shipper produces. brevvakt must not panic, must stay within bounded memory, and must
//! count and dead-letter every one of them with a reason — while the valid records mixed
//! in are still processed.

use std::io::{BufWriter, Write};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_brevvakt");
const LINES: usize = 1_000_000;

/// splitmix64: deterministic bytes for the random-garbage lines.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

const VALID: &str = r#"{"type":"mailbox.forwarding","time":"2026-06-15T09:00:00+02:00","mailbox":"anna@exempel.se","mechanism":"inbox_rule","targets":["anna@gmail.com"],"state":"enabled"}"#;

/// One malformed line of kind `k`.
fn hostile(k: usize, rng: &mut Rng, out: &mut Vec<u8>) {
    out.clear();
    match k % 12 {
        0 => out.extend((0..(rng.next() % 200) as usize).map(|_| (rng.next() % 255 + 1) as u8).filter(|b| *b != b'\n')),
        1 => out.extend_from_slice(&VALID.as_bytes()[..(rng.next() % (VALID.len() as u64 - 1)) as usize]),
        2 => out.extend_from_slice(format!("{}{}", "[".repeat(5000), "]".repeat(5000)).as_bytes()),
        3 => out.extend_from_slice(b"{\"type\":\"mailbox.access\",\"time\":\"2026-06-15T08:00:00+02:00\",\"mailbox\":\"\xff\xfe@exempel.se\"}"),
        4 => out.extend_from_slice(b"{\"type\":\"mail.message\",\0\"time\":\"2026-06-15T08:00:00Z\"}"),
        5 => out.extend_from_slice(br#"{"type":"mailbox.delegation","type":"mailbox.delegation","time":"2026-06-15T08:00:00Z","time":"2026-06-15T08:00:00Z","mailbox":"a@exempel.se","delegate":"b@exempel.se","state":"granted"}"#),
        6 => out.extend_from_slice(br#"{"type":"mail.message","time":"2026-06-15T08:00:00Z","message_id":"x","sender":"a@exempel.se","recipients":["b@x.se"],"direction":"outbound","action":"relay","classification":1e400}"#),
        7 => out.extend_from_slice(br#"{"type":"proxy.request","time":"9999-12-31T23:59:59Z","user":"a@exempel.se","host":"webmail.exempel.se","path":"/owa/","method":"GET","status":200}"#),
        8 => out.extend_from_slice(br#"{"type":"proxy.request","time":"1989-12-31T23:59:59+01:00","user":"a@exempel.se","host":"webmail.exempel.se","path":"/owa/","method":"GET","status":200}"#),
        9 => out.extend_from_slice(br#"{"type":"proxy.request","time":"2026-06-15T08:00:00","user":"a@exempel.se","host":"webmail.exempel.se","path":"/owa/","method":"GET","status":200}"#),
        10 => out.extend_from_slice(br#"{"type":"proxy.request","time":"2026-06-15T08:00:00Z","user":"a@exempel.se","host":"webmail.exempel.se","path":"/owa/","method":"GET","status":99999}"#),
        _ => out.extend_from_slice(br#"{"type":"mail.fax","time":"2026-06-15T08:00:00Z"}"#),
    }
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_million_malformed_records_are_all_counted_and_dead_lettered_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("hostile.jsonl");
    let mut w = BufWriter::new(std::fs::File::create(&input).unwrap());
    let (mut rng, mut line) = (Rng(2026), Vec::new());
    let mut valid = 0;
    for i in 0..LINES {
        if i % 100_000 == 50_000 {
            // A 10 MB line: over the limit, cut and dead-lettered, never buffered whole.
            w.write_all(&vec![b'{'; 10 << 20]).unwrap();
        } else if i % 250_000 == 0 {
            w.write_all(VALID.as_bytes()).unwrap();
            valid += 1;
        } else {
            hostile(i, &mut rng, &mut line);
            w.write_all(&line).unwrap();
        }
        w.write_all(b"\n").unwrap();
    }
    w.flush().unwrap();
    drop(w);

    let dead = dir.path().join("dead.jsonl");
    let child = Command::new(BIN)
        .args(["replay", "--quiet", "--workers", "2", "--dead-letter", dead.to_str().unwrap(), input.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let sampler = std::thread::spawn(move || {
        let mut peak = 0;
        while let Some(kib) = peak_rss_kib(pid) {
            peak = peak.max(kib);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        peak
    });
    let out = child.wait_with_output().unwrap();
    let peak_kib = sampler.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let bad = LINES - valid;
    assert!(stderr.contains(&format!("records read      {LINES:>10}")), "{stderr}");
    assert!(stderr.contains(&format!("bad records       {bad:>10}")), "{stderr}");
    let dead_lines = std::io::BufRead::lines(std::io::BufReader::new(std::fs::File::open(&dead).unwrap())).count();
    assert_eq!(dead_lines, bad, "every bad record is dead-lettered");
    let alerts = String::from_utf8(out.stdout).unwrap();
    assert_eq!(alerts.lines().count(), 1, "the valid records in between are processed (one finding, repeats are not new)");
    // Memory stays bounded: 10 MB lines are cut at 1 MiB and never held whole; the whole
    // input (~90 MB) is never loaded. 200 MiB is far above the few tens the run needs.
    assert!(peak_kib < 200 * 1024, "peak RSS {peak_kib} KiB");
}
