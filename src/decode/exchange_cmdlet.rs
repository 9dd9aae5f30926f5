//! Exchange cmdlet records → events: the mapping shared by the Microsoft 365 unified audit
//! log ([`super::m365`]) and the Exchange Server admin audit log
//! ([`super::exchange_admin_audit`]), which log the same cmdlets with the same parameter
//! lists (`[{"Name": …, "Value": …}]`).
//!
//! | cmdlet | parameters read | event |
//! |---|---|---|
//! | `New-InboxRule`, `Set-InboxRule` | `ForwardTo`, `ForwardAsAttachmentTo`, `RedirectTo`; `Mailbox`, `Identity`, `Name`, `Enabled`, `DeleteMessage` | `mailbox.forwarding`, mechanism `inbox_rule` |
//! | `Enable-`, `Disable-`, `Remove-InboxRule` | `Identity`, `Mailbox` | `mailbox.forwarding` `inbox_rule`, state enabled / disabled / removed, no targets |
//! | `Set-Mailbox` | `ForwardingSmtpAddress`, `ForwardingAddress`, `DeliverToMailboxAndForward` (→ `keep_copy`), `Identity` | `mailbox.forwarding`, mechanism `mailbox_forwarding` |
//! | `New-TransportRule`, `Set-TransportRule` | `RedirectMessageTo`, `BlindCopyTo`, `AddToRecipients`, `CopyTo`; `Name`, `Identity`, `Enabled` | `mailbox.forwarding`, mechanism `transport_rule`, no mailbox |
//! | `Enable-`, `Disable-`, `Remove-TransportRule` | `Identity` | `mailbox.forwarding` `transport_rule`, no targets |
//! | `Add-MailboxPermission`, `Add-RecipientPermission` | `Identity`, `User` / `Trustee` | `mailbox.delegation` granted |
//! | `Remove-MailboxPermission`, `Remove-RecipientPermission` | `Identity`, `User` / `Trustee` | `mailbox.delegation` removed |
//! | any other cmdlet | — | skipped |
//!
//! Rules for values:
//! - Targets: a value may be a `;`-separated list; an item may be `addr`, `smtp:addr`,
//!   `"Name" [SMTP:addr]` or `Name <addr>`. SMTP addresses are kept (normalised); items
//!   without `@` are Exchange object names, internal by definition, and are dropped — so a
//!   rule forwarding only to object names yields an event with no targets.
//! - A forwarding parameter that is present but empty (`""`, `$null`) clears forwarding:
//!   state `removed`. A cmdlet with none of its forwarding parameters changes no
//!   forwarding and yields no event.
//! - The mailbox of an inbox rule is the first SMTP address among `Mailbox`, the part of
//!   `Identity` before `\`, the part of the record's object before `\`, and the caller
//!   (without `-Mailbox` a user edits their own rules); of `Set-Mailbox` the first SMTP
//!   address among `Identity` and the object. Failing an address, the first of them
//!   present (an object name), else the caller.
//! - `Enabled` `False` gives state `disabled`. Parameter names match case-insensitively.
//! - `keep_copy`: inbox rules `!DeleteMessage` (a new rule without it keeps the copy);
//!   transport rules `false` when `RedirectMessageTo` is set, else `true`.
//!
//! Not mapped: permission `AccessRights` (every grant counts as delegation), rule
//! conditions, and `ForwardingAddress` values naming recipient objects (not resolvable here).

use serde::{Deserialize, Deserializer};

use super::{DecodeError, ErrorReason};
use crate::event::{addr, ConfigState, DelegationChange, EventBody, ForwardingChange, GrantState, Mechanism, Text};

/// One cmdlet parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Parameter name as logged.
    pub name: String,
    /// Value as text; lists are joined with `;`, null is empty.
    pub value: String,
}

/// A parameter list as logged: JSON `null`, one `{Name, Value}` object or a list of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<Param>);

