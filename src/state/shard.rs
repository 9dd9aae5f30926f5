//! One shard: the mailboxes it owns and their state, updated by one thread without locks.
//!
//! Guarantees: every routed event updates exactly its mailbox's state; on `Close` every
//! mailbox of the shard — including roster mailboxes never seen in the stream — is
//! judged once per day, in day order. After each closed day, the state of mailboxes that
//! are not on the roster, not on legal hold and have seen no event for `state.retention`
//! is dropped. Durability: [`Shard::export`] and [`Shard::restore`] give the state to and
//! take it from a checkpoint (see `checkpoint`).
//!
//! With several instances in a consumer group ([`Ownership`]): only owned mailboxes are
//! adopted from the roster and judged; a partition given up drops its mailboxes (after the
//! checkpoint that hands them over), and a partition taken over brings its checkpointed
//! mailboxes, whose days between the old owner's last close and this shard's are judged
//! as the partition's own records pass them ([`Item::CatchUp`]), never before: a partition
//! taken over behind the others (its old owner was down, or it was assigned late) would
//! otherwise be judged on days whose reads it has not delivered yet. A day closed for the
//! whole shard judges every pending day before it first. Each mailbox judges a day at most
//! once, so nothing is judged twice.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use chrono::{Days, NaiveDate};

use super::checkpoint::Checkpoint;
use super::ownership::Ownership;
use super::{shard_of, Item, Ordered};
use crate::alert::Alert;
use crate::config::Settings;
use crate::detect::{Ctx, Detectors, Mailbox, MailboxId, MailboxState, Routed};
use crate::roster::Roster;

/// A shard of mailbox state.
pub struct Shard {
    index: usize,
    count: usize,
    settings: Arc<Settings>,
    roster: Arc<Roster>,
    detectors: Detectors,
    mailboxes: Table,
    /// The last closed day; `None` until the stream's start is known.
    closed_through: Option<NaiveDate>,
    first_day: Option<NaiveDate>,
    scratch: Vec<Alert>,
    /// The mailboxes this instance owns; `None`: all of them (a single instance).
    ownership: Option<Arc<Ownership>>,
    /// Restored mailboxes with days still to be judged up to `closed_through`.
    catch_up: HashMap<Box<str>, CatchUp>,
    /// Per partition taken over: the last day its records have completed since.
    partition_through: HashMap<u32, NaiveDate>,
}

/// A restored mailbox's partition and the first day it has not been judged on (its events
/// count for that day on, too).
#[derive(Clone, Copy)]
struct CatchUp {
    partition: u32,
    next: NaiveDate,
}

impl Shard {
    /// Shard `index` of `count`.
    pub fn new(index: usize, count: usize, settings: Arc<Settings>, roster: Arc<Roster>) -> Self {
        let detectors = Detectors::new(&settings);
        Shard { index, count, settings, roster, detectors, mailboxes: Table::default(), closed_through: None, first_day: None, scratch: Vec::new(), ownership: None, catch_up: HashMap::new(), partition_through: HashMap::new() }
    }

    /// Takes on the mailboxes of a checkpoint that belong to this shard.
    pub fn restore(&mut self, cp: &Checkpoint) {
        self.closed_through = cp.closed_through;
        self.first_day = cp.first_day;
        for (address, st) in &cp.mailboxes {
            if shard_of(address, self.count) == self.index {
                self.put(address, st.clone());
            }
        }
    }

    /// A copy of every mailbox's state, for a checkpoint.
    pub fn export(&self) -> Vec<(String, MailboxState)> {
        self.mailboxes.entries.iter().map(|e| (e.address.to_string(), e.state.clone())).collect()
    }

    /// The last closed day and the stream's first day.
    pub fn days(&self) -> (Option<NaiveDate>, Option<NaiveDate>) {
        (self.closed_through, self.first_day)
    }

    /// Per partition with restored mailboxes not yet judged through the last closed day:
    /// the first day still to judge (a checkpoint of the partition must not claim it closed).
    pub fn behind(&self) -> BTreeMap<u32, NaiveDate> {
        let mut behind = BTreeMap::new();
        for c in self.catch_up.values() {
            let next = behind.entry(c.partition).or_insert(c.next);
            *next = (*next).min(c.next);
        }
        behind
    }

    /// Mailboxes tracked.
    pub fn len(&self) -> usize {
        self.mailboxes.entries.len()
    }

