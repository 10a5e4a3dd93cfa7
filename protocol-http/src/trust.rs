//! Server trust decided after the handshake, so that a delegate can take part (URLSession's
//! server-trust challenge).
//!
//! rustls verifies certificates synchronously, in the middle of the handshake, where nothing can wait
//! for an application. With a [`TrustEvaluator`], the connector installs a deferring verifier: it still
//! checks the handshake signatures (so the peer holds the key of the certificate it presents) but
//! leaves the chain to the evaluator, which the connector awaits right after the handshake, before the
//! connection carries any request. Standard verification (webpki against the configured roots) stays
//! one answer away.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// What to do with a server's certificate chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrustDecision {
    /// Verify it against the configured roots, as without an evaluator.
    Standard,
    /// Trust it (the application decided).
    Accept,
    /// Refuse it.
    Reject,
    /// Refuse it and cancel the request.
    Cancel,
}

/// The future of a trust decision.
pub type TrustFuture = Pin<Box<dyn Future<Output = TrustDecision> + Send>>;

/// Decides whether to trust a server, once per new TLS connection.
pub trait TrustEvaluator: Send + Sync + std::fmt::Debug + 'static {
    /// The server `host:port` presented `chain` (leaf first) and proved it holds the leaf's key.
    fn evaluate(&self, host: &str, port: u16, chain: &[CertificateDer<'static>]) -> TrustFuture;
}

/// Accepts any chain during the handshake (the decision comes after it) but checks every handshake
/// signature.
#[derive(Debug)]
pub(crate) struct DeferredVerifier {
    provider: Arc<CryptoProvider>,
}

impl DeferredVerifier {
    pub(crate) fn new(provider: Arc<CryptoProvider>) -> DeferredVerifier {
        DeferredVerifier { provider }
    }
}

impl ServerCertVerifier for DeferredVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // Deferred: the connector asks the evaluator before the connection is used.
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Standard verification of a chain, after the handshake.
pub(crate) fn verify_standard(
    verifier: &WebPkiServerVerifier,
    host: &str,
    chain: &[CertificateDer<'static>],
) -> Result<(), rustls::Error> {
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Err(rustls::Error::NoCertificatesPresented);
    };
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| rustls::Error::General("invalid server name".into()))?;
    verifier
        .verify_server_cert(leaf, intermediates, &name, &[], UnixTime::now())
        .map(|_| ())
}
