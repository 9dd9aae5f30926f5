//! The router: decides which mailboxes an event concerns and what it means for each.
//!
//! Runs on one thread, in stream order, so its own small state — delegations granted and
//! removed by `mailbox.delegation` events — evolves deterministically. Guarantees:
//! - addresses are resolved to the mailbox's primary address (roster aliases);
//! - only mailboxes inside the organisation are routed to;
//! - a read counts (`READ`) only when the accessing user is the owner, a delegate (roster,
//!   roster exemption with delegate, or a granted delegation) or a member, the access
//!   succeeded, or — for proxy entries — the request hit a configured webmail route with a
//!   status below 400;
//! - one event is routed at most once per mailbox, with all its roles merged.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::calendar::local_day;
use crate::config::Settings;
use crate::detect::{MailboxId, Roles, Routed};
use crate::domains::InternalCache;
use crate::event::{AccessResult, DelegationChange, Event, EventBody, ForwardingChange, GrantState, MailMessage, MailboxAccess, ProxyRequest};
use crate::roster::Roster;

/// What the router remembers between events (checkpointed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterState {
    /// Delegations granted by events and not removed: mailbox → users.
    pub delegates: BTreeMap<String, BTreeSet<String>>,
}

/// user → mailboxes delegated to them.
fn reverse(state: &RouterState) -> HashMap<String, BTreeSet<String>> {
    let mut delegated_to: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (mailbox, users) in &state.delegates {
        for u in users {
            delegated_to.entry(u.clone()).or_default().insert(mailbox.clone());
        }
    }
    delegated_to
}

/// Routes events to mailboxes.
pub struct Router {
    settings: Arc<Settings>,
    roster: Arc<Roster>,
    state: RouterState,
    /// The reverse of `state.delegates`: user → mailboxes.
    delegated_to: HashMap<String, BTreeSet<String>>,
    /// Inside-or-outside answers by domain (a cache: `route` takes `&self` in its parts).
    domains: RefCell<InternalCache>,
}

impl Router {
    /// A router over the configuration and roster, continuing from `state`.
    pub fn new(settings: Arc<Settings>, roster: Arc<Roster>, state: RouterState) -> Self {
        let delegated_to = reverse(&state);
        Router { settings, roster, state, delegated_to, domains: RefCell::default() }
    }

    /// Takes on the delegations of a partition taken over (they replace what is known of
    /// its mailboxes).
    pub fn take_over(&mut self, state: &RouterState) {
        self.state.delegates.extend(state.delegates.iter().map(|(m, u)| (m.clone(), u.clone())));
        self.delegated_to = reverse(&self.state);
    }

