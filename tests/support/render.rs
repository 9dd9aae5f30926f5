//! Renders a normalized event stream (what `brevvakt generate` writes) in the real log
//! formats that would carry each event, for the mixed-format replay proof
//! (`tests/mixed_formats.rs`):
//!
//! | event | format | record |
//! |---|---|---|
//! | `mail.message` | Exchange message tracking log, one `MSGTRK<yyyymmdd>-1.LOG` per UTC day with `#Software`, `#Version`, `#Log-type`, `#Date` and `#Fields:` headers | `DELIVER` (preceded by the `RECEIVE` an inbound message logs first), `SEND` (relay), `REDIRECT` and `EXPAND` with the mailbox or group in `related-recipient-address`; classification and encryption in `custom-data` |
//! | `mailbox.forwarding` `inbox_rule`, `mailbox_forwarding` | Microsoft 365 unified audit log (`ual.jsonl`) | `New-InboxRule` (`ForwardTo`, `DeleteMessage`), `Set-Mailbox` (`ForwardingSmtpAddress`, `DeliverToMailboxAndForward`) |
//! | `mailbox.delegation` | unified audit log | `Add-MailboxPermission` (`FullAccess`) |
//! | `mailbox.access` | unified audit log | `MailboxLogin` by the owner, `MailItemsAccessed` by anyone else; the protocol in `ClientInfoString`, failures as `ResultStatus` `Failed` |
//! | `proxy.request` | Squid native `access.log` | user name URL-escaped as Squid logs it |
//!
//! **Not carried** (listed in [`Rendered::uncarried`], and left out of the reference):
//! `mailbox.forwarding` with mechanism `sieve_redirect` — a Dovecot Sieve script is seen
//! only in the mail server's syslog, which is none of these three formats.
//!
//! **Carried with less detail** (the reference holds them as the format carries them):
//! - `mail.message` `subject_hash`: the tracking log holds the subject *text* (rendered with
//!   the event's `subject_len` characters), never an upstream hash, so the hash is dropped.
//! - `mail.message` action `forward` with an original recipient: Exchange logs a mailbox's
//!   forwarding as `REDIRECT` (with `DeliverToMailboxAndForward` the kept copy is its own
//!   `DELIVER`, which the generator writes too), so it becomes action `redirect`. The rules
//!   treat forward, redirect and expand alike (automatic re-addressing).
//!
//! **Order.** The reference lists the carried events in the order a merged replay reads
//! the rendered files: by time, and events of the same instant in the order of their files
//! (files ordered by their first event, then by path), each file in its own order.
//!
//! The renderer covers what the generator writes and panics on anything else (a forwarding
//! change that is not an enablement, a transport rule), so it never guesses a mapping.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use brevvakt::event::{AccessResult, Action, ConfigState, Direction, Encryption, EventBody, MailMessage, Mechanism, Protocol};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

/// The Exchange 2019 `#Fields:` of a message tracking log.
const TRACKING_FIELDS: &str = "date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,connector-id,source,event-id,internal-message-id,message-id,network-message-id,recipient-address,recipient-status,total-bytes,recipient-count,related-recipient-address,reference,message-subject,sender-address,return-path,message-info,directionality,tenant-id,original-client-ip,original-server-ip,custom-data,transport-traffic-type,log-id,schema-version";

