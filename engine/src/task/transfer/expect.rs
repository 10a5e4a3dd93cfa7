//! `Expect: 100-continue`: an upload's body held back until the server says to send it, so a server
//! that refuses the request (a 401, a 413, a redirect) does not receive the body first (RFC 9110
//! 10.1.1, curl's behaviour for large uploads).
//!
//! The request goes with `Expect: 100-continue` and a body behind a [`ContinueGate`]. A `100
//! Continue` opens the gate; so does the timeout, for servers that ignore the header; a final
//! response first closes it for good, and the body is never sent on that connection (hyper then
//! closes it: it cannot carry another request with the body half-announced).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use courier_protocol_http::RequestBody;
use http_body::{Body, Frame, SizeHint};

/// Where the gate stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stand {
    Waiting,
    Open,
    Closed,
}

/// The gate an upload's body waits behind; cheap to clone (the body holds one, the informational
/// callback and the transfer the others).
#[derive(Clone)]
pub(super) struct ContinueGate(Arc<Mutex<Inner>>);

struct Inner {
    stand: Stand,
    waker: Option<Waker>,
}

impl ContinueGate {
    pub(super) fn new() -> ContinueGate {
        ContinueGate(Arc::new(Mutex::new(Inner {
            stand: Stand::Waiting,
            waker: None,
        })))
    }

    /// The server said `100 Continue` (or waiting is over): the body may go.
    pub(super) fn open(&self) {
        self.settle(Stand::Open);
    }

    /// The final response came before the server asked for the body: it is not sent.
    pub(super) fn close(&self) {
        self.settle(Stand::Closed);
    }

    fn settle(&self, to: Stand) {
        let waker = {
            let mut inner = self.0.lock().unwrap_or_else(|p| p.into_inner());
            if inner.stand != Stand::Waiting {
                return;
            }
            inner.stand = to;
            inner.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// `body`, sent only once the gate opens (or `timeout` passes).
    pub(super) fn hold(&self, body: RequestBody, timeout: Duration) -> RequestBody {
        http_body_util::BodyExt::boxed(Held {
            gate: self.clone(),
            timer: Box::pin(tokio::time::sleep(timeout)),
            body,
        })
    }
}

/// A body behind the gate.
struct Held {
    gate: ContinueGate,
    timer: Pin<Box<tokio::time::Sleep>>,
    body: RequestBody,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Body for Held {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let stand = {
            let mut inner = self.gate.0.lock().unwrap_or_else(|p| p.into_inner());
            if inner.stand == Stand::Waiting {
                inner.waker = Some(cx.waker().clone());
            }
            inner.stand
        };
        match stand {
            Stand::Open => Pin::new(&mut self.body).poll_frame(cx),
            Stand::Closed => Poll::Ready(Some(Err(
                "the server answered before asking for the body".into(),
            ))),
            Stand::Waiting => match self.timer.as_mut().poll(cx) {
                // The server did not answer the `Expect` in time: send the body anyway.
                Poll::Ready(()) => {
                    self.gate.open();
                    Pin::new(&mut self.body).poll_frame(cx)
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn body() -> RequestBody {
        courier_protocol_http::body_from_bytes(Bytes::from_static(b"payload"))
    }

    #[tokio::test]
    async fn the_body_waits_for_the_gate_then_flows() {
        let gate = ContinueGate::new();
        let mut held = gate.hold(body(), Duration::from_secs(3600));
        let polled = tokio::time::timeout(Duration::from_millis(10), held.frame()).await;
        assert!(polled.is_err(), "held while waiting");
        gate.open();
        let frame = held.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "payload");
    }

    #[tokio::test]
    async fn the_timeout_opens_it_and_a_final_answer_closes_it() {
        let gate = ContinueGate::new();
        let held = gate.hold(body(), Duration::from_millis(20));
        let all = held.collect().await.unwrap().to_bytes();
        assert_eq!(all, "payload", "sent after the timeout");

        let gate = ContinueGate::new();
        let mut held = gate.hold(body(), Duration::from_secs(1));
        gate.close();
        gate.open(); // too late: closed stays closed
        assert!(held.frame().await.unwrap().is_err());
    }
}
