//! Integration tests of the required-reading-day calendar.

use brevvakt::calendar::{
    day_end_utc, day_start_utc, easter_sunday, local_day, render, Calendar, CalendarError, DayKind,
    FreeReason, OptionalEve, RenderFormat, MAX_YEAR, MIN_YEAR,
};
use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc, Weekday};
use proptest::prelude::*;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("test dates are valid")
}

fn instant(s: &str) -> DateTime<Utc> {
    s.parse().expect("test instants are valid RFC 3339")
}

fn kind(d: NaiveDate) -> DayKind {
    Calendar::swedish()
        .day_kind(d)
        .expect("date in supported range")
}

fn free(reason: FreeReason) -> DayKind {
    DayKind::Free(reason)
}

const REQUIRED: DayKind = DayKind::Required;

// ---------------------------------------------------------------- midsummer

/// (year, day of June that is midsummer eve): every position 19..=25.
const MIDSUMMER_EVES: [(i32, u32); 7] = [
    (2026, 19),
    (2025, 20),
    (2024, 21),
    (2029, 22),
    (2028, 23),
    (2022, 24),
    (2027, 25),
];

#[test]
fn midsummer_eve_is_the_friday_in_every_position_from_19_to_25_june() {
    for (year, day) in MIDSUMMER_EVES {
        let eve = date(year, 6, day);
        assert_eq!(eve.weekday(), Weekday::Fri, "{eve} chosen as a Friday");
        assert_eq!(kind(eve), free(FreeReason::MidsummerEve), "{eve}");
        assert_eq!(
            kind(eve + TimeDelta::days(1)),
            free(FreeReason::MidsummerDay),
            "day after {eve}"
        );
    }
}

#[test]
fn the_thursday_before_midsummer_eve_and_the_friday_a_week_earlier_are_required() {
    for (year, day) in MIDSUMMER_EVES {
        let eve = date(year, 6, day);
        assert_eq!(
            kind(eve - TimeDelta::days(1)),
            REQUIRED,
            "Thursday before {eve}"
        );
        assert_eq!(
            kind(eve - TimeDelta::days(7)),
            REQUIRED,
            "Friday before {eve}"
        );
        assert_eq!(
            kind(eve + TimeDelta::days(7)),
            REQUIRED,
            "Friday after {eve}"
        );
    }
}

#[test]
fn every_year_has_exactly_one_midsummer_eve_and_it_is_a_friday_in_19_to_25_june() {
    let cal = Calendar::swedish();
    for year in MIN_YEAR..=MAX_YEAR {
        let eves: Vec<NaiveDate> = date(year, 6, 1)
            .iter_days()
            .take(30)
            .filter(|&d| cal.named_day(d).unwrap() == Some(FreeReason::MidsummerEve))
            .collect();
        assert_eq!(eves.len(), 1, "{year}: {eves:?}");
        assert_eq!(eves[0].weekday(), Weekday::Fri);
        assert!((19..=25).contains(&eves[0].day()), "{}", eves[0]);
    }
}

// ------------------------------------------------------- Christmas, New Year

#[test]
fn christmas_eve_on_a_wednesday_is_free_and_the_days_before_are_required() {
    assert_eq!(date(2025, 12, 24).weekday(), Weekday::Wed);
    assert_eq!(kind(date(2025, 12, 24)), free(FreeReason::ChristmasEve));
    assert_eq!(kind(date(2025, 12, 25)), free(FreeReason::ChristmasDay));
    assert_eq!(kind(date(2025, 12, 26)), free(FreeReason::BoxingDay));
    assert_eq!(kind(date(2025, 12, 23)), REQUIRED);
    assert_eq!(kind(date(2025, 12, 29)), REQUIRED);
}

