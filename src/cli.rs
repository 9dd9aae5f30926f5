//! The command line: `replay`, `run`, `generate`, `check-config`, `calendar`.
//!
//! Exit codes: 0 success; 1 the run failed (the error is printed); 2 bad usage or a
//! configuration that was refused (every problem is printed as `field: reason`).
//! Alerts go to stdout (or `--out`), summaries and logs to stderr, so the output can be
//! piped.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Parser, Subcommand};

use crate::calendar::RenderFormat;
use crate::config::{Settings, DEFAULT_TOML};
use crate::generate::GenOptions;
use crate::pipeline::{Options, Summary};
use crate::roster::Roster;
use crate::sinks::dead_letter::DeadLetters;
use crate::sinks::jsonl::{AlertFormat, JsonlSink};
use crate::sinks::AlertSink;
use crate::sources::file::{expand, expand_path, order_by_first_time, FileInput, Input};

/// brevvakt: enforces e-mail rules (no automatic external forwarding, daily reading duty,
/// classified mail) from mail-server and proxy logs.
#[derive(Debug, Parser)]
#[command(name = "brevvakt", version, about)]
pub struct Cli {
    /// Log format on stderr (level from RUST_LOG, default info).
    #[arg(long, global = true, value_enum, default_value = "human")]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Process archived logs (plain, .gz, .zst; files, directories, globs, `-` for stdin)
    /// as fast as the machine allows; alerts as JSON Lines, the summary on stderr.
    Replay(ReplayArgs),
    /// Consume the `[kafka]` topics as a member of the consumer group; alerts and dead
    /// letters go to their topics (at-least-once). SIGINT/SIGTERM drain, commit and exit 0.
    Run(RunArgs),
    /// Write a synthetic, deterministic event stream for an organisation.
    Generate(GenerateArgs),
    /// Validate a configuration file, or print the built-in default.
    CheckConfig(CheckConfigArgs),
    /// List the required reading days of a year.
    Calendar(CalendarArgs),
    /// Show exactly which records produced an alert (for a proportionate follow-up).
    Explain(ExplainArgs),
}

/// `brevvakt explain`.
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The alerts file (JSON Lines, plain or compressed) the alert is in.
    #[arg(long)]
    pub alerts: PathBuf,
    /// The alert's id (or the id of the finding it belongs to).
    pub id: String,
}

/// `brevvakt replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Configuration file (default: the built-in sample organisation).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Roster file, overriding `roster.path` of the configuration.
    #[arg(long)]
    pub roster: Option<PathBuf>,
    /// Shard workers (default: `pipeline.workers`, 0 = one per four cores, at least one).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Write alerts here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Dead-letter file (default: `output.dead_letter`).
    #[arg(long)]
    pub dead_letter: Option<PathBuf>,
    /// Alert format.
    #[arg(long, value_enum, default_value = "json")]
    pub format: AlertFormat,
    /// Declare the archive complete up to this RFC 3339 instant: days ending by then are
    /// judged even when the last events came earlier.
    #[arg(long, value_parser = parse_instant)]
    pub until: Option<DateTime<Utc>>,
    /// No progress bar even on a terminal.
    #[arg(long)]
    pub quiet: bool,
    /// Checkpoint state and positions here, and resume from the newest checkpoint when
    /// started again with the same arguments (overrides `state.dir`).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Serve /metrics, /healthz and /readyz on this address during the replay (none by
    /// default; e.g. 127.0.0.1:9898, port 0 picks one, logged as `metrics listening on`).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Keep serving the endpoint this many seconds after the replay ends, so a scrape can
    /// read the final figures.
    #[arg(long, value_name = "SECS", default_value_t = 0, requires = "metrics_addr")]
    pub linger: u64,
    /// Replay this Kafka topic instead of files (repeatable): every partition from `--from`
    /// up to its end when the replay starts, without joining the consumer group or
    /// committing. Decoder: the topic's `[[kafka.topics]]` format, else `input.format`.
    #[arg(long = "kafka-topic", value_name = "TOPIC")]
    pub kafka_topics: Vec<String>,
    /// Brokers for `--kafka-topic` (default: `kafka.brokers`; `[kafka.properties]` apply).
    #[arg(long, value_name = "HOST:PORT,…", requires = "kafka_topics")]
    pub kafka_brokers: Option<String>,
    /// With `--kafka-topic`: start every partition at its first record with a timestamp at
    /// or after this RFC 3339 instant (offsets_for_times); default: the beginning.
    #[arg(long, value_parser = parse_instant, requires = "kafka_topics")]
    pub from: Option<DateTime<Utc>>,
    /// With `--kafka-topic`: stop every partition at its first record with a timestamp after
    /// this RFC 3339 instant.
    #[arg(long, value_parser = parse_instant, requires = "kafka_topics")]
    pub to: Option<DateTime<Utc>>,
    /// Format of the inputs that name none (default: `input.format`).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub input_format: Option<crate::decode::Format>,
    /// Inputs: files, directories, globs or `-` (stdin), read after `input.files`.
    /// `FORMAT:PATH` reads PATH in that format, e.g. `exchange_tracking:logs/MSGTRK*.LOG`
    /// or `squid:/var/log/squid/access.log.1.gz`; several inputs are merged by event time.
    pub paths: Vec<String>,
}

