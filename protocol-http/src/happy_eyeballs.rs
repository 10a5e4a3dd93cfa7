//! Happy Eyeballs (RFC 8305): connecting to a host that has several addresses without waiting out
//! the ones that do not answer.
//!
//! The addresses are tried with their families interleaved (IPv6, IPv4, IPv6, ...; starting with
//! the resolver's first). The next attempt starts 250 ms after the previous one unless that one has
//! already failed, and attempts run side by side: the first connection wins and the rest are
//! dropped. Without this, a host whose IPv6 address is black-holed would take the whole connect
//! timeout before its IPv4 address was tried.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::task::JoinSet;

/// How long an attempt runs alone before the next one starts (RFC 8305's recommended value).
pub(crate) const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// `addrs` with the address families alternating, each family in its original order, starting
/// with the family of the first address.
pub(crate) fn interleave(addrs: &[SocketAddr]) -> Vec<SocketAddr> {
    let Some(first) = addrs.first() else {
        return Vec::new();
    };
    let (mut same, mut other): (Vec<SocketAddr>, Vec<SocketAddr>) = addrs
        .iter()
        .copied()
        .partition(|a| a.is_ipv6() == first.is_ipv6());
    same.reverse();
    other.reverse();
    let mut out = Vec::with_capacity(addrs.len());
    while !same.is_empty() || !other.is_empty() {
        out.extend(same.pop());
        out.extend(other.pop());
    }
    out
}

/// Connects with `dial` to the first of `addrs` that answers, as RFC 8305 races them. Returns the
/// connection and its address, or the last error (`None` when there was no address to try).
pub(crate) async fn connect<T, F, Fut>(
    addrs: &[SocketAddr],
    dial: F,
) -> Result<(T, SocketAddr), Option<io::Error>>
where
    T: Send + 'static,
    F: Fn(SocketAddr) -> Fut,
    Fut: Future<Output = io::Result<T>> + Send + 'static,
{
    let mut waiting = interleave(addrs).into_iter().peekable();
    let mut attempts = JoinSet::new();
    let mut last_error = None;
    loop {
        if let Some(addr) = waiting.next() {
            let attempt = dial(addr);
            attempts.spawn(async move { (addr, attempt.await) });
        }
        if attempts.is_empty() {
            return Err(last_error);
        }
        let more = waiting.peek().is_some();
        tokio::select! {
            done = attempts.join_next() => match done {
                Some(Ok((addr, Ok(conn)))) => return Ok((conn, addr)),
                // A failure lets the next attempt start at once.
                Some(Ok((_, Err(e)))) => last_error = Some(e),
                Some(Err(panicked)) => last_error = Some(io::Error::other(panicked)),
                None => return Err(last_error),
            },
            () = tokio::time::sleep(ATTEMPT_DELAY), if more => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn families_alternate_from_the_first() {
        let got = interleave(&[
            a("[::1]:1"),
            a("[::2]:1"),
            a("[::3]:1"),
            a("10.0.0.1:1"),
            a("10.0.0.2:1"),
        ]);
        assert_eq!(
            got,
            [
                a("[::1]:1"),
                a("10.0.0.1:1"),
                a("[::2]:1"),
                a("10.0.0.2:1"),
                a("[::3]:1")
            ]
        );
        assert_eq!(
            interleave(&[a("10.0.0.1:1"), a("[::1]:1")]),
            [a("10.0.0.1:1"), a("[::1]:1")]
        );
        assert!(interleave(&[]).is_empty());
    }

    #[tokio::test]
    async fn an_address_that_never_answers_does_not_hold_up_the_next() {
        let black_hole = a("[2001:db8::1]:443");
        let answers = a("192.0.2.1:443");
        let got = connect(&[black_hole, answers], move |addr| async move {
            if addr == black_hole {
                std::future::pending::<()>().await;
            }
            Ok(addr.port())
        })
        .await
        .unwrap();
        assert_eq!(got.1, answers);
    }

    #[tokio::test]
    async fn a_refusal_starts_the_next_attempt_and_all_refusals_give_the_last_error() {
        let got = connect(&[a("[::1]:1"), a("127.0.0.1:2")], |addr| async move {
            if addr.is_ipv6() {
                Err(io::Error::from(io::ErrorKind::ConnectionRefused))
            } else {
                Ok(())
            }
        })
        .await
        .unwrap();
        assert_eq!(got.1, a("127.0.0.1:2"));

        let err = connect(&[a("[::1]:1"), a("127.0.0.1:2")], |_| async {
            Err::<(), _>(io::Error::from(io::ErrorKind::ConnectionRefused))
        })
        .await
        .unwrap_err()
        .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        assert!(
            connect(&[], |_| async { Ok(()) })
                .await
                .unwrap_err()
                .is_none()
        );
    }
}
