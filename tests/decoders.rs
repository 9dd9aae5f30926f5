//! The source-format decoders against fixtures written from each format's public
//! documentation (`tests/fixtures/formats/`): what each record means for the rules, what is
//! skipped, and that malformed input is a bounded error, never a panic.

mod common;

use std::path::Path;

use brevvakt::decode::{DecodeError, DecodeOptions, ErrorReason, Format};
use brevvakt::domains::OrgDomains;
use brevvakt::event::*;
use chrono::{DateTime, Utc};

/// Per line: the events it gave, or its error.
type Lines = Vec<Result<Vec<Event>, DecodeError>>;

fn opts() -> DecodeOptions {
    DecodeOptions {
        syslog_year: Some(2026),
        org_domains: OrgDomains::new(&["exempel.se"]).unwrap(),
        ..DecodeOptions::default()
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/formats").join(name)).unwrap()
}

/// Decodes `input` line by line with one decoder, as a source does.
fn decode_bytes(format: Format, opts: &DecodeOptions, input: &[u8]) -> Lines {
    let mut decoder = format.decoder(opts);
    let name = brevvakt::event::InputName::new("fixture");
    input
        .strip_suffix(b"\n")
        .unwrap_or(input)
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| {
            let mut out = Vec::new();
            decoder.decode(line, &SourcePos::line(name, i as u64 + 1), &mut out).map(|()| out)
        })
        .collect()
}

fn decode(format: Format, name: &str) -> Lines {
    decode_bytes(format, &opts(), &fixture(name))
}

fn decode_lines(format: Format, opts: &DecodeOptions, lines: &[&str]) -> Lines {
    decode_bytes(format, opts, lines.join("\n").as_bytes())
}

/// The events of a 1-based line.
fn at(lines: &Lines, line: usize) -> &[Event] {
    match &lines[line - 1] {
        Ok(events) => events,
        Err(e) => panic!("line {line}: {e}"),
    }
}

/// The single body of a line.
fn body(lines: &Lines, line: usize) -> &EventBody {
    match at(lines, line) {
        [event] => &event.body,
        other => panic!("line {line}: expected one event, got {other:?}"),
    }
}

fn errors(lines: &Lines) -> Vec<(usize, ErrorReason)> {
    lines.iter().enumerate().filter_map(|(i, r)| r.as_ref().err().map(|e| (i + 1, e.reason))).collect()
}

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn forwarding(b: &EventBody) -> &ForwardingChange {
    match b {
        EventBody::Forwarding(f) => f,
        other => panic!("not forwarding: {other:?}"),
    }
}

fn message(b: &EventBody) -> &MailMessage {
    match b {
        EventBody::Message(m) => m,
        other => panic!("not a message: {other:?}"),
    }
}

fn access(b: &EventBody) -> &MailboxAccess {
    match b {
        EventBody::Access(a) => a,
        other => panic!("not access: {other:?}"),
    }
}

fn proxy(b: &EventBody) -> &ProxyRequest {
    match b {
        EventBody::Proxy(p) => p,
        other => panic!("not proxy: {other:?}"),
    }
}

fn delegation(b: &EventBody) -> &DelegationChange {
    match b {
        EventBody::Delegation(d) => d,
        other => panic!("not delegation: {other:?}"),
    }
}

// ---------------------------------------------------------------- Microsoft 365 UAL

#[test]
fn inbox_rule_forwarding_to_gmail_is_decoded() {
    let lines = decode(Format::M365, "m365_ual.jsonl");
    assert_eq!(at(&lines, 1)[0].time, utc("2026-03-02T07:12:44Z"), "UAL CreationTime is UTC");
    assert_eq!(
        forwarding(body(&lines, 1)),
        &ForwardingChange {
            mailbox: Some("anna.andersson@exempel.se".into()),
            actor: Some("anna.andersson@exempel.se".into()),
            mechanism: Mechanism::InboxRule,
            rule: Some("Vidarebefordra till privat".into()),
            targets: ["anna.privat@gmail.com".into()].into_iter().collect(),
            keep_copy: Some(true),
            state: ConfigState::Enabled,
        }
    );
}

#[test]
fn inbox_rule_redirect_keeps_smtp_targets_and_drops_object_names() {
    let lines = decode(Format::M365, "m365_ual.jsonl");
    let f = forwarding(body(&lines, 2));
    assert_eq!(f.targets.as_slice(), ["anna.privat@gmail.com", "anna@outlook.com"]);
    assert_eq!(f.mailbox.as_deref(), Some("anna.andersson@exempel.se"));
    assert_eq!(f.keep_copy, None, "Set-InboxRule without DeleteMessage says nothing about the copy");
}

