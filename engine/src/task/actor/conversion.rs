//! A data task becoming a download task (`ResponseDisposition::BecomeDownload`): a new task with
//! a new identifier takes over the same transfer, whose body then goes to a file.

use super::*;

impl TaskActorState {
    /// Turns this data task into a download task carried on by this actor: a new task (new
    /// identifier) takes over the transfer, whose body now goes to a file. The data task ends
    /// silently, as URLSession's does.
    pub(super) fn become_download(&mut self) {
        let Some(queue) = self.delegate_queue() else {
            return;
        };
        if !self.terminal.goes_to_delegate() || self.download {
            return;
        }
        let id = self.ctx.next_task_id.fetch_add(1, Ordering::Relaxed);
        let (info, recorder) =
            TaskInfo::new(id, TaskKind::Download, self.info.original_request().clone());
        recorder.set_current_request(self.info.current_request());
        if let Some(response) = self.info.response() {
            recorder.set_response(response);
        }
        // The download task keeps the data task's own delegate, on the same queue.
        if let Some(own) = self.info.delegate() {
            queue.attach(&info, own);
        }
        let terminal = Terminal::new(Sink::Delegate(Some(queue.clone())), recorder.clone());
        let partial = PartialSlot::for_download();
        self.terminal.discard(); // the data task's terminal message is never sent
        self.recorder.set_state(TaskState::Completed);
        let (old, new) = (self.info.clone(), info.clone());
        queue.push_task(&self.info, Callback::BecomeDownload, move |d| {
            d.did_become_download_task(&old, &new)
        });
        // The new task is born running: its state history starts like any task's.
        publish_state(
            &self.ctx,
            &recorder,
            true,
            TaskState::Suspended,
            TaskState::Running,
        );
        self.session.report(TaskReport::BecameDownload {
            old: self.info.id(),
            recorder: recorder.clone(),
            terminal: terminal.clone(),
            partial: partial.clone(),
        });
        if let Some(t) = &self.transfer {
            t.become_download(info.clone(), partial.clone());
        }
        self.info = info;
        self.recorder = recorder;
        self.terminal = terminal;
        self.partial = partial;
        self.download = true;
        self.span = tracing::info_span!("task", session = self.ctx.id, task = id);
    }
}
