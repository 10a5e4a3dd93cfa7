//! Server trust decided after the handshake, so that a delegate can take part (URLSession's
//! server-trust challenge).
//!
//! rustls verifies certificates synchronously, in the middle of the handshake, where nothing can wait
//! for an application. With a [`TrustEvaluator`], the connector installs a deferring verifier: it still
//! checks the handshake signatures (so the peer holds the key of the certificate it presents) but
//! leaves the chain to the evaluator, which the connector awaits right after the handshake, before the
//! connection carries any request. Standard verification (`StandardVerifier`: webpki against the
//! configured roots, and a server certificate that is itself one of the caller's roots) stays one
//! answer away.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_name};
use rustls::server::ParsedCertificate;
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
/// signature, as standard verification checks them.
#[derive(Debug)]
pub(crate) struct DeferredVerifier {
    standard: Arc<StandardVerifier>,
}

impl DeferredVerifier {
    pub(crate) fn new(standard: Arc<StandardVerifier>) -> DeferredVerifier {
        DeferredVerifier { standard }
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
        self.standard.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.standard.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.standard.supported_verify_schemes()
    }
}

/// Standard verification of a chain, after the handshake.
pub(crate) fn verify_standard(
    verifier: &StandardVerifier,
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

/// Standard verification: webpki against the configured roots, and one rule of URLSession's
/// (SecTrust's), curl's and OpenSSL's that webpki lacks: a server whose certificate is itself one of
/// the roots the caller gave ([`extra_roots`](crate::TransportSettings::extra_roots)) is trusted for
/// the names it covers, while it is in date.
///
/// That is the certificate `openssl req -x509` makes, the usual self-signed one: it says it is a CA
/// (`CA:TRUE`), and webpki refuses a CA's certificate as a server's own (`CaUsedAsEndEntity`) even
/// when it is the very root the caller trusts, so `curl --cacert cert.pem` reached a server that
/// Courier refused. Only the caller's own roots count, compared byte for byte; a certificate that
/// merely chains to them, or a built-in root presented as a server's, is refused as before.
#[derive(Debug)]
pub(crate) struct StandardVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    given_roots: Vec<CertificateDer<'static>>,
}

impl StandardVerifier {
    pub(crate) fn new(
        webpki: Arc<WebPkiServerVerifier>,
        given_roots: &[CertificateDer<'static>],
    ) -> StandardVerifier {
        StandardVerifier {
            webpki,
            given_roots: given_roots.to_vec(),
        }
    }

    /// Whether `refused` is webpki refusing a CA's certificate as the server's, for a certificate
    /// the caller gave as a root. webpki checks a certificate's dates before its basic
    /// constraints, so this refusal also says the certificate is in date (a test pins that order:
    /// `a_self_signed_ca_certificate_given_as_a_root_is_trusted_for_its_names_while_in_date`).
    fn is_given_root_refused_as_a_ca(
        &self,
        refused: &rustls::Error,
        end_entity: &CertificateDer<'_>,
    ) -> bool {
        let rustls::Error::InvalidCertificate(refused) = refused else {
            return false;
        };
        is_ca_used_as_server(refused)
            && self
                .given_roots
                .iter()
                .any(|root| root.as_ref() == end_entity.as_ref())
    }
}

/// Whether webpki refused a CA's certificate presented as a server's (`CaUsedAsEndEntity`).
pub(crate) fn is_ca_used_as_server(refused: &rustls::CertificateError) -> bool {
    // webpki's error, which rustls passes on as it is (read by name: its type is not ours).
    matches!(refused, rustls::CertificateError::Other(other) if other.to_string() == "CaUsedAsEndEntity")
}

impl ServerCertVerifier for StandardVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(refused) if self.is_given_root_refused_as_a_ca(&refused, end_entity) => {
                // A root the caller trusts: its names still have to cover the server.
                let cert = ParsedCertificate::try_from(end_entity)?;
                verify_server_name(&cert, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            decided => decided,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}
