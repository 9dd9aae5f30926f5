//! The Swedish working calendar behind the reading duty: which dates are
//! *required reading days*, and where a local Swedish day begins and ends.
//!
//! # The rule
//!
//! A date is a **required reading day** when it is a Monday–Friday that is
//! neither a Swedish public holiday (allmän helgdag, Lag (1989:253) om
//! allmänna helgdagar) nor midsommarafton, julafton or nyårsafton. Every
//! named day is computed from its rule (fixed date, Gregorian Easter,
//! "the Saturday between …"); there is no table of dates.
//!
//! An organisation may make more days free with [`Calendar::with_options`]:
//! single dates (`org_free_day`, e.g. a bridge day) and any of the optional
//! eves in [`OptionalEve`]. [`Calendar::swedish`] (also `Calendar::default()`)
//! is exactly the rule above with none of these.
//!
//! # Guarantees
//!
//! * Every supported date is exactly one of: required
//!   ([`DayKind::Required`]), a plain weekend day (`weekend`) or a named
//!   free day ([`DayKind::Free`] with any other reason).
//! * A required day is always a Monday–Friday; `weekend` is only ever given
//!   to a Saturday or Sunday that is no named day.
//! * A named day wins over `weekend`: julafton on a Sunday reports
//!   `christmas_eve`, a plain Saturday reports `weekend`.
//! * When two named days fall on one date (1 May 2008 was also Ascension
//!   Day) the reason listed first in the table below is reported; the date
//!   is free either way.
//! * Day boundaries follow Europe/Stockholm local time including daylight
//!   saving time: the spring-forward day is 23 hours long, the autumn day
//!   25 hours ([`day_start_utc`], [`day_end_utc`], [`local_day`]).
//!
//! # Not guaranteed
//!
//! * Years outside [`MIN_YEAR`]..=[`MAX_YEAR`] (1990–2200) are refused with
//!   [`CalendarError::YearOutOfRange`], never guessed. Future changes of the
//!   law cannot be known; before 2005 and from 2005 on are both modelled
//!   (see `national_day` and `whit_monday`).
//! * Day boundaries come from the tz database as built into chrono-tz,
//!   whose tables end with 2099: for 2100–2200 they stay on CET (UTC+1)
//!   all year, so summer days there start an hour later than under today's
//!   EU rule. The required-day rule itself is unaffected.
//! * Local agreements (half days, "klämdagar" not listed as
//!   `extra_free_days`) are not known unless the organisation lists them.
//! * The law also makes every Sunday an allmän helgdag; Sundays that are no
//!   named day are reported as `weekend`, and
//!   [`FreeReason::is_public_holiday`] is about the named days only.
//!
//! # Reason keys
//!
//! The keys are the `serde` names of [`FreeReason`] and the `reason` values
//! of `brevvakt calendar --format json`. Rows are in precedence order.
//! "Easter" is Easter Sunday by the anonymous Gregorian algorithm
//! ([`easter_sunday`]).
//!
//! | key | Swedish | English | rule |
//! |-----|---------|---------|------|
//! | `new_years_day` | nyårsdagen | New Year's Day | 1 January; public holiday |
//! | `epiphany` | trettondedag jul | Epiphany | 6 January; public holiday |
//! | `good_friday` | långfredagen | Good Friday | Easter − 2; public holiday |
//! | `easter_sunday` | påskdagen | Easter Sunday | Easter; public holiday |
//! | `easter_monday` | annandag påsk | Easter Monday | Easter + 1; public holiday |
//! | `may_day` | första maj | May Day | 1 May; public holiday |
//! | `ascension_day` | Kristi himmelsfärdsdag | Ascension Day | Easter + 39; public holiday |
//! | `national_day` | Sveriges nationaldag | National Day of Sweden | 6 June, from 2005 on (an ordinary day before 2005); public holiday |
//! | `whitsunday` | pingstdagen | Whitsunday | Easter + 49; public holiday |
//! | `whit_monday` | annandag pingst | Whit Monday | Easter + 50, up to and including 2004 only; public holiday |
//! | `midsummer_eve` | midsommarafton | Midsummer Eve | the Friday between 19 and 25 June; eve, never a reading day |
//! | `midsummer_day` | midsommardagen | Midsummer Day | the Saturday between 20 and 26 June; public holiday |
//! | `all_saints_day` | alla helgons dag | All Saints' Day | the Saturday between 31 October and 6 November; public holiday |
//! | `christmas_eve` | julafton | Christmas Eve | 24 December; eve, never a reading day |
//! | `christmas_day` | juldagen | Christmas Day | 25 December; public holiday |
//! | `boxing_day` | annandag jul | Boxing Day | 26 December; public holiday |
//! | `new_years_eve` | nyårsafton | New Year's Eve | 31 December; eve, never a reading day |
//! | `twelfth_night_eve` | trettondagsafton | Twelfth Night | 5 January; optional eve |
//! | `maundy_thursday` | skärtorsdagen | Maundy Thursday | Easter − 3; optional eve |
//! | `walpurgis_night` | valborgsmässoafton | Walpurgis Night | 30 April; optional eve |
//! | `all_saints_eve` | allhelgonaafton | All Saints' Eve | the Friday before All Saints' Day; optional eve |
//! | `org_free_day` | extra ledig dag | Organisation free day | a date listed by the organisation |
//! | `weekend` | veckoslut | Weekend | a Saturday or Sunday that is no named day above |
//!
//! The optional eves are free only when the organisation lists them (by the
//! same keys, see [`OptionalEve`]).

