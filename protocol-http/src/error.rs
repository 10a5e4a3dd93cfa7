//! `TransportError`: what went wrong on the wire, classified so the engine can name it.
//!
//! The classification is the contract; the messages are for people. The engine maps each
//! [`TransportErrorKind`] to one URLSession error code.

use std::error::Error as StdError;
use std::fmt;
use std::io;

/// What kind of wire failure happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// The host name did not resolve.
    Dns,
    /// The server refused the connection, or no address could be reached.
    ConnectionRefused,
    /// The host's network cannot be reached from here: no route to it, or the network is down
    /// (`ENETUNREACH`, `EHOSTUNREACH`, `ENETDOWN`). Unlike a refusal, it may pass when the machine
    /// gets connected.
    NetworkUnreachable,
    /// Connecting took longer than the connect timeout.
    ConnectTimeout,
    /// The TLS handshake failed.
    Tls(TlsFailure),
    /// The connection closed before a complete response head arrived.
    ClosedBeforeResponse,
    /// The response could not be parsed.
    BadResponse,
    /// The connection broke after the response head (mid-body, or while sending).
    ConnectionLost,
    /// The URL cannot be sent (no host, unknown scheme).
    InvalidUrl,
    /// The transport was built with unusable settings.
    Configuration,
    /// The request was cancelled (at a server-trust challenge).
    Cancelled,
    /// The connection made for the request was not needed: an HTTP/2 connection to the host opened
    /// meanwhile and carries its requests. Nothing was sent; send the request again and the pool
    /// hands it that connection.
    Superseded,
    /// The HTTP/2 server refused the request's stream before processing it (`REFUSED_STREAM`,
    /// RFC 9113 8.7): nothing of it was acted on; it may be sent again, whatever its method.
    RefusedStream,
    /// The HTTP/2 server is shutting down the connection (a `GOAWAY` without an error, as nginx
    /// sends after its `keepalive_requests`), and the request's stream came after the last one it
    /// takes (or was never opened): nothing of it was acted on; it may be sent again, on another
    /// connection, whatever its method (RFC 9113 6.8).
    GoneAway,
    /// The proxy asked for credentials before it opens a tunnel (`407` to `CONNECT`); the
    /// error's [`TransportError::proxy_challenge`] holds its answer's headers
    /// (`Proxy-Authenticate`).
    ProxyAuthenticationRequired,
    /// Anything else.
    Other,
}

/// Why a TLS handshake failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The server certificate has expired.
    Expired,
    /// The server certificate is not valid yet.
    NotYetValid,
    /// The chain ends at a root that is not trusted.
    UnknownRoot,
    /// The certificate is not acceptable (wrong host, bad signature, bad encoding...).
    Untrusted,
    /// The server asked for a client certificate and none was given.
    ClientCertificateRequired,
    /// The server rejected the client certificate.
    ClientCertificateRejected,
    /// Any other handshake failure.
    Handshake,
}

/// A failure on the wire, with its kind and cause.
pub struct TransportError {
    kind: TransportErrorKind,
    message: String,
    source: Option<Box<dyn StdError + Send + Sync>>,
    /// The headers of a proxy's `407` to `CONNECT`.
    proxy_challenge: Option<Box<http::HeaderMap>>,
}

impl TransportError {
    /// An error of `kind`.
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> TransportError {
        TransportError {
            kind,
            message: message.into(),
            source: None,
            proxy_challenge: None,
        }
    }

