//! The router: decides which mailboxes an event concerns and what it means for each.
//!
//! Two parts. The [`Resolver`] needs nothing but the configuration and the roster, so it
//! runs wherever the event is decoded (the decode pool's threads, while the event's strings
//! are still in that core's cache). The [`Router`] runs on one thread, in stream order, so
//! its own small state — delegations granted and removed by `mailbox.delegation` events —
//! evolves deterministically; it completes what the resolver routed with what depends on
//! that state ([`Router::complete`]), or routes the whole event itself ([`Router::route`]).
//! Both ways give the same copies. Guarantees:
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
use crate::detect::{concerns_a_rule, MailboxId, Roles, Routed};
use crate::decode::Interest;
use crate::domains::InternalCache;
use crate::event::{addr, AccessResult, DelegationChange, Event, EventBody, ForwardingChange, GrantState, MailMessage, MailboxAccess, ProxyRequest};
use crate::roster::Roster;

/// What the router remembers between events (checkpointed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterState {
    /// Delegations granted by events and not removed: mailbox → users.
    pub delegates: BTreeMap<String, BTreeSet<String>>,
}

/// user → mailboxes delegated to them. Looked up for every proxy request, so hashed with
/// foldhash (randomly seeded) rather than SipHash, which `perf` found on the stage thread.
type DelegatedTo = HashMap<String, BTreeSet<String>, foldhash::fast::RandomState>;

/// user → mailboxes delegated to them.
fn reverse(state: &RouterState) -> DelegatedTo {
    let mut delegated_to = DelegatedTo::default();
    for (mailbox, users) in &state.delegates {
        for u in users {
            delegated_to.entry(u.clone()).or_default().insert(mailbox.clone());
        }
    }
    delegated_to
}

/// The stateless part of routing: resolves an event's addresses to mailboxes inside the
/// organisation and the roles that follow from the event and the roster alone.
pub struct Resolver {
    settings: Arc<Settings>,
    roster: Arc<Roster>,
    /// Inside-or-outside answers by domain (a cache: routing takes `&self` in its parts).
    domains: RefCell<InternalCache>,
}

impl Resolver {
    /// A resolver over the configuration and roster.
    pub fn new(settings: Arc<Settings>, roster: Arc<Roster>) -> Self {
        Resolver { settings, roster, domains: RefCell::default() }
    }

    /// The roster this resolver routes with (mailboxes named by roster position refer to it).
    pub fn roster(&self) -> &Arc<Roster> {
        &self.roster
    }

    /// Appends the copies of `ev` that need no router state to `out`: those that can
    /// matter to a rule ([`concerns_a_rule`]; a message delivered to a roster mailbox,
    /// most of the mail, makes none).
    pub fn route(&self, ev: &Arc<Event>, out: &mut Vec<Routed>) {
        let mut t = Targets { start: out.len(), out, event: ev };
        match &ev.body {
            EventBody::Message(m) => self.message(m, &mut t),
            EventBody::Forwarding(f) => self.forwarding(f, &mut t),
            EventBody::Access(a) => self.access(a, local_day(ev.time), &mut t),
            EventBody::Proxy(p) => self.proxy(p, local_day(ev.time), &mut t),
            EventBody::Delegation(_) => {}
        }
        t.keep_those_that_concern_a_rule();
    }

    /// Whether [`Router::complete`] may add a copy of `ev` or learn from it: a delegation
    /// change, a successful access (its user may be a delegate granted by an event) or a
    /// webmail request. An event that is none of these and that [`Resolver::route`] routed
    /// nowhere concerns no mailbox: the stage needs only its time and type.
    pub fn may_complete(&self, ev: &Event) -> bool {
        match &ev.body {
            EventBody::Delegation(_) => true,
            EventBody::Access(a) => a.result == AccessResult::Success,
            EventBody::Proxy(p) => self.webmail_user(p).is_some(),
            EventBody::Message(_) | EventBody::Forwarding(_) => false,
        }
    }