use std::cell::Cell;
use std::collections::BTreeSet;
use std::fmt::Write as _;

use chrono::offset::LocalResult;
use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Offset, TimeDelta, TimeZone, Utc, Weekday};
use serde::{Deserialize, Serialize};

/// First supported year.
pub const MIN_YEAR: i32 = 1990;
/// Last supported year.
pub const MAX_YEAR: i32 = 2200;
/// The time zone whose local dates are the calendar's days.
pub const TZ: chrono_tz::Tz = chrono_tz::Europe::Stockholm;

/// First year in which 6 June is a public holiday and Whit Monday is not
/// (SFS 2004:1010).
const NATIONAL_DAY_REFORM_YEAR: i32 = 2005;

/// Why a date is not a required reading day. See the module doc for keys
/// and rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FreeReason {
    Weekend,
    NewYearsDay,
    Epiphany,
    GoodFriday,
    EasterSunday,
    EasterMonday,
    MayDay,
    AscensionDay,
    NationalDay,
    Whitsunday,
    WhitMonday,
    MidsummerEve,
    MidsummerDay,
    AllSaintsDay,
    ChristmasEve,
    ChristmasDay,
    BoxingDay,
    NewYearsEve,
    TwelfthNightEve,
    MaundyThursday,
    WalpurgisNight,
    AllSaintsEve,
    OrgFreeDay,
}

/// The days every organisation has free, in precedence order.
const STATUTORY: [FreeReason; 17] = [
    FreeReason::NewYearsDay,
    FreeReason::Epiphany,
    FreeReason::GoodFriday,
    FreeReason::EasterSunday,
    FreeReason::EasterMonday,
    FreeReason::MayDay,
    FreeReason::AscensionDay,
    FreeReason::NationalDay,
    FreeReason::Whitsunday,
    FreeReason::WhitMonday,
    FreeReason::MidsummerEve,
    FreeReason::MidsummerDay,
    FreeReason::AllSaintsDay,
    FreeReason::ChristmasEve,
    FreeReason::ChristmasDay,
    FreeReason::BoxingDay,
    FreeReason::NewYearsEve,
];

