//! `HostQueue`: a session's per-host queue of HTTP/1.1 requests, served in priority order.
//!
//! An HTTP/1.1 connection carries one exchange at a time and a host gets at most
//! `http_maximum_connections_per_host` of them, so requests beyond that wait. Left to the
//! connection pool they would wait first come, first served; URLSession serves a waiting
//! task of higher `priority` first. So a request to an HTTP/1.1 host first takes a turn here
//! (one of the host's `limit` turns, or a place in its line, highest priority first, then oldest
//! first), holds it until its exchange is over (its body read, or abandoned), and hands it on.
//! HTTP/2 hosts are not queued: their requests share one connection, and the priority travels
//! with each request instead (the `priority` header, RFC 9218).

use std::cmp::Ordering as Order;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};

use smallvec::SmallVec;
use tokio::sync::oneshot;

/// Which host a turn is for, as one string: TLS or not, the port and the lowercase name
/// (`s443:example.com`, `p80:example.com`). Held, shared, by the host's line and its turns; a
/// request looks its host up from a key built on the stack (an allocation per request before).
type HostKey = Arc<str>;

/// The key of `uri`'s host, built without allocating for a name of common length, in one pass
/// over the authority (`Uri::host` and `Uri::port_u16` each parse it again, with the standard
/// library's string searchers: about 700 instructions of every request).
fn key_bytes(uri: &http::Uri) -> SmallVec<[u8; 96]> {
    let tls = uri.scheme_str() == Some("https");
    let authority = uri.authority().map_or(&b""[..], |a| a.as_str().as_bytes());
    // Past any user information: `http::Uri` has checked the rest of the authority.
    let start = authority
        .iter()
        .rposition(|&b| b == b'@')
        .map_or(0, |at| at + 1);
    let host_port = &authority[start..];
    // A port follows the last colon, unless that colon is inside an IPv6 literal (`[::1]`).
    let colon = host_port
        .iter()
        .rposition(|&b| b == b':')
        .filter(|&at| !host_port[at..].contains(&b']'));
    let (host, digits) = match colon {
        Some(at) => (&host_port[..at], &host_port[at + 1..]),
        None => (host_port, &b""[..]),
    };
    // Read as a number, so `:080` and `:80` (and no port, for the scheme's own) are one host.
    let port = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<u16>().ok())
        .unwrap_or(if tls { 443 } else { 80 });
    let mut key = SmallVec::new();
    key.push(if tls { b's' } else { b'p' });
    let mut digits = [0u8; 5];
    let mut n = port;
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    key.extend_from_slice(&digits[at..]);
    key.push(b':');
    key.extend(host.iter().map(|b| b.to_ascii_lowercase()));
    key
}

/// The per-host lines of one session.
pub(crate) struct HostQueue {
    inner: Arc<Inner>,
}

struct Inner {
    /// Turns per host: the session's connection limit per host.
    limit: usize,
    lines: Mutex<Lines>,
}

/// The lines by host. Hashed with FNV, not SipHash: each request hashes its host's key twice (its
/// turn taken, then given back), and the keys are the few hosts the session's own requests are
/// talking to at the moment, not a table an attacker can fill.
type Lines = HashMap<HostKey, Line, fnv::FnvBuildHasher>;

/// One host: how many turns are out, and who waits for one.
struct Line {
    /// The host's key, which its turns share.
    key: HostKey,
    busy: usize,
    waiting: BinaryHeap<Waiter>,
    arrivals: u64,
}

/// A request waiting for a turn.
struct Waiter {
    /// The task's priority, scaled to an integer (0 to 1,000,000) to order by.
    rank: u32,
    /// Arrival order within the host: the older of two equal ranks goes first.
    arrival: u64,
    tx: oneshot::Sender<Turn>,
}

impl Ord for Waiter {
    fn cmp(&self, other: &Self) -> Order {
        self.rank
            .cmp(&other.rank)
            .then_with(|| other.arrival.cmp(&self.arrival))
    }
}
impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Self) -> Option<Order> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Order::Equal
    }
}
impl Eq for Waiter {}

