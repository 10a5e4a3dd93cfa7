//! Carrying out the effects of a task's state machine: each event goes through
//! [`TaskMachine::step`], and what the step asks for (a transfer started, a delegate told, the
//! outcome delivered) is done here, with any events that causes.

use super::*;

impl TaskActorState {
    /// Steps the machine with `event` and carries out the effects, including any events they cause.
    pub(super) async fn apply(
        &mut self,
        me: &ActorRef<TaskMsg>,
        event: TaskEvent<Error>,
        mut payload: Payload,
    ) {
        // First in, first out; rarely more than one follow-up, so kept inline.
        let mut events: SmallVec<[TaskEvent<Error>; 2]> = smallvec![event];
        while !events.is_empty() {
            let (next, effects) = self.machine.step(events.remove(0));
            self.machine = next;
            for effect in effects {
                if let Some(follow_up) = self.carry_out(me, effect, &mut payload).await {
                    events.push(follow_up);
                }
            }
        }
    }

    /// The delivery queue, when this task reports to a delegate.
    pub(super) fn delegate_queue(&self) -> Option<courier_delegates::DeliveryQueue> {
        self.ctx.delivery(&self.info).filter(|_| self.callbacks)
    }

    /// Tells the task's delegate `callback`, if it reports to one that may implement it: `job` runs
    /// on the delivery queue with the delegate and the task.
    pub(super) fn tell(
        &self,
        callback: Callback,
        job: impl Fn(&dyn courier_delegates::TaskLevelDelegate, &TaskInfo) + Send + 'static,
    ) {
        if let Some(queue) = self.delegate_for(callback) {
            let info = self.info.clone();
            queue.push_task(&self.info, callback, move |d| job(d, &info));
        }
    }

    /// The delivery queue, when this task reports to a delegate that may implement `callback`.
    pub(super) fn delegate_for(
        &self,
        callback: Callback,
    ) -> Option<courier_delegates::DeliveryQueue> {
        self.delegate_queue()
            .filter(|q| q.wants_task(&self.info, callback))
    }

