//! The body of `courier upload --file -`: stdin, handed to the engine again for a resend as long as
//! none of it has been read.
//!
//! URLSession asks for a new body stream whenever a streamed upload must be sent again (an
//! authentication retry, a 307 or 308), and the engine keeps that. Stdin cannot be read twice, but
//! a server often answers before it takes a byte: the upload asks `Expect: 100-continue`, and a
//! 401 or a redirect comes instead of `100 Continue`. Then nothing was read, and the same stdin
//! can go again. Each send gets a reader that takes stdin at its first read; a later send gets
//! stdin only if no reader took it. Once one did, a resend gets none, and the engine fails the
//! task with -1021 rather than send an empty body.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use courier_engine::BodyStream;
use tokio::io::{AsyncRead, ReadBuf};

/// A stream that is handed out again until something reads from it.
pub(super) struct UnreadStream(Arc<Mutex<Option<BodyStream>>>);

impl UnreadStream {
    pub(super) fn new(stream: BodyStream) -> UnreadStream {
        UnreadStream(Arc::new(Mutex::new(Some(stream))))
    }

    /// A reader for the next send; `None` once an earlier send read from the stream.
    pub(super) fn hand_out(&self) -> Option<BodyStream> {
        lock(&self.0).is_some().then(|| {
            Box::pin(Reader {
                unread: self.0.clone(),
                taken: None,
            }) as BodyStream
        })
    }

    /// Whether no send has read from the stream yet.
    #[cfg(test)]
    fn is_unread(&self) -> bool {
        lock(&self.0).is_some()
    }
}

fn lock(m: &Mutex<Option<BodyStream>>) -> MutexGuard<'_, Option<BodyStream>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One send's reader: it takes the stream at its first read, for good.
struct Reader {
    unread: Arc<Mutex<Option<BodyStream>>>,
    taken: Option<BodyStream>,
}

impl AsyncRead for Reader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.taken.is_none() {
            let Some(stream) = lock(&self.unread).take() else {
                // A later send took it: this send's request is over.
                return Poll::Ready(Err(io::Error::other(
                    "the body stream went to a later send",
                )));
            };
            self.taken = Some(stream);
        }
        match self.taken.as_mut() {
            Some(stream) => stream.as_mut().poll_read(cx, buf),
            None => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn handed_out_again_until_read_then_never() {
        let unread = UnreadStream::new(Box::pin(&b"the body"[..]));
        let first = unread.hand_out().expect("the first send gets it");
        drop(first); // its request ended before the body was asked for
        let mut second = unread.hand_out().expect("nothing was read: again");
        let mut third = unread.hand_out().expect("still nothing read");
        let mut body = String::new();
        second.read_to_string(&mut body).await.unwrap();
        assert_eq!(body, "the body", "the whole body, from its start");
        assert!(!unread.is_unread());
        assert!(unread.hand_out().is_none(), "read once: no more");
        let stale = third.read_to_string(&mut String::new()).await;
        assert!(
            stale.is_err(),
            "an earlier reader gets nothing once another read"
        );
    }
}