#[test]
fn christmas_eve_on_a_weekend_reports_christmas_eve_not_weekend() {
    assert_eq!(date(2022, 12, 24).weekday(), Weekday::Sat);
    assert_eq!(kind(date(2022, 12, 24)), free(FreeReason::ChristmasEve));
    assert_eq!(date(2023, 12, 24).weekday(), Weekday::Sun);
    assert_eq!(kind(date(2023, 12, 24)), free(FreeReason::ChristmasEve));
    // The Friday before a weekend Christmas Eve is an ordinary day.
    assert_eq!(kind(date(2022, 12, 23)), REQUIRED);
}

#[test]
fn new_years_eve_on_a_weekday_is_free() {
    assert_eq!(date(2025, 12, 31).weekday(), Weekday::Wed);
    assert_eq!(kind(date(2025, 12, 31)), free(FreeReason::NewYearsEve));
    assert_eq!(kind(date(2025, 12, 30)), REQUIRED);
    assert_eq!(kind(date(2026, 1, 1)), free(FreeReason::NewYearsDay));
    assert_eq!(kind(date(2026, 1, 2)), REQUIRED);
}

#[test]
fn new_years_eve_on_a_weekend_reports_new_years_eve() {
    assert_eq!(kind(date(2022, 12, 31)), free(FreeReason::NewYearsEve)); // Saturday
    assert_eq!(kind(date(2023, 12, 31)), free(FreeReason::NewYearsEve)); // Sunday
    assert_eq!(kind(date(2022, 12, 30)), REQUIRED); // Friday
}

#[test]
fn a_plain_saturday_and_sunday_report_weekend() {
    assert_eq!(kind(date(2026, 6, 13)), free(FreeReason::Weekend));
    assert_eq!(kind(date(2026, 6, 14)), free(FreeReason::Weekend));
    assert_eq!(
        Calendar::swedish().named_day(date(2026, 6, 13)).unwrap(),
        None
    );
}

#[test]
fn epiphany_is_free_on_a_weekday() {
    assert_eq!(kind(date(2026, 1, 6)), free(FreeReason::Epiphany)); // Tuesday
    assert_eq!(kind(date(2026, 1, 5)), REQUIRED); // trettondagsafton is not free by default
}

// ------------------------------------------------------------------- Easter

#[test]
fn easter_sunday_matches_known_dates() {
    let known = [
        date(1990, 4, 15),
        date(1995, 4, 16),
        date(2000, 4, 23),
        date(2001, 4, 15),
        date(2008, 3, 23),
        date(2010, 4, 4),
        date(2011, 4, 24),
        date(2013, 3, 31),
        date(2016, 3, 27),
        date(2019, 4, 21),
        date(2024, 3, 31),
        date(2025, 4, 20),
        date(2026, 4, 5),
        date(2027, 3, 28),
        date(2038, 4, 25),
    ];
    for e in known {
        assert_eq!(easter_sunday(e.year()), e);
    }
}

#[test]
fn easter_sunday_is_always_a_sunday_between_22_march_and_25_april() {
    for year in MIN_YEAR..=MAX_YEAR {
        let e = easter_sunday(year);
        assert_eq!(e.weekday(), Weekday::Sun, "{e}");
        assert!(date(year, 3, 22) <= e && e <= date(year, 4, 25), "{e}");
    }
}

#[test]
fn easter_in_march_2024_good_friday_and_easter_monday_are_free() {
    assert_eq!(kind(date(2024, 3, 28)), REQUIRED); // skärtorsdagen
    assert_eq!(kind(date(2024, 3, 29)), free(FreeReason::GoodFriday));
    assert_eq!(kind(date(2024, 3, 30)), free(FreeReason::Weekend)); // påskafton is no named day
    assert_eq!(kind(date(2024, 3, 31)), free(FreeReason::EasterSunday));
    assert_eq!(kind(date(2024, 4, 1)), free(FreeReason::EasterMonday));
    assert_eq!(kind(date(2024, 4, 2)), REQUIRED);
}

