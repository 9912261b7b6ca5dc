//! RFC 3339 timestamps (UTC) without a date-time dependency.

/// `2025-01-31T12:00:00Z` for a Unix time in seconds.
pub fn rfc3339(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Unix seconds for `2025-01-31`, `2025-01-31T12:00Z`, `2025-01-31T12:00:00Z` or with a
/// fraction of a second (dropped); `None` for anything else. Only UTC (`Z`) is accepted, so a
/// time is never read in an offset nobody meant.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let (date, time) = match text.split_once(['T', 't', ' ']) {
        Some((date, time)) => (date, Some(time.strip_suffix(['Z', 'z'])?)),
        None => (text, None),
    };
    let mut parts = date.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || d == 0 || d > 31 || !(1970..=9999).contains(&y) {
        return None;
    }
    let mut secs = 0;
    if let Some(time) = time {
        let time = time.split_once('.').map_or(time, |(whole, _)| whole);
        let fields: Vec<u64> = time
            .split(':')
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        let (h, min, s) = match fields[..] {
            [h, min] => (h, min, 0),
            [h, min, s] => (h, min, s),
            _ => return None,
        };
        if h > 23 || min > 59 || s > 60 {
            return None;
        }
        secs = h * 3600 + min * 60 + s;
    }
    let days = days_from_civil(y, m, d);
    // A day that does not exist (February 30th) comes back as another date: refuse it.
    if civil_from_days(days) != (y, m, d) {
        return None;
    }
    Some(u64::try_from(days).ok()? * 86_400 + secs)
}

/// Howard Hinnant's civil-to-days algorithm.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_435_200), "2026-11-23T12:00:00Z");
    }

    #[test]
    fn parses_what_it_writes_and_refuses_the_rest() {
        for secs in [0, 951_782_400, 1_795_435_200, 1_795_435_259] {
            assert_eq!(parse_rfc3339(&rfc3339(secs)), Some(secs));
        }
        assert_eq!(parse_rfc3339("2026-11-23"), Some(1_795_392_000));
        assert_eq!(parse_rfc3339("2026-11-23T12:00Z"), Some(1_795_435_200));
        assert_eq!(
            parse_rfc3339("2026-11-23T12:00:00.250Z"),
            Some(1_795_435_200)
        );
        for bad in [
            "2026-02-30",
            "2026-11-23T12:00:00+01:00",
            "2026-11-23T12:00:00",
            "yesterday",
            "2026-13-01",
            "",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