#[derive(Deserialize)]
struct RawParam {
    #[serde(rename = "Name", alias = "name")]
    name: String,
    #[serde(rename = "Value", alias = "value", default)]
    value: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawParams {
    Many(Vec<RawParam>),
    One(RawParam),
}

impl<'de> Deserialize<'de> for Params {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Option::<RawParams>::deserialize(d)?;
        let list = match raw {
            None => Vec::new(),
            Some(RawParams::One(p)) => vec![p],
            Some(RawParams::Many(v)) => v,
        };
        Ok(Params(list.into_iter().map(|p| Param { name: p.name, value: text(p.value) }).collect()))
    }
}

/// A JSON parameter value as text.
fn text(v: serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Null => String::new(),
        Value::String(s) => s,
        Value::Array(items) => items.into_iter().map(text).collect::<Vec<_>>().join(";"),
        other => other.to_string(),
    }
}

impl Params {
    /// The value of a parameter (name case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|p| p.name.eq_ignore_ascii_case(name)).map(|p| p.value.as_str())
    }

    /// A boolean parameter (`True`, `$true`, `1` …), `None` when absent or not a boolean.
    pub fn flag(&self, name: &str) -> Option<bool> {
        let v = self.get(name)?.trim().trim_start_matches('$');
        if v.eq_ignore_ascii_case("true") || v == "1" {
            Some(true)
        } else if v.eq_ignore_ascii_case("false") || v == "0" {
            Some(false)
        } else {
            None
        }
    }

    /// What the named forwarding parameters say.
    fn forwarding(&self, names: &[&str]) -> Forwarding {
        let values: Vec<&str> = names.iter().filter_map(|n| self.get(n)).collect();
        if values.is_empty() {
            Forwarding::Absent
        } else if values.iter().all(|v| is_blank(v)) {
            Forwarding::Cleared
        } else {
            Forwarding::To(values.iter().flat_map(|v| smtp_targets(v)).collect())
        }
    }
}

/// Forwarding parameters of one cmdlet call.
enum Forwarding {
    /// None of them was given: forwarding not touched.
    Absent,
    /// Given, all empty: forwarding switched off.
    Cleared,
    /// Given: the SMTP targets (empty when all were object names).
    To(Vec<Text>),
}

fn is_blank(v: &str) -> bool {
    let v = v.trim();
    v.is_empty() || v.eq_ignore_ascii_case("$null") || v.eq_ignore_ascii_case("null")
}

/// The SMTP addresses in a target list; object names (no `@`) are dropped.
pub fn smtp_targets(value: &str) -> Vec<Text> {
    value.split(';').filter_map(smtp_address).collect()
}

/// One target item as a normalised SMTP address, if it is one.
pub fn smtp_address(item: &str) -> Option<Text> {
    let inner = |open: char, close: char| item.split_once(open).and_then(|(_, r)| r.split_once(close)).map(|(a, _)| a);
    let raw = inner('[', ']').or_else(|| inner('<', '>')).unwrap_or(item);
    let a = addr::normalize(raw.trim_matches('"'));
    (a.contains('@') && !a.contains(char::is_whitespace)).then_some(a)
}

/// One logged cmdlet call.
#[derive(Debug, Clone, Copy)]
pub struct Cmdlet<'a> {
    /// The cmdlet name (`Set-Mailbox`).
    pub name: &'a str,
    /// Its parameters.
    pub params: &'a Params,
    /// The object it changed, as the log names it (UAL `ObjectId`, admin audit `ObjectModified`).
    pub object: Option<&'a str>,
    /// Who ran it (UAL `UserId`, admin audit `Caller`).
    pub actor: Option<&'a str>,
}

const INBOX_FORWARD: [&str; 3] = ["ForwardTo", "ForwardAsAttachmentTo", "RedirectTo"];
const MAILBOX_FORWARD: [&str; 2] = ["ForwardingSmtpAddress", "ForwardingAddress"];
const TRANSPORT_FORWARD: [&str; 4] = ["RedirectMessageTo", "BlindCopyTo", "AddToRecipients", "CopyTo"];

