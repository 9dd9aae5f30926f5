//! Decoder for Microsoft 365 / Exchange Online unified audit log (UAL) records: one JSON
//! record per line, as the Management Activity API, `Search-UnifiedAuditLog`'s `AuditData`
//! or a SIEM export gives them. A line holding a JSON array of records (one API content
//! blob) is read as all of them.
//!
//! | UAL field | event field | notes |
//! |---|---|---|
//! | `CreationTime` | `Event::time` | UTC; the UAL writes it without an offset (documented as UTC), an offset is honoured |
//! | `Operation` | event kind | see below; other operations are skipped |
//! | `Workload` | — | records of a workload other than `Exchange` are skipped |
//! | `ResultStatus` | `result` (access) | `Failed`/`False` cmdlets changed nothing and are skipped |
//! | `UserId` | `actor`, access `user` | normalised |
//! | `ObjectId` | mailbox / rule name fallback | see [`exchange_cmdlet`] |
//! | `Parameters` | cmdlet parameters | mapping in [`exchange_cmdlet`] |
//! | `OperationProperties` | `UpdateInboxRules` rule | `RuleName`, `RuleOperation`, `RuleActions`/`ServerRule` |
//! | `MailboxOwnerUPN` | access `mailbox`, `UpdateInboxRules` mailbox | falls back to `UserId` |
//! | `ClientInfoString`, `ClientAppId` | access `protocol` | heuristics below, default `owa` |
//!
//! | `Operation` | event |
//! |---|---|
//! | `New-`/`Set-`/`Enable-`/`Disable-`/`Remove-InboxRule`, `Set-Mailbox`, `New-`/`Set-TransportRule`, `Add-`/`Remove-MailboxPermission`, `Add-`/`Remove-RecipientPermission` | see [`exchange_cmdlet`] |
//! | `UpdateInboxRules` (rules made in Outlook) | `mailbox.forwarding` `inbox_rule` when an action's `ActionType` forwards or redirects; `RuleOperation` `RemoveMailboxRule` → removed |
//! | `MailboxLogin` | `mailbox.access`, result from `ResultStatus` |
//! | `MailItemsAccessed` | `mailbox.access` (a read) |
//!
//! Protocol: `ClientInfoString` containing `IMAP` → imap, `POP3` → pop3, `ActiveSync`/
//! `AirSync` → activesync, `WebServices`/`Client=REST`/`OutlookService` → ews,
//! `MSExchangeRPC` → mapi; else `ClientAppId` of Microsoft Office (Outlook desktop) → mapi,
//! of Outlook Mobile → activesync; else owa.
//!
//! `UpdateInboxRules` action lists are JSON (`[{"ActionType": "Forward", "Recipients":
//! […]}]`, or a `ServerRule` object with `Actions`); every SMTP address anywhere under a
//! forwarding action's `Recipients` is a target. A value that is not JSON is `invalid_value`
//! (never silently taken as "no forwarding").
//!
//! Not supported: the CSV export wrapper of the compliance portal (extract `AuditData`
//! first), non-Exchange workloads. No subject or item data from `MailItemsAccessed`
//! `Folders` is read or kept.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::exchange_cmdlet::{self, json_error, smtp_address, Cmdlet, Params};
use super::{check_year, parse_time, utf8, DecodeError, Decoder, ErrorReason};
use crate::event::{
    addr, AccessResult, ConfigState, Event, EventBody, ForwardingChange, MailboxAccess, Mechanism, Protocol, SourcePos, Text,
};

/// Decodes unified audit log JSON records.
#[derive(Debug, Default, Clone, Copy)]
pub struct M365Decoder;

#[derive(Deserialize)]
struct Record {
    #[serde(rename = "CreationTime")]
    creation_time: String,
    #[serde(rename = "Operation")]
    operation: String,
    #[serde(rename = "Workload", default)]
    workload: Option<String>,
    #[serde(rename = "UserId", default)]
    user_id: Option<String>,
    #[serde(rename = "ObjectId", default)]
    object_id: Option<String>,
    #[serde(rename = "ResultStatus", default)]
    result_status: Option<String>,
    #[serde(rename = "Parameters", default)]
    parameters: Params,
    #[serde(rename = "OperationProperties", default)]
    operation_properties: Params,
    #[serde(rename = "MailboxOwnerUPN", default)]
    mailbox_owner_upn: Option<String>,
    #[serde(rename = "ClientInfoString", default)]
    client_info: Option<String>,
    #[serde(rename = "ClientAppId", default)]
    client_app_id: Option<String>,
}

