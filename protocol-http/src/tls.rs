//! TLS client configuration: rustls with the ring provider, Mozilla's roots plus the caller's extra
//! roots, and ALPN offering HTTP/2 then HTTP/1.1.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::client::ClientConfig;
use rustls_pki_types::CertificateDer;

use crate::error::{TransportError, TransportErrorKind};

/// Builds the client configuration for one transport.
///
/// # Errors
/// An extra root that is not a usable CA certificate.
pub(crate) fn client_config(
    extra_roots: &[CertificateDer<'static>],
) -> Result<Arc<ClientConfig>, TransportError> {
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
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| {
            TransportError::new(TransportErrorKind::Configuration, "TLS versions").with_source(e)
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
