//! The transfer: one request and its response, run as a Tokio task beside the task actor.
//!
//! The task actor owns it and steers it through a [`Gate`]: paused or not, body allowed or not. The
//! transfer moves the bytes itself and reports to the actor by message (response head, each chunk,
//! the end). Its timers (the idle timeout, restarted by every arrival, and the resource budget) only
//! run while the transfer is waiting on the network: not while suspended, not while the delegate
//! decides, not while the application is slow to take the body.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use courier_delegates::{Error, ErrorCode, Response};
use courier_protocol_http::{
    RequestBody, TlsFailure, Transport, TransportError, TransportErrorKind,
};
use http_body_util::BodyExt;
use ractor::ActorRef;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;
use url::Url;

use super::actor::TaskMsg;

/// Body bytes that may be on their way to a delegate at once. Past this, the transfer stops reading
/// until the delegate has taken some: a slow delegate slows the connection instead of filling memory.
pub(crate) const DELEGATE_WINDOW: usize = 1 << 20;

/// How the actor steers the transfer.
#[derive(Clone, Copy, Debug)]
struct Gate {
    paused: bool,
    body_allowed: bool,
}

/// The timeouts of one transfer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    /// Idle: the longest wait for the network's next sign of life.
    pub(crate) idle: Duration,
    /// Resource: the total time the transfer may spend waiting on the network.
    pub(crate) resource: Duration,
}

/// A running transfer. Dropping it stops the transfer.
pub(crate) struct Transfer {
    handle: JoinHandle<()>,
    gate: watch::Sender<Gate>,
}

impl Transfer {
    /// Starts sending `request`; reports to `actor`.
    pub(crate) fn start(
        transport: Transport,
        request: http::Request<RequestBody>,
        url: Url,
        timeouts: Timeouts,
        window: Option<Arc<Semaphore>>,
        actor: ActorRef<TaskMsg>,
    ) -> Transfer {
        let (gate, gate_rx) = watch::channel(Gate {
            paused: false,
            body_allowed: false,
        });
        let run = Run {
            transport,
            url,
            clock: Clock::new(timeouts),
            gate: gate_rx,
            window,
            actor: actor.clone(),
        };
        let handle = tokio::spawn(
            async move {
                let report = match run.drive(request).await {
                    Ok(true) => Some(TaskMsg::Finished),
                    Ok(false) => None, // the actor is gone: nobody to tell
                    Err(e) => Some(TaskMsg::Failed(e)),
                };
                if let Some(msg) = report {
                    let _ = actor.cast(msg);
                }
            }
            .instrument(tracing::Span::current()),
        );
        Transfer { handle, gate }
    }

    pub(crate) fn pause(&self) {
        self.gate.send_modify(|g| g.paused = true);
    }

    pub(crate) fn resume(&self) {
        self.gate.send_modify(|g| g.paused = false);
    }

    pub(crate) fn allow_body(&self) {
        self.gate.send_modify(|g| g.body_allowed = true);
    }

    /// Stops the transfer and waits until it has stopped (its connection is dropped).
    pub(crate) async fn stop(mut self) {
        self.handle.abort();
        let _ = (&mut self.handle).await;
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        // A transfer never outlives its owner.
        self.handle.abort();
    }
}

struct Run {
    transport: Transport,
    url: Url,
    clock: Clock,
    gate: watch::Receiver<Gate>,
    window: Option<Arc<Semaphore>>,
    actor: ActorRef<TaskMsg>,
}

/// The gate's sender is gone: the actor stopped, so the transfer ends quietly.
struct Orphaned;