    /// True when no mailbox is tracked.
    pub fn is_empty(&self) -> bool {
        self.mailboxes.entries.is_empty()
    }

    /// Asks the core to start loading what applying `item` will read first (the mailbox's
    /// entry and the event), so a batch's items are applied from the cache.
    pub fn prefetch(&self, item: &Item) {
        let Item::Event { routed, .. } = item else { return };
        if let MailboxId::Roster(p) = routed.mailbox {
            if let Some(i) = self.mailboxes.on_roster(p) {
                crate::cache::prefetch(&self.mailboxes.entries[i]);
            }
        }
        crate::cache::prefetch(&*routed.event);
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
            Item::Roster(roster) => self.replace_roster(roster),
            Item::Own(ownership) => self.own(ownership),
            Item::CatchUp { seq, partition, through } => {
                let day = self.partition_through.entry(partition).or_insert(through);
                *day = (*day).max(through);
                self.judge_caught_up();
                out.extend(self.scratch.drain(..).map(|alert| Ordered { seq, phase: 1, alert }));
            }
            Item::Restore { seq, checkpoint } => {
                self.take_over(&checkpoint);
                out.extend(self.scratch.drain(..).map(|alert| Ordered { seq, phase: 1, alert }));
            }
        }
    }

    /// Takes on a new set of owned partitions: mailboxes of partitions given up are
    /// dropped (their checkpoint was written before this item), new roster mailboxes adopted.
    fn own(&mut self, ownership: Arc<Ownership>) {
        self.mailboxes.retain(|e| ownership.owns(&e.address));
        self.catch_up.retain(|a, _| ownership.owns(a));
        self.ownership = Some(ownership);
        if self.closed_through.is_some() {
            self.adopt_roster();
        }
    }

    fn owns(&self, address: &str) -> bool {
        self.ownership.as_ref().is_none_or(|o| o.owns(address))
    }

    /// Takes on the mailboxes of a partition checkpoint written by their previous owner;
    /// the days it had not judged that this shard has already closed are judged as the
    /// partition's records pass them.
    fn take_over(&mut self, cp: &Checkpoint) {
        let from = cp.closed_through.and_then(|d| d.checked_add_days(Days::new(1)));
        for p in cp.inputs.iter().filter_map(|i| crate::sources::kafka::parse_input_name(&i.name)) {
            self.partition_through.remove(&(p.1 as u32));
        }
        self.first_day = self.first_day.into_iter().chain(cp.first_day).min();
        for (address, st) in &cp.mailboxes {
            if shard_of(address, self.count) != self.index || !self.owns(address) {
                continue;
            }
            self.put(address, st.clone());
            if let Some(next) = from {
                let partition = self.ownership.as_ref().map_or(0, |o| o.partition_of(address));
                self.catch_up.insert(address.as_str().into(), CatchUp { partition, next });
            }
        }
        if self.closed_through.is_some() {
            self.judge_caught_up();
        }
    }

    /// Replaces (or creates) `address`'s state.
    fn put(&mut self, address: &str, st: MailboxState) {
        match self.mailboxes.find(address) {
            Some(i) => self.mailboxes.entries[i].state = st,
            None => {
                self.insert(address.into(), st);
            }
        }
    }

    /// Adds state for a mailbox not tracked yet, linked to its roster entry.
    fn insert(&mut self, address: Box<str>, st: MailboxState) -> usize {
        let (roster, primary) = roster_index(&self.roster, &address);
        self.mailboxes.insert(address, roster, primary, st)
    }

    /// Judges restored mailboxes from the first day they have not judged through the
    /// last day their partition has completed, at most this shard's last closed day; those
    /// judged through that day need no catching up any more.
    fn judge_caught_up(&mut self) {
        let Some(closed) = self.closed_through else { return };
        let mut pending = std::mem::take(&mut self.catch_up);
        for (address, c) in &mut pending {
            let Some(&through) = self.partition_through.get(&c.partition) else { continue };
            c.next = self.judge_days(address, c.next, through.min(closed));
        }
        pending.retain(|_, c| c.next <= closed);
        self.catch_up = pending;
    }

    /// Judges every restored mailbox's days before `day`, however far its partition is (a
    /// day closed for the whole shard is judged in day order for every mailbox).
    fn finish_catch_up(&mut self, day: NaiveDate) {
        let Some(before) = day.pred_opt() else { return };
        for (address, c) in std::mem::take(&mut self.catch_up) {
            self.judge_days(&address, c.next, before);
        }
    }

    /// Judges `address` from `from` through `through`; the first day left to judge.
    fn judge_days(&mut self, address: &str, from: NaiveDate, through: NaiveDate) -> NaiveDate {
        for day in from.iter_days().take_while(|d| *d <= through) {
            self.judge(address, day);
        }
        from.max(through.succ_opt().unwrap_or(through))
    }

    /// Judges one day for one mailbox (a mailbox never judges a day twice).
    fn judge(&mut self, address: &str, day: NaiveDate) {
        let Some(i) = self.mailboxes.find(address) else { return };
        let required = self.settings.calendar.is_required(day).unwrap_or(false);
        let Some(ctx) = ctx(&self.settings, self.closed_through, self.first_day) else { return };
        let e = &mut self.mailboxes.entries[i];
        let mb = Mailbox { address: &e.address, entry: roster_entry(&self.roster, e.roster) };
        self.detectors.on_day_closed(&ctx, mb, &mut e.state, day, required, &mut self.scratch);
    }

    /// Takes on a reloaded roster: entries are re-linked, new roster mailboxes adopted.
    fn replace_roster(&mut self, roster: Arc<Roster>) {
        self.roster = roster;
        self.mailboxes.relink(&self.roster, self.closed_through.and_then(|d| d.succ_opt()));
        if self.closed_through.is_some() {
            self.adopt_roster();
        }
    }

    fn on_event(&mut self, r: &Routed) {
        let found = match &r.mailbox {
            MailboxId::Roster(position) => self.mailboxes.on_roster(*position),
            MailboxId::Address(address) => self.mailboxes.find(address),
        };
        let i = match found {
            Some(i) => i,
            None => self.insert(r.mailbox.address(&self.roster).into(), MailboxState::default()),
        };
        let Some(mut ctx) = ctx(&self.settings, self.closed_through, self.first_day) else { return };
        // A mailbox still catching up has its days open from where it is judged to.
        if let Some(c) = self.catch_up.get(&*self.mailboxes.entries[i].address) {
            ctx.first_open_day = c.next;
        }
        let e = &mut self.mailboxes.entries[i];
        e.state.last_seen = e.state.last_seen.max(Some(r.event.time.date_naive()));
        let mb = Mailbox { address: &e.address, entry: roster_entry(&self.roster, e.roster) };
        self.detectors.on_event(&ctx, mb, &mut e.state, r, &mut self.scratch);
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
        let first = before_first.checked_add_days(Days::new(1));
        // Restored partitions may know an earlier first day.
        self.first_day = self.first_day.min(first).or(first);
        self.adopt_roster();
        self.judge_caught_up();
    }

    /// Creates state for roster mailboxes of this shard that have none (at the start, and
    /// after a restore or a roster change).
    fn adopt_roster(&mut self) {
        let roster = Arc::clone(&self.roster);
        for e in roster.entries() {
            if shard_of(&e.address, self.count) == self.index && self.owns(&e.address) && self.mailboxes.find(&e.address).is_none() {
                self.insert(e.address.as_str().into(), MailboxState::default());
            }
        }
    }

    fn close_day(&mut self, day: NaiveDate) {
        self.finish_catch_up(day);
        self.adopt_roster();
        let required = self.settings.calendar.is_required(day).unwrap_or(false);
        let Some(ctx) = ctx(&self.settings, self.closed_through, self.first_day) else { return };
        for e in self.mailboxes.entries.iter_mut() {
            let mb = Mailbox { address: &e.address, entry: roster_entry(&self.roster, e.roster) };
            self.detectors.on_day_closed(&ctx, mb, &mut e.state, day, required, &mut self.scratch);
        }
        self.closed_through = Some(day);
        self.expire(day);
    }

    /// Drops the state of discovered mailboxes idle beyond the retention.
    fn expire(&mut self, today: NaiveDate) {
        let retention = Days::new(self.settings.config.state.retention.as_secs() / 86_400);
        let Some(cutoff) = today.checked_sub_days(retention) else { return };
        let hold = &self.settings.config.state.legal_hold;
        self.mailboxes.retain(|e| {
            e.state.last_seen.is_none_or(|d| d >= cutoff) || e.roster.is_some() || hold.iter().any(|h| h.eq_ignore_ascii_case(&e.address))
        });
    }
}