impl FreeReason {
    /// The snake_case key, identical to the serde name.
    pub fn key(self) -> &'static str {
        match self {
            Self::Weekend => "weekend",
            Self::NewYearsDay => "new_years_day",
            Self::Epiphany => "epiphany",
            Self::GoodFriday => "good_friday",
            Self::EasterSunday => "easter_sunday",
            Self::EasterMonday => "easter_monday",
            Self::MayDay => "may_day",
            Self::AscensionDay => "ascension_day",
            Self::NationalDay => "national_day",
            Self::Whitsunday => "whitsunday",
            Self::WhitMonday => "whit_monday",
            Self::MidsummerEve => "midsummer_eve",
            Self::MidsummerDay => "midsummer_day",
            Self::AllSaintsDay => "all_saints_day",
            Self::ChristmasEve => "christmas_eve",
            Self::ChristmasDay => "christmas_day",
            Self::BoxingDay => "boxing_day",
            Self::NewYearsEve => "new_years_eve",
            Self::TwelfthNightEve => "twelfth_night_eve",
            Self::MaundyThursday => "maundy_thursday",
            Self::WalpurgisNight => "walpurgis_night",
            Self::AllSaintsEve => "all_saints_eve",
            Self::OrgFreeDay => "org_free_day",
        }
    }

    /// The Swedish name, in lower case as written in running text.
    pub fn swedish(self) -> &'static str {
        match self {
            Self::Weekend => "veckoslut",
            Self::NewYearsDay => "nyårsdagen",
            Self::Epiphany => "trettondedag jul",
            Self::GoodFriday => "långfredagen",
            Self::EasterSunday => "påskdagen",
            Self::EasterMonday => "annandag påsk",
            Self::MayDay => "första maj",
            Self::AscensionDay => "Kristi himmelsfärdsdag",
            Self::NationalDay => "Sveriges nationaldag",
            Self::Whitsunday => "pingstdagen",
            Self::WhitMonday => "annandag pingst",
            Self::MidsummerEve => "midsommarafton",
            Self::MidsummerDay => "midsommardagen",
            Self::AllSaintsDay => "alla helgons dag",
            Self::ChristmasEve => "julafton",
            Self::ChristmasDay => "juldagen",
            Self::BoxingDay => "annandag jul",
            Self::NewYearsEve => "nyårsafton",
            Self::TwelfthNightEve => "trettondagsafton",
            Self::MaundyThursday => "skärtorsdagen",
            Self::WalpurgisNight => "valborgsmässoafton",
            Self::AllSaintsEve => "allhelgonaafton",
            Self::OrgFreeDay => "extra ledig dag",
        }
    }

    /// The English name.
    pub fn english(self) -> &'static str {
        match self {
            Self::Weekend => "Weekend",
            Self::NewYearsDay => "New Year's Day",
            Self::Epiphany => "Epiphany",
            Self::GoodFriday => "Good Friday",
            Self::EasterSunday => "Easter Sunday",
            Self::EasterMonday => "Easter Monday",
            Self::MayDay => "May Day",
            Self::AscensionDay => "Ascension Day",
            Self::NationalDay => "National Day of Sweden",
            Self::Whitsunday => "Whitsunday",
            Self::WhitMonday => "Whit Monday",
            Self::MidsummerEve => "Midsummer Eve",
            Self::MidsummerDay => "Midsummer Day",
            Self::AllSaintsDay => "All Saints' Day",
            Self::ChristmasEve => "Christmas Eve",
            Self::ChristmasDay => "Christmas Day",
            Self::BoxingDay => "Boxing Day",
            Self::NewYearsEve => "New Year's Eve",
            Self::TwelfthNightEve => "Twelfth Night",
            Self::MaundyThursday => "Maundy Thursday",
            Self::WalpurgisNight => "Walpurgis Night",
            Self::AllSaintsEve => "All Saints' Eve",
            Self::OrgFreeDay => "Organisation free day",
        }
    }

    /// Whether this named day is an allmän helgdag under Lag (1989:253).
    /// `false` for the eves, the organisation's days and `Weekend` (the
    /// law also counts every Sunday, but that is not a named day).
    pub fn is_public_holiday(self) -> bool {
        matches!(
            self,
            Self::NewYearsDay
                | Self::Epiphany
                | Self::GoodFriday
                | Self::EasterSunday
                | Self::EasterMonday
                | Self::MayDay
                | Self::AscensionDay
                | Self::NationalDay
                | Self::Whitsunday
                | Self::WhitMonday
                | Self::MidsummerDay
                | Self::AllSaintsDay
                | Self::ChristmasDay
                | Self::BoxingDay
        )
    }
}

/// What a date is for the reading duty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayKind {
    /// Every mailbox must be read on this day.
    Required,
    /// No reading duty, for this reason.
    Free(FreeReason),
}

/// Eves that an organisation may additionally make free. Keys (serde):
/// `twelfth_night_eve`, `maundy_thursday`, `walpurgis_night`,
/// `all_saints_eve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptionalEve {
    TwelfthNightEve,
    MaundyThursday,
    WalpurgisNight,
    AllSaintsEve,
}

