//! `Configuration`: how a session behaves (`URLSessionConfiguration`).
//!
//! A plain struct with public fields and documented defaults. `Clone` is the deep copy URLSession makes:
//! a session keeps its own copy, so changing the caller's value later has no effect on it.

use crate::stores::StoreChoice;
use std::path::PathBuf;
use std::time::Duration;

use courier_delegates::CachePolicy;
pub use courier_protocol_http::{IpVersion, TlsVersion};
use http::HeaderMap;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Which kind of session a configuration makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionKind {
    /// `.default`: may persist cookies, credentials and cache on disk.
    Default,
    /// `.ephemeral`: keeps cookies, credentials and cache in memory only; downloads in progress live
    /// in a private temporary directory that is removed with the session.
    Ephemeral,
    /// `.background(withIdentifier:)`: the tasks run in the per-user background service
    /// ([`crate::background`]), which goes on while the application is gone.
    Background,
}

/// Which requests go through an HTTP proxy (`connectionProxyDictionary`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Proxy {
    /// The proxies the environment names, read when the session is created, as curl reads them:
    /// `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY`, upper or lower case (a
    /// `socks5://` or `socks5h://` URL names a SOCKS5 proxy, as [`Proxy::Socks5`]); `ftp:` takes
    /// `FTP_PROXY`, else `ALL_PROXY`, and stream tasks `ALL_PROXY`. Loopback hosts always go
    /// direct. A proxy of a kind Courier does not speak (`https://`, `socks4://`, `socks://`, any
    /// other scheme) fails the requests it would carry rather than let them go direct. The
    /// default, as URLSession follows the system's proxy settings.
    #[default]
    FromEnvironment,
    /// Every request through the HTTP proxy at `url` (`http://[user:pass@]host[:port]`; the
    /// credentials go to the proxy only, as Basic; `ftp:` and stream tasks through a `CONNECT`
    /// tunnel), except to the hosts `no_proxy` lists
    /// (`NO_PROXY` syntax: comma-separated names, domain suffixes, addresses, networks; `*`).
    Http {
        /// The proxy's URL.
        url: String,
        /// Hosts that go direct.
        no_proxy: String,
    },
    /// Every request through the SOCKS5 proxy at `url` (`socks5h://[user:pass@]host[:port]`: the
    /// proxy resolves host names; `socks5://`: they are resolved here), except to the hosts
    /// `no_proxy` lists. The proxy carries the connection, so `https` runs to the server inside it;
    /// the credentials go to the proxy only (RFC 1929).
    Socks5 {
        /// The proxy's URL.
        url: String,
        /// Hosts that go direct.
        no_proxy: String,
    },
    /// No proxy at all.
    Direct,
}

impl Proxy {
    /// The transport's proxy rules for this setting.
    ///
    /// # Errors
    /// A proxy URL of the wrong kind for its variant, or not a URL with a host (-1000).
    pub(crate) fn routes(&self) -> Result<courier_protocol_http::proxy::Proxies, crate::Error> {
        use courier_protocol_http::proxy::Proxies;
        let (url, no_proxy, fits, wanted) = match self {
            Proxy::FromEnvironment => return Ok(Proxies::from_env()),
            Proxy::Direct => return Ok(Proxies::none()),
            // Each variant takes its own kind of URL: a SOCKS URL in `Http` is a mistake worth
            // naming, not a proxy to guess at.
            Proxy::Http { url, no_proxy } => (
                url,
                no_proxy,
                url.starts_with("http://"),
                "Proxy::Http takes an http:// URL",
            ),
            Proxy::Socks5 { url, no_proxy } => (
                url,
                no_proxy,
                url.starts_with("socks5://") || url.starts_with("socks5h://"),
                "Proxy::Socks5 takes a socks5:// or socks5h:// URL",
            ),
        };
        let bad = |why: String| crate::Error::new(crate::ErrorCode::BadUrl, why).with_url(url);
        if !fits {
            return Err(bad(wanted.to_owned()));
        }
        Proxies::to(url, no_proxy).map_err(bad)
    }
}

/// Which cookies a session accepts (`HTTPCookie.AcceptPolicy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CookieAcceptPolicy {
    /// Every cookie a response sets.
    Always,
    /// None.
    Never,
    /// Only cookies set by the task's main document's domain or its subdomains (the default).
    /// The main document is the task's original request.
    #[default]
    OnlyFromMainDocumentDomain,
}