/// The detectors' context once the stream's start is known.
fn ctx(settings: &Settings, closed_through: Option<NaiveDate>, first_day: Option<NaiveDate>) -> Option<Ctx<'_>> {
    let first_open_day = closed_through?.checked_add_days(Days::new(1))?;
    Some(Ctx { settings, first_open_day, first_day: first_day? })
}

/// The position of `address`'s roster entry in `roster.entries()`, looked up once when the
/// mailbox's state is created and again when the roster is replaced; and whether
/// `address` is that entry's primary address (the address events are routed by).
fn roster_index(roster: &Roster, address: &str) -> (Option<u32>, bool) {
    let (primary, position) = roster.resolve(address);
    (position, position.is_some() && primary == address)
}

fn roster_entry(roster: &Roster, index: Option<u32>) -> Option<&crate::roster::RosterEntry> {
    index.and_then(|i| roster.entries().get(i as usize))
}

/// One tracked mailbox.
struct Entry {
    address: Box<str>,
    /// Its roster entry's index, if on the roster.
    roster: Option<u32>,
    state: MailboxState,
}

/// The shard's mailboxes: a dense vector of entries, found through a map from a 64-bit
/// hash of the address to the entry's index (16 bytes per map slot, whatever the state's
/// size). Two addresses with the same hash are both kept exact: the second one is found
/// through `spill`, a map by address that stays empty unless hashes collide.
struct Table<H: KeyHash = Mixed> {
    slots: HashMap<u64, u32, BuildHasherDefault<PreHashed>>,
    spill: HashMap<Box<str>, u32>,
    entries: Vec<Entry>,
    /// By roster position: the index of the entry keyed by that roster entry's primary
    /// address, or [`NONE`] (4 bytes per roster entry).
    by_roster: Vec<u32>,
    hash: std::marker::PhantomData<H>,
}

