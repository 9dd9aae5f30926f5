//! One shard: the mailboxes it owns and their state, updated by one thread without locks.
//!
//! Guarantees: every routed event updates exactly its mailbox's state; on `Close` every
//! mailbox of the shard — including roster mailboxes never seen in the stream — is
//! judged once per day, in day order. Not guaranteed here: durability (see checkpoints).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{Days, NaiveDate};

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
        for e in self.roster.entries() {
            if shard_of(&e.address, self.count) == self.index && !self.mailboxes.contains_key(e.address.as_str()) {
                self.mailboxes.insert(e.address.as_str().into(), MailboxState::default());
            }
        }
    }

    fn close_day(&mut self, day: NaiveDate) {
        let required = self.settings.calendar.is_required(day).unwrap_or(false);
        let Some(ctx) = ctx(&self.settings, self.closed_through, self.first_day) else { return };
        for (address, st) in self.mailboxes.iter_mut() {
            let mb = Mailbox { address, entry: self.roster.get(address) };
            self.detectors.on_day_closed(&ctx, mb, st, day, required, &mut self.scratch);
        }
        self.closed_through = Some(day);
    }
}

/// The detectors' context once the stream's start is known.
fn ctx(settings: &Settings, closed_through: Option<NaiveDate>, first_day: Option<NaiveDate>) -> Option<Ctx<'_>> {
    let first_open_day = closed_through?.checked_add_days(Days::new(1))?;
    Some(Ctx { settings, first_open_day, first_day: first_day? })
}
