//! Rule 3: class-2 information may be mailed only with approved message encryption;
//! class-3 information must not be mailed at all.
//!
//! - `mail.message` with classification 2 whose encryption is not in
//!   `classification.approved_encryption` (default S/MIME and PGP plus named gateways;
//!   TLS alone never counts) → alert, severity high. Mail that stays inside the
//!   organisation is exempt only when `classification.exempt_internal` is set.
//! - Classification 3 in any message, encrypted or not → alert, severity critical.
//!
//! The message is judged once, at the mailbox that answers for it (the local sender, else
//! the first local recipient). The same message logged twice (several hops, several
//! recipients) gives one alert: the alert id is derived from the Message-ID and level, and
//! the last few ids per mailbox are remembered to suppress repeats.

use serde::{Deserialize, Serialize};

use super::{evidence_of, Ctx, Detector, Mailbox, Roles, Routed};
use crate::alert::{alert_id, Alert, Evidence, Rule, Severity};
use crate::config::Settings;
use crate::domains::OrgDomains;
use crate::event::{Encryption, Event, EventBody, MailMessage, Text};

/// Recent classified message ids remembered per mailbox.
const RECENT: usize = 8;

/// The detector.
pub struct ClassifiedMail {
    approved: Vec<Encryption>,
    exempt_internal: bool,
    domains: OrgDomains,
}

/// Per-mailbox state: ids of the last alerts, to give one alert per message. One pointer,
/// null until the mailbox has had a classified-mail alert. Serialized as
/// `{"recent": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "Recent", into = "Recent")]
pub struct State(Option<Box<Recent>>);

/// The list behind [`State`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Recent {
    recent: Vec<String>,
}

impl From<Recent> for State {
    fn from(r: Recent) -> Self {
        State(Some(Box::new(r)).filter(|r| !r.recent.is_empty()))
    }
}

impl From<State> for Recent {
    fn from(st: State) -> Self {
        st.0.map(|b| *b).unwrap_or_default()
    }
}

impl Detector for ClassifiedMail {
    type State = State;
    const ROLES: Roles = Roles::CLASSIFIED_OWNER;

    fn new(s: &Settings) -> Self {
        ClassifiedMail {
            approved: s.approved.clone(),
            exempt_internal: s.config.classification.exempt_internal,
            domains: s.domains.clone(),
        }
    }

    fn on_event(&self, _ctx: &Ctx, mb: Mailbox, st: &mut State, ev: &Routed, out: &mut Vec<Alert>) {
        let EventBody::Message(m) = &ev.event.body else { return };
        if !ev.roles.has(Roles::CLASSIFIED_OWNER) {
            return;
        }
        let Some(severity) = self.violation(m) else { return };
        let key = if m.message_id.is_empty() { ev.event.source.to_string() } else { m.message_id.to_string() };
        let level = m.classification.unwrap_or_default().to_string();
        let id = alert_id(&[Rule::ClassifiedMail.as_str(), &key, &level]);
        let recent = &mut st.0.get_or_insert_with(Box::default).recent;
        if recent.contains(&id) {
            return;
        }
        if recent.len() >= RECENT {
            recent.remove(0);
        }
        recent.push(id.clone());
        out.push(mb.open(Rule::ClassifiedMail, severity, id, ev.event.time, evidence(&ev.event, m)));
    }

    fn is_idle(st: &State) -> bool {
        st.0.as_ref().is_none_or(|r| r.recent.is_empty())
    }
}

impl ClassifiedMail {
    /// The severity of the breach, if the message breaks the rule.
    fn violation(&self, m: &MailMessage) -> Option<Severity> {
        match m.classification? {
            3 => Some(Severity::Critical),
            2 if !self.approved.contains(&m.encryption) && !self.exempt(m) => Some(Severity::High),
            _ => None,
        }
    }

    fn exempt(&self, m: &MailMessage) -> bool {
        self.exempt_internal && std::iter::once(&m.sender).chain(&m.recipients).all(|a| self.domains.is_internal(a))
    }
}

fn evidence(ev: &Event, m: &MailMessage) -> Evidence {
    Evidence {
        message_id: Some(m.message_id.to_string()),
        classification: m.classification,
        encryption: Some(m.encryption.to_string()),
        targets: m.recipients.iter().map(Text::to_string).collect(),
        ..evidence_of(ev)
    }
}
