//! Proxies: which requests go through a proxy, the `CONNECT` tunnel that carries an `https` request
//! through an HTTP proxy, and the SOCKS5 handshake (hyper-util's `SocksV5`) that carries any request
//! through a SOCKS proxy.
//!
//! The rules come from hyper-util's [`Matcher`]: the environment's `HTTPS_PROXY`, `HTTP_PROXY`,
//! `ALL_PROXY` and `NO_PROXY` (either case), read as curl reads them, or one explicit proxy with a
//! `NO_PROXY`-style list of exceptions. A cleartext request goes to the proxy in absolute form
//! (the pool is told the connection is proxied); an `https` request gets a tunnel, and TLS runs to
//! the server inside it, so the proxy sees only the host and port. Credentials in the proxy's URL
//! (`http://user:pass@proxy:3128`) go, as Basic, to the proxy only: on the `CONNECT`, or on each
//! cleartext request.
//!
//! A SOCKS5 proxy (`socks5://` or `socks5h://`, in `ALL_PROXY` as curl reads it, or explicit) carries
//! the connection itself: requests go through it as if direct, TLS runs to the server inside it.
//! `socks5h` lets the proxy resolve the host name (nothing about the host leaks to the local
//! resolver); `socks5` resolves it here and hands the proxy an address. Credentials in the URL go
//! to the proxy in its username/password exchange (RFC 1929). SOCKS4 is refused rather than
//! bypassed: a request is never sent direct when the configuration names a proxy for it. So are
//! an HTTPS proxy (`https://`: TLS to the proxy, which Courier does not speak; spoken to in
//! cleartext, it would get the credentials meant for a TLS connection) and, from the environment,
//! a scheme hyper-util does not know (`socks://`, GNOME's spelling, curl's SOCKS4), which its
//! matcher would otherwise drop, sending the requests direct.
//!
//! Connections that are not HTTP (`RawUse`: `ftp:`, stream tasks) go through the same explicit
//! proxy; from the environment, `ftp:` takes `FTP_PROXY`, else `ALL_PROXY`, and a stream task
//! `ALL_PROXY` (curl's rule: the scheme's own variable, else the one for all). Through an HTTP
//! proxy they ride a `CONNECT` tunnel (curl's `--proxytunnel`), through a SOCKS5 proxy its
//! connect: the bytes are the protocol's own either way.

use std::io;
use std::sync::Arc;

use http::{HeaderValue, Uri};
use hyper_util::client::proxy::matcher::Matcher;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{ConnectFailure, TransportErrorKind};

/// The proxy schemes hyper-util's matcher keeps (any other, it drops: the request would go direct).
const KNOWN_SCHEMES: [&str; 6] = ["http", "https", "socks4", "socks4a", "socks5", "socks5h"];

/// The most bytes a proxy's answer to `CONNECT` may have before its blank line.
const MAX_CONNECT_RESPONSE: usize = 16 * 1024;

/// Which requests go through a proxy. Build one with [`Proxies::from_env`], [`Proxies::to`] or
/// [`Proxies::none`].
pub struct Proxies {
    /// `http:` and `https:` requests (WebSockets included).
    matcher: Option<Arc<Matcher>>,
    /// `ftp:` connections, control and data (the same matcher as `stream`'s, or all three's, when
    /// one proxy URL serves them).
    ftp: Option<Arc<Matcher>>,
    /// Stream tasks' connections.
    stream: Option<Arc<Matcher>>,
    /// True for the environment's proxies: they are never used for loopback hosts.
    skip_loopback: bool,
    /// The environment's proxies of a scheme hyper-util's matcher drops, by the authority they
    /// were given to it under (as `socks4a://`, which it keeps and `route_by` refuses): the scheme
    /// they had, for the refusal to name.
    foreign: Vec<(String, String)>,
}

/// Where one request goes instead of its host.
#[derive(Clone, Debug)]
pub(crate) struct Route {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `Proxy-Authorization` for the proxy, from the credentials in its URL.
    pub(crate) auth: Option<HeaderValue>,
    pub(crate) kind: RouteKind,
}

/// A connection outside HTTP's pool, by what it carries: which proxy rules apply to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RawUse {
    /// An `ftp:` control or data connection.
    Ftp,
    /// A stream task's connection.
    Stream,
}

