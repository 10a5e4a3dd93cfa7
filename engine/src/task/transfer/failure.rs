//! A failed send: the wire failure named with URLSession's code, and which failures mean the
//! server did not act on the request, so that `Run::send` may send it again.

use courier_delegates::{Error, ErrorCode};
use courier_protocol_http::{TlsFailure, TransportError, TransportErrorKind};
use url::Url;

/// Names a wire failure with URLSession's code for it.
pub(crate) fn map_transport_error(e: TransportError, url: &Url) -> Error {
    use ErrorCode as C;
    use TransportErrorKind as K;
    // The upload's own source failed (its file), not the connection.
    if let Some(error) = crate::task::upload::UploadSourceError::in_chain(&e) {
        return error.clone().with_url(url.as_str());
    }
    let code = match e.kind() {
        K::Dns => C::CannotFindHost,
        K::ConnectionRefused => C::CannotConnectToHost,
        // A tunnel the proxy would not open without credentials nobody gave (-1004, as before).
        K::ProxyAuthenticationRequired => C::CannotConnectToHost,
        K::NetworkUnreachable => C::NotConnectedToInternet,
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
        // Sent again first (`Run::send`): these are what is left when the tries ran out.
        K::ConnectionLost | K::RefusedStream | K::GoneAway => C::NetworkConnectionLost,
        K::InvalidUrl => C::BadUrl,
        K::Cancelled => C::Cancelled,
        _ => C::Unknown,
    };
    let message = e.to_string();
    Error::new(code, message)
        .with_url(url.as_str())
        .with_source(e)
}

/// True for a request that was never sent because another connection to its host carries it.
pub(super) fn is_superseded(e: &Error) -> bool {
    transport_kind(e) == Some(TransportErrorKind::Superseded)
}

/// How often a request whose stream the server refused is sent again.
const REFUSED_RETRIES: u32 = 5;

/// How often a request a draining connection did not take (a `GOAWAY` without error) is sent
/// again: each round is a new connection that serves some of the requests waiting (20 downloads
/// at once from an nginx that closes a connection after 3 requests took 7 rounds, and the last
/// failed at the 5 a refused stream has), and a bound still ends a server that takes none.
const DRAINED_RETRIES: u32 = 64;

/// The requests of one send that the server said it did not act on, so that each may be sent
/// again whatever its method (RFC 9113 8.7): a refused HTTP/2 stream, or a stream past the last
/// one a `GOAWAY` took. (h2 gives a stream the `GOAWAY`'s error only when its number is past that
/// last one, or when it was never opened; a stream the server may have begun ends with the
/// connection's close instead, which is not this.)
#[derive(Default)]
pub(super) struct NotTaken {
    refused: u32,
    drained: u32,
}

impl NotTaken {
    /// Whether `e` says the server did not take the request and its kind of refusal may go again
    /// once more; counts it.
    pub(super) fn again(&mut self, e: &Error) -> bool {
        let (sent, most) = match transport_kind(e) {
            Some(TransportErrorKind::RefusedStream) => (&mut self.refused, REFUSED_RETRIES),
            Some(TransportErrorKind::GoneAway) => (&mut self.drained, DRAINED_RETRIES),
            _ => return false,
        };
        *sent += 1;
        *sent <= most
    }
}

/// The transport's kind of failure under a task's error, when a transport failure caused it.
pub(super) fn transport_kind(e: &Error) -> Option<TransportErrorKind> {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<TransportError>())
        .map(TransportError::kind)
}