impl OptionalEve {
    fn reason(self) -> FreeReason {
        match self {
            Self::TwelfthNightEve => FreeReason::TwelfthNightEve,
            Self::MaundyThursday => FreeReason::MaundyThursday,
            Self::WalpurgisNight => FreeReason::WalpurgisNight,
            Self::AllSaintsEve => FreeReason::AllSaintsEve,
        }
    }
}

/// Errors of the calendar: requests it refuses to answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("year {year} is outside the supported range {min}–{max}")]
    YearOutOfRange { year: i32, min: i32, max: i32 },
    #[error("month {month} is not a month (expected 1–12)")]
    MonthOutOfRange { month: u32 },
}

/// The Swedish rule plus an organisation's extra free days and eves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calendar {
    extra_free_days: BTreeSet<NaiveDate>,
    free_eves: Vec<OptionalEve>,
}

impl Calendar {
    /// Exactly the statutory rule, no organisation options.
    pub fn swedish() -> Self {
        Self::default()
    }

    /// The statutory rule plus `extra_free_days` (reason `org_free_day`)
    /// and the listed optional eves. Duplicates are harmless.
    pub fn with_options(extra_free_days: Vec<NaiveDate>, mut free_eves: Vec<OptionalEve>) -> Self {
        free_eves.sort_by_key(|e| e.reason().key());
        free_eves.dedup();
        Self {
            extra_free_days: extra_free_days.into_iter().collect(),
            free_eves,
        }
    }

    /// Required, or free and why. A named day wins over `Weekend`.
    pub fn day_kind(&self, d: NaiveDate) -> Result<DayKind, CalendarError> {
        Ok(match self.named_day(d)? {
            Some(reason) => DayKind::Free(reason),
            None if is_weekend(d) => DayKind::Free(FreeReason::Weekend),
            None => DayKind::Required,
        })
    }

    /// Whether `d` is a required reading day.
    pub fn is_required(&self, d: NaiveDate) -> Result<bool, CalendarError> {
        Ok(self.day_kind(d)? == DayKind::Required)
    }

    /// The holiday, eve or organisation day on `d` (also on a weekend);
    /// `None` when `d` is no named day.
    pub fn named_day(&self, d: NaiveDate) -> Result<Option<FreeReason>, CalendarError> {
        let year = d.year();
        check_year(year)?;
        let easter = easter_sunday(year);
        let by_rule = STATUTORY
            .into_iter()
            .chain(self.free_eves.iter().map(|e| e.reason()))
            .find(|&r| rule_date(r, year, easter) == Some(d));
        let by_org = self
            .extra_free_days
            .contains(&d)
            .then_some(FreeReason::OrgFreeDay);
        Ok(by_rule.or(by_org))
    }
}

fn check_year(year: i32) -> Result<(), CalendarError> {
    if (MIN_YEAR..=MAX_YEAR).contains(&year) {
        Ok(())
    } else {
        Err(CalendarError::YearOutOfRange {
            year,
            min: MIN_YEAR,
            max: MAX_YEAR,
        })
    }
}

