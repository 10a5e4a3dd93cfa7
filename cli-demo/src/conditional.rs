//! Conditional transfers, as curl makes them: `-z DATE|FILE` asks only for a body newer than a
//! date, or than a file (`-z -DATE`: only for one not newer); `--etag-compare FILE` only for one
//! whose entity tag is not the one FILE holds, and `--etag-save FILE` keeps the response's tag
//! there for next time; `-R` gives a saved file the server's `Last-Modified` as its time. The
//! server's 304 then means the file you have is current: it is left as it is.
//!
//! The conditions are read once, before anything is fetched ([`resolve`]), into the fields every
//! request carries (a `-H` field of the same name wins, as with curl).

use std::path::Path;
use std::time::{Duration, SystemTime};

use courier_engine::Response;
use courier_engine::reexports::http::header::{
    ETAG, HeaderValue, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_UNMODIFIED_SINCE, LAST_MODIFIED,
};

use crate::Failure;
use crate::cli::Options;

/// The longest entity tag `--etag-compare` reads from its file.
const LONGEST_ETAG: usize = 8 * 1024;

/// Reads `-z` and `--etag-compare` into `options.conditions`, the fields each request carries.
/// A `-z` that is neither a date nor an existing file is said and set aside, as curl does; an
/// `--etag-compare` file that is missing or empty asks for no condition (the first run of an
/// update script has no tag yet).
///
/// # Errors
/// The `--etag-compare` file cannot be read, or holds no entity tag.
pub(crate) fn resolve(options: &mut Options) -> Result<(), Failure> {
    if let Some(cond) = options.time_cond.clone() {
        let (name, text) = match cond.strip_prefix('-') {
            Some(date) => (IF_UNMODIFIED_SINCE, date),
            None => (IF_MODIFIED_SINCE, cond.trim_start_matches('+')),
        };
        let time =
            parse_date(text).or_else(|| std::fs::metadata(text).and_then(|m| m.modified()).ok());
        match time {
            Some(time) => {
                let value = HeaderValue::from_str(&httpdate::fmt_http_date(time))
                    .expect("an HTTP date is a field value");
                options.conditions.push((name, value));
            }
            None => say!(
                "courier: -z {cond:?} is neither a date nor an existing file: fetching \
                 unconditionally"
            ),
        }
    }
    if let Some(file) = &options.etag_compare {
        let unreadable = |e: std::io::Error| {
            Failure::usage(format!(
                "--etag-compare: cannot read {}: {e}",
                file.display()
            ))
        };
        let text = match courier_storage::write::read_bounded(file) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(unreadable(e)),
        };
        let tag = text.lines().next().unwrap_or("").trim();
        if !tag.is_empty() {
            let value = HeaderValue::from_str(tag)
                .ok()
                .filter(|_| tag.len() <= LONGEST_ETAG)
                .ok_or_else(|| {
                    Failure::usage(format!(
                        "--etag-compare: {} holds no entity tag on its first line",
                        file.display()
                    ))
                })?;
            options.conditions.push((IF_NONE_MATCH, value));
        }
    }
    Ok(())
}

/// Whether a request with these conditions may be answered 304, so that its output is a file to
/// keep until the answer says otherwise.
pub(crate) fn may_keep(options: &Options) -> bool {
    options.time_cond.is_some() || options.etag_compare.is_some()
}

/// A date as `-z` takes it: an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT` and its two older
/// forms), `YYYYMMDD`, `YYYY-MM-DD`, or `YYYY-MM-DDTHH:MM:SS` (or with a space for the `T`), with
/// an optional `Z`; all in UTC.
pub(crate) fn parse_date(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    if let Ok(time) = httpdate::parse_http_date(text) {
        return Some(time);
    }
    let (date, clock) = match text.split_once(['T', ' ']) {
        Some((date, clock)) => (date, Some(clock.trim_end_matches('Z'))),
        None => (text.trim_end_matches('Z'), None),
    };
    let number = |s: &str| {
        s.parse::<u32>()
            .ok()
            .filter(|_| s.bytes().all(|b| b.is_ascii_digit()))
    };
    let (year, month, day) = match date.split('-').collect::<Vec<_>>()[..] {
        [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 => {
            (number(y)?, number(m)?, number(d)?)
        }
        // Digits only before it is cut: a byte count is not a character count.
        [ymd] if ymd.len() == 8 && ymd.bytes().all(|b| b.is_ascii_digit()) => {
            (number(&ymd[..4])?, number(&ymd[4..6])?, number(&ymd[6..])?)
        }
        _ => return None,
    };
    let seconds_of_day = match clock {
        None => 0,
        Some(clock) => match clock.split(':').collect::<Vec<_>>()[..] {
            [h, m, s] if [h, m, s].iter().all(|p| p.len() == 2) => {
                let (h, m, s) = (number(h)?, number(m)?, number(s)?);
                if h > 23 || m > 59 || s > 60 {
                    return None;
                }
                u64::from(h * 3600 + m * 60 + s)
            }
            _ => return None,
        },
    };
    let days = days_since_epoch(year, month, day)?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(days * 86_400 + seconds_of_day))
}