/// The event a cmdlet call means, `None` when it means nothing the rules need.
pub fn to_event(c: &Cmdlet) -> Result<Option<EventBody>, DecodeError> {
    use ConfigState::{Disabled, Enabled, Removed};
    let lower = c.name.trim().to_ascii_lowercase();
    Ok(match lower.as_str() {
        "new-inboxrule" | "set-inboxrule" => inbox_rule(c, lower.starts_with("new")),
        "enable-inboxrule" => Some(rule_state(c, Mechanism::InboxRule, Enabled)?),
        "disable-inboxrule" => Some(rule_state(c, Mechanism::InboxRule, Disabled)?),
        "remove-inboxrule" => Some(rule_state(c, Mechanism::InboxRule, Removed)?),
        "set-mailbox" => mailbox_forwarding(c),
        "new-transportrule" | "set-transportrule" => transport_rule(c),
        "enable-transportrule" => Some(rule_state(c, Mechanism::TransportRule, Enabled)?),
        "disable-transportrule" => Some(rule_state(c, Mechanism::TransportRule, Disabled)?),
        "remove-transportrule" => Some(rule_state(c, Mechanism::TransportRule, Removed)?),
        "add-mailboxpermission" | "add-recipientpermission" => Some(delegation(c, GrantState::Granted)?),
        "remove-mailboxpermission" | "remove-recipientpermission" => Some(delegation(c, GrantState::Removed)?),
        _ => None,
    })
}

fn inbox_rule(c: &Cmdlet, is_new: bool) -> Option<EventBody> {
    let (targets, state) = targets_and_state(c.params, &INBOX_FORWARD)?;
    let keep_copy = match c.params.flag("DeleteMessage") {
        Some(delete) => Some(!delete),
        None => is_new.then_some(true),
    };
    Some(forwarding(c, Mechanism::InboxRule, targets, keep_copy, state))
}

fn mailbox_forwarding(c: &Cmdlet) -> Option<EventBody> {
    let (targets, state) = targets_and_state(c.params, &MAILBOX_FORWARD)?;
    let keep_copy = c.params.flag("DeliverToMailboxAndForward");
    Some(forwarding(c, Mechanism::MailboxForwarding, targets, keep_copy, state))
}

fn transport_rule(c: &Cmdlet) -> Option<EventBody> {
    let (targets, state) = targets_and_state(c.params, &TRANSPORT_FORWARD)?;
    let redirects = c.params.get("RedirectMessageTo").is_some_and(|v| !is_blank(v));
    Some(forwarding(c, Mechanism::TransportRule, targets, Some(!redirects), state))
}

/// Targets and resulting state, `None` when the call does not touch forwarding.
fn targets_and_state(p: &Params, names: &[&str]) -> Option<(Vec<Text>, ConfigState)> {
    match p.forwarding(names) {
        Forwarding::Absent => None,
        Forwarding::Cleared => Some((Vec::new(), ConfigState::Removed)),
        Forwarding::To(t) if p.flag("Enabled") == Some(false) => Some((t, ConfigState::Disabled)),
        Forwarding::To(t) => Some((t, ConfigState::Enabled)),
    }
}

fn rule_state(c: &Cmdlet, mechanism: Mechanism, state: ConfigState) -> Result<EventBody, DecodeError> {
    if c.params.get("Identity").is_none() && c.object.is_none() {
        return Err(missing(c, "Identity"));
    }
    Ok(forwarding(c, mechanism, Vec::new(), None, state))
}

fn forwarding(
    c: &Cmdlet,
    mechanism: Mechanism,
    targets: Vec<Text>,
    keep_copy: Option<bool>,
    state: ConfigState,
) -> EventBody {
    let mailbox = match mechanism {
        Mechanism::TransportRule => None,
        _ => mailbox(c),
    };
    EventBody::Forwarding(ForwardingChange {
        mailbox,
        actor: c.actor.map(addr::normalize).filter(|a| !a.is_empty()),
        mechanism,
        rule: rule_name(c, mechanism),
        targets: targets.into(),
        keep_copy,
        state,
    })
}