/// The right to have one exchange with a host in flight. Dropping it hands it to the next in line.
pub(crate) struct Turn {
    /// `None` once passed on or given back (so dropping it then does nothing).
    queue: Option<Arc<Inner>>,
    key: HostKey,
}

fn lock(m: &Mutex<Lines>) -> std::sync::MutexGuard<'_, Lines> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl HostQueue {
    /// A queue giving each host `limit` turns at once.
    pub(crate) fn new(limit: usize) -> HostQueue {
        HostQueue {
            inner: Arc::new(Inner {
                limit: limit.max(1),
                lines: Mutex::new(Lines::default()),
            }),
        }
    }

    /// Waits for a turn with the host of `uri`, behind every waiting request of higher
    /// `priority` (0.0 to 1.0) and every older one of the same. Cancel-safe: a request that stops
    /// waiting leaves its place, and a turn handed to it meanwhile goes on to the next.
    pub(crate) async fn turn(&self, uri: &http::Uri, priority: f32) -> Turn {
        let bytes = key_bytes(uri);
        // A URI's host is ASCII (`http::Uri` refuses anything else).
        let name = std::str::from_utf8(&bytes).unwrap_or("");
        let (key, rx) = {
            let mut lines = lock(&self.inner.lines);
            // One lookup when the host has a line already (the usual case: its exchanges
            // overlap); the key is made only for a host not in the map yet.
            let Some(line) = lines.get_mut(name) else {
                let key: HostKey = Arc::from(name);
                let line = Line {
                    key: key.clone(),
                    busy: 1,
                    waiting: BinaryHeap::new(),
                    arrivals: 0,
                };
                lines.insert(key.clone(), line);
                return Turn {
                    queue: Some(self.inner.clone()),
                    key,
                };
            };
            if line.busy < self.inner.limit {
                line.busy += 1;
                return Turn {
                    queue: Some(self.inner.clone()),
                    key: line.key.clone(),
                };
            }
            let (tx, rx) = oneshot::channel();
            line.arrivals += 1;
            line.waiting.push(Waiter {
                rank: (priority.clamp(0.0, 1.0) * 1_000_000.0) as u32,
                arrival: line.arrivals,
                tx,
            });
            (line.key.clone(), rx)
        };
        match rx.await {
            Ok(turn) => turn,
            // The queue went away with the session: nothing left to wait for.
            Err(_) => Turn { queue: None, key },
        }
    }

    /// How many requests wait for `host` (tests).
    #[cfg(test)]
    fn waiting(&self, tls: bool, host: &str, port: u16) -> usize {
        let key = format!("{}{port}:{host}", if tls { 's' } else { 'p' });
        lock(&self.inner.lines)
            .get(key.as_str())
            .map_or(0, |l| l.waiting.len())
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let Some(inner) = self.queue.take() else {
            return;
        };
        let mut lines = lock(&inner.lines);
        let Some(line) = lines.get_mut(&*self.key) else {
            return;
        };
        while let Some(next) = line.waiting.pop() {
            let handed = Turn {
                queue: Some(inner.clone()),
                key: self.key.clone(),
            };
            match next.tx.send(handed) {
                Ok(()) => return,
                // That one stopped waiting: the turn comes back, without running this again.
                Err(mut back) => back.queue = None,
            }
        }
        line.busy -= 1;
        if line.busy == 0 {
            lines.remove(&*self.key);
        }
    }
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turn").field("host", &self.key).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn uri() -> http::Uri {
        "http://a.test:8080/x".parse().unwrap()
    }

    #[tokio::test]
    async fn turns_go_to_the_highest_priority_then_the_oldest() {
        let q = Arc::new(HostQueue::new(1));
        let first = q.turn(&uri(), 0.5).await;
        let (order_tx, mut order) = tokio::sync::mpsc::unbounded_channel();
        // Arrive in this order: low, default, high, default again.
        let arrivals = [
            ("low", 0.25),
            ("default", 0.5),
            ("high", 0.75),
            ("default2", 0.5),
        ];
        for (i, (name, p)) in arrivals.into_iter().enumerate() {
            let (line, tx) = (q.clone(), order_tx.clone());
            tokio::spawn(async move {
                let turn = line.turn(&uri(), p).await;
                tx.send(name).unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
                drop(turn);
            });
            while q.waiting(false, "a.test", 8080) < i + 1 {
                tokio::task::yield_now().await;
            }
        }
        drop(first);
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(
                tokio::time::timeout(Duration::from_secs(5), order.recv())
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        assert_eq!(seen, ["high", "default", "default2", "low"]);
        // The last turn goes back once its holder is done.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !lock(&q.inner.lines).is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(lock(&q.inner.lines).is_empty(), "an idle host is forgotten");
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_passes_its_turn_on() {
        let q = Arc::new(HostQueue::new(1));
        let held = q.turn(&uri(), 0.5).await;
        // A high-priority waiter that stops waiting (its task was cancelled).
        let gives_up = {
            let q = q.clone();
            tokio::spawn(async move { q.turn(&uri(), 1.0).await })
        };
        while q.waiting(false, "a.test", 8080) < 1 {
            tokio::task::yield_now().await;
        }
        let stays = {
            let q = q.clone();
            tokio::spawn(async move { q.turn(&uri(), 0.1).await })
        };
        while q.waiting(false, "a.test", 8080) < 2 {
            tokio::task::yield_now().await;
        }
        gives_up.abort();
        let _ = gives_up.await;
        drop(held);
        let turn = tokio::time::timeout(Duration::from_secs(5), stays)
            .await
            .expect("the turn reached the one still waiting")
            .unwrap();
        drop(turn);
        assert!(lock(&q.inner.lines).is_empty());
    }

    #[test]
    fn a_host_is_one_key_however_its_uri_spells_it() {
        let key = |u: &str| String::from_utf8(key_bytes(&u.parse().unwrap()).to_vec()).unwrap();
        assert_eq!(key("http://A.Test/x"), "p80:a.test");
        assert_eq!(key("http://a.test:80/y"), key("http://a.test/"));
        assert_eq!(key("https://a.test/"), "s443:a.test");
        assert_ne!(key("https://a.test:80/"), key("http://a.test/"));
        assert_eq!(key("http://[::1]:8080/"), "p8080:[::1]");
        assert_eq!(key("http://127.0.0.1:1/"), "p1:127.0.0.1");
        assert_eq!(key("http://127.0.0.1:65535/"), "p65535:127.0.0.1");
        // User information is not part of the host; a port is read as a number.
        assert_eq!(key("HTTP://User:pw@A.Test:080/y?z"), "p80:a.test");
        assert_eq!(key("http://u@[::1]/"), "p80:[::1]");
        // The same keys as the `http` crate's own reading of the host and the port.
        for u in [
            "http://u:p@B.test:81/",
            "https://[2001:db8::1]:444/",
            "http://c.test",
        ] {
            let uri: http::Uri = u.parse().unwrap();
            let tls = uri.scheme_str() == Some("https");
            let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
            let host = uri.host().unwrap().to_ascii_lowercase();
            let tag = if tls { 's' } else { 'p' };
            assert_eq!(key(u), format!("{tag}{port}:{host}"));
        }
        // A name longer than the buffer on the stack still makes its key.
        let long = "a".repeat(200);
        assert_eq!(
            key(&format!("http://{long}.test/")),
            format!("p80:{long}.test")
        );
    }

    #[tokio::test]
    async fn hosts_have_their_own_turns() {
        let q = HostQueue::new(2);
        let a1 = q.turn(&uri(), 0.5).await;
        let a2 = q.turn(&uri(), 0.5).await;
        let other: http::Uri = "http://b.test:8080/".parse().unwrap();
        let b = tokio::time::timeout(Duration::from_secs(1), q.turn(&other, 0.5))
            .await
            .expect("another host does not wait for this one");
        drop((a1, a2, b));
    }
}
