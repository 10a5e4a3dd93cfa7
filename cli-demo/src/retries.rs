//! `--retry N` (`get`, `download`): whether a task that ended in a transient failure is tried
//! again, and after how long, by [`courier_engine::retry`]'s rules, as curl's `--retry`: an error
//! of the network, or a status that says "not now" (whose `Retry-After` sets the wait); else 1 s,
//! doubling up to 10 minutes, or the fixed `--retry-delay`. URLSession leaves this to the
//! application, which this command is.

use std::time::Duration;

use courier_engine::reexports::http::StatusCode;
use courier_engine::retry;

use crate::cli::Options;
use crate::events::Finished;

/// How a task that failed for a transient reason is tried again (`--retry N`, `--retry-delay`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Retries {
    /// How many times at most, per download (0: never).
    pub(crate) most: u32,
    /// A fixed wait before each, instead of the doubling backoff.
    pub(crate) delay: Option<Duration>,
    /// `--retry-all-errors`: every error is worth another try, and with `--fail` every HTTP
    /// error status.
    pub(crate) all_errors: bool,
    /// `--fail` or `--fail-with-body`: an HTTP error status fails the command.
    pub(crate) fails_on_status: bool,
}

/// The doubling backoff's first wait and its cap: curl's.
const FIRST_WAIT: Duration = Duration::from_secs(1);
const LONGEST_WAIT: Duration = Duration::from_secs(600);

impl Retries {
    /// The options' `--retry`, `--retry-delay` and `--retry-all-errors`.
    pub(crate) fn from(options: &Options) -> Retries {
        Retries {
            most: options.retry,
            delay: options.retry_delay,
            all_errors: options.retry_all_errors,
            fails_on_status: options.fails_on_status(),
        }
    }

    /// The note a retry makes on stderr: what went wrong with `url`, and when it is tried again.
    pub(crate) fn note(&self, url: &str, f: &Finished, wait: Duration, tried: u32) -> String {
        let left = self.most - tried - 1;
        let why = match &f.error {
            Some(e) => format!("{} ({})", e.message(), e.code().name()),
            None => format!("HTTP status {}", f.status.unwrap_or_default()),
        };
        format!(
            "courier: {}: {why}; trying again in {:.1} s ({left} more {} left)",
            crate::common::shown_url(url),
            wait.as_secs_f64(),
            if left == 1 { "retry" } else { "retries" },
        )
    }

    /// The wait before trying the task that ended as `f` again, after `tried` retries; `None`
    /// when it is not tried again: it succeeded, it failed for good, or its retries are spent.
    /// Transient: an error of the network ([`retry::is_transient_error`]), or a status that says
    /// "not now" ([`retry::is_transient_status`]), whose `Retry-After` sets the wait.
    pub(crate) fn wait(&self, f: &Finished, tried: u32) -> Option<Duration> {
        if tried >= self.most {
            return None;
        }
        let transient = match &f.error {
            // Ctrl-C stops the task: never tried again.
            Some(e) if self.all_errors => !e.is_cancelled(),
            Some(e) => retry::is_transient_error(e.code()),
            None => f
                .status
                .and_then(|s| StatusCode::from_u16(s).ok())
                .is_some_and(|s| {
                    retry::is_transient_status(s)
                        || (self.all_errors && self.fails_on_status && s.as_u16() >= 400)
                }),
        };
        transient.then(|| {
            f.retry_after
                .or(self.delay)
                .unwrap_or_else(|| retry::backoff(FIRST_WAIT, LONGEST_WAIT, tried))
        })
    }
}

#[cfg(test)]
mod tests {
    use courier_engine::ErrorCode;

    use super::*;

    #[test]
    fn only_transient_failures_are_tried_again_while_retries_last() {
        use courier_engine::Error;
        let ended = |error: Option<ErrorCode>, status: Option<u16>, asked: Option<u64>| Finished {
            task: 1,
            status,
            error: error.map(|c| Error::new(c, "x")),
            saved: None,
            retry_after: asked.map(Duration::from_secs),
            body_written: false,
            write_out: None,
            unfollowed: None,
        };
        let retries = Retries {
            most: 2,
            ..Retries::default()
        };
        let lost = ended(Some(ErrorCode::NetworkConnectionLost), None, None);
        assert_eq!(retries.wait(&lost, 0), Some(Duration::from_secs(1)));
        assert_eq!(retries.wait(&lost, 1), Some(Duration::from_secs(2)));
        assert_eq!(retries.wait(&lost, 2), None, "spent");
        let timed_out = ended(Some(ErrorCode::TimedOut), Some(200), None);
        assert!(retries.wait(&timed_out, 0).is_some());
        for (code, status) in [
            (Some(ErrorCode::Cancelled), None),
            (Some(ErrorCode::ServerCertificateUntrusted), None),
            (Some(ErrorCode::CannotDecodeContentData), Some(200)),
            (None, Some(200)),
            (None, Some(404)),
            (None, Some(501)),
            (None, None),
        ] {
            assert_eq!(
                retries.wait(&ended(code, status, None), 0),
                None,
                "{code:?} {status:?}"
            );
        }
        let busy = ended(None, Some(503), Some(7));
        assert_eq!(retries.wait(&busy, 0), Some(Duration::from_secs(7)));
        let fixed = Retries {
            most: 1,
            delay: Some(Duration::from_millis(250)),
            ..Retries::default()
        };
        assert_eq!(
            fixed.wait(&busy, 0),
            Some(Duration::from_secs(7)),
            "the server's wait wins"
        );
        let throttled = ended(None, Some(429), None);
        assert_eq!(fixed.wait(&throttled, 0), Some(Duration::from_millis(250)));
        assert_eq!(
            Retries::default().wait(&throttled, 0),
            None,
            "no --retry: never"
        );
    }
}