/// `brevvakt run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Configuration file with a `[kafka]` section.
    #[arg(long)]
    pub config: PathBuf,
    /// Roster file, overriding `roster.path` of the configuration.
    #[arg(long)]
    pub roster: Option<PathBuf>,
    /// Shard workers (default: `pipeline.workers`, 0 = one per four cores, at least one).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Checkpoint state here (overrides `state.dir`); a restart continues from it.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Serve /metrics, /healthz and /readyz on this address (default: `output.metrics_addr`).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Do not serve metrics.
    #[arg(long, conflicts_with = "metrics_addr")]
    pub no_metrics: bool,
    /// Stop when no record arrived for this many seconds (batch jobs and tests): the input
    /// counts as drained, so `--until` applies.
    #[arg(long, value_name = "SECS")]
    pub idle_exit: Option<f64>,
    /// When the input is drained (`--idle-exit`), declare it complete up to this RFC 3339
    /// instant, as `replay --until` does. Not applied after a stop by signal.
    #[arg(long, value_parser = parse_instant)]
    pub until: Option<DateTime<Utc>>,
}

/// `brevvakt generate`.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Mailboxes in the organisation.
    #[arg(long, default_value_t = 300)]
    pub mailboxes: usize,
    /// Days to cover.
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    /// Seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// First day (local), YYYY-MM-DD.
    #[arg(long, default_value = "2026-06-15")]
    pub start: NaiveDate,
    /// Fraction of malformed lines mixed in.
    #[arg(long, default_value_t = 0.002)]
    pub malformed: f64,
    /// Write the roster CSV here.
    #[arg(long)]
    pub roster_out: Option<PathBuf>,
    /// Write the expected alerts (ground truth) here.
    #[arg(long)]
    pub truth_out: Option<PathBuf>,
}

/// `brevvakt check-config`.
#[derive(Debug, clap::Args)]
pub struct CheckConfigArgs {
    /// The file to check.
    #[arg(required_unless_present = "print_default")]
    pub file: Option<PathBuf>,
    /// Print the built-in default configuration instead.
    #[arg(long)]
    pub print_default: bool,
}

