//! The completion forms (URLSession's async `data(for:)`, `bytes(for:)`, `upload(for:from:)`,
//! `download(for:)`): a task whose result goes to the returned future instead of the delegate, and
//! which a dropped future cancels.

use bytes::Bytes;
use courier_delegates::{Error, Request, Response, ResumeData, TaskKind};
use tokio::sync::oneshot;

use super::Session;
use crate::completion::{Delivered, Sink, Streamed, Waiter};
use crate::task::future::{Made, Recipe, TaskFuture, Then, session_gone};
use crate::task::{
    ByteStream, DataTask, DownloadTask, DownloadedFile, Task, UploadBody, UploadTask, Work,
};

impl Session {
    /// Loads `request` and returns its body and response: URLSession's `data(for:)`.
    ///
    /// Awaiting the [`TaskFuture`] starts the task; its handle ([`TaskFuture::task`]) suspends,
    /// resumes or cancels it meanwhile. No response, data or completion callbacks are sent for this
    /// task. Dropping the future cancels the task.
    ///
    /// # Errors
    /// The task's error (HTTP error statuses are not errors). In an invalidated session, an
    /// [`ErrorCode::Unknown`](courier_delegates::ErrorCode::Unknown) error whose source is [`CreateTaskError`](super::CreateTaskError).
    pub fn data(&self, request: impl Into<Request>) -> TaskFuture<DataTask, (Bytes, Response)> {
        self.awaited(
            TaskKind::Data,
            request.into(),
            None,
            Work::Data,
            DataTask::new,
            body,
        )
    }

    /// Loads `request` and returns the body to read as it arrives, with the response, as soon as
    /// the head is in: URLSession's `bytes(for:)` (reqwest's `bytes_stream`). The body is read from
    /// the network only as fast as the [`ByteStream`] is read (at most 1 MiB ahead of it).
    ///
    /// No response, data or completion callbacks are sent for this task; questions (redirects,
    /// challenges) still go to the delegate. Dropping the future, or the stream before its end,
    /// cancels the task.
    ///
    /// # Errors
    /// As [`Session::data`], for what goes wrong before the response head; an error after it ends
    /// the stream.
    pub fn bytes(
        &self,
        request: impl Into<Request>,
    ) -> TaskFuture<DataTask, (ByteStream, Response)> {
        let request = request.into();
        let (streamed, head, body) = Streamed::channel();
        let then: Then<(ByteStream, Response)> = Then::Make(Box::new(move |task: Task| {
            Box::pin(async move {
                // From here, dropping the stream (or the future, which holds it) cancels the task.
                let stream = ByteStream::new(task.clone(), body);
                let response = head.await.unwrap_or_else(|_| Err(session_gone(&task)))?;
                Ok((stream, response))
            }) as Made<_>
        }));
        TaskFuture::new(Recipe {
            session: self.clone(),
            kind: TaskKind::Data,
            request,
            current: None,
            work: Work::Data,
            sink: Sink::Stream(streamed),
            handle: DataTask::new,
            then,
            delegate: None,
        })
    }

    /// Sends `body` with `request` and returns the response body and response: URLSession's
    /// `upload(for:from:)`. No delegate callbacks except `need_new_body_stream` for a stream body.
    /// Dropping the future cancels the task.
    ///
    /// # Errors
    /// As [`Session::data`]; an unreadable upload file gives -1100, -1101 or -1102.
    pub fn upload(
        &self,
        request: impl Into<Request>,
        body: UploadBody,
    ) -> TaskFuture<UploadTask, (Bytes, Response)> {
        self.awaited(
            TaskKind::Upload,
            request.into(),
            None,
            Work::Upload(body),
            UploadTask::new,
            self::body,
        )
    }

