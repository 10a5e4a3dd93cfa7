//! Timing and stopping: the gate waits, the idle timeout around network waits, the resource
//! timer beside the transfer, and what a halted wait means.

use super::*;

impl Run {
    /// Waits until `f` holds. A stop, or the actor going away, interrupts the wait.
    pub(super) async fn wait_until(
        &mut self,
        mut f: impl FnMut(&Gate) -> bool,
    ) -> Result<(), Halt> {
        let go_on = match self.gate.wait_for(|g| g.halted() || f(g)).await {
            Ok(g) => !g.halted(),
            Err(_) => false,
        };
        if go_on {
            Ok(())
        } else {
            Err(halt_of(&self.gate))
        }
    }

    /// Waits until the bytes moved so far fit `pace`'s rate (at once without a cap). A stop, or
    /// the actor going away, ends the wait.
    pub(super) async fn keep_pace(&mut self, pace: Option<&Pace>) -> Result<(), Halt> {
        if let Some(due) = pace.and_then(Pace::due) {
            unless_stopped(&mut self.gate, tokio::time::sleep_until(due)).await?;
        }
        Ok(())
    }

    /// Awaits `fut` (connect, send, response head) under the clock. While suspended the future keeps
    /// going (a request half sent cannot be paused) but the clock stops.
    ///
    /// Takes the future pinned where the caller keeps it: taken by value, an async fn keeps its
    /// argument twice in its state (about 2.7 KiB more in every transfer for the send).
    pub(super) async fn timed<F: Future>(
        &mut self,
        fut: std::pin::Pin<&mut F>,
    ) -> Result<F::Output, Halt> {
        self.timed_while(fut, false).await
    }

    /// [`Run::timed`] for a request whose body is going out (`sending`): the clock counts from the
    /// body's last bytes taken, as URLSession's request timeout waits for "additional data" both
    /// ways. It counted from the request's start, and an upload that took longer than the timeout
    /// to send (a 60 s timeout, a large file, a slow link) failed while its bytes still flowed.
    /// The count of bytes sent is looked at every eighth of the timeout, so the task fails between
    /// one and one and an eighth timeouts after its last bytes; a request that sends quickly sets
    /// no more timers than before.
    pub(super) async fn timed_while<F: Future>(
        &mut self,
        mut fut: std::pin::Pin<&mut F>,
        sending: bool,
    ) -> Result<F::Output, Halt> {
        // Since when nothing moved (a stop of the clock starts it again), and the bytes sent then.
        let mut quiet: Option<Instant> = None;
        let mut seen = if sending { self.info.bytes_sent() } else { 0 };
        loop {
            let gate = self.gate.borrow();
            if gate.halted() {
                return Err(halt_of(&self.gate));
            }
            if gate.paused {
                quiet = None;
                tokio::select! {
                    out = fut.as_mut() => return Ok(out),
                    r = self.gate.wait_for(|g| !g.paused || g.halted()) => {
                        if r.is_err() { return Err(Halt::Interrupted); }
                        continue;
                    }
                }
            }
            // One clock read a wait, as `timeout` made.
            let now = Instant::now();
            let due = after(*quiet.get_or_insert(now), self.idle);
            let wake = if sending {
                due.min(after(now, self.idle / 8))
            } else {
                due
            };
            tokio::select! {
                // What is awaited first: when it is ready, the gate is not registered with.
                biased;
                out = tokio::time::timeout_at(wake, fut.as_mut()) => match out {
                    Ok(out) => return Ok(out),
                    Err(_) => {
                        if sending {
                            let sent = self.info.bytes_sent();
                            if sent != seen {
                                (seen, quiet) = (sent, Some(Instant::now()));
                                continue;
                            }
                        }
                        if Instant::now() >= due {
                            return Err(Halt::Failed(request_timed_out(&self.url)));
                        }
                    }
                },
                r = self.gate.wait_for(|g| g.paused || g.halted()) => {
                    if r.is_err() { return Err(Halt::Interrupted); }
                }
            }
        }
    }
}

/// Why the gate ended a wait: the resource timeout, or a stop (or the actor going away).
pub(super) fn halt_of(gate: &GateReceiver) -> Halt {
    if gate.borrow().expired {
        Halt::Failed(Error::new(
            ErrorCode::TimedOut,
            "the resource timeout expired",
        ))
    } else {
        Halt::Interrupted
    }
}

/// A deadline far enough away to never come (about 30 years, as Tokio's own far future).
const FOREVER: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `wait` after `from`; a wait past what an instant can hold never runs out, as with `sleep`.
pub(crate) fn after(from: Instant, wait: Duration) -> Instant {
    from.checked_add(wait).unwrap_or(from + FOREVER)
}

/// Runs out the resource timeout of one transfer: `budget` of time not suspended, then the gate
/// says so. Polled beside the transfer, in its task.
pub(super) async fn resource_timer(gate: GateSender, mut seen: GateReceiver, budget: Duration) {
    let mut left = budget;
    loop {
        if seen.wait_for(|g| !g.paused).await.is_err() {
            return;
        }
        let started = Instant::now();
        // From `started`: one clock read per run, not two.
        let deadline = after(started, left);
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                gate.send_modify(|g| g.expired = true);
                return;
            }
            r = seen.wait_for(|g| g.paused) => {
                if r.is_err() {
                    return;
                }
                left = left.saturating_sub(started.elapsed());
            }
        }
    }
}

/// Runs `fut` unless the transfer is told to stop (or its actor goes away) first.
pub(super) async fn unless_stopped<F: Future>(
    gate: &mut GateReceiver,
    fut: F,
) -> Result<F::Output, Halt> {
    tokio::select! {
        // What is awaited first: when it is ready, the gate is not registered with.
        biased;
        out = fut => Ok(out),
        _ = async { let _ = gate.wait_for(|g| g.halted()).await; } => Err(halt_of(gate)),
    }
}

/// The error of the idle (request) timeout.
pub(super) fn request_timed_out(url: &Url) -> Error {
    Error::new(ErrorCode::TimedOut, "the request timed out").with_url(url.as_str())
}