/// No entry.
const NONE: u32 = u32::MAX;

impl<H: KeyHash> Default for Table<H> {
    fn default() -> Self {
        Table { slots: HashMap::default(), spill: HashMap::new(), entries: Vec::new(), by_roster: Vec::new(), hash: std::marker::PhantomData }
    }
}

impl<H: KeyHash> Table<H> {
    /// The index of `address`'s entry.
    fn find(&self, address: &str) -> Option<usize> {
        let &i = self.slots.get(&H::hash(address))?;
        if *self.entries[i as usize].address == *address {
            return Some(i as usize);
        }
        if self.spill.is_empty() {
            return None;
        }
        self.spill.get(address).map(|&i| i as usize)
    }

    /// The index of the entry keyed by the primary address of roster entry `position`.
    fn on_roster(&self, position: u32) -> Option<usize> {
        self.by_roster.get(position as usize).filter(|&&i| i != NONE).map(|&i| i as usize)
    }

    /// Records that entry `i` is keyed by the primary address of roster entry `position`.
    fn link(&mut self, position: u32, i: u32) {
        let p = position as usize;
        if self.by_roster.len() <= p {
            self.by_roster.resize(p + 1, NONE);
        }
        self.by_roster[p] = i;
    }

    /// Re-links every entry to its position in a replaced roster.
    /// A mailbox that has left the roster counts as seen on `today`: its retention starts
    /// when it leaves (while on it, mail merely delivered to it made no copy, so its last
    /// event may be long ago, or none).
    fn relink(&mut self, roster: &Roster, today: Option<NaiveDate>) {
        self.by_roster.clear();
        for i in 0..self.entries.len() {
            let (position, primary) = roster_index(roster, &self.entries[i].address);
            let e = &mut self.entries[i];
            if e.roster.is_some() && position.is_none() {
                e.state.last_seen = e.state.last_seen.max(today);
            }
            e.roster = position;
            if let Some(p) = position.filter(|_| primary) {
                self.link(p, i as u32);
            }
        }
    }