#[test]
fn disabled_and_removed_inbox_rules_name_the_rule() {
    let lines = decode(Format::M365, "m365_ual.jsonl");
    for (line, state) in [(3, ConfigState::Disabled), (4, ConfigState::Removed)] {
        let f = forwarding(body(&lines, line));
        assert_eq!((f.state, f.rule.as_deref()), (state, Some("Vidarebefordra till privat")));
        assert_eq!(f.mailbox.as_deref(), Some("anna.andersson@exempel.se"));
        assert!(f.targets.is_empty());
    }
}

#[test]
fn set_mailbox_forwarding_to_hotmail_is_mailbox_forwarding() {
    let lines = decode(Format::M365, "m365_ual.jsonl");
    let f = forwarding(body(&lines, 5));
    assert_eq!(f.mechanism, Mechanism::MailboxForwarding);
    assert_eq!(f.mailbox.as_deref(), Some("bertil.berg@exempel.se"));
    assert_eq!(f.actor.as_deref(), Some("admin.it@exempel.se"));
    assert_eq!(f.targets.as_slice(), ["bertil.berg@hotmail.com"]);
    assert_eq!((f.keep_copy, f.state, f.rule.as_deref()), (Some(true), ConfigState::Enabled, None));
}

#[test]
fn set_mailbox_forwarding_cleared_is_removed() {
    let lines = decode(Format::M365, "m365_ual.jsonl");
    let f = forwarding(body(&lines, 6));
    assert_eq!((f.state, f.targets.len(), f.keep_copy), (ConfigState::Removed, 0, Some(false)));
}

#[test]
fn forwarding_to_an_object_name_has_no_external_target() {
    let lines = decode(Format::M365, "m365_ual.jsonl");
    let f = forwarding(body(&lines, 7));
    assert_eq!((f.state, f.targets.len()), (ConfigState::Enabled, 0));
    assert_eq!(f.mailbox.as_deref(), Some("cecilia carlsson"), "no address in the record: the object name");
}

#[test]
fn transport_rule_bcc_to_external_archive_is_organisation_wide() {
    let lines = decode(Format::M365, "m365_ual.jsonl");
    let f = forwarding(body(&lines, 8));
    assert_eq!(f.mechanism, Mechanism::TransportRule);
    assert_eq!(f.mailbox, None);
    assert_eq!(f.rule.as_deref(), Some("Kopia till extern arkivtjänst"));
    assert_eq!((f.targets.as_slice(), f.keep_copy), (&[Text::from("journal@arkivtjanst.example")][..], Some(true)));
}

#[test]
fn mailbox_permission_grant_and_removal_are_delegation() {
    let lines = decode(Format::M365, "m365_ual.jsonl");
    let granted = delegation(body(&lines, 9));
    assert_eq!(
        granted,
        &DelegationChange {
            mailbox: "anna.andersson@exempel.se".into(),
            delegate: "bertil.berg@exempel.se".into(),
            state: GrantState::Granted,
            actor: Some("admin.it@exempel.se".into()),
        }
    );
    assert_eq!(delegation(body(&lines, 10)).state, GrantState::Removed);
    assert_eq!(
        delegation(body(&lines, 11)).delegate,
        "cecilia.carlsson@exempel.se",
        "Trustee of Add-RecipientPermission"
    );
}

#[test]
fn mailbox_login_protocol_and_result() {
    let lines = decode(Format::M365, "m365_ual.jsonl");
    let a = access(body(&lines, 12));
    assert_eq!((a.protocol, a.result), (Protocol::Imap, AccessResult::Success));
    let a = access(body(&lines, 13));
    assert_eq!((a.protocol, a.result), (Protocol::Pop3, AccessResult::Failure));
    let blob: Vec<_> = at(&lines, 19).iter().map(|e| access(&e.body).protocol).collect();
    assert_eq!(blob, [Protocol::Activesync, Protocol::Mapi], "a JSON array line is every record in it");
}

#[test]
fn delegate_mail_items_accessed_is_access_by_the_delegate() {
    let lines = decode(Format::M365, "m365_ual.jsonl");
    assert_eq!(
        access(body(&lines, 14)),
        &MailboxAccess {
            mailbox: "anna.andersson@exempel.se".into(),
            user: "bertil.berg@exempel.se".into(),
            protocol: Protocol::Owa,
            result: AccessResult::Success,
        }
    );
}

#[test]
fn outlook_rule_forwarding_as_attachment_is_inbox_rule() {
    let lines = decode(Format::M365, "m365_ual.jsonl");
    let f = forwarding(body(&lines, 15));
    assert_eq!((f.mechanism, f.state), (Mechanism::InboxRule, ConfigState::Enabled));
    assert_eq!((f.rule.as_deref(), f.targets.as_slice()), (Some("Semester"), &[Text::from("cecilia@yahoo.se")][..]));
    let removed = forwarding(body(&lines, 16));
    assert_eq!((removed.state, removed.rule.as_deref()), (ConfigState::Removed, Some("Semester")));
}

