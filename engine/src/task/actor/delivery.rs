//! What the actor hands to the delegate (or the completion form's buffer, or a byte stream): data
//! and progress, metrics, the questions about multipart parts and caching, and what becomes of a
//! stopped download's file.

use super::*;

impl TaskActorState {
    /// The body a task that does not prefer incremental delivery held back, in one
    /// `did_receive_data`: once the body is in (before `will_cache_response`), or before the
    /// metrics of a task that stopped early.
    pub(super) fn deliver_whole_body(&mut self) {
        if !self.callbacks || self.info.prefers_incremental_delivery() {
            return;
        }
        let body = self.body.take();
        if body.is_empty() {
            return;
        }
        if let Some(queue) = self.delegate_queue() {
            let info = self.info.clone();
            queue.push_task(&self.info, Callback::ReceiveData, move |d| {
                d.did_receive_data(&info, &body);
            });
        }
    }

    /// Sends `did_finish_collecting_metrics`, just before the task completes (started tasks only).
    pub(super) fn deliver_metrics(&mut self) {
        self.deliver_whole_body();
        let taken = self.metrics.take();
        let (Some(queue), Some((log, started))) = (self.delegate_for(Callback::Metrics), taken)
        else {
            return;
        };
        let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
        let metrics = TaskMetrics {
            task_start: started,
            task_duration: started.elapsed(),
            redirect_count: log.redirects,
            // The transfer is over: its log is handed over, not copied.
            transactions: std::mem::take(&mut log.transactions),
        };
        let info = self.info.clone();
        queue.push_task(&self.info, Callback::Metrics, move |d| {
            d.did_finish_collecting_metrics(&info, &metrics)
        });
    }

    /// Asks the delegate about a new part's response (the default: allow).
    pub(super) fn ask_about_part(
        &self,
        response: Response,
        answer: oneshot::Sender<ResponseDisposition>,
    ) {
        self.recorder.set_response(response.clone());
        match self.delegate_for(Callback::ReceiveResponse) {
            Some(queue) if self.machine.state() != TaskState::Canceling => {
                let info = self.info.clone();
                queue.ask_task_then(
                    &self.info,
                    Callback::ReceiveResponse,
                    || ResponseDisposition::Allow,
                    move |d, reply| d.did_receive_response(&info, &response, reply),
                    move |a| {
                        let _ = answer.send(a);
                    },
                );
            }
            _ => {
                let _ = answer.send(ResponseDisposition::Allow);
            }
        }
    }

    /// Asks the delegate whether to cache `proposed` (the default: as proposed).
    pub(super) fn offer_to_cache(
        &mut self,
        proposed: CachedResponse,
        answer: oneshot::Sender<Option<CachedResponse>>,
    ) {
        // The body is in: a body held back goes first, as URLSession orders them.
        self.deliver_whole_body();
        // Completion-form tasks are asked too, as URLSession asks them.
        match self
            .ctx
            .delivery(&self.info)
            .filter(|q| q.wants_task(&self.info, Callback::WillCache))
        {
            Some(queue) if self.machine.state() != TaskState::Canceling => {
                let info = self.info.clone();
                let default = proposed.clone();
                queue.ask_task_then(
                    &self.info,
                    Callback::WillCache,
                    move || Some(default.clone()),
                    move |d, reply| d.will_cache_response(&info, &proposed, reply),
                    move |a| {
                        let _ = answer.send(a);
                    },
                );
            }
            _ => {
                let _ = answer.send(Some(proposed));
            }
        }
    }

    /// Hands news from the transfer to the delegate (or the completion form's buffer).
    pub(super) fn deliver(&mut self, payload: Payload) {
        match payload {
            Payload::Data(data, permit) => {
                self.recorder.add_received(data.len());
                if let Some(stream) = &self.stream {
                    // The permit goes with the bytes: the window has room once the reader has them.
                    let _ = stream.send(Ok((data, permit)));
                    return;
                }
                match (self.delegate_queue(), self.callbacks) {
                    (Some(queue), _) if !queue.wants_task(&self.info, Callback::ReceiveData) => {
                        drop(permit)
                    }
                    // Held for one delivery once the body is in (`deliver_whole_body`).
                    (Some(_), true) if !self.info.prefers_incremental_delivery() => {
                        drop(permit);
                        self.body.push(data);
                    }
                    (Some(queue), _) => {
                        let info = self.info.clone();
                        queue.push_task(&self.info, Callback::ReceiveData, move |d| {
                            // The permit goes with the job: it frees the window only once the
                            // delegate has the bytes.
                            let _held = &permit;
                            d.did_receive_data(&info, &data);
                        });
                    }
                    (None, true) => {} // a delegate-style task without a delegate: nobody wants the bytes
                    (None, false) => self.body.push(data),
                }
            }
            Payload::ResumedAt { offset, expected } => {
                self.written = offset;
                self.recorder.set_received(offset as i64);
                self.recorder.set_expected_to_receive(expected);
                self.tell(Callback::ResumeAtOffset, move |d, info| {
                    d.did_resume_at_offset(info, offset, courier_delegates::task::known(expected))
                });
            }
            Payload::Wrote { total, expected } => {
                // Totals only grow: a batch written before a restart from zero is not news.
                if total <= self.written {
                    return;
                }
                let delta = total - self.written;
                self.written = total;
                self.recorder.set_received(total as i64);
                self.recorder.set_expected_to_receive(expected);
                self.tell(Callback::WriteData, move |d, info| {
                    let expected = courier_delegates::task::known(expected);
                    d.did_write_data(info, delta, total, expected)
                });
            }
            Payload::Gathered(body) => self.body.push(body),
            Payload::None | Payload::Response(_) | Payload::Sent(_) => {}
        }
    }

    /// After a cancel: answers `cancel_by_producing_resume_data` with the resume data the
    /// transfer left, if any; keeps a download's partial file when that data was asked for,
    /// removes it otherwise.
    pub(super) fn settle_stopped(&mut self, stopped: Option<Stopped>) {
        let Some(stopped) = stopped else {
            if let Some(waiter) = self.resume_waiter.take() {
                let _ = waiter.send(None);
            }
            return;
        };
        match (self.resume_waiter.take(), stopped.resume) {
            (Some(waiter), Some(data)) => {
                if let Some(path) = &stopped.path {
                    courier_storage::download::keep_for_resume(path);
                }
                self.cancel_resume_data = Some(data.clone());
                let _ = waiter.send(Some(data));
            }
            (waiter, _) => {
                if let Some(path) = &stopped.path {
                    courier_storage::download::remove_partial(path);
                }
                if let Some(waiter) = waiter {
                    let _ = waiter.send(None);
                }
            }
        }
    }
}
