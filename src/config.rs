//! Configuration (`brevvakt.toml`): the organisation, the rules' settings, inputs, outputs
//! and limits.
//!
//! Guarantees: a configuration is either accepted whole or refused with *every* problem
//! listed as `field.path: reason` ([`ConfigErrors`]); unknown fields are refused (a typo
//! never silently falls back to a default); every default lives in one named function
//! that says why it has that value. The documentation of each field below is the user
//! manual for it. The built-in default ([`DEFAULT_TOML`]) describes the sample
//! organisation `exempel.se` that the bundled sample and the generator use.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveDate;
use serde::{Deserialize, Deserializer};

use crate::calendar::{Calendar, OptionalEve};
use crate::domains::OrgDomains;
use crate::event::Encryption;

/// The built-in default configuration (printed by `check-config --print-default`).
pub const DEFAULT_TOML: &str = include_str!("../deploy/brevvakt.default.toml");

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Who the organisation is.
    pub organisation: Organisation,
    /// The reading duty.
    #[serde(default)]
    pub reading: Reading,
    /// The external-forwarding rule.
    #[serde(default)]
    pub forwarding: Forwarding,
    /// The classified-mail rule.
    #[serde(default)]
    pub classification: Classification,
    /// The roster of mailboxes.
    #[serde(default)]
    pub roster: RosterConfig,
    /// How records are read.
    #[serde(default)]
    pub input: Input,
    /// Where alerts and dead letters go.
    #[serde(default)]
    pub output: Output,
    /// Parallelism and batching.
    #[serde(default)]
    pub pipeline: Pipeline,
    /// Checkpoints and retention of per-mailbox state.
    #[serde(default)]
    pub state: StateConfig,
    /// Kafka input and output for `brevvakt run` (required by `run`; `replay --kafka-topic`
    /// uses its brokers, properties, group id and topic formats).
    #[serde(default)]
    pub kafka: Option<KafkaConfig>,
    /// Pseudonymisation of people in alerts.
    #[serde(default)]
    pub privacy: Privacy,
}

/// `[kafka]`: what `brevvakt run` consumes and where it produces.
///
/// Producers must key every input record by **mailbox** (for `mail.message`: the local
/// recipient, or the local sender for outgoing mail), so that one mailbox's records stay in
/// one partition, in order.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port[,host:port…]` (librdkafka `bootstrap.servers`).
    pub brokers: String,
    /// Consumer group; every brevvakt instance of one organisation uses the same one.
    pub group_id: String,
    /// Input topics, each with its decoder, e.g. `{ name = "mail-events", format = "normalized" }`.
    pub topics: Vec<KafkaTopic>,
    /// Topic the alerts go to, keyed by mailbox, with the alert id in the `alert_id` header.
    pub alerts_topic: String,
    /// Topic records that cannot be decoded go to: the original bytes, with `source_topic`,
    /// `source_partition`, `source_offset`, `reason` and `detail` headers.
    pub dead_letter_topic: String,
    /// Alert format on the alerts topic (`json` or `ocsf`).
    #[serde(default)]
    pub alert_format: crate::sinks::jsonl::AlertFormat,
    /// Commit (and, with a state directory, checkpoint) at least this often.
    #[serde(default = "default_commit_interval", deserialize_with = "duration")]
    pub commit_interval: Duration,
    /// How long a shutdown (drain, flush, commit) may take before brevvakt gives up and
    /// exits with status 1 (nothing is committed that was not done).
    #[serde(default = "default_shutdown_timeout", deserialize_with = "duration")]
    pub shutdown_timeout: Duration,
    /// Any librdkafka property, passed to the consumer and the producers as written
    /// (security, SASL, TLS, timeouts…). A value may be `"${env:NAME}"` or `"${file:/path}"`
    /// to read a secret from the environment or a file at start; values are never logged.
    /// Properties that would break at-least-once delivery (`enable.auto.commit`,
    /// `enable.auto.offset.store`, `enable.idempotence`, `acks`) are set by brevvakt and
    /// refused here.
    #[serde(default)]
    pub properties: std::collections::BTreeMap<String, String>,
}