#[test]
fn unrelated_operations_and_failed_cmdlets_are_skipped() {
    let lines = decode(Format::M365, "m365_ual.jsonl");
    for line in [17, 18, 20, 21] {
        assert_eq!(at(&lines, line), &[], "line {line}");
    }
}

#[test]
fn malformed_ual_records_are_bounded_errors() {
    let lines = decode(Format::M365, "m365_ual.jsonl");
    assert_eq!(
        errors(&lines),
        [
            (22, ErrorReason::Syntax),
            (23, ErrorReason::MissingField),
            (24, ErrorReason::BadTime),
            (25, ErrorReason::MissingField)
        ]
    );
}

// ---------------------------------------------------------------- Exchange admin audit

#[test]
fn admin_audit_json_cmdlets_become_forwarding_and_delegation() {
    let lines = decode(Format::ExchangeAdminAudit, "exchange_admin_audit.jsonl");
    let rule = forwarding(body(&lines, 1));
    assert_eq!(at(&lines, 1)[0].time, utc("2026-03-02T07:12:44.123Z"));
    assert_eq!(rule.mailbox.as_deref(), Some("anna.andersson@exempel.se"));
    assert_eq!(rule.actor.as_deref(), Some("exempel.se/users/administratör"));
    assert_eq!((rule.targets.as_slice(), rule.keep_copy), (&[Text::from("anna.privat@gmail.com")][..], Some(false)));
    let mbx = forwarding(body(&lines, 2));
    assert_eq!(at(&lines, 2)[0].time, utc("2026-03-02T08:01:10.447Z"), "/Date(ms)/ is UTC milliseconds");
    assert_eq!(mbx.mailbox.as_deref(), Some("exempel.se/kommunledning/bertil berg"));
    let transport = forwarding(body(&lines, 3));
    assert_eq!((transport.keep_copy, transport.targets.len()), (Some(false), 1), "RedirectMessageTo keeps no copy");
    assert_eq!(delegation(body(&lines, 4)).delegate, "exempel\\cecilia");
    assert_eq!((at(&lines, 5), at(&lines, 6)), (&[][..], &[][..]), "failed call and Get-Mailbox skipped");
    assert_eq!(errors(&lines), [(7, ErrorReason::BadTime), (8, ErrorReason::Syntax)]);
}

#[test]
fn admin_audit_csv_with_json_parameters_and_multiline_cells() {
    let lines = decode(Format::ExchangeAdminAudit, "exchange_admin_audit.csv");
    let events: Vec<&EventBody> = lines.iter().flatten().flatten().map(|e| &e.body).collect();
    let kinds: Vec<(Mechanism, ConfigState)> = events
        .iter()
        .filter_map(|b| match b {
            EventBody::Forwarding(f) => Some((f.mechanism, f.state)),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (Mechanism::InboxRule, ConfigState::Enabled),
            (Mechanism::MailboxForwarding, ConfigState::Enabled),
            (Mechanism::TransportRule, ConfigState::Enabled),
            (Mechanism::InboxRule, ConfigState::Removed),
            (Mechanism::InboxRule, ConfigState::Disabled),
        ]
    );
    assert_eq!(events.len(), 6, "five forwarding changes and one delegation");
    let removed = forwarding(body(&lines, 7));
    assert_eq!(removed.rule.as_deref(), Some("Till Gmail"), "single parameter object; comma in ObjectModified");
    assert_eq!(at(&lines, 8), &[], "failed call spanning two lines is skipped");
    assert_eq!(at(&lines, 15)[0].time, utc("2026-03-02T10:00:00Z"), "pretty-printed parameters span lines 10–15");
    assert_eq!(errors(&lines), [(16, ErrorReason::Syntax), (17, ErrorReason::InvalidValue)]);
}

// ---------------------------------------------------------------- Exchange message tracking

#[test]
fn tracking_redirect_keeps_original_recipient() {
    let lines = decode(Format::ExchangeTracking, "exchange_tracking.log");
    let m = message(body(&lines, 7));
    assert_eq!((m.action, m.direction), (Action::Redirect, Direction::Outbound));
    assert_eq!(m.recipients.as_slice(), ["bertil.berg@hotmail.com"]);
    assert_eq!(m.original_recipient.as_deref(), Some("bertil.berg@exempel.se"));
    assert_eq!(m.message_id, "CAF1x2Y3zKp@mail.extern.example");
    assert_eq!(at(&lines, 7)[0].time, utc("2026-03-02T07:00:01.456Z"));
}