/// What kind of proxy a route goes through.
#[derive(Clone, Debug)]
pub(crate) enum RouteKind {
    /// An HTTP proxy: absolute-form requests, or a `CONNECT` tunnel; `login` from the URL's
    /// credentials (sent as Basic up front, and the answer to its Digest challenge).
    Http { login: Option<(String, String)> },
    /// A SOCKS5 proxy; `remote_dns` for `socks5h`; `login` from the URL's credentials.
    Socks5 {
        remote_dns: bool,
        login: Option<(String, String)>,
    },
    /// A proxy Courier cannot speak (its scheme): the request fails rather than go direct.
    Unsupported(String),
}

impl Proxies {
    /// No proxy: every request goes straight to its host.
    pub fn none() -> Proxies {
        Proxies {
            matcher: None,
            ftp: None,
            stream: None,
            skip_loopback: false,
            foreign: Vec::new(),
        }
    }

    /// The proxies the environment names (`HTTPS_PROXY`, `HTTP_PROXY`, `FTP_PROXY`, `ALL_PROXY`,
    /// `NO_PROXY`, upper or lower case), as curl reads them. Loopback hosts (`localhost`,
    /// `127.0.0.0/8`, `::1`) always go direct: a proxy elsewhere cannot reach them.
    pub fn from_env() -> Proxies {
        Proxies::from_vars(|name| std::env::var(name).ok())
    }

    /// As [`Proxies::from_env`], with `var` for the environment.
    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Proxies {
        // An environment that names no proxy (the usual case) routes nothing: no matcher to ask,
        // and no host to parse, for every request.
        let foreign = std::cell::RefCell::new(Vec::new());
        let named = |names: &[&str]| {
            let value = names
                .iter()
                .find_map(|name| var(name).filter(|v| !v.is_empty()))?;
            // A scheme the matcher does not know is handed to it as one it keeps, and refused
            // when a request would take it: never sent direct instead.
            match value.split_once("://") {
                Some((scheme, rest)) if !KNOWN_SCHEMES.contains(&&*scheme.to_ascii_lowercase()) => {
                    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
                    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                    foreign
                        .borrow_mut()
                        .push((host.to_ascii_lowercase(), scheme.to_owned()));
                    Some(format!("socks4a://{rest}"))
                }
                _ => Some(value),
            }
        };
        let (https, http) = (
            named(&["HTTPS_PROXY", "https_proxy"]),
            named(&["HTTP_PROXY", "http_proxy"]),
        );
        let all = named(&["ALL_PROXY", "all_proxy"]);
        let no = named(&["NO_PROXY", "no_proxy"]).unwrap_or_default();
        // Under CGI, `HTTP_PROXY` may be a request's `Proxy:` field (httpoxy): as hyper-util's
        // `Matcher::from_env`, no web proxy from such an environment.
        let cgi = var("REQUEST_METHOD").is_some();
        let web = (!cgi && (https.is_some() || http.is_some() || all.is_some())).then(|| {
            let mut builder = Matcher::builder().no(no.clone());
            if let Some(url) = https {
                builder = builder.https(url);
            }
            if let Some(url) = http {
                builder = builder.http(url);
            }
            if let Some(url) = all.clone() {
                builder = builder.all(url);
            }
            Arc::new(builder.build())
        });
        // A matcher for one proxy URL, with the environment's exceptions.
        let only = |url: String| Arc::new(Matcher::builder().all(url).no(no.clone()).build());
        let stream = all.map(only);
        Proxies {
            matcher: web,
            ftp: named(&["FTP_PROXY", "ftp_proxy"])
                .map(only)
                .or_else(|| stream.clone()),
            stream,
            skip_loopback: true,
            foreign: foreign.into_inner(),
        }
    }