impl fmt::Debug for KafkaConfig {
    // Property values may hold secrets: only their names are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("group_id", &self.group_id)
            .field("topics", &self.topics)
            .field("alerts_topic", &self.alerts_topic)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .field("properties", &self.properties.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// One input topic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaTopic {
    /// Topic name.
    pub name: String,
    /// Decoder of its records (same names as `input.format`).
    #[serde(default)]
    pub format: crate::decode::Format,
}

fn default_commit_interval() -> Duration {
    // Five seconds of records is what a crash makes brevvakt read again; committing more
    // often costs a broker round trip (and a checkpoint with a state directory) each time.
    Duration::from_secs(5)
}

fn default_shutdown_timeout() -> Duration {
    // Container runtimes send SIGKILL 30 s after SIGTERM; finish well before that.
    Duration::from_secs(25)
}

/// librdkafka properties brevvakt sets itself for at-least-once delivery.
pub const KAFKA_RESERVED_PROPERTIES: [&str; 6] = ["enable.auto.commit", "enable.auto.offset.store", "enable.idempotence", "acks", "group.id", "bootstrap.servers"];

/// Resolves a property value: `${env:NAME}` and `${file:/path}` are read now; anything
/// else is literal. The error names the property and the source, never a value.
pub fn resolve_secret(key: &str, value: &str) -> Result<String, String> {
    let Some(inner) = value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) else { return Ok(value.to_string()) };
    match inner.split_once(':') {
        Some(("env", name)) => std::env::var(name).map_err(|_| format!("{key}: environment variable {name} is not set")),
        Some(("file", path)) => std::fs::read_to_string(path).map(|s| s.trim_end_matches(['\n', '\r']).to_string()).map_err(|e| format!("{key}: cannot read {path}: {e}")),
        _ => Err(format!("{key}: {value:?} is neither ${{env:NAME}} nor ${{file:/path}}")),
    }
}

/// Whether `name` is a legal Kafka topic name (1–249 of `[A-Za-z0-9._-]`, not `.`/`..`).
pub fn valid_topic_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 249 && name != "." && name != ".." && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

fn check_kafka(k: &KafkaConfig, errs: &mut Vec<ConfigError>) {
    let mut push = |field: String, reason: String| errs.push(ConfigError { field, reason });
    if k.brokers.trim().is_empty() {
        push("kafka.brokers".into(), "at least one broker is required".into());
    }
    if k.group_id.trim().is_empty() {
        push("kafka.group_id".into(), "a consumer group is required".into());
    }
    if k.topics.is_empty() {
        push("kafka.topics".into(), "at least one input topic is required".into());
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, t) in k.topics.iter().enumerate() {
        if !valid_topic_name(&t.name) {
            push(format!("kafka.topics[{i}].name"), format!("{:?} is not a Kafka topic name (1–249 of A-Z a-z 0-9 . _ -)", t.name));
        } else if !seen.insert(t.name.as_str()) {
            push(format!("kafka.topics[{i}].name"), format!("{:?} is listed twice", t.name));
        }
    }
    for (field, name) in [("kafka.alerts_topic", &k.alerts_topic), ("kafka.dead_letter_topic", &k.dead_letter_topic)] {
        if !valid_topic_name(name) {
            push(field.into(), format!("{name:?} is not a Kafka topic name (1–249 of A-Z a-z 0-9 . _ -)"));
        } else if seen.contains(name.as_str()) {
            push(field.into(), format!("{name:?} is also an input topic"));
        }
    }
    if k.alerts_topic == k.dead_letter_topic && valid_topic_name(&k.alerts_topic) {
        push("kafka.dead_letter_topic".into(), "must differ from kafka.alerts_topic".into());
    }
    if k.commit_interval.is_zero() {
        push("kafka.commit_interval".into(), "must be positive".into());
    }
    if k.shutdown_timeout.is_zero() {
        push("kafka.shutdown_timeout".into(), "must be positive".into());
    }
    for (key, value) in &k.properties {
        let field = format!("kafka.properties.{key:?}");
        if KAFKA_RESERVED_PROPERTIES.contains(&key.as_str()) {
            push(field, "set by brevvakt (use kafka.brokers / kafka.group_id; the delivery settings are fixed)".into());
            continue;
        }
        if value.starts_with("${") {
            let inner = value.strip_prefix("${").and_then(|v| v.strip_suffix('}'));
            let ok = inner.and_then(|i| i.split_once(':')).is_some_and(|(kind, rest)| (kind == "env" || kind == "file") && !rest.is_empty());
            if !ok {
                push(field, "a secret reference must be ${env:NAME} or ${file:/path}".into());
            }
        }
    }
}