impl Decoder for M365Decoder {
    fn decode(&mut self, line: &[u8], pos: &SourcePos, out: &mut Vec<Event>) -> Result<(), DecodeError> {
        let text = utf8(line)?.trim();
        if text.starts_with('[') {
            let records: Vec<Record> = serde_json::from_str(text).map_err(json_error)?;
            records.iter().try_for_each(|r| decode_record(r, pos, out))
        } else {
            decode_record(&serde_json::from_str(text).map_err(json_error)?, pos, out)
        }
    }
}

fn decode_record(r: &Record, pos: &SourcePos, out: &mut Vec<Event>) -> Result<(), DecodeError> {
    if r.workload.as_deref().is_some_and(|w| !w.eq_ignore_ascii_case("exchange")) {
        return Ok(());
    }
    let body = match r.operation.as_str() {
        "MailboxLogin" | "MailItemsAccessed" => Some(access(r)?),
        _ if failed(r.result_status.as_deref()) => None,
        "UpdateInboxRules" => update_inbox_rules(r)?,
        op => exchange_cmdlet::to_event(&Cmdlet {
            name: op,
            params: &r.parameters,
            object: r.object_id.as_deref(),
            actor: r.user_id.as_deref(),
        })?,
    };
    if let Some(body) = body {
        out.push(Event { time: ual_time(&r.creation_time)?, source: pos.clone(), body });
    }
    Ok(())
}

/// `Failed`, `False` or `Failure`: the operation did not happen.
fn failed(status: Option<&str>) -> bool {
    status.is_some_and(|s| ["failed", "false", "failure"].iter().any(|f| s.trim().eq_ignore_ascii_case(f)))
}

/// UAL time: an RFC 3339 time with offset, or the UAL's own offset-less UTC form.
fn ual_time(s: &str) -> Result<DateTime<Utc>, DecodeError> {
    parse_time(s).or_else(|e| match NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M:%S%.f") {
        Ok(t) => check_year(t.and_utc()),
        Err(_) => Err(e),
    })
}

fn access(r: &Record) -> Result<EventBody, DecodeError> {
    let norm = |s: &Option<String>| s.as_deref().map(addr::normalize).filter(|a| !a.is_empty());
    let user = norm(&r.user_id);
    let mailbox = norm(&r.mailbox_owner_upn).or_else(|| user.clone()).ok_or_else(|| {
        DecodeError::new(ErrorReason::MissingField, format!("{} record has no MailboxOwnerUPN or UserId", r.operation))
    })?;
    Ok(EventBody::Access(MailboxAccess {
        user: user.unwrap_or_else(|| mailbox.clone()),
        mailbox,
        protocol: protocol(r.client_info.as_deref().unwrap_or(""), r.client_app_id.as_deref().unwrap_or("")),
        result: if failed(r.result_status.as_deref()) { AccessResult::Failure } else { AccessResult::Success },
    }))
}

const CLIENT_INFO: [(&str, Protocol); 8] = [
    ("imap", Protocol::Imap),
    ("pop3", Protocol::Pop3),
    ("activesync", Protocol::Activesync),
    ("airsync", Protocol::Activesync),
    ("webservices", Protocol::Ews),
    ("client=rest", Protocol::Ews),
    ("outlookservice", Protocol::Ews),
    ("msexchangerpc", Protocol::Mapi),
];

const CLIENT_APP: [(&str, Protocol); 2] = [
    ("d3590ed6-52b3-4102-aeff-aad2292ab01c", Protocol::Mapi),
    ("27922004-5251-4030-b22d-91ecd9a37ea4", Protocol::Activesync),
];

