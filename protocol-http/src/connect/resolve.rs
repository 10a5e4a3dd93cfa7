//! Name resolution for connections.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::error::{ConnectFailure, TransportErrorKind};

/// `host` as an address is written outside a URL: an IPv6 literal without the brackets a URL
/// keeps it in (`[::1]` is `::1`), any other host as it is. What resolution, SNI and a proxy's
/// address want.
pub(crate) fn bare_host(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// The addresses `host:port` resolves to; at least one. `host` may be an IPv6 literal in a URL's
/// brackets ([`bare_host`]).
///
/// `localhost` and every name under it (`app.localhost`) are this machine's loopback addresses,
/// without asking DNS: RFC 6761's rule for localhost names, which curl and browsers follow (the
/// system resolver may not: glibc without systemd-resolved finds no `app.localhost`), and which
/// keeps such a name from ever reaching a server elsewhere.
pub(crate) async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, ConnectFailure> {
    let host = bare_host(host);
    if is_localhost_name(host) {
        // IPv4 first, as `/etc/hosts` lists them: the first is the one a `socks5://` proxy is
        // handed (`resolve_one`), and most loopback servers listen on 127.0.0.1.
        return Ok(vec![
            SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
        ]);
    }
    let cannot = |e: Option<io::Error>| {
        ConnectFailure::new(
            TransportErrorKind::Dns,
            format!("cannot find host {host}"),
            e,
        )
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| cannot(Some(e)))?
        .collect();
    if addrs.is_empty() {
        return Err(cannot(None));
    }
    Ok(addrs)
}

/// Addresses given for a host and port, used instead of asking DNS (curl's `--resolve`), by the
/// host in lowercase without an IPv6 literal's brackets.
pub type GivenAddresses = HashMap<(String, u16), Vec<IpAddr>>;

/// The addresses `given` has for `host:port`, else [`resolve`]'s.
pub(crate) async fn resolve_given(
    given: &GivenAddresses,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, ConnectFailure> {
    if !given.is_empty()
        && let Some(ips) = given
            .get(&(bare_host(host).to_ascii_lowercase(), port))
            .filter(|ips| !ips.is_empty())
    {
        return Ok(ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect());
    }
    resolve(host, port).await
}

/// The first address of `host`, as text (for a `socks5://` proxy, which is handed addresses, not
/// names).
pub(crate) async fn resolve_one(host: &str, port: u16) -> Result<String, ConnectFailure> {
    Ok(resolve(host, port).await?[0].ip().to_string())
}

/// `localhost`, or a name under it (RFC 6761, section 6.3), in any case, with or without the
/// root's trailing dot: a name Courier resolves to this machine's loopback addresses, never asking
/// DNS, so an origin of that name is as local as `127.0.0.1`.
pub fn is_localhost_name(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host);
    let tail = name.len().saturating_sub("localhost".len());
    name.get(tail..)
        .is_some_and(|last| last.eq_ignore_ascii_case("localhost"))
        && (tail == 0 || name.as_bytes()[tail - 1] == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_literal_loses_its_brackets_and_nothing_else_changes() {
        assert_eq!(bare_host("[::1]"), "::1");
        assert_eq!(bare_host("[fe80::1]"), "fe80::1");
        for host in ["::1", "127.0.0.1", "example.com", "[::1", "::1]", ""] {
            assert_eq!(bare_host(host), host);
        }
    }

    #[tokio::test]
    async fn given_addresses_answer_for_their_host_and_port_only() {
        let mut given = GivenAddresses::new();
        let ips: Vec<IpAddr> = vec!["10.1.2.3".parse().unwrap(), "::2".parse().unwrap()];
        given.insert(("files.test".into(), 443), ips);
        given.insert(("::5".into(), 80), vec!["127.0.0.9".parse().unwrap()]);
        let addrs = resolve_given(&given, "Files.TEST", 443).await.unwrap();
        assert_eq!(
            addrs,
            vec![
                SocketAddr::from(([10, 1, 2, 3], 443)),
                SocketAddr::from((Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 2), 443))
            ]
        );
        let addrs = resolve_given(&given, "[::5]", 80).await.unwrap();
        assert_eq!(addrs, vec![SocketAddr::from(([127, 0, 0, 9], 80))]);
        // Another port of the host, and any other host, are DNS's (here: localhost's rule).
        let other = resolve_given(&given, "localhost", 443).await.unwrap();
        assert!(other.iter().all(|a| a.ip().is_loopback()), "{other:?}");
    }

    #[tokio::test]
    async fn an_ipv6_literal_in_brackets_resolves_to_itself() {
        let addrs = resolve("[::1]", 21).await.unwrap();
        assert_eq!(addrs, vec![SocketAddr::from((Ipv6Addr::LOCALHOST, 21))]);
    }

    #[test]
    fn localhost_names_are_localhost_and_names_under_it() {
        for name in [
            "localhost",
            "LocalHost",
            "localhost.",
            "app.localhost",
            "a.b.LOCALHOST.",
        ] {
            assert!(is_localhost_name(name), "{name}");
        }
        for name in [
            "notlocalhost",
            "localhost.example",
            "example.com",
            "",
            ".",
            "host",
        ] {
            assert!(!is_localhost_name(name), "{name}");
        }
    }

    #[tokio::test]
    async fn a_localhost_name_resolves_to_loopback_without_dns() {
        let addrs = resolve("app.localhost", 8080).await.unwrap();
        assert!(!addrs.is_empty());
        assert!(
            addrs
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 8080),
            "{addrs:?}"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_name_is_judged_without_a_panic(name in "\\PC{0,40}") {
            let _ = is_localhost_name(&name);
        }
    }
}
