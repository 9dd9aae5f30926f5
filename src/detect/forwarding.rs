//! Rule 1: mail must never be forwarded automatically outside the organisation.
//!
//! Two kinds of evidence:
//! - **Configuration** (`mailbox.forwarding`): an enabled inbox rule, mailbox forwarding,
//!   transport rule or sieve redirect with a target outside the organisation's domains is
//!   an alert at once (severity high), one per (mechanism, rule, target). A later event
//!   that disables or removes it — or re-enables the same rule with other targets —
//!   resolves the open finding with a `resolved` alert.
//! - **Mail flow** (`mail.message`): a message addressed to a local mailbox that the server
//!   forwarded, redirected or expanded to an external address proves forwarding even when
//!   no configuration event was seen. The first such message per (mailbox, target) is an
//!   alert; repeats within `forwarding.suppress_window` (event time) are counted, and the
//!   count is reported in the next alert for that pair (`suppressed_before`). A flow to a
//!   target that already has an open configuration finding is not alerted again.
//!
//! Not alerts: internal targets (subdomains included), allow-listed targets, and manual
//! forwards — a *new* message the user sends is a relay without an original recipient.
//! State per mailbox: open findings and the last window per target, both bounded
//! ([`MAX_TRACKED`]; the oldest flow window is forgotten first).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{evidence_of, Ctx, Detector, Mailbox, Roles, Routed};
use crate::alert::{alert_id, Alert, Evidence, Rule, Severity};
use crate::config::Settings;
use crate::domains::OrgDomains;
use crate::event::{ConfigState, Event, EventBody, ForwardingChange, MailMessage, Mechanism, Text};

/// Findings and flow windows tracked per mailbox at most.
pub const MAX_TRACKED: usize = 32;

/// The detector.
pub struct ExternalForwarding {
    domains: OrgDomains,
    allow: Vec<String>,
    window: chrono::Duration,
}

/// An open configuration finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenConfig {
    id: String,
    mechanism: Mechanism,
    rule: Option<Text>,
    target: Text,
}

/// The current suppression window of one (mailbox, target) flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowWindow {
    target: String,
    start: DateTime<Utc>,
    count: u64,
}

/// Per-mailbox state: one pointer, null for the (nearly all) mailboxes that have no open
/// finding and no flow window. Serialized as `{"open": [...], "flows": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "Lists", into = "Lists")]
pub struct State(Option<Box<Lists>>);

/// The lists behind [`State`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Lists {
    open: Vec<OpenConfig>,
    flows: Vec<FlowWindow>,
}

impl From<Lists> for State {
    fn from(l: Lists) -> Self {
        let mut st = State(Some(Box::new(l)));
        st.tidy();
        st
    }
}

impl From<State> for Lists {
    fn from(st: State) -> Self {
        st.0.map(|b| *b).unwrap_or_default()
    }
}

impl State {
    fn lists(&self) -> Option<&Lists> {
        self.0.as_deref()
    }

    fn lists_mut(&mut self) -> &mut Lists {
        self.0.get_or_insert_with(Box::default)
    }

    /// Frees the lists when both are empty.
    fn tidy(&mut self) {
        if self.0.as_ref().is_some_and(|l| l.open.is_empty() && l.flows.is_empty()) {
            self.0 = None;
        }
    }

    fn has_open_target(&self, target: &str) -> bool {
        self.lists().is_some_and(|l| l.open.iter().any(|o| o.target == target))
    }
}

impl Detector for ExternalForwarding {
    type State = State;
    const ROLES: Roles = Roles::CONFIG.with(Roles::FORWARDED_FOR);

    fn new(s: &Settings) -> Self {
        let allow = s.config.forwarding.allow.iter().map(|a| a.target.trim().to_lowercase()).collect();
        let window = chrono::Duration::from_std(s.config.forwarding.suppress_window).unwrap_or(chrono::Duration::MAX);
        ExternalForwarding { domains: s.domains.clone(), allow, window }
    }

    fn on_event(&self, _ctx: &Ctx, mb: Mailbox, st: &mut State, ev: &Routed, out: &mut Vec<Alert>) {
        match &ev.event.body {
            EventBody::Forwarding(f) if ev.roles.has(Roles::CONFIG) => {
                self.on_config(mb, st.lists_mut(), &ev.event, f, out);
                st.tidy();
            }
            EventBody::Message(m) if ev.roles.has(Roles::FORWARDED_FOR) => {
                self.on_flow(mb, st, &ev.event, m, out);
                st.tidy();
            }
            _ => {}
        }
    }

    fn is_idle(st: &State) -> bool {
        st.lists().is_none_or(|l| l.open.is_empty() && l.flows.is_empty())
    }
}

