//! `TaskFuture`: what a completion form returns, a future of the task's result that also hands out
//! the task's handle, so the caller can suspend, resume or cancel the task while it awaits it.
//!
//! URLSession's `try await session.data(for:)` gives no handle: a Swift caller cancels through
//! structured concurrency and pauses not at all. Here the future is the handle's owner: awaiting it
//! starts the task, [`TaskFuture::task`] lends the handle, and dropping the future cancels the task.
//! Nothing is created until one of the two is asked for, so a future that is never polled (and whose
//! handle was never asked for) leaves nothing in its session.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::sync::Arc;

use courier_delegates::{Error, ErrorCode, Request, Response, TaskKind, TaskLevelDelegate};
use tokio::sync::oneshot;

use crate::completion::{Completion, Delivered, Sink};
use crate::session::{Creation, Session};
use crate::task::{DataTask, DownloadTask, Task, TaskDelegateError, UploadTask, Work};

/// A future of a completion form's result, made from its task.
pub(crate) type Made<T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'static>>;

/// Shapes the completion a task delivers into a completion form's result.
pub(crate) type Finish<T> =
    Box<dyn FnOnce(Delivered, Response) -> Result<T, Error> + Send + 'static>;

/// How a completion form's result arrives, once its task is made.
pub(crate) enum Then<T> {
    /// The task's completion, shaped by `finish`: the forms whose result comes whole. Polled in
    /// place: no future is boxed for it, and a `finish` that captures nothing (a data task's) is
    /// not allocated either.
    Reply(oneshot::Receiver<Completion>, Finish<T>),
    /// A future made from the task's handle, once it exists (a byte stream needs the handle).
    Make(Box<dyn FnOnce(Task) -> Made<T> + Send + 'static>),
}

/// What a completion form's caller waits on once its task is made.
enum Waiting<T> {
    Reply(oneshot::Receiver<Completion>, Option<Finish<T>>),
    Made(Made<T>),
}

impl<T> Waiting<T> {
    fn new(then: Then<T>, task: &Task) -> Waiting<T> {
        match then {
            Then::Reply(rx, finish) => Waiting::Reply(rx, Some(finish)),
            Then::Make(make) => Waiting::Made(make(task.clone())),
        }
    }

    /// Polls for the result; `task` names the URL when the session dropped the answer.
    fn poll(&mut self, cx: &mut Context<'_>, task: &Task) -> Poll<Result<T, Error>> {
        match self {
            Waiting::Made(made) => made.as_mut().poll(cx),
            Waiting::Reply(rx, finish) => {
                let completion = std::task::ready!(Pin::new(rx).poll(cx));
                let (delivered, response) = match completion {
                    Ok(Ok(done)) => done,
                    Ok(Err(e)) => return Poll::Ready(Err(e)),
                    Err(_) => return Poll::Ready(Err(session_gone(task))),
                };
                match finish.take() {
                    Some(finish) => Poll::Ready(finish(delivered, response)),
                    None => panic!("a completion form's reply was polled after it resolved"),
                }
            }
        }
    }
}

/// What a caller gets when the session dropped its task's answer: it stopped. (The URL is read
/// from the task only then: copying it for every task, in case, cost an allocation each.)
pub(crate) fn session_gone(task: &Task) -> Error {
    let url = task.info().original_request().url_str();
    Error::new(ErrorCode::Unknown, "the session went away").with_url(url)
}

/// A task handle type a [`TaskFuture`] can lend: [`Task`], [`DataTask`], [`UploadTask`] or
/// [`DownloadTask`].
pub trait TaskHandle: Clone + Send + Sync + 'static + sealed::Sealed {
    /// The handle every kind shares.
    fn as_task(&self) -> &Task;
}

mod sealed {
    pub trait Sealed {}
}

impl sealed::Sealed for Task {}
impl TaskHandle for Task {
    fn as_task(&self) -> &Task {
        self
    }
}

