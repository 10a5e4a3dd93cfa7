//! `Session`: the application's handle to a session actor (`URLSession`).
//!
//! The handle is cheap to clone. Task creation is synchronous (identifiers are handed out here), the
//! rest is messages to the session actor in `actor`, which owns the tasks, supervises their actors
//! and carries out invalidation.
//!
//! - `create`: the delegate-style task constructors, and the one path every task is made through.
//! - `completion_forms`: `data`, `upload`, `download`, `bytes` and their [`TaskFuture`](crate::TaskFuture).
//! - `actor`: the session actor. `trust`: the delegate's say over server trust and client identity.

pub(crate) mod actor;
mod completion_forms;
mod create;
pub(crate) mod trust;

pub use create::CreateTaskError;
pub(crate) use create::Creation;
pub use trust::identity_from_pem;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use courier_delegates::{Delegate, DeliveryQueue, Error, ErrorCode, ResumeData};
use courier_protocol_http::{Transport, TransportSettings};
use courier_storage::SessionDirectory;
use ractor::ActorRef;
use tokio::sync::watch;

use crate::Configuration;
use crate::configuration::SessionKind;
use crate::context::SessionContext;
use crate::stores::{CookieStorage, CredentialStorage, Home, UrlCache};
use crate::task::{DataTask, DownloadTask, PartialSlot, Task, UploadTask};
pub(crate) use actor::SessionMsg;
use actor::{SessionActor, SessionArgs};

static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

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
    /// `sessionDescription`: the application's label.
    description: std::sync::Mutex<String>,
}

/// Task handles reach their session through its core, which they keep alive.
impl crate::task::SessionLink for SessionCore {
    fn report(&self, report: crate::task::TaskReport) -> bool {
        self.actor.cast(SessionMsg::Task(report)).is_ok()
    }