/// Which hosts may be reached over cleartext `http://` (App Transport Security's role).
///
/// Secure by default: `http://` URLs fail with
/// [`ErrorCode::AppTransportSecurityRequiresSecureConnection`](crate::ErrorCode) unless allowed here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CleartextPolicy {
    /// Only `https://` (the default).
    #[default]
    Deny,
    /// `http://` to any host.
    AllowAll,
    /// `http://` to these hosts only (compared case-insensitively; IPv6 literals without brackets).
    AllowHosts(Vec<String>),
}

impl CleartextPolicy {
    /// Whether cleartext HTTP to `host` is allowed.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        match self {
            CleartextPolicy::Deny => false,
            CleartextPolicy::AllowAll => true,
            CleartextPolicy::AllowHosts(hosts) => hosts.iter().any(|h| {
                h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .eq_ignore_ascii_case(host)
            }),
        }
    }

    /// Adds one host to the allowed ones (`Deny` becomes a one-host list; `AllowAll` stays).
    pub fn allow_host(&mut self, host: impl Into<String>) {
        match self {
            CleartextPolicy::Deny => *self = CleartextPolicy::AllowHosts(vec![host.into()]),
            CleartextPolicy::AllowAll => {}
            CleartextPolicy::AllowHosts(hosts) => hosts.push(host.into()),
        }
    }
}