/// `[privacy]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Privacy {
    /// Replace mailboxes, recipients' local parts and alert ids in alerts by keyed hashes
    /// (HMAC-SHA-256), so only the holder of the key can re-identify a person. Off by
    /// default: the rules' own documents route a hit to the nearest manager by name.
    pub pseudonymize: bool,
    /// File holding the key (at least 16 bytes). Rotate it by pointing this at a new file:
    /// every pseudonym carries the key's id. Relative paths are relative to the config.
    pub key_file: Option<PathBuf>,
}

/// `[state]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// Directory for checkpoints; `--state-dir` overrides it. Without one, nothing is
    /// checkpointed and a restarted run starts from the beginning.
    pub dir: Option<PathBuf>,
    /// Checkpoint at least this often (wall clock).
    #[serde(deserialize_with = "duration")]
    pub checkpoint_interval: Duration,
    /// Checkpoint at least every this many records.
    pub checkpoint_records: u64,
    /// State of a mailbox that is not on the roster and has seen no event for this long is
    /// dropped (`"90d"`).
    #[serde(deserialize_with = "duration")]
    pub retention: Duration,
    /// Mailboxes whose state is never dropped (investigations).
    pub legal_hold: Vec<String>,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            dir: None,
            // At most 30 s of work is redone after a crash.
            checkpoint_interval: Duration::from_secs(30),
            // A million records is a few seconds of replay: bounds redo work in replays.
            checkpoint_records: 1_000_000,
            // The organisations keep mail logs 90 days; state about a person lives no longer.
            retention: Duration::from_secs(90 * 86_400),
            legal_hold: Vec::new(),
        }
    }
}

/// `[organisation]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Organisation {
    /// Display name, used in alert policy texts.
    pub name: String,
    /// The organisation's mail domains. Subdomains are included automatically; anything
    /// else is external. Unicode (IDN) domains may be written in either form.
    pub domains: Vec<String>,
}

/// `[reading]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Reading {
    /// Web proxy requests that count as reading mail: a request whose host equals `host`
    /// (case-insensitive) and whose path starts with `path_prefix`.
    pub webmail: Vec<WebmailRoute>,
    /// How late an event may arrive and still be in order (e.g. `"2h"`). A day is judged
    /// when the watermark — the newest event time minus this — passes the day's end.
    #[serde(deserialize_with = "duration")]
    pub allowed_lateness: Duration,
    /// Live mode: an input with no events for this long stops holding the watermark back.
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: Duration,
    /// Hold mailboxes that are not on the roster but receive mail to the duty, from the
    /// first full required reading day after they were first seen.
    pub discover_mailboxes: bool,
    /// Extra days the organisation gives free (e.g. a bridge day), `YYYY-MM-DD`.
    pub extra_free_days: Vec<NaiveDate>,
    /// Additional eves that are free: `twelfth_night_eve`, `maundy_thursday`,
    /// `walpurgis_night`, `all_saints_eve`. None by default: the rule is exactly
    /// Midsummer Eve, Christmas Eve and New Year's Eve.
    pub free_eves: Vec<OptionalEve>,
}

/// One webmail host/path that counts as reading.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebmailRoute {
    /// Host name, e.g. `webmail.exempel.se`.
    pub host: String,
    /// Path prefix, e.g. `/owa`; `/` matches every path.
    #[serde(default = "default_path_prefix")]
    pub path_prefix: String,
}

/// `[forwarding]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Forwarding {
    /// External targets that are allowed, each with the reason (e.g. a partner's
    /// approved system). An entry may be a full address or `@domain` for a whole domain.
    pub allow: Vec<AllowedTarget>,
    /// After a forwarded message to an external target is alerted, further messages for
    /// the same (mailbox, target) within this window are counted, not alerted (`"24h"`).
    #[serde(deserialize_with = "duration")]
    pub suppress_window: Duration,
}

/// An allow-listed forwarding target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowedTarget {
    /// The address, or `@domain` for every address in that domain.
    pub target: String,
    /// Why it is allowed (required: the decision must be documented).
    pub reason: String,
}