    /// The same error with its cause.
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> TransportError {
        self.source = Some(source.into());
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> TransportErrorKind {
        self.kind
    }

    /// For [`TransportErrorKind::ProxyAuthenticationRequired`]: the headers of the proxy's `407`
    /// (its `Proxy-Authenticate` challenges), to answer on the next `CONNECT` with a
    /// `Proxy-Authorization` the request carries.
    pub fn proxy_challenge(&self) -> Option<&http::HeaderMap> {
        self.proxy_challenge.as_deref()
    }

    /// Splits the error into its parts, for wrapping in another error type.
    pub fn into_parts(
        self,
    ) -> (
        TransportErrorKind,
        String,
        Option<Box<dyn StdError + Send + Sync>>,
    ) {
        (self.kind, self.message, self.source)
    }

    /// Classifies a failed `request` (connect, send or response head).
    pub(crate) fn from_client(err: hyper_util::client::legacy::Error) -> TransportError {
        if err.is_connect() {
            if let Some(c) = find::<ConnectFailure>(&err) {
                let mut error = TransportError::new(c.kind, c.message.clone());
                error.proxy_challenge = c.proxy_challenge.clone();
                return error.with_source(err);
            }
            return TransportError::new(TransportErrorKind::ConnectionRefused, "cannot connect")
                .with_source(err);
        }
        // A TLS alert after the handshake: with TLS 1.3 a server judges the client's certificate
        // only then.
        if let Some(failure) = find::<io::Error>(&err).and_then(alert_after_handshake) {
            let message = match failure {
                TlsFailure::ClientCertificateRequired => "the server requires a client certificate",
                _ => "the server rejected the client certificate",
            };
            return TransportError::new(TransportErrorKind::Tls(failure), message).with_source(err);
        }
        if let Some(h2) = find::<h2::Error>(&err) {
            let kind = match h2.reason() {
                Some(h2::Reason::REFUSED_STREAM) if h2.is_remote() => {
                    Some(TransportErrorKind::RefusedStream)
                }
                Some(h2::Reason::NO_ERROR) if h2.is_go_away() && h2.is_remote() => {
                    Some(TransportErrorKind::GoneAway)
                }
                _ => None,
            };
            if let Some(kind) = kind {
                return TransportError::new(kind, "the server did not take the request")
                    .with_source(err);
            }
        }
        let hyper_error = find::<hyper::Error>(&err);
        if hyper_error.is_some_and(hyper::Error::is_parse_too_large) {
            // Said as such: "could not be parsed" sent users looking for a malformed head.
            let message = format!(
                "the server's response head is too large (more than {} fields or {} KiB)",
                crate::transport::MAX_RESPONSE_HEADERS,
                crate::transport::MAX_HEAD_BYTES / 1024
            );
            return TransportError::new(TransportErrorKind::BadResponse, message).with_source(err);
        }
        let kind = match hyper_error {
            Some(h) if h.is_incomplete_message() => TransportErrorKind::ClosedBeforeResponse,
            Some(h) if h.is_parse() || h.is_parse_status() => TransportErrorKind::BadResponse,
            _ => match find::<io::Error>(&err).map(io::Error::kind) {
                Some(io::ErrorKind::UnexpectedEof) => TransportErrorKind::ClosedBeforeResponse,
                _ => TransportErrorKind::ConnectionLost,
            },
        };
        let message = match kind {
            TransportErrorKind::ClosedBeforeResponse => {
                "the server closed the connection without a response"
            }
            TransportErrorKind::BadResponse => "the server's response could not be parsed",
            _ => "the network connection was lost",
        };
        TransportError::new(kind, message).with_source(err)
    }

    /// The same failure, named otherwise (the source is kept).
    pub(crate) fn reclassified(mut self, kind: TransportErrorKind) -> TransportError {
        self.message = match kind {
            TransportErrorKind::Tls(TlsFailure::ClientCertificateRequired) => {
                "the server requires a client certificate".to_owned()
            }
            TransportErrorKind::Tls(TlsFailure::ClientCertificateRejected) => {
                "the server rejected the client certificate".to_owned()
            }
            _ => self.message,
        };
        self.kind = kind;
        self
    }

    /// Classifies a failure while reading a response body: a body that is not well formed
    /// (hyper's HTTP/1.1 decoder: a chunk-size line that is not a number, a chunk without its
    /// CRLF, trailers past their limits) is a response that cannot be parsed; anything else, the
    /// connection lost.
    pub fn from_body(err: hyper::Error) -> TransportError {
        // The decoder fails with `InvalidInput` or `InvalidData`; a TLS record that does not
        // decode fails with `InvalidData` too, but carries rustls's error: a lost connection.
        let malformed = find::<io::Error>(&err).is_some_and(|e| {
            matches!(
                e.kind(),
                io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData
            ) && !e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>())
        });
        let (kind, message) = match malformed {
            true => (
                TransportErrorKind::BadResponse,
                "the server's response body is malformed",
            ),
            false => (
                TransportErrorKind::ConnectionLost,
                "the network connection was lost",
            ),
        };
        TransportError::new(kind, message).with_source(err)
    }
}

