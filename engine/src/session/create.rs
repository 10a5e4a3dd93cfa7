//! Making tasks: the delegate-style constructors (`data_task`, `upload_task`, `download_task`,
//! `download_task_with_resume_data`), the one path every task is made through (`create_with`:
//! numbered, counted for progress, announced, registered with the session actor), and the rules a
//! background session's tasks follow.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use courier_delegates::{Error, ErrorCode, Request, ResumeData, TaskInfo, TaskKind};

use super::{Session, SessionMsg};
use crate::completion::{Sink, Terminal};
use crate::task::download::{decode_resume_data, request_from_record, resume_error};
use crate::task::transfer::UploadResumption;
use crate::task::{
    DataTask, DownloadTask, PartialSlot, StreamTask, Task, UploadBody, UploadTask, WebSocketTask,
    Work,
};

/// Why a task could not be created.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CreateTaskError {
    /// The session has been invalidated. Darwin raises an exception here ("Task created in a
    /// session that has been invalidated"); Courier returns this error instead.
    Invalidated,
    /// A background session does not take this (URLSession's rules): data tasks, uploads from
    /// bytes or a stream, tasks from resume data, completion forms and byte streams, URLs other
    /// than http and https. Names what was refused.
    NotInBackground(&'static str),
    /// The background service refused the task or could not be reached.
    Service(String),
    /// The task's own delegate could not be attached (a completion form's `with_delegate`).
    Delegate(crate::task::TaskDelegateError),
}

impl std::fmt::Display for CreateTaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CreateTaskError::Invalidated => {
                f.write_str("task created in a session that has been invalidated")
            }
            CreateTaskError::NotInBackground(what) => {
                write!(f, "background sessions do not take {what}")
            }
            CreateTaskError::Service(why) => write!(f, "the background service: {why}"),
            CreateTaskError::Delegate(why) => write!(f, "the task's delegate: {why}"),
        }
    }
}

impl std::error::Error for CreateTaskError {}

impl CreateTaskError {
    /// As the error of a completion form, which returns [`Error`]s only.
    pub(crate) fn for_url(self, url: &str) -> Error {
        Error::new(ErrorCode::Unknown, self.to_string())
            .with_url(url)
            .with_source(self)
    }
}

/// A task that could not be made, and the URL it was for: what a completion form's error names.
/// The URL is copied only when a task is refused, not for every task in case it is.
#[derive(Debug)]
pub(crate) struct Refused {
    pub(crate) reason: CreateTaskError,
    url: String,
}

impl Refused {
    fn new(reason: CreateTaskError, url: &str) -> Refused {
        Refused {
            reason,
            url: url.to_owned(),
        }
    }

    /// As the error of a completion form.
    pub(crate) fn into_error(self) -> Error {
        self.reason.for_url(&self.url)
    }
}

impl From<Refused> for CreateTaskError {
    fn from(refused: Refused) -> CreateTaskError {
        refused.reason
    }
}

/// Creates a task of a background session in the service, under URLSession's rules for them.
fn create_in_background(
    client: &Arc<crate::background::client::Client>,
    kind: TaskKind,
    request: Request,
    work: Work,
    sink: Sink,
) -> Result<Task, CreateTaskError> {
    if !matches!(sink, Sink::Delegate(_)) {
        return Err(CreateTaskError::NotInBackground(
            "completion forms or byte streams (their answers need the application to be there)",
        ));
    }
    let file = match (kind, work) {
        (TaskKind::Download, Work::Download { resume: None }) => None,
        (TaskKind::Download, Work::Download { .. }) => {
            return Err(CreateTaskError::NotInBackground(
                "tasks made from resume data",
            ));
        }
        (TaskKind::Upload, Work::Upload(UploadBody::File(path))) => Some(path),
        (TaskKind::Upload, _) => {
            return Err(CreateTaskError::NotInBackground(
                "uploads from bytes or a stream (only from a file)",
            ));
        }
        (TaskKind::WebSocket, _) => {
            return Err(CreateTaskError::NotInBackground("WebSocket tasks"));
        }
        (TaskKind::Stream, _) => {
            return Err(CreateTaskError::NotInBackground("stream tasks"));
        }
        _ => return Err(CreateTaskError::NotInBackground("data tasks")),
    };
    if !request
        .url()
        .is_some_and(|u| matches!(u.scheme(), "http" | "https"))
    {
        return Err(CreateTaskError::NotInBackground(
            "URLs other than http and https",
        ));
    }
    let info = client.create(kind, request, file)?;
    let link = Arc::new(crate::background::client::ClientLink(client.clone()));
    Ok(Task::new(info, link, PartialSlot::default()))
}