fn is_weekend(d: NaiveDate) -> bool {
    matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

/// The date of a rule-based named day in `year` (whose Easter Sunday is
/// `easter`), `None` when the day does not exist that year or is not
/// rule-based (`Weekend`, `OrgFreeDay`). Only called with a checked year.
fn rule_date(reason: FreeReason, year: i32, easter: NaiveDate) -> Option<NaiveDate> {
    let after_easter = |days: i64| Some(easter + TimeDelta::days(days));
    match reason {
        FreeReason::NewYearsDay => Some(ymd(year, 1, 1)),
        FreeReason::Epiphany => Some(ymd(year, 1, 6)),
        FreeReason::GoodFriday => after_easter(-2),
        FreeReason::EasterSunday => Some(easter),
        FreeReason::EasterMonday => after_easter(1),
        FreeReason::MayDay => Some(ymd(year, 5, 1)),
        FreeReason::AscensionDay => after_easter(39),
        FreeReason::NationalDay => (year >= NATIONAL_DAY_REFORM_YEAR).then(|| ymd(year, 6, 6)),
        FreeReason::Whitsunday => after_easter(49),
        FreeReason::WhitMonday => {
            (year < NATIONAL_DAY_REFORM_YEAR).then(|| easter + TimeDelta::days(50))
        }
        FreeReason::MidsummerEve => Some(saturday_from(year, 6, 20) - TimeDelta::days(1)),
        FreeReason::MidsummerDay => Some(saturday_from(year, 6, 20)),
        FreeReason::AllSaintsDay => Some(saturday_from(year, 10, 31)),
        FreeReason::ChristmasEve => Some(ymd(year, 12, 24)),
        FreeReason::ChristmasDay => Some(ymd(year, 12, 25)),
        FreeReason::BoxingDay => Some(ymd(year, 12, 26)),
        FreeReason::NewYearsEve => Some(ymd(year, 12, 31)),
        FreeReason::TwelfthNightEve => Some(ymd(year, 1, 5)),
        FreeReason::MaundyThursday => after_easter(-3),
        FreeReason::WalpurgisNight => Some(ymd(year, 4, 30)),
        FreeReason::AllSaintsEve => Some(saturday_from(year, 10, 31) - TimeDelta::days(1)),
        FreeReason::Weekend | FreeReason::OrgFreeDay => None,
    }
}

/// The first Saturday on or after `month`/`day` of `year` ("the Saturday
/// between day and day + 6").
fn saturday_from(year: i32, month: u32, day: u32) -> NaiveDate {
    let start = ymd(year, month, day);
    let ahead =
        (Weekday::Sat.num_days_from_monday() + 7 - start.weekday().num_days_from_monday()) % 7;
    start + TimeDelta::days(i64::from(ahead))
}

/// A date from parts that are valid by construction. Panics only when
/// `year` is outside chrono's range (±262 142); callers pass a checked year
/// or document the panic.
fn ymd(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day)
        .expect("fixed month/day is valid in every year chrono supports")
}

/// Easter Sunday of `year` by the anonymous Gregorian algorithm
/// (Meeus/Jones/Butcher). Not range-checked: correct for every Gregorian
/// year (1583 on).
///
/// # Panics
/// If `year` is outside chrono's date range (±262 142).
pub fn easter_sunday(year: i32) -> NaiveDate {
    let a = year.rem_euclid(19);
    let b = year.div_euclid(100);
    let c = year.rem_euclid(100);
    let (d, e) = (b.div_euclid(4), b.rem_euclid(4));
    let f = (b + 8).div_euclid(25);
    let g = (b - f + 1).div_euclid(3);
    let h = (19 * a + b - d - g + 15).rem_euclid(30);
    let (i, k) = (c / 4, c % 4);
    let l = (32 + 2 * e + 2 * i - h - k).rem_euclid(7);
    let m = (a + 11 * h + 22 * l).div_euclid(451);
    let n = h + l - 7 * m + 114;
    // n / 31 is 3 or 4 and n % 31 + 1 is a valid day of that month: both
    // are small non-negative numbers, so the casts are lossless.
    ymd(year, (n / 31) as u32, (n % 31 + 1) as u32)
}

/// The Europe/Stockholm calendar date of an instant.
///
/// Each thread keeps the last local day's span in UTC: events come in time order, so
/// nearly every call is answered by two comparisons instead of a time-zone table search
/// (which callgrind counted at about 250 instructions a call).
pub fn local_day(t: DateTime<Utc>) -> NaiveDate {
    thread_local!(static LAST: Cell<Option<(i64, i64, NaiveDate)>> = const { Cell::new(None) });
    let secs = t.timestamp();
    if let Some((start, end, day)) = LAST.get() {
        if (start..end).contains(&secs) {
            return day;
        }
    }
    let day = t.with_timezone(&TZ).date_naive();
    if let Some(next) = day.succ_opt().filter(|_| (MIN_YEAR..=MAX_YEAR).contains(&day.year())) {
        LAST.set(Some((day_start_utc(day).timestamp(), day_start_utc(next).timestamp(), day)));
    }
    day
}

