//! What a WebSocket task's messages and closes are made of: [`Message`] and [`CloseCode`]
//! (URLSessionWebSocketTask's `Message` and `CloseCode`).

use bytes::Bytes;

/// One WebSocket message: URLSessionWebSocketTask's `Message` (`.string` and `.data`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message (valid UTF-8).
    Text(String),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// The message's length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Message::Text(s) => s.len(),
            Message::Binary(b) => b.len(),
        }
    }

    /// True for an empty message.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `text` or `binary`, as the event stream names the kind.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Message::Text(_) => "text",
            Message::Binary(_) => "binary",
        }
    }
}

/// Why a WebSocket closed (RFC 6455 §7.4): URLSessionWebSocketTask's `CloseCode`, with the
/// registered and application codes URLSession has no case for kept as [`CloseCode::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// `invalid` (0): no close code yet, or the task was cancelled without one.
    Invalid,
    /// 1000: the purpose of the connection was fulfilled.
    NormalClosure,
    /// 1001: an endpoint is going away.
    GoingAway,
    /// 1002: a protocol error.
    ProtocolError,
    /// 1003: a kind of data the endpoint cannot accept.
    UnsupportedData,
    /// 1005: the close frame had no code (never sent on the wire).
    NoStatusReceived,
    /// 1006: the connection ended without a close frame (never sent on the wire).
    AbnormalClosure,
    /// 1007: a message's data was not consistent with its type (text that is not UTF-8).
    InvalidFramePayloadData,
    /// 1008: a message violated the endpoint's policy.
    PolicyViolation,
    /// 1009: a message was too big to process.
    MessageTooBig,
    /// 1010: the client expected an extension the server did not negotiate.
    MandatoryExtensionMissing,
    /// 1011: the server met an unexpected condition.
    InternalServerError,
    /// 1015: the TLS handshake failed (never sent on the wire).
    TlsHandshakeFailure,
    /// Any other code: 1012-1014 and 3000-4999 (registered and application codes).
    Other(u16),
}

impl CloseCode {
    /// The code's number (0 for [`CloseCode::Invalid`]).
    pub fn code(self) -> u16 {
        match self {
            CloseCode::Invalid => 0,
            CloseCode::NormalClosure => 1000,
            CloseCode::GoingAway => 1001,
            CloseCode::ProtocolError => 1002,
            CloseCode::UnsupportedData => 1003,
            CloseCode::NoStatusReceived => 1005,
            CloseCode::AbnormalClosure => 1006,
            CloseCode::InvalidFramePayloadData => 1007,
            CloseCode::PolicyViolation => 1008,
            CloseCode::MessageTooBig => 1009,
            CloseCode::MandatoryExtensionMissing => 1010,
            CloseCode::InternalServerError => 1011,
            CloseCode::TlsHandshakeFailure => 1015,
            CloseCode::Other(code) => code,
        }
    }

    /// The code a number stands for.
    pub fn from_code(code: u16) -> CloseCode {
        match code {
            0 => CloseCode::Invalid,
            1000 => CloseCode::NormalClosure,
            1001 => CloseCode::GoingAway,
            1002 => CloseCode::ProtocolError,
            1003 => CloseCode::UnsupportedData,
            1005 => CloseCode::NoStatusReceived,
            1006 => CloseCode::AbnormalClosure,
            1007 => CloseCode::InvalidFramePayloadData,
            1008 => CloseCode::PolicyViolation,
            1009 => CloseCode::MessageTooBig,
            1010 => CloseCode::MandatoryExtensionMissing,
            1011 => CloseCode::InternalServerError,
            1015 => CloseCode::TlsHandshakeFailure,
            other => CloseCode::Other(other),
        }
    }

    /// Whether an endpoint may send this code in a close frame (RFC 6455 §7.4.1: not 0, 1005,
    /// 1006 or 1015, nothing below 1000 or from 5000 on, nor the unassigned 1004 and 1016-2999).
    pub fn may_be_sent(self) -> bool {
        matches!(self.code(), 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_reserved_ones_are_never_sent() {
        for n in [
            0, 1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1015, 3000, 4999,
        ] {
            assert_eq!(CloseCode::from_code(n).code(), n);
        }
        assert!(CloseCode::NormalClosure.may_be_sent());
        assert!(CloseCode::Other(4000).may_be_sent());
        for reserved in [0, 1004, 1005, 1006, 1015, 2000, 5000] {
            assert!(!CloseCode::from_code(reserved).may_be_sent(), "{reserved}");
        }
    }
}