/// How a new task is made.
#[derive(Clone, Default)]
pub(crate) struct Creation {
    /// The task reports to the delegate (false for the completion forms).
    pub(crate) callbacks: bool,
    /// The task starts as it is registered, as if `resume()` had been called at once: the
    /// completion forms, which resume right away (one message to the session actor, not two).
    pub(crate) resume_now: bool,
    /// The task's own delegate, attached before anything is said about the task.
    pub(crate) delegate: Option<Arc<dyn courier_delegates::TaskLevelDelegate>>,
}

impl Session {
    fn create(
        &self,
        kind: TaskKind,
        request: Request,
        work: Work,
        sink: Sink,
        callbacks: bool,
    ) -> Result<Task, CreateTaskError> {
        let how = Creation {
            callbacks,
            ..Creation::default()
        };
        Ok(self.create_with(kind, request, None, work, sink, how)?)
    }

    /// Creates a task; `current` when its current request differs from the original one.
    pub(crate) fn create_with(
        &self,
        kind: TaskKind,
        request: Request,
        current: Option<Request>,
        work: Work,
        sink: Sink,
        how: Creation,
    ) -> Result<Task, Refused> {
        if self.inner.invalidated.load(Ordering::Acquire) {
            return Err(Refused::new(
                CreateTaskError::Invalidated,
                request.url_str(),
            ));
        }
        if let Some(client) = &self.inner.background {
            if how.delegate.is_some() {
                return Err(Refused::new(
                    CreateTaskError::Delegate(crate::task::TaskDelegateError::Background),
                    request.url_str(),
                ));
            }
            let url = request.url_str().to_owned();
            let task = create_in_background(client, kind, request, work, sink)
                .map_err(|reason| Refused { reason, url })?;
            if how.resume_now {
                task.resume();
            }
            return Ok(task);
        }
        let ctx = &self.inner.ctx;
        let id = ctx.next_task_id.fetch_add(1, Ordering::Relaxed);
        let (info, recorder) = TaskInfo::new(id, kind, request);
        if let Some(current) = current {
            recorder.set_current_request(current);
        }
        if let Some(delegate) = how.delegate {
            let queue = ctx.own_delegate_queue().map_err(|e| {
                Refused::new(
                    CreateTaskError::Delegate(crate::task::TaskDelegateError::Queue(e.to_string())),
                    info.original_request().url_str(),
                )
            })?;
            queue.attach(&info, delegate);
        }
        ctx.tally.register(info.clone());
        // Every task is announced, a completion form's too: it is how a delegate finds its handle.
        let created = courier_delegates::Callback::CreateTask;
        if let Some(queue) = ctx.delivery(&info)
            && queue.wants_task(&info, created)
        {
            let task = info.clone();
            queue.push_task(&info, created, move |d| d.did_create_task(&task));
        }
        let terminal = Terminal::new(sink, recorder.clone());
        let partial = if work.is_download() {
            PartialSlot::for_download()
        } else {
            PartialSlot::default()
        };
        self.inner
            .actor
            .cast(SessionMsg::Register {
                recorder,
                terminal,
                callbacks: how.callbacks,
                work,
                partial: partial.clone(),
                resume: how.resume_now,
            })
            .map_err(|_| {
                Refused::new(
                    CreateTaskError::Invalidated,
                    info.original_request().url_str(),
                )
            })?;
        Ok(if how.resume_now {
            Task::resumed(info, self.inner.clone(), partial)
        } else {
            Task::new(info, self.inner.clone(), partial)
        })
    }

    /// The sink of a delegate-style task.
    fn delegate_sink(&self) -> Sink {
        Sink::Delegate(self.inner.ctx.queue.clone())
    }

    /// A data task for `request`, suspended: call [`Task::resume`] to start it. Its progress goes to
    /// the session's delegate.
    ///
    /// # Errors
    /// The session has been invalidated.
    pub fn data_task(&self, request: impl Into<Request>) -> Result<DataTask, CreateTaskError> {
        self.create(
            TaskKind::Data,
            request.into(),
            Work::Data,
            self.delegate_sink(),
            true,
        )
        .map(DataTask::new)
    }

    /// An upload task that sends `body` with `request` (the request's own body, if any, is not
    /// used), suspended. Progress goes to the delegate (`did_send_body_data`), then the response and
    /// its body as for a data task.
    ///
    /// # Errors
    /// The session has been invalidated.
    pub fn upload_task(
        &self,
        request: impl Into<Request>,
        body: UploadBody,
    ) -> Result<UploadTask, CreateTaskError> {
        self.create(
            TaskKind::Upload,
            request.into(),
            Work::Upload(body),
            self.delegate_sink(),
            true,
        )
        .map(UploadTask::new)
    }

