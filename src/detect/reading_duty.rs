//! Rule 2: every mailbox must be read at least once on every required reading day.
//!
//! A mailbox is *read* on a local (Europe/Stockholm) day when a successful access by its
//! owner, a delegate or — for function and authority mailboxes — a member happens that
//! day, or such a user requests a configured webmail host/path (the router decides who is
//! entitled and marks the event [`Roles::READ`]).
//!
//! Judgement happens only in `on_day_closed`, i.e. when the event-time watermark has
//! passed the end of the day (plus the allowed lateness) — never by the wall clock. A
//! monitored mailbox not read on a required day and not exempt gets exactly one
//! `mailbox_not_read` alert for that day, with the number of consecutive required days
//! missed and the last read seen. Weekends, holidays and the three eves are never judged,
//! and no day is judged twice. A read that arrives after its day was judged (a late event)
//! resolves that day's finding with a `resolved` alert, for up to 64 days back.
//!
//! Who is held to the duty: roster mailboxes from the first day of the stream;
//! mailboxes discovered from the stream (not on the roster, receiving mail, with
//! `reading.discover_mailboxes`) from the first required day *after* the day they were
//! first seen, so a partly observed day is never judged.
//!
//! State per mailbox: two 64-bit day masks, a counter, the last read time and two days.

use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{Ctx, Detector, Mailbox, Roles, Routed};
use crate::alert::{alert_id, Alert, Evidence, Rule, Severity};
use crate::calendar::{day_end_utc, local_day, Calendar};
use crate::config::Settings;

/// The detector.
pub struct ReadingDuty {
    calendar: Calendar,
    discover: bool,
}

/// Per-mailbox state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// For mailboxes not on the roster: the first day they are held to the duty.
    discovered_from: Option<NaiveDate>,
    /// The first day this mailbox has not been judged on.
    next_day: Option<NaiveDate>,
    /// Bit k: read on `next_day + k`.
    open_reads: u64,
    /// Bit k: `next_day - 1 - k` was alerted as not read and not yet resolved.
    missed: u64,
    /// Required days missed in a row.
    consecutive: u32,
    /// The newest read seen.
    last_read: Option<DateTime<Utc>>,
}

impl Detector for ReadingDuty {
    type State = State;
    const ROLES: Roles = Roles::READ;

    fn new(s: &Settings) -> Self {
        ReadingDuty { calendar: s.calendar.clone(), discover: s.config.reading.discover_mailboxes }
    }

    fn on_event(&self, ctx: &Ctx, mb: Mailbox, st: &mut State, ev: &Routed, out: &mut Vec<Alert>) {
        let next = *st.next_day.get_or_insert(ctx.first_open_day);
        let day = local_day(ev.event.time);
        if ev.roles.has(Roles::RECIPIENT) && mb.entry.is_none() && self.discover && st.discovered_from.is_none() {
            st.discovered_from = self.first_required_after(day);
        }
        if ev.roles.has(Roles::READ) {
            st.last_read = st.last_read.max(Some(ev.event.time));
            match days_between(next, day) {
                Some(k) if k < 64 => st.open_reads |= 1 << k,
                Some(_) => {}
                None => self.late_read(mb, st, next, day, ev, out),
            }
        }
    }

    fn on_day_closed(&self, ctx: &Ctx, mb: Mailbox, st: &mut State, day: NaiveDate, required: bool, out: &mut Vec<Alert>) {
        let next = *st.next_day.get_or_insert(day);
        let Some(gap) = days_between(next, day) else { return };
        let read = shift(st, gap + 1);
        st.next_day = day.checked_add_days(Days::new(1));
        if !required || !self.held_on(ctx, mb, st, day) {
            return;
        }
        if read {
            st.consecutive = 0;
        } else {
            st.consecutive = st.consecutive.saturating_add(1);
            st.missed |= 1;
            out.push(self.not_read(mb, st, day));
        }
    }

    fn is_idle(st: &State) -> bool {
        st.missed == 0 && st.open_reads == 0 && st.discovered_from.is_none()
    }
}

impl ReadingDuty {
    fn first_required_after(&self, day: NaiveDate) -> Option<NaiveDate> {
        day.iter_days().skip(1).take(30).find(|d| self.calendar.is_required(*d).unwrap_or(false))
    }

    fn held_on(&self, ctx: &Ctx, mb: Mailbox, st: &State, day: NaiveDate) -> bool {
        let from = match mb.entry {
            Some(_) => Some(ctx.first_day),
            None => st.discovered_from,
        };
        from.is_some_and(|f| f <= day) && !mb.entry.is_some_and(|e| e.exempt_on(day))
    }

    fn not_read(&self, mb: Mailbox, st: &State, day: NaiveDate) -> Alert {
        let id = open_id(mb.address, day);
        let evidence = Evidence { consecutive_missed: Some(st.consecutive), last_read: st.last_read, ..Evidence::default() };
        let mut a = mb.open(Rule::MailboxNotRead, Severity::Medium, id, day_end_utc(day), evidence);
        a.day = Some(day);
        a
    }

    /// A read for a day already judged: resolves that day's finding if there is one.
    fn late_read(&self, mb: Mailbox, st: &mut State, next: NaiveDate, day: NaiveDate, ev: &Routed, out: &mut Vec<Alert>) {
        let Some(k) = days_between(day, next).map(|d| d - 1).filter(|&k| k < 64) else { return };
        if st.missed & (1 << k) == 0 {
            return;
        }
        st.missed &= !(1 << k);
        let open = open_id(mb.address, day);
        let evidence = Evidence { events: vec![ev.event.source.clone()], count: 1, last_read: st.last_read, ..Evidence::default() };
        let mut a = mb.resolved(Rule::MailboxNotRead, open, ev.event.time, evidence);
        a.day = Some(day);
        out.push(a);
    }
}

/// Advances the masks by `n ≥ 1` days; returns whether the last day shifted out was read.
fn shift(st: &mut State, n: u64) -> bool {
    let last_bit = n - 1;
    let read = last_bit < 64 && st.open_reads & (1 << last_bit) != 0;
    st.open_reads = u32::try_from(n).ok().and_then(|n| st.open_reads.checked_shr(n)).unwrap_or(0);
    st.missed = u32::try_from(n).ok().and_then(|n| st.missed.checked_shl(n)).unwrap_or(0);
    read
}

/// Whole days from `a` to `b`, `None` when `b` is before `a`.
fn days_between(a: NaiveDate, b: NaiveDate) -> Option<u64> {
    u64::try_from((b - a).num_days()).ok()
}

/// The id of the finding "`mailbox` not read on `day`".
pub fn open_id(mailbox: &str, day: NaiveDate) -> String {
    alert_id(&[Rule::MailboxNotRead.as_str(), mailbox, &day.to_string()])
}