/// `[classification]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Classification {
    /// Encryption that is approved for class-2 mail: `smime`, `pgp`, `gateway:NAME`.
    /// `tls` and `none` are never approved: transport encryption does not protect the
    /// message itself.
    pub approved_encryption: Vec<String>,
    /// Whether class-2 mail that stays inside the organisation is exempt from the
    /// encryption requirement.
    pub exempt_internal: bool,
}

/// `[roster]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterConfig {
    /// Roster file (`.csv` or `.jsonl`). Relative paths are relative to the config file.
    /// Without a roster, mailboxes are discovered from the stream.
    pub path: Option<PathBuf>,
}

/// `[input]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Input {
    /// Decoder for files and stdin: the format of `replay` arguments without a `FORMAT:`
    /// prefix (`--input-format` overrides it) and of `input.files` without a format.
    pub format: crate::decode::Format,
    /// Files `replay` reads before its arguments, each with its own format, e.g.
    /// `files = [{ path = "logs/MSGTRK*.LOG", format = "exchange_tracking" }, { path =
    /// "/var/log/squid/access.log.1.gz", format = "squid" }]`. `path` is a file, directory
    /// or glob (relative to the config file's directory); `format` defaults to
    /// `input.format`. `run` (Kafka) ignores them.
    pub files: Vec<InputFile>,
    /// Records longer than this many bytes are dead-lettered as `too_long`.
    pub max_line_bytes: usize,
    /// Year of RFC 3164 syslog times, which carry none (Postfix/Dovecot). Never guessed:
    /// without it such lines are dead-lettered as `bad_time`.
    pub syslog_year: Option<i32>,
    /// Time zone of RFC 3164 syslog times, which carry no offset (IANA name).
    #[serde(deserialize_with = "time_zone")]
    pub syslog_timezone: chrono_tz::Tz,
}

/// One entry of `input.files`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputFile {
    /// A file, a directory (read recursively) or a glob.
    pub path: String,
    /// The format of its records, a name as `input.format` takes (default `input.format`).
    #[serde(default)]
    pub format: Option<String>,
}

/// `[output]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Output {
    /// Alerts file (JSON Lines); absent means stdout.
    pub alerts: Option<PathBuf>,
    /// Dead-letter file for records that could not be decoded.
    pub dead_letter: PathBuf,
    /// Address of the metrics/health HTTP endpoint.
    pub metrics_addr: SocketAddr,
}

/// `[pipeline]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pipeline {
    /// Worker threads owning mailbox shards; 0 = one per four cores, at least one (see
    /// [`Settings::workers`]).
    pub workers: usize,
    /// Threads decoding records of stateless formats (normalized, m365, squid) ahead of
    /// the router; 0 = one per core.
    pub decode_threads: usize,
    /// Records per batch handed to the workers.
    pub batch_size: usize,
    /// Batches that may wait in each worker's queue before the reader blocks.
    pub queue_batches: usize,
}

fn default_path_prefix() -> String {
    // A route without a prefix means the whole host is webmail.
    "/".into()
}

impl Default for Reading {
    fn default() -> Self {
        Reading {
            webmail: Vec::new(),
            // Mail servers and proxies ship logs within minutes; two hours absorbs a
            // stalled shipper without delaying a day's verdict by much.
            allowed_lateness: Duration::from_secs(2 * 3600),
            // A quiet input for 15 minutes is idle: nights are quiet, days are not.
            idle_timeout: Duration::from_secs(15 * 60),
            // Unknown mailboxes that receive mail are real mailboxes someone must read.
            discover_mailboxes: true,
            extra_free_days: Vec::new(),
            free_eves: Vec::new(),
        }
    }
}

impl Default for Forwarding {
    fn default() -> Self {
        // One alert a day per forwarded pair: enough to keep an open problem visible
        // without flooding the queue with every message.
        Forwarding { allow: Vec::new(), suppress_window: Duration::from_secs(24 * 3600) }
    }
}

impl Default for Classification {
    fn default() -> Self {
        // Message-level encryption only; the organisation adds its gateway by name.
        Classification { approved_encryption: vec!["smime".into(), "pgp".into()], exempt_internal: false }
    }
}

impl Default for Input {
    fn default() -> Self {
        // 1 MiB: far above any real log line (a few KiB), low enough to bound memory.
        Input {
            format: crate::decode::Format::Normalized,
            // Inputs are named on the command line unless a deployment lists them here.
            files: Vec::new(),
            max_line_bytes: 1 << 20,
            syslog_year: None,
            // The organisations' servers log in Swedish local time.
            syslog_timezone: crate::calendar::TZ,
        }
    }
}