    /// The mailbox of an address inside the organisation: its primary address, and its
    /// roster position when it is on the roster.
    fn local<'a>(&'a self, address: &'a str) -> Option<(&'a str, Option<u32>)> {
        self.is_internal(address).then(|| self.roster.resolve(address))
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

    /// A successful access by someone the roster entitles (owner, roster delegate, member).
    fn access(&self, a: &MailboxAccess, day: NaiveDate, t: &mut Targets) {
        if a.result != AccessResult::Success {
            return;
        }
        if let Some(mb) = self.local(&a.mailbox) {
            if self.roster_may_read(mb, &a.user, day) {
                t.add(mb, Roles::READ);
            }
        }
    }

    /// Webmail use: a read of the user's own mailbox and of those the roster lets them read.
    fn proxy(&self, p: &ProxyRequest, day: NaiveDate, t: &mut Targets) {
        let Some(user) = self.webmail_user(p) else { return };
        let own = self.local(user).filter(|_| user.bytes().any(|b| b == b'@'));
        // The user's own mailbox is among those the roster lets them read: not read twice.
        let own_position = own.and_then(|(_, p)| p);
        let rostered = self.roster.readable_at(user).filter(|(p, e)| Some(*p) != own_position && e.relation(user, day).is_some()).map(|(p, e)| (e.address.as_str(), Some(p)));
        for mb in own.into_iter().chain(rostered) {
            t.add(mb, Roles::READ);
        }
    }

    /// The user of a successful webmail request.
    fn webmail_user<'e>(&self, p: &'e ProxyRequest) -> Option<&'e str> {
        p.user.as_deref().filter(|_| self.is_webmail_use(&p.host, &p.path, p.status))
    }

    /// Whether a request to `host` and `path` answered with `status` is successful webmail use.
    fn is_webmail_use(&self, host: &str, path: &str, status: u16) -> bool {
        status < 400 && self.settings.config.reading.webmail.iter().any(|w| w.host.eq_ignore_ascii_case(host) && path.starts_with(&w.path_prefix))
    }

    /// Whether the roster lets `user` read `mailbox` (as [`Resolver::local`] resolved it) on `day`.
    /// The owner's own read needs no look at the roster entry (likely not in the cache).
    fn roster_may_read(&self, (mailbox, position): (&str, Option<u32>), user: &str, day: NaiveDate) -> bool {
        user == mailbox || position.and_then(|p| self.roster.entries().get(p as usize)).is_some_and(|e| e.relation(user, day).is_some())
    }
}

/// The decode pool decodes with the resolver it routes with: a message delivered only to
/// roster mailboxes, outside addresses or local names without a domain, unclassified and
/// not re-addressed, and a proxy request that is not webmail use, would be routed nowhere
/// ([`Resolver::route`]), so they are not built.
impl Interest for Resolver {
    fn ignores_delivery_to(&self, recipient: &str) -> bool {
        // Judged only in its normal form (as decoding would give it), else built. A local
        // address with a domain gets a `RECIPIENT` copy (`message`), kept if it concerns a rule.
        let copy = |(_, position): (&str, Option<u32>)| concerns_a_rule(position.is_some(), Roles::RECIPIENT) && recipient.bytes().any(|b| b == b'@');
        addr::is_normal(recipient) && !self.local(recipient).is_some_and(copy)
    }

    /// A request that is not successful webmail use by a user is routed nowhere and
    /// completes nothing ([`Resolver::may_complete`]).
    fn ignores_request(&self, host: &str, path: &str, status: u16, by_user: bool) -> bool {
        !(by_user && self.is_webmail_use(host, path, status))
    }
}

/// Routes events to mailboxes, in stream order.
pub struct Router {
    resolver: Resolver,
    state: RouterState,
    /// The reverse of `state.delegates`: user → mailboxes.
    delegated_to: DelegatedTo,
}

impl Router {
    /// A router over the configuration and roster, continuing from `state`.
    pub fn new(settings: Arc<Settings>, roster: Arc<Roster>, state: RouterState) -> Self {
        let delegated_to = reverse(&state);
        Router { resolver: Resolver::new(settings, roster), state, delegated_to }
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
        self.resolver = Resolver::new(self.resolver.settings.clone(), roster);
    }

    /// The state to checkpoint.
    pub fn state(&self) -> &RouterState {
        &self.state
    }

    /// The roster this router routes with (mailboxes named by roster position refer to it).
    pub fn roster(&self) -> &Arc<Roster> {
        self.resolver.roster()
    }

    /// Appends the routed copies of `ev` to `out`.
    pub fn route(&mut self, ev: &Arc<Event>, out: &mut Vec<Routed>) {
        let start = out.len();
        self.resolver.route(ev, out);
        self.complete(ev, start, out);
    }