#[test]
fn easter_in_april_2025_good_friday_and_easter_monday_are_free() {
    assert_eq!(kind(date(2025, 4, 17)), REQUIRED);
    assert_eq!(kind(date(2025, 4, 18)), free(FreeReason::GoodFriday));
    assert_eq!(kind(date(2025, 4, 20)), free(FreeReason::EasterSunday));
    assert_eq!(kind(date(2025, 4, 21)), free(FreeReason::EasterMonday));
    assert_eq!(kind(date(2025, 4, 22)), REQUIRED);
}

#[test]
fn ascension_day_is_the_thursday_39_days_after_easter() {
    assert_eq!(kind(date(2024, 5, 9)), free(FreeReason::AscensionDay));
    assert_eq!(kind(date(2025, 5, 29)), free(FreeReason::AscensionDay));
    assert_eq!(kind(date(2025, 5, 30)), REQUIRED); // the bridge day is not free by law
    assert_eq!(kind(date(2025, 5, 22)), REQUIRED);
}

#[test]
fn ascension_day_on_may_day_2008_is_free_and_reported_as_may_day() {
    assert_eq!(easter_sunday(2008) + TimeDelta::days(39), date(2008, 5, 1));
    assert_eq!(kind(date(2008, 5, 1)), free(FreeReason::MayDay));
}

#[test]
fn whitsunday_is_named_on_its_sunday() {
    assert_eq!(kind(date(2025, 6, 8)), free(FreeReason::Whitsunday));
    assert_eq!(kind(date(2025, 6, 9)), REQUIRED);
}

// ------------------------------------------------------- the 2005 reform

#[test]
fn june_6_is_an_ordinary_day_before_2005() {
    assert_eq!(date(2003, 6, 6).weekday(), Weekday::Fri);
    assert_eq!(kind(date(2003, 6, 6)), REQUIRED);
    assert_eq!(
        Calendar::swedish().named_day(date(2004, 6, 6)).unwrap(),
        None
    ); // a Sunday
}

#[test]
fn june_6_is_the_national_day_from_2005() {
    assert_eq!(kind(date(2005, 6, 6)), free(FreeReason::NationalDay)); // Monday
    assert_eq!(date(2025, 6, 6).weekday(), Weekday::Fri);
    assert_eq!(kind(date(2025, 6, 6)), free(FreeReason::NationalDay));
}

#[test]
fn whit_monday_is_free_up_to_2004_and_required_from_2005() {
    assert_eq!(kind(date(2004, 5, 31)), free(FreeReason::WhitMonday));
    assert_eq!(kind(date(2004, 5, 30)), free(FreeReason::Whitsunday));
    assert_eq!(kind(date(2005, 5, 16)), REQUIRED);
    assert_eq!(kind(date(2005, 5, 15)), free(FreeReason::Whitsunday));
}

// --------------------------------------------------------------- All Saints

#[test]
fn all_saints_day_is_always_the_saturday_between_31_october_and_6_november() {
    let cal = Calendar::swedish();
    for year in MIN_YEAR..=MAX_YEAR {
        let days: Vec<NaiveDate> = date(year, 10, 25)
            .iter_days()
            .take(20)
            .filter(|&d| cal.named_day(d).unwrap() == Some(FreeReason::AllSaintsDay))
            .collect();
        assert_eq!(days.len(), 1, "{year}: {days:?}");
        assert_eq!(days[0].weekday(), Weekday::Sat);
        assert!(
            date(year, 10, 31) <= days[0] && days[0] <= date(year, 11, 6),
            "{}",
            days[0]
        );
        // allhelgonaafton is not free by default
        assert_eq!(
            cal.day_kind(days[0] - TimeDelta::days(1)).unwrap(),
            REQUIRED
        );
    }
}

// ------------------------------------------------------------ organisation

#[test]
fn an_org_extra_free_day_is_not_required() {
    let bridge = date(2026, 5, 15); // Friday after Ascension Day
    assert_eq!(kind(bridge), REQUIRED);
    let cal = Calendar::with_options(vec![bridge], vec![]);
    assert_eq!(cal.day_kind(bridge).unwrap(), free(FreeReason::OrgFreeDay));
    assert!(!cal.is_required(bridge).unwrap());
    assert!(cal.is_required(date(2026, 5, 18)).unwrap());
}

