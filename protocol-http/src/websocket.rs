//! WebSocket (RFC 6455) on a connection the transport upgraded: the handshake's request headers,
//! the check of the server's answer, and the framed stream.
//!
//! The handshake is an ordinary request sent through [`Transport::send`](crate::Transport::send)
//! (so the session's proxies, trust, cookies and challenges apply to it); a request carrying
//! `Upgrade` goes over an HTTP/1.1 connection of its own, which the `101` answer hands over.
//! Framing is tokio-tungstenite's, without its own handshake or TLS. What a close or an oversized
//! message means for a task is the engine's to say.

use http::{HeaderMap, HeaderValue, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::{client::generate_key, derive_accept_key};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

pub use tokio_tungstenite::tungstenite::Error as FrameError;
pub use tokio_tungstenite::tungstenite::Message as Frame;
pub use tokio_tungstenite::tungstenite::protocol::CloseFrame;
pub use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WireCloseCode;

/// An open WebSocket: frames over the upgraded connection.
pub type WebSocket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// The most bytes one read from the connection takes (tungstenite's `read_buffer_size`, 128 KiB by
/// default). tungstenite zeroes that much of its buffer before every read attempt, including a
/// poll that finds nothing to read, and a task's socket loop polls the stream each time it wakes
/// (for a send, a written frame, a received one). 20,000 echo round trips and 100 MiB echoed
/// spent 510-516 ms of the client's CPU with 128 KiB, 440-452 ms with 16 or 32 KiB
/// (tokio-tungstenite alone, reading only while it waits for an echo: 408-411 ms); the 100 MiB
/// took the same time with each. Larger frames still arrive whole: the buffer grows to hold a
/// frame, only each read is smaller.
const READ_SIZE: usize = 32 << 10;

/// What a handshake asked for, to check the answer against.
#[derive(Debug)]
pub struct Handshake {
    key: String,
    protocols: Vec<String>,
}

/// Why a server's answer does not open a WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// The answer was not `101 Switching Protocols`.
    NotSwitching(StatusCode),
    /// `Upgrade: websocket` or `Connection: upgrade` is missing from the answer.
    NotWebSocket,
    /// `Sec-WebSocket-Accept` is missing or does not match the key sent.
    BadAccept,
    /// The server chose a subprotocol that was not offered.
    UnofferedProtocol(String),
    /// The connection could not be taken over after the `101`.
    Upgrade(String),
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::NotSwitching(status) => {
                write!(
                    f,
                    "the server answered the WebSocket handshake with {status}"
                )
            }
            HandshakeError::NotWebSocket => {
                f.write_str("the server's answer does not upgrade to websocket")
            }
            HandshakeError::BadAccept => {
                f.write_str("the server's Sec-WebSocket-Accept does not match the key sent")
            }
            HandshakeError::UnofferedProtocol(p) => {
                write!(
                    f,
                    "the server chose the subprotocol {p:?}, which was not offered"
                )
            }
            HandshakeError::Upgrade(why) => write!(f, "the upgraded connection failed: {why}"),
        }
    }
}

impl std::error::Error for HandshakeError {}

impl Handshake {
    /// Adds the handshake's fields to `headers` (a fresh key each time), offering `protocols`
    /// joined with `", "` as URLSession does. Fields the application set itself are replaced.
    pub fn prepare(headers: &mut HeaderMap, protocols: &[String]) -> Handshake {
        let key = generate_key();
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        headers.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_str(&key).expect("base64 is a valid header value"),
        );
        headers.remove(header::SEC_WEBSOCKET_PROTOCOL);
        let offered: Vec<String> = protocols
            .iter()
            .filter(|p| !p.is_empty() && HeaderValue::from_str(p).is_ok())
            .cloned()
            .collect();
        if !offered.is_empty()
            && let Ok(value) = HeaderValue::from_str(&offered.join(", "))
        {
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, value);
        }
        // A compressed body makes no sense for an upgrade; extensions are not offered.
        headers.remove(header::ACCEPT_ENCODING);
        headers.remove(header::SEC_WEBSOCKET_EXTENSIONS);
        Handshake {
            key,
            protocols: offered,
        }
    }

    /// Checks the server's answer; the subprotocol it chose, if any.
    ///
    /// # Errors
    /// Whatever makes the answer something other than an accepted WebSocket handshake.
    pub fn check(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Result<Option<String>, HandshakeError> {
        if status != StatusCode::SWITCHING_PROTOCOLS {
            return Err(HandshakeError::NotSwitching(status));
        }
        let has_token = |name: header::HeaderName, token: &str| {
            headers.get_all(name).iter().any(|v| {
                v.to_str()
                    .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            })
        };
        if !has_token(header::UPGRADE, "websocket") || !has_token(header::CONNECTION, "upgrade") {
            return Err(HandshakeError::NotWebSocket);
        }
        let expected = derive_accept_key(self.key.as_bytes());
        if headers
            .get(header::SEC_WEBSOCKET_ACCEPT)
            .is_none_or(|v| v.as_bytes() != expected.as_bytes())
        {
            return Err(HandshakeError::BadAccept);
        }
        match headers
            .get(header::SEC_WEBSOCKET_PROTOCOL)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
        {
            None => Ok(None),
            Some(chosen) if self.protocols.contains(&chosen) => Ok(Some(chosen)),
            Some(chosen) => Err(HandshakeError::UnofferedProtocol(chosen)),
        }
    }
}