#[test]
fn tracking_send_carries_classification_and_encryption() {
    let lines = decode(Format::ExchangeTracking, "exchange_tracking.log");
    let m = message(body(&lines, 8));
    assert_eq!((m.action, m.classification, &m.encryption), (Action::Relay, Some(2), &Encryption::Tls));
    assert_eq!(m.server.as_deref(), Some("EXCH01"));
    assert_eq!(m.sender, "kalle@extern.example");
}

#[test]
fn tracking_expand_is_readdressing_with_the_group_as_original() {
    let lines = decode(Format::ExchangeTracking, "exchange_tracking.log");
    let expand = message(body(&lines, 9));
    assert_eq!(expand.action, Action::Expand);
    assert_eq!(expand.recipients.as_slice(), ["anna.andersson@exempel.se", "bertil.berg@exempel.se"]);
    assert_eq!(expand.original_recipient.as_deref(), Some("socialtjansten@exempel.se"));
    assert_eq!(expand.direction, Direction::Internal);
}

#[test]
fn tracking_resolve_to_the_primary_or_a_contacts_address_is_not_readdressing() {
    // Exchange: RESOLVE rewrites a recipient address to the primary SMTP address of the
    // same directory object; the message's own DELIVER/SEND follows.
    let lines = decode(Format::ExchangeTracking, "exchange_tracking.log");
    assert_eq!(at(&lines, 10), &[], "proxy address anna@ resolved to the primary anna.andersson@");
    assert_eq!(at(&lines, 31), &[], "a mail contact's address resolved to its external address");
    let send = message(body(&lines, 32));
    assert_eq!((send.action, send.original_recipient.as_deref()), (Action::Relay, None), "the contact's mail is the sender's own");
    assert_eq!(send.recipients.as_slice(), ["kontakt@partner.example"]);
}

#[test]
fn tracking_redirect_by_mailbox_forwarding_names_the_mailbox_and_the_kept_copy_is_delivered() {
    // Exchange: REDIRECT is the alternative recipient of a mailbox's forwarding address;
    // with DeliverToMailboxAndForward the mailbox's own copy is a separate DELIVER.
    let lines = decode(Format::ExchangeTracking, "exchange_tracking.log");
    let redirect = message(body(&lines, 33));
    assert_eq!((redirect.action, redirect.direction), (Action::Redirect, Direction::Outbound));
    assert_eq!(redirect.recipients.as_slice(), ["david.privat@outlook.com"]);
    assert_eq!(redirect.original_recipient.as_deref(), Some("david.dahl@exempel.se"));
    let kept = message(body(&lines, 34));
    assert_eq!((kept.action, kept.recipients.as_slice(), kept.original_recipient.as_deref()), (Action::Deliver, &[Text::from("david.dahl@exempel.se")][..], None));
}

#[test]
fn tracking_readdressing_alerts_follow_the_documented_meaning() {
    let lines = decode(Format::ExchangeTracking, "exchange_tracking.log");
    let events: Vec<String> = lines.iter().flatten().flatten().map(|e| {
        let mut v = serde_json::to_value(&e.body).unwrap();
        v["time"] = serde_json::json!(e.time.to_rfc3339());
        v.to_string()
    }).collect();
    let alerts = common::run(&events, vec![], None);
    let mut forwarded: Vec<(&str, &str)> = common::open(&alerts, brevvakt::alert::Rule::ExternalForwarding)
        .iter()
        .map(|a| (a.mailbox.as_str(), a.evidence.targets[0].as_str()))
        .collect();
    forwarded.sort();
    assert_eq!(forwarded, [("bertil.berg@exempel.se", "bertil.berg@hotmail.com"), ("david.dahl@exempel.se", "david.privat@outlook.com")], "REDIRECT forwards; RESOLVE to a contact does not");
}

#[test]
fn tracking_inbox_rule_copy_is_forward() {
    let lines = decode(Format::ExchangeTracking, "exchange_tracking.log");
    let m = message(body(&lines, 11));
    assert_eq!((m.action, m.direction), (Action::Forward, Direction::Outbound));
    assert_eq!(
        (m.sender.as_str(), m.recipients.as_slice()),
        ("anna.andersson@exempel.se", &[Text::from("anna.privat@gmail.com")][..])
    );
}

#[test]
fn tracking_subject_text_is_never_kept() {
    let lines = decode(Format::ExchangeTracking, "exchange_tracking.log");
    let m = message(body(&lines, 7));
    assert_eq!(m.subject_len, Some("Budget, kvartal 1 \"utkast\"".chars().count() as u32));
    let json = serde_json::to_string(&m).unwrap();
    assert!(!json.contains("Budget") && !json.contains("kvartal"), "{json}");
}