#[test]
fn an_org_free_day_on_a_holiday_keeps_the_holidays_name() {
    let cal = Calendar::with_options(vec![date(2025, 12, 24)], vec![]);
    assert_eq!(
        cal.day_kind(date(2025, 12, 24)).unwrap(),
        free(FreeReason::ChristmasEve)
    );
}

#[test]
fn optional_eves_are_free_only_when_chosen() {
    let all = vec![
        OptionalEve::TwelfthNightEve,
        OptionalEve::MaundyThursday,
        OptionalEve::WalpurgisNight,
        OptionalEve::AllSaintsEve,
    ];
    let cal = Calendar::with_options(vec![], all);
    let cases = [
        (date(2026, 1, 5), FreeReason::TwelfthNightEve),
        (date(2026, 4, 2), FreeReason::MaundyThursday),
        (date(2026, 4, 30), FreeReason::WalpurgisNight),
        (date(2026, 10, 30), FreeReason::AllSaintsEve),
    ];
    for (d, reason) in cases {
        assert_eq!(kind(d), REQUIRED, "{d} by default");
        assert_eq!(cal.day_kind(d).unwrap(), free(reason), "{d} when chosen");
    }
}

#[test]
fn maundy_thursday_alone_frees_only_maundy_thursday() {
    let cal = Calendar::with_options(vec![], vec![OptionalEve::MaundyThursday]);
    assert_eq!(
        cal.day_kind(date(2025, 4, 17)).unwrap(),
        free(FreeReason::MaundyThursday)
    );
    assert_eq!(cal.day_kind(date(2025, 4, 30)).unwrap(), REQUIRED);
    assert_eq!(cal.day_kind(date(2025, 4, 16)).unwrap(), REQUIRED);
}

// ---------------------------------------------------------------- range

