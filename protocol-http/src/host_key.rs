//! [`HostKey`]: one host as connections and request queues tell hosts apart (TLS or not, the port,
//! the lowercase name), read from a request's URI without allocating.
//!
//! Every request looks its host up at least twice (the engine's per-host queue, the connector's
//! knowledge of the host), so how the key is made is on every request's path: `Uri::host` and
//! `Uri::port_u16` each parse the authority again with the standard library's string searchers,
//! and a `(bool, String, u16)` key allocates its name for every lookup.

use smallvec::SmallVec;

/// A host's key as one string: `s` (TLS) or `p` (plain), the port, a colon and the lowercase name,
/// with no brackets around an IPv6 literal (`s443:example.com`, `p8080:::1`). Built on the stack
/// for a name of common length; [`HostKey::as_str`] looks it up in a map keyed by `str`.
///
/// The port comes first so that the name, which may hold colons (IPv6), needs no escaping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostKey(SmallVec<[u8; 96]>);

impl HostKey {
    /// The key of `uri`'s host, read in one pass over the authority: past any user information,
    /// the port read as a number (`:080` and `:80`, and no port for the scheme's own, are one
    /// host). `tls` is the scheme's being `https`.
    pub fn of_uri(uri: &http::Uri) -> HostKey {
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
        let port = port_number(digits).unwrap_or(if tls { 443 } else { 80 });
        HostKey::from_parts(tls, host, port)
    }

    /// The key of a host named apart from a URI (an IPv6 literal with or without its brackets).
    pub fn new(tls: bool, host: &str, port: u16) -> HostKey {
        HostKey::from_parts(tls, host.as_bytes(), port)
    }

    fn from_parts(tls: bool, host: &[u8], port: u16) -> HostKey {
        let host = host.strip_prefix(b"[").unwrap_or(host);
        let host = host.strip_suffix(b"]").unwrap_or(host);
        let mut key = SmallVec::new();
        key.push(if tls { b's' } else { b'p' });
        key.extend_from_slice(PortDigits::new(port).as_bytes());
        key.push(b':');
        // Copied whole, then lowercased in place: a byte-by-byte `extend` checked the room for
        // every byte (700 instructions a key, callgrind; a key is made for every request).
        let name = key.len();
        key.extend_from_slice(host);
        key[name..].make_ascii_lowercase();
        HostKey(key)
    }

    /// Whether the host is reached over TLS (an `https` URL's).
    pub fn is_tls(&self) -> bool {
        self.0.first() == Some(&b's')
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        // ASCII lowercasing keeps UTF-8 valid, and a URI's authority is ASCII (`http::Uri`
        // refuses anything else); the fallback is never taken.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

/// The port `digits` name (`None` for none, or past 65535), read without a UTF-8 check: the
/// authority is ASCII.
fn port_number(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u16, |n, &d| {
        let d = d.checked_sub(b'0').filter(|d| *d <= 9)?;
        n.checked_mul(10)?.checked_add(u16::from(d))
    })
}

/// A port in decimal, written without `fmt` or an allocation (for keys and header fields built
/// for every request).
pub struct PortDigits {
    digits: [u8; 5],
    at: usize,
}

impl PortDigits {
    /// The digits of `port`.
    pub fn new(port: u16) -> PortDigits {
        let mut digits = [0u8; 5];
        let (mut n, mut at) = (port, digits.len());
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        PortDigits { digits, at }
    }

    /// The digits, most significant first.
    pub fn as_bytes(&self) -> &[u8] {
        &self.digits[self.at..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(u: &str) -> String {
        HostKey::of_uri(&u.parse().unwrap()).as_str().to_owned()
    }

    #[test]
    fn a_host_is_one_key_however_its_uri_spells_it() {
        assert_eq!(key("http://A.Test/x"), "p80:a.test");
        assert_eq!(key("http://a.test:80/y"), key("http://a.test/"));
        assert_eq!(key("https://a.test/"), "s443:a.test");
        assert_ne!(key("https://a.test:80/"), key("http://a.test/"));
        assert_eq!(key("http://[::1]:8080/"), "p8080:::1");
        assert_eq!(key("http://127.0.0.1:1/"), "p1:127.0.0.1");
        assert_eq!(key("http://127.0.0.1:65535/"), "p65535:127.0.0.1");
        // User information is not part of the host; a port is read as a number.
        assert_eq!(key("HTTP://User:pw@A.Test:080/y?z"), "p80:a.test");
        assert_eq!(key("http://u@[::1]/"), "p80:::1");
        assert!(HostKey::new(true, "a.test", 443).is_tls());
        assert!(!HostKey::new(false, "a.test", 443).is_tls());
        // A name longer than the buffer on the stack still makes its key.
        let long = "a".repeat(200);
        assert_eq!(
            key(&format!("http://{long}.test/")),
            format!("p80:{long}.test")
        );
    }

    #[test]
    fn a_host_named_apart_has_its_uris_key() {
        assert_eq!(
            HostKey::new(true, "::1", 443),
            HostKey::of_uri(&"https://[::1]/".parse().unwrap())
        );
        assert_eq!(
            HostKey::new(true, "[::1]", 443),
            HostKey::new(true, "::1", 443)
        );
        assert_eq!(
            HostKey::new(false, "A.test", 81),
            HostKey::of_uri(&"http://a.test:81/".parse().unwrap())
        );
        assert_ne!(
            HostKey::new(false, "a.test", 81),
            HostKey::new(true, "a.test", 81)
        );
    }

    proptest! {
        /// The same key as the `http` crate's own reading of the host and the port, for any URI
        /// it accepts.
        #[test]
        fn the_key_agrees_with_the_uris_host_and_port(
            tls in any::<bool>(),
            user in proptest::option::of("[a-z]{1,5}(:[a-z]{0,5})?"),
            host in prop_oneof![
                "[a-zA-Z0-9-]{1,20}(\\.[a-zA-Z0-9-]{1,10}){0,3}",
                "\\[[0-9a-f]{1,4}(:[0-9a-f]{0,4}){1,6}\\]",
            ],
            port in proptest::option::of("0{0,2}[0-9]{1,5}"),
        ) {
            let scheme = if tls { "https" } else { "http" };
            let user = user.map(|u| format!("{u}@")).unwrap_or_default();
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let Ok(uri) = format!("{scheme}://{user}{host}{port}/p").parse::<http::Uri>() else {
                return Ok(()); // the `http` crate refused it (a port past 65535)
            };
            let Some(port) = uri.port().map_or(Some(if tls { 443 } else { 80 }), |p| p.as_str().parse::<u16>().ok()) else {
                return Ok(());
            };
            let expected = HostKey::new(tls, uri.host().unwrap(), port);
            prop_assert_eq!(HostKey::of_uri(&uri), expected);
        }
    }
}