impl Default for Output {
    fn default() -> Self {
        Output {
            alerts: None,
            // Next to where brevvakt runs: bad records are never silently dropped.
            dead_letter: PathBuf::from("brevvakt.dead-letter.jsonl"),
            // Loopback: metrics never leave the host unless the operator says so.
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 9898)),
        }
    }
}

impl Default for Pipeline {
    fn default() -> Self {
        // 1024 records amortise channel costs; 4 queued batches per worker absorb bursts
        // while keeping memory bounded (workers × 4 × 1024 events).
        Pipeline { workers: 0, decode_threads: 0, batch_size: 1024, queue_batches: 4 }
    }
}

/// Parses `90s`, `15m`, `2h`, `1d` (or a bare number of seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a duration like 90s, 15m, 2h or 1d"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?} has unknown unit {unit:?} (use s, m, h or d)")),
    };
    Ok(Duration::from_secs(n.saturating_mul(mult)))
}

fn time_zone<'de, D: Deserializer<'de>>(d: D) -> Result<chrono_tz::Tz, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(|_| serde::de::Error::custom(format!("{s:?} is not an IANA time zone name")))
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

/// One problem with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the field, e.g. `organisation.domains[1]`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Every problem found in one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.0 {
            writeln!(f, "{}: {}", e.field, e.reason)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A configuration that passed validation, with its derived, ready-to-use parts.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The configuration as written.
    pub config: Config,
    /// The organisation's domains, ready for matching.
    pub domains: OrgDomains,
    /// The reading-day calendar with the organisation's options.
    pub calendar: Calendar,
    /// Approved class-2 encryption.
    pub approved: Vec<Encryption>,
    /// Directory relative paths are resolved against.
    pub base_dir: PathBuf,
}

impl Settings {
    /// The built-in default.
    pub fn default_settings() -> Self {
        // The embedded default is validated by a test; failing here is a build defect.
        Self::from_toml(DEFAULT_TOML, Path::new(".")).expect("built-in default config is valid")
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| single(path.display().to_string(), e.to_string()))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::from_toml(&text, &base)
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str, base_dir: &Path) -> Result<Self, ConfigErrors> {
        let config: Config = toml::from_str(text).map_err(toml_error)?;
        Self::validate(config, base_dir)
    }

    fn validate(config: Config, base_dir: &Path) -> Result<Self, ConfigErrors> {
        let mut errs = Vec::new();
        let domains = check_domains(&config.organisation.domains, &mut errs);
        let approved = check_encryption(&config.classification.approved_encryption, &mut errs);
        check_limits(&config, &mut errs);
        check_allow_list(&config.forwarding.allow, &mut errs);
        check_webmail(&config.reading.webmail, &mut errs);
        check_input_files(&config.input.files, &mut errs);
        if let Some(k) = &config.kafka {
            check_kafka(k, &mut errs);
        }
        if !errs.is_empty() {
            return Err(ConfigErrors(errs));
        }
        let calendar = Calendar::with_options(config.reading.extra_free_days.clone(), config.reading.free_eves.clone());
        Ok(Settings { config, domains, calendar, approved, base_dir: base_dir.to_path_buf() })
    }

    /// The roster path resolved against the config file's directory.
    pub fn roster_path(&self) -> Option<PathBuf> {
        self.config.roster.path.as_ref().map(|p| self.base_dir.join(p))
    }

    /// `input.files` as (format, path) with relative paths resolved against the config
    /// file's directory.
    pub fn input_files(&self) -> Vec<(crate::decode::Format, String)> {
        // `join` keeps an absolute path as it is.
        let resolve = |p: &str| self.base_dir.join(p).display().to_string();
        let format = |f: &InputFile| f.format.as_deref().and_then(crate::decode::Format::from_name).unwrap_or(self.config.input.format);
        self.config.input.files.iter().map(|f| (format(f), resolve(&f.path))).collect()
    }

    /// What the decoders need from the configuration.
    pub fn decode_options(&self) -> crate::decode::DecodeOptions {
        crate::decode::DecodeOptions {
            syslog_year: self.config.input.syslog_year,
            syslog_timezone: self.config.input.syslog_timezone,
            org_domains: self.domains.clone(),
        }
    }

    /// The pseudonymizer, when `[privacy] pseudonymize` is on.
    pub fn pseudonymizer(&self) -> anyhow::Result<Option<crate::sinks::pseudonym::Pseudonymizer>> {
        match (&self.config.privacy.key_file, self.config.privacy.pseudonymize) {
            (Some(k), true) => Ok(Some(crate::sinks::pseudonym::Pseudonymizer::from_file(&self.base_dir.join(k))?)),
            _ => Ok(None),
        }
    }

    /// Wraps `sink` in pseudonymisation when configured.
    pub fn private_sink(&self, sink: Box<dyn crate::sinks::AlertSink>) -> anyhow::Result<Box<dyn crate::sinks::AlertSink>> {
        Ok(match self.pseudonymizer()? {
            Some(p) => Box::new(crate::sinks::pseudonym::PseudonymSink::new(sink, p)),
            None => sink,
        })
    }

    /// Worker count, 0 resolved to one per four cores (at least one). A shard worker does
    /// about a seventh of a replay's work (`perf`: the shard thread 14–17 % of samples,
    /// the decode threads over half), so one keeps up with several cores' decoding; on 2
    /// cores, 2 workers replayed 4–14 % slower than 1 (throughput harness, 6 runs).
    pub fn workers(&self) -> usize {
        match self.config.pipeline.workers {
            0 => (or_cores(0) / 4).max(1),
            n => n,
        }
    }

    /// Decode threads with 0 resolved to the number of cores.
    pub fn decode_threads(&self) -> usize {
        or_cores(self.config.pipeline.decode_threads)
    }
}

