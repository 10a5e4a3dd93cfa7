//! A task's rate cap, either way: when its next bytes may move so that all it moved fit the rate
//! (`Configuration::maximum_receive_rate_per_task` and `maximum_send_rate_per_task`, curl's
//! `--limit-rate`).
//!
//! The count starts at the first bytes, so a paced transfer never sends a burst to catch up on
//! the time before them; bytes go in slices of about a sixteenth of a second's worth, so the
//! server sees a steady rate and the request timeout sees bytes move.

use std::time::Duration;

use tokio::time::Instant;

/// Holds a transfer to `rate` bytes a second.
#[derive(Debug)]
pub(crate) struct Pace {
    rate: u64,
    /// When the first bytes moved.
    from: Option<Instant>,
    moved: u64,
}

impl Pace {
    /// The pace for a cap; `None` (and a cap of 0) is no cap.
    pub(crate) fn of(rate: Option<u64>) -> Option<Pace> {
        rate.filter(|r| *r > 0).map(|rate| Pace {
            rate,
            from: None,
            moved: 0,
        })
    }

    /// The most bytes to hand over at once: a sixteenth of a second's worth, at most `largest`.
    pub(crate) fn slice(&self, largest: usize) -> usize {
        usize::try_from(self.rate / 16)
            .unwrap_or(usize::MAX)
            .clamp(1, largest.max(1))
    }

    /// When the next bytes may move; `None` before the first (they go at once).
    pub(crate) fn due(&self) -> Option<Instant> {
        let from = self.from?;
        // Whole seconds and the rest apart: `moved / rate` as a float loses nanoseconds past
        // 2^53 bytes, and an integer product could overflow.
        let secs = self.moved / self.rate;
        let nanos = (self.moved % self.rate) as u128 * 1_000_000_000 / self.rate as u128;
        let wait = Duration::new(secs, nanos as u32);
        Some(super::transfer::after(from, wait))
    }

    /// `n` bytes moved (the clock starts at the first).
    pub(crate) fn moved(&mut self, n: usize) {
        self.from.get_or_insert_with(Instant::now);
        self.moved = self.moved.saturating_add(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_due_when_those_before_fit_the_rate() {
        let mut pace = Pace::of(Some(1000)).unwrap();
        assert_eq!(pace.due(), None, "the first bytes go at once");
        pace.moved(500);
        let from = pace.from.unwrap();
        assert_eq!(pace.due(), Some(from + Duration::from_millis(500)));
        pace.moved(2000);
        assert_eq!(pace.due(), Some(from + Duration::from_millis(2500)));
    }

    #[test]
    fn slices_are_a_sixteenth_of_a_second_within_bounds() {
        assert_eq!(Pace::of(Some(16_000)).unwrap().slice(1 << 18), 1000);
        assert_eq!(Pace::of(Some(3)).unwrap().slice(1 << 18), 1);
        assert_eq!(Pace::of(Some(u64::MAX)).unwrap().slice(1 << 18), 1 << 18);
        assert!(Pace::of(Some(0)).is_none() && Pace::of(None).is_none());
    }

    #[test]
    fn huge_counts_neither_overflow_nor_panic() {
        let mut pace = Pace::of(Some(1)).unwrap();
        pace.moved(usize::MAX);
        pace.moved(usize::MAX);
        assert!(pace.due().is_some());
        let mut fast = Pace::of(Some(u64::MAX)).unwrap();
        fast.moved(usize::MAX);
        assert!(fast.due().is_some());
    }
}
