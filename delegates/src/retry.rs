//! When a failed task is worth trying again, and how long to wait first: an error of the network
//! rather than of the request ([`is_transient_error`]), a status that says "not now" rather than
//! "no" ([`is_transient_status`]), the wait the server asks for (`Retry-After`, RFC 9110 section
//! 10.2.3: [`retry_after`]), else a doubling [`backoff`].
//!
//! A session never retries on its own, as URLSession does not: a download that fails this way
//! ends with its resume data, and the application decides. This is the policy of the callers that
//! do: the background service, and `courier download --retry`. curl's `--retry` follows the same
//! rules.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};

use crate::ErrorCode;

/// The longest wait a server can ask for: a `Retry-After` further out is taken as this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// Whether a task that failed with `code` may succeed if tried again later: the network, not the
/// request, was at fault (a timeout, a lost or refused connection, a name that did not resolve,
/// no network). A download that failed this way usually carries resume data to continue from.
pub fn is_transient_error(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::TimedOut
            | ErrorCode::NetworkConnectionLost
            | ErrorCode::CannotConnectToHost
            | ErrorCode::CannotFindHost
            | ErrorCode::DnsLookupFailed
            | ErrorCode::NotConnectedToInternet
    )
}

/// Whether a response with this status says "not now" rather than "no": 408, 429, 500, 502, 503
/// and 504, the statuses curl's `--retry` treats as transient.
pub fn is_transient_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// The wait before retry number `retries + 1` when the server asked for none: `first`, doubled
/// with each retry, never more than `most`.
pub fn backoff(first: Duration, most: Duration, retries: u32) -> Duration {
    let factor = 1u32.checked_shl(retries.min(20)).unwrap_or(u32::MAX);
    first.saturating_mul(factor).min(most)
}

/// How long the server asks the client to wait, from its `Retry-After` header at `now`: a number
/// of seconds, or an HTTP date (a date already past is no wait). `None` when the header is absent
/// or unreadable; never more than [`MAX_RETRY_AFTER`].
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // A run of digits too long for u64 is still "a very long time".
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use proptest::prelude::*;

    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    #[test]
    fn seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            retry_after(&headers("120"), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(retry_after(&headers(" 0 "), now), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            retry_after(&headers(&later), now),
            Some(Duration::from_secs(90))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(retry_after(&headers(&past), now), Some(Duration::ZERO));
        assert_eq!(
            retry_after(&headers("99999999999999999999999"), now),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(retry_after(&headers("-5"), now), None);
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn transient_statuses() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(is_transient_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [200, 206, 301, 400, 401, 403, 404, 416, 501] {
            assert!(
                !is_transient_status(StatusCode::from_u16(s).unwrap()),
                "{s}"
            );
        }
    }

    #[test]
    fn transient_errors_are_the_networks() {
        let transient: Vec<ErrorCode> = ErrorCode::ALL
            .iter()
            .copied()
            .filter(|c| is_transient_error(*c))
            .collect();
        assert_eq!(
            transient,
            [
                ErrorCode::TimedOut,
                ErrorCode::CannotFindHost,
                ErrorCode::CannotConnectToHost,
                ErrorCode::NetworkConnectionLost,
                ErrorCode::DnsLookupFailed,
                ErrorCode::NotConnectedToInternet,
            ]
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (first, most) = (Duration::from_millis(100), Duration::from_secs(1));
        let waits: Vec<u64> = (0..6)
            .map(|n| backoff(first, most, n).as_millis() as u64)
            .collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff(first, most, u32::MAX), most);
        assert_eq!(
            backoff(Duration::from_secs(u64::MAX), Duration::MAX, 30),
            Duration::MAX
        );
    }

    proptest! {
        /// Any header value: no panic, and never a wait over the cap.
        #[test]
        fn any_value_is_bounded(bytes in proptest::collection::vec(any::<u8>(), 0..64),
                                secs in 0..4_000_000_000u64) {
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                let mut h = HeaderMap::new();
                h.insert(http::header::RETRY_AFTER, v);
                if let Some(wait) = retry_after(&h, now) {
                    prop_assert!(wait <= MAX_RETRY_AFTER);
                }
            }
        }
    }
}