#[test]
fn tracking_quoted_line_break_joins_and_fields_header_is_reread() {
    let lines = decode(Format::ExchangeTracking, "exchange_tracking.log");
    assert_eq!(at(&lines, 13), &[], "first half of a record with a line break in the subject");
    let m = message(body(&lines, 14));
    assert_eq!(
        (m.action, m.subject_len),
        (Action::Deliver, Some("Första raden\nandra raden, med komma".chars().count() as u32))
    );
    assert_eq!(
        (m.sender.as_str(), m.server.as_deref()),
        ("bounce+kalle@extern.example", Some("EXCH02")),
        "return-path wins"
    );
    let old = message(body(&lines, 20));
    assert_eq!((old.recipients.as_slice(), old.classification), (&[Text::from("registrator@exempel.se")][..], Some(1)));
    assert_eq!(old.sender, "kalle@extern.example", "the 2010-style #Fields: has no network-message-id: read by name");
}

#[test]
fn tracking_skips_receive_and_fail_and_reports_bad_records() {
    let lines = decode(Format::ExchangeTracking, "exchange_tracking.log");
    for line in [1, 2, 3, 4, 5, 6, 10, 12, 22, 26, 27, 28, 29, 30, 31] {
        assert_eq!(at(&lines, line), &[], "line {line}");
    }
    assert_eq!(message(body(&lines, 23)).message_id, "after@x", "a record after a truncated quoted field survives");
    assert_eq!(
        errors(&lines),
        [(21, ErrorReason::Syntax), (24, ErrorReason::BadTime), (25, ErrorReason::InvalidValue)]
    );
    let before = decode_lines(Format::ExchangeTracking, &opts(), &["2026-03-02T07:00:00.000Z,DELIVER"]);
    assert_eq!(errors(&before), [(1, ErrorReason::Syntax)], "a record before any #Fields: line");
}

/// Feeds `lines` to one decoder, then ends the input: the events, and what `finish` said.
fn decode_to_end(format: Format, lines: &[&str]) -> (Vec<Event>, Result<Vec<Event>, brevvakt::decode::Unfinished>) {
    let mut decoder = format.decoder(&opts());
    let name = brevvakt::event::InputName::new("input");
    let mut events = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        decoder.decode(line.as_bytes(), &SourcePos::line(name, i as u64 + 1), &mut events).unwrap();
    }
    let mut held = Vec::new();
    let finished = decoder.finish(&mut held).map(|()| held);
    let mut again = Vec::new();
    assert_eq!(decoder.finish(&mut again), Ok(()), "what was held is handed over once");
    assert_eq!(again, [], "what was held is handed over once");
    (events, finished)
}

#[test]
fn tracking_record_open_at_the_end_of_input_is_reported_where_it_began() {
    let fields = "#Fields: date-time,event-id,message-id,recipient-address,message-subject";
    let (events, end) = decode_to_end(
        Format::ExchangeTracking,
        &[fields, "2026-03-02T07:00:00.000Z,DELIVER,<a@x>,anna@exempel.se,Hej", "2026-03-02T07:01:00.000Z,DELIVER,<b@x>,anna@exempel.se,\"Avbrutet", "mitt i ämnet"],
    );
    assert_eq!(events.len(), 1);
    let u = end.unwrap_err();
    assert_eq!((u.pos.offset, u.error.reason), (3, ErrorReason::Syntax));
    assert_eq!(u.raw, "2026-03-02T07:01:00.000Z,DELIVER,<b@x>,anna@exempel.se,\"Avbrutet\nmitt i ämnet".as_bytes());
    let (_, complete) = decode_to_end(Format::ExchangeTracking, &[fields, "2026-03-02T07:00:00.000Z,DELIVER,<a@x>,anna@exempel.se,\"två", "rader\""]);
    assert_eq!(complete.unwrap(), [], "a record closed on the last line holds nothing back");
}

#[test]
fn admin_audit_csv_record_open_at_the_end_of_input_is_reported_where_it_began() {
    let header = "\"RunDate\",\"CmdletName\",\"CmdletParameters\",\"ObjectModified\",\"Caller\",\"Succeeded\"";
    let open = "\"2026-03-02T08:00:00+01:00\",\"Set-Mailbox\",\"[{\"\"Name\"\":\"\"ForwardingSmtpAddress\"\",";
    let rest = "\"\"Value\"\":\"\"smtp:x@gmail.com\"\"}]";
    let (events, end) = decode_to_end(Format::ExchangeAdminAudit, &[header, open, rest]);
    assert_eq!(events, []);
    let u = end.unwrap_err();
    assert_eq!((u.pos.offset, u.error.reason), (2, ErrorReason::Syntax));
    assert_eq!(u.raw, format!("{open}\n{rest}").into_bytes());
}