    /// Completes the copies of `ev` that a [`Resolver`] over this router's roster put in
    /// `out` from `start` on: adds what depends on delegations granted by events, and
    /// applies a delegation change.
    pub fn complete(&mut self, ev: &Arc<Event>, start: usize, out: &mut Vec<Routed>) {
        let mut t = Targets { start, out, event: ev };
        match &ev.body {
            EventBody::Access(a) => self.delegate_access(a, &mut t),
            EventBody::Proxy(p) => self.delegate_proxy(p, &mut t),
            EventBody::Delegation(d) => self.delegation(d),
            EventBody::Message(_) | EventBody::Forwarding(_) => {}
        }
    }

    /// A successful access by a delegate that an event granted (when the roster alone
    /// did not make it a read).
    fn delegate_access(&self, a: &MailboxAccess, t: &mut Targets) {
        let read_already = t.out.len() > t.start;
        if a.result != AccessResult::Success || self.state.delegates.is_empty() || read_already {
            return;
        }
        if let Some(mb) = self.resolver.local(&a.mailbox) {
            if self.state.delegates.get(mb.0).is_some_and(|d| d.contains(a.user.as_str())) {
                t.add(mb, Roles::READ);
            }
        }
    }

    /// Webmail use by a delegate that an event granted: a read of each delegated mailbox.
    fn delegate_proxy(&self, p: &ProxyRequest, t: &mut Targets) {
        // Whether the user is a delegate is asked first: most are not, and the answer then
        // needs neither the request's host nor its path (likely not in this core's cache).
        let Some(granted) = p.user.as_deref().and_then(|u| self.delegated_to.get(u)).filter(|_| self.resolver.webmail_user(p).is_some()) else { return };
        for m in granted {
            t.add(self.resolver.roster.resolve(m), Roles::READ);
        }
    }