    /// A download task for `request`, suspended. Progress goes to the delegate (`did_write_data`);
    /// the file to `did_finish_downloading_to`.
    ///
    /// The request asks for the body as stored (`Accept-Encoding: identity`) unless it or the
    /// configuration names an encoding, so that a download a server would compress on the fly
    /// keeps its length and can resume (a range addresses the stored bytes). URLSession asks for
    /// gzip here too; Courier differs on purpose, as curl and wget do. A body the server encodes
    /// anyway is decoded.
    ///
    /// # Errors
    /// The session has been invalidated.
    pub fn download_task(
        &self,
        request: impl Into<Request>,
    ) -> Result<DownloadTask, CreateTaskError> {
        self.create(
            TaskKind::Download,
            request.into(),
            Work::Download { resume: None },
            self.delegate_sink(),
            true,
        )
        .map(DownloadTask::new)
    }

    /// Makes a WebSocket task for `request` (a `ws:` or `wss:` URL), offering `protocols` as its
    /// subprotocols (`Sec-WebSocket-Protocol`, joined with `", "`): URLSession's
    /// `webSocketTask(with:protocols:)`. Resume it to connect. Pass `&[]` to offer none.
    ///
    /// # Errors
    /// An invalidated session, or a background session (which takes no WebSocket tasks).
    pub fn web_socket_task(
        &self,
        request: impl Into<Request>,
        protocols: &[&str],
    ) -> Result<WebSocketTask, CreateTaskError> {
        let protocols = protocols.iter().map(|p| (*p).to_owned()).collect();
        let (socket, handle) = crate::task::web_socket::socket_ends(protocols);
        self.create(
            TaskKind::WebSocket,
            request.into(),
            Work::WebSocket(Box::new(socket)),
            self.delegate_sink(),
            true,
        )
        .map(|task| WebSocketTask::new(task, handle))
    }

