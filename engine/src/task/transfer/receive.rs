//! Reading the body: frames from the network (decoded in bounded steps, paced by the rate limit),
//! to the download's file or to the delegate within its window.

use super::*;

impl Run {
    /// Moves the body to its destination until it ends.
    ///
    /// A function that returns a block, not an `async fn`, and the decoder boxed: a download
    /// spends its life in this future, inside its transfer's, so what it holds is held for every
    /// running download (an `async fn` kept its arguments twice, see [`Run::run`]).
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` stores its arguments twice"
    )]
    pub(super) fn receive(
        &mut self,
        mut body: ResponseBody,
        mut decoder: Option<Box<Decoder>>,
    ) -> impl Future<Output = Result<(), Halt>> + Send + '_ {
        async move {
            let mut pace = Pace::of(self.ctx.config.maximum_receive_rate_per_task);
            // When the network went quiet. The idle (request) timeout counts from there across
            // the download's own wakes (a write or a checkpoint due), which must not restart it:
            // they did, and a 60 s timeout fired after up to 61 s and more. A frame or a pause
            // starts it again.
            let mut quiet_since: Option<Instant> = None;
            loop {
                if self.gate.borrow().crash {
                    panic!("injected transfer panic");
                }
                if self.gate.borrow().paused
                    && let Some(sink) = &mut self.sink
                {
                    // Suspended: everything received goes to disk and into a checkpoint first, so a
                    // long pause risks nothing.
                    sink.checkpoint_now().await?;
                }
                // Hold the next read until the bytes so far fit the rate.
                self.keep_pace(pace.as_ref()).await?;
                self.wait_until(|g| !g.paused).await?;
                // A frame that is there is taken without a timer (no clock read, no timer made and
                // dropped: a small body's frames are there as it is read) or polling the others; the
                // loop's top sees a pause or a stop before the next.
                let ready = {
                    // A pending read is dropped here, then made again under the timer: it holds
                    // nothing (reads are cancel-safe).
                    let mut first = std::pin::pin!(body.frame());
                    futures_util::poll!(first.as_mut())
                };
                let woke = match ready {
                    std::task::Poll::Ready(frame) => Woke::Frame(Ok(frame)),
                    std::task::Poll::Pending => {
                        let deadline = self.sink.as_deref().and_then(DownloadSink::deadline);
                        let quiet = *quiet_since.get_or_insert_with(Instant::now);
                        let gate = &mut self.gate;
                        tokio::select! {
                            biased;
                            frame = tokio::time::timeout_at(timing::after(quiet, self.idle), body.frame()) => Woke::Frame(frame),
                            // Suspended (or stopped) mid-read: drop the read (no bytes are lost, none
                            // are taken) and stop the clock until resumed.
                            _ = async { let _ = gate.wait_for(|g| g.paused || g.halted() || g.crash).await; } => Woke::Gate,
                            // The download has bytes to write or a checkpoint due while the network
                            // is quiet.
                            _ = sleep_until_or_never(deadline) => Woke::Deadline,
                        }
                    }
                };
                let frame = match woke {
                    Woke::Frame(frame) => {
                        quiet_since = None;
                        frame
                    }
                    Woke::Gate if self.gate.borrow().crash => panic!("injected transfer panic"),
                    Woke::Gate => {
                        quiet_since = None;
                        continue;
                    }
                    Woke::Deadline => {
                        if let Some(sink) = &mut self.sink {
                            sink.on_deadline().await?;
                        }
                        continue;
                    }
                };
                let frame = match frame {
                    Err(_) => return Err(Halt::Failed(request_timed_out(&self.url))),
                    Ok(None) => {
                        if let Some(d) = &mut decoder {
                            while let Some(rest) =
                                d.finish().map_err(|e| self.decode_error(e, true))?
                            {
                                self.deliver(rest).await?;
                            }
                        }
                        return Ok(());
                    }
                    Ok(Some(Err(e))) => return Err(Halt::Failed(e.into_error(&self.url))),
                    Ok(Some(Ok(frame))) => frame,
                };
                let Ok(data) = frame.into_data() else {
                    continue; // trailers carry no body bytes
                };
                if data.is_empty() {
                    continue;
                }
                if let Some(pace) = &mut pace {
                    pace.moved(data.len());
                }
                self.moved.wire_in += data.len() as u64;
                match &mut decoder {
                    // Decoded a bounded step at a time, each step delivered (and so held to the
                    // delegate window or written) before the next is decoded.
                    Some(d) => {
                        d.feed(data);
                        while let Some(step) =
                            d.next_chunk().map_err(|e| self.decode_error(e, false))?
                        {
                            self.deliver(step).await?;
                        }
                    }
                    None => self.deliver(data).await?,
                }
            }
        }
    }

    /// Hands body bytes (decoded) to the download's file or to the delegate.
    pub(super) async fn deliver(&mut self, data: Bytes) -> Result<(), Halt> {
        if data.is_empty() {
            return Ok(());
        }
        self.moved.decoded_in += data.len() as u64;
        if let Some(max) = self.ctx.config.maximum_body_length {
            // A download's file counts whole: a resumed one goes on from the bytes it has.
            let so_far = match self.sink.as_deref() {
                Some(sink) => sink.len() + data.len() as u64,
                None => self.moved.decoded_in,
            };
            if so_far > max {
                return Err(self.too_long(max));
            }
        }
        if let Some(sink) = &mut self.sink {
            return Ok(sink.accept(data).await?);
        }
        self.gather_for_cache(&data);
        if let Some(gathering) = &mut self.gathering {
            self.recorder.add_received(data.len());
            gathering.body.push(data);
            return Ok(());
        }
        let permit = self.take_window(&data).await?;
        if self.actor.cast(TaskMsg::Data(data, permit)).is_err() {
            return Err(Halt::Interrupted);
        }
        Ok(())
    }

    /// The body is longer than the configuration's `maximum_body_length`: -1103.
    pub(super) fn too_long(&self, max: u64) -> Halt {
        Halt::Failed(
            Error::new(
                ErrorCode::DataLengthExceedsMaximum,
                format!("the body is longer than the {max} bytes the session takes"),
            )
            .with_url(self.url.as_str()),
        )
    }

    /// Names a decoding failure: -1016 for a data task; for a download, -3006 in the middle of the
    /// body and -3007 at its end; a decompression bomb is -1103.
    pub(super) fn decode_error(&self, e: DecodeError, at_end: bool) -> Halt {
        let code = match (&e, self.sink.is_some(), at_end) {
            (DecodeError::TooExpanded { .. }, _, _) => ErrorCode::DataLengthExceedsMaximum,
            (_, false, _) => ErrorCode::CannotDecodeContentData,
            (_, true, false) => ErrorCode::DownloadDecodingFailedMidStream,
            (_, true, true) => ErrorCode::DownloadDecodingFailedToComplete,
        };
        Halt::Failed(
            Error::new(code, e.to_string())
                .with_url(self.url.as_str())
                .with_source(e),
        )
    }

    /// Waits for room in the delegate window for `data`.
    pub(super) async fn take_window(
        &mut self,
        data: &Bytes,
    ) -> Result<Option<OwnedSemaphorePermit>, Halt> {
        let Some(window) = self.window.clone() else {
            return Ok(None);
        };
        let n = data.len().min(DELEGATE_WINDOW) as u32;
        unless_stopped(&mut self.gate, window.acquire_many_owned(n))
            .await?
            .map(Some)
            .map_err(|_| Halt::Interrupted)
    }
}

/// What ended a wait in the body loop.
pub(super) enum Woke<F> {
    Frame(F),
    Gate,
    Deadline,
}

/// Sleeps until `deadline`, or forever without one.
pub(super) async fn sleep_until_or_never(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