#[test]
fn decoders_without_state_hold_nothing_at_the_end() {
    let inputs = [(Format::Normalized, "normalized.jsonl"), (Format::M365, "m365_ual.jsonl"), (Format::Squid, "squid_native.log"), (Format::Syslog, "mail_syslog.log")];
    for (format, name) in inputs {
        // Every fixture line, good and bad, then the end of input.
        let mut decoder = format.decoder(&opts());
        let bytes = fixture(name);
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
            let _ = decoder.decode(line, &SourcePos::line("input".into(), i as u64 + 1), &mut Vec::new());
        }
        let mut held = Vec::new();
        assert_eq!(decoder.finish(&mut held), Ok(()), "{format:?}");
        assert_eq!(held, [], "{format:?}");
    }
}

// ---------------------------------------------------------------- Postfix + Dovecot syslog

#[test]
fn postfix_alias_expansion_to_external_is_forward() {
    let lines = decode(Format::Syslog, "mail_syslog.log");
    let ev = &at(&lines, 6)[0];
    assert_eq!(ev.time, utc("2026-03-02T07:00:01Z"), "RFC 3164 time read in Europe/Stockholm");
    let m = message(&ev.body);
    assert_eq!((m.action, m.direction), (Action::Forward, Direction::Outbound));
    assert_eq!(m.recipients.as_slice(), ["bertil.privat@gmail.com"]);
    assert_eq!(m.original_recipient.as_deref(), Some("bertil.berg@exempel.se"));
    assert_eq!(
        (m.sender.as_str(), m.message_id.as_str()),
        ("kalle@extern.example", "20260302070000.A1B2C3@mail.extern.example")
    );
    assert_eq!(m.server.as_deref(), Some("mx1"));
}

#[test]
fn postfix_local_deliveries_and_relays() {
    let lines = decode(Format::Syslog, "mail_syslog.log");
    let lmtp = message(body(&lines, 5));
    assert_eq!(
        (lmtp.action, lmtp.direction, lmtp.original_recipient.as_deref()),
        (Action::Deliver, Direction::Inbound, None)
    );
    let local = message(body(&lines, 11));
    assert_eq!((local.action, local.sender.as_str()), (Action::Deliver, "cecilia.carlsson@exempel.se"));
    let bounce = message(body(&lines, 15));
    assert_eq!((bounce.action, bounce.sender.as_str(), bounce.direction), (Action::Relay, "", Direction::Outbound));
}

#[test]
fn dovecot_login_is_access() {
    let lines = decode(Format::Syslog, "mail_syslog.log");
    assert_eq!(
        access(body(&lines, 17)),
        &MailboxAccess {
            mailbox: "anna.andersson@exempel.se".into(),
            user: "anna.andersson@exempel.se".into(),
            protocol: Protocol::Imap,
            result: AccessResult::Success,
        }
    );
}

#[test]
fn dovecot_auth_failures_are_failed_access() {
    let lines = decode(Format::Syslog, "mail_syslog.log");
    let pop = access(body(&lines, 18));
    assert_eq!(
        (pop.protocol, pop.result, pop.user.as_str()),
        (Protocol::Pop3, AccessResult::Failure, "bertil.berg@exempel.se")
    );
    let aborted = access(body(&lines, 19));
    assert_eq!((aborted.result, aborted.mailbox.as_str()), (AccessResult::Failure, "cecilia.carlsson@exempel.se"));
    assert_eq!(at(&lines, 20), &[], "no user given: nothing to attribute");
}

#[test]
fn sieve_redirect_to_gmail_is_redirect_from_the_delivering_user() {
    let lines = decode(Format::Syslog, "mail_syslog.log");
    let m = message(body(&lines, 21));
    assert_eq!((m.action, m.direction), (Action::Redirect, Direction::Outbound));
    assert_eq!(m.recipients.as_slice(), ["anna.privat@gmail.com"]);
    assert_eq!(m.original_recipient.as_deref(), Some("anna.andersson@exempel.se"));
    assert_eq!(m.message_id, "20260302070000.A1B2C3@mail.extern.example");
    let lda = message(body(&lines, 23));
    assert_eq!(
        (lda.recipients.as_slice(), lda.original_recipient.as_deref()),
        (&[Text::from("bertil@hotmail.com")][..], Some("bertil"))
    );
    assert_eq!(lda.message_id, "", "msgid=unspecified");
}

#[test]
fn syslog_skips_other_programs_and_reports_bad_lines() {
    let lines = decode(Format::Syslog, "mail_syslog.log");
    for line in [1, 2, 3, 4, 7, 8, 9, 10, 12, 13, 14, 16, 22, 24, 25, 26, 27] {
        assert_eq!(at(&lines, line), &[], "line {line}");
    }
    assert_eq!(errors(&lines), [(28, ErrorReason::Syntax), (29, ErrorReason::Syntax), (30, ErrorReason::BadTime)]);
    assert_eq!(at(&lines, 31)[0].time, utc("2026-03-29T01:30:00Z"), "summer time: UTC+2");
}

