//! `Session`: the application's handle to a session actor (`URLSession`).
//!
//! The handle is cheap to clone. Task creation is synchronous (identifiers are handed out here), the
//! rest is messages to the session actor in `actor`, which owns the tasks, supervises their actors
//! and carries out invalidation.

pub(crate) mod actor;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use courier_delegates::{
    Delegate, DeliveryQueue, Error, ErrorCode, Request, Response, TaskInfo, TaskKind,
};
use courier_protocol_http::{Transport, TransportSettings};
use ractor::ActorRef;
use tokio::sync::{oneshot, watch};

use crate::Configuration;
use crate::task::{DataTask, Sink, Terminal};
pub(crate) use actor::SessionMsg;
use actor::{SessionActor, SessionArgs};

/// What a session and all its task actors share.
pub(crate) struct SessionContext {
    /// Unique in the process; names the session in traces.
    pub(crate) id: u64,
    /// The session's own copy of its configuration.
    pub(crate) config: Configuration,
    /// The session's connection pool.
    pub(crate) transport: Transport,
    /// The delegate's serial queue, when the session has a delegate.
    pub(crate) queue: Option<DeliveryQueue>,
}

static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

/// The error of creating a task in a session that has been invalidated.
///
/// Darwin raises an exception here ("Task created in a session that has been invalidated"); Courier
/// returns this error instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionInvalidated;

impl std::fmt::Display for SessionInvalidated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("task created in a session that has been invalidated")
    }
}

impl std::error::Error for SessionInvalidated {}

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
    next_task_id: AtomicU64,
    invalidated: AtomicBool,
    invalid_rx: watch::Receiver<bool>,
    shared: bool,
    has_delegate: bool,
}

impl Drop for SessionCore {
    fn drop(&mut self) {
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
    /// The configuration holds an unusable root certificate.
    pub fn new(config: Configuration) -> Result<Session, Error> {
        Session::start(config, None, None, false)
    }

    /// A session whose delegate hears every task's progress. Callbacks run one at a time, in order,
    /// on the session's own delegate thread. The session holds `delegate` until
    /// `did_become_invalid` has been delivered, then drops it.
    ///
    /// # Errors
    /// The configuration holds an unusable root certificate, or the delegate thread cannot start.
    pub fn with_delegate(
        config: Configuration,
        delegate: Arc<dyn Delegate>,
    ) -> Result<Session, Error> {
        Session::start(config, Some(delegate), None, false)
    }

    fn start(
        config: Configuration,
        delegate: Option<Arc<dyn Delegate>>,
        runtime: Option<tokio::runtime::Handle>,
        shared: bool,
    ) -> Result<Session, Error> {
        let id = NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed);
        let transport = Transport::new(&TransportSettings {
            extra_roots: config.extra_root_certificates.clone(),
            max_connections_per_host: config.http_maximum_connections_per_host,
            connect_timeout: Some(config.timeout_for_request),
            ..TransportSettings::default()
        })
        .map_err(|e| Error::new(ErrorCode::Unknown, e.to_string()).with_source(e))?;
        let has_delegate = delegate.is_some();
        let queue = match delegate {
            Some(d) => Some(DeliveryQueue::start(d, &id.to_string()).map_err(|e| {
                Error::new(ErrorCode::Unknown, "cannot start the delegate thread").with_source(e)
            })?),
            None => None,
        };
        let ctx = Arc::new(SessionContext {
            id,
            config,
            transport,
            queue,
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
        // `pre_start` only builds the state and cannot fail, so starting "instantly" loses nothing.
        let (actor, _) =
            ractor::ActorRuntime::spawn_instant(None, SessionActor, args).map_err(|e| {
                Error::new(ErrorCode::Unknown, "cannot start the session actor").with_source(e)
            })?;
        Ok(Session {
            inner: Arc::new(SessionCore {
                actor,
                ctx,
                next_task_id: AtomicU64::new(1),
                invalidated: AtomicBool::new(false),
                invalid_rx,
                shared,
                has_delegate,
            }),
        })
    }

    /// The session's configuration (its own copy).
    pub fn configuration(&self) -> &Configuration {
        &self.inner.ctx.config
    }

    fn create(
        &self,
        request: Request,
        sink: Sink,
        callbacks: bool,
    ) -> Result<DataTask, SessionInvalidated> {
        if self.inner.invalidated.load(Ordering::Acquire) {
            return Err(SessionInvalidated);
        }
        let id = self.inner.next_task_id.fetch_add(1, Ordering::Relaxed);
        let (info, recorder) = TaskInfo::new(id, TaskKind::Data, request);
        let terminal = Terminal::new(sink);
        self.inner
            .actor
            .cast(SessionMsg::Register {
                recorder,
                terminal,
                callbacks,
            })
            .map_err(|_| SessionInvalidated)?;
        Ok(DataTask::new(info, self.inner.clone()))
    }

    /// A data task for `request`, suspended: call [`DataTask::resume`] to start it. Its progress
    /// goes to the session's delegate.
    ///
    /// # Errors
    /// The session has been invalidated.
    pub fn data_task(&self, request: impl Into<Request>) -> Result<DataTask, SessionInvalidated> {
        let sink = if self.inner.has_delegate {
            Sink::Delegate
        } else {
            Sink::Silent
        };
        self.create(request.into(), sink, true)
    }

    /// Loads `request` and returns its body and response: URLSession's `data(for:)`.
    ///
    /// No response, data or completion callbacks are sent for this task. Dropping the future cancels
    /// the task.
    ///
    /// # Errors
    /// The task's error (HTTP error statuses are not errors). In an invalidated session, an
    /// [`ErrorCode::Unknown`] error whose source is [`SessionInvalidated`].
    pub fn data(
        &self,
        request: impl Into<Request>,
    ) -> impl Future<Output = Result<(Bytes, Response), Error>> + Send + 'static {
        let request = request.into();
        let url = request.url_str().to_owned();
        let (tx, rx) = oneshot::channel();
        let created = self.create(request, Sink::Await(tx), false);
        async move {
            let task = created.map_err(|e| {
                Error::new(ErrorCode::Unknown, e.to_string())
                    .with_url(&url)
                    .with_source(e)
            })?;
            let guard = CancelOnDrop(Some(task.clone()));
            task.resume();
            let result = rx.await.unwrap_or_else(|_| {
                Err(Error::new(ErrorCode::Unknown, "the session went away").with_url(&url))
            });
            drop(guard.disarm());
            result
        }
    }

    /// The tasks that are running, or suspended after having been resumed (`getAllTasks`). Tasks
    /// never resumed, cancelling or completed are left out.
    pub async fn all_tasks(&self) -> Vec<DataTask> {
        match ractor::call!(self.inner.actor, SessionMsg::AllTasks) {
            Ok(infos) => infos
                .into_iter()
                .map(|i| DataTask::new(i, self.inner.clone()))
                .collect(),
            Err(_) => Vec::new(),
        }
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
        if first || cancel {
            let _ = self.inner.actor.cast(SessionMsg::Invalidate { cancel });
        }
    }

    /// Waits until the session is invalid: every task has completed and `did_become_invalid` (if
    /// there is a delegate) has been queued as the last callback. Courier's addition, for code
    /// without a delegate; it never resolves for the shared session.
    pub async fn invalidated(&self) {
        let mut rx = self.inner.invalid_rx.clone();
        let _ = rx.wait_for(|done| *done).await;
    }
}

/// Cancels the task of a dropped `Session::data` future.
struct CancelOnDrop(Option<DataTask>);

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
}