fn or_cores(n: usize) -> usize {
    match n {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    }
}

fn single(field: String, reason: String) -> ConfigErrors {
    ConfigErrors(vec![ConfigError { field, reason }])
}

/// Turns a TOML/serde error into `field: reason`, keeping toml's line/column pointer.
fn toml_error(e: toml::de::Error) -> ConfigErrors {
    let field = field_path_of(&e).unwrap_or_else(|| "(document)".into());
    single(field, e.message().to_string() + &location(&e))
}

fn field_path_of(e: &toml::de::Error) -> Option<String> {
    // toml reports the failing key in its rendered message as "in `a.b`" is not exposed
    // structurally; the span's text gives the key for unknown fields and bad values.
    let msg = e.to_string();
    let line = msg.lines().find(|l| l.contains('|') && l.trim_start().starts_with(char::is_numeric))?;
    let src = line.split_once('|')?.1.trim();
    let key = src.split('=').next()?.trim().trim_matches(['[', ']']);
    (!key.is_empty()).then(|| key.to_string())
}

fn location(e: &toml::de::Error) -> String {
    e.to_string().lines().next().map(|l| format!(" ({})", l.trim_end_matches(':'))).unwrap_or_default()
}

fn check_domains(domains: &[String], errs: &mut Vec<ConfigError>) -> OrgDomains {
    if domains.is_empty() {
        errs.push(ConfigError { field: "organisation.domains".into(), reason: "at least one domain is required".into() });
    }
    for (i, d) in domains.iter().enumerate() {
        if let Err(reason) = crate::domains::to_ascii(d) {
            errs.push(ConfigError { field: format!("organisation.domains[{i}]"), reason });
        }
    }
    OrgDomains::new(domains).unwrap_or_default()
}

fn check_encryption(names: &[String], errs: &mut Vec<ConfigError>) -> Vec<Encryption> {
    let mut out = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let field = format!("classification.approved_encryption[{i}]");
        match Encryption::parse(n) {
            Ok(Encryption::None | Encryption::Tls) => errs.push(ConfigError {
                field,
                reason: format!("{n:?} does not protect the message itself and cannot be approved"),
            }),
            Ok(e) => out.push(e),
            Err(reason) => errs.push(ConfigError { field, reason }),
        }
    }
    out
}