    fn own_delegate_queue(
        &self,
    ) -> Result<courier_delegates::DeliveryQueue, crate::task::TaskDelegateError> {
        if self.background.is_some() {
            return Err(crate::task::TaskDelegateError::Background);
        }
        self.ctx
            .own_delegate_queue()
            .map_err(|e| crate::task::TaskDelegateError::Queue(e.to_string()))
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
            connect_timeout: Some(
                config
                    .timeout_for_connect
                    .unwrap_or(config.timeout_for_request),
            ),
            trust,
            identities,
            proxies: Arc::new(proxies),
            tls_minimum_version: config.tls_minimum_version,
            tls_maximum_version: config.tls_maximum_version,
            naming: Arc::new(courier_protocol_http::Naming {
                given: config.given_addresses.clone(),
                ip_version: config.ip_version,
            }),
            http1_only: config.http1_only,
            ..TransportSettings::default()
        })
        .map_err(|e| Error::new(ErrorCode::Unknown, e.to_string()).with_source(e))?;
        let storage = Arc::new(match config.kind() {
            SessionKind::Ephemeral => SessionDirectory::ephemeral(config.session_directory.clone()),
            _ if config.directory_held_alone => {
                SessionDirectory::unowned(config.session_directory.clone())
            }
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
        let per_host = config.http_maximum_connections_per_host;
        let ctx = Arc::new(SessionContext {
            id,
            base_headers: crate::task::request::BaseHeaders::new(&config),
            config,
            transport,
            queue,
            storage,
            credentials,
            cookies,
            url_cache,
            next_task_id: AtomicU64::new(1),
            tally: Arc::default(),
            tasks_queue: std::sync::OnceLock::new(),
            host_queue: crate::task::transfer::host_queue::HostQueue::new(per_host),
            adoptable: std::sync::Mutex::default(),
            open_downloads: std::sync::atomic::AtomicUsize::new(0),
            directory_jobs: Arc::new(tokio::sync::Semaphore::new(
                crate::task::download::DIRECTORY_JOBS_AT_ONCE,
            )),
            checkpoints: Arc::new(tokio::sync::Semaphore::new(
                crate::task::download::CHECKPOINTS_AT_ONCE,
            )),
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
                description: std::sync::Mutex::default(),
            }),
        })
    }

    /// `sessionDescription`: a free label for the application (for its logs, or to tell its
    /// sessions apart), empty until set. Every handle of the session sees the same label.
    pub fn description(&self) -> String {
        self.inner
            .description
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sets the label [`Session::description`] returns.
    pub fn set_description(&self, description: impl Into<String>) {
        *self
            .inner
            .description
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = description.into();
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

    /// The downloads that sessions on this session's directory left part-way when their process
    /// ended without stopping them (killed, crashed, out of power), never one a live process is
    /// still writing. Courier's addition: URLSession loses them outside background sessions.
    /// Empty for an ephemeral session (nothing of it outlives it) and a background one (the
    /// service continues its own).
    ///
    /// It reads the session directory: in an async server, call it from `spawn_blocking`.
    pub fn interrupted_downloads(&self) -> Vec<crate::InterruptedDownload> {
        if self.inner.background.is_some() {
            return Vec::new();
        }
        crate::task::download::interrupted::interrupted(&self.inner.ctx.storage)
    }

    /// Takes over an interrupted download: its partial file becomes this session's, and the
    /// resume data returned continues it ([`Session::download_task_with_resume_data`]). Of two
    /// sessions taking the same download, one gets it.
    ///
    /// # Errors
    /// [`ErrorCode::FileDoesNotExist`](crate::ErrorCode) when another session took it first;
    /// [`ErrorCode::CannotOpenFile`](crate::ErrorCode) when its file no longer holds the bytes its
    /// checkpoint describes (the file is removed: the download starts over), or when the directory
    /// cannot be written.
    pub fn take_over_download(
        &self,
        download: &crate::InterruptedDownload,
    ) -> Result<ResumeData, crate::Error> {
        crate::task::download::interrupted::take_over(&self.inner.ctx.storage, download)
    }

    /// Removes an interrupted download's partial file (one no other session took meanwhile).
    pub fn discard_interrupted_download(&self, download: crate::InterruptedDownload) {
        crate::task::download::interrupted::discard(&self.inner.ctx.storage, download);
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

    /// The handle of the stream task a data task became
    /// ([`ResponseDisposition::BecomeStream`](courier_delegates::ResponseDisposition)), by the
    /// identifier `did_become_stream_task` names: given once, while the task runs. URLSession hands the task object
    /// to the delegate itself; the delegate crate here knows no handles, so the session keeps it
    /// until asked.
    pub fn adopt_stream_task(&self, stream_task: u64) -> Option<crate::task::StreamTask> {
        self.inner
            .ctx
            .adoptable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&stream_task)
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
        // The URL cache's disk half is emptied by its writer: gone from disk once written.
        self.inner.ctx.stores_written().await;
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

    /// Test hook: how many task actors are running a task (a task waiting in its host's line has
    /// none; a free actor, kept for the next task, runs none).
    #[cfg(feature = "test-hooks")]
    pub async fn task_actors(&self) -> usize {
        ractor::call!(self.inner.actor, SessionMsg::CountActors).unwrap_or(0)
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
    /// disk, and the delegate (if there is one) has returned from `did_become_invalid`, its last
    /// callback, so that what the delegate recorded can be read. Courier's addition, for code
    /// without a delegate; it never resolves for the shared session. Do not await it inside a
    /// delegate callback: it waits for that callback's queue.
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

#[cfg(test)]
mod tests {
    use super::Session;

    #[tokio::test]
    async fn the_session_description_is_a_label_every_handle_shares() {
        let session = Session::new(crate::Configuration::ephemeral()).unwrap();
        assert_eq!(session.description(), "", "empty until set");
        let other = session.clone();
        other.set_description("photo sync");
        assert_eq!(session.description(), "photo sync");
        session.invalidate_and_cancel();
    }
}