/// The client protocol, by the heuristics in the module doc.
fn protocol(client_info: &str, app_id: &str) -> Protocol {
    let info = client_info.to_ascii_lowercase();
    CLIENT_INFO
        .iter()
        .find(|(k, _)| info.contains(k))
        .or_else(|| CLIENT_APP.iter().find(|(id, _)| app_id.trim().eq_ignore_ascii_case(id)))
        .map_or(Protocol::Owa, |&(_, p)| p)
}

fn update_inbox_rules(r: &Record) -> Result<Option<EventBody>, DecodeError> {
    let props = &r.operation_properties;
    let removed = props.get("RuleOperation").is_some_and(|o| o.to_ascii_lowercase().contains("remove"));
    let (targets, state) = if removed {
        (Vec::new(), ConfigState::Removed)
    } else {
        match rule_targets(props)? {
            Some(t) => (t, ConfigState::Enabled),
            None => return Ok(None),
        }
    };
    let norm = |s: Option<&str>| s.map(addr::normalize).filter(|a| !a.is_empty());
    Ok(Some(EventBody::Forwarding(ForwardingChange {
        mailbox: norm(r.mailbox_owner_upn.as_deref()).or_else(|| norm(r.user_id.as_deref())),
        actor: norm(r.user_id.as_deref()),
        mechanism: Mechanism::InboxRule,
        rule: props.get("RuleName").map(|n| Text::new(n.trim())).filter(|n| !n.is_empty()),
        targets: targets.into(),
        keep_copy: None,
        state,
    })))
}

/// Targets of the rule's forwarding actions, `None` when it has none.
fn rule_targets(props: &Params) -> Result<Option<Vec<Text>>, DecodeError> {
    let mut found = None;
    for name in ["RuleActions", "ServerRule"] {
        let Some(json) = props.get(name).filter(|v| !v.trim().is_empty()) else { continue };
        let v: Value = serde_json::from_str(json).map_err(|e| {
            DecodeError::new(ErrorReason::InvalidValue, format!("UpdateInboxRules {name} is not JSON ({e})"))
        })?;
        forwarding_actions(&v, &mut found);
    }
    Ok(found)
}

/// Walks an action list; each forward/redirect action adds its recipients' addresses.
fn forwarding_actions(v: &Value, found: &mut Option<Vec<Text>>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| forwarding_actions(i, found)),
        Value::Object(o) => {
            let kind = o.get("ActionType").and_then(Value::as_str).unwrap_or("").to_ascii_lowercase();
            if kind.contains("forward") || kind.contains("redirect") {
                let targets = found.get_or_insert_with(Vec::new);
                o.get("Recipients").into_iter().for_each(|r| addresses(r, targets));
            }
            o.get("Actions").into_iter().for_each(|a| forwarding_actions(a, found));
        }
        _ => {}
    }
}

/// Every SMTP address in a JSON value, in order.
fn addresses(v: &Value, out: &mut Vec<Text>) {
    match v {
        Value::String(s) => out.extend(s.split(';').filter_map(smtp_address)),
        Value::Array(items) => items.iter().for_each(|i| addresses(i, out)),
        Value::Object(o) => o.values().for_each(|i| addresses(i, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_heuristics() {
        assert_eq!(protocol("Client=Microsoft.Exchange.Imap4", ""), Protocol::Imap);
        assert_eq!(protocol("Client=MSExchangeRPC", ""), Protocol::Mapi);
        assert_eq!(protocol("Client=WebServices;Action=Sync", ""), Protocol::Ews);
        assert_eq!(protocol("", "D3590ED6-52B3-4102-AEFF-AAD2292AB01C"), Protocol::Mapi);
        assert_eq!(protocol("Client=OWA;Action=ViaProxy", ""), Protocol::Owa);
    }

    #[test]
    fn ual_time_without_offset_is_utc_and_offset_is_honoured() {
        assert_eq!(ual_time("2026-03-02T07:00:01").unwrap().to_rfc3339(), "2026-03-02T07:00:01+00:00");
        assert_eq!(ual_time("2026-03-02T08:00:01+01:00").unwrap().to_rfc3339(), "2026-03-02T07:00:01+00:00");
        assert_eq!(ual_time("02/03/2026 08:00").unwrap_err().reason, ErrorReason::BadTime);
    }
}
