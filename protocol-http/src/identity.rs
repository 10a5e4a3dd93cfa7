//! Client certificates (mutual TLS), asked for when a server wants one.
//!
//! rustls asks for a client certificate in the middle of the handshake, where nothing can wait for an
//! application. So every TLS handshake carries a resolver that answers with the identity already known
//! for its host, and notes when a server asked and none was known. The connector then asks the
//! [`ClientIdentityProvider`] (the delegate's client-certificate challenge) and, given an identity,
//! connects again with it; the identity is kept for the host's later connections.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A client identity: a certificate chain (leaf first) and the leaf's private key.
#[derive(Debug)]
pub struct Identity {
    /// The certificates, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
}

/// What to do when a server asks for a client certificate.
#[derive(Debug)]
#[non_exhaustive]
pub enum IdentityDecision {
    /// Connect again presenting this identity.
    Use(Identity),
    /// Go on without one (the server may still refuse).
    Without,
    /// Cancel the request.
    Cancel,
}

/// The future of an identity decision.
pub type IdentityFuture = Pin<Box<dyn Future<Output = IdentityDecision> + Send>>;

/// Provides client identities when servers ask for them.
pub trait ClientIdentityProvider: Send + Sync + std::fmt::Debug + 'static {
    /// The server `host:port` asked for a client certificate.
    fn identity(&self, host: &str, port: u16) -> IdentityFuture;
}

/// One handshake's resolver: answers with the known identity, notes whether the server asked.
#[derive(Debug)]
pub(crate) struct AskingResolver {
    known: Option<Arc<CertifiedKey>>,
    asked: AtomicBool,
}

impl AskingResolver {
    pub(crate) fn new(known: Option<Arc<CertifiedKey>>) -> AskingResolver {
        AskingResolver {
            known,
            asked: AtomicBool::new(false),
        }
    }

    /// True when the server asked for a certificate and one was presented.
    pub(crate) fn presented(&self) -> bool {
        self.asked.load(Ordering::Acquire) && self.known.is_some()
    }

    /// True when the server asked for a certificate and none was known.
    pub(crate) fn asked_in_vain(&self) -> bool {
        self.asked.load(Ordering::Acquire) && self.known.is_none()
    }
}

impl ResolvesClientCert for AskingResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.asked.store(true, Ordering::Release);
        self.known.clone()
    }

    fn has_certs(&self) -> bool {
        // Always: rustls must ask, so the connector learns that the server wants a certificate.
        true
    }
}