/// Takes over the connection of an accepted handshake (its answer's `extensions`) as a WebSocket
/// whose messages and frames are at most `maximum_message_size` bytes.
///
/// # Errors
/// The answer holds no connection to take over, or the connection failed meanwhile.
pub async fn open(
    extensions: &mut http::Extensions,
    maximum_message_size: usize,
) -> Result<WebSocket, HandshakeError> {
    let upgrade = extensions
        .remove::<hyper::upgrade::OnUpgrade>()
        .ok_or_else(|| HandshakeError::Upgrade("no connection to take over".into()))?;
    let upgraded = upgrade
        .await
        .map_err(|e| HandshakeError::Upgrade(e.to_string()))?;
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_SIZE)
        .max_message_size(Some(maximum_message_size))
        .max_frame_size(Some(maximum_message_size));
    Ok(WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, Some(config)).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(key: &str, protocol: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(
            header::SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_str(&derive_accept_key(key.as_bytes())).unwrap(),
        );
        if let Some(p) = protocol {
            h.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_str(p).unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_handshake_offers_its_protocols_and_checks_the_answer() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        let hs = Handshake::prepare(&mut headers, &["chat".into(), "superchat".into()]);
        assert_eq!(headers[header::SEC_WEBSOCKET_PROTOCOL], "chat, superchat");
        assert_eq!(headers[header::SEC_WEBSOCKET_VERSION], "13");
        assert!(headers.get(header::ACCEPT_ENCODING).is_none());
        let key = headers[header::SEC_WEBSOCKET_KEY]
            .to_str()
            .unwrap()
            .to_owned();
        let ok = StatusCode::SWITCHING_PROTOCOLS;
        assert_eq!(
            hs.check(ok, &answer(&key, Some("superchat"))),
            Ok(Some("superchat".into()))
        );
        assert_eq!(hs.check(ok, &answer(&key, None)), Ok(None));
        assert_eq!(
            hs.check(ok, &answer(&key, Some("other"))),
            Err(HandshakeError::UnofferedProtocol("other".into()))
        );
        assert_eq!(
            hs.check(ok, &answer("another key", None)),
            Err(HandshakeError::BadAccept)
        );
        assert_eq!(
            hs.check(StatusCode::OK, &answer(&key, None)),
            Err(HandshakeError::NotSwitching(StatusCode::OK))
        );
        let mut no_upgrade = answer(&key, None);
        no_upgrade.remove(header::UPGRADE);
        assert_eq!(hs.check(ok, &no_upgrade), Err(HandshakeError::NotWebSocket));
    }

    proptest::proptest! {
        /// Any answer headers are checked without a panic, and only the exact accept key passes.
        #[test]
        fn any_answer_is_checked_without_panicking(
            upgrade in "[ -~]{0,20}",
            accept in "[ -~]{0,40}",
            protocol in proptest::option::of("[!-~]{0,12}"),
        ) {
            let mut headers = HeaderMap::new();
            let hs = Handshake::prepare(&mut headers, &["a".into()]);
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&upgrade) { h.insert(header::UPGRADE, v); }
            h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            if let Ok(v) = HeaderValue::from_str(&accept) { h.insert(header::SEC_WEBSOCKET_ACCEPT, v); }
            if let Some(p) = protocol.and_then(|p| HeaderValue::from_str(&p).ok()) {
                h.insert(header::SEC_WEBSOCKET_PROTOCOL, p);
            }
            let checked = hs.check(StatusCode::SWITCHING_PROTOCOLS, &h);
            proptest::prop_assert!(checked.is_err());
        }
    }
}