    /// Makes a stream task to `host:port` (URLSession's `streamTask(withHostName:port:)`), a TCP
    /// connection the application reads and writes once the task is resumed. Its request's URL is
    /// `tcp://host:port`.
    ///
    /// # Errors
    /// An invalidated session, or a background session (which takes no stream tasks).
    pub fn stream_task(&self, host: &str, port: u16) -> Result<StreamTask, CreateTaskError> {
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]") // an IPv6 literal
        } else {
            host.to_owned()
        };
        let (ends, commands) = crate::task::stream::stream_ends();
        self.create(
            TaskKind::Stream,
            Request::get(&format!("tcp://{host}:{port}")),
            Work::Stream(Box::new(ends)),
            self.delegate_sink(),
            true,
        )
        .map(|task| StreamTask::new(task, commands))
    }

    /// A download task that continues a stopped download (`downloadTask(withResumeData:)`),
    /// suspended. It is a new task, with a new identifier.
    ///
    /// When resumed, it asks the server for the rest (`Range` with `If-Range`). A 206 that
    /// continues exactly at the offset is appended (`did_resume_at_offset(offset, total)`); any
    /// other answer (a 200, a 206 elsewhere, a 416, a changed validator) empties the file and starts
    /// over (`did_resume_at_offset(0, total)`). Resume data that is corrupt or of another format
    /// version, or whose partial file is missing, changed, or not in this session's directory, fails
    /// the task as soon as it is resumed, and no file is touched.
    ///
    /// # Errors
    /// The session has been invalidated.
    pub fn download_task_with_resume_data(
        &self,
        data: &ResumeData,
    ) -> Result<DownloadTask, CreateTaskError> {
        if let Some(client) = &self.inner.background {
            // The service's own data: it checks and decodes it.
            let info = client.create_from_resume_data(data.as_bytes())?;
            let link = Arc::new(crate::background::client::ClientLink(client.clone()));
            return Ok(DownloadTask::new(Task::new(
                info,
                link,
                PartialSlot::default(),
            )));
        }
        let (original, current, work) = self.resumed_download(data);
        let task = self.create_with(
            TaskKind::Download,
            original,
            Some(current),
            work,
            self.delegate_sink(),
            Creation {
                callbacks: true,
                ..Creation::default()
            },
        )?;
        Ok(DownloadTask::new(task))
    }

    /// An upload task that goes on with a stopped upload (`uploadTask(withResumeData:)`, iOS 17),
    /// suspended. It is a new task, with a new identifier, and the original request.
    ///
    /// When resumed, it asks the server's upload resource how much it holds (`HEAD`,
    /// `Upload-Offset`) and sends only the rest (`PATCH`, `Upload-Offset`), reporting
    /// `did_send_body_data` for what it sends; the answer to that is the task's response. A
    /// resource that no longer tells an offset (gone, expired) has the upload start over, as a new
    /// upload of the whole body; one that holds the whole upload already fails the task with
    /// -1011 (its response was lost, and the upload sent again could be made twice). Resume data
    /// that is corrupt, not this session directory's, or a download's fails the task with -1015 as
    /// soon as it is resumed; a body file that is gone fails it with -1100, and one that changed
    /// since (its length or modification time) with -3001, before anything is sent.
    ///
    /// # Errors
    /// The session has been invalidated, or is a background session (which takes no uploads
    /// made from resume data).
    pub fn upload_task_with_resume_data(
        &self,
        data: &ResumeData,
    ) -> Result<UploadTask, CreateTaskError> {
        if self.inner.background.is_some() {
            return Err(CreateTaskError::NotInBackground(
                "uploads made from resume data",
            ));
        }
        let (original, resumption) = self.resumed_upload(data);
        self.upload_task_resumed(original, resumption)
    }

    /// The upload task that goes on with `resumption` (decoded by [`Session::resumed_upload`]),
    /// suspended: for a caller that looked at the decoded data first, which is then not read
    /// twice.
    pub(crate) fn upload_task_resumed(
        &self,
        original: Request,
        resumption: Result<Box<UploadResumption>, Error>,
    ) -> Result<UploadTask, CreateTaskError> {
        self.create(
            TaskKind::Upload,
            original,
            Work::ResumedUpload(resumption),
            self.delegate_sink(),
            true,
        )
        .map(UploadTask::new)
    }

    /// The original request and the checked upload of an upload made from `data`, or why it
    /// cannot go on (the task fails with that when it starts; until then it has no URL to show).
    pub(crate) fn resumed_upload(
        &self,
        data: &ResumeData,
    ) -> (Request, Result<Box<UploadResumption>, Error>) {
        crate::task::transfer::decode_upload_resume_data(&self.inner.ctx.storage, data)
    }

    /// Whether `data` can still continue its download in this session, and the request it
    /// continues (what URLSession's resume data keeps under `NSURLSessionResumeOriginalRequest`,
    /// which applications read to know what it is for). It checks what the task would check when
    /// resumed, and changes nothing: the data is this session directory's, its partial file is
    /// there and still ends with the bytes it describes. Courier's addition.
    ///
    /// It reads the partial file's last bytes: in an async server, call it from `spawn_blocking`.
    ///
    /// # Errors
    /// The error the task would fail with: -1015 for data that is damaged or not this directory's
    /// (a background session's resume data is its service's), -1100 when the partial file is
    /// gone, -3001 when it changed.
    pub fn check_resume_data(&self, data: &ResumeData) -> Result<Request, Error> {
        let storage = &self.inner.ctx.storage;
        let record = decode_resume_data(storage, data)?;
        storage
            .check_resume(&record)
            .map_err(|e| resume_error(e, true, &record.url))?;
        Ok(request_from_record(&record.original_request))
    }

    /// Whether `data` can still go on with its upload in this session, the request it continues
    /// and the body it sends the rest of (a file by its absolute path, or the bytes themselves):
    /// the upload counterpart of [`Session::check_resume_data`], which checks what
    /// [`Session::upload_task_with_resume_data`] checks before it sends anything. An application
    /// that finds resume data lying about tells by the request and the body whether it is the
    /// upload it is about to start. It asks the server nothing (whether the server still holds
    /// the upload is known only by asking, as the task does). Courier's addition.
    ///
    /// It reads the body file's metadata: in an async server, call it from `spawn_blocking`.
    ///
    /// # Errors
    /// The error the task would fail with: -1015 for data that is damaged, not this directory's,
    /// or not an upload's; -1100 when the body's file is gone, -3001 when it changed.
    pub fn check_upload_resume_data(
        &self,
        data: &ResumeData,
    ) -> Result<(Request, UploadBody), Error> {
        let (original, resumption) = self.resumed_upload(data);
        resumption.map(|r| (original, r.resource.body().clone()))
    }

    /// The original and current requests and the work of a download made from `data`. Data that
    /// cannot be used fails the task when it starts; until then it has no URL to show.
    pub(crate) fn resumed_download(&self, data: &ResumeData) -> (Request, Request, Work) {
        let resume = decode_resume_data(&self.inner.ctx.storage, data);
        let (original, current) = match &resume {
            Ok(r) => (
                request_from_record(&r.original_request),
                request_from_record(&r.current_request),
            ),
            Err(_) => (Request::get(""), Request::get("")),
        };
        let work = Work::Download {
            resume: Some(resume),
        };
        (original, current, work)
    }
}