#[test]
fn rfc3164_without_year_is_bad_time() {
    let lines = decode_bytes(Format::Syslog, &DecodeOptions::default(), &fixture("mail_syslog.log"));
    let e = lines[16].as_ref().unwrap_err();
    assert_eq!(e.reason, ErrorReason::BadTime);
    assert!(e.detail.contains("syslog_year"), "{e}");
    assert_eq!(at(&lines, 3), &[], "lines that give no event need no year");
}

#[test]
fn rfc5424_structured_data_is_skipped_and_needs_no_year() {
    let lines = decode_bytes(Format::Syslog, &DecodeOptions::default(), &fixture("mail_syslog_rfc5424.log"));
    let ev = &at(&lines, 3)[0];
    assert_eq!(ev.time, utc("2026-03-02T07:00:02.500Z"));
    let m = message(&ev.body);
    assert_eq!(
        (m.action, m.sender.as_str(), m.message_id.as_str()),
        (Action::Forward, "kalle@extern.example", "abc123@extern.example")
    );
    assert_eq!(m.server.as_deref(), Some("mx1.exempel.se"));
    assert_eq!(access(body(&lines, 4)).user, "anna.andersson@exempel.se", "BOM before the message dropped");
    assert_eq!(at(&lines, 5)[0].time, utc("2026-03-02T07:20:00.123456Z"), "rsyslog RFC 3339 stamp");
    assert_eq!(
        errors(&lines),
        [(6, ErrorReason::BadTime), (7, ErrorReason::Syntax), (8, ErrorReason::Syntax), (9, ErrorReason::BadTime)]
    );
}

#[test]
fn syslog_year_steps_over_new_year() {
    let opts = DecodeOptions { syslog_year: Some(2025), ..opts() };
    let login = |stamp: &str| format!("{stamp} mx1 dovecot: imap-login: Login: user=<anna@exempel.se>, method=PLAIN");
    let lines = decode_lines(Format::Syslog, &opts, &[&login("Dec 31 23:59:59"), &login("Jan  1 00:00:01")]);
    assert_eq!(at(&lines, 1)[0].time, utc("2025-12-31T22:59:59Z"));
    assert_eq!(at(&lines, 2)[0].time, utc("2025-12-31T23:00:01Z"));
}

#[test]
fn dovecot_own_log_file_without_host() {
    let lines = decode_lines(
        Format::Syslog,
        &opts(),
        &[
            "Mar 02 09:00:00 imap-login: Info: Login: user=<anna@exempel.se>, method=PLAIN, rip=192.0.2.7",
            "Mar 02 09:00:01 lmtp(anna@exempel.se)<77><AbCd>: Info: sieve: msgid=<m1@x>: redirect action: forwarded to <a@gmail.com>",
        ],
    );
    assert_eq!(access(body(&lines, 1)).protocol, Protocol::Imap);
    let m = message(body(&lines, 2));
    assert_eq!((m.recipients.as_slice(), m.server.as_deref()), (&[Text::from("a@gmail.com")][..], None));
}

// ---------------------------------------------------------------- Squid

#[test]
fn squid_native_webmail_request_strips_query() {
    let lines = decode(Format::Squid, "squid_native.log");
    let ev = &at(&lines, 1)[0];
    assert_eq!(ev.time, utc("2026-03-02T07:00:01.123Z"));
    assert_eq!(
        proxy(&ev.body),
        &ProxyRequest {
            user: Some("anna.andersson@exempel.se".into()),
            host: "webmail.exempel.se".into(),
            path: "/owa/".into(),
            method: "GET".into(),
            status: 200,
        }
    );
}

#[test]
fn squid_connect_gives_host_only() {
    let lines = decode(Format::Squid, "squid_native.log");
    let p = proxy(body(&lines, 2));
    assert_eq!((p.host.as_str(), p.path.as_str(), p.method.as_str()), ("webmail.exempel.se", "/", "CONNECT"));
    assert_eq!(proxy(body(&lines, 5)).host, "2001:db8::443");
}

#[test]
fn squid_native_ipv6_client_escaped_user_and_port() {
    let lines = decode(Format::Squid, "squid_native.log");
    let p = proxy(body(&lines, 3));
    assert_eq!(
        (p.user.as_deref(), p.host.as_str(), p.path.as_str()),
        (Some("exempel\\bertil"), "webmail.exempel.se", "/owa/service.svc")
    );
    assert_eq!((proxy(body(&lines, 4)).user.as_deref(), proxy(body(&lines, 4)).status), (None, 407));
    assert_eq!(
        errors(&lines),
        [(6, ErrorReason::MissingField), (7, ErrorReason::Syntax), (8, ErrorReason::InvalidValue)]
    );
}

