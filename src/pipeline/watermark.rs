//! The event-time watermark: how far the stream is known to be complete.
//!
//! Per input (a Kafka partition, or the stream a replay merges its files into by time) the
//! watermark is the newest event time seen minus the allowed lateness; the overall watermark is the minimum over the inputs that are
//! still active, so one lagging input never closes a day early, and it never moves back.
//! An event older than the watermark is *late*: it is counted, and still applied.
//!
//! A local day is closed when the watermark reaches its end (Europe/Stockholm midnight,
//! DST-aware). [`Watermark::take_close`] reports each newly closed day range exactly once;
//! the first report is the day *before* the stream's first event, which only sets the
//! starting point. `advance_to` moves the watermark by declaration (`replay --until`, or
//! the wall clock when every live input is idle).

use std::collections::BTreeMap;

use chrono::{DateTime, Days, NaiveDate, NaiveTime, Timelike, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::{day_end_utc, local_day};

/// Newest time seen on one input.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct InputClock {
    max: Option<DateTime<Utc>>,
    active: bool,
    /// Holds the watermark back until its first event (a Kafka partition that was
    /// assigned but has not delivered yet), so a fast partition cannot close days early.
    #[serde(default)]
    holds: bool,
}

/// The watermark and the days it has closed (checkpointed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Watermark {
    #[serde(with = "seconds")]
    lateness: chrono::Duration,
    inputs: Vec<InputClock>,
    value: Option<DateTime<Utc>>,
    closed: Option<NaiveDate>,
    next_close_at: Option<DateTime<Utc>>,
    reported: Option<NaiveDate>,
    /// Nothing but events no newer than their input's newest came since the last
    /// recompute, so another such event changes nothing (not kept: a restored watermark
    /// recomputes on its first event).
    #[serde(skip)]
    settled: bool,
}

impl Watermark {
    /// A watermark with the given allowed lateness.
    pub fn new(lateness: std::time::Duration) -> Self {
        Watermark {
            lateness: chrono::Duration::from_std(lateness).unwrap_or(chrono::Duration::zero()),
            inputs: Vec::new(),
            value: None,
            closed: None,
            next_close_at: None,
            reported: None,
            settled: false,
        }
    }

    /// Registers an input; returns its index.
    pub fn add_input(&mut self) -> usize {
        self.settled = false;
        self.inputs.push(InputClock { max: None, active: true, holds: false });
        self.inputs.len() - 1
    }

    /// Registers an input that holds the watermark back until its first event (or until it
    /// is deactivated); returns its index.
    pub fn add_held_input(&mut self) -> usize {
        self.settled = false;
        self.inputs.push(InputClock { max: None, active: true, holds: true });
        self.inputs.len() - 1
    }

    /// Input `input` delivers again (a live input that was idle, or a reassigned partition).
    pub fn activate(&mut self, input: usize) {
        self.settled = false;
        if let Some(c) = self.inputs.get_mut(input) {
            c.active = true;
        }
    }

    /// The current watermark.
    pub fn value(&self) -> Option<DateTime<Utc>> {
        self.value
    }

    /// Notes an event at `t` on `input`; returns true when it is late.
    ///
    /// An event no newer than its input's newest, when nothing else changed since the
    /// last one, changes nothing and returns at once: about two events in five of a
    /// generated archive, and the recompute cost about 250 instructions an event by
    /// callgrind (chrono's date arithmetic), 3 % of the pipeline's.
    pub fn observe(&mut self, input: usize, t: DateTime<Utc>) -> bool {
        let late = self.value.is_some_and(|w| t < w);
        if self.settled && self.inputs.get(input).is_some_and(|c| c.max >= Some(t)) {
            return late;
        }
        if self.closed.is_none() {
            self.closed = local_day(t).checked_sub_days(Days::new(1));
            self.next_close_at = self.closed.and_then(|d| d.checked_add_days(Days::new(1))).map(day_end_utc);
        }
        if let Some(clock) = self.inputs.get_mut(input) {
            clock.max = clock.max.max(Some(t));
        }
        self.recompute();
        self.settled = true;
        late
    }