/// What was written.
pub struct Rendered {
    /// The rendered files with the format name to replay each with (`FORMAT:PATH`).
    pub files: Vec<(&'static str, PathBuf)>,
    /// The normalized reference stream: the carried events as carried, in merged order.
    pub reference: PathBuf,
    /// Where each carried event is: (rendered file path, line) → line of the reference.
    pub origin: BTreeMap<(String, u64), u64>,
    /// Events no rendered format carries: a description → how many.
    pub uncarried: BTreeMap<String, usize>,
}

/// One carried event on its way to the reference.
struct Carried {
    time: DateTime<Utc>,
    file: PathBuf,
    line: u64,
    reference: String,
}

/// The rendered files as they are filled, by path.
#[derive(Default)]
struct Files {
    lines: BTreeMap<PathBuf, Vec<String>>,
    format: BTreeMap<PathBuf, &'static str>,
}

impl Files {
    /// Appends a line; returns its 1-based line number.
    fn push(&mut self, path: &Path, format: &'static str, line: String) -> u64 {
        self.format.insert(path.to_path_buf(), format);
        let lines = self.lines.entry(path.to_path_buf()).or_default();
        lines.push(line);
        lines.len() as u64
    }
}

/// Renders `stream` (normalized JSON Lines, no malformed lines) into `dir`.
pub fn render(stream: &str, dir: &Path) -> Rendered {
    let mut files = Files::default();
    let mut carried = Vec::new();
    let mut uncarried = BTreeMap::new();
    for (n, line) in stream.lines().enumerate() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("stream line {}: {e}", n + 1));
        let time = DateTime::parse_from_rfc3339(v["time"].as_str().expect("a time")).expect("RFC 3339").with_timezone(&Utc);
        let body: EventBody = serde_json::from_value(v.clone()).expect("a normalized event");
        let mut r = Renderer { files: &mut files, dir, time, n: n as u64 };
        match r.event(&body) {
            Some((file, line, as_carried)) => {
                let mut reference = as_carried.map_or(v.clone(), |b| with_time(&b, &v["time"]));
                reference.as_object_mut().expect("an object").remove("subject_hash");
                carried.push(Carried { time, file, line, reference: reference.to_string() });
            }
            None => *uncarried.entry(format!("{} {}", body.type_name(), v["mechanism"].as_str().unwrap_or(""))).or_default() += 1,
        }
    }
    let order = file_order(&carried);
    carried.sort_by_key(|c| (c.time, order[&c.file]));
    let reference = dir.join("reference.jsonl");
    let mut text = String::new();
    let mut origin = BTreeMap::new();
    for (i, c) in carried.iter().enumerate() {
        writeln!(text, "{}", c.reference).unwrap();
        origin.insert((c.file.display().to_string(), c.line), i as u64 + 1);
    }
    std::fs::write(&reference, text).unwrap();
    for (path, lines) in &files.lines {
        std::fs::write(path, lines.join("\n") + "\n").unwrap();
    }
    let files = files.format.into_iter().map(|(p, f)| (f, p)).collect();
    Rendered { files, reference, origin, uncarried }
}

/// Files ranked as a replay orders them: by their first event's time, then by path.
fn file_order(carried: &[Carried]) -> BTreeMap<PathBuf, usize> {
    let mut first: BTreeMap<&Path, DateTime<Utc>> = BTreeMap::new();
    for c in carried {
        first.entry(&c.file).or_insert(c.time);
    }
    let mut files: Vec<(DateTime<Utc>, &Path)> = first.into_iter().map(|(p, t)| (t, p)).collect();
    files.sort();
    files.into_iter().enumerate().map(|(i, (_, p))| (p.to_path_buf(), i)).collect()
}

/// A normalized record of `body` at `time` (as written in the stream).
fn with_time(body: &EventBody, time: &Value) -> Value {
    let mut v = serde_json::to_value(body).unwrap();
    v["time"] = time.clone();
    v
}

/// Renders one event.
struct Renderer<'a> {
    files: &'a mut Files,
    dir: &'a Path,
    time: DateTime<Utc>,
    /// The event's number in the stream (for ids and addresses that must be unique).
    n: u64,
}