impl Run {
    /// Runs the transfer. `Ok(true)`: the body ended; `Ok(false)`: the actor went away.
    async fn drive(mut self, request: http::Request<RequestBody>) -> Result<bool, Error> {
        let transport = self.transport.clone();
        let response = match self
            .timed(async move { transport.send(request).await })
            .await
        {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(map_transport_error(e, &self.url)),
            Err(TimedOutOr::TimedOut(e)) => return Err(e),
            Err(TimedOutOr::Orphaned) => return Ok(false),
        };
        let (parts, mut body) = response.into_parts();
        if self.wait_until(|g| !g.paused).await.is_err() {
            return Ok(false);
        }
        let head = Response::new(self.url.clone(), parts.status, parts.version, parts.headers);
        if self.actor.cast(TaskMsg::Response(head)).is_err() {
            return Ok(false);
        }
        if self.wait_until(|g| g.body_allowed).await.is_err() {
            return Ok(false);
        }
        loop {
            if self.wait_until(|g| !g.paused).await.is_err() {
                return Ok(false);
            }
            let limit = self.clock.limit();
            let started = Instant::now();
            let frame = tokio::select! {
                frame = tokio::time::timeout(limit, body.frame()) => frame,
                // Suspended mid-read: drop the read (no bytes are lost, none are taken) and stop
                // the clock until resumed.
                paused = self.gate.wait_for(|g| g.paused) => {
                    self.clock.spend(started.elapsed());
                    if paused.is_err() {
                        return Ok(false);
                    }
                    continue;
                }
            };
            self.clock.spend(started.elapsed());
            let frame = match frame {
                Err(_) => return Err(self.clock.timed_out(&self.url)),
                Ok(None) => return Ok(true),
                Ok(Some(Err(e))) => {
                    return Err(map_transport_error(TransportError::from_body(e), &self.url));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue; // trailers carry no body bytes
            };
            if data.is_empty() {
                continue;
            }
            let permit = match self.take_window(&data).await {
                Ok(p) => p,
                Err(Orphaned) => return Ok(false),
            };
            if self.actor.cast(TaskMsg::Data(data, permit)).is_err() {
                return Ok(false);
            }
        }
    }

    /// Waits for room in the delegate window for `data`.
    async fn take_window(&self, data: &Bytes) -> Result<Option<OwnedSemaphorePermit>, Orphaned> {
        let Some(window) = &self.window else {
            return Ok(None);
        };
        let n = data.len().min(DELEGATE_WINDOW) as u32;
        window
            .clone()
            .acquire_many_owned(n)
            .await
            .map(Some)
            .map_err(|_| Orphaned)
    }

    async fn wait_until(&mut self, f: impl FnMut(&Gate) -> bool) -> Result<(), Orphaned> {
        self.gate
            .wait_for(f)
            .await
            .map(|_| ())
            .map_err(|_| Orphaned)
    }

    /// Awaits `fut` (connect, send, response head) under the clock. While suspended the future keeps
    /// going (a request half sent cannot be paused) but the clock stops.
    async fn timed<F: Future>(&mut self, fut: F) -> Result<F::Output, TimedOutOr> {
        tokio::pin!(fut);
        loop {
            if self.gate.borrow().paused {
                tokio::select! {
                    out = &mut fut => return Ok(out),
                    r = self.gate.wait_for(|g| !g.paused) => {
                        if r.is_err() { return Err(TimedOutOr::Orphaned); }
                        continue;
                    }
                }
            }
            let limit = self.clock.limit();
            let started = Instant::now();
            tokio::select! {
                out = tokio::time::timeout(limit, &mut fut) => {
                    self.clock.spend(started.elapsed());
                    return out.map_err(|_| TimedOutOr::TimedOut(self.clock.timed_out(&self.url)));
                }
                r = self.gate.wait_for(|g| g.paused) => {
                    self.clock.spend(started.elapsed());
                    if r.is_err() { return Err(TimedOutOr::Orphaned); }
                }
            }
        }
    }
}

enum TimedOutOr {
    TimedOut(Error),
    Orphaned,
}

/// The idle timeout and what is left of the resource budget.
#[derive(Debug)]
struct Clock {
    idle: Duration,
    resource_left: Duration,
}

impl Clock {
    fn new(t: Timeouts) -> Clock {
        Clock {
            idle: t.idle,
            resource_left: t.resource,
        }
    }

    fn limit(&self) -> Duration {
        self.idle.min(self.resource_left)
    }

    fn spend(&mut self, d: Duration) {
        self.resource_left = self.resource_left.saturating_sub(d);
    }

    fn timed_out(&self, url: &Url) -> Error {
        let which = if self.resource_left.is_zero() {
            "the resource timeout expired"
        } else {
            "the request timed out"
        };
        Error::new(ErrorCode::TimedOut, which).with_url(url.as_str())
    }
}

/// Names a wire failure with URLSession's code for it.
pub(crate) fn map_transport_error(e: TransportError, url: &Url) -> Error {
    use ErrorCode as C;
    use TransportErrorKind as K;
    let code = match e.kind() {
        K::Dns => C::CannotFindHost,
        K::ConnectionRefused => C::CannotConnectToHost,
        K::ConnectTimeout => C::TimedOut,
        K::Tls(TlsFailure::Expired) => C::ServerCertificateHasBadDate,
        K::Tls(TlsFailure::NotYetValid) => C::ServerCertificateNotYetValid,
        K::Tls(TlsFailure::UnknownRoot) => C::ServerCertificateHasUnknownRoot,
        K::Tls(TlsFailure::Untrusted) => C::ServerCertificateUntrusted,
        K::Tls(TlsFailure::ClientCertificateRequired) => C::ClientCertificateRequired,
        K::Tls(TlsFailure::ClientCertificateRejected) => C::ClientCertificateRejected,
        K::Tls(_) => C::SecureConnectionFailed,
        K::ClosedBeforeResponse => C::BadServerResponse,
        K::BadResponse => C::CannotParseResponse,
        K::ConnectionLost => C::NetworkConnectionLost,
        K::InvalidUrl => C::BadUrl,
        _ => C::Unknown,
    };
    let message = e.to_string();
    Error::new(code, message)
        .with_url(url.as_str())
        .with_source(e)
}
