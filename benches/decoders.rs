//! Decoder throughput per source format, on the test fixtures (valid and malformed lines as
//! they come) repeated to about 1 MiB, one fresh decoder per pass as a source uses one per
//! input. After criterion's report a table gives each format's throughput as a ratio to
//! the normalized JSON decoder, measured on the same inputs.
//!
//! Run: `cargo bench --bench decoders` (needs `[[bench]] name = "decoders" harness = false`).

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use brevvakt::decode::{DecodeOptions, Format};
use brevvakt::domains::OrgDomains;
use brevvakt::event::SourcePos;
use criterion::{Criterion, Throughput};

const INPUTS: [(&str, Format, &str); 9] = [
    ("normalized", Format::Normalized, "normalized.jsonl"),
    ("m365", Format::M365, "m365_ual.jsonl"),
    ("exchange_admin_audit_json", Format::ExchangeAdminAudit, "exchange_admin_audit.jsonl"),
    ("exchange_admin_audit_csv", Format::ExchangeAdminAudit, "exchange_admin_audit.csv"),
    ("exchange_tracking", Format::ExchangeTracking, "exchange_tracking.log"),
    ("syslog_rfc3164", Format::Syslog, "mail_syslog.log"),
    ("syslog_rfc5424", Format::Syslog, "mail_syslog_rfc5424.log"),
    ("squid_native", Format::Squid, "squid_native.log"),
    ("squid_combined", Format::Squid, "squid_combined.log"),
];

const TARGET_BYTES: usize = 1 << 20;

fn options() -> DecodeOptions {
    DecodeOptions {
        syslog_year: Some(2026),
        org_domains: OrgDomains::new(&["exempel.se"]).expect("valid domain"),
        ..DecodeOptions::default()
    }
}

/// The fixture repeated to about [`TARGET_BYTES`], split into lines.
fn input(name: &str) -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/formats").join(name);
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let lines: Vec<&[u8]> = text.strip_suffix(b"\n").unwrap_or(&text).split(|&b| b == b'\n').collect();
    let repeat = TARGET_BYTES / text.len().max(1) + 1;
    (0..repeat).flat_map(|_| lines.iter().map(|l| l.to_vec())).collect()
}

/// Decodes every line with one fresh decoder; returns the number of events.
fn run(format: Format, opts: &DecodeOptions, lines: &[Vec<u8>]) -> usize {
    let mut decoder = format.decoder(opts);
    let name = brevvakt::event::InputName::new("bench");
    let mut out = Vec::with_capacity(8);
    let mut events = 0;
    for (i, line) in lines.iter().enumerate() {
        out.clear();
        let _ = decoder.decode(line, &SourcePos::line(name, i as u64 + 1), &mut out);
        events += out.len();
    }
    events
}

fn bytes(lines: &[Vec<u8>]) -> u64 {
    lines.iter().map(|l| l.len() as u64 + 1).sum()
}

fn bench(c: &mut Criterion, inputs: &[(&str, Format, Vec<Vec<u8>>)]) {
    let opts = options();
    let mut group = c.benchmark_group("decode");
    for (label, format, lines) in inputs {
        group.throughput(Throughput::Bytes(bytes(lines)));
        group.bench_function(*label, |b| b.iter(|| run(*format, &opts, black_box(lines))));
    }
    group.finish();
}

/// Bytes per second, over at least half a second of passes.
fn measure(format: Format, opts: &DecodeOptions, lines: &[Vec<u8>]) -> f64 {
    let (start, mut passes) = (Instant::now(), 0u32);
    while passes < 3 || start.elapsed() < Duration::from_millis(500) {
        black_box(run(format, opts, lines));
        passes += 1;
    }
    bytes(lines) as f64 * f64::from(passes) / start.elapsed().as_secs_f64()
}

fn ratios(inputs: &[(&str, Format, Vec<Vec<u8>>)]) {
    let opts = options();
    let rates: Vec<(&str, f64)> = inputs.iter().map(|(l, f, lines)| (*l, measure(*f, &opts, lines))).collect();
    let base = rates.first().map_or(1.0, |r| r.1);
    println!("\n{:<28} {:>10} {:>14}", "format", "MiB/s", "vs normalized");
    for (label, rate) in rates {
        println!("{label:<28} {:>10.1} {:>13.2}x", rate / f64::from(1 << 20), rate / base);
    }
}

fn main() {
    let inputs: Vec<_> = INPUTS.iter().map(|(l, f, n)| (*l, *f, input(n))).collect();
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &inputs);
    c.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        ratios(&inputs);
    }
}
