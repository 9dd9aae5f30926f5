//! One shard: the mailboxes it owns and their state, updated by one thread without locks.
//!
//! Guarantees: every routed event updates exactly its mailbox's state; on `Close` every
//! mailbox of the shard — including roster mailboxes never seen in the stream — is
//! judged once per day, in day order. After each closed day, the state of mailboxes that
//! are not on the roster, not on legal hold and have seen no event for `state.retention`
//! is dropped. Durability: [`Shard::export`] and [`Shard::restore`] give the state to and
//! take it from a checkpoint (see `checkpoint`).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{Days, NaiveDate};

use super::checkpoint::Checkpoint;
use super::{shard_of, Item, Ordered};
use crate::alert::Alert;
use crate::config::Settings;
use crate::detect::{Ctx, Detectors, Mailbox, MailboxState, Routed};
use crate::roster::Roster;

/// A shard of mailbox state.
pub struct Shard {
    index: usize,
    count: usize,
    settings: Arc<Settings>,
    roster: Arc<Roster>,
    detectors: Detectors,
    mailboxes: HashMap<Box<str>, MailboxState>,
    /// The last closed day; `None` until the stream's start is known.
    closed_through: Option<NaiveDate>,
    first_day: Option<NaiveDate>,
    scratch: Vec<Alert>,
}

impl Shard {
    /// Shard `index` of `count`.
    pub fn new(index: usize, count: usize, settings: Arc<Settings>, roster: Arc<Roster>) -> Self {
        let detectors = Detectors::new(&settings);
        Shard { index, count, settings, roster, detectors, mailboxes: HashMap::new(), closed_through: None, first_day: None, scratch: Vec::new() }
    }

    /// Takes on the mailboxes of a checkpoint that belong to this shard.
    pub fn restore(&mut self, cp: &Checkpoint) {
        self.closed_through = cp.closed_through;
        self.first_day = cp.first_day;
        for (address, st) in &cp.mailboxes {
            if shard_of(address, self.count) == self.index {
                self.mailboxes.insert(address.as_str().into(), st.clone());
            }
        }
    }

    /// A copy of every mailbox's state, for a checkpoint.
    pub fn export(&self) -> Vec<(String, MailboxState)> {
        self.mailboxes.iter().map(|(a, st)| (a.to_string(), st.clone())).collect()
    }

    /// The last closed day and the stream's first day.
    pub fn days(&self) -> (Option<NaiveDate>, Option<NaiveDate>) {
        (self.closed_through, self.first_day)
    }

    /// Mailboxes tracked.
    pub fn len(&self) -> usize {
        self.mailboxes.len()
    }

    /// True when no mailbox is tracked.
    pub fn is_empty(&self) -> bool {
        self.mailboxes.is_empty()
    }

    /// Applies one item, appending the alerts it causes.
    pub fn apply(&mut self, item: Item, out: &mut Vec<Ordered>) {
        match item {
            Item::Event { seq, routed } => {
                self.on_event(&routed);
                out.extend(self.scratch.drain(..).map(|alert| Ordered { seq, phase: 0, alert }));
            }
            Item::Close { seq, through } => {
                self.close_through(through);
                out.extend(self.scratch.drain(..).map(|alert| Ordered { seq, phase: 1, alert }));
            }
        }
    }

    fn on_event(&mut self, r: &Routed) {
        if !self.mailboxes.contains_key(&r.mailbox) {
            self.mailboxes.insert(r.mailbox.clone(), MailboxState::default());
        }
        let Some(ctx) = ctx(&self.settings, self.closed_through, self.first_day) else { return };
        let st = self.mailboxes.get_mut(&r.mailbox).expect("inserted above");
        st.last_seen = st.last_seen.max(Some(r.event.time.date_naive()));
        let mb = Mailbox { address: &r.mailbox, entry: self.roster.get(&r.mailbox) };
        self.detectors.on_event(&ctx, mb, st, r, &mut self.scratch);
    }

    fn close_through(&mut self, through: NaiveDate) {
        let Some(last) = self.closed_through else {
            self.start(through);
            return;
        };
        for day in last.iter_days().skip(1).take_while(|d| *d <= through) {
            self.close_day(day);
        }
    }

    /// Sets the starting point and takes on the shard's roster mailboxes.
    fn start(&mut self, before_first: NaiveDate) {
        self.closed_through = Some(before_first);
        self.first_day = before_first.checked_add_days(Days::new(1));
        self.adopt_roster();
    }

    /// Creates state for roster mailboxes of this shard that have none (at the start, and
    /// after a restore or a roster change).
    fn adopt_roster(&mut self) {
        for e in self.roster.entries() {
            if shard_of(&e.address, self.count) == self.index && !self.mailboxes.contains_key(e.address.as_str()) {
                self.mailboxes.insert(e.address.as_str().into(), MailboxState::default());
            }
        }
    }

    fn close_day(&mut self, day: NaiveDate) {
        self.adopt_roster();
        let required = self.settings.calendar.is_required(day).unwrap_or(false);
        let Some(ctx) = ctx(&self.settings, self.closed_through, self.first_day) else { return };
        for (address, st) in self.mailboxes.iter_mut() {
            let mb = Mailbox { address, entry: self.roster.get(address) };
            self.detectors.on_day_closed(&ctx, mb, st, day, required, &mut self.scratch);
        }
        self.closed_through = Some(day);
        self.expire(day);
    }

    /// Drops the state of discovered mailboxes idle beyond the retention.
    fn expire(&mut self, today: NaiveDate) {
        let retention = Days::new(self.settings.config.state.retention.as_secs() / 86_400);
        let Some(cutoff) = today.checked_sub_days(retention) else { return };
        let (roster, hold) = (&self.roster, &self.settings.config.state.legal_hold);
        self.mailboxes.retain(|address, st| {
            st.last_seen.is_none_or(|d| d >= cutoff) || roster.get(address).is_some() || hold.iter().any(|h| h.eq_ignore_ascii_case(address))
        });
    }
}

/// The detectors' context once the stream's start is known.
fn ctx(settings: &Settings, closed_through: Option<NaiveDate>, first_day: Option<NaiveDate>) -> Option<Ctx<'_>> {
    let first_open_day = closed_through?.checked_add_days(Days::new(1))?;
    Some(Ctx { settings, first_open_day, first_day: first_day? })
}
