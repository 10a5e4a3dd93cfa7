//! What a connect knows of the request it was started for: whether that request is still being
//! sent (a connect the pool outran stops waiting for a slot once it is over), and the
//! `Proxy-Authorization` it brought for a tunnel. Set for each request by [`for_one_request`], read
//! by the connector through a task-local.

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
        WANTED.try_with(Clone::clone).ok()
    }
}

/// Whether one request is still being sent. Made for every request, and read only by the
/// connects started for it (few, on kept-alive connections): a flag and one `Notify`, not a
/// `watch` channel (eight `Notify`s to wake on every drop).
#[derive(Default)]
struct Alive {
    over: AtomicBool,
    notify: tokio::sync::Notify,
}

/// Marks the request over when dropped (answered, failed or dropped itself).
struct Over(Arc<Alive>);

impl Drop for Over {
    fn drop(&mut self) {
        self.0.over.store(true, Ordering::Release);
        self.0.notify.notify_waiters();
    }
}

tokio::task_local! {
    /// Set while one request is being sent.
    static WANTED: Wanted;
}

/// Runs `send`, one request's trip through the pool, so that the connects started for it stop
/// waiting for a free slot once it is over (answered, failed or dropped), and present
/// `proxy_authorization` (the request's own) to a proxy for a tunnel.
pub(crate) async fn for_one_request<F: Future>(
    proxy_authorization: Option<http::HeaderValue>,
    send: F,
) -> F::Output {
    let alive = Arc::new(Alive::default());
    let _over = Over(alive.clone());
    let wanted = Wanted {
        alive,
        proxy_authorization,
    };
    WANTED.scope(wanted, send).await
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