    /// Goes on with a stopped upload from its resume data, and returns the response body and
    /// response: the completion form of [`Session::upload_task_with_resume_data`], whose rules
    /// decide what is sent. Dropping the future cancels the task.
    ///
    /// # Errors
    /// As [`Session::upload`]; the upload's error may carry resume data again
    /// ([`Error::resume_data`]). Resume data that cannot be used gives the error the task fails
    /// with (-1015 for data that cannot be decoded), before anything is sent.
    pub fn upload_with_resume_data(
        &self,
        data: &ResumeData,
    ) -> TaskFuture<UploadTask, (Bytes, Response)> {
        let (original, resumption) = self.resumed_upload(data);
        self.awaited(
            TaskKind::Upload,
            original,
            None,
            Work::ResumedUpload(resumption),
            UploadTask::new,
            self::body,
        )
    }

    /// Downloads `request` to a file in the session directory and returns it with the response:
    /// URLSession's `download(for:)`. The returned [`DownloadedFile`] removes the file when dropped,
    /// unless [`DownloadedFile::persist`] moved it. Dropping the future cancels the task. The body
    /// is asked for as stored, as [`Session::download_task`] says.
    ///
    /// # Errors
    /// As [`Session::data`]; an error from a download that stopped part-way may carry resume data
    /// ([`Error::resume_data`]).
    pub fn download(
        &self,
        request: impl Into<Request>,
    ) -> TaskFuture<DownloadTask, (DownloadedFile, Response)> {
        let work = Work::Download { resume: None };
        self.awaited_download(request.into(), None, work)
    }

    /// Continues a stopped download from its resume data, and returns the whole file with the
    /// response: URLSession's `download(resumeFrom:)`. The same rules as
    /// [`Session::download_task_with_resume_data`] decide what is fetched; the result goes to whoever
    /// awaits it, in a session with a delegate or without one.
    ///
    /// # Errors
    /// As [`Session::download`]; resume data that is corrupt, of another format, or whose partial
    /// file is missing or changed gives the error the task fails with (-1015 for data that cannot be
    /// decoded), and no file is touched. A background session refuses it
    /// ([`CreateTaskError::NotInBackground`](super::CreateTaskError)).
    pub fn download_with_resume_data(
        &self,
        data: &ResumeData,
    ) -> TaskFuture<DownloadTask, (DownloadedFile, Response)> {
        let (original, current, work) = self.resumed_download(data);
        self.awaited_download(original, Some(current), work)
    }

    fn awaited_download(
        &self,
        request: Request,
        current: Option<Request>,
        work: Work,
    ) -> TaskFuture<DownloadTask, (DownloadedFile, Response)> {
        let ctx = self.inner.ctx.clone();
        self.awaited(
            TaskKind::Download,
            request,
            current,
            work,
            DownloadTask::new,
            move |delivered, response| match delivered {
                Delivered::File(path) => Ok((DownloadedFile::new(path, ctx), response)),
                Delivered::Body(_) => unreachable!("a download task delivers a file"),
            },
        )
    }

    /// A completion form whose result comes whole, shaped by `finish`.
    fn awaited<H, T, F>(
        &self,
        kind: TaskKind,
        request: Request,
        current: Option<Request>,
        work: Work,
        handle: fn(Task) -> H,
        finish: F,
    ) -> TaskFuture<H, T>
    where
        H: crate::task::future::TaskHandle,
        T: Send + 'static,
        F: FnOnce(Delivered, Response) -> Result<T, Error> + Send + 'static,
    {
        let (tx, rx): (Waiter, _) = oneshot::channel();
        let then = Then::Reply(rx, Box::new(finish));
        TaskFuture::new(Recipe {
            session: self.clone(),
            kind,
            request,
            current,
            work,
            sink: Sink::Await(tx),
            handle,
            then,
            delegate: None,
        })
    }
}

/// A data or upload task's result.
fn body(delivered: Delivered, response: Response) -> Result<(Bytes, Response), Error> {
    match delivered {
        Delivered::Body(body) => Ok((body, response)),
        Delivered::File(_) => unreachable!("a data or upload task delivers a body"),
    }
}
