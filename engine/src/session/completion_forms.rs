//! The completion forms (URLSession's async `data(for:)`, `bytes(for:)`, `upload(for:from:)`,
//! `download(for:)`): a task whose result goes to the returned future instead of the delegate, and
//! which a dropped future cancels.

use std::future::Future;

use bytes::Bytes;
use courier_delegates::{Error, ErrorCode, Request, Response, TaskKind};
use tokio::sync::oneshot;

use super::{Creation, Session};
use crate::completion::{Delivered, Sink, Streamed};
use crate::task::{ByteStream, DownloadedFile, Task, UploadBody, Work};

impl Session {
    /// Loads `request` and returns its body and response: URLSession's `data(for:)`.
    ///
    /// No response, data or completion callbacks are sent for this task. Dropping the future cancels
    /// the task.
    ///
    /// # Errors
    /// The task's error (HTTP error statuses are not errors). In an invalidated session, an
    /// [`ErrorCode::Unknown`] error whose source is [`CreateTaskError`](super::CreateTaskError).
    pub fn data(
        &self,
        request: impl Into<Request>,
    ) -> impl Future<Output = Result<(Bytes, Response), Error>> + Send + 'static {
        let done = self.completion_form(TaskKind::Data, request.into(), Work::Data);
        async move {
            match done.await? {
                (Delivered::Body(body), response) => Ok((body, response)),
                (Delivered::File(_), _) => unreachable!("a data task delivers a body"),
            }
        }
    }

    /// Loads `request` and returns its response as soon as the head is in, with the body to read as
    /// it arrives: URLSession's `bytes(for:)` (reqwest's `bytes_stream`). The body is read from the
    /// network only as fast as the [`ByteStream`] is read (at most 1 MiB ahead of it).
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
    ) -> impl Future<Output = Result<(Response, ByteStream), Error>> + Send + 'static {
        let request = request.into();
        let url = request.url_str().to_owned();
        let (streamed, head, body) = Streamed::channel();
        let session = self.clone();
        async move {
            // Created at the first poll, and started with it: a future never polled sends nothing.
            let task = session
                .create_with(
                    TaskKind::Data,
                    request,
                    None,
                    Work::Data,
                    Sink::Stream(streamed),
                    STARTED_AT_ONCE,
                )
                .map_err(|e| e.for_url(&url))?;
            drop(session);
            // From here, dropping the stream (or this future, which holds it) cancels the task.
            let stream = ByteStream::new(task.clone(), body);
            let response = head.await.unwrap_or_else(|_| {
                Err(Error::new(ErrorCode::Unknown, "the session went away").with_url(&url))
            })?;
            Ok((response, stream))
        }
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
    ) -> impl Future<Output = Result<(Bytes, Response), Error>> + Send + 'static {
        let done = self.completion_form(TaskKind::Upload, request.into(), Work::Upload(body));
        async move {
            match done.await? {
                (Delivered::Body(body), response) => Ok((body, response)),
                (Delivered::File(_), _) => unreachable!("an upload task delivers a body"),
            }
        }
    }

    /// Downloads `request` to a file in the session directory and returns it with the response:
    /// URLSession's `download(for:)`. The returned [`DownloadedFile`] removes the file when dropped,
    /// unless [`DownloadedFile::persist`] moved it. Dropping the future cancels the task.
    ///
    /// # Errors
    /// As [`Session::data`]; an error from a download that stopped part-way may carry resume data
    /// ([`Error::resume_data`]).
    pub fn download(
        &self,
        request: impl Into<Request>,
    ) -> impl Future<Output = Result<(DownloadedFile, Response), Error>> + Send + 'static {
        let ctx = self.inner.ctx.clone();
        let done = self.completion_form(
            TaskKind::Download,
            request.into(),
            Work::Download { resume: None },
        );
        async move {
            match done.await? {
                (Delivered::File(path), response) => Ok((DownloadedFile::new(path, ctx), response)),
                (Delivered::Body(_), _) => unreachable!("a download task delivers a file"),
            }
        }
    }

    /// Runs a task whose result goes to the returned future instead of the delegate.
    fn completion_form(
        &self,
        kind: TaskKind,
        request: Request,
        work: Work,
    ) -> impl Future<Output = Result<(Delivered, Response), Error>> + Send + 'static {
        let url = request.url_str().to_owned();
        let (tx, rx) = oneshot::channel();
        let session = self.clone();
        async move {
            // Created at the first poll, and started with it: a future never polled sends nothing.
            let task = session
                .create_with(kind, request, None, work, Sink::Await(tx), STARTED_AT_ONCE)
                .map_err(|e| e.for_url(&url))?;
            drop(session);
            let guard = CancelOnDrop(Some(task.clone()));
            let result = rx.await.unwrap_or_else(|_| {
                Err(Error::new(ErrorCode::Unknown, "the session went away").with_url(&url))
            });
            drop(guard.disarm());
            result
        }
    }
}

/// A completion-form task: no delegate callbacks, started as it is created.
const STARTED_AT_ONCE: Creation = Creation {
    callbacks: false,
    resume_now: true,
};

/// Cancels the task of a dropped `Session::data` future.
struct CancelOnDrop(Option<Task>);

impl CancelOnDrop {
    fn disarm(mut self) -> Self {
        self.0 = None;
        self
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.cancel();
        }
    }
}