/// A session's settings.
///
/// # Defaults
/// | field | `default()` | `ephemeral()` |
/// |---|---|---|
/// | `timeout_for_request` | 60 s (idle) | same |
/// | `timeout_for_resource` | 7 days | same |
/// | `timeout_for_connect` | `None`: `timeout_for_request` | same |
/// | `given_addresses` | none (DNS answers) | same |
/// | `http1_only` | false (HTTP/2 where a server offers it) | same |
/// | `ip_version` | `None` (IPv6 and IPv4, raced) | same |
/// | `http_additional_headers` | none | same |
/// | `http_maximum_connections_per_host` | 6 | same |
/// | `extra_root_certificates` | none (Mozilla's roots only) | same |
/// | `cleartext` | [`CleartextPolicy::Deny`] | same |
/// | `http_maximum_redirects` | 20 | same |
/// | `request_cache_policy` | use the protocol's (RFC 9111) | same |
/// | `url_cache_memory_capacity` | 4 MiB | same |
/// | `url_cache_disk_capacity` | 20 MiB (in the session directory) | 0 (memory only) |
/// | `http_should_set_cookies` | true (kept in the session directory) | true (kept in memory) |
/// | `http_cookie_accept_policy` | only from the main document's domain | same |
/// | `maximum_receive_rate_per_task` | `None` (no limit) | same |
/// | `maximum_send_rate_per_task` | `None` (no limit) | same |
/// | `maximum_decompression_ratio` | 200 (checked past 16 MiB decoded) | same |
/// | `maximum_body_length` | `None` (no limit) | same |
/// | `proxy` | [`Proxy::FromEnvironment`] | same |
/// | `tls_minimum_version` | [`TlsVersion::Tls12`] | same |
/// | `tls_maximum_version` | [`TlsVersion::Tls13`] | same |
/// | `partial_download_lifetime` | 7 days | (the directory goes with the session) |
/// | `is_discretionary` | false (background sessions only) | same |
/// | `wait_for_connectivity` | false | same |
/// | `ftp_explicit_tls` | false | same |
/// | `deliver_informational_responses` | false | same |
/// | `expect_continue_threshold` | 1 MiB | same |
/// | `expect_continue_timeout` | 1 s | same |
/// | `protocol_handlers` | none | same |
/// | `session_directory` | `None`: `<data dir>/courier/sessions/default` | `None`: a private directory in the system's temporary directory, removed with the session |
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Configuration {
    kind: SessionKind,
    /// A background session's identifier.
    identifier: Option<String>,
    /// The session directory has one holder at a time, which names its own partial files (the
    /// background service's sessions); see `SessionDirectory::unowned`.
    pub(crate) directory_held_alone: bool,
    /// A background session's service socket (`None`: the user's, in
    /// [`crate::background::wire::socket_dir`]).
    pub background_service: Option<std::path::PathBuf>,
    /// A background session's service program, started (as `PROGRAM daemon`) when no service
    /// answers (`None`: `COURIER_DAEMON`, else the `courier` beside the application, else
    /// `courier` on `PATH`).
    pub background_daemon: Option<std::path::PathBuf>,
    /// `isDiscretionary`, for background sessions: their tasks run only when no other task of the
    /// service waits for its turn (URLSession also waits for power and Wi-Fi; Courier's service
    /// knows neither). Ignored by other sessions.
    pub is_discretionary: bool,
    /// `timeoutIntervalForRequest`: an idle timeout. It restarts whenever data arrives or an
    /// upload's body bytes are taken (looked at every eighth of the timeout), and does not run while
    /// the task is suspended or waiting for its delegate. A request's own timeout wins.
    pub timeout_for_request: Duration,
    /// `timeoutIntervalForResource`: how long a whole task may take from its start, in wall-clock
    /// time: waiting for the delegate, for the rate limit or for a slow reader counts, time
    /// suspended does not. On expiry the task fails with -1001 (a download with resume data).
    pub timeout_for_resource: Duration,
    /// The longest opening a connection may take: the name lookup, TCP, a proxy's tunnel and the
    /// TLS handshake; past it the task fails with -1001. `None` bounds it by
    /// `timeout_for_request`, as URLSession bounds connecting: URLSession has no connect timeout
    /// of its own, and this is curl's `--connect-timeout` and reqwest's `connect_timeout`, for a
    /// host that is down to fail fast without shortening the idle timeout of a slow transfer. A
    /// background session's service opens its connections with its own setting.
    pub timeout_for_connect: Option<Duration>,
    /// Addresses to connect to for a host and port instead of asking DNS, keyed by the host in
    /// lowercase (an IPv6 literal without its brackets) and the port: curl's `--resolve`,
    /// reqwest's `resolve`. The request keeps its host: `Host`, TLS's server name and the
    /// certificate check are the host's, so a test or a migration can reach one server under
    /// its real name. Through a proxy it is the proxy's address that is given, when it is keyed,
    /// and a `socks5://` proxy (which is handed addresses) is handed the target's given address.
    /// URLSession has no such setting (it follows the system's resolver). A background session's
    /// service resolves with DNS.
    pub given_addresses: std::collections::HashMap<(String, u16), Vec<std::net::IpAddr>>,
    /// Connect over this IP version only (curl's `-4` and `-6`): addresses of the other, given or
    /// resolved, are left out, and a host with none of this version fails with -1003. `None`, the
    /// default, uses both, IPv6 and IPv4 raced (happy eyeballs). It applies to every address a
    /// connection takes: the server's, a proxy's, and the one a `socks5://` proxy is handed.
    /// URLSession has no such setting. A background session's service uses both.
    pub ip_version: Option<IpVersion>,
    /// HTTPS asks for HTTP/1.1 alone, never HTTP/2 (curl's `--http1.1`, reqwest's
    /// `http1_only`): for a server or a middlebox whose HTTP/2 misbehaves. URLSession has no such
    /// setting. A background session's service keeps its own.
    pub http1_only: bool,
    /// `httpAdditionalHeaders`: sent with every request, under the request's own headers (a request
    /// header replaces one of the same name, compared case-insensitively).
    pub http_additional_headers: HeaderMap,
    /// `httpMaximumConnectionsPerHost`: a hard cap on HTTP/1.1 connections per host. HTTP/2 uses one
    /// connection per host and ignores it.
    ///
    /// Running tasks beyond the cap wait in the host's line, highest `priority` first, then oldest
    /// first. A task waiting there is an entry of its session, about 1 KB: its actor and transfer
    /// are made when its turn comes, so 10,000 queued at once take about 10 MB. The exception is a
    /// data task's `GET` that the URL cache may answer (it holds a response for the URL in memory,
    /// or keeps responses on disk): it asks the cache before it takes a turn, so it waits with its
    /// actor and transfer, about 13 KB.
    pub http_maximum_connections_per_host: usize,
    /// Certificate authorities trusted besides Mozilla's roots (DER). See
    /// [`Configuration::trust_pem_certificates`].
    ///
    /// A server whose own certificate is one of these is trusted too, for the names the
    /// certificate covers and while it is in date: a self-signed certificate, as
    /// `openssl req -x509` makes it (marked as a CA), works once given here, as it does with
    /// URLSession's anchor certificates and `curl --cacert`. (webpki alone refuses a CA's
    /// certificate as a server's.)
    pub extra_root_certificates: Vec<CertificateDer<'static>>,
    /// Which hosts may be reached over cleartext `http://`. Also applies to redirects: one from
    /// `https://` to a host not allowed here fails with -1022.
    pub cleartext: CleartextPolicy,
    /// `httpShouldSetCookies`: send stored cookies with requests. As in URLSession, false stops
    /// the sending only: cookies that responses set are still stored (the accept policy decides).
    pub http_should_set_cookies: bool,
    /// `httpCookieAcceptPolicy`: which cookies responses may store (a shared storage's own
    /// [`CookieStorage::accept_policy`](crate::CookieStorage::accept_policy) applies too).
    pub http_cookie_accept_policy: CookieAcceptPolicy,
    /// `httpCookieStorage`: the session's own (kept in its session directory by a default session,
    /// in memory by an ephemeral one), a [`CookieStorage`](crate::CookieStorage) shared with
    /// others, or none.
    pub http_cookie_storage: StoreChoice<crate::CookieStorage>,
    /// `urlCredentialStorage`: where credentials servers accepted are kept and challenges look
    /// first: the session's own, a shared [`CredentialStorage`](crate::CredentialStorage), or none.
    pub url_credential_storage: StoreChoice<crate::CredentialStorage>,
    /// `urlCache`: the session's own (sized by the two capacities below), a shared
    /// [`UrlCache`](crate::UrlCache), or none.
    pub url_cache: StoreChoice<crate::UrlCache>,
    /// `requestCachePolicy`: how requests use the URL cache (a request's own policy wins).
    pub request_cache_policy: CachePolicy,
    /// The session's own URL cache's memory capacity, in bytes (0 turns it off). An entry counts
    /// its body, its headers, its URL and a fixed part for its structures, so the capacity bounds
    /// what the cache holds however small its responses are. A response larger than a twentieth
    /// of the capacity is not cached.
    pub url_cache_memory_capacity: usize,
    /// The session's own URL cache's disk capacity, in bytes, in the session directory (0 for
    /// none; an ephemeral session writes no cache). Responses go to disk in the background, one
    /// writer at a time and without a sync: a cache entry lost to a power cut costs a fetch. The
    /// writer also encodes them, so the task that received a response does not. The
    /// files are indexed when the cache first reads its directory, so a response another process
    /// stores there afterwards is seen by a later session only.
    pub url_cache_disk_capacity: usize,
    /// Deliver 1xx responses (103 Early Hints among them) to the delegate's
    /// `did_receive_informational_response`. URLSession calls that method when the delegate
    /// implements it; Rust cannot ask a delegate that, and hooking every request for 1xx responses
    /// costs about 10% on small delegate-style tasks (`courier-bench --only tasks`), so a session
    /// that wants them says so here. Off by default.
    pub deliver_informational_responses: bool,
    /// `waitsForConnectivity`: a task whose host's network cannot be reached (no route, the
    /// network down) waits and tries again (the delegate told once,
    /// `task_is_waiting_for_connectivity`) until it can or the resource timeout passes, instead of
    /// failing at once with [`ErrorCode::NotConnectedToInternet`](crate::ErrorCode) (-1009).
    pub wait_for_connectivity: bool,
    /// `ftp:` URLs use explicit FTPS (`AUTH TLS`, RFC 4217): the login and every file move over TLS,
    /// with the session's trust, and a server that refuses TLS fails the task. Cleartext FTP, the
    /// default, is refused unless [`Configuration::cleartext`] allows the host. (URLSession has no
    /// FTPS; curl's `--ssl-reqd` is the model.)
    pub ftp_explicit_tls: bool,
    /// Uploads of at least this many bytes (or of unknown length) ask `Expect: 100-continue` and
    /// hold their body until the server says `100 Continue`, so a server that refuses them (a 401,
    /// a 413, a redirect) does not receive the body first; `None` never asks. Over HTTP/1.1 only
    /// (cleartext, or a TLS host already seen to speak it). Courier's addition: URLSession sends
    /// the header only when the application sets it (which works here too, at any size).
    pub expect_continue_threshold: Option<u64>,
    /// How long an upload waits for `100 Continue` before sending its body anyway (servers that
    /// ignore the header never answer it). curl waits 1 second too.
    pub expect_continue_timeout: Duration,
    /// How many redirects a task follows before it fails with
    /// [`ErrorCode::HttpTooManyRedirects`](crate::ErrorCode) (-1007). URLSession's limit is 20.
    pub http_maximum_redirects: usize,
    /// The most response body bytes per second each task receives (`None`: as fast as the network
    /// goes). Courier's addition, for tools like `curl --limit-rate`.
    pub maximum_receive_rate_per_task: Option<u64>,
    /// The most request body bytes per second each task sends (an upload's body, a data task's
    /// `http_body`, an `ftp:` upload; `None`: as fast as the network takes them). The bytes go in
    /// slices of about a sixteenth of a second's worth, so the server sees a steady rate. Courier's
    /// addition: `curl --limit-rate` caps both ways, and sets this and
    /// [`maximum_receive_rate_per_task`](Configuration::maximum_receive_rate_per_task) alike.
    pub maximum_send_rate_per_task: Option<u64>,
    /// How many times a gzip, deflate or br body may expand once more than 16 MiB came out of it;
    /// past this the task fails with
    /// [`ErrorCode::DataLengthExceedsMaximum`](crate::ErrorCode) (-1103): a decompression bomb.
    /// Courier's addition.
    pub maximum_decompression_ratio: u64,
    /// The longest response body a task takes, in bytes as delivered (decoded); `None`: no limit,
    /// as in URLSession. A response that announces a longer one (`Content-Length`, or a 206's
    /// full length) fails before its body is read, and a body that grows past it fails as it
    /// does, with [`ErrorCode::DataLengthExceedsMaximum`](crate::ErrorCode) (-1103), the error
    /// URLSession names for it. It bounds what [`Session::data`](crate::Session::data) holds in
    /// memory and what a download may put on disk. Courier's addition (curl's `--max-filesize`).
    /// A background session's service takes bodies of any length.
    pub maximum_body_length: Option<u64>,
    /// `connectionProxyDictionary`: which requests go through an HTTP proxy. An `https` request
    /// goes through a `CONNECT` tunnel, so the proxy sees only its host and port.
    pub proxy: Proxy,
    /// `tlsMinimumSupportedProtocolVersion`: the oldest TLS version accepted. URLSession's floor
    /// is TLS 1.0; Courier's is 1.2 (rustls speaks 1.2 and 1.3 only, as App Transport Security
    /// requires). A server that cannot meet it fails with -1200.
    pub tls_minimum_version: TlsVersion,
    /// `tlsMaximumSupportedProtocolVersion`: the newest TLS version offered (TLS 1.3 by default;
    /// [`TlsVersion::Tls12`] for a server whose TLS 1.3 is broken). A maximum older than the
    /// minimum makes [`Session::new`](crate::Session::new) fail.
    pub tls_maximum_version: TlsVersion,
    /// How long a partial download kept for resume data stays in a default session's directory
    /// after it was last written: older ones (of resume data never used, or of a process that
    /// died) are removed when a session on that directory starts, and resuming from them then
    /// fails with [`ErrorCode::FileDoesNotExist`](crate::ErrorCode) (-1100). Courier's addition:
    /// URLSession leaves this to the system, which clears temporary files now and then.
    pub partial_download_lifetime: Duration,
    /// Where the session writes its files (downloads in progress, their checkpoints). Courier's
    /// addition: URLSession picks a system location.
    ///
    /// A default session uses this directory itself (by default `<data dir>/courier/sessions/default`,
    /// shared by default sessions so that resume data outlives the process). An ephemeral session
    /// makes a private directory inside it (by default inside the system's temporary directory) and
    /// removes it once the session is invalidated and its downloaded files are released.
    pub session_directory: Option<PathBuf>,
    /// Application code that answers requests instead of the network (URLSession's
    /// `protocolClasses`), asked in this order; see [`ProtocolHandler`](crate::ProtocolHandler).
    /// Not used by background sessions.
    pub protocol_handlers: Vec<std::sync::Arc<dyn crate::ProtocolHandler>>,
}