impl Renderer<'_> {
    /// The file and line that carry the event, and the event as carried when that differs
    /// from the stream's; `None` when no format here carries it.
    fn event(&mut self, body: &EventBody) -> Option<(PathBuf, u64, Option<EventBody>)> {
        match body {
            EventBody::Message(m) => Some(self.tracking(m)),
            EventBody::Forwarding(f) if f.mechanism == Mechanism::SieveRedirect => None,
            EventBody::Forwarding(f) => {
                assert_eq!(f.state, ConfigState::Enabled, "the renderer covers enabled forwarding only (all the generator writes)");
                let (op, params) = match f.mechanism {
                    Mechanism::InboxRule => ("New-InboxRule", json!([
                        {"Name": "Mailbox", "Value": f.mailbox},
                        {"Name": "Name", "Value": f.rule},
                        {"Name": "ForwardTo", "Value": f.targets},
                        {"Name": "DeleteMessage", "Value": if f.keep_copy == Some(false) { "True" } else { "False" }},
                    ])),
                    Mechanism::MailboxForwarding => ("Set-Mailbox", json!([
                        {"Name": "Identity", "Value": f.mailbox},
                        {"Name": "ForwardingSmtpAddress", "Value": f.targets.iter().map(|t| format!("smtp:{t}")).collect::<Vec<_>>().join(";")},
                        {"Name": "DeliverToMailboxAndForward", "Value": if f.keep_copy == Some(true) { "True" } else { "False" }},
                    ])),
                    other => panic!("the renderer does not render {other:?} forwarding (the generator writes none)"),
                };
                Some(self.admin(op, f.actor.as_deref(), f.mailbox.as_deref(), params))
            }
            EventBody::Delegation(d) => {
                let params = json!([
                    {"Name": "Identity", "Value": d.mailbox},
                    {"Name": "User", "Value": d.delegate},
                    {"Name": "AccessRights", "Value": ["FullAccess"]},
                    {"Name": "InheritanceType", "Value": "All"},
                ]);
                Some(self.admin("Add-MailboxPermission", d.actor.as_deref(), Some(&d.mailbox), params))
            }
            EventBody::Access(a) => Some(self.access(a)),
            EventBody::Proxy(p) => Some(self.squid(p)),
        }
    }

    fn ual(&mut self, record: Value) -> (PathBuf, u64, Option<EventBody>) {
        let path = self.dir.join("ual.jsonl");
        let line = self.files.push(&path, "m365", record.to_string());
        (path, line, None)
    }

    /// The unified audit log's own time: UTC without an offset.
    fn ual_time(&self) -> String {
        self.time.format("%Y-%m-%dT%H:%M:%S").to_string()
    }

    fn guid(&self, kind: u64) -> String {
        format!("{:08x}-{:04x}-4{:03x}-8000-{:012x}", self.n as u32, kind, (self.n >> 32) & 0xfff, self.n)
    }

    /// An admin cmdlet record (`ExchangeAdmin`, record type 1).
    fn admin(&mut self, op: &str, actor: Option<&str>, object: Option<&str>, params: Value) -> (PathBuf, u64, Option<EventBody>) {
        let record = json!({
            "CreationTime": self.ual_time(), "Id": self.guid(1), "Operation": op,
            "OrganizationId": "5b3c9a1e-7d2f-4e8a-9c6b-1a2b3c4d5e6f", "RecordType": 1, "ResultStatus": "True",
            "UserKey": actor, "UserType": 2, "Version": 1, "Workload": "Exchange", "ClientIP": "10.0.8.15",
            "ObjectId": object, "UserId": actor, "AppId": "", "ExternalAccess": false,
            "OrganizationName": "exempel.onmicrosoft.com", "OriginatingServer": "EXCH01 (15.20.7452.028)",
            "Parameters": params,
        });
        self.ual(record)
    }

    /// `MailboxLogin` by the owner, `MailItemsAccessed` (delegate logon) by anyone else.
    fn access(&mut self, a: &brevvakt::event::MailboxAccess) -> (PathBuf, u64, Option<EventBody>) {
        let client = match a.protocol {
            Protocol::Imap => "Client=Microsoft.Exchange.Imap4",
            Protocol::Pop3 => "Client=Microsoft.Exchange.Pop3",
            Protocol::Owa => "Client=OWA;Action=ViaProxy",
            Protocol::Ews => "Client=WebServices;Mozilla/5.0;ExchangeWebServices",
            Protocol::Activesync => "Client=Microsoft.Exchange.ActiveSync",
            Protocol::Mapi => "Client=MSExchangeRPC",
        };
        let own = a.user == a.mailbox;
        let record = json!({
            "CreationTime": self.ual_time(), "Id": self.guid(2),
            "Operation": if own { "MailboxLogin" } else { "MailItemsAccessed" },
            "OrganizationId": "5b3c9a1e-7d2f-4e8a-9c6b-1a2b3c4d5e6f", "RecordType": if own { 2 } else { 50 },
            "ResultStatus": if a.result == AccessResult::Success { "Succeeded" } else { "Failed" },
            "UserKey": a.user, "UserType": 0, "Version": 1, "Workload": "Exchange", "ClientIP": "10.0.12.40",
            "UserId": a.user, "ClientInfoString": client, "ExternalAccess": false, "LogonType": if own { 0 } else { 1 },
            "MailboxOwnerUPN": a.mailbox, "OrganizationName": "exempel.onmicrosoft.com",
        });
        self.ual(record)
    }

    /// A Squid native access.log line.
    fn squid(&mut self, p: &brevvakt::event::ProxyRequest) -> (PathBuf, u64, Option<EventBody>) {
        let code = match p.status {
            304 => "TCP_REFRESH_UNMODIFIED",
            _ => "TCP_MISS",
        };
        let user = p.user.as_deref().map_or("-".to_string(), |u| u.replace('@', "%40"));
        let line = format!(
            "{}.{:03} {:>6} 10.0.{}.{} {code}/{} {} {} https://{}{} {user} HIER_DIRECT/192.0.2.{} text/html",
            self.time.timestamp(),
            self.time.timestamp_subsec_millis(),
            40 + self.n % 900,
            self.n % 7,
            10 + self.n % 200,
            p.status,
            512 + self.n % 40_000,
            p.method,
            p.host,
            p.path,
            1 + self.n % 250,
        );
        let path = self.dir.join("access.log");
        let line = self.files.push(&path, "squid", line);
        (path, line, None)
    }

    /// One tracking log line per message transfer (after the day file's headers, and after
    /// the `RECEIVE` an inbound delivery logs first).
    fn tracking(&mut self, m: &MailMessage) -> (PathBuf, u64, Option<EventBody>) {
        let day = self.time.format("%Y%m%d").to_string();
        let path = self.dir.join(format!("MSGTRK{day}-1.LOG"));
        if !self.files.lines.contains_key(&path) {
            let date = self.time.format("%Y-%m-%dT00:00:00.000Z");
            for header in ["#Software: Microsoft Exchange Server".to_string(), "#Version: 15.02.1544.004".into(), "#Log-type: Message Tracking Log".into(), format!("#Date: {date}"), format!("#Fields: {TRACKING_FIELDS}")] {
                self.files.push(&path, "exchange_tracking", header);
            }
        }
        let (event_id, source, carried) = match (m.action, &m.original_recipient) {
            (Action::Deliver, _) => ("DELIVER", "STOREDRIVER", None),
            (Action::Relay, _) => ("SEND", "SMTP", None),
            (Action::Redirect, Some(_)) => ("REDIRECT", "ROUTING", None),
            (Action::Forward, Some(_)) => ("REDIRECT", "ROUTING", Some(Action::Redirect)),
            (Action::Expand, Some(_)) => ("EXPAND", "ROUTING", None),
            (Action::Forward, None) => ("RECEIVE", "MAILBOXRULE", None),
            (action, None) => panic!("the renderer has no tracking record for {action:?} without an original recipient"),
        };
        if m.action == Action::Deliver && m.direction == Direction::Inbound {
            let receive = self.tracking_line(m, "RECEIVE", "SMTP");
            self.files.push(&path, "exchange_tracking", receive);
        }
        let line = self.tracking_line(m, event_id, source);
        let line = self.files.push(&path, "exchange_tracking", line);
        let as_carried = carried.map(|action| EventBody::Message(MailMessage { action, ..m.clone() }));
        (path, line, as_carried)
    }

    fn tracking_line(&self, m: &MailMessage, event_id: &str, source: &str) -> String {
        let custom: Vec<String> = m
            .classification
            .map(|c| format!("S:Classification={c}"))
            .into_iter()
            .chain((m.encryption != Encryption::None).then(|| format!("S:Encryption={}", m.encryption)))
            .collect();
        let fields = [
            self.time.to_rfc3339_opts(SecondsFormat::Millis, true),
            "10.0.0.21".into(),
            m.server.as_deref().unwrap_or_default().to_string(),
            "10.0.0.22".into(),
            m.server.as_deref().unwrap_or_default().to_string(),
            String::new(),
            String::new(),
            source.into(),
            event_id.into(),
            (12_884_901_888 + self.n).to_string(),
            format!("<{}>", m.message_id),
            self.guid(3),
            m.recipients.join(";"),
            String::new(),
            (2048 + self.n % 90_000).to_string(),
            m.recipients.len().to_string(),
            m.original_recipient.as_deref().filter(|_| matches!(event_id, "REDIRECT" | "EXPAND")).unwrap_or_default().to_string(),
            String::new(),
            subject(m.subject_len.unwrap_or(0) as usize),
            m.sender.to_string(),
            if m.sender.is_empty() { "<>".into() } else { m.sender.to_string() },
            String::new(),
            if m.direction == Direction::Inbound { "Incoming" } else { "Originating" }.into(),
            String::new(),
            String::new(),
            String::new(),
            custom.join(";"),
            "Email".into(),
            self.guid(4),
            "15.02.1544.004".into(),
        ];
        fields.iter().map(|f| csv(f)).collect::<Vec<_>>().join(",")
    }
}

/// A subject of `len` characters, with a comma, quotes and non-ASCII letters (CSV quoting),
/// never ending in a blank (the decoder trims fields, as Exchange's own values never end so).
fn subject(len: usize) -> String {
    let mut s: String = "Re: \"Möte\", vecka 25 – åtgärder ".chars().cycle().take(len).collect();
    if s.ends_with(' ') {
        s.pop();
        s.push('.');
    }
    s
}

/// A CSV field, quoted when it must be.
fn csv(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