    /// Input `input` will send nothing more (end of file, or idle in live mode).
    pub fn deactivate(&mut self, input: usize) {
        self.settled = false;
        if let Some(c) = self.inputs.get_mut(input) {
            c.active = false;
        }
    }

    /// Takes `day` as the last day closed when nothing has started the watermark yet (a run
    /// that restored partition checkpoints and has read no record since): `advance_to`
    /// then closes the days after it.
    pub fn start_at(&mut self, day: NaiveDate) {
        self.settled = false;
        if self.closed.is_none() {
            self.closed = Some(day);
            self.next_close_at = day.checked_add_days(Days::new(1)).map(day_end_utc);
        }
    }

    /// Moves the watermark to `t` by declaration (never backwards).
    pub fn advance_to(&mut self, t: DateTime<Utc>) {
        self.settled = false;
        self.value = self.value.max(Some(t));
        self.update_closed();
    }

    fn recompute(&mut self) {
        if self.inputs.iter().any(|c| c.active && c.holds && c.max.is_none()) {
            return;
        }
        let min_active = self.inputs.iter().filter(|c| c.active).filter_map(|c| c.max).min();
        if let Some(m) = min_active {
            self.value = self.value.max(Some(minus(m, self.lateness)));
        }
        self.update_closed();
    }

    fn update_closed(&mut self) {
        let (Some(v), Some(at)) = (self.value, self.next_close_at) else { return };
        if v < at {
            return;
        }
        self.closed = local_day(v).checked_sub_days(Days::new(1));
        self.next_close_at = self.closed.and_then(|d| d.checked_add_days(Days::new(1))).map(day_end_utc);
    }

    /// The last closed day, if it changed since the previous call.
    pub fn take_close(&mut self) -> Option<NaiveDate> {
        if self.closed == self.reported {
            return None;
        }
        self.reported = self.closed;
        self.closed
    }
}

/// Per Kafka partition: the last local day its own records have completed — the day before
/// that of its newest event time minus the allowed lateness — reported when it moves on.
/// A partition taken over from a checkpoint has its restored mailboxes judged by it (see
/// `state::shard`), not by the instance's watermark, which other partitions may have moved
/// days ahead.
#[derive(Debug, Default)]
pub struct PartitionDays {
    lateness: chrono::Duration,
    newest: BTreeMap<u32, DateTime<Utc>>,
    reported: BTreeMap<u32, NaiveDate>,
}

impl PartitionDays {
    /// Partition days with the given allowed lateness.
    pub fn new(lateness: std::time::Duration) -> Self {
        PartitionDays { lateness: chrono::Duration::from_std(lateness).unwrap_or(chrono::Duration::zero()), ..Default::default() }
    }

    /// Notes an event at `t` on `partition`; the partition's last completed day when it moved.
    pub fn observe(&mut self, partition: u32, t: DateTime<Utc>) -> Option<NaiveDate> {
        let newest = self.newest.entry(partition).or_insert(t);
        if t < *newest {
            return None; // older than the newest: the partition did not move on
        }
        *newest = t;
        let day = local_day(minus(t, self.lateness)).checked_sub_days(Days::new(1))?;
        if self.reported.get(&partition).is_some_and(|r| *r >= day) {
            return None;
        }
        self.reported.insert(partition, day);
        Some(day)
    }

    /// `partition` was taken over (again): its progress is counted from its checkpoint on.
    pub fn reset(&mut self, partition: u32) {
        self.newest.remove(&partition);
        self.reported.remove(&partition);
    }
}

/// `t - lateness`. In the common case (a lateness of whole seconds, and `t` at least that
/// far into its UTC day) the date stays and only the time of day moves: chrono's general
/// subtraction goes through date arithmetic, which callgrind counted at about half of
/// the watermark's instructions, and the watermark recomputes for nearly every event of
/// a replay (each is newer than the one before).
fn minus(t: DateTime<Utc>, lateness: chrono::Duration) -> DateTime<Utc> {
    let (at, secs) = (t.naive_utc(), lateness.num_seconds());
    let of_day = i64::from(at.time().num_seconds_from_midnight());
    // A leap second (nanoseconds past a second) is left to chrono.
    if lateness.subsec_nanos() == 0 && (0..=of_day).contains(&secs) && at.time().nanosecond() < 1_000_000_000 {
        if let Some(time) = NaiveTime::from_num_seconds_from_midnight_opt((of_day - secs) as u32, at.time().nanosecond()) {
            return at.date().and_time(time).and_utc();
        }
    }
    t - lateness
}

