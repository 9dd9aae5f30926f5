//! `Calendar::day_kind` over every date of a year.

use brevvakt::calendar::{Calendar, DayKind, OptionalEve};
use chrono::{Datelike, NaiveDate};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

fn year_2026() -> Vec<NaiveDate> {
    let first = NaiveDate::from_ymd_opt(2026, 1, 1).expect("valid date");
    first.iter_days().take_while(|d| d.year() == 2026).collect()
}

fn day_kind_over_a_year(c: &mut Criterion) {
    let dates = year_2026();
    let calendars = [
        ("swedish", Calendar::swedish()),
        (
            "with_options",
            Calendar::with_options(
                vec![dates[134]],
                vec![OptionalEve::MaundyThursday, OptionalEve::AllSaintsEve],
            ),
        ),
    ];
    for (name, cal) in calendars {
        c.bench_function(&format!("day_kind_year_2026_{name}"), |b| {
            b.iter(|| {
                dates
                    .iter()
                    .filter(|&&d| cal.day_kind(black_box(d)) == Ok(DayKind::Required))
                    .count()
            })
        });
    }
}

criterion_group!(benches, day_kind_over_a_year);
criterion_main!(benches);