#[test]
fn years_1989_and_2201_are_refused() {
    let cal = Calendar::swedish();
    let err = cal.day_kind(date(1989, 12, 31)).unwrap_err();
    assert_eq!(
        err,
        CalendarError::YearOutOfRange {
            year: 1989,
            min: 1990,
            max: 2200
        }
    );
    assert_eq!(
        err.to_string(),
        "year 1989 is outside the supported range 1990–2200"
    );
    let err = cal.is_required(date(2201, 1, 1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "year 2201 is outside the supported range 1990–2200"
    );
    assert!(cal.named_day(date(2201, 1, 1)).is_err());
    assert!(render(&cal, 2201, None, RenderFormat::Text).is_err());
}

#[test]
fn the_first_and_last_supported_days_are_answered() {
    assert_eq!(kind(date(1990, 1, 1)), free(FreeReason::NewYearsDay));
    assert_eq!(kind(date(2200, 12, 31)), free(FreeReason::NewYearsEve));
}

// ------------------------------------------------------------ day bounds

#[test]
fn spring_forward_day_is_23_hours_and_autumn_day_25() {
    let spring = date(2026, 3, 29);
    assert_eq!(day_start_utc(spring), instant("2026-03-28T23:00:00Z"));
    assert_eq!(day_end_utc(spring), instant("2026-03-29T22:00:00Z"));
    assert_eq!(
        day_end_utc(spring) - day_start_utc(spring),
        TimeDelta::hours(23)
    );
    let autumn = date(2026, 10, 25);
    assert_eq!(day_start_utc(autumn), instant("2026-10-24T22:00:00Z"));
    assert_eq!(day_end_utc(autumn), instant("2026-10-25T23:00:00Z"));
    assert_eq!(
        day_end_utc(autumn) - day_start_utc(autumn),
        TimeDelta::hours(25)
    );
    let plain = date(2026, 1, 15);
    assert_eq!(
        day_end_utc(plain) - day_start_utc(plain),
        TimeDelta::hours(24)
    );
}

#[test]
fn before_1996_summer_time_ended_on_the_last_sunday_of_september() {
    let autumn = date(1995, 9, 24);
    assert_eq!(
        day_end_utc(autumn) - day_start_utc(autumn),
        TimeDelta::hours(25)
    );
    let october = date(1995, 10, 29);
    assert_eq!(
        day_end_utc(october) - day_start_utc(october),
        TimeDelta::hours(24)
    );
}

#[test]
fn a_winter_evening_at_2330_utc_belongs_to_the_next_local_day() {
    assert_eq!(
        local_day(instant("2026-01-15T23:30:00Z")),
        date(2026, 1, 16)
    );
    assert_eq!(
        local_day(instant("2026-01-15T22:59:59Z")),
        date(2026, 1, 15)
    );
}

#[test]
fn a_summer_evening_at_2130_utc_is_still_the_same_local_day() {
    assert_eq!(
        local_day(instant("2026-07-15T21:30:00Z")),
        date(2026, 7, 15)
    );
    assert_eq!(
        local_day(instant("2026-07-15T22:00:00Z")),
        date(2026, 7, 16)
    );
}

#[test]
fn only_the_last_sundays_of_march_and_october_are_not_24_hours_long() {
    // EU summer time rules (from 1996 on: autumn switch in October). The
    // chrono-tz tables end with 2099 (see the module doc), hence the bound.
    for year in 1996..=2099 {
        let odd: Vec<(NaiveDate, i64)> = date(year, 1, 1)
            .iter_days()
            .take_while(|d| d.year() == year)
            .map(|d| (d, (day_end_utc(d) - day_start_utc(d)).num_hours()))
            .filter(|&(_, h)| h != 24)
            .collect();
        let last_sunday = |m: u32| {
            let last = date(year, m, 31);
            last - TimeDelta::days(i64::from(last.weekday().num_days_from_sunday()))
        };
        assert_eq!(
            odd,
            vec![(last_sunday(3), 23), (last_sunday(10), 25)],
            "{year}"
        );
    }
}

// ------------------------------------------------------------ invariants

/// Named days bound to a weekday by their rule.
fn rule_weekday(reason: FreeReason) -> Option<Weekday> {
    match reason {
        FreeReason::GoodFriday | FreeReason::MidsummerEve | FreeReason::AllSaintsEve => {
            Some(Weekday::Fri)
        }
        FreeReason::EasterSunday | FreeReason::Whitsunday => Some(Weekday::Sun),
        FreeReason::EasterMonday | FreeReason::WhitMonday => Some(Weekday::Mon),
        FreeReason::AscensionDay | FreeReason::MaundyThursday => Some(Weekday::Thu),
        FreeReason::MidsummerDay | FreeReason::AllSaintsDay => Some(Weekday::Sat),
        _ => None,
    }
}

fn is_weekend(d: NaiveDate) -> bool {
    matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Checks that `d` is exactly one of required / weekend / named, consistently
/// across `day_kind`, `is_required` and `named_day`.
fn check_invariants(cal: &Calendar, d: NaiveDate) {
    let kind = cal.day_kind(d).unwrap();
    let named = cal.named_day(d).unwrap();
    assert_eq!(cal.is_required(d).unwrap(), kind == REQUIRED, "{d}");
    match kind {
        DayKind::Required => {
            assert!(!is_weekend(d), "{d} required on a weekend");
            assert_eq!(named, None, "{d}");
        }
        DayKind::Free(FreeReason::Weekend) => {
            assert!(is_weekend(d), "{d} weekend on a weekday");
            assert_eq!(named, None, "{d}");
        }
        DayKind::Free(reason) => {
            assert_eq!(named, Some(reason), "{d}");
            if let Some(wd) = rule_weekday(reason) {
                assert_eq!(d.weekday(), wd, "{d} {reason:?}");
            }
        }
    }
}

fn all_optional_eves() -> Calendar {
    Calendar::with_options(
        vec![],
        vec![
            OptionalEve::TwelfthNightEve,
            OptionalEve::MaundyThursday,
            OptionalEve::WalpurgisNight,
            OptionalEve::AllSaintsEve,
        ],
    )
}

#[test]
fn every_supported_date_is_exactly_one_of_required_weekend_or_named() {
    let (plain, eves) = (Calendar::swedish(), all_optional_eves());
    let last = date(MAX_YEAR, 12, 31);
    let mut count = 0;
    for d in date(MIN_YEAR, 1, 1).iter_days().take_while(|&d| d <= last) {
        check_invariants(&plain, d);
        check_invariants(&eves, d);
        count += 1;
    }
    assert_eq!(count, 77_066); // 211 years, 51 of them leap years
}

fn supported_date() -> impl Strategy<Value = NaiveDate> {
    let first = date(MIN_YEAR, 1, 1);
    let span = (date(MAX_YEAR, 12, 31) - first).num_days();
    (0..=span).prop_map(move |n| first + TimeDelta::days(n))
}

proptest! {
    #[test]
    fn sampled_dates_are_exactly_one_kind_and_required_only_on_weekdays(
        d in supported_date(),
        org_offset in 0i64..400,
    ) {
        let cal = Calendar::with_options(vec![d + TimeDelta::days(org_offset - 200)], vec![OptionalEve::MaundyThursday]);
        check_invariants(&Calendar::swedish(), d);
        check_invariants(&cal, d);
        // Options only ever remove required days.
        if cal.is_required(d).unwrap() {
            prop_assert!(Calendar::swedish().is_required(d).unwrap());
        }
    }

    #[test]
    fn sampled_days_start_and_end_inside_themselves(d in supported_date()) {
        let (start, end) = (day_start_utc(d), day_end_utc(d));
        prop_assert_eq!(local_day(start), d);
        prop_assert_eq!(local_day(end - TimeDelta::nanoseconds(1)), d);
        prop_assert_eq!(local_day(end), d + TimeDelta::days(1));
        let hours = (end - start).num_hours();
        prop_assert!((23..=25).contains(&hours));
    }
}

// ------------------------------------------------- counts against an oracle

/// Every named day of the statutory rule per year, listed by hand from the
/// published Swedish calendars (weekend ones included; the oracle filters).
#[rustfmt::skip]
fn hand_listed_named_days(year: i32) -> Vec<(u32, u32)> {
    match year {
        // Easter 31 Mar
        2024 => vec![(1, 1), (1, 6), (3, 29), (3, 31), (4, 1), (5, 1), (5, 9), (5, 19), (6, 6), (6, 21), (6, 22), (11, 2), (12, 24), (12, 25), (12, 26), (12, 31)],
        // Easter 20 Apr
        2025 => vec![(1, 1), (1, 6), (4, 18), (4, 20), (4, 21), (5, 1), (5, 29), (6, 6), (6, 8), (6, 20), (6, 21), (11, 1), (12, 24), (12, 25), (12, 26), (12, 31)],
        // Easter 5 Apr
        2026 => vec![(1, 1), (1, 6), (4, 3), (4, 5), (4, 6), (5, 1), (5, 14), (5, 24), (6, 6), (6, 19), (6, 20), (10, 31), (12, 24), (12, 25), (12, 26), (12, 31)],
        // Easter 28 Mar
        2027 => vec![(1, 1), (1, 6), (3, 26), (3, 28), (3, 29), (5, 1), (5, 6), (5, 16), (6, 6), (6, 25), (6, 26), (11, 6), (12, 24), (12, 25), (12, 26), (12, 31)],
        // Easter 16 Apr
        2028 => vec![(1, 1), (1, 6), (4, 14), (4, 16), (4, 17), (5, 1), (5, 25), (6, 4), (6, 6), (6, 23), (6, 24), (11, 4), (12, 24), (12, 25), (12, 26), (12, 31)],
        // Easter 1 Apr
        2029 => vec![(1, 1), (1, 6), (3, 30), (4, 1), (4, 2), (5, 1), (5, 10), (5, 20), (6, 6), (6, 22), (6, 23), (11, 3), (12, 24), (12, 25), (12, 26), (12, 31)],
        // Easter 21 Apr
        2030 => vec![(1, 1), (1, 6), (4, 19), (4, 21), (4, 22), (5, 1), (5, 30), (6, 6), (6, 9), (6, 21), (6, 22), (11, 2), (12, 24), (12, 25), (12, 26), (12, 31)],
        _ => unreachable!("oracle covers 2024..=2030"),
    }
}

/// Weekdays of the year minus the hand-listed named days that are weekdays.
fn oracle_required_count(year: i32) -> usize {
    let weekdays = date(year, 1, 1)
        .iter_days()
        .take_while(|d| d.year() == year)
        .filter(|&d| !is_weekend(d))
        .count();
    let free_weekdays = hand_listed_named_days(year)
        .into_iter()
        .map(|(m, d)| date(year, m, d))
        .filter(|&d| !is_weekend(d))
        .count();
    weekdays - free_weekdays
}

fn calendar_required_count(year: i32) -> usize {
    let cal = Calendar::swedish();
    date(year, 1, 1)
        .iter_days()
        .take_while(|d| d.year() == year)
        .filter(|&d| cal.is_required(d).unwrap())
        .count()
}

#[test]
fn required_day_counts_2024_to_2030_match_a_hand_listed_oracle() {
    // Also worked out by hand: weekdays minus named days on weekdays.
    let expected = [
        (2024, 251),
        (2025, 249),
        (2026, 251),
        (2027, 253),
        (2028, 251),
        (2029, 250),
        (2030, 250),
    ];
    for (year, count) in expected {
        assert_eq!(oracle_required_count(year), count, "oracle {year}");
        assert_eq!(calendar_required_count(year), count, "calendar {year}");
    }
}

#[test]
fn hand_listed_named_days_are_exactly_the_calendars_named_days() {
    let cal = Calendar::swedish();
    for year in 2024..=2030 {
        let mut listed: Vec<NaiveDate> = hand_listed_named_days(year)
            .into_iter()
            .map(|(m, d)| date(year, m, d))
            .collect();
        listed.sort();
        let named: Vec<NaiveDate> = date(year, 1, 1)
            .iter_days()
            .take_while(|d| d.year() == year)
            .filter(|&d| cal.named_day(d).unwrap().is_some())
            .collect();
        assert_eq!(named, listed, "{year}");
    }
}

// ------------------------------------------------------------------ render

#[test]
fn text_render_of_june_2026_lists_weekdays_and_the_month_total() {
    let text = render(&Calendar::swedish(), 2026, Some(6), RenderFormat::Text).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.contains(&"2026-06-18 Thu required"));
    assert!(lines.contains(&"2026-06-19 Fri midsommarafton / Midsummer Eve"));
    assert!(!text.contains("2026-06-20"), "weekends are not listed");
    assert_eq!(lines.last(), Some(&"2026-06: 21 required reading days"));
    assert_eq!(lines.len(), 22 + 1); // 22 weekdays and the total
    assert!(text.ends_with('\n'));
}

#[test]
fn text_render_of_a_year_ends_with_the_year_total() {
    let text = render(&Calendar::swedish(), 2026, None, RenderFormat::Text).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"2026: 251 required reading days"));
    assert!(lines.contains(&"2026-01: 20 required reading days"));
    assert!(lines.contains(&"2026-12: 20 required reading days"));
    assert_eq!(
        lines.iter().filter(|l| l.ends_with(" required")).count(),
        251
    );
}