    /// Keeps only the delegations of mailboxes for which `keep` is true (partitions given up).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.state.delegates.retain(|m, _| keep(m));
        self.delegated_to = reverse(&self.state);
    }

    /// Uses a reloaded roster from the next event on.
    pub fn set_roster(&mut self, roster: Arc<Roster>) {
        self.roster = roster;
    }

    /// The state to checkpoint.
    pub fn state(&self) -> &RouterState {
        &self.state
    }

    /// Appends the routed copies of `ev` to `out`.
    pub fn route(&mut self, ev: &Arc<Event>, out: &mut Vec<Routed>) {
        let mut t = Targets { start: out.len(), out, event: ev };
        match &ev.body {
            EventBody::Message(m) => self.message(m, &mut t),
            EventBody::Forwarding(f) => self.forwarding(f, &mut t),
            EventBody::Access(a) => self.access(a, local_day(ev.time), &mut t),
            EventBody::Proxy(p) => self.proxy(p, local_day(ev.time), &mut t),
            EventBody::Delegation(d) => self.delegation(d),
        }
    }

    /// The mailbox of an address inside the organisation: its primary address, and its
    /// roster position when it is on the roster.
    fn local<'a>(&'a self, address: &'a str) -> Option<(&'a str, Option<u32>)> {
        self.is_internal(address).then(|| self.roster.resolve(address))
    }

    /// The roster this router routes with (mailboxes named by roster position refer to it).
    pub fn roster(&self) -> &Roster {
        &self.roster
    }

    fn is_internal(&self, address: &str) -> bool {
        self.domains.borrow_mut().is_internal(&self.settings.domains, address)
    }

    fn message(&self, m: &MailMessage, t: &mut Targets) {
        let mut forwarded_out = false;
        for r in &m.recipients {
            match self.local(r) {
                Some(mb) if r.bytes().any(|b| b == b'@') => t.add(mb, Roles::RECIPIENT),
                Some(_) => {}
                None => forwarded_out = true,
            }
        }
        if let Some(orig) = m.original_recipient.as_deref().filter(|_| forwarded_out) {
            if let Some(mb) = self.local(orig) {
                t.add(mb, Roles::RECIPIENT);
                t.add(mb, Roles::FORWARDED_FOR);
            }
        }
        if m.classification.is_some() {
            let owner = std::iter::once(&m.sender).chain(m.original_recipient.iter()).chain(&m.recipients).find_map(|a| self.local(a));
            if let Some(mb) = owner {
                t.add(mb, Roles::CLASSIFIED_OWNER);
            }
        }
    }

    fn forwarding(&self, f: &ForwardingChange, t: &mut Targets) {
        match (&f.mailbox, &f.rule) {
            (Some(mb), _) => t.add(self.roster.resolve(mb), Roles::CONFIG),
            (None, rule) => t.add((&format!("transport-rule:{}", rule.as_deref().unwrap_or_default()), None), Roles::CONFIG),
        }
    }

    fn access(&self, a: &MailboxAccess, day: NaiveDate, t: &mut Targets) {
        if a.result != AccessResult::Success {
            return;
        }
        if let Some(mb) = self.local(&a.mailbox) {
            if self.may_read(mb, &a.user, day) {
                t.add(mb, Roles::READ);
            }
        }
    }

    fn proxy(&self, p: &ProxyRequest, day: NaiveDate, t: &mut Targets) {
        let Some(user) = p.user.as_deref() else { return };
        if p.status >= 400 || !self.is_webmail(p) {
            return;
        }
        let own = self.local(user).filter(|_| user.bytes().any(|b| b == b'@'));
        let rostered = self.roster.readable_at(user).filter(|(_, e)| e.relation(user, day).is_some()).map(|(p, e)| (e.address.as_str(), Some(p)));
        let granted = self.delegated_to.get(user).into_iter().flatten().map(|m| self.roster.resolve(m));
        for mb in own.into_iter().chain(rostered).chain(granted) {
            t.add(mb, Roles::READ);
        }
    }

    fn is_webmail(&self, p: &ProxyRequest) -> bool {
        self.settings.config.reading.webmail.iter().any(|w| w.host.eq_ignore_ascii_case(&p.host) && p.path.starts_with(&w.path_prefix))
    }

    /// Whether `user` may read `mailbox` (as [`Router::local`] resolved it) on `day`.
    fn may_read(&self, (mailbox, position): (&str, Option<u32>), user: &str, day: NaiveDate) -> bool {
        let by_roster = match position.and_then(|p| self.roster.entries().get(p as usize)) {
            Some(e) => e.relation(user, day).is_some(),
            None => user == mailbox,
        };
        by_roster || self.state.delegates.get(mailbox).is_some_and(|d| d.contains(user))
    }

    fn delegation(&mut self, d: &DelegationChange) {
        let mailbox = self.roster.canonical(&d.mailbox).to_string();
        match d.state {
            GrantState::Granted => {
                self.state.delegates.entry(mailbox.clone()).or_default().insert(d.delegate.clone());
                self.delegated_to.entry(d.delegate.clone()).or_default().insert(mailbox);
            }
            GrantState::Removed => {
                self.state.delegates.entry(mailbox.clone()).or_default().remove(&d.delegate);
                self.delegated_to.entry(d.delegate.clone()).or_default().remove(&mailbox);
            }
        }
    }
}

/// The routed copies of one event being collected in the caller's vector: one per
/// mailbox, with its roles merged (no allocation but the copies' own).
struct Targets<'o> {
    out: &'o mut Vec<Routed>,
    /// Where this event's copies start in `out`.
    start: usize,
    event: &'o Arc<Event>,
}

impl Targets<'_> {
    /// Adds a role for a mailbox (its primary address, and its roster position when it is
    /// on the roster: every path gives it then, so one mailbox has one [`MailboxId`]),
    /// merging with an existing copy.
    fn add(&mut self, (mailbox, roster): (&str, Option<u32>), role: Roles) {
        let same = |r: &&mut Routed| match (&r.mailbox, roster) {
            (MailboxId::Roster(p), Some(q)) => *p == q,
            (MailboxId::Address(a), None) => **a == *mailbox,
            _ => false,
        };
        match self.out[self.start..].iter_mut().find(same) {
            Some(r) => r.roles.insert(role),
            None => {
                let mailbox = roster.map_or_else(|| MailboxId::Address(mailbox.into()), MailboxId::Roster);
                self.out.push(Routed { mailbox, roles: role, event: self.event.clone() });
            }
        }
    }
}
