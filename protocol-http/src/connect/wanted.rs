//! What a connect knows of the request it was started for: whether that request is still being
//! sent (a connect the pool outran stops waiting for a slot once it is over), and the
//! `Proxy-Authorization` it brought for a tunnel. Set for each request by [`for_one_request`], read
//! by the connector through a task-local.

use std::cell::OnceCell;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What a connect knows of the request it was started for.
#[derive(Clone)]
pub(super) struct Wanted {
    /// Marked over once the request is over.
    alive: Arc<Alive>,
    /// The `Proxy-Authorization` the request brought, for its tunnel's `CONNECT`.
    pub(super) proxy_authorization: Option<http::HeaderValue>,
}

impl Wanted {
    /// The request being sent in this task, if any: hyper-util asks for a connection while it
    /// polls the request that needs it.
    pub(super) fn current() -> Option<Wanted> {
        WANTED
            .try_with(|one| Wanted {
                alive: one.alive.get_or_init(Arc::default).clone(),
                proxy_authorization: one.proxy_authorization.clone(),
            })
            .ok()
    }
}

/// Whether one request is still being sent: a flag and one `Notify`, not a `watch` channel
/// (eight `Notify`s to wake on every drop). Made only when a connect is started for the request:
/// most requests find a kept-alive connection and never ask.
#[derive(Default)]
struct Alive {
    over: AtomicBool,
    notify: tokio::sync::Notify,
}

/// What one request being sent brings, for the connects started for it. Dropped when the request
/// is over (answered, failed or dropped itself), which tells those connects.
struct OneRequest {
    alive: OnceCell<Arc<Alive>>,
    proxy_authorization: Option<http::HeaderValue>,
}

impl Drop for OneRequest {
    fn drop(&mut self) {
        if let Some(alive) = self.alive.get() {
            alive.over.store(true, Ordering::Release);
            alive.notify.notify_waiters();
        }
    }
}

tokio::task_local! {
    /// Set while one request is being sent.
    static WANTED: OneRequest;
}

/// Runs `send`, one request's trip through the pool, so that the connects started for it stop
/// waiting for a free slot once it is over (answered, failed or dropped), and present
/// `proxy_authorization` (the request's own) to a proxy for a tunnel.
pub(crate) async fn for_one_request<F: Future>(
    proxy_authorization: Option<http::HeaderValue>,
    send: F,
) -> F::Output {
    let one = OneRequest {
        alive: OnceCell::new(),
        proxy_authorization,
    };
    // The scope owns `one` and drops it (telling the connects) once `send` is over or dropped.
    WANTED.scope(one, send).await
}

/// Resolves once the request a connect was started for is over (never, for a connect made
/// outside [`for_one_request`]).
pub(super) async fn served(wanted: Option<Wanted>) {
    let Some(w) = wanted else {
        return std::future::pending().await;
    };
    loop {
        // Made before the flag is read: `notify_waiters` wakes every `Notified` made before it.
        let notified = w.alive.notify.notified();
        if w.alive.over.load(Ordering::Acquire) {
            return;
        }
        notified.await;
    }
}