#[test]
fn json_render_has_one_object_per_date_weekends_included() {
    let json = render(&Calendar::swedish(), 2026, Some(6), RenderFormat::Json).unwrap();
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 30);
    assert_eq!(
        json.lines().nth(18),
        Some(r#"{"date":"2026-06-19","required":false,"reason":"midsummer_eve"}"#)
    );
    assert_eq!(
        rows[17],
        serde_json::json!({"date": "2026-06-18", "required": true, "reason": null})
    );
    assert_eq!(
        rows[12],
        serde_json::json!({"date": "2026-06-13", "required": false, "reason": "weekend"})
    );
    assert_eq!(
        rows[19],
        serde_json::json!({"date": "2026-06-20", "required": false, "reason": "midsummer_day"})
    );
    let year = render(&Calendar::swedish(), 2028, None, RenderFormat::Json).unwrap();
    assert_eq!(year.lines().count(), 366);
}

#[test]
fn render_refuses_a_month_outside_1_to_12() {
    let cal = Calendar::swedish();
    assert_eq!(
        render(&cal, 2026, Some(13), RenderFormat::Text),
        Err(CalendarError::MonthOutOfRange { month: 13 })
    );
    assert_eq!(
        render(&cal, 2026, Some(0), RenderFormat::Json),
        Err(CalendarError::MonthOutOfRange { month: 0 })
    );
    assert!(render(&cal, 1989, Some(1), RenderFormat::Json).is_err());
}

