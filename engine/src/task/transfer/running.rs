//! Where a transfer's future is polled (in its actor's handler, in a Tokio task of its own, or
//! nowhere once it ended), and how a transfer is ended or stopped from each of those.

use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::task::JoinHandle;

use super::Transfer;
use crate::task::actor::Doorbell;
use crate::task::download::Stopped;

/// How long a stopping transfer may take to write and checkpoint what it has before it is aborted.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Where a transfer's future is polled.
pub(super) enum Running {
    /// Not yet: its task actor polls it in its handler (`Transfer::run_inline`) until the actor's
    /// doorbell rings, then spawns it (the completion forms; `actor/inline.rs`).
    Inline(BoxFuture<'static, Option<Stopped>>, Doorbell),
    /// In a Tokio task of its own.
    Spawned(JoinHandle<Option<Stopped>>),
    /// Nowhere: it ended while its actor polled it.
    Ended(Option<Stopped>),
}

impl Transfer {
    /// For a transfer that runs in its actor's handler (`actor/inline.rs`): polls it until it ends
    /// or the actor's doorbell rings, and at the ring spawns it, as it stands, as a Tokio task of
    /// its own. Does nothing for any other transfer.
    pub(crate) async fn run_inline(&mut self) {
        let Running::Inline(running, bell) = &mut self.running else {
            return;
        };
        let ended = tokio::select! {
            // The transfer first: what it sent before its end is the actor's next message anyway.
            biased;
            stopped = running => Some(stopped),
            () = bell.rung() => None,
        };
        self.running = match ended {
            Some(stopped) => Running::Ended(stopped),
            None => match std::mem::replace(&mut self.running, Running::Ended(None)) {
                Running::Inline(running, _) => Running::Spawned(tokio::spawn(running)),
                other => other,
            },
        };
    }

    /// Ends the transfer at once and waits until its task is gone: after this, nothing it sent is
    /// still on its way to the actor.
    pub(crate) async fn end(mut self) {
        if let Running::Spawned(handle) = &mut self.running {
            handle.abort();
            let _ = handle.await;
        }
        // One that was never spawned ends as it is dropped, here.
    }

    /// Stops the transfer and waits until it has stopped (its connection is dropped). A download
    /// first writes what it received and checkpoints: the answer carries its partial file and, when
    /// it can be continued, resume data.
    pub(crate) async fn stop(mut self) -> Option<Stopped> {
        self.gate.send_modify(|g| g.stop = true);
        let stopped = match &mut self.running {
            Running::Ended(stopped) => return stopped.take(),
            // Polled here to its end, as its own task would be.
            Running::Inline(running, _) => tokio::time::timeout(STOP_GRACE, running).await,
            Running::Spawned(handle) => tokio::time::timeout(STOP_GRACE, handle)
                .await
                .map(|joined| joined.ok().flatten()),
        };
        stopped.unwrap_or_else(|_| {
            // Aborted as `self` drops.
            tracing::warn!("a stopping transfer did not finish in time; aborted");
            None
        })
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        // A transfer never outlives its owner (one its actor polls is dropped with it).
        if let Running::Spawned(handle) = &self.running {
            handle.abort();
        }
    }
}