    /// Every request through the proxy at `url` (`http://[user:pass@]host[:port]`, or
    /// `socks5://` or `socks5h://` with the same parts), except to the hosts `no_proxy` lists
    /// (`NO_PROXY` syntax: comma-separated names, domain suffixes, addresses and networks; `*` for
    /// all).
    ///
    /// # Errors
    /// `url` is not an `http`, `socks5` or `socks5h` URL with a host (HTTPS proxies are not
    /// supported).
    pub fn to(url: &str, no_proxy: &str) -> Result<Proxies, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("the proxy URL {url:?} is not a URL: {e}"))?;
        if !matches!(uri.scheme_str(), Some("http" | "socks5" | "socks5h")) || uri.host().is_none()
        {
            return Err(format!(
                "the proxy URL {url:?} must be http://, socks5:// or socks5h://host[:port] (HTTPS proxies are not supported)"
            ));
        }
        // One matcher for every use: the URL is the same proxy for each.
        let matcher = Arc::new(
            Matcher::builder()
                .all(url.to_owned())
                .no(no_proxy.to_owned())
                .build(),
        );
        Ok(Proxies {
            matcher: Some(matcher.clone()),
            ftp: Some(matcher.clone()),
            stream: Some(matcher),
            skip_loopback: false,
            foreign: Vec::new(),
        })
    }

    /// Where a request for `uri` connects: through a proxy, or `None` for straight to its host.
    pub(crate) fn route(&self, uri: &Uri) -> Option<Route> {
        self.route_by(self.matcher.as_ref()?, uri)
    }

    /// Where a connection to `host:port` for `what` goes: through a proxy, or `None` for straight
    /// to the host.
    pub(crate) fn route_raw(&self, what: RawUse, host: &str, port: u16) -> Option<Route> {
        let matcher = match what {
            RawUse::Ftp => self.ftp.as_ref(),
            RawUse::Stream => self.stream.as_ref(),
        }?;
        // The matcher's rules are written for URLs; an `http` one names the same host and port
        // (its scheme only picks between rules, and these matchers have one for all).
        let bare = crate::connect::bare_host(host);
        let authority = if bare.contains(':') {
            format!("[{bare}]:{port}")
        } else {
            format!("{bare}:{port}")
        };
        let uri = Uri::builder()
            .scheme("http")
            .authority(authority)
            .path_and_query("/")
            .build()
            .ok()?;
        self.route_by(matcher, &uri)
    }

    fn route_by(&self, matcher: &Matcher, uri: &Uri) -> Option<Route> {
        if self.skip_loopback && uri.host().is_some_and(is_loopback) {
            return None;
        }
        let intercept = matcher.intercept(uri)?;
        let proxy = intercept.uri();
        let host = crate::connect::bare_host(proxy.host()?).to_owned();
        let scheme = proxy.scheme_str().unwrap_or("http");
        let port = proxy.port_u16().unwrap_or(match scheme {
            "https" => 443,
            "http" => 80,
            _ => 1080,
        });
        let login = || {
            intercept
                .raw_auth()
                .map(|(user, pass)| (user.to_owned(), pass.to_owned()))
        };
        let kind = match scheme {
            // hyper-util hands an HTTP proxy's credentials over as a Basic header only.
            "http" => RouteKind::Http {
                login: intercept.basic_auth().and_then(basic_login),
            },
            "socks5" => RouteKind::Socks5 {
                remote_dns: false,
                login: login(),
            },
            "socks5h" => RouteKind::Socks5 {
                remote_dns: true,
                login: login(),
            },
            other => {
                let given = proxy.authority().map(|a| a.as_str().to_ascii_lowercase());
                let named = self
                    .foreign
                    .iter()
                    .find(|(authority, _)| given.as_deref() == Some(authority.as_str()))
                    .map_or(other, |(_, scheme)| scheme.as_str());
                RouteKind::Unsupported(named.to_owned())
            }
        };
        Some(Route {
            host,
            port,
            auth: intercept.basic_auth().cloned(),
            kind,
        })
    }
}

impl std::fmt::Debug for Proxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxies")
            .field("matcher", &self.matcher.is_some())
            .field("ftp", &self.ftp.is_some())
            .field("stream", &self.stream.is_some())
            .field("skip_loopback", &self.skip_loopback)
            .finish()
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = crate::connect::bare_host(host);
    crate::connect::is_localhost_name(bare)
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Has the proxy `route` names, at the other end of `tcp`, carry it on to `host:port`: a SOCKS5
/// connect (the proxy resolving the name for `socks5h`, this side for `socks5`), or an HTTP
/// proxy's `CONNECT` tunnel presenting `auth`. After it, the stream carries bytes to and from
/// the server. A name resolved here is resolved by `naming`.
pub(crate) async fn carry(
    mut tcp: TcpStream,
    route: &Route,
    host: &str,
    port: u16,
    auth: Option<&HeaderValue>,
    naming: &crate::connect::Naming,
) -> Result<TcpStream, ConnectFailure> {
    match &route.kind {
        RouteKind::Socks5 { remote_dns, login } => {
            let target = if *remote_dns {
                host.to_owned()
            } else {
                naming.first_address(host, port).await?
            };
            socks5(tcp, &target, port, login.as_ref()).await
        }
        RouteKind::Http { .. } => {
            tunnel(&mut tcp, host, port, auth).await?;
            Ok(tcp)
        }
        RouteKind::Unsupported(scheme) => Err(unsupported(host, scheme)),
    }
}