// ------------------------------------------------------------------- names

const ALL_REASONS: [FreeReason; 23] = [
    FreeReason::Weekend,
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
    FreeReason::TwelfthNightEve,
    FreeReason::MaundyThursday,
    FreeReason::WalpurgisNight,
    FreeReason::AllSaintsEve,
    FreeReason::OrgFreeDay,
];

#[test]
fn reason_keys_are_the_serde_names_and_appear_in_the_module_doc() {
    let source = include_str!("../src/calendar.rs");
    for r in ALL_REASONS {
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            format!("\"{}\"", r.key())
        );
        let back: FreeReason = serde_json::from_str(&format!("\"{}\"", r.key())).unwrap();
        assert_eq!(back, r);
        let row = format!("//! | `{}` | {} | {} |", r.key(), r.swedish(), r.english());
        assert!(source.contains(&row), "module doc lacks row {row}");
    }
}

#[test]
fn optional_eves_parse_from_their_documented_keys() {
    let eves: Vec<OptionalEve> = serde_json::from_str(
        r#"["twelfth_night_eve","maundy_thursday","walpurgis_night","all_saints_eve"]"#,
    )
    .unwrap();
    assert_eq!(
        eves,
        vec![
            OptionalEve::TwelfthNightEve,
            OptionalEve::MaundyThursday,
            OptionalEve::WalpurgisNight,
            OptionalEve::AllSaintsEve
        ]
    );
    assert!(serde_json::from_str::<OptionalEve>(r#""national_day_eve""#).is_err());
}

#[test]
fn only_holidays_of_the_law_are_public_holidays() {
    let holidays: Vec<FreeReason> = ALL_REASONS
        .into_iter()
        .filter(|r| r.is_public_holiday())
        .collect();
    assert_eq!(
        holidays,
        vec![
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
            FreeReason::MidsummerDay,
            FreeReason::AllSaintsDay,
            FreeReason::ChristmasDay,
            FreeReason::BoxingDay,
        ]
    );
}

#[test]
fn the_local_day_of_every_quarter_hour_across_both_dst_switches_is_the_time_zone_s_in_any_order() {
    use chrono::TimeZone;
    let tz = chrono_tz::Europe::Stockholm;
    let start = instant("2026-03-27T00:00:00Z");
    let quarters: Vec<DateTime<Utc>> = (0..4 * 24 * 220).map(|q| start + TimeDelta::minutes(15 * q)).collect();
    let direct = |t: DateTime<Utc>| tz.from_utc_datetime(&t.naive_utc()).date_naive();
    // In time order (what the day cache is for), then jumping back and forth across it.
    for &t in &quarters {
        assert_eq!(local_day(t), direct(t), "{t}");
    }
    for i in 0..quarters.len() {
        let t = quarters[(i * 7919) % quarters.len()];
        assert_eq!(local_day(t), direct(t), "{t}");
        let edge = t - TimeDelta::nanoseconds(1);
        assert_eq!(local_day(edge), direct(edge), "{edge}");
    }
}