    /// Adds an entry for an address not in the table (`primary`: it is the primary address
    /// of its roster entry); returns its index.
    fn insert(&mut self, address: Box<str>, roster: Option<u32>, primary: bool, state: MailboxState) -> usize {
        let i = self.entries.len();
        let index = u32::try_from(i).expect("fewer than 2^32 mailboxes per shard");
        if let Some(p) = roster.filter(|_| primary) {
            self.link(p, index);
        }
        match self.slots.entry(H::hash(&address)) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(index);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.spill.insert(address.clone(), index);
            }
        }
        self.entries.push(Entry { address, roster, state });
        i
    }

    /// Keeps the entries for which `keep` is true.
    fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        let mut i = 0;
        while i < self.entries.len() {
            if keep(&self.entries[i]) {
                i += 1;
            } else {
                self.remove(i);
            }
        }
    }

    /// Removes the entry at `i`, moving the last entry into its place.
    fn remove(&mut self, i: usize) {
        let h = H::hash(&self.entries[i].address);
        if self.slots.get(&h) == Some(&(i as u32)) {
            // Promote a colliding address, if any, into the freed slot.
            let heir = self.spill.iter().find(|(a, _)| H::hash(a) == h).map(|(a, &j)| (a.clone(), j));
            match heir {
                Some((a, j)) => {
                    self.spill.remove(&a);
                    self.slots.insert(h, j);
                }
                None => {
                    self.slots.remove(&h);
                }
            }
        } else {
            self.spill.remove(&self.entries[i].address);
        }
        if let Some(p) = self.entries[i].roster.filter(|&p| self.on_roster(p) == Some(i)) {
            self.by_roster[p as usize] = NONE;
        }
        let last = self.entries.len() - 1;
        if i != last {
            if let Some(p) = self.entries[last].roster.filter(|&p| self.on_roster(p) == Some(last)) {
                self.by_roster[p as usize] = i as u32;
            }
            let moved = H::hash(&self.entries[last].address);
            match self.slots.get_mut(&moved) {
                Some(p) if *p == last as u32 => *p = i as u32,
                _ => *self.spill.get_mut(&self.entries[last].address).expect("every entry is indexed") = i as u32,
            }
        }
        self.entries.swap_remove(i);
    }
}

/// How the table hashes addresses.
trait KeyHash {
    fn hash(address: &str) -> u64;
}

/// Word-at-a-time multiply-rotate, then a full avalanche, so the map's bucket bits are
/// well mixed (the FNV bits that `shard_of` fixed within a shard play no part).
struct Mixed;

impl KeyHash for Mixed {
    fn hash(address: &str) -> u64 {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let b = address.as_bytes();
        let mut h = (b.len() as u64).wrapping_mul(K);
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            h = (h.rotate_left(23) ^ w).wrapping_mul(K);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            h = (h.rotate_left(23) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        // splitmix64 finaliser.
        h ^= h >> 30;
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 27;
        h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^ (h >> 31)
    }
}

/// A hasher for keys that are already hashes.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roster::RosterEntry;

    /// Every address collides.
    struct Constant;

    impl KeyHash for Constant {
        fn hash(_: &str) -> u64 {
            7
        }
    }