/// The failure of a connection whose proxy Courier cannot speak: never direct instead, as the
/// configuration wants it to go through a proxy.
pub(crate) fn unsupported(host: &str, scheme: &str) -> ConnectFailure {
    ConnectFailure::new(
        TransportErrorKind::ConnectionRefused,
        format!("the proxy for {host} is a {scheme} proxy, which Courier does not speak"),
        None,
    )
}

/// Has the SOCKS5 proxy at the other end of `stream` connect it to `host:port` (a name the proxy
/// resolves, or an address), presenting `login` when given. After it, the stream carries bytes to
/// and from the server.
pub(crate) async fn socks5(
    stream: TcpStream,
    host: &str,
    port: u16,
    login: Option<&(String, String)>,
) -> Result<TcpStream, ConnectFailure> {
    use hyper_util::client::legacy::connect::proxy::SocksV5;
    use hyper_util::rt::TokioIo;
    use tower_service::Service;

    // hyper-util's handshake takes a connector; this one hands over the connection made already.
    struct Made(Option<TcpStream>);
    impl Service<Uri> for Made {
        type Response = TokioIo<TcpStream>;
        type Error = io::Error;
        type Future = std::future::Ready<io::Result<TokioIo<TcpStream>>>;
        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: Uri) -> Self::Future {
            std::future::ready(
                self.0
                    .take()
                    .map(TokioIo::new)
                    .ok_or_else(|| io::Error::other("the connection was handed over already")),
            )
        }
    }

    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let target: Uri = format!("socks://{authority}").parse().map_err(|e| {
        ConnectFailure::new(
            TransportErrorKind::InvalidUrl,
            format!("cannot name {authority} to a SOCKS proxy: {e}"),
            None,
        )
    })?;
    // The proxy's own URI is only passed back to `Made`, which ignores it.
    let mut socks = SocksV5::new(Uri::from_static("socks5://proxy"), Made(Some(stream)));
    if let Some((user, pass)) = login {
        socks = socks.with_auth(user.clone(), pass.clone());
    }
    match socks.call(target).await {
        Ok(io) => Ok(io.into_inner()),
        Err(e) => Err(ConnectFailure::new(
            TransportErrorKind::ConnectionRefused,
            format!("the SOCKS5 proxy did not connect to {authority}: {e}"),
            None,
        )),
    }
}

