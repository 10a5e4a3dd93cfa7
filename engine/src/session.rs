//! `Session`: the application's handle to a session actor (`URLSession`).
//!
//! The handle is cheap to clone. Task creation is synchronous (identifiers are handed out here), the
//! rest is messages to the session actor in `actor`, which owns the tasks, supervises their actors
//! and carries out invalidation.

pub(crate) mod actor;
mod completion_forms;
pub(crate) mod trust;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use courier_delegates::{
    Delegate, DeliveryQueue, Error, ErrorCode, Request, ResumeData, TaskInfo, TaskKind,
};
use courier_protocol_http::{Transport, TransportSettings};
use courier_storage::SessionDirectory;
use ractor::ActorRef;
use tokio::sync::watch;

use crate::Configuration;
use crate::completion::{Sink, Terminal};
use crate::configuration::SessionKind;
use crate::context::SessionContext;
use crate::stores::{CookieStorage, CredentialStorage, Home, UrlCache};
use crate::task::download::{decode_resume_data, request_from_record};
use crate::task::{DataTask, DownloadTask, PartialSlot, Task, UploadBody, UploadTask, Work};
pub(crate) use actor::SessionMsg;
use actor::{SessionActor, SessionArgs};

static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

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

/// A session: a configuration, a connection pool, an optional delegate, and the tasks made in it.
///
/// # Runtime
/// A session runs on the Tokio runtime it is created in. Created outside any runtime, it runs on
/// Courier's own background runtime (two worker threads, started on first use), so it can be used
/// from synchronous code too. [`Session::shared`] always runs on that background runtime.
///
/// # Lifetime
/// URLSession keeps a session (and its delegate) alive until it is invalidated. Here, once the last
/// clone of a `Session` and the last handle of any of its tasks are dropped, the session does what
/// [`Session::finish_tasks_and_invalidate`] does: running tasks finish, and the delegate hears
/// `did_become_invalid` last.
#[derive(Clone)]
pub struct Session {
    inner: Arc<SessionCore>,
}

/// What every handle of one session shares: `Session` clones and task handles alike. When the last
/// handle goes, the session finishes its tasks and invalidates itself.
pub(crate) struct SessionCore {
    pub(crate) actor: ActorRef<SessionMsg>,
    ctx: Arc<SessionContext>,
    invalidated: AtomicBool,
    invalid_rx: watch::Receiver<bool>,
    shared: bool,
    /// The runtime the session runs on, for its blocking file work.
    runtime: tokio::runtime::Handle,
    /// A background session's connection to the service, where its tasks live.
    background: Option<Arc<crate::background::client::Client>>,
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
#[derive(Clone, Copy, Debug)]
pub(crate) struct Creation {
    /// The task reports to the delegate (false for the completion forms).
    pub(crate) callbacks: bool,
    /// The task starts as it is registered, as if `resume()` had been called at once: the
    /// completion forms, which resume right away (one message to the session actor, not two).
    pub(crate) resume_now: bool,
}

/// Task handles reach their session through its core, which they keep alive.
impl crate::task::SessionLink for SessionCore {
    fn report(&self, report: crate::task::TaskReport) -> bool {
        self.actor.cast(SessionMsg::Task(report)).is_ok()
    }
}

impl Drop for SessionCore {
    fn drop(&mut self) {
        if let Some(client) = &self.background {
            client.close();
        }
        if !self.shared && !self.invalidated.swap(true, Ordering::AcqRel) {
            let _ = self.actor.cast(SessionMsg::Invalidate { cancel: false });
        }
    }
}

/// Courier's background runtime, for sessions created outside a Tokio runtime.
fn background_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("courier-runtime")
            .enable_all()
            .build()
            .expect("courier: cannot start its background runtime (out of threads?)")
    })
}

