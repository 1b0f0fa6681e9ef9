//! The `expiration` attribute of `<registered/>`: an instant as ISO-8601 UTC with a `Z`.

use crate::clock::UnixMillis;

const MILLIS_PER_DAY: i64 = 86_400_000;

/// Formats `at` as ISO-8601 UTC with milliseconds and a trailing `Z`, e.g.
/// `2023-01-05T12:54:54.036Z`, the form up's `Instant.toString()` writes.
///
/// Never `+00:00`: Conversations only parses a zone written as `Z` or `+hhmm` (docs/protocol.md
/// B §3.3, trap 11). Years past 9999 get a `+` and years before 1 a `-`, as in Java's
/// `Instant.toString()`; every `i64` formats without overflow.
pub fn iso8601_utc(at: UnixMillis) -> String {
    let days = at.div_euclid(MILLIS_PER_DAY);
    let millis_of_day = at.rem_euclid(MILLIS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let seconds_of_day = millis_of_day / 1000;
    let (hour, minute, second) = (
        seconds_of_day / 3600,
        seconds_of_day / 60 % 60,
        seconds_of_day % 60,
    );
    let millis = millis_of_day % 1000;
    let year = if year > 9999 {
        format!("+{year}")
    } else if year < 0 {
        format!("-{:04}", year.unsigned_abs())
    } else {
        format!("{year:04}")
    };
    format!("{year}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z")
}

/// The proleptic Gregorian (year, month, day) of a day counted from 1970-01-01, by Howard
/// Hinnant's `civil_from_days`: shift to eras of 400 years starting on 0000-03-01, so the leap
/// day is the last day of each shifted year.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    const DAYS_PER_ERA: i64 = 146_097;
    // 0000-03-01 is 719 468 days before 1970-01-01.
    let shifted = days + 719_468;
    let era = shifted.div_euclid(DAYS_PER_ERA);
    let day_of_era = shifted.rem_euclid(DAYS_PER_ERA);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months counted from March, so February (with the leap day) comes last.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        for (at, text) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (1_672_923_294_036, "2023-01-05T12:54:54.036Z"),
            (1_900_000_000_000, "2030-03-17T17:46:40.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (-2_203_891_200_000, "1900-03-01T00:00:00.000Z"),
            (4_107_542_400_000, "2100-03-01T00:00:00.000Z"),
            (4_107_542_399_999, "2100-02-28T23:59:59.999Z"),
            (1_735_689_599_999, "2024-12-31T23:59:59.999Z"),
            (1_735_689_600_000, "2025-01-01T00:00:00.000Z"),
            (-11_676_096_000_000, "1600-01-01T00:00:00.000Z"),
            (-62_135_596_800_000, "0001-01-01T00:00:00.000Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
            (253_402_300_800_000, "+10000-01-01T00:00:00.000Z"),
        ] {
            assert_eq!(iso8601_utc(at), text, "{at}");
        }
    }

    #[test]
    fn the_extremes_match_java_instant() {
        // Instant.ofEpochMilli(Long.MAX_VALUE / MIN_VALUE).toString()
        assert_eq!(iso8601_utc(i64::MAX), "+292278994-08-17T07:12:55.807Z");
        assert_eq!(iso8601_utc(i64::MIN), "-292275055-05-16T16:47:04.192Z");
    }

    #[test]
    fn never_an_offset_always_a_z() {
        for at in [0, 1, 999, 1_000, 86_399_999, 1_700_000_000_123] {
            let text = iso8601_utc(at);
            assert!(text.ends_with('Z') && !text.contains('+'), "{text}");
            assert_eq!(text.len(), 24, "{text}");
        }
    }

    /// Walks four centuries day by day with a plain calendar (covering 1900 and 2100, which are
    /// not leap years, and 2000, which is) and compares every date.
    #[test]
    fn every_day_of_a_400_year_cycle_agrees_with_a_plain_calendar() {
        fn is_leap(year: i64) -> bool {
            (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
        }
        fn month_len(year: i64, month: i64) -> i64 {
            match month {
                2 if is_leap(year) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            }
        }
        // 1900-01-01 is 25 567 days before the epoch.
        let (mut year, mut month, mut day) = (1900, 1, 1);
        for days in -25_567..(-25_567 + 146_097 + 1) {
            assert_eq!(civil_from_days(days), (year, month, day), "day {days}");
            day += 1;
            if day > month_len(year, month) {
                day = 1;
                month += 1;
                if month > 12 {
                    month = 1;
                    year += 1;
                }
            }
        }
        assert_eq!((year, month, day), (2300, 1, 2));
    }
}
