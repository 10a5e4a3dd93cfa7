//! TLS client configuration: rustls with the ring provider, Mozilla's roots plus the caller's extra
//! roots (a server certificate that is itself one of those is trusted too: `trust::StandardVerifier`),
//! and ALPN offering HTTP/2 then HTTP/1.1.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::client::danger::ServerCertVerifier;
use rustls::client::{ClientConfig, WebPkiServerVerifier};
use rustls_pki_types::CertificateDer;

use crate::error::{TransportError, TransportErrorKind};
use crate::trust::{DeferredVerifier, StandardVerifier};

/// The TLS side of one transport: the client configuration, and the standard verifier when the
/// chain is evaluated after the handshake (see `trust`).
pub(crate) struct TlsSetup {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) deferred: Option<Arc<StandardVerifier>>,
}

/// A TLS version, for the oldest and newest a session accepts
/// (`tlsMinimumSupportedProtocolVersion`, `tlsMaximumSupportedProtocolVersion`). rustls speaks
/// TLS 1.2 and 1.3 only, the versions App Transport Security allows, so older servers are refused
/// whatever the setting. Ordered: `Tls12 < Tls13`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TlsVersion {
    /// TLS 1.2 (the default minimum).
    #[default]
    Tls12,
    /// TLS 1.3 (the default maximum).
    Tls13,
}

/// Builds the client configuration for one transport; `deferred` leaves the chain to be judged after
/// the handshake.
///
/// # Errors
/// An extra root that is not a usable CA certificate.
pub(crate) fn client_config(
    extra_roots: &[CertificateDer<'static>],
    deferred: bool,
    minimum: TlsVersion,
    maximum: TlsVersion,
) -> Result<TlsSetup, TransportError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in extra_roots {
        roots.add(cert.clone()).map_err(|e| {
            TransportError::new(
                TransportErrorKind::Configuration,
                "unusable root certificate",
            )
            .with_source(e)
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let configuration = |e: rustls::Error| {
        TransportError::new(TransportErrorKind::Configuration, "TLS settings").with_source(e)
    };
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (TlsVersion::Tls13, &rustls::version::TLS13),
        (TlsVersion::Tls12, &rustls::version::TLS12),
    ]
    .into_iter()
    .filter(|(v, _)| (minimum..=maximum).contains(v))
    .map(|(_, version)| version)
    .collect();
    if versions.is_empty() {
        return Err(TransportError::new(
            TransportErrorKind::Configuration,
            "the newest TLS version allowed is older than the oldest",
        ));
    }
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(configuration)?;
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| {
            TransportError::new(TransportErrorKind::Configuration, "TLS roots").with_source(e)
        })?;
    let standard = Arc::new(StandardVerifier::new(webpki, extra_roots));
    // `dangerous` only in name: webpki decides, with the one rule it lacks (`StandardVerifier`),
    // in the handshake or, deferred, right after it.
    let in_handshake: Arc<dyn ServerCertVerifier> = match deferred {
        true => Arc::new(DeferredVerifier::new(standard.clone())),
        false => standard.clone(),
    };
    let mut config = builder
        .dangerous()
        .with_custom_certificate_verifier(in_handshake)
        .with_no_client_auth();
    let deferred = deferred.then_some(standard);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsSetup {
        config: Arc::new(config),
        deferred,
    })
}