macro_rules! task_handle {
    ($($kind:ident),*) => {$(
        impl sealed::Sealed for $kind {}
        impl TaskHandle for $kind {
            fn as_task(&self) -> &Task {
                self.task()
            }
        }
    )*};
}
task_handle!(DataTask, UploadTask, DownloadTask);

/// Everything needed to make the task, kept until it is made.
pub(crate) struct Recipe<H, T> {
    pub(crate) session: Session,
    pub(crate) kind: TaskKind,
    pub(crate) request: Request,
    /// The current request, when it differs from the original (a task made from resume data).
    pub(crate) current: Option<Request>,
    pub(crate) work: Work,
    pub(crate) sink: Sink,
    pub(crate) handle: fn(Task) -> H,
    pub(crate) then: Then<T>,
    /// The task's own delegate ([`TaskFuture::with_delegate`]).
    pub(crate) delegate: Option<Arc<dyn TaskLevelDelegate>>,
}

/// The result of a completion form ([`Session::data`](crate::Session::data),
/// [`Session::download`](crate::Session::download) and the others), and the handle of its task.
///
/// Await it for the result. The task is made and started at the first poll, like URLSession's
/// async forms that start as they are awaited; [`TaskFuture::task`] makes it earlier (suspended) to
/// hand out its handle, and the first poll then resumes it. The handle controls the task as for any
/// task: [`DataTask::suspend`] pauses it (the future keeps waiting), `resume` continues it,
/// `cancel` ends it with -999, and a download's
/// [`DownloadTask::cancel_by_producing_resume_data`] returns resume data while the future resolves
/// to the -999 error carrying the same data.
///
/// Dropping the future before it resolves cancels the task: its result would have nowhere to go. A
/// future dropped before it was polled, whose handle was never asked for, made nothing at all.
///
/// ```no_run
/// # async fn run(session: courier_engine::Session) -> Result<(), courier_engine::Error> {
/// let mut download = session.download("https://example.com/big.iso");
/// let task = download.task().cloned().expect("the session is valid");
/// tokio::spawn(async move {
///     // Later, from anywhere: pause it, and take what it has as resume data.
///     let resume_data = task.cancel_by_producing_resume_data().await;
/// #   drop(resume_data);
/// });
/// let (file, response) = download.await?;
/// # drop((file, response)); Ok(()) }
/// ```
#[must_use = "a task future does nothing until awaited (or until its task is resumed)"]
pub struct TaskFuture<H: TaskHandle, T> {
    stage: Stage<H, T>,
}

enum Stage<H, T> {
    /// Not made yet.
    Unmade(Box<Recipe<H, T>>),
    /// Made for its handle and not yet started by a poll.
    Made { handle: H, waiting: Waiting<T> },
    /// Started; resolves with the task.
    Running { handle: H, waiting: Waiting<T> },
    /// The task could not be made (an invalidated session, a background session).
    Failed(Error),
    /// Resolved.
    Done,
}

impl<H: TaskHandle, T> TaskFuture<H, T> {
    pub(crate) fn new(recipe: Recipe<H, T>) -> Self {
        TaskFuture {
            stage: Stage::Unmade(Box::new(recipe)),
        }
    }

    /// The task's handle, making the task (suspended) if it was not made yet. `None` when the task
    /// cannot be made (the session was invalidated, or is a background session); awaiting the
    /// future then gives the reason.
    ///
    /// Clone the handle to control the task from elsewhere while this future is awaited.
    pub fn task(&mut self) -> Option<&H> {
        if let Stage::Unmade(_) = self.stage {
            self.make(false);
        }
        match &self.stage {
            Stage::Made { handle, .. } | Stage::Running { handle, .. } => Some(handle),
            _ => None,
        }
    }