/// The client-certificate failure named by a TLS alert read after the handshake. rustls's reader
/// reports an alert as an `InvalidData` error whose text names it ("received fatal alert: X"), so the
/// name is read back from the text when the error is not a `rustls::Error` itself.
pub(crate) fn alert_after_handshake(e: &io::Error) -> Option<TlsFailure> {
    let inner = e.get_ref()?;
    if let Some(r) = inner.downcast_ref::<rustls::Error>() {
        return client_certificate_alert(r);
    }
    let text = inner.to_string();
    let alert = text.strip_prefix("received fatal alert: ")?;
    match alert {
        "CertificateRequired" => Some(TlsFailure::ClientCertificateRequired),
        // DecryptError: the certificate's signature did not verify (an issuer of the same name).
        "BadCertificate"
        | "UnsupportedCertificate"
        | "CertificateRevoked"
        | "CertificateExpired"
        | "CertificateUnknown"
        | "UnknownCA"
        | "DecryptError"
        | "AccessDenied" => Some(TlsFailure::ClientCertificateRejected),
        _ => None,
    }
}

/// The client-certificate failure a TLS alert names, if it names one.
fn client_certificate_alert(e: &rustls::Error) -> Option<TlsFailure> {
    use rustls::AlertDescription as A;
    match e {
        rustls::Error::AlertReceived(A::CertificateRequired) => {
            Some(TlsFailure::ClientCertificateRequired)
        }
        rustls::Error::AlertReceived(
            A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA,
        ) => Some(TlsFailure::ClientCertificateRejected),
        _ => None,
    }
}

/// Walks the `source()` chain for an error of type `T`.
fn find<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut cur: Option<&'a (dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        cur = e.source();
    }
    None
}

impl fmt::Debug for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportError")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for TransportError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn StdError + 'static))
    }
}

/// Why the connector failed; travels inside hyper-util's error to [`TransportError::from_client`].
#[derive(Debug)]
pub(crate) struct ConnectFailure {
    pub(crate) kind: TransportErrorKind,
    pub(crate) message: String,
    pub(crate) source: Option<io::Error>,
    /// The headers of a proxy's `407` to `CONNECT`.
    pub(crate) proxy_challenge: Option<Box<http::HeaderMap>>,
}

impl ConnectFailure {
    pub(crate) fn new(
        kind: TransportErrorKind,
        message: impl Into<String>,
        source: Option<io::Error>,
    ) -> Self {
        ConnectFailure {
            kind,
            message: message.into(),
            source,
            proxy_challenge: None,
        }
    }

    /// No address of `host:port` took a connection; `last` is the last address's error. An
    /// unreachable network is [`TransportErrorKind::NetworkUnreachable`] (-1009), anything else
    /// (refused, no answer, no descriptor left) [`TransportErrorKind::ConnectionRefused`]
    /// (-1004). The message names that error, as curl's does: "Connection refused" and "Too many
    /// open files" call for different fixes.
    pub(crate) fn dial(host: &str, port: u16, last: Option<io::Error>) -> ConnectFailure {
        let unreachable = last.as_ref().is_some_and(|e| {
            matches!(
                e.kind(),
                io::ErrorKind::NetworkUnreachable
                    | io::ErrorKind::HostUnreachable
                    | io::ErrorKind::NetworkDown
            )
        });
        let kind = if unreachable {
            TransportErrorKind::NetworkUnreachable
        } else {
            TransportErrorKind::ConnectionRefused
        };
        let message = match &last {
            Some(e) => format!("cannot connect to {host}:{port}: {e}"),
            None => format!("cannot connect to {host}:{port}"),
        };
        ConnectFailure::new(kind, message, last)
    }

    /// Classifies a failed TLS handshake from the error tokio-rustls returns.
    pub(crate) fn tls(err: io::Error) -> ConnectFailure {
        use rustls::{CertificateError as C, Error as E};
        let rustls_error = err.get_ref().and_then(|e| e.downcast_ref::<E>());
        let failure = match rustls_error {
            Some(E::InvalidCertificate(c)) => match c {
                C::Expired | C::ExpiredContext { .. } => TlsFailure::Expired,
                C::NotValidYet | C::NotValidYetContext { .. } => TlsFailure::NotYetValid,
                C::UnknownIssuer => TlsFailure::UnknownRoot,
                _ => TlsFailure::Untrusted,
            },
            Some(e) => client_certificate_alert(e).unwrap_or(TlsFailure::Handshake),
            None => TlsFailure::Handshake,
        };
        if let (TlsFailure::Untrusted, Some(E::InvalidCertificate(c))) = (failure, rustls_error) {
            return ConnectFailure::new(
                TransportErrorKind::Tls(failure),
                untrusted_because(c),
                Some(err),
            );
        }
        let message = match failure {
            TlsFailure::Expired => "the server certificate has expired",
            TlsFailure::NotYetValid => "the server certificate is not yet valid",
            TlsFailure::UnknownRoot => "the server certificate chains to an unknown root",
            TlsFailure::Untrusted => "the server certificate is not trusted",
            TlsFailure::ClientCertificateRequired => "the server requires a client certificate",
            TlsFailure::ClientCertificateRejected => "the server rejected the client certificate",
            TlsFailure::Handshake => {
                let why = handshake_failure(rustls_error, &err);
                return ConnectFailure::new(
                    TransportErrorKind::Tls(failure),
                    format!("the TLS handshake failed: {why}"),
                    Some(err),
                );
            }
        };
        ConnectFailure::new(TransportErrorKind::Tls(failure), message, Some(err))
    }
}

