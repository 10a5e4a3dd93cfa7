//! Protocol handlers for tests: routes of the loopback server answered in-process, with no socket,
//! so a test written against the server runs unchanged against Courier's handler path.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use courier_engine::task::protocol::handler_fn;
use courier_engine::{Answer, Error, ProtocolHandler};
use futures_util::Stream;

use crate::server::pattern_bytes;

/// The `mock:` scheme's handler for `/drip?chunks=C&size=S&delay_ms=D`: C pieces of S bytes of the
/// server's pattern, D ms apart, with the whole length announced; other paths are 404.
pub fn drip_handler() -> Arc<dyn ProtocolHandler> {
    handler_fn(
        |request| request.url().is_some_and(|u| u.scheme() == "mock"),
        |request| async move {
            let Some(url) = request.url() else {
                return Ok(Answer::new(400));
            };
            if url.path() != "/drip" {
                return Ok(Answer::new(404));
            }
            let arg = |name: &str, default: u64| {
                url.query_pairs()
                    .find(|(k, _)| k == name)
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(default)
            };
            let (chunks, size) = (arg("chunks", 10) as usize, arg("size", 1024) as usize);
            let delay = Duration::from_millis(arg("delay_ms", 10));
            let pieces = (0..chunks).map(move |i| Bytes::from(pattern_bytes(i * size, size)));
            Ok(Answer::new(200)
                .header("content-length", &(chunks * size).to_string())
                .stream(paced(pieces.collect(), delay)))
        },
    )
}

/// `pieces` as a body stream, `delay` apart.
pub fn paced(
    pieces: Vec<Bytes>,
    delay: Duration,
) -> impl Stream<Item = Result<Bytes, Error>> + Send + 'static {
    futures_util::stream::unfold(
        (pieces.into_iter(), true),
        move |(mut rest, first)| async move {
            let next = rest.next()?;
            if !first {
                tokio::time::sleep(delay).await;
            }
            Some((Ok(next), (rest, false)))
        },
    )
}