    fn delegation(&mut self, d: &DelegationChange) {
        let mailbox = self.resolver.roster.canonical(&d.mailbox).to_string();
        match d.state {
            GrantState::Granted => {
                self.state.delegates.entry(mailbox.clone()).or_default().insert(d.delegate.to_string());
                self.delegated_to.entry(d.delegate.to_string()).or_default().insert(mailbox);
            }
            GrantState::Removed => {
                self.state.delegates.entry(mailbox.clone()).or_default().remove(d.delegate.as_str());
                self.delegated_to.entry(d.delegate.to_string()).or_default().remove(&mailbox);
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
    /// Drops the event's copies that no rule acts on, keeping the others in order.
    fn keep_those_that_concern_a_rule(&mut self) {
        let mut kept = self.start;
        for i in self.start..self.out.len() {
            let r = &self.out[i];
            if concerns_a_rule(matches!(r.mailbox, MailboxId::Roster(_)), r.roles) {
                self.out.swap(kept, i);
                kept += 1;
            }
        }
        self.out.truncate(kept);
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{DecodeOptions, Format};
    use crate::event::SourcePos;
    use crate::roster::RosterEntry;

    const ANNA: &str = "anna@exempel.se";
    const BO: &str = "bo@exempel.se";

    fn events(lines: &[String]) -> Vec<Arc<Event>> {
        let mut decoder = Format::Normalized.decoder(&DecodeOptions::default());
        let mut out = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            decoder.decode(l.as_bytes(), &SourcePos::line("t".into(), i as u64 + 1), &mut out).unwrap();
        }
        out.into_iter().map(Arc::new).collect()
    }

    fn delegation(state: &str) -> String {
        format!(r#"{{"type":"mailbox.delegation","time":"2026-03-02T08:00:00+01:00","mailbox":"{ANNA}","delegate":"{BO}","state":"{state}"}}"#)
    }

    fn access(user: &str) -> String {
        format!(r#"{{"type":"mailbox.access","time":"2026-03-02T09:00:00+01:00","mailbox":"{ANNA}","user":"{user}","protocol":"owa","result":"success"}}"#)
    }

    fn webmail(user: &str) -> String {
        format!(r#"{{"type":"proxy.request","time":"2026-03-02T09:30:00+01:00","user":"{user}","host":"webmail.exempel.se","path":"/owa/","method":"GET","status":200}}"#)
    }

    /// Reads of anna's mailbox routed to it, and the mailboxes bo's webmail use reads.
    fn reads(copies: &[Routed], roster: &Roster) -> Vec<String> {
        copies.iter().filter(|r| r.roles.has(Roles::READ)).map(|r| r.mailbox.address(roster).to_string()).collect()
    }

    /// A message merely delivered to a roster mailbox matters to no rule: it makes no copy.
    /// Delivered to a mailbox off the roster it does (it may make that mailbox a discovered
    /// one, and keeps its state from expiring), and a roster mailbox answering for a
    /// classified message, or forwarding one out, gets the copy its rule acts on.
    #[test]
    fn mail_merely_delivered_to_a_roster_mailbox_makes_no_copy() {
        let settings = Arc::new(Settings::default_settings());
        let roster = Arc::new(Roster::new(vec![RosterEntry { address: ANNA.into(), owners: vec![ANNA.into()], ..RosterEntry::default() }]));
        let resolver = Resolver::new(settings, roster.clone());
        let message = |to: &str, extra: &str| format!(r#"{{"type":"mail.message","time":"2026-03-02T08:00:00+01:00","message_id":"m","sender":"x@gmail.com","recipients":["{to}"],"direction":"inbound","action":"deliver"{extra}}}"#);
        let lines = [
            message(ANNA, ""),
            message(BO, ""),
            message(ANNA, r#","classification":2"#),
            format!(r#"{{"type":"mail.message","time":"2026-03-02T08:00:00+01:00","message_id":"m","sender":"x@gmail.com","recipients":["y@gmail.com"],"original_recipient":"{ANNA}","direction":"outbound","action":"forward"}}"#),
        ];
        let copies: Vec<Vec<(String, Roles)>> = events(&lines)
            .iter()
            .map(|ev| {
                let mut out = Vec::new();
                resolver.route(ev, &mut out);
                out.iter().map(|r| (r.mailbox.address(&roster).to_string(), r.roles)).collect()
            })
            .collect();
        // The decode pool does not even build what would make no copy; an address not in
        // its normal form is built and judged by the route above.
        let ignored: Vec<bool> = [ANNA, "y@gmail.com", "anna", BO, "Anna@exempel.se", " anna@exempel.se"].iter().map(|r| resolver.ignores_delivery_to(r)).collect();
        assert_eq!(ignored, [true, true, true, false, false, false]);
        let forwarded = Roles::FORWARDED_FOR.with(Roles::RECIPIENT);
        assert_eq!(copies, [vec![], vec![(BO.into(), Roles::RECIPIENT)], vec![(ANNA.into(), Roles::CLASSIFIED_OWNER.with(Roles::RECIPIENT))], vec![(ANNA.into(), forwarded)]]);
    }

    /// The decode pool routes with a resolver and the stage's router completes the copies;
    /// a delegate granted by an event reads anna's mailbox (through IMAP and webmail) until
    /// the grant is removed. Both ways must give the same copies, event by event.
    #[test]
    fn a_delegate_granted_by_an_event_reads_the_same_whether_the_pool_or_the_router_routes() {
        let settings = Arc::new(Settings::default_settings());
        let entry = |a: &str| RosterEntry { address: a.into(), owners: vec![a.into()], ..RosterEntry::default() };
        let roster = Arc::new(Roster::new(vec![entry(ANNA), entry(BO)]));
        let lines = [access(BO), delegation("granted"), access(BO), webmail(BO), access(ANNA), delegation("removed"), access(BO), webmail(BO)];
        let (mut whole, mut completing) = (Router::new(settings.clone(), roster.clone(), RouterState::default()), Router::new(settings.clone(), roster.clone(), RouterState::default()));
        let resolver = Resolver::new(settings, roster.clone());
        let mut seen = Vec::new();
        for ev in events(&lines) {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            whole.route(&ev, &mut a);
            resolver.route(&ev, &mut b);
            completing.complete(&ev, 0, &mut b);
            let key = |c: &[Routed]| c.iter().map(|r| (r.mailbox.clone(), r.roles)).collect::<Vec<_>>();
            assert_eq!(key(&a), key(&b), "{:?}", ev.body);
            seen.push(reads(&a, &roster));
        }
        let (none, anna, both, bo) = (Vec::<String>::new(), vec![ANNA.to_string()], vec![BO.to_string(), ANNA.to_string()], vec![BO.to_string()]);
        assert_eq!(seen, [none.clone(), none.clone(), anna.clone(), both, anna, none.clone(), none, bo]);
    }
}