/// A `chrono::Duration` as whole seconds.
mod seconds {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &chrono::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(d.num_seconds())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<chrono::Duration, D::Error> {
        Ok(chrono::Duration::seconds(i64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The watermark's subtraction of the lateness is chrono's, across day and year
        /// ends, with fractions of a second and leap seconds.
        #[test]
        fn the_lateness_is_subtracted_as_chrono_subtracts_it(secs in 631_152_000i64..7_289_654_400, nanos in prop_oneof![Just(0u32), 0u32..2_000_000_000], lateness in prop_oneof![0i64..86_400 * 3, Just(86_400)], frac in prop_oneof![Just(0i32), 1i32..1_000_000_000]) {
            let Some(t) = DateTime::from_timestamp(secs, nanos) else { return Ok(()) };
            let d = chrono::Duration::seconds(lateness) + chrono::Duration::nanoseconds(i64::from(frac));
            prop_assert_eq!(minus(t, d), t - d);
        }
    }
    use std::time::Duration;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_monday_closes_only_after_midnight_plus_lateness() {
        let mut w = Watermark::new(Duration::from_secs(2 * 3600));
        let i = w.add_input();
        w.observe(i, t("2026-03-02T08:00:00+01:00"));
        assert_eq!(w.take_close(), Some(d("2026-03-01")), "start point: the day before the first event");
        w.observe(i, t("2026-03-03T01:59:00+01:00"));
        assert_eq!(w.take_close(), None, "Monday is still open within the allowed lateness");
        w.observe(i, t("2026-03-03T02:00:00+01:00"));
        assert_eq!(w.take_close(), Some(d("2026-03-02")));
        assert_eq!(w.take_close(), None, "a day is reported once");
    }

    #[test]
    fn late_events_are_flagged_and_do_not_move_the_watermark_back() {
        let mut w = Watermark::new(Duration::from_secs(3600));
        let i = w.add_input();
        w.observe(i, t("2026-03-02T12:00:00Z"));
        assert!(w.observe(i, t("2026-03-02T10:30:00Z")));
        assert!(!w.observe(i, t("2026-03-02T11:30:00Z")));
        assert_eq!(w.value(), Some(t("2026-03-02T11:00:00Z")));
    }

    #[test]
    fn a_lagging_input_holds_the_watermark_until_it_is_inactive() {
        let mut w = Watermark::new(Duration::ZERO);
        let (a, b) = (w.add_input(), w.add_input());
        w.observe(a, t("2026-03-02T08:00:00Z"));
        w.observe(b, t("2026-03-04T08:00:00Z"));
        w.take_close();
        assert_eq!(w.value(), Some(t("2026-03-02T08:00:00Z")));
        w.deactivate(a);
        w.observe(b, t("2026-03-04T09:00:00Z"));
        assert_eq!(w.take_close(), Some(d("2026-03-03")));
    }

    #[test]
    fn an_old_event_after_the_lagging_input_went_idle_still_moves_the_watermark() {
        // Events no newer than their input's newest skip the recompute, but only while
        // nothing else changed: here the lagging input going idle did.
        let mut w = Watermark::new(Duration::ZERO);
        let (a, b) = (w.add_input(), w.add_input());
        w.observe(a, t("2026-03-02T08:00:00Z"));
        w.observe(b, t("2026-03-04T08:00:00Z"));
        w.observe(b, t("2026-03-04T07:00:00Z"));
        w.take_close();
        w.deactivate(a);
        assert!(!w.observe(b, t("2026-03-04T07:30:00Z")), "not late: the watermark is still Monday's");
        assert_eq!(w.value(), Some(t("2026-03-04T08:00:00Z")));
        assert_eq!(w.take_close(), Some(d("2026-03-03")));
        assert!(w.observe(b, t("2026-03-04T07:45:00Z")), "late now");
    }

    #[test]
    fn until_closes_days_that_ended_by_then() {
        let mut w = Watermark::new(Duration::from_secs(7200));
        let i = w.add_input();
        w.observe(i, t("2026-03-06T16:00:00+01:00"));
        w.take_close();
        w.advance_to(t("2026-03-07T00:00:00+01:00"));
        assert_eq!(w.take_close(), Some(d("2026-03-06")));
    }

    #[test]
    fn a_run_restored_with_no_new_record_closes_the_days_after_its_checkpoints_at_until() {
        let until = t("2026-06-22T00:00:00+02:00");
        let mut nothing_read = Watermark::new(Duration::from_secs(7200));
        nothing_read.advance_to(until);
        assert_eq!(nothing_read.take_close(), None, "without a start, --until closes nothing");
        let mut w = Watermark::new(Duration::from_secs(7200));
        w.start_at(d("2026-06-17"));
        assert_eq!(w.take_close(), Some(d("2026-06-17")), "the starting point, judged by no one");
        w.advance_to(until);
        assert_eq!(w.take_close(), Some(d("2026-06-21")), "Thursday through Sunday closed");
        w.start_at(d("2026-06-15"));
        assert_eq!(w.take_close(), None, "a started watermark keeps its days");
    }

    #[test]
    fn a_wall_clock_jumping_back_never_moves_the_watermark_back_nor_judges_a_day_again() {
        // Every live input idle: the pipeline declares the wall clock minus the lateness.
        let mut w = Watermark::new(Duration::from_secs(2 * 3600));
        let i = w.add_input();
        w.observe(i, t("2026-03-03T09:00:00+01:00"));
        w.take_close();
        w.deactivate(i);
        w.advance_to(t("2026-03-04T01:00:00+01:00"));
        assert_eq!(w.take_close(), Some(d("2026-03-03")), "the quiet night closes Tuesday");
        let before = w.value();
        // The clock is stepped back a day: the declaration is older than the watermark.
        w.advance_to(t("2026-03-03T01:00:00+01:00"));
        assert_eq!(w.value(), before, "never backwards");
        assert_eq!(w.take_close(), None, "no day is closed (judged) again");
        // The input delivers again, from before the jump: late, applied, nothing closes.
        w.activate(i);
        assert!(w.observe(i, t("2026-03-03T23:30:00+01:00")));
        assert_eq!(w.value(), before);
        assert_eq!(w.take_close(), None);
    }

    #[test]
    fn a_wall_clock_jumping_forward_closes_the_days_up_to_it_once_and_a_read_for_them_is_late() {
        // Every live input idle: the pipeline declares the wall clock minus the lateness.
        let lateness = chrono::Duration::hours(2);
        let mut w = Watermark::new(Duration::from_secs(2 * 3600));
        let i = w.add_input();
        w.observe(i, t("2026-03-03T09:00:00+01:00"));
        assert_eq!(w.take_close(), Some(d("2026-03-02")), "start point: Monday");
        w.deactivate(i);
        // Tuesday morning the clock jumps to Saturday 01:30: minus the lateness that is
        // Friday 23:30, so Tuesday to Thursday close, in one report, and Friday stays open.
        w.advance_to(t("2026-03-07T01:30:00+01:00") - lateness);
        assert_eq!(w.take_close(), Some(d("2026-03-05")), "closed through Thursday");
        assert_eq!(w.take_close(), None, "a day is closed once");
        w.advance_to(t("2026-03-07T01:59:00+01:00") - lateness);
        assert_eq!(w.take_close(), None, "Friday is still open within the allowed lateness");
        w.advance_to(t("2026-03-07T02:00:00+01:00") - lateness);
        assert_eq!(w.take_close(), Some(d("2026-03-06")), "Friday closes when its lateness is over");
        let after = w.value();
        // The input delivers again: a read on Wednesday, a day already closed, is late
        // (counted, applied: it resolves a finding) and closes nothing again.
        w.activate(i);
        assert!(w.observe(i, t("2026-03-04T14:00:00+01:00")), "late");
        assert_eq!(w.value(), after, "never backwards");
        assert_eq!(w.take_close(), None, "no day is closed (judged) again");
    }
}