/// The mailbox a per-mailbox cmdlet changed (see the module doc).
fn mailbox(c: &Cmdlet) -> Option<Text> {
    let identity = c.params.get("Identity");
    // Without `-Mailbox` an inbox rule cmdlet acts on the caller's own mailbox, so the
    // caller's address beats an object name; Set-Mailbox is often run by an admin.
    let named = match c.name.to_ascii_lowercase().contains("inboxrule") {
        true => [c.params.get("Mailbox"), owner(identity), owner(c.object), c.actor],
        false => [identity, c.object, None, None],
    };
    let present = || named.iter().flatten().map(|s| s.trim()).filter(|s| !s.is_empty());
    present()
        .find(|s| s.contains('@'))
        .or_else(|| present().next())
        .or(c.actor)
        .map(addr::normalize)
        .filter(|m| !m.is_empty())
}

/// The part before `\` (`anna@exempel.se\fwd` → `anna@exempel.se`).
fn owner(s: Option<&str>) -> Option<&str> {
    s.and_then(|s| s.rsplit_once('\\')).map(|(m, _)| m)
}

/// The rule's name: `Name`, else the part of `Identity` (or the object) after `\`.
fn rule_name(c: &Cmdlet, mechanism: Mechanism) -> Option<Text> {
    if mechanism == Mechanism::MailboxForwarding {
        return None;
    }
    let last = |s: &str| Text::new(s.rsplit_once('\\').map_or(s, |(_, r)| r).trim());
    c.params.get("Name").or(c.params.get("Identity")).or(c.object).map(last).filter(|n| !n.is_empty())
}

fn delegation(c: &Cmdlet, state: GrantState) -> Result<EventBody, DecodeError> {
    let mailbox = c.params.get("Identity").or(c.object).map(addr::normalize).filter(|m| !m.is_empty());
    let delegate = c.params.get("User").or(c.params.get("Trustee")).map(addr::normalize).filter(|d| !d.is_empty());
    Ok(EventBody::Delegation(DelegationChange {
        mailbox: mailbox.ok_or_else(|| missing(c, "Identity"))?,
        delegate: delegate.ok_or_else(|| missing(c, "User"))?,
        state,
        actor: c.actor.map(addr::normalize).filter(|a| !a.is_empty()),
    }))
}

/// Maps a serde_json error of a record onto the bounded reasons.
pub fn json_error(e: serde_json::Error) -> DecodeError {
    use serde_json::error::Category;
    let reason = match e.classify() {
        Category::Data if e.to_string().starts_with("missing field") => ErrorReason::MissingField,
        Category::Data => ErrorReason::InvalidValue,
        _ => ErrorReason::Syntax,
    };
    DecodeError::new(reason, e.to_string())
}

fn missing(c: &Cmdlet, param: &str) -> DecodeError {
    DecodeError::new(ErrorReason::MissingField, format!("{} has no {param} parameter", c.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: &str) -> Params {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn display_name_and_smtp_prefix_targets_are_normalised() {
        assert_eq!(
            smtp_targets(r#""Anna" [SMTP:Anna@Gmail.com];smtp:b@x.se;Bertil Berg;Cecilia <c@y.se>"#),
            ["anna@gmail.com", "b@x.se", "c@y.se"]
        );
    }

    #[test]
    fn parameter_lists_accept_null_single_and_non_string_values() {
        assert_eq!(params("null"), Params::default());
        assert_eq!(params(r#"{"Name":"Enabled","Value":false}"#).flag("enabled"), Some(false));
        assert_eq!(
            params(r#"[{"Name":"ForwardTo","Value":["a@x.se","b@y.se"]}]"#).get("FORWARDTO"),
            Some("a@x.se;b@y.se")
        );
    }

    #[test]
    fn set_mailbox_without_forwarding_parameters_is_skipped() {
        let p = params(r#"[{"Name":"Identity","Value":"anna@exempel.se"},{"Name":"ProhibitSendQuota","Value":"5GB"}]"#);
        let c = Cmdlet { name: "Set-Mailbox", params: &p, object: None, actor: None };
        assert_eq!(to_event(&c).unwrap(), None);
    }

    #[test]
    fn permission_without_user_is_missing_field() {
        let p = params(r#"[{"Name":"Identity","Value":"anna@exempel.se"}]"#);
        let c = Cmdlet { name: "Add-MailboxPermission", params: &p, object: None, actor: None };
        assert_eq!(to_event(&c).unwrap_err().reason, ErrorReason::MissingField);
    }
}