/// `brevvakt calendar`.
#[derive(Debug, clap::Args)]
pub struct CalendarArgs {
    /// Year (1990–2200).
    pub year: i32,
    /// Only this month (1–12).
    #[arg(long)]
    pub month: Option<u32>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: RenderFormat,
    /// Configuration whose extra free days and eves apply.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).map_err(|e| format!("{s:?} is not RFC 3339 with an offset: {e}"))
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(io::stderr).with_ansi(io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn dispatch(cmd: Command) -> Result<ExitCode> {
    match cmd {
        Command::Replay(a) => replay(a),
        Command::Run(a) => run(a),
        Command::Generate(a) => generate(a),
        Command::CheckConfig(a) => check_config(a),
        Command::Calendar(a) => calendar(a),
        Command::Explain(a) => explain(a),
    }
}

/// Loads `--config` or the built-in default; a refused config is printed and exits 2.
fn settings(path: Option<&Path>) -> Result<std::result::Result<Settings, ExitCode>> {
    let loaded = match path {
        Some(p) => Settings::load(p),
        None => Ok(Settings::default_settings()),
    };
    Ok(loaded.map_err(|errs| {
        eprint!("{}: configuration refused:\n{errs}", path.map_or("(default)".into(), |p| p.display().to_string()));
        ExitCode::from(2)
    }))
}

/// What every replay starts with: the settings (refused: exit 2), the metrics endpoint if
/// asked for (up first, so health and readiness can be read during start-up) and the roster.
fn replay_setup(a: &ReplayArgs) -> Result<ReplaySetup> {
    let mut settings = match settings(a.config.as_deref())? {
        Ok(s) => s,
        Err(code) => return Ok(Err(code)),
    };
    override_roster(&mut settings, a.roster.as_deref())?;
    let endpoint = a.metrics_addr.map(start_endpoint).transpose()?;
    let roster = load_roster(settings.roster_path())?;
    Ok(Ok((settings, endpoint, roster)))
}

fn replay(a: ReplayArgs) -> Result<ExitCode> {
    if !a.kafka_topics.is_empty() {
        return replay_kafka(a);
    }
    let (settings, endpoint, roster) = match replay_setup(&a)? {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let inputs = replay_inputs(&settings, a.input_format, &a.paths)?;
    if inputs.is_empty() {
        eprintln!("error: no inputs: name PATH… (or FORMAT:PATH…) or list [[input.files]] in the configuration");
        return Ok(ExitCode::from(2));
    }
    let total: u64 = inputs.iter().filter_map(|i| match &i.input {
        Input::File(p) => std::fs::metadata(p).ok().map(|m| m.len()),
        Input::Stdin => None,
    }).sum();
    let dead_path = a.dead_letter.clone().unwrap_or_else(|| settings.config.output.dead_letter.clone());
    let state_dir = a.state_dir.clone().or_else(|| settings.config.state.dir.clone());
    let resume = match &state_dir {
        Some(dir) => crate::state::checkpoint::load_newest(dir)?,
        None => None,
    };
    if let Some(cp) = &resume {
        crate::pipeline::check_same_inputs(cp, &inputs)?;
        tracing::info!(seq = cp.seq, "resuming from checkpoint");
    }
    if let Some((m, _)) = &endpoint {
        m.set_state_restored(true); // from the checkpoint, or there was none
    }
    let mut dead = DeadLetters::resume(&dead_path, resume.as_ref().map_or(0, |c| c.dead_letter_bytes))?;
    let alerts_at = resume.as_ref().map_or(0, |c| c.alerts_bytes);
    let sink = settings.private_sink(alert_sink(a.out.as_deref().or(settings.config.output.alerts.as_deref()), a.format, alerts_at)?)?;
    let workers = a.workers.unwrap_or_else(|| settings.workers());
    let progress = (!a.quiet && io::stderr().is_terminal()).then(|| progress_bar(total));
    let metrics = endpoint.as_ref().map(|(m, _)| m.clone());
    let opts = Options { workers, until: a.until, progress, state_dir, resume, metrics };
    let summary = crate::pipeline::run(Arc::new(settings), Arc::new(roster), crate::pipeline::Source::Files(inputs), sink, &mut dead, opts)?;
    eprint!("{}", render_summary(&summary, &dead_path));
    if let Some((_, server)) = endpoint {
        if a.linger > 0 {
            tracing::info!("replay done; serving metrics for {} s more", a.linger);
            std::thread::sleep(std::time::Duration::from_secs(a.linger));
        }
        server.shutdown();
    }
    Ok(if summary.input_errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The inputs of a replay: `input.files`, then the arguments (`FORMAT:PATH` or a path in
/// `--input-format`, default `input.format`), in the time order of their first records.
fn replay_inputs(settings: &Settings, input_format: Option<crate::decode::Format>, args: &[String]) -> Result<Vec<FileInput>> {
    let mut inputs = Vec::new();
    for (format, path) in settings.input_files() {
        inputs.extend(expand_path(&path, format)?);
    }
    inputs.extend(expand(args, input_format.unwrap_or(settings.config.input.format))?);
    Ok(order_by_first_time(inputs, &settings.decode_options()))
}

fn run(a: RunArgs) -> Result<ExitCode> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut settings = match settings(Some(&a.config))? {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let Some(k) = settings.config.kafka.clone() else {
        eprintln!("{}: configuration refused:\nkafka: a [kafka] section is required by `run`", a.config.display());
        return Ok(ExitCode::from(2));
    };
    let properties = match kafka_properties(&k, &a.config.display().to_string()) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    // SIGINT/SIGTERM set the flag (the reader stops, the pipeline drains and commits); a
    // second signal exits at once with status 1.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let watchdog_stop = stop.clone();
    let timeout = k.shutdown_timeout;
    std::thread::Builder::new().name("shutdown-watchdog".into()).spawn(move || {
        while !watchdog_stop.load(Ordering::Relaxed) {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        std::thread::sleep(timeout);
        tracing::error!(timeout_s = timeout.as_secs_f64(), "shutdown did not finish in time; exiting without the last commit");
        std::process::exit(1);
    })?;
    let addr = (!a.no_metrics).then(|| a.metrics_addr.unwrap_or(settings.config.output.metrics_addr));
    let endpoint = addr.map(start_endpoint).transpose()?;
    override_roster(&mut settings, a.roster.as_deref())?;
    let roster = load_roster(settings.roster_path())?;
    // State is restored per partition, when the partition is assigned (see sources::kafka).
    let state_dir = a.state_dir.clone().or_else(|| settings.config.state.dir.clone());
    if let Some((m, _)) = &endpoint {
        m.set_state_restored(true);
    }
    let metrics = endpoint.as_ref().map(|(m, _)| m.clone());
    let cfg = crate::sources::kafka::KafkaSourceConfig {
        brokers: k.brokers.clone(),
        group_id: k.group_id.clone(),
        topics: k.topics.iter().map(|t| (t.name.clone(), t.format)).collect(),
        properties: properties.clone(),
        max_record_bytes: settings.config.input.max_line_bytes,
        idle_exit: a.idle_exit.map(std::time::Duration::from_secs_f64),
        drain_timeout: k.shutdown_timeout,
        state_dir: state_dir.clone(),
    };
    let source = crate::sources::kafka::KafkaSource::new(cfg, stop.clone(), metrics.clone())?;
    let alerts = crate::sinks::kafka::KafkaAlertSink::new(crate::sinks::kafka::producer(&k.brokers, &properties)?, &k.alerts_topic, k.alert_format, 0);
    let mut dead = crate::sinks::kafka::KafkaDeadLetters::new(crate::sinks::kafka::producer(&k.brokers, &properties)?, &k.dead_letter_topic);
    let workers = a.workers.unwrap_or_else(|| settings.workers());
    let opts = Options { workers, until: a.until, progress: None, state_dir, resume: None, metrics };
    tracing::info!(brokers = %k.brokers, group = %k.group_id, topics = ?k.topics.iter().map(|t| &t.name).collect::<Vec<_>>(), "consuming");
    let source = crate::pipeline::Source::Kafka { source, commit_interval: k.commit_interval };
    let alerts = settings.private_sink(Box::new(alerts))?;
    let summary = crate::pipeline::run(Arc::new(settings), Arc::new(roster), source, alerts, &mut dead, opts)?;
    eprint!("{}", render_summary(&summary, Path::new(&format!("topic {}", k.dead_letter_topic))));
    if let Some((_, server)) = endpoint {
        server.shutdown();
    }
    Ok(ExitCode::SUCCESS)
}

/// `[kafka.properties]` with their secrets read; a secret that cannot be read is printed
/// (field path and reason, never a value) and refused with exit code 2.
fn kafka_properties(k: &crate::config::KafkaConfig, config: &str) -> std::result::Result<std::collections::BTreeMap<String, String>, ExitCode> {
    let mut properties = std::collections::BTreeMap::new();
    for (key, value) in &k.properties {
        match crate::config::resolve_secret(key, value) {
            Ok(v) => {
                properties.insert(key.clone(), v);
            }
            Err(reason) => {
                eprintln!("{config}: configuration refused:\nkafka.properties.{reason}");
                return Err(ExitCode::from(2));
            }
        }
    }
    Ok(properties)
}

/// `replay --kafka-topic`: the partitions of the topics from `--from` to their end at start
/// (see `sources::kafka_replay`), alerts and dead letters as in a file replay; no
/// checkpoints (a Kafka replay is simply run again).
fn replay_kafka(a: ReplayArgs) -> Result<ExitCode> {
    if let Some(msg) = kafka_replay_refusal(&a) {
        eprintln!("error: {msg}");
        return Ok(ExitCode::from(2));
    }
    let (settings, endpoint, roster) = match replay_setup(&a)? {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let source = match kafka_replay_source(&a, &settings)? {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    if let Some((m, _)) = &endpoint {
        m.set_state_restored(true); // a Kafka replay has no state to restore
    }
    let dead_path = a.dead_letter.clone().unwrap_or_else(|| settings.config.output.dead_letter.clone());
    let mut dead = DeadLetters::new(&dead_path);
    let sink = settings.private_sink(alert_sink(a.out.as_deref().or(settings.config.output.alerts.as_deref()), a.format, 0)?)?;
    let workers = a.workers.unwrap_or_else(|| settings.workers());
    let metrics = endpoint.as_ref().map(|(m, _)| m.clone());
    let opts = Options { workers, until: a.until, progress: None, state_dir: None, resume: None, metrics };
    let summary = crate::pipeline::run(Arc::new(settings), Arc::new(roster), crate::pipeline::Source::KafkaReplay(source), sink, &mut dead, opts)?;
    eprint!("{}", render_summary(&summary, &dead_path));
    if let Some((_, server)) = endpoint {
        std::thread::sleep(std::time::Duration::from_secs(a.linger));
        server.shutdown();
    }
    Ok(if summary.input_errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Why the arguments of a Kafka replay are refused, if they are.
fn kafka_replay_refusal(a: &ReplayArgs) -> Option<String> {
    if !a.paths.is_empty() {
        return Some(format!("--kafka-topic replays Kafka topics and cannot be combined with file inputs ({}): run one replay per kind of input", a.paths.join(" ")));
    }
    if a.input_format.is_some() {
        return Some("--input-format applies to file inputs: a topic's format is its `[[kafka.topics]]` format, else `input.format`".into());
    }
    if a.state_dir.is_some() {
        return Some("--state-dir is not supported with --kafka-topic: a Kafka replay keeps no checkpoints (run it again: it reads the same records)".into());
    }
    if let Some(bad) = a.kafka_topics.iter().find(|t| !crate::config::valid_topic_name(t)) {
        return Some(format!("--kafka-topic {bad:?} is not a Kafka topic name (1–249 of A-Z a-z 0-9 . _ -)"));
    }
    match (a.from, a.to) {
        (Some(from), Some(to)) if to < from => Some(format!("--to {to} is before --from {from}")),
        _ => None,
    }
}

/// The Kafka replay source: brokers from `--kafka-brokers` or `kafka.brokers`, properties
/// (secrets read) from `[kafka.properties]`, each topic's decoder from `[[kafka.topics]]` or
/// `input.format`; the partitions' ranges are fixed now.
fn kafka_replay_source(a: &ReplayArgs, settings: &Settings) -> Result<std::result::Result<crate::sources::kafka_replay::KafkaReplay, ExitCode>> {
    let k = settings.config.kafka.as_ref();
    let Some(brokers) = a.kafka_brokers.clone().or_else(|| k.map(|k| k.brokers.clone())) else {
        eprintln!("error: --kafka-topic needs brokers: give --kafka-brokers or a configuration with a [kafka] section");
        return Ok(Err(ExitCode::from(2)));
    };
    let config = a.config.as_deref().map_or("(default)".into(), |p| p.display().to_string());
    let properties = match k.map(|k| kafka_properties(k, &config)).transpose() {
        Ok(p) => p.unwrap_or_default(),
        Err(code) => return Ok(Err(code)),
    };
    if settings.config.state.dir.is_some() {
        tracing::info!("state.dir is not used by a Kafka replay (no checkpoints)");
    }
    let format_of = |t: &String| k.iter().flat_map(|k| &k.topics).find(|kt| &kt.name == t).map_or(settings.config.input.format, |kt| kt.format);
    let cfg = crate::sources::kafka_replay::KafkaReplayConfig {
        brokers,
        group_id: k.map_or_else(|| "brevvakt-replay".into(), |k| k.group_id.clone()),
        topics: a.kafka_topics.iter().map(|t| (t.clone(), format_of(t))).collect(),
        properties,
        max_record_bytes: settings.config.input.max_line_bytes,
        from: a.from,
        to: a.to,
        timeout: std::time::Duration::from_secs(30),
    };
    Ok(Ok(crate::sources::kafka_replay::KafkaReplay::new(cfg)?))
}

/// The metrics registry and the server answering `/metrics`, `/healthz` and `/readyz`.
type Endpoint = (Arc<crate::metrics::Metrics>, crate::http::Server);

/// What every replay starts with (see [`replay_setup`]), or the exit code of a refusal.
type ReplaySetup = std::result::Result<(Settings, Option<Endpoint>, Roster), ExitCode>;

/// Defines the metrics and serves them on `addr` (`replay`, later `run`).
fn start_endpoint(addr: std::net::SocketAddr) -> Result<Endpoint> {
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let server = crate::http::Server::start(addr, metrics.clone())?;
    Ok((metrics, server))
}

/// `--roster` replaces `roster.path` (as an absolute path: it is reloaded on change).
fn override_roster(settings: &mut Settings, roster: Option<&Path>) -> Result<()> {
    if let Some(r) = roster {
        settings.config.roster.path = Some(std::path::absolute(r)?);
    }
    Ok(())
}

fn load_roster(path: Option<PathBuf>) -> Result<Roster> {
    match path {
        Some(p) => Ok(Roster::load(&p)?),
        None => Ok(Roster::default()),
    }
}

/// The alerts sink; when resuming (`resume_at` > 0) a file is cut back to what the
/// checkpoint covers, so the alerts after it are written exactly once more.
fn alert_sink(out: Option<&Path>, format: AlertFormat, resume_at: u64) -> Result<Box<dyn AlertSink>> {
    Ok(match out {
        Some(p) if resume_at > 0 => Box::new(JsonlSink::new(BufWriter::new(crate::sinks::open_truncated(p, resume_at)?), format, resume_at)),
        Some(p) => {
            let f = File::create(p).with_context(|| format!("alerts file {}", p.display()))?;
            Box::new(JsonlSink::new(BufWriter::new(f), format, 0))
        }
        None => Box::new(JsonlSink::new(BufWriter::new(io::stdout()), format, resume_at)),
    })
}

fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template("{spinner} {bytes}/{total_bytes} {bytes_per_sec} {wide_bar} {eta}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// The end-of-run summary printed on stderr.
pub fn render_summary(s: &Summary, dead_path: &Path) -> String {
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    let mut out = String::from("── brevvakt replay summary ──\n");
    out += &format!("records read      {:>10}  ({:.1} MB)\n", s.records, s.bytes as f64 / 1e6);
    for (t, n) in crate::event::EVENT_TYPES.iter().zip(s.events).filter(|(_, n)| *n > 0) {
        out += &format!("  {t:<18}{n:>10}\n");
    }
    out += &format!("bad records       {:>10}", s.total_bad());
    if s.total_bad() > 0 {
        out += &format!("  → {}", dead_path.display());
    }
    out += "\n";
    for (r, n) in &s.bad {
        out += &format!("  {:<18}{n:>10}\n", r.as_str());
    }
    out += &format!("late events       {:>10}\n", s.late);
    if s.foreign > 0 {
        out += &format!("foreign events    {:>10}  (mailboxes another instance owns)\n", s.foreign);
    }
    out += &format!("alerts            {:>10}\n", s.alerts.values().sum::<u64>());
    for ((rule, status), n) in &s.alerts {
        out += &format!("  {:<28}{n:>10}\n", format!("{} ({status})", rule.as_str()));
    }
    out += &format!("mailboxes tracked {:>10}\n", s.mailboxes);
    out += &format!(
        "throughput        {:>10.0} events/s, {:.1} MB/s ({} workers, {:.2} s)\n",
        s.total_events() as f64 / secs,
        s.bytes as f64 / 1e6 / secs,
        s.workers,
        secs
    );
    for e in &s.input_errors {
        out += &format!("input error: {e}\n");
    }
    out
}

fn generate(a: GenerateArgs) -> Result<ExitCode> {
    let opts = GenOptions { mailboxes: a.mailboxes, days: a.days, seed: a.seed, start: a.start, malformed: a.malformed };
    let stdout = io::stdout();
    let mut events = BufWriter::new(stdout.lock());
    let mut roster = optional_file(a.roster_out.as_deref())?;
    let mut truth = optional_file(a.truth_out.as_deref())?;
    let stats = crate::generate::generate(&opts, &mut events, &mut roster, &mut truth)?;
    events.flush()?;
    roster.flush()?;
    truth.flush()?;
    eprintln!("generated {} events ({} malformed, {} injected violations)", stats.events, stats.malformed, stats.violations);
    Ok(ExitCode::SUCCESS)
}

fn optional_file(path: Option<&Path>) -> Result<Box<dyn Write>> {
    Ok(match path {
        Some(p) => Box::new(BufWriter::new(File::create(p).with_context(|| p.display().to_string())?)),
        None => Box::new(io::sink()),
    })
}

fn check_config(a: CheckConfigArgs) -> Result<ExitCode> {
    if a.print_default {
        print!("{DEFAULT_TOML}");
        return Ok(ExitCode::SUCCESS);
    }
    let path = a.file.as_deref().context("a file is required")?;
    Ok(match settings(Some(path))? {
        Ok(s) => {
            let kafka = s.config.kafka.as_ref().map_or("none".into(), |k| format!("{} topic(s) → {}", k.topics.len(), k.alerts_topic));
            println!("{}: ok ({} domain(s), roster: {}, kafka: {kafka})", path.display(), s.config.organisation.domains.len(), s.roster_path().map_or("none".into(), |p| p.display().to_string()));
            ExitCode::SUCCESS
        }
        Err(code) => code,
    })
}

fn calendar(a: CalendarArgs) -> Result<ExitCode> {
    let settings = match settings(a.config.as_deref())? {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    match crate::calendar::render(&settings.calendar, a.year, a.month, a.format) {
        Ok(text) => {
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(2))
        }
    }
}

fn explain(a: ExplainArgs) -> Result<ExitCode> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    if crate::explain::explain(&a.alerts, &a.id, &mut out)? {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("no alert with id {} in {}", a.id, a.alerts.display());
        Ok(ExitCode::from(1))
    }
}
