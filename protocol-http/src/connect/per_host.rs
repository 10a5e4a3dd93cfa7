//! What the connector knows of each host (scheme, name, port), and what it asks of it: the slots
//! that cap its HTTP/1.1 connections, the probe that keeps a burst to an unknown TLS host at one
//! connection, whether it speaks HTTP/1.1, the client identity it was given and its last
//! client-certificate alert.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Uri;
use rustls::sign::CertifiedKey;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{Connector, Inner};
use crate::error::{ConnectFailure, TlsFailure, TransportErrorKind};
use crate::host_key::HostKey;

/// What the connector knows of one host (scheme, name, port).
pub(super) struct Host {
    /// The per-host cap on HTTP/1.1 connections.
    pub(super) permits: Arc<Semaphore>,
    /// Held while a TLS connection to a host whose protocol is not known yet is being made, so a
    /// burst of requests to an HTTP/2 server opens one connection, not one each.
    pub(super) probe: tokio::sync::Mutex<()>,
    /// True once a connection to this host negotiated HTTP/1.1 (no need to probe again).
    pub(super) speaks_h1: AtomicBool,
    /// Open HTTP/2 connections to this host.
    pub(super) h2_open: Arc<AtomicUsize>,
    /// The client identity this host asked for and was given.
    pub(super) identity: Mutex<Option<Arc<CertifiedKey>>>,
    /// The last client-certificate alert one of its connections read, and when. Over HTTP/2 the
    /// alert reaches only the connection's task, and a request sees "connection closed": the
    /// transport looks here to name the failure.
    pub(super) alert: Mutex<Option<(TlsFailure, Instant)>>,
}

impl Connector {
    /// True when a request to `uri` goes over HTTP/1.1 for sure: cleartext (Courier speaks HTTP/2
    /// over TLS only), or a TLS host whose connections negotiated HTTP/1.1 before. Unknown (a TLS
    /// host not met yet) counts as false.
    pub(crate) fn speaks_http1(&self, uri: &Uri) -> bool {
        match uri.scheme_str() {
            Some("http") => true,
            Some("https") if !self.inner.any_tls_h1.load(Ordering::Acquire) => false,
            Some("https") => self.tls_host_speaks_http1(&HostKey::of_uri(uri)),
            _ => false,
        }
    }

    /// [`Connector::speaks_http1`] for a host's key.
    pub(crate) fn host_speaks_http1(&self, host: &HostKey) -> bool {
        !host.is_tls()
            || (self.inner.any_tls_h1.load(Ordering::Acquire) && self.tls_host_speaks_http1(host))
    }

    fn tls_host_speaks_http1(&self, host: &HostKey) -> bool {
        let map = self
            .inner
            .per_host
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.get(host.as_str())
            .is_some_and(|h| h.speaks_h1.load(Ordering::Acquire))
    }

    /// Forgets the client certificate chosen for each host.
    pub(crate) fn forget_identities(&self) {
        let map = self
            .inner
            .per_host
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for host in map.values() {
            *host.identity.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }

    /// The client-certificate failure a connection to this host read within the last seconds.
    pub(crate) fn recent_alert(&self, tls: bool, host: &str, port: u16) -> Option<TlsFailure> {
        let map = self
            .inner
            .per_host
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let state = map.get(HostKey::new(tls, host, port).as_str())?;
        let alert = *state.alert.lock().unwrap_or_else(|p| p.into_inner());
        alert
            .filter(|(_, at)| at.elapsed() < Duration::from_secs(5))
            .map(|(f, _)| f)
    }
}

impl Host {
    /// Waits for the right to dial this host: one of its connection slots, and, until a TLS host
    /// is known to speak HTTP/1.1, the probe lock (if it speaks HTTP/2, the first connection
    /// carries everything, and the pool hands it to the requests that were waiting).
    pub(super) async fn take_slot(
        &self,
        tls: bool,
    ) -> Result<
        (
            Option<tokio::sync::MutexGuard<'_, ()>>,
            OwnedSemaphorePermit,
        ),
        ConnectFailure,
    > {
        let probe = if tls && !self.speaks_h1.load(Ordering::Acquire) {
            let guard = self.probe.lock().await;
            if self.h2_open.load(Ordering::Acquire) > 0 {
                return Err(ConnectFailure::new(
                    TransportErrorKind::Superseded,
                    "an HTTP/2 connection to this host is open already",
                    None,
                ));
            }
            Some(guard)
        } else {
            None
        };
        let permit = self.permits.clone().acquire_owned().await.map_err(|_| {
            ConnectFailure::new(TransportErrorKind::Other, "connector closed", None)
        })?;
        Ok((probe, permit))
    }
}

impl Inner {
    /// The record of the host `tls`, `host` and `port` name, made on first use.
    pub(super) fn host(&self, tls: bool, host: &str, port: u16) -> Arc<Host> {
        let key = HostKey::new(tls, host, port);
        let mut map = self.per_host.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(known) = map.get(key.as_str()) {
            return known.clone();
        }
        let known = Arc::new(Host {
            permits: Arc::new(Semaphore::new(
                self.settings.max_connections_per_host.max(1),
            )),
            probe: tokio::sync::Mutex::new(()),
            speaks_h1: AtomicBool::new(false),
            h2_open: Arc::new(AtomicUsize::new(0)),
            identity: Mutex::new(None),
            alert: Mutex::new(None),
        });
        map.insert(key.as_str().into(), known.clone());
        known
    }
}
