//! The gate: how a task actor steers its transfer (pause, let the body flow, stop), and how the
//! resource timer stops it. One per transfer, made for every request.
//!
//! A `tokio::sync::watch` channel did this before. This is the same contract, built for its one
//! use: the state is five flags, so it lives in one atomic word with a version beside it (reading
//! it takes no lock), and a change wakes one `Notify` (a `watch` wakes eight, and its sender's
//! drop at the end of every transfer locked each).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::Notify;

/// How the actor steers the transfer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Gate {
    pub(super) paused: bool,
    pub(super) body_allowed: bool,
    /// Stop for good: a download writes what it has and checkpoints first.
    pub(super) stop: bool,
    /// Test hook: panic at the next wait on the network.
    pub(super) crash: bool,
    /// The resource timeout expired: the transfer fails with -1001.
    pub(super) expired: bool,
}

impl Gate {
    /// The transfer must end: stopped by the actor, or out of time.
    pub(super) fn halted(&self) -> bool {
        self.stop || self.expired
    }

    fn to_bits(self) -> u64 {
        u64::from(self.paused)
            | u64::from(self.body_allowed) << 1
            | u64::from(self.stop) << 2
            | u64::from(self.crash) << 3
            | u64::from(self.expired) << 4
    }

    fn from_bits(bits: u64) -> Gate {
        Gate {
            paused: bits & 1 != 0,
            body_allowed: bits & 1 << 1 != 0,
            stop: bits & 1 << 2 != 0,
            crash: bits & 1 << 3 != 0,
            expired: bits & 1 << 4 != 0,
        }
    }
}

/// The low bits hold the flags, the next one says every sender is gone, the rest count changes.
const FLAGS: u64 = (1 << 5) - 1;
const CLOSED: u64 = 1 << 5;
const VERSION_ONE: u64 = 1 << 6;

fn version(word: u64) -> u64 {
    word >> 6
}

struct Shared {
    word: AtomicU64,
    senders: AtomicUsize,
    changed: Notify,
}

/// The actor's end (and the resource timer's): changes the gate and wakes the transfer.
pub(super) struct GateSender(Arc<Shared>);

/// The transfer's end: reads the gate and waits for it to change.
#[derive(Clone)]
pub(super) struct GateReceiver {
    shared: Arc<Shared>,
    /// The version [`GateReceiver::changed`] last saw.
    seen: u64,
}

/// Every sender is gone: the actor went away.
#[derive(Debug)]
pub(super) struct Closed;

/// A gate set to `initial`, and its two ends.
pub(super) fn channel(initial: Gate) -> (GateSender, GateReceiver) {
    let shared = Arc::new(Shared {
        word: AtomicU64::new(initial.to_bits()),
        senders: AtomicUsize::new(1),
        changed: Notify::new(),
    });
    let receiver = GateReceiver {
        shared: shared.clone(),
        seen: 0,
    };
    (GateSender(shared), receiver)
}

impl GateSender {
    /// Changes the gate and wakes whoever waits on it.
    pub(super) fn send_modify(&self, modify: impl Fn(&mut Gate)) {
        let _ = self
            .0
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                let mut gate = Gate::from_bits(word & FLAGS);
                modify(&mut gate);
                Some((word & !FLAGS).wrapping_add(VERSION_ONE) | gate.to_bits())
            });
        self.0.changed.notify_waiters();
    }
}

impl Clone for GateSender {
    fn clone(&self) -> GateSender {
        self.0.senders.fetch_add(1, Ordering::Relaxed);
        GateSender(self.0.clone())
    }
}

impl Drop for GateSender {
    fn drop(&mut self) {
        if self.0.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.word.fetch_or(CLOSED, Ordering::AcqRel);
            self.0.changed.notify_waiters();
        }
    }
}

impl GateReceiver {
    /// The gate as it is now.
    pub(super) fn borrow(&self) -> Gate {
        Gate::from_bits(self.shared.word.load(Ordering::Acquire) & FLAGS)
    }

    /// Waits until `holds` is true of the gate (at once if it is), and returns the gate; `Closed`
    /// once the senders are gone and it is not.
    pub(super) async fn wait_for(
        &mut self,
        mut holds: impl FnMut(&Gate) -> bool,
    ) -> Result<Gate, Closed> {
        loop {
            // Made before the word is read: `notify_waiters` wakes every `Notified` made before it.
            let changed = self.shared.changed.notified();
            let word = self.shared.word.load(Ordering::Acquire);
            self.seen = version(word);
            let gate = Gate::from_bits(word & FLAGS);
            if holds(&gate) {
                return Ok(gate);
            }
            if word & CLOSED != 0 {
                return Err(Closed);
            }
            changed.await;
        }
    }

    /// Waits until the gate has changed since this receiver last looked ([`GateReceiver::wait_for`]
    /// or this); `Closed` once the senders are gone and it has not.
    pub(super) async fn changed(&mut self) -> Result<(), Closed> {
        loop {
            let changed = self.shared.changed.notified();
            let word = self.shared.word.load(Ordering::Acquire);
            if version(word) != self.seen {
                self.seen = version(word);
                return Ok(());
            }
            if word & CLOSED != 0 {
                return Err(Closed);
            }
            changed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn every_flag_survives_the_word() {
        for bits in 0..=FLAGS {
            assert_eq!(Gate::from_bits(bits).to_bits(), bits);
        }
    }

    #[tokio::test]
    async fn a_wait_ends_when_the_gate_holds_and_a_change_is_seen_once() {
        let (tx, mut rx) = channel(Gate::default());
        // Already true: at once.
        assert!(rx.wait_for(|g| !g.paused).await.is_ok());
        let mut waiting = rx.clone();
        let waiter = tokio::spawn(async move { waiting.wait_for(|g| g.body_allowed).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "it waits until the gate holds");
        tx.send_modify(|g| g.paused = true);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "another change does not end it");
        tx.send_modify(|g| g.body_allowed = true);
        let gate = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap()
            .unwrap();
        assert!(gate.paused && gate.body_allowed);
        // `changed`: the two changes since `rx` last looked are seen once.
        tokio::time::timeout(Duration::from_secs(5), rx.changed())
            .await
            .expect("a change is there")
            .unwrap();
        let again = tokio::time::timeout(Duration::from_millis(20), rx.changed()).await;
        assert!(again.is_err(), "no change since");
    }

    #[tokio::test]
    async fn the_last_sender_gone_ends_the_waits_unless_the_gate_holds() {
        let (tx, mut rx) = channel(Gate::default());
        let timer = tx.clone();
        timer.send_modify(|g| g.expired = true);
        drop(timer);
        // One sender left: not closed.
        let mut waiting = rx.clone();
        let waiter = tokio::spawn(async move { waiting.wait_for(|g| g.stop).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(tx);
        let ended = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
        assert!(ended.is_err(), "closed, and the gate never stopped");
        // What holds still holds after the close; a change seen is still reported first.
        assert!(rx.wait_for(|g| g.expired).await.is_ok());
        assert!(rx.changed().await.is_err());
    }
}