/// Days from 1970-01-01 to the date (from 1970 on), or `None` for a date that is not one.
fn days_since_epoch(year: u32, month: u32, day: u32) -> Option<u64> {
    let leap = |y: u32| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let lengths = [
        31,
        if leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if year < 1970 || !(1..=12).contains(&month) || day == 0 || day > lengths[month as usize - 1] {
        return None;
    }
    let years: u64 = (1970..year).map(|y| if leap(y) { 366 } else { 365 }).sum();
    let months: u64 = lengths[..month as usize - 1]
        .iter()
        .map(|&d| u64::from(d))
        .sum();
    Some(years + months + u64::from(day - 1))
}

/// `--etag-save FILE`: the response's entity tag, on a line of its own (a response without one
/// leaves the file as it is).
///
/// # Errors
/// The file cannot be written.
pub(crate) fn save_etag(file: &Path, response: &Response) -> std::io::Result<()> {
    let Some(tag) = response.headers().get(ETAG) else {
        return Ok(());
    };
    let mut line = tag.as_bytes().to_vec();
    line.push(b'\n');
    courier_storage::write::replace(file, &line, courier_storage::write::Durability::PageCache)
}

/// `-R`: gives the regular file at `path` the response's `Last-Modified` as its modification
/// time (a device or a FIFO written into keeps its own).
pub(crate) fn set_remote_time(path: &Path, response: &Response) {
    let Some(time) = response
        .headers()
        .get(LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    else {
        return;
    };
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
        && let Ok(file) = std::fs::OpenOptions::new().write(true).open(path)
    {
        let _ = file.set_modified(time);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Option<SystemTime> {
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn dates_are_read_in_the_forms_curl_users_write() {
        assert_eq!(parse_date("Sun, 06 Nov 1994 08:49:37 GMT"), at(784_111_777));
        assert_eq!(
            parse_date("Sunday, 06-Nov-94 08:49:37 GMT"),
            at(784_111_777)
        );
        assert_eq!(parse_date("Sun Nov  6 08:49:37 1994"), at(784_111_777));
        assert_eq!(parse_date("19941106"), at(784_080_000));
        assert_eq!(parse_date("1994-11-06"), at(784_080_000));
        assert_eq!(parse_date("1994-11-06T08:49:37Z"), at(784_111_777));
        assert_eq!(parse_date("1994-11-06 08:49:37"), at(784_111_777));
        assert_eq!(parse_date("2024-02-29"), at(1_709_164_800));
        assert_eq!(parse_date("1970-01-01"), at(0));
        for bad in [
            "",
            "2023-02-29",
            "2023-13-01",
            "2023-00-10",
            "1969-12-31",
            "2023-1-1",
            "202301011",
            "2023-01-01T25:00:00",
            "tomorrow",
            "2023-01-01T10:00",
            "+1-01-01",
        ] {
            assert_eq!(parse_date(bad), None, "{bad:?}");
        }
    }

    proptest::proptest! {
        /// Any text: a time or nothing, never a panic.
        #[test]
        fn any_text_is_a_date_or_not(text in "\\PC{0,40}") {
            let _ = parse_date(&text);
        }

        /// Every day from 1970 on, written as `YYYY-MM-DD` and `YYYYMMDD` from the day `httpdate`
        /// writes for it, reads back as that day.
        #[test]
        fn iso_dates_agree_with_http_dates(days in 0u64..60_000) {
            let time = SystemTime::UNIX_EPOCH + Duration::from_secs(days * 86_400);
            let http = httpdate::fmt_http_date(time);
            let parts: Vec<&str> = http.split(' ').collect();
            const MONTHS: [&str; 12] = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            let month = MONTHS.iter().position(|m| *m == parts[2]).unwrap() + 1;
            let (day, year) = (parts[1], parts[3]);
            proptest::prop_assert_eq!(parse_date(&http), Some(time));
            proptest::prop_assert_eq!(parse_date(&format!("{year}-{month:02}-{day}")), Some(time));
            proptest::prop_assert_eq!(parse_date(&format!("{year}{month:02}{day}")), Some(time));
        }
    }
}