fn check_limits(c: &Config, errs: &mut Vec<ConfigError>) {
    let mut need = |ok: bool, field: &str, reason: &str| {
        if !ok {
            errs.push(ConfigError { field: field.into(), reason: reason.into() });
        }
    };
    need(!c.privacy.pseudonymize || c.privacy.key_file.is_some(), "privacy.key_file", "is required when privacy.pseudonymize is on");
    need(c.input.max_line_bytes >= 256, "input.max_line_bytes", "must be at least 256");
    need(c.pipeline.batch_size > 0, "pipeline.batch_size", "must be at least 1");
    need(c.pipeline.queue_batches > 0, "pipeline.queue_batches", "must be at least 1");
    need(c.pipeline.workers <= 1024, "pipeline.workers", "must be at most 1024");
    need(c.pipeline.decode_threads <= 1024, "pipeline.decode_threads", "must be at most 1024");
    need(!c.forwarding.suppress_window.is_zero(), "forwarding.suppress_window", "must be positive");
    need(!c.reading.idle_timeout.is_zero(), "reading.idle_timeout", "must be positive");
    need(c.state.checkpoint_records > 0, "state.checkpoint_records", "must be at least 1");
    need(c.state.retention >= Duration::from_secs(86_400), "state.retention", "must be at least 1d");
}

fn check_allow_list(allow: &[AllowedTarget], errs: &mut Vec<ConfigError>) {
    for (i, a) in allow.iter().enumerate() {
        if a.reason.trim().is_empty() {
            errs.push(ConfigError { field: format!("forwarding.allow[{i}].reason"), reason: "a reason is required".into() });
        }
        if crate::event::domain_of(&a.target).and_then(|d| crate::domains::to_ascii(d).ok()).is_none() {
            errs.push(ConfigError {
                field: format!("forwarding.allow[{i}].target"),
                reason: format!("{:?} is not an address or @domain", a.target),
            });
        }
    }
}

fn check_input_files(files: &[InputFile], errs: &mut Vec<ConfigError>) {
    for (i, f) in files.iter().enumerate() {
        if f.path.trim().is_empty() {
            errs.push(ConfigError { field: format!("input.files[{i}].path"), reason: "must not be empty".into() });
        }
        if let Some(name) = f.format.as_deref().filter(|n| crate::decode::Format::from_name(n).is_none()) {
            let reason = format!("{name:?} is not a format (one of {})", crate::decode::Format::names());
            errs.push(ConfigError { field: format!("input.files[{i}].format"), reason });
        }
    }
}