impl Session {
    /// The shared session (`URLSession.shared`): default configuration, no delegate. Both invalidate
    /// calls do nothing on it.
    ///
    /// # Panics
    /// Only if the background runtime cannot be started (the system is out of threads).
    pub fn shared() -> Session {
        static SHARED: OnceLock<Session> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                let handle = background_runtime().handle().clone();
                Session::start(Configuration::default(), None, Some(handle), true)
                    .expect("courier: cannot start the shared session")
            })
            .clone()
    }

    /// A session without a delegate. Tasks made with [`Session::data_task`] report nothing; use the
    /// completion form ([`Session::data`]) or give the session a delegate.
    ///
    /// # Errors
    /// The configuration holds an unusable root certificate, or a setting out of its range
    /// ([`Configuration::check`]).
    pub fn new(config: Configuration) -> Result<Session, Error> {
        Session::start(config, None, None, false)
    }

    /// A session whose delegate hears every task's progress. Callbacks run one at a time, in order,
    /// on the session's own delegate thread. The session holds `delegate` until
    /// `did_become_invalid` has been delivered, then drops it.
    ///
    /// # Errors
    /// The configuration holds an unusable root certificate or a setting out of its range
    /// ([`Configuration::check`]), or the delegate thread cannot start.
    pub fn with_delegate(
        config: Configuration,
        delegate: Arc<dyn Delegate>,
    ) -> Result<Session, Error> {
        Session::start(config, Some(delegate), None, false)
    }

    /// A session whose delegate is called on `runtime` (URLSession's `delegateQueue`): one Tokio
    /// task delivers its callbacks, one at a time and in order, on that runtime's workers, instead
    /// of the session's own thread. For a delegate that lives among an application's async code
    /// (its callbacks can `tokio::spawn` there, and find the runtime with `Handle::current`).
    /// Callbacks must return quickly: each holds a worker while it runs.
    ///
    /// # Errors
    /// As [`Session::with_delegate`].
    pub fn with_delegate_on(
        config: Configuration,
        delegate: Arc<dyn Delegate>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Session, Error> {
        let queue = DeliveryQueue::start_on(delegate, runtime);
        Session::start_with_queue(config, Some(queue), None, false)
    }

    fn start(
        config: Configuration,
        delegate: Option<Arc<dyn Delegate>>,
        runtime: Option<tokio::runtime::Handle>,
        shared: bool,
    ) -> Result<Session, Error> {
        let id = NEXT_SESSION_ID.load(Ordering::Relaxed);
        let queue = match delegate {
            Some(d) => Some(DeliveryQueue::start(d, &id.to_string()).map_err(|e| {
                Error::new(ErrorCode::Unknown, "cannot start the delegate thread").with_source(e)
            })?),
            None => None,
        };
        Session::start_with_queue(config, queue, runtime, shared)
    }

    fn start_with_queue(
        config: Configuration,
        queue: Option<DeliveryQueue>,
        runtime: Option<tokio::runtime::Handle>,
        shared: bool,
    ) -> Result<Session, Error> {
        config.check()?;
        let id = NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed);
        let background = config.kind() == SessionKind::Background;
        if background && queue.is_none() {
            return Err(Error::new(
                ErrorCode::Unknown,
                "a background session needs a delegate: its events arrive after the call that made \
                 the task has returned (URLSession's rule)",
            ));
        }
        let background = match (background, &queue) {
            (true, Some(queue)) => Some(crate::background::client::Client::connect(
                &config,
                config.identifier().unwrap_or_default(),
                queue.clone(),
            )?),
            _ => None,
        };
        // With a delegate, TLS connections raise session-level challenges (server trust, client
        // certificates).
        let challenges = queue
            .clone()
            .map(|q| Arc::new(trust::SessionChallenges::new(q)));
        let trust = challenges
            .clone()
            .map(|c| c as Arc<dyn courier_protocol_http::trust::TrustEvaluator>);
        let identities = challenges
            .map(|c| c as Arc<dyn courier_protocol_http::identity::ClientIdentityProvider>);
        let proxies = config.proxy.routes()?;
        let transport = Transport::new(&TransportSettings {
            extra_roots: config.extra_root_certificates.clone(),
            max_connections_per_host: config.http_maximum_connections_per_host,
            connect_timeout: Some(config.timeout_for_request),
            trust,
            identities,
            proxies: Arc::new(proxies),
            tls_minimum_version: config.tls_minimum_version,
            tls_maximum_version: config.tls_maximum_version,
            ..TransportSettings::default()
        })
        .map_err(|e| Error::new(ErrorCode::Unknown, e.to_string()).with_source(e))?;
        let storage = Arc::new(match config.kind() {
            SessionKind::Ephemeral => SessionDirectory::ephemeral(config.session_directory.clone()),
            _ => SessionDirectory::persistent(config.session_directory.clone()),
        });
        let home = Home::of_session(&storage);
        let cookies = config.http_cookie_storage.pick(&home, |home| {
            CookieStorage::new(home, config.http_cookie_accept_policy)
        });
        let credentials = config
            .url_credential_storage
            .pick(&home, CredentialStorage::new);
        let url_cache = config.url_cache.pick(&home, |home| {
            UrlCache::in_home(
                home,
                config.url_cache_memory_capacity,
                config.url_cache_disk_capacity,
            )
        });
        let ctx = Arc::new(SessionContext {
            id,
            config,
            transport,
            queue,
            storage,
            credentials,
            cookies,
            url_cache,
            next_task_id: AtomicU64::new(1),
            tally: Arc::default(),
        });
        let (invalid_tx, invalid_rx) = watch::channel(false);
        let runtime = runtime
            .or_else(|| tokio::runtime::Handle::try_current().ok())
            .unwrap_or_else(|| background_runtime().handle().clone());
        let _entered = runtime.enter();
        let args = SessionArgs {
            ctx: ctx.clone(),
            invalid_tx,
        };
        // Stale partial downloads go, and the stores are loaded, off the caller's thread and the
        // async workers (a default session's directory only).
        if !ctx.storage.is_ephemeral() {
            let sweeping = ctx.clone();
            runtime.spawn_blocking(move || {
                // Load the stores now, off the async workers, rather than on a first response.
                if let Some(c) = &sweeping.cookies {
                    c.load();
                }
                if let Some(c) = &sweeping.credentials {
                    c.load();
                }
                let lifetime = sweeping.config.partial_download_lifetime;
                let removed = sweeping.storage.sweep_partials(lifetime);
                if removed > 0 {
                    tracing::info!(removed, "removed stale partial downloads");
                }
            });
        }
        // `pre_start` only builds the state and cannot fail, so starting "instantly" loses nothing.
        let (actor, _) =
            ractor::ActorRuntime::spawn_instant(None, SessionActor, args).map_err(|e| {
                Error::new(ErrorCode::Unknown, "cannot start the session actor").with_source(e)
            })?;
        if let Some(client) = &background {
            let actor = actor.clone();
            client.on_lost(move |error| {
                let _ = actor.cast(SessionMsg::Disconnected(error));
            });
        }
        Ok(Session {
            inner: Arc::new(SessionCore {
                actor,
                ctx,
                invalidated: AtomicBool::new(false),
                invalid_rx,
                shared,
                runtime: runtime.clone(),
                background,
            }),
        })
    }

    /// The session's configuration (its own copy).
    pub fn configuration(&self) -> &Configuration {
        &self.inner.ctx.config
    }

    /// The session directory's path: where downloads in progress and their partial files live.
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn directory(&self) -> std::io::Result<&std::path::Path> {
        self.inner.ctx.storage.path()
    }

    /// Resume data for the partial file `name` of this session's directory, from the checkpoint
    /// stored beside it (the background service continues its downloads after a restart with it).
    pub(crate) fn resume_data_for_partial(&self, name: &str) -> Option<ResumeData> {
        crate::task::download::resume_data_from_storage(&self.inner.ctx.storage, name)
    }

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
            resume_now: false,
        };
        self.create_with(kind, request, None, work, sink, how)
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
    ) -> Result<Task, CreateTaskError> {
        if self.inner.invalidated.load(Ordering::Acquire) {
            return Err(CreateTaskError::Invalidated);
        }
        if let Some(client) = &self.inner.background {
            let task = create_in_background(client, kind, request, work, sink)?;
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
        ctx.tally.register(info.clone());
        // Every task is announced, a completion form's too: it is how a delegate finds its handle.
        if let Some(queue) = &ctx.queue
            && queue.wants(courier_delegates::Callback::CreateTask)
        {
            let created = info.clone();
            queue.push(move |d| d.did_create_task(&created));
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
            .map_err(|_| CreateTaskError::Invalidated)?;
        Ok(if how.resume_now {
            Task::resumed(info, self.inner.clone(), partial)
        } else {
            Task::new(info, self.inner.clone(), partial)
        })
    }

    /// The sink of a delegate-style task.
    fn delegate_sink(&self) -> Sink {
        match &self.inner.ctx.queue {
            Some(queue) => Sink::Delegate(queue.clone()),
            None => Sink::Silent,
        }
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
                resume_now: false,
            },
        )?;
        Ok(DownloadTask::new(task))
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

    /// The sum of the progress of the tasks made in this session (those of a background session
    /// are not counted: they run in the service). Courier's addition; an application builds the
    /// same from URLSession's tasks' progress objects.
    pub fn progress(&self) -> crate::SessionProgress {
        crate::SessionProgress::of(self.inner.ctx.tally.clone())
    }

    /// The session's cookie storage (`configuration.httpCookieStorage`): its own or the shared one
    /// it was given; `None` when configured with none.
    pub fn cookie_storage(&self) -> Option<Arc<CookieStorage>> {
        self.inner.ctx.cookies.clone()
    }

    /// The session's credential storage (`configuration.urlCredentialStorage`).
    pub fn credential_storage(&self) -> Option<Arc<CredentialStorage>> {
        self.inner.ctx.credentials.clone()
    }

    /// The session's URL cache (`configuration.urlCache`).
    pub fn url_cache(&self) -> Option<Arc<UrlCache>> {
        self.inner.ctx.url_cache.clone()
    }

    /// Empties the session's cookie storage, URL cache and credential storage (in memory and on
    /// disk; shared ones for every session that uses them, as URLSession's `reset` does) and forgets the client certificates hosts were given; later requests use
    /// new connections. URLSession's `reset(completionHandler:)`: the returned future is the handler.
    /// Tasks under way go on (on their connections); what they store afterwards is kept.
    pub async fn reset(&self) {
        // What is being written now must not come back after the stores are emptied.
        self.inner.ctx.stores_written().await;
        let ctx = self.inner.ctx.clone();
        let cleared = self.inner.runtime.spawn_blocking(move || {
            if let Some(c) = &ctx.cookies {
                c.remove_all();
            }
            if let Some(c) = &ctx.url_cache {
                c.remove_all();
            }
            if let Some(c) = &ctx.credentials {
                c.remove_all();
            }
            ctx.transport.renew(true);
        });
        if cleared.await.is_err() {
            tracing::warn!("resetting the session's stores failed");
        }
    }

    /// Makes later requests use new connections, and returns once the session's stores (cookies,
    /// credentials, cached responses; written in the background as they change) are on disk:
    /// URLSession's `flush(completionHandler:)`, the future being the handler.
    pub async fn flush(&self) {
        self.inner.ctx.transport.renew(false);
        self.inner.ctx.stores_written().await;
    }

    /// The tasks that are running, or suspended after having been resumed (`getAllTasks`). Tasks
    /// never resumed, cancelling or completed are left out.
    ///
    /// In a background session: every task of the identifier that has not completed, including
    /// the ones an earlier life of the application created (never resumed ones too), as the
    /// service held them when this session attached. That is how a relaunched application gets
    /// handles to its transfers again.
    pub async fn all_tasks(&self) -> Vec<Task> {
        if let Some(client) = &self.inner.background {
            let link = Arc::new(crate::background::client::ClientLink(client.clone()));
            let asking = client.clone();
            let infos = self
                .inner
                .runtime
                .spawn_blocking(move || asking.tasks())
                .await
                .unwrap_or_default();
            return infos
                .into_iter()
                .map(|info| Task::new(info, link.clone(), PartialSlot::default()))
                .collect();
        }
        match ractor::call!(self.inner.actor, SessionMsg::AllTasks) {
            Ok(infos) => infos
                .into_iter()
                .map(|i| Task::resumed(i, self.inner.clone(), PartialSlot::default()))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Test hook: how many tasks the session still holds (created and not yet completed).
    #[cfg(feature = "test-hooks")]
    pub async fn registered_tasks(&self) -> usize {
        ractor::call!(self.inner.actor, SessionMsg::CountEntries).unwrap_or(0)
    }

    /// Refuses new tasks, lets the outstanding ones finish, then delivers `did_become_invalid` and
    /// drops the delegate. Returns at once. Tasks that were never resumed are cancelled (each
    /// completes with -999) once the others have finished. Does nothing on the shared session.
    pub fn finish_tasks_and_invalidate(&self) {
        self.invalidate(false);
    }

    /// Refuses new tasks and cancels every task, never-resumed ones included (each completes with
    /// -999), then delivers `did_become_invalid` last. Returns at once. Does nothing on the shared
    /// session.
    pub fn invalidate_and_cancel(&self) {
        self.invalidate(true);
    }

    fn invalidate(&self, cancel: bool) {
        if self.inner.shared {
            return;
        }
        let first = !self.inner.invalidated.swap(true, Ordering::AcqRel);
        if let (Some(client), true) = (&self.inner.background, cancel) {
            // The service cancels the identifier's tasks; their completions reach the next
            // session made with it (this one detaches and ends with `did_become_invalid`).
            client.invalidate();
        }
        if let Some(client) = &self.inner.background {
            client.close();
        }
        if first || cancel {
            let _ = self.inner.actor.cast(SessionMsg::Invalidate { cancel });
        }
    }

    /// Waits until the session is invalid: every task has completed, the session's stores are on
    /// disk, and `did_become_invalid` (if there is a delegate) has been queued as the last callback. Courier's addition, for code
    /// without a delegate; it never resolves for the shared session.
    pub async fn invalidated(&self) {
        let mut rx = self.inner.invalid_rx.clone();
        let _ = rx.wait_for(|done| *done).await;
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.inner.ctx.id)
            .field("kind", &self.inner.ctx.config.kind())
            .finish_non_exhaustive()
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Session>();
    is::<DataTask>();
    is::<DownloadTask>();
    is::<UploadTask>();
}
