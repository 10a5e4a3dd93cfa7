//! A data task becoming a download task (`ResponseDisposition::BecomeDownload`) or a stream task
//! (`BecomeStream`, after a `101`): a new task with a new identifier takes over the same transfer,
//! whose body then goes to a file, or whose connection to the stream task's handle.

use super::*;

/// The task a data task becomes, before this actor takes its identity.
struct Successor {
    queue: courier_delegates::DeliveryQueue,
    info: TaskInfo,
    recorder: TaskRecorder,
    terminal: Terminal,
}

impl TaskActorState {
    /// Turns this data task into a download task carried on by this actor: a new task (new
    /// identifier) takes over the transfer, whose body now goes to a file. The data task ends
    /// silently, as URLSession's does.
    pub(super) fn become_download(&mut self) {
        let Some(next) = self.successor(TaskKind::Download) else {
            return;
        };
        let (old, new) = (self.info.clone(), next.info.clone());
        next.queue
            .push_task(&self.info, Callback::BecomeDownload, move |d| {
                d.did_become_download_task(&old, &new)
            });
        let partial = PartialSlot::for_download();
        if let Some(t) = &self.transfer {
            t.become_download(next.info.clone(), partial.clone());
        }
        self.take_identity(next, partial);
        self.download = true;
    }

    /// Turns this data task, whose request was answered `101 Switching Protocols`, into a stream
    /// task carried on by this actor on the same connection: a new task (new identifier) whose
    /// handle waits for `Session::adopt_stream_task`. The data task ends silently.
    pub(super) fn become_stream(&mut self) {
        let Some(next) = self.successor(TaskKind::Stream) else {
            return;
        };
        let (ends, commands) = super::super::stream::stream_ends();
        let handle = super::super::StreamTask::new(
            super::super::Task::resumed(
                next.info.clone(),
                self.session.clone(),
                PartialSlot::default(),
            ),
            commands,
        );
        self.ctx
            .adoptable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(next.info.id(), handle);
        let (old, new) = (self.info.clone(), next.info.clone());
        next.queue
            .push_task(&self.info, Callback::BecomeStream, move |d| {
                d.did_become_stream_task(&old, &new)
            });
        if let Some(t) = &self.transfer {
            t.become_stream(next.info.clone(), next.recorder.clone(), ends);
        }
        self.take_identity(next, PartialSlot::default());
    }

    /// The new task a delegate-style data task becomes (`None` for any other task): numbered,
    /// with the data task's requests, response and own delegate; the data task's terminal message
    /// is never sent.
    fn successor(&mut self, kind: TaskKind) -> Option<Successor> {
        let queue = self.delegate_queue()?;
        if !self.terminal.goes_to_delegate() || self.download {
            return None;
        }
        let id = self.ctx.next_task_id.fetch_add(1, Ordering::Relaxed);
        let (info, recorder) = TaskInfo::new(id, kind, self.info.original_request().clone());
        recorder.set_current_request(self.info.current_request());
        if let Some(response) = self.info.response() {
            recorder.set_response(response);
        }
        // The new task keeps the data task's own delegate, on the same queue.
        if let Some(own) = self.info.delegate() {
            queue.attach(&info, own);
        }
        let terminal = Terminal::new(Sink::Delegate(Some(queue.clone())), recorder.clone());
        self.terminal.discard();
        self.recorder.set_state(TaskState::Completed);
        Some(Successor {
            queue,
            info,
            recorder,
            terminal,
        })
    }

    /// This actor carries on as `next`: born running, registered with the session in the data
    /// task's place.
    fn take_identity(&mut self, next: Successor, partial: PartialSlot) {
        publish_state(
            &self.ctx,
            &next.recorder,
            true,
            TaskState::Suspended,
            TaskState::Running,
        );
        self.session.report(TaskReport::Became {
            old: self.info.id(),
            recorder: next.recorder.clone(),
            terminal: next.terminal.clone(),
            partial: partial.clone(),
        });
        self.span = tracing::info_span!("task", session = self.ctx.id, task = next.info.id());
        self.info = next.info;
        self.recorder = next.recorder;
        self.terminal = next.terminal;
        self.partial = partial;
    }
}