impl Default for Configuration {
    fn default() -> Configuration {
        Configuration {
            kind: SessionKind::Default,
            identifier: None,
            directory_held_alone: false,
            background_service: None,
            background_daemon: None,
            is_discretionary: false,
            timeout_for_request: Duration::from_secs(60),
            timeout_for_connect: None,
            given_addresses: std::collections::HashMap::new(),
            ip_version: None,
            http1_only: false,
            timeout_for_resource: Duration::from_secs(7 * 24 * 60 * 60),
            http_additional_headers: HeaderMap::new(),
            http_maximum_connections_per_host: 6,
            extra_root_certificates: Vec::new(),
            cleartext: CleartextPolicy::Deny,
            http_maximum_redirects: 20,
            wait_for_connectivity: false,
            ftp_explicit_tls: false,
            deliver_informational_responses: false,
            expect_continue_threshold: Some(1 << 20),
            expect_continue_timeout: Duration::from_secs(1),
            request_cache_policy: CachePolicy::UseProtocolCachePolicy,
            url_cache_memory_capacity: 4 << 20,
            url_cache_disk_capacity: 20 << 20,
            http_should_set_cookies: true,
            http_cookie_accept_policy: CookieAcceptPolicy::OnlyFromMainDocumentDomain,
            http_cookie_storage: StoreChoice::Own,
            url_credential_storage: StoreChoice::Own,
            url_cache: StoreChoice::Own,
            maximum_receive_rate_per_task: None,
            maximum_send_rate_per_task: None,
            maximum_decompression_ratio: 200,
            maximum_body_length: None,
            proxy: Proxy::FromEnvironment,
            tls_minimum_version: TlsVersion::Tls12,
            tls_maximum_version: TlsVersion::Tls13,
            partial_download_lifetime: Duration::from_secs(7 * 24 * 60 * 60),
            session_directory: None,
            protocol_handlers: Vec::new(),
        }
    }
}