    pub(super) async fn carry_out(
        &mut self,
        me: &ActorRef<TaskMsg>,
        effect: Effect<Error>,
        payload: &mut Payload,
    ) -> Option<TaskEvent<Error>> {
        match effect {
            Effect::StateChanged { from, to } => {
                if to == TaskState::Completed {
                    self.deliver_metrics();
                }
                publish_state(&self.ctx, &self.recorder, self.callbacks, from, to);
            }
            Effect::StartTransfer => {
                let work = self.work.take().unwrap_or(Work::Data);
                return self
                    .start_transfer(me, work, None, None)
                    .err()
                    .map(TaskEvent::Failed);
            }
            Effect::PauseTransfer => {
                if let Some(t) = &self.transfer {
                    t.pause();
                }
            }
            Effect::ContinueTransfer => {
                if let Some(t) = &self.transfer {
                    t.resume();
                }
            }
            Effect::StopTransfer => {
                // Boxed: a stop is rare, and its future inline would make every message's
                // handling future larger (ractor moves that future a few times per message).
                let stopped = match self.transfer.take() {
                    Some(t) => Box::pin(t.stop()).await,
                    None => None,
                };
                self.settle_stopped(stopped);
                return Some(TaskEvent::TransferStopped);
            }
            Effect::AskDisposition => {
                let Payload::Response(response) = std::mem::replace(payload, Payload::None) else {
                    return None;
                };
                self.recorder.set_response(response.clone());
                let asks = self
                    .ctx
                    .asks_disposition(&self.info, self.callbacks, self.download);
                match self.delegate_queue() {
                    // Download tasks get no `did_receive_response`: the body goes to the file.
                    Some(queue) if asks => {
                        let (info, me, run) = (self.info.clone(), me.clone(), self.run);
                        queue.ask_task_then(
                            &self.info,
                            Callback::ReceiveResponse,
                            || ResponseDisposition::Allow,
                            move |d, reply| d.did_receive_response(&info, &response, reply),
                            // The task may have completed meanwhile; then nobody is listening.
                            move |answer| {
                                let _ = me.cast(TaskMsg::Disposition(run, answer));
                            },
                        );
                    }
                    // No delegate to ask (or it leaves the method alone): URLSession's default is
                    // to allow; the transfer did not wait for it. A streamed task's caller gets the
                    // head now.
                    _ => {
                        self.terminal.send_stream_head(&response);
                        return Some(TaskEvent::BodyAllowed);
                    }
                }
            }
            Effect::ReleaseBody => {
                // Told even when the delegate was not asked: the transfer decided whether to wait
                // before this actor decided whether to ask, and the queue may have learned in
                // between that the delegate leaves `did_receive_response` at its default. A task
                // that reports to no delegate never waits (`asks_disposition`): nothing to tell.
                if self.callbacks
                    && let Some(t) = &self.transfer
                {
                    t.allow_body();
                }
            }
            Effect::DeliverData => self.deliver(std::mem::replace(payload, Payload::None)),
            Effect::ReportSent => {
                let Payload::Sent(n) = std::mem::replace(payload, Payload::None) else {
                    return None;
                };
                // The record counted the bytes as they went (`upload::SentTo`); this total is
                // the one the delegate is told, message by message.
                self.sent += n;
                let (total, expected) = (self.sent, self.info.bytes_expected_to_send());
                self.tell(Callback::SendBodyData, move |d, info| {
                    d.did_send_body_data(info, n, total, expected)
                });
            }
            Effect::HandOver => {
                // A download with a delegate: the file goes to `did_finish_downloading_to`, and is
                // removed when the callback returns unless the delegate moved it. A delegate that
                // does not implement the callback leaves it to the completion to remove.
                if self.terminal.goes_to_delegate()
                    && self.delegate_for(Callback::FinishDownloading).is_some()
                    && let Some(path) = self.file.take()
                    && let Some(queue) = self.delegate_queue()
                {
                    let (info, handed) = (self.info.clone(), path.clone());
                    queue.push_task(&self.info, Callback::FinishDownloading, move |d| {
                        d.did_finish_downloading_to(&info, &handed)
                    });
                    // Next on the same queue: after whichever delegate took the file.
                    queue.push(move |_| courier_storage::download::remove_partial(&path));
                }
            }
            Effect::Complete(outcome) => {
                // The transfer is over either way; it is gone before anyone is told, so that
                // nothing it sent arrives after the actor is free for another task.
                if let Some(transfer) = self.transfer.take() {
                    transfer.end().await;
                }
                let result = match outcome {
                    Outcome::Finished => Ok(match self.file.take() {
                        Some(path) if self.terminal_awaits() => Delivered::File(path),
                        Some(path) => {
                            // Nobody to hand the file to (a session without a delegate).
                            courier_storage::download::remove_partial(&path);
                            Delivered::Body(Bytes::new())
                        }
                        None => Delivered::Body(self.body.take()),
                    }),
                    // The handshake went as http(s); the task's URL, and its failure's, is ws(s).
                    Outcome::Failed(e) if self.info.kind() == TaskKind::WebSocket => {
                        Err(crate::task::web_socket::in_socket_terms(e))
                    }
                    Outcome::Failed(e) => Err(e),
                    Outcome::Cancelled => {
                        let mut e = Error::cancelled(self.info.original_request().url_str());
                        if let Some(data) = self.cancel_resume_data.take() {
                            e = e.with_resume_data(data);
                        }
                        Err(e)
                    }
                };
                if let Some(waiter) = self.resume_waiter.take() {
                    let _ = waiter.send(None);
                }
                // A stream task nobody adopted is let go with its completion.
                if self.info.kind() == TaskKind::Stream {
                    self.ctx
                        .adoptable
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&self.info.id());
                }
                self.terminal.deliver(result);
            }
        }
        None
    }

    /// True while the task's caller awaits its outcome (not a delegate).
    pub(super) fn terminal_awaits(&self) -> bool {
        self.terminal.is_pending() && !self.terminal.goes_to_delegate()
    }
}