    fn check<H: KeyHash>(addresses: &[String], drop_if: impl Fn(&str) -> bool) {
        let mut t = Table::<H>::default();
        for a in addresses {
            assert!(t.find(a).is_none());
            t.insert(a.as_str().into(), None, false, MailboxState::default());
        }
        for (i, a) in addresses.iter().enumerate() {
            assert_eq!(t.find(a), Some(i));
        }
        t.retain(|e| !drop_if(&e.address));
        for a in addresses {
            let found = t.find(a).map(|i| &*t.entries[i].address);
            assert_eq!(found == Some(a.as_str()), !drop_if(a), "{a}");
            assert_eq!(found.is_none(), drop_if(a), "{a}");
        }
        assert_eq!(t.entries.len(), addresses.iter().filter(|a| !drop_if(a)).count());
        assert!(t.find("nobody@exempel.se").is_none());
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("user{i}@exempel.se")).collect()
    }

    fn roster_of(addresses: &[&str]) -> Arc<Roster> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roster.csv");
        let rows: String = addresses.iter().map(|a| format!("{a},individual,{a},,,Enhet,,\n")).collect();
        std::fs::write(&path, format!("address,kind,owners,members,manager,org_unit,aliases,exemptions\n{rows}")).unwrap();
        Arc::new(Roster::load(&path).unwrap())
    }

    fn not_read_days(alerts: &[Ordered]) -> Vec<String> {
        alerts.iter().filter(|o| o.alert.rule == crate::alert::Rule::MailboxNotRead).filter_map(|o| o.alert.day.map(|d| d.to_string())).collect()
    }

    /// The checkpoint an old owner of partition 0 writes after closing `days`, and the
    /// alerts it raised.
    fn old_owner_checkpoint(settings: &Arc<Settings>, roster: &Arc<Roster>, own: &Arc<Ownership>, days: &[NaiveDate]) -> (Checkpoint, Vec<Ordered>) {
        let mut old = Shard::new(0, 1, settings.clone(), roster.clone());
        let mut out = Vec::new();
        old.apply(Item::Own(own.clone()), &mut out);
        for (seq, &through) in (1..).zip(days) {
            old.apply(Item::Close { seq, through }, &mut out);
        }
        let (closed_through, first_day) = old.days();
        (Checkpoint { closed_through, first_day, mailboxes: old.export(), ..crate::state::checkpoint::tests::sample(2) }, out)
    }

    #[test]
    fn a_partition_taken_over_is_judged_for_the_days_its_old_owner_left_and_never_twice() {
        let anna = "anna@exempel.se";
        let roster = roster_of(&[anna]);
        let settings = Arc::new(Settings::default_settings());
        let own = Arc::new(Ownership::new(1, [0].into_iter().collect()));
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        // The old owner started on Sunday the 15th and judged Monday the 16th: not read.
        let (cp, out) = old_owner_checkpoint(&settings, &roster, &own, &[day(15), day(16)]);
        assert_eq!(not_read_days(&out), ["2026-11-16"]);
        // The new owner has already closed through Wednesday the 18th.
        let mut new = Shard::new(0, 1, settings, Arc::new(Roster::default()));
        let mut out = Vec::new();
        new.apply(Item::Close { seq: 1, through: day(17) }, &mut out);
        new.apply(Item::Close { seq: 2, through: day(18) }, &mut out);
        new.apply(Item::Roster(roster), &mut out);
        new.apply(Item::Own(own), &mut out);
        out.clear();
        new.apply(Item::Restore { seq: 3, checkpoint: Arc::new(cp) }, &mut out);
        assert!(out.is_empty(), "nothing judged before the partition's records say how far it is");
        new.apply(Item::CatchUp { seq: 3, partition: 0, through: day(18) }, &mut out);
        assert_eq!(not_read_days(&out), ["2026-11-17", "2026-11-18"], "Tuesday and Wednesday judged once the partition is there, Monday not again");
        let consecutive: Vec<_> = out.iter().filter_map(|o| o.alert.evidence.consecutive_missed).collect();
        assert_eq!(consecutive, [2, 3], "the old owner's count goes on");
        new.apply(Item::Close { seq: 4, through: day(19) }, &mut out);
        assert_eq!(not_read_days(&out).len(), 3, "Thursday once");
    }

    /// Anna reads her mailbox at noon on `day` (a record of partition 0).
    fn read_on(anna: &str, day: NaiveDate) -> Routed {
        use crate::event::{AccessResult, Event, EventBody, MailboxAccess, Protocol, SourcePos};
        let access = MailboxAccess { mailbox: anna.into(), user: anna.into(), protocol: Protocol::Imap, result: AccessResult::Success };
        let time = day.and_hms_opt(11, 0, 0).unwrap().and_utc();
        let event = Event { time, source: SourcePos { name: "mail-events".into(), offset: 7, partition: Some(0) }, body: EventBody::Access(access) };
        Routed { mailbox: MailboxId::Address(anna.into()), roles: crate::detect::Roles::READ, event: Arc::new(event) }
    }

    #[test]
    fn a_partition_taken_over_behind_the_others_is_judged_only_as_its_own_records_pass_its_days() {
        let anna = "anna@exempel.se";
        let roster = roster_of(&[anna]);
        let settings = Arc::new(Settings::default_settings());
        let own = Arc::new(Ownership::new(1, [0].into_iter().collect()));
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        // The old owner was killed on Sunday the 15th, before any reading day.
        let (cp, mut out) = old_owner_checkpoint(&settings, &roster, &own, &[day(15)]);
        // The new owner's other partitions have already closed through Wednesday the 18th.
        let mut new = Shard::new(0, 1, settings, roster);
        new.apply(Item::Own(own), &mut out);
        new.apply(Item::Close { seq: 1, through: day(17) }, &mut out);
        new.apply(Item::Close { seq: 2, through: day(18) }, &mut out);
        out.clear();
        new.apply(Item::Restore { seq: 3, checkpoint: Arc::new(cp) }, &mut out);
        assert_eq!(new.behind().get(&0), Some(&day(16)), "a checkpoint now must not claim Monday judged");
        // The partition then delivers Anna's Monday read, and its records pass Monday.
        new.apply(Item::Event { seq: 4, routed: read_on(anna, day(16)) }, &mut out);
        new.apply(Item::CatchUp { seq: 5, partition: 0, through: day(16) }, &mut out);
        assert!(not_read_days(&out).is_empty(), "Monday was read: no alert, and none resolved");
        assert!(out.is_empty(), "{out:?}");
        new.apply(Item::CatchUp { seq: 6, partition: 0, through: day(17) }, &mut out);
        assert_eq!(not_read_days(&out), ["2026-11-17"]);
        // A day closed for the whole shard judges what is pending first, in day order.
        new.apply(Item::Close { seq: 7, through: day(19) }, &mut out);
        assert_eq!(not_read_days(&out), ["2026-11-17", "2026-11-18", "2026-11-19"]);
        assert!(new.behind().is_empty());
    }

    /// Anna's mailbox was never read, and the mail delivered to it while she was on the
    /// roster made no copy (it matters to no rule). She leaves the roster: her state is
    /// kept for `state.retention` (90 days) from that day, then dropped, not kept forever.
    #[test]
    fn a_mailbox_that_leaves_the_roster_is_forgotten_a_retention_after_it_left() {
        let (anna, bo) = ("anna@exempel.se", "bo@exempel.se");
        let mut shard = Shard::new(0, 1, Arc::new(Settings::default_settings()), roster_of(&[anna, bo]));
        let mut out = Vec::new();
        let first = NaiveDate::from_ymd_opt(2026, 1, 4).unwrap();
        let close = |shard: &mut Shard, out: &mut Vec<Ordered>, days: u64| shard.apply(Item::Close { seq: 1, through: first + Days::new(days) }, out);
        close(&mut shard, &mut out, 0);
        close(&mut shard, &mut out, 30);
        shard.apply(Item::Roster(roster_of(&[bo])), &mut out);
        close(&mut shard, &mut out, 30 + 90);
        assert_eq!(shard.len(), 2, "kept for the retention from the day she left");
        close(&mut shard, &mut out, 30 + 92);
        assert_eq!(shard.len(), 1, "then forgotten");
        assert!(shard.export().iter().all(|(a, _)| a == bo));
    }

    #[test]
    fn find_insert_and_remove_keep_every_address_reachable() {
        check::<Mixed>(&names(500), |a| a.ends_with("3@exempel.se"));
        check::<Mixed>(&names(50), |_| true);
    }

    #[test]
    fn colliding_hashes_stay_exact_through_removals() {
        // The slot owner (user0) goes first: a colliding address must take its place.
        check::<Constant>(&names(40), |a| a.starts_with("user0") || a.ends_with("7@exempel.se"));
        check::<Constant>(&names(40), |a| !a.ends_with("5@exempel.se"));
        check::<Constant>(&names(10), |_| true);
    }

    #[test]
    fn roster_links_follow_inserts_removals_and_a_replaced_roster() {
        let roster = Roster::new(vec![
            RosterEntry { address: "a@x.se".into(), ..RosterEntry::default() },
            RosterEntry { address: "b@x.se".into(), aliases: vec!["b2@x.se".into()], ..RosterEntry::default() },
            RosterEntry { address: "c@x.se".into(), ..RosterEntry::default() },
        ]);
        let check = |t: &Table, roster: &Roster| {
            for (p, e) in roster.entries().iter().enumerate() {
                assert_eq!(t.on_roster(p as u32), t.find(&e.address), "{}", e.address);
            }
        };
        let mut t: Table = Table::default();
        // An entry keyed by an alias (from an older roster's checkpoint) is never linked.
        for a in ["b2@x.se", "b@x.se", "z@x.se", "a@x.se", "c@x.se"] {
            let (position, primary) = roster_index(&roster, a);
            t.insert(a.into(), position, primary, MailboxState::default());
            check(&t, &roster);
        }
        assert_eq!(t.on_roster(1), t.find("b@x.se"));
        t.retain(|e| &*e.address != "b@x.se" && &*e.address != "a@x.se");
        check(&t, &roster);
        let replaced = Roster::new(vec![
            RosterEntry { address: "c@x.se".into(), ..RosterEntry::default() },
            RosterEntry { address: "b2@x.se".into(), ..RosterEntry::default() },
        ]);
        t.relink(&replaced, None);
        check(&t, &replaced);
        assert_eq!(t.on_roster(1), t.find("b2@x.se"));
        t.retain(|e| &*e.address != "c@x.se");
        check(&t, &replaced);
    }
}