impl Configuration {
    /// The largest `http_maximum_connections_per_host` a session takes.
    pub const MAX_CONNECTIONS_PER_HOST: usize = 65_536;

    /// Checks the settings that have a range; `Session::new` refuses a configuration outside it.
    ///
    /// # Errors
    /// `http_maximum_connections_per_host` is 0 or above [`Configuration::MAX_CONNECTIONS_PER_HOST`].
    pub fn check(&self) -> Result<(), crate::Error> {
        let n = self.http_maximum_connections_per_host;
        if !(1..=Configuration::MAX_CONNECTIONS_PER_HOST).contains(&n) {
            return Err(crate::Error::new(
                crate::ErrorCode::Unknown,
                format!(
                    "{n} connections per host: between 1 and {} are allowed",
                    Configuration::MAX_CONNECTIONS_PER_HOST
                ),
            ));
        }
        Ok(())
    }

    /// `.ephemeral`: like `default()`, but the session persists nothing: its download files live in
    /// a private temporary directory removed with the session.
    pub fn ephemeral() -> Configuration {
        Configuration {
            kind: SessionKind::Ephemeral,
            url_cache_disk_capacity: 0,
            ..Configuration::default()
        }
    }

    /// `.background(withIdentifier:)`: a session whose tasks run in the background service, which
    /// goes on while the application is gone and hands the results to the next session made with
    /// the same `identifier` (replayed, then `did_finish_events_for_background_session`).
    ///
    /// URLSession's rules hold, each checked when a task is created (a [`CreateTaskError`] and
    /// nothing queued): download tasks, and upload tasks from a file, only; a delegate is
    /// required (no completion forms, no byte streams); http and https only.
    ///
    /// What differs from a default session, as in URLSession:
    /// - Redirects are followed without asking the delegate.
    /// - A timeout or lost connection (or a 408, 429, 500, 502, 503 or 504 answer) is retried,
    ///   after the server's `Retry-After` or an exponential backoff, until
    ///   [`timeout_for_resource`](Configuration::timeout_for_resource) (counted from the task's
    ///   creation); a download continues from its partial file.
    /// - Tasks wait their turn in the service's queue (see [`is_discretionary`](Configuration::is_discretionary),
    ///   `TaskInfo::set_priority` and `TaskInfo::set_earliest_begin_date`).
    /// - Each event is acknowledged once its delegate method has returned. An application killed
    ///   inside a callback gets that one event again at its next session with the identifier (a
    ///   finished download's file too, if the delegate had not moved it yet); no other event is
    ///   delivered twice, and none is lost.
    /// - `all_tasks` hands out the identifier's tasks that have not completed, also those an
    ///   earlier life of the application created.
    /// - `invalidate_and_cancel` cancels the identifier's tasks in the service (their
    ///   completions reach the next session); `finish_tasks_and_invalidate` and dropping the
    ///   session only detach, and the tasks go on. If the service goes away, the session becomes
    ///   invalid with -997 (`BackgroundSessionWasDisconnected`).
    /// - The service runs each task under the settings of the session that created it, on top of
    ///   its own: the [`cleartext`](Configuration::cleartext) hosts and
    ///   [`extra_root_certificates`](Configuration::extra_root_certificates) widen the service's,
    ///   and [`timeout_for_request`](Configuration::timeout_for_request),
    ///   [`maximum_receive_rate_per_task`](Configuration::maximum_receive_rate_per_task),
    ///   [`maximum_send_rate_per_task`](Configuration::maximum_send_rate_per_task) and
    ///   [`http_maximum_connections_per_host`](Configuration::http_maximum_connections_per_host),
    ///   where changed from their defaults, replace its own (they are journaled with the task, so a
    ///   restarted service keeps them). The other fields are the service's. While an identifier
    ///   has unfinished tasks, creating one under other settings fails (a [`CreateTaskError`]
    ///   saying so): one session of the service runs them, and a session's settings cannot change.
    ///   Challenges get the service's default handling, as the application's delegate may be
    ///   gone ([`background::wire::SessionSettings`](crate::background::wire::SessionSettings)
    ///   carries the answers `courier bg download --insecure` and `--user` give instead).
    ///
    /// [`CreateTaskError`]: crate::CreateTaskError
    pub fn background(identifier: impl Into<String>) -> Configuration {
        Configuration {
            kind: SessionKind::Background,
            identifier: Some(identifier.into()),
            ..Configuration::default()
        }
    }

