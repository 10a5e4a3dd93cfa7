//! A response body, from the wire or from a protocol handler: the one type the rest of the transfer
//! reads (`receive`, `parts`), so a handler's answer takes exactly the network's path.

use bytes::Bytes;
use courier_delegates::Error;
use courier_protocol_http::{Incoming, TransportError};
use futures_util::StreamExt;
use http_body::Frame;
use http_body_util::BodyExt;
use url::Url;

use super::map_transport_error;
use crate::task::protocol::{AnswerBody, AnswerStream};

/// A response body.
pub(crate) enum ResponseBody {
    /// From the connection, with the host's turn (HTTP/1.1) its exchange holds until the body
    /// has been read to its end (or dropped): then the connection is free for the next in line.
    Wire(Incoming, Option<super::host_queue::Turn>),
    /// From a protocol handler: all at once (taken by the first read), or as a stream.
    Whole(Option<Bytes>),
    Stream(AnswerStream),
}

/// Why a body ended early.
pub(crate) enum BodyFault {
    /// The connection failed.
    Wire(<Incoming as http_body::Body>::Error),
    /// The handler's stream gave an error.
    Answer(Error),
}

impl BodyFault {
    /// The task's error for it: a failed connection is -1005, as any cut.
    pub(crate) fn into_error(self, url: &Url) -> Error {
        match self {
            BodyFault::Wire(e) => map_transport_error(TransportError::from_body(e), url),
            BodyFault::Answer(e) if e.failing_url().is_none() => e.with_url(url.as_str()),
            BodyFault::Answer(e) => e,
        }
    }
}

impl From<AnswerBody> for ResponseBody {
    fn from(body: AnswerBody) -> ResponseBody {
        match body {
            AnswerBody::Whole(bytes) => ResponseBody::Whole(Some(bytes)),
            AnswerBody::Stream(stream) => ResponseBody::Stream(stream),
        }
    }
}

impl ResponseBody {
    /// The next frame; `None` at the end.
    pub(crate) async fn frame(&mut self) -> Option<Result<Frame<Bytes>, BodyFault>> {
        match self {
            ResponseBody::Wire(incoming, turn) => {
                let frame = incoming.frame().await;
                if !matches!(frame, Some(Ok(_))) {
                    turn.take();
                }
                Some(frame?.map_err(BodyFault::Wire))
            }
            ResponseBody::Whole(bytes) => bytes.take().map(|b| Ok(Frame::data(b))),
            ResponseBody::Stream(stream) => Some(
                stream
                    .next()
                    .await?
                    .map(Frame::data)
                    .map_err(BodyFault::Answer),
            ),
        }
    }
}