#[test]
fn squid_combined_ipv6_webmail() {
    let lines = decode(Format::Squid, "squid_combined.log");
    let ev = &at(&lines, 2)[0];
    assert_eq!(ev.time, utc("2026-03-02T07:00:02Z"));
    let p = proxy(&ev.body);
    assert_eq!(
        (p.user.as_deref(), p.host.as_str(), p.path.as_str()),
        (Some("anna.andersson@exempel.se"), "webmail.exempel.se", "/")
    );
    assert_eq!(proxy(body(&lines, 1)).user.as_deref(), Some("anna"));
    let ident = proxy(body(&lines, 3));
    assert_eq!((ident.user.as_deref(), ident.path.as_str(), ident.status), (Some("bertil"), "/nyheter", 304));
    assert_eq!(proxy(body(&lines, 4)).path, "/owa/auth/logon.aspx", "escaped quotes inside the request");
    assert_eq!(errors(&lines), [(5, ErrorReason::MissingField), (6, ErrorReason::BadTime), (7, ErrorReason::Syntax)]);
}

// ---------------------------------------------------------------- every format

const FIXTURES: [(Format, &str); 9] = [
    (Format::M365, "m365_ual.jsonl"),
    (Format::ExchangeAdminAudit, "exchange_admin_audit.jsonl"),
    (Format::ExchangeAdminAudit, "exchange_admin_audit.csv"),
    (Format::ExchangeTracking, "exchange_tracking.log"),
    (Format::Syslog, "mail_syslog.log"),
    (Format::Syslog, "mail_syslog_rfc5424.log"),
    (Format::Squid, "squid_native.log"),
    (Format::Squid, "squid_combined.log"),
    (Format::Normalized, "normalized.jsonl"),
];

#[test]
fn truncated_line_is_syntax_error_not_panic() {
    for (format, name) in FIXTURES {
        let input = fixture(name);
        for line in input.split(|&b| b == b'\n') {
            let mut decoder = format.decoder(&opts());
            let pos = SourcePos::line("t".into(), 1);
            for cut in 0..line.len() {
                let _ = decoder.decode(&line[..cut], &pos, &mut Vec::new());
            }
        }
    }
    let cut = decode_lines(Format::M365, &opts(), &[r#"{"CreationTime":"2026-03-02T07:12:44","Operation":"New-Inbox"#]);
    assert_eq!(errors(&cut), [(1, ErrorReason::Syntax)]);
}

#[test]
fn invalid_utf8_is_not_utf8() {
    for (format, _) in FIXTURES {
        let lines = decode_bytes(format, &opts(), b"Mar  2 08:00:00 mx1 dovecot: \xff\xfe");
        assert_eq!(errors(&lines), [(1, ErrorReason::NotUtf8)], "{format:?}");
    }
}

#[test]
fn every_event_round_trips_through_normalized_json() {
    for (format, name) in FIXTURES {
        for ev in decode(format, name).into_iter().flatten().flatten() {
            let EventBody::Message(m) = &ev.body else { continue };
            if m.sender.is_empty() {
                continue; // the null sender (bounces, sieve) has no address to write
            }
            let mut json = serde_json::to_value(&ev.body).unwrap();
            json["time"] = ev.time.to_rfc3339().into();
            let back = decode_lines(Format::Normalized, &opts(), &[&json.to_string()]);
            assert_eq!(body(&back, 1), &ev.body, "{name}");
        }
    }
}

#[test]
fn format_names_in_config_and_cli() {
    let names = [
        ("\"m365\"", Format::M365),
        ("\"exchange_admin_audit\"", Format::ExchangeAdminAudit),
        ("\"exchange_tracking\"", Format::ExchangeTracking),
        ("\"syslog\"", Format::Syslog),
        ("\"postfix\"", Format::Syslog),
        ("\"dovecot\"", Format::Syslog),
        ("\"squid\"", Format::Squid),
    ];
    for (json, format) in names {
        assert_eq!(serde_json::from_str::<Format>(json).unwrap(), format);
        let cli = json.trim_matches('"');
        assert_eq!(<Format as clap::ValueEnum>::from_str(cli, false).unwrap(), format);
    }
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_lines_give_events_or_errors(lines in proptest::collection::vec(
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..200),
                "[ -~]{0,200}".prop_map(String::into_bytes),
                "[<>\\[\\]\":;,= 0-9a-zA-Z@\\\\/.-]{0,120}".prop_map(String::into_bytes),
            ], 1..8)) {
            for (format, _) in FIXTURES {
                let mut decoder = format.decoder(&opts());
                let pos = SourcePos::line("p".into(), 1);
                for line in &lines {
                    let _ = decoder.decode(line, &pos, &mut Vec::new());
                }
            }
        }
    }
}