impl ExternalForwarding {
    /// External and not allow-listed.
    fn is_forbidden(&self, target: &str) -> bool {
        self.domains.is_external(target)
            && !self.allow.iter().any(|a| a == target || (a.starts_with('@') && target.ends_with(a.as_str())))
    }

    fn on_config(&self, mb: Mailbox, st: &mut Lists, ev: &Event, f: &ForwardingChange, out: &mut Vec<Alert>) {
        let same_rule = |o: &OpenConfig| o.mechanism == f.mechanism && o.rule == f.rule;
        let closes = |o: &OpenConfig| match f.state {
            ConfigState::Enabled => !f.targets.contains(&o.target),
            ConfigState::Disabled | ConfigState::Removed => f.targets.is_empty() || f.targets.contains(&o.target),
        };
        let (closed, kept): (Vec<_>, Vec<_>) = st.open.drain(..).partition(|o| same_rule(o) && closes(o));
        st.open = kept;
        for o in closed {
            out.push(self.resolved(mb, ev, o));
        }
        if f.state == ConfigState::Enabled {
            self.open_config(mb, st, ev, f, out);
        }
    }

    fn open_config(&self, mb: Mailbox, st: &mut Lists, ev: &Event, f: &ForwardingChange, out: &mut Vec<Alert>) {
        for target in f.targets.iter().filter(|t| self.is_forbidden(t)) {
            let known = st.open.iter().any(|o| o.mechanism == f.mechanism && o.rule == f.rule && o.target == *target);
            if known || st.open.len() >= MAX_TRACKED {
                continue;
            }
            let time = ev.time.to_rfc3339();
            let id = alert_id(&[Rule::ExternalForwarding.as_str(), mb.address, f.mechanism.as_str(), f.rule.as_deref().unwrap_or(""), target, &time]);
            let evidence = Evidence {
                targets: vec![target.to_string()],
                mechanism: Some(f.mechanism),
                rule_name: f.rule.as_ref().map(Text::to_string),
                keep_copy: f.keep_copy,
                ..evidence_of(ev)
            };
            out.push(mb.open(Rule::ExternalForwarding, Severity::High, id.clone(), ev.time, evidence));
            st.open.push(OpenConfig { id, mechanism: f.mechanism, rule: f.rule.clone(), target: target.clone() });
        }
    }

    fn resolved(&self, mb: Mailbox, ev: &Event, o: OpenConfig) -> Alert {
        let evidence = Evidence { targets: vec![o.target.into()], mechanism: Some(o.mechanism), rule_name: o.rule.map(Text::into), ..evidence_of(ev) };
        mb.resolved(Rule::ExternalForwarding, o.id, ev.time, evidence)
    }

    fn on_flow(&self, mb: Mailbox, st: &mut State, ev: &Event, m: &MailMessage, out: &mut Vec<Alert>) {
        for target in m.recipients.iter().filter(|t| self.is_forbidden(t)) {
            if st.has_open_target(target) {
                continue;
            }
            if let Some(alert) = self.flow_window(mb, st.lists_mut(), ev, m, target) {
                out.push(alert);
            }
        }
    }

    /// Counts the message into the current window of its target, or opens a new window
    /// (and alerts) when there is none or it has expired.
    fn flow_window(&self, mb: Mailbox, st: &mut Lists, ev: &Event, m: &MailMessage, target: &str) -> Option<Alert> {
        let idx = st.flows.iter().position(|w| w.target == target);
        let suppressed_before = match idx.map(|i| &mut st.flows[i]) {
            Some(w) if ev.time < w.start + self.window => {
                w.count += 1;
                return None;
            }
            Some(w) => Some(w.count.saturating_sub(1)).filter(|&n| n > 0),
            None => None,
        };
        let window = FlowWindow { target: target.to_string(), start: ev.time, count: 1 };
        match idx {
            Some(i) => st.flows[i] = window,
            None => insert_bounded(&mut st.flows, window),
        }
        let id = alert_id(&[Rule::ExternalForwarding.as_str(), mb.address, "mail_flow", target, &ev.time.to_rfc3339()]);
        let evidence = Evidence { targets: vec![target.to_string()], suppressed_before, message_id: Some(m.message_id.to_string()), ..evidence_of(ev) };
        Some(mb.open(Rule::ExternalForwarding, Severity::High, id, ev.time, evidence))
    }
}

/// Adds a window, forgetting the oldest one when the list is full.
fn insert_bounded(flows: &mut Vec<FlowWindow>, w: FlowWindow) {
    if flows.len() >= MAX_TRACKED {
        if let Some(oldest) = flows.iter().enumerate().min_by_key(|(_, f)| f.start).map(|(i, _)| i) {
            flows.swap_remove(oldest);
        }
    }
    flows.push(w);
}