    /// Which kind of session this configuration makes.
    pub fn kind(&self) -> SessionKind {
        self.kind
    }

    /// A background session's identifier.
    pub fn identifier(&self) -> Option<&str> {
        self.identifier.as_deref()
    }

    /// Trusts every certificate in a PEM file's contents as a root. Returns how many were added.
    ///
    /// # Errors
    /// The text holds no certificate, or one that does not parse.
    pub fn trust_pem_certificates(&mut self, pem: &[u8]) -> Result<usize, crate::Error> {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| {
                crate::Error::new(crate::ErrorCode::Unknown, "unreadable PEM certificate")
                    .with_source(e.to_string())
            })?;
            self.extra_root_certificates.push(cert);
            added += 1;
        }
        if added == 0 {
            return Err(crate::Error::new(
                crate::ErrorCode::Unknown,
                "no certificate found in the PEM text",
            ));
        }
        Ok(added)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_urlsession() {
        let c = Configuration::default();
        assert_eq!(c.timeout_for_request, Duration::from_secs(60));
        assert_eq!(c.timeout_for_resource, Duration::from_secs(604_800));
        assert_eq!(c.http_maximum_connections_per_host, 6);
        assert_eq!(c.cleartext, CleartextPolicy::Deny);
        assert_eq!(Configuration::ephemeral().kind(), SessionKind::Ephemeral);
    }

    #[test]
    fn clone_is_a_deep_copy() {
        let mut a = Configuration::default();
        let b = a.clone();
        a.http_additional_headers
            .insert("x-a", http::HeaderValue::from_static("1"));
        assert!(b.http_additional_headers.is_empty());
    }

    #[test]
    fn cleartext_hosts() {
        let mut p = CleartextPolicy::Deny;
        assert!(!p.allows("localhost"));
        p.allow_host("LocalHost");
        assert!(p.allows("localhost"));
        assert!(!p.allows("example.com"));
        p.allow_host("::1");
        assert!(p.allows("[::1]"));
        assert!(CleartextPolicy::AllowAll.allows("anything"));
    }

    #[test]
    fn pem_without_certificates_is_an_error() {
        let mut c = Configuration::default();
        assert!(c.trust_pem_certificates(b"not pem").is_err());
        assert!(c.extra_root_certificates.is_empty());
    }
}