/// Why standard verification refused a certificate that is neither out of date nor from an
/// unknown root, in words a user can act on (the usual: a name the certificate does not cover, a
/// self-signed certificate made as a CA); the rest as rustls names it.
fn untrusted_because(c: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match c {
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            format!("the server certificate is not valid for this host: {c}")
        }
        c if crate::trust::is_ca_used_as_server(c) => {
            "the server certificate is a CA's, not a server's (a self-signed certificate made as \
             a CA? Given as a root certificate, it is trusted for its names)"
                .to_owned()
        }
        C::Other(other) => format!("the server certificate is not trusted ({other})"),
        C::BadSignature => "the server certificate's signature does not verify".to_owned(),
        C::Revoked => "the server certificate has been revoked".to_owned(),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "the server certificate is not one for a TLS server (its extended key usage)".to_owned()
        }
        _ => format!("the server certificate is not trusted ({c})"),
    }
}

/// Why a handshake failed, in words a user can act on: the usual causes (nothing in common with
/// an old server, a version outside the session's range, plain HTTP on the port) named, the rest
/// as rustls or the socket says them.
fn handshake_failure(rustls_error: Option<&rustls::Error>, err: &io::Error) -> String {
    use rustls::{AlertDescription as A, Error as E};
    match rustls_error {
        Some(E::AlertReceived(A::HandshakeFailure | A::InsufficientSecurity)) => {
            "the server shares no TLS version or cipher suite with this client (it answered \
             handshake_failure; Courier speaks TLS 1.2 and 1.3 with forward-secret AEAD suites only)"
                .to_owned()
        }
        Some(E::AlertReceived(A::ProtocolVersion)) => {
            "the server speaks no TLS version the session allows (it answered protocol_version; \
             see the configuration's TLS minimum and maximum)"
                .to_owned()
        }
        Some(E::InvalidMessage(_)) => {
            "the server's answer is not TLS (plain HTTP on this port?)".to_owned()
        }
        Some(E::PeerIncompatible(why)) => format!("the server's TLS is incompatible ({why:?})"),
        Some(e) => e.to_string(),
        None => err.to_string(),
    }
}

impl From<ConnectFailure> for TransportError {
    fn from(c: ConnectFailure) -> TransportError {
        let mut error = TransportError::new(c.kind, c.message.clone());
        error.proxy_challenge = c.proxy_challenge.clone();
        error.with_source(c)
    }
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for ConnectFailure {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_ref().map(|e| e as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_dial_says_why_and_tells_an_unreachable_network_apart() {
        let refused = ConnectFailure::dial(
            "127.0.0.1",
            1,
            Some(io::Error::from(io::ErrorKind::ConnectionRefused)),
        );
        assert_eq!(refused.kind, TransportErrorKind::ConnectionRefused);
        assert_eq!(
            refused.message,
            format!(
                "cannot connect to 127.0.0.1:1: {}",
                io::Error::from(io::ErrorKind::ConnectionRefused)
            )
        );
        // Out of descriptors (EMFILE): still -1004, and the message says so.
        let exhausted = ConnectFailure::dial("h", 80, Some(io::Error::from_raw_os_error(24)));
        assert_eq!(exhausted.kind, TransportErrorKind::ConnectionRefused);
        assert!(
            exhausted.message.contains("os error 24"),
            "{}",
            exhausted.message
        );
        for kind in [
            io::ErrorKind::NetworkUnreachable,
            io::ErrorKind::HostUnreachable,
            io::ErrorKind::NetworkDown,
        ] {
            let failure = ConnectFailure::dial("h", 80, Some(io::Error::from(kind)));
            assert_eq!(failure.kind, TransportErrorKind::NetworkUnreachable);
        }
        let silent = ConnectFailure::dial("h", 80, None);
        assert_eq!(silent.message, "cannot connect to h:80");
    }
}