    /// Gives the task a delegate of its own (URLSession's `data(for:delegate:)` and the other async
    /// forms' `delegate:` parameter): it hears the task's messages first, and what it leaves at a
    /// method's default goes on to the session's delegate. A completion form's task hears what a
    /// completion form's task hears from a session delegate: `did_create_task`, the questions
    /// (redirects, challenges, a new body stream, caching), not its data or completion, which
    /// are this future's.
    ///
    /// Give it before the future is first polled. On a task already made for its handle and not yet
    /// started it is attached at once; after that (or on a task that cannot take one) awaiting the
    /// future gives the error, as a [`TaskDelegateError`] source, and the task is cancelled.
    pub fn with_delegate(mut self, delegate: Arc<dyn TaskLevelDelegate>) -> Self {
        let refused = match &mut self.stage {
            Stage::Unmade(recipe) => {
                recipe.delegate = Some(delegate);
                None
            }
            Stage::Made { handle, .. } => handle.as_task().set_delegate(delegate).err(),
            Stage::Running { .. } => Some(TaskDelegateError::AlreadyStarted),
            Stage::Failed(_) | Stage::Done => None,
        };
        if let Some(why) = refused {
            let url = match &self.stage {
                Stage::Made { handle, .. } | Stage::Running { handle, .. } => {
                    // It would run without the delegate asked for.
                    handle.as_task().cancel();
                    handle
                        .as_task()
                        .info()
                        .original_request()
                        .url_str()
                        .to_owned()
                }
                _ => String::new(),
            };
            self.stage =
                Stage::Failed(crate::session::CreateTaskError::Delegate(why).for_url(&url));
        }
        self
    }

    /// Makes the task, started when `start`, and moves to the matching stage.
    fn make(&mut self, start: bool) {
        let Stage::Unmade(recipe) = std::mem::replace(&mut self.stage, Stage::Done) else {
            return;
        };
        let Recipe {
            session,
            kind,
            request,
            current,
            work,
            sink,
            handle,
            then,
            delegate,
        } = *recipe;
        let how = Creation {
            callbacks: false,
            resume_now: start,
            delegate,
        };
        self.stage = match session.create_with(kind, request, current, work, sink, how) {
            Ok(task) => {
                let waiting = Waiting::new(then, &task);
                let handle = handle(task);
                if start {
                    Stage::Running { handle, waiting }
                } else {
                    Stage::Made { handle, waiting }
                }
            }
            Err(refused) => Stage::Failed(refused.into_error()),
        };
    }
}

// Every field is boxed, a handle (an `Arc`) or a channel's receiving end: nothing is pinned
// in place.
impl<H: TaskHandle, T> Unpin for TaskFuture<H, T> {}

impl<H: TaskHandle, T> Future for TaskFuture<H, T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &this.stage {
            Stage::Unmade(_) => this.make(true),
            Stage::Made { .. } => {
                let Stage::Made { handle, waiting } =
                    std::mem::replace(&mut this.stage, Stage::Done)
                else {
                    unreachable!("matched above")
                };
                handle.as_task().resume();
                this.stage = Stage::Running { handle, waiting };
            }
            _ => {}
        }
        match &mut this.stage {
            Stage::Running { handle, waiting } => {
                let result = std::task::ready!(waiting.poll(cx, handle.as_task()));
                this.stage = Stage::Done;
                Poll::Ready(result)
            }
            Stage::Failed(_) => match std::mem::replace(&mut this.stage, Stage::Done) {
                Stage::Failed(e) => Poll::Ready(Err(e)),
                _ => unreachable!("matched above"),
            },
            _ => panic!("a TaskFuture was polled after it resolved"),
        }
    }
}

impl<H: TaskHandle, T> Drop for TaskFuture<H, T> {
    fn drop(&mut self) {
        // Made and unresolved: nobody would get the result. (Cancelling a task that completed in
        // the meantime does nothing.)
        if let Stage::Made { handle, .. } | Stage::Running { handle, .. } = &self.stage {
            handle.as_task().cancel();
        }
    }
}

impl<H: TaskHandle, T> std::fmt::Debug for TaskFuture<H, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stage = match &self.stage {
            Stage::Unmade(_) => "unmade",
            Stage::Made { .. } => "made",
            Stage::Running { .. } => "running",
            Stage::Failed(_) => "failed",
            Stage::Done => "done",
        };
        f.debug_struct("TaskFuture").field("stage", &stage).finish()
    }
}