/// The instant local day `d` begins (local midnight, or the end of a DST
/// gap if midnight were skipped — Stockholm switches at 02:00/03:00, so
/// in practice always midnight).
///
/// # Panics
/// Only at the very ends of chrono's date range.
pub fn day_start_utc(d: NaiveDate) -> DateTime<Utc> {
    let midnight = d.and_time(NaiveTime::MIN);
    match TZ.from_local_datetime(&midnight) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
        LocalResult::None => {
            // Midnight skipped: the day starts when the clock jumps, i.e.
            // midnight read with the offset in force before the gap.
            let before = TZ
                .offset_from_utc_datetime(&(midnight - TimeDelta::days(1)))
                .fix();
            Utc.from_utc_datetime(&(midnight - before))
        }
    }
}

/// The instant local day `d` ends: the start of the next day. 23 hours
/// after [`day_start_utc`] on the spring-forward day, 25 on the autumn day.
///
/// # Panics
/// If `d` is chrono's last representable date.
pub fn day_end_utc(d: NaiveDate) -> DateTime<Utc> {
    day_start_utc(
        d.succ_opt()
            .expect("day_end_utc: no day after chrono's last date"),
    )
}

/// Output format of `brevvakt calendar`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RenderFormat {
    Text,
    Json,
}

/// The text of `brevvakt calendar YEAR [--month M] [--format text|json]`.
///
/// Text: one line per weekday of the period, `2026-06-18 Thu required` or
/// `2026-06-19 Fri midsommarafton / Midsummer Eve` (weekends are not
/// listed), a total line per month (`2026-06: 21 required reading days`)
/// and, for a whole year, a year total (`2026: 251 required reading days`).
///
/// JSON: one object per line for every date of the period, weekends
/// included: `{"date":"2026-06-19","required":false,"reason":"midsummer_eve"}`
/// with `reason` null on required days.
///
/// Every line ends with `\n`.
pub fn render(
    cal: &Calendar,
    year: i32,
    month: Option<u32>,
    format: RenderFormat,
) -> Result<String, CalendarError> {
    check_year(year)?;
    let months = match month {
        Some(m @ 1..=12) => m..=m,
        Some(m) => return Err(CalendarError::MonthOutOfRange { month: m }),
        None => 1..=12,
    };
    let mut out = String::new();
    let mut year_total = 0;
    for m in months {
        let days = month_days(year, m)
            .map(|d| cal.day_kind(d).map(|k| (d, k)))
            .collect::<Result<Vec<_>, _>>()?;
        year_total += days.iter().filter(|(_, k)| *k == DayKind::Required).count();
        match format {
            RenderFormat::Text => push_text_month(&mut out, year, m, &days),
            RenderFormat::Json => days
                .iter()
                .for_each(|&(d, k)| push_json_day(&mut out, d, k)),
        }
    }
    if format == RenderFormat::Text && month.is_none() {
        push_line(
            &mut out,
            format_args!("{year}: {year_total} required reading days"),
        );
    }
    Ok(out)
}

/// Every date of `month` in `year` (both already validated).
fn month_days(year: i32, month: u32) -> impl Iterator<Item = NaiveDate> {
    ymd(year, month, 1)
        .iter_days()
        .take_while(move |d| d.month() == month)
}

fn push_text_month(out: &mut String, year: i32, month: u32, days: &[(NaiveDate, DayKind)]) {
    for &(d, kind) in days.iter().filter(|(d, _)| !is_weekend(*d)) {
        let wd = d.weekday();
        match kind {
            DayKind::Required => push_line(out, format_args!("{d} {wd} required")),
            DayKind::Free(r) => push_line(
                out,
                format_args!("{d} {wd} {} / {}", r.swedish(), r.english()),
            ),
        }
    }
    let required = days.iter().filter(|(_, k)| *k == DayKind::Required).count();
    push_line(
        out,
        format_args!("{year}-{month:02}: {required} required reading days"),
    );
}

fn push_json_day(out: &mut String, d: NaiveDate, kind: DayKind) {
    // Keys are plain ASCII snake_case and dates ISO digits, so no escaping
    // is needed.
    match kind {
        DayKind::Required => push_line(
            out,
            format_args!(r#"{{"date":"{d}","required":true,"reason":null}}"#),
        ),
        DayKind::Free(r) => push_line(
            out,
            format_args!(
                r#"{{"date":"{d}","required":false,"reason":"{}"}}"#,
                r.key()
            ),
        ),
    }
}

fn push_line(out: &mut String, line: std::fmt::Arguments<'_>) {
    // Writing to a String never fails.
    let _ = writeln!(out, "{line}");
}
