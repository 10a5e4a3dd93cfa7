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
        // handed (`Naming::first_address`), and most loopback servers listen on 127.0.0.1.
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

/// The one IP version connections may use (curl's `-4` and `-6`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IpVersion {
    /// IPv4 addresses only.
    V4,
    /// IPv6 addresses only.
    V6,
}

impl std::fmt::Display for IpVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IpVersion::V4 => "IPv4",
            IpVersion::V6 => "IPv6",
        })
    }
}

/// How names become the addresses connections are opened to: those given for a host and port
/// first (curl's `--resolve`), else DNS's (`localhost` names are this machine's loopback
/// addresses); and of one IP version only, when one is asked for (curl's `-4`, `-6`). Every
/// connection takes its addresses here: to a server, to a proxy, and the address a `socks5://`
/// proxy is handed.
#[derive(Clone, Debug, Default)]
pub struct Naming {
    /// Addresses for a host and port, instead of DNS's.
    pub given: GivenAddresses,
    /// The one IP version to use (`None`: either, IPv6 and IPv4 raced by happy eyeballs).
    pub ip_version: Option<IpVersion>,
}

impl Naming {
    /// The addresses to open `host:port` at; at least one.
    pub(crate) async fn addresses(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, ConnectFailure> {
        let given = (!self.given.is_empty())
            .then(|| {
                self.given
                    .get(&(bare_host(host).to_ascii_lowercase(), port))
            })
            .flatten()
            .filter(|ips| !ips.is_empty());
        let mut addrs = match given {
            Some(ips) => ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect(),
            None => resolve(host, port).await?,
        };
        if let Some(version) = self.ip_version {
            addrs.retain(|a| a.is_ipv4() == (version == IpVersion::V4));
            if addrs.is_empty() {
                return Err(ConnectFailure::new(
                    TransportErrorKind::Dns,
                    format!(
                        "cannot find an {version} address for host {}",
                        bare_host(host)
                    ),
                    None,
                ));
            }
        }
        Ok(addrs)
    }

    /// The first of [`Naming::addresses`], as text (for a `socks5://` proxy, which is handed
    /// addresses, not names).
    pub(crate) async fn first_address(
        &self,
        host: &str,
        port: u16,
    ) -> Result<String, ConnectFailure> {
        Ok(self.addresses(host, port).await?[0].ip().to_string())
    }
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
        let naming = Naming {
            given,
            ip_version: None,
        };
        let addrs = naming.addresses("Files.TEST", 443).await.unwrap();
        assert_eq!(
            addrs,
            vec![
                SocketAddr::from(([10, 1, 2, 3], 443)),
                SocketAddr::from((Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 2), 443))
            ]
        );
        let addrs = naming.addresses("[::5]", 80).await.unwrap();
        assert_eq!(addrs, vec![SocketAddr::from(([127, 0, 0, 9], 80))]);
        // Another port of the host, and any other host, are DNS's (here: localhost's rule).
        let other = naming.addresses("localhost", 443).await.unwrap();
        assert!(other.iter().all(|a| a.ip().is_loopback()), "{other:?}");
    }

    /// One IP version asked for: the other's addresses are left out, given or resolved, and a
    /// host with none of that version is not found.
    #[tokio::test]
    async fn one_ip_version_leaves_the_others_addresses_out() {
        let mut given = GivenAddresses::new();
        given.insert(
            ("files.test".into(), 443),
            vec!["10.1.2.3".parse().unwrap(), "::2".parse().unwrap()],
        );
        let v6 = Naming {
            given,
            ip_version: Some(IpVersion::V6),
        };
        let addrs = v6.addresses("files.test", 443).await.unwrap();
        assert_eq!(
            addrs,
            vec![SocketAddr::from((
                Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 2),
                443
            ))]
        );
        let local = v6.addresses("localhost", 80).await.unwrap();
        assert_eq!(local, vec![SocketAddr::from((Ipv6Addr::LOCALHOST, 80))]);
        let v4 = Naming {
            ip_version: Some(IpVersion::V4),
            ..Naming::default()
        };
        assert_eq!(
            v4.first_address("localhost", 80).await.unwrap(),
            "127.0.0.1"
        );
        let refused = v4.addresses("[::1]", 80).await.unwrap_err();
        assert_eq!(refused.kind, TransportErrorKind::Dns);
        assert_eq!(refused.message, "cannot find an IPv4 address for host ::1");
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