fn check_webmail(routes: &[WebmailRoute], errs: &mut Vec<ConfigError>) {
    for (i, r) in routes.iter().enumerate() {
        if crate::domains::to_ascii(&r.host).is_err() {
            errs.push(ConfigError { field: format!("reading.webmail[{i}].host"), reason: format!("{:?} is not a host name", r.host) });
        }
        if !r.path_prefix.starts_with('/') {
            errs.push(ConfigError { field: format!("reading.webmail[{i}].path_prefix"), reason: "must start with '/'".into() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_default_is_valid() {
        let s = Settings::from_toml(DEFAULT_TOML, Path::new(".")).unwrap();
        assert!(s.domains.is_internal("a@exempel.se"));
    }

    /// 0 shard workers means one per four cores, never none; a set number is kept.
    #[test]
    fn zero_workers_is_one_per_four_cores() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut s = Settings::default_settings();
        s.config.pipeline.workers = 0;
        assert_eq!(s.workers(), (cores / 4).max(1));
        s.config.pipeline.workers = 3;
        assert_eq!(s.workers(), 3);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("2 weeks").is_err());
    }

    #[test]
    fn every_problem_is_listed_with_its_field() {
        let text = r#"
            [organisation]
            name = "X"
            domains = []
            [classification]
            approved_encryption = ["tls", "rot13"]
            [pipeline]
            batch_size = 0
        "#;
        let errs = Settings::from_toml(text, Path::new(".")).unwrap_err();
        let fields: Vec<_> = errs.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["organisation.domains", "classification.approved_encryption[0]", "classification.approved_encryption[1]", "pipeline.batch_size"]
        );
    }

    #[test]
    fn kafka_section_is_checked_field_by_field() {
        let good = format!("{DEFAULT_TOML}\n[kafka]\nbrokers = \"127.0.0.1:9092\"\ngroup_id = \"brevvakt\"\ntopics = [{{ name = \"mail-events\", format = \"syslog\" }}]\nalerts_topic = \"alerts\"\ndead_letter_topic = \"dead\"\n[kafka.properties]\n\"sasl.password\" = \"${{env:KAFKA_PASSWORD}}\"\n");
        let s = Settings::from_toml(&good, Path::new(".")).unwrap();
        let k = s.config.kafka.as_ref().unwrap();
        assert_eq!(k.topics[0].format, crate::decode::Format::Syslog);
        assert_eq!(k.commit_interval, Duration::from_secs(5));
        assert!(!format!("{k:?}").contains("KAFKA_PASSWORD"), "property values are never shown");

        let bad = format!("{DEFAULT_TOML}\n[kafka]\nbrokers = \"\"\ngroup_id = \"g\"\ntopics = [{{ name = \"bad topic\" }}]\nalerts_topic = \"a\"\ndead_letter_topic = \"a\"\n[kafka.properties]\n\"enable.auto.commit\" = \"true\"\n\"ssl.key.password\" = \"${{vault:x}}\"\n");
        let errs = Settings::from_toml(&bad, Path::new(".")).unwrap_err();
        let fields: Vec<&str> = errs.0.iter().map(|e| e.field.as_str()).collect();
        for f in ["kafka.brokers", "kafka.topics[0].name", "kafka.dead_letter_topic", "kafka.properties.\"enable.auto.commit\"", "kafka.properties.\"ssl.key.password\""] {
            assert!(fields.contains(&f), "{f} missing in {errs}");
        }
        let unknown = format!("{DEFAULT_TOML}\n[kafka]\nbrokers = \"b\"\ngroup_id = \"g\"\ntopics = []\nalerts_topic = \"a\"\ndead_letter_topic = \"d\"\nbroker = \"x\"\n");
        assert!(Settings::from_toml(&unknown, Path::new(".")).is_err());
    }

    #[test]
    fn secrets_come_from_env_or_file_and_errors_never_show_values() {
        std::env::set_var("BREVVAKT_TEST_SECRET_X", "s3cret");
        assert_eq!(resolve_secret("sasl.password", "${env:BREVVAKT_TEST_SECRET_X}").unwrap(), "s3cret");
        assert_eq!(resolve_secret("client.id", "plain").unwrap(), "plain");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "from-file\n").unwrap();
        assert_eq!(resolve_secret("sasl.password", &format!("${{file:{}}}", f.display())).unwrap(), "from-file");
        let e = resolve_secret("sasl.password", "${env:BREVVAKT_TEST_SECRET_MISSING}").unwrap_err();
        assert!(e.contains("BREVVAKT_TEST_SECRET_MISSING") && e.contains("sasl.password"));
        assert!(valid_topic_name("mail.events_1-a") && !valid_topic_name("..") && !valid_topic_name("a/b") && !valid_topic_name(""));
    }

    #[test]
    fn input_files_name_their_format_and_are_resolved_against_the_config() {
        let text = DEFAULT_TOML.replace(
            "[input]\n",
            "[input]\nfiles = [{ path = \"logs/MSGTRK*.LOG\", format = \"exchange-tracking\" }, { path = \"/var/log/squid/access.log\", format = \"squid\" }, { path = \"events.jsonl\" }]\n",
        );
        let s = Settings::from_toml(&text, Path::new("/etc/brevvakt")).unwrap();
        assert_eq!(
            s.input_files(),
            [
                (crate::decode::Format::ExchangeTracking, "/etc/brevvakt/logs/MSGTRK*.LOG".to_string()),
                (crate::decode::Format::Squid, "/var/log/squid/access.log".to_string()),
                (crate::decode::Format::Normalized, "/etc/brevvakt/events.jsonl".to_string()),
            ]
        );
        let bad = DEFAULT_TOML.replace("[input]\n", "[input]\nfiles = [{ path = \"a.log\", format = \"squidd\" }, { path = \" \" }]\n");
        let errs = Settings::from_toml(&bad, Path::new(".")).unwrap_err();
        let fields: Vec<&str> = errs.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["input.files[0].format", "input.files[1].path"], "{errs}");
        assert!(errs.0[0].reason.contains("exchange_tracking"), "the known formats are listed: {errs}");
    }

    #[test]
    fn unknown_field_is_refused_with_its_name() {
        let text = "[organisation]\nname = \"X\"\ndomains = [\"x.se\"]\ndomian = 1\n";
        let errs = Settings::from_toml(text, Path::new(".")).unwrap_err();
        assert_eq!(errs.0[0].field, "domian");
        assert!(errs.0[0].reason.contains("unknown field"), "{errs}");
    }
}