/// Asks the proxy at the other end of `stream` for a tunnel to `host:port`, and waits for its
/// `2xx`. After it, the stream carries bytes to and from the server.
pub(crate) async fn tunnel(
    stream: &mut TcpStream,
    host: &str,
    port: u16,
    auth: Option<&HeaderValue>,
) -> Result<(), ConnectFailure> {
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n").into_bytes();
    if let Some(auth) = auth {
        head.extend_from_slice(b"Proxy-Authorization: ");
        head.extend_from_slice(auth.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let lost = |e: io::Error| {
        ConnectFailure::new(
            TransportErrorKind::ConnectionRefused,
            format!("the proxy closed the tunnel to {authority}"),
            Some(e),
        )
    };
    stream.write_all(&head).await.map_err(lost)?;
    // Read byte by byte up to the blank line: whatever follows belongs to the server.
    let mut answer = Vec::with_capacity(256);
    while !answer.ends_with(b"\r\n\r\n") {
        if answer.len() >= MAX_CONNECT_RESPONSE {
            return Err(ConnectFailure::new(
                TransportErrorKind::BadResponse,
                "the proxy's answer to CONNECT is too long",
                None,
            ));
        }
        let byte = stream.read_u8().await.map_err(lost)?;
        answer.push(byte);
    }
    let status = answer
        .split(|b| *b == b' ')
        .nth(1)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse::<u16>().ok());
    match status {
        Some(200..=299) => Ok(()),
        Some(407) => {
            let mut failure = ConnectFailure::new(
                TransportErrorKind::ProxyAuthenticationRequired,
                format!("the proxy wants credentials for the tunnel to {authority} (407)"),
                None,
            );
            failure.proxy_challenge = Some(Box::new(answer_headers(&answer)));
            Err(failure)
        }
        Some(code) => Err(ConnectFailure::new(
            TransportErrorKind::ConnectionRefused,
            format!("the proxy refused the tunnel to {authority} ({code})"),
            None,
        )),
        None => Err(ConnectFailure::new(
            TransportErrorKind::BadResponse,
            "the proxy's answer to CONNECT is not HTTP",
            None,
        )),
    }
}

/// The user and password a `Basic` authorization value carries.
fn basic_login(value: &HeaderValue) -> Option<(String, String)> {
    use base64::Engine as _;
    let encoded = value.to_str().ok()?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The header fields of a proxy's answer to `CONNECT` (its head, already bounded): lines after the
/// status line, as `name: value`. Lines that are not a valid field are left out.
fn answer_headers(answer: &[u8]) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    for line in answer.split(|b| *b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    /// The proxies of an environment holding only `vars`.
    fn env(vars: &'static [(&'static str, &'static str)]) -> Proxies {
        Proxies::from_vars(move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn an_explicit_proxy_routes_all_but_its_exceptions() {
        let p = Proxies::to("http://ann:pw@proxy.test:3128", "internal.test, 10.0.0.0/8").unwrap();
        let r = p.route(&uri("https://example.com/x")).expect("proxied");
        assert_eq!((r.host.as_str(), r.port), ("proxy.test", 3128));
        assert_eq!(r.auth.unwrap(), "Basic YW5uOnB3");
        assert!(p.route(&uri("http://example.com/")).is_some());
        assert!(p.route(&uri("http://api.internal.test/")).is_none());
        assert!(p.route(&uri("http://10.1.2.3/")).is_none());
        // An explicit proxy is used for loopback hosts too (a loopback proxy, in tests).
        assert!(p.route(&uri("http://127.0.0.1:8080/")).is_some());
    }

    #[test]
    fn the_environment_routes_ftp_by_ftp_proxy_else_all_proxy_and_streams_by_all_proxy() {
        let at = |route: Option<Route>| route.map(|r| (r.host, r.port));
        let web_only = env(&[("HTTPS_PROXY", "http://web.test:3128")]);
        assert!(web_only.route(&uri("https://example.com/")).is_some());
        assert!(at(web_only.route_raw(RawUse::Ftp, "example.com", 21)).is_none());
        assert!(at(web_only.route_raw(RawUse::Stream, "example.com", 25)).is_none());

        let all = env(&[
            ("https_proxy", "http://web.test:3128"),
            ("ALL_PROXY", "socks5h://all.test:1080"),
            ("NO_PROXY", "inside.test"),
        ]);
        let socks = Some(("all.test".to_owned(), 1080));
        assert_eq!(at(all.route_raw(RawUse::Ftp, "example.com", 21)), socks);
        assert_eq!(at(all.route_raw(RawUse::Stream, "example.com", 25)), socks);
        assert!(
            all.route_raw(RawUse::Ftp, "files.inside.test", 21)
                .is_none()
        );
        assert!(all.route_raw(RawUse::Stream, "127.0.0.1", 25).is_none());
        assert!(all.route_raw(RawUse::Ftp, "localhost", 21).is_none());

        let ftp = env(&[
            ("ftp_proxy", "http://ftp.test:8021"),
            ("all_proxy", "socks5h://all.test:1080"),
        ]);
        assert_eq!(
            at(ftp.route_raw(RawUse::Ftp, "[2001:db8::1]", 21)),
            Some(("ftp.test".to_owned(), 8021))
        );
        assert_eq!(at(ftp.route_raw(RawUse::Stream, "example.com", 25)), socks);

        // Under CGI the web proxies are left out (httpoxy), as hyper-util leaves them.
        let cgi = env(&[
            ("REQUEST_METHOD", "GET"),
            ("HTTP_PROXY", "http://injected.test"),
        ]);
        assert!(cgi.route(&uri("http://example.com/")).is_none());
        assert!(env(&[]).route(&uri("http://example.com/")).is_none());
    }

    #[test]
    fn a_proxy_courier_cannot_speak_is_refused_never_bypassed_nor_spoken_to_in_cleartext() {
        let refused = |route: Option<Route>| match route.map(|r| r.kind) {
            Some(RouteKind::Unsupported(scheme)) => Some(scheme),
            _ => None,
        };
        // TLS to the proxy: not spoken, and its credentials never go over cleartext.
        let tls = env(&[("HTTPS_PROXY", "https://ann:pw@proxy.test:443")]);
        assert_eq!(
            refused(tls.route(&uri("https://example.com/"))).as_deref(),
            Some("https")
        );
        // GNOME's `socks://` (curl's SOCKS4) and any other scheme hyper-util's matcher would drop,
        // sending every request direct; the exceptions still go direct.
        let gnome = env(&[
            ("all_proxy", "socks://127.0.0.9:1080/"),
            ("no_proxy", "inside.test"),
        ]);
        for route in [
            gnome.route(&uri("https://example.com/")),
            gnome.route(&uri("http://example.com/")),
            gnome.route_raw(RawUse::Ftp, "example.com", 21),
            gnome.route_raw(RawUse::Stream, "example.com", 25),
        ] {
            assert_eq!(refused(route).as_deref(), Some("socks"));
        }
        assert!(gnome.route(&uri("https://a.inside.test/")).is_none());
        let odd = env(&[("HTTP_PROXY", "Quic://User:pw@Proxy.test")]);
        assert_eq!(
            refused(odd.route(&uri("http://example.com/"))).as_deref(),
            Some("Quic")
        );
        // The schemes it speaks are untouched.
        let fine = env(&[("ALL_PROXY", "socks5h://proxy.test:1080")]);
        assert!(matches!(
            fine.route(&uri("https://example.com/")).map(|r| r.kind),
            Some(RouteKind::Socks5 {
                remote_dns: true,
                ..
            })
        ));
        let plain = env(&[("HTTPS_PROXY", "proxy.test:3128")]);
        assert!(matches!(
            plain.route(&uri("https://example.com/")).map(|r| r.kind),
            Some(RouteKind::Http { .. })
        ));
    }

    #[test]
    fn an_explicit_proxy_carries_ftp_and_streams_too() {
        let p = Proxies::to("socks5h://proxy.test", "internal.test").unwrap();
        assert!(p.route_raw(RawUse::Ftp, "example.com", 21).is_some());
        assert!(p.route_raw(RawUse::Stream, "127.0.0.1", 25).is_some());
        assert!(p.route_raw(RawUse::Ftp, "ftp.internal.test", 21).is_none());
        assert!(
            Proxies::none()
                .route_raw(RawUse::Ftp, "example.com", 21)
                .is_none()
        );
    }

    #[test]
    fn http_and_socks5_proxies_are_accepted() {
        assert!(Proxies::to("https://proxy.test", "").is_err());
        assert!(Proxies::to("socks4://proxy.test", "").is_err());
        assert!(Proxies::to("not a url", "").is_err());
        assert!(Proxies::to("http://proxy.test", "").is_ok());
        let socks = Proxies::to("socks5h://ann:p%40ss@proxy.test", "").unwrap();
        let r = socks.route(&uri("https://example.com/")).expect("proxied");
        assert_eq!((r.host.as_str(), r.port), ("proxy.test", 1080));
        assert!(r.auth.is_none(), "no Basic header for a SOCKS proxy");
        match r.kind {
            RouteKind::Socks5 { remote_dns, login } => {
                assert!(remote_dns);
                assert_eq!(login, Some(("ann".to_owned(), "p@ss".to_owned())));
            }
            other => panic!("{other:?}"),
        }
        let local = Proxies::to("socks5://proxy.test:9050", "").unwrap();
        let r = local.route(&uri("http://example.com/")).unwrap();
        assert!(matches!(
            r.kind,
            RouteKind::Socks5 {
                remote_dns: false,
                login: None
            }
        ));
    }

    #[test]
    fn loopback_is_never_sent_to_the_environments_proxy() {
        for host in [
            "localhost",
            "127.0.0.1",
            "127.8.9.10",
            "[::1]",
            "LOCALHOST",
            "app.localhost",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        assert!(!is_loopback("example.com") && !is_loopback("10.0.0.1"));
        assert!(Proxies::none().route(&uri("http://example.com/")).is_none());
    }
}
