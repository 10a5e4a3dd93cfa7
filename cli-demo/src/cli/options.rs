//! `Options`: what every command takes (the session's settings, the request's fields and body,
//! where output goes, how failures count), and which session configuration to start from.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::values::{parse_bytes, parse_delay, parse_range};

/// Which session configuration to use.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum ConfigKind {
    /// `Configuration::default()`.
    Default,
    /// `Configuration::ephemeral()`: nothing written to disk.
    Ephemeral,
}

/// Options shared by every command.
#[derive(Args, Debug)]
pub(crate) struct Options {
    /// Write every delegate event as JSON Lines to FILE (`-` for stderr).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) events: Option<String>,
    /// Session configuration.
    #[arg(long, global = true, value_enum, default_value = "default")]
    pub(crate) config: ConfigKind,
    /// Request header 'Name: value' (repeatable); as with curl, 'Name:' leaves the field out, one
    /// Courier would add too ('User-Agent:'; 'Expect:' turns off the 'Expect: 100-continue' sent
    /// before a large body), and 'Name;' sends it with an empty value.
    #[arg(short = 'H', long = "header", global = true, value_name = "HEADER")]
    pub(crate) headers: Vec<String>,
    /// Request method.
    #[arg(short = 'X', long = "request", global = true, value_name = "METHOD")]
    pub(crate) method: Option<String>,
    /// Request body, sent as it is (`--data-raw`: curl's name for that); repeated, the parts are
    /// joined with `&`, as curl joins them.
    #[arg(
        short = 'd',
        long,
        visible_alias = "data-raw",
        global = true,
        value_name = "TEXT"
    )]
    pub(crate) data: Vec<String>,
    /// A part of the body, URL-encoded as curl's --data-urlencode: `CONTENT`, `=CONTENT`,
    /// `NAME=CONTENT`, `@FILE` or `NAME@FILE` (repeatable; joined with `&` after the -d parts).
    #[arg(long = "data-urlencode", global = true, value_name = "DATA")]
    pub(crate) data_urlencode: Vec<String>,
    /// Send the -d and --data-urlencode parts as the URL's query of a GET, as curl's -G.
    #[arg(short = 'G', long = "get", global = true)]
    pub(crate) query: bool,
    /// The -d and --data-urlencode parts, joined (`request::join_data`, once per command).
    #[arg(skip)]
    pub(crate) data_text: Option<String>,
    /// `get --json`'s or `--data-binary`'s body (set from the `get` command's arguments, not
    /// options of every command: `bg list --json` is another one), and whether it is JSON.
    #[arg(skip)]
    pub(crate) body: Option<Vec<u8>>,
    #[arg(skip)]
    pub(crate) json: bool,
    /// The body's `Content-Type` where the command makes the body (`get -F`'s, naming its
    /// boundary); a field given with `-H` wins.
    #[arg(skip)]
    pub(crate) body_type: Option<String>,
    /// `get -F`'s fields, made into the body when the command runs (`form::apply`).
    #[arg(skip)]
    pub(crate) form: Vec<String>,
    /// A `-F` form too large to hold, streamed as each task's body (`form::apply`).
    #[arg(skip)]
    pub(crate) form_stream: Option<std::sync::Arc<crate::form::Form>>,
    /// Permit cleartext http:// (to all hosts, or to HOST; repeatable).
    #[arg(long = "allow-http", global = true, value_name = "HOST", num_args = 0..=1, default_missing_value = "*")]
    pub(crate) allow_http: Vec<String>,
    /// Trust this PEM certificate authority too.
    #[arg(long, global = true, value_name = "PEM")]
    pub(crate) cacert: Option<PathBuf>,
    /// The idle timeout, in seconds (default 60; 0 for none).
    #[arg(long = "timeout-request", global = true, value_name = "SECS")]
    pub(crate) timeout_request: Option<f64>,
    /// The longest opening a connection may take (name lookup, TCP, a proxy's tunnel, TLS), in
    /// seconds, as curl's --connect-timeout (default: the idle timeout; 0 for none).
    #[arg(long = "connect-timeout", global = true, value_name = "SECS")]
    pub(crate) connect_timeout: Option<f64>,
    /// The whole-task timeout, in seconds (default 7 days; 0 for none; `-m`, `--max-time`: curl's
    /// names).
    #[arg(
        short = 'm',
        long = "timeout-resource",
        visible_alias = "max-time",
        global = true,
        value_name = "SECS"
    )]
    pub(crate) timeout_resource: Option<f64>,
    /// Accept any server certificate: the server-trust challenge is answered with the certificate
    /// presented. For tests and private servers only.
    #[arg(short = 'k', long, global = true)]
    pub(crate) insecure: bool,
    /// Present this client certificate (PEM: the chain, leaf first) to servers that ask for one
    /// (mutual TLS), as the session-level client-certificate challenge's answer.
    #[arg(short = 'E', long, global = true, value_name = "PEM")]
    pub(crate) cert: Option<PathBuf>,
    /// The client certificate's private key (PEM, PKCS#8); default: in the --cert file.
    #[arg(long, global = true, value_name = "PEM", requires = "cert")]
    pub(crate) key: Option<PathBuf>,
    /// Answer authentication challenges (Basic, Digest) with this credential: only those of the
    /// URL's own origin (scheme, host, port), unless `--location-trusted`.
    #[arg(short = 'u', long = "user", global = true, value_name = "USER:PASS")]
    pub(crate) user: Option<String>,
    /// Answer each host's challenges (and log in to `ftp:` servers) with its login in
    /// `~/.netrc`, as curl's `-n`: a `machine` line's login goes to that host only, `default`'s to
    /// any other. `--user` wins.
    #[arg(short = 'n', long = "netrc", global = true)]
    pub(crate) netrc: bool,
    /// `-n` with this file instead of `~/.netrc` (which must be there).
    #[arg(long = "netrc-file", global = true, value_name = "FILE")]
    pub(crate) netrc_file: Option<PathBuf>,
    /// `-n`, if `~/.netrc` is there (curl's `--netrc-optional`; `-n` does the same here).
    #[arg(long = "netrc-optional", global = true)]
    pub(crate) netrc_optional: bool,
    /// The logins `-n` read (`netrc::load`, once per command).
    #[arg(skip)]
    pub(crate) netrc_logins: Option<std::sync::Arc<crate::netrc::Netrc>>,
    /// The most HTTP/1.1 connections per host (default 6; 1 to 65536).
    #[arg(
        long = "max-connections-per-host",
        global = true,
        value_name = "N",
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=65_536)
    )]
    pub(crate) max_connections_per_host: Option<usize>,
    /// Do not follow redirects: the 3xx is the final response.
    #[arg(long = "no-follow", global = true, conflicts_with = "location")]
    pub(crate) no_follow: bool,
    /// `get -o` and `download -o`: create the output file's missing directories first (curl's
    /// `--create-dirs`); without it, a missing directory fails before anything is fetched.
    #[arg(long = "create-dirs", global = true)]
    pub(crate) create_dirs: bool,
    /// Save files in DIR: `-o FILE` is DIR/FILE, and what `-O` and `download` name from the URL
    /// goes there (curl's `--output-dir`; with `--create-dirs`, DIR is made when missing).
    #[arg(long = "output-dir", global = true, value_name = "DIR")]
    pub(crate) output_dir: Option<PathBuf>,
    /// Send `Authorization: Bearer TOKEN` (curl's `--oauth2-bearer`): to the URL's own origin
    /// only, as every credential (a redirect elsewhere does not carry it).
    #[arg(long = "oauth2-bearer", global = true, value_name = "TOKEN")]
    pub(crate) oauth2_bearer: Option<String>,
    /// Follow redirects: what courier does anyway (accepted for curl's `-L`).
    #[arg(short = 'L', long, global = true)]
    pub(crate) location: bool,
    /// Answer challenges with `--user` on every host a redirect leads to, not only on the URL's own
    /// origin (curl's `--location-trusted`).
    #[arg(long = "location-trusted", global = true)]
    pub(crate) location_trusted: bool,
    /// The most redirects a task follows (default 20; `--max-redirs`, curl's name, too).
    #[arg(
        long = "max-redirects",
        visible_alias = "max-redirs",
        global = true,
        value_name = "N"
    )]
    pub(crate) max_redirects: Option<usize>,
    /// Take no body longer than SIZE bytes (suffixes k, m, g: 1024-based), as curl's
    /// `--max-filesize`: a response that announces a longer one fails before its body is read,
    /// one that grows past it fails then (-1103, the configuration's `maximum_body_length`).
    #[arg(long = "max-filesize", global = true, value_name = "SIZE", value_parser = parse_bytes)]
    pub(crate) max_filesize: Option<u64>,
    /// Cap each task's transfer rate both ways (its body received, its body sent, as curl's), in
    /// bytes per second (suffixes k, m, g: 1024-based).
    #[arg(long = "limit-rate", global = true, value_name = "RATE", value_parser = parse_bytes)]
    pub(crate) limit_rate: Option<u64>,
    /// Run up to N tasks at once (1 to 1024); `get` still writes each body whole, in the order of
    /// the URLs.
    #[arg(
        short = 'j',
        long = "parallel",
        visible_alias = "parallel-max",
        global = true,
        value_name = "N",
        default_value_t = 1,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024)
    )]
    pub(crate) parallel: usize,
    /// Run the tasks at once, up to 50 (or -j N), as curl's -Z.
    #[arg(short = 'Z', global = true)]
    pub(crate) parallel_default: bool,
    /// HTTPS asks for HTTP/1.1 alone, never HTTP/2 (curl's --http1.1).
    #[arg(long = "http1.1", global = true)]
    pub(crate) http1_only: bool,
    /// Connect over IPv4 only (curl's `-4`): a host without an IPv4 address is not found.
    #[arg(short = '4', long = "ipv4", global = true, conflicts_with = "ipv6")]
    pub(crate) ipv4: bool,
    /// Connect over IPv6 only (curl's `-6`): a host without an IPv6 address is not found.
    #[arg(short = '6', long = "ipv6", global = true)]
    pub(crate) ipv6: bool,
    /// Connect to ADDR for HOST:PORT instead of asking DNS, as curl's --resolve (repeatable;
    /// several addresses separated by commas, an IPv6 one in brackets). The request keeps its
    /// host: Host, TLS's server name and the certificate check are HOST's.
    #[arg(long = "resolve", global = true, value_name = "HOST:PORT:ADDR")]
    pub(crate) resolve: Vec<String>,
    /// Cookies as curl's -b: 'NAME=VALUE; NAME2=VALUE2' is sent with every request; a FILE (the
    /// Netscape format curl writes) seeds the command's cookies instead of the session's jar.
    #[arg(short = 'b', long = "cookie", global = true, value_name = "DATA|FILE")]
    pub(crate) cookie: Option<String>,
    /// Write every cookie to FILE when the command ends (curl's -c; the Netscape format, 0600);
    /// the command's cookies are then its own, not the session's jar.
    #[arg(short = 'c', long = "cookie-jar", global = true, value_name = "FILE")]
    pub(crate) cookie_jar: Option<PathBuf>,
    /// The cookies of `-b FILE` and `-c FILE` (`cookie_file::jar`, once per command).
    #[arg(skip)]
    pub(crate) jar: Option<std::sync::Arc<courier_engine::CookieStorage>>,
    /// Take `[]` and `{}` in the URLs as they are. Without it, as with curl, `{a,b}` and
    /// `[1-10]`, `[001-100]`, `[a-z]`, `[1-100:10]` in a URL given here make one URL per value
    /// (`\[` is a plain bracket), and `#1`, `#2`... in `-o` stand for the values.
    #[arg(short = 'g', long = "globoff", global = true)]
    pub(crate) globoff: bool,
    /// A URL to fetch besides those given as arguments (repeatable), as curl's --url.
    #[arg(long = "url", id = "more_urls", global = true, value_name = "URL")]
    pub(crate) url: Vec<String>,
    /// Exit 22 when the final HTTP status is 400 or above; the error's body is not kept.
    #[arg(short = 'f', long, global = true, conflicts_with = "fail_with_body")]
    pub(crate) fail: bool,
    /// Exit 22 when the final HTTP status is 400 or above, keeping the error's body as any
    /// other (curl's `--fail-with-body`).
    #[arg(long = "fail-with-body", global = true)]
    pub(crate) fail_with_body: bool,
    /// `get` only: ask for the head only (HEAD, unless `-X` names another method) and write the
    /// response's status line and header fields where the body would go (curl's `-I`).
    #[arg(short = 'I', long = "head", global = true)]
    pub(crate) head: bool,
    /// Show errors: what courier does anyway, even with `-s` (accepted for curl's `-S`, as in
    /// `-sSfL`).
    #[arg(short = 'S', long = "show-error", global = true)]
    pub(crate) show_error: bool,
    /// Send this User-Agent instead of courier's (`-H 'User-Agent: ...'` wins over it, as with
    /// curl).
    #[arg(short = 'A', long = "user-agent", global = true, value_name = "NAME")]
    pub(crate) user_agent: Option<String>,
    /// Show each response head and what happens on the way (redirects, challenges, each
    /// request's connection and TLS, how each task ended) on stderr, as curl's `-v` does.
    /// Request heads are not shown (the engine completes them after the last look).
    #[arg(short = 'v', long, global = true)]
    pub(crate) verbose: bool,
    /// `get` and `download`: try a task that failed for a transient reason again, up to N times
    /// (curl's and wget's habit): a timeout, a lost or refused connection, a name that did not
    /// resolve, or an HTTP 408, 429, 500, 502, 503 or 504 (whose body is then not kept). A
    /// download continues from its resume data; `get` tries again only while none of the body
    /// was written. Waits what the server's Retry-After asks, else 1 s, doubling up to 10
    /// minutes.
    #[arg(long, global = true, value_name = "N", default_value_t = 0)]
    pub(crate) retry: u32,
    /// Wait SECS before each retry instead of the doubling backoff (a server's Retry-After still
    /// wins).
    #[arg(long = "retry-delay", global = true, value_name = "SECS", value_parser = parse_delay)]
    pub(crate) retry_delay: Option<std::time::Duration>,
    /// With `--retry`: try again after any error (a refused certificate, a body too long...), and
    /// with `--fail` or `--fail-with-body` after any HTTP status of 400 or above, not only the
    /// transient ones (curl's `--retry-all-errors`). A task stopped by Ctrl-C is not tried again.
    #[arg(long = "retry-all-errors", global = true)]
    pub(crate) retry_all_errors: bool,
    /// Try a refused connection again: what `--retry` does anyway (accepted for curl's
    /// `--retry-connrefused`).
    #[arg(long = "retry-connrefused", global = true)]
    pub(crate) retry_connrefused: bool,
    /// `get`, `download` and `upload`: after each task, write FORMAT to standard output with
    /// curl's `%{name}` variables filled in (`%{http_code}`, `%{url_effective}`,
    /// `%{size_download}`, `%{time_total}`, `%header{NAME}`, `%{json}`...; `\n` a new line,
    /// `%%` a percent sign). `@FILE` reads FORMAT from FILE (`@-`: standard input). An unknown
    /// variable is a usage error
    #[arg(
        short = 'w',
        long = "write-out",
        global = true,
        value_name = "FORMAT",
        value_parser = crate::write_out::WriteOut::parse
    )]
    pub(crate) write_out: Option<crate::write_out::WriteOut>,
    /// `get`, `download` and `upload`: write each response head (redirects' too: the status line,
    /// the header fields, a blank line) to FILE, as curl's `-D`; `-` is standard output, where a
    /// task's heads go before its body.
    #[arg(short = 'D', long = "dump-header", global = true, value_name = "FILE")]
    pub(crate) dump_header: Option<std::path::PathBuf>,
    /// Send this Referer (`-H 'Referer: ...'` wins over it, as with curl).
    #[arg(short = 'e', long = "referer", global = true, value_name = "URL")]
    pub(crate) referer: Option<String>,
    /// `get` only: ask for these bytes of the body (`Range: bytes=RANGE`, curl's `-r`): `0-499`,
    /// `500-`, `-500` (the last 500), or several joined by commas. A server that ignores ranges
    /// sends the whole body (status 200, not 206).
    #[arg(
        short = 'r',
        long = "range",
        global = true,
        value_name = "RANGE",
        value_parser = parse_range,
        allow_hyphen_values = true
    )]
    pub(crate) range: Option<String>,
    /// Fetch only a body newer than DATE, or than FILE's modification time (curl's `-z`:
    /// `If-Modified-Since`); `-DATE` only one not newer (`If-Unmodified-Since`). DATE is an HTTP
    /// date, `YYYYMMDD`, `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SS`, in UTC. The server's 304 leaves the
    /// file you have as it is (`get -o FILE` is then the download of FILE).
    #[arg(
        short = 'z',
        long = "time-cond",
        global = true,
        value_name = "DATE|FILE",
        allow_hyphen_values = true
    )]
    pub(crate) time_cond: Option<String>,
    /// Fetch only a body whose entity tag is not the one on FILE's first line (`If-None-Match`);
    /// a missing or empty FILE asks for no condition. The server's 304 leaves the file you have
    /// as it is.
    #[arg(long = "etag-compare", global = true, value_name = "FILE")]
    pub(crate) etag_compare: Option<PathBuf>,
    /// Write the response's entity tag to FILE, for `--etag-compare` next time (a response
    /// without one leaves FILE as it is).
    #[arg(long = "etag-save", global = true, value_name = "FILE")]
    pub(crate) etag_save: Option<PathBuf>,
    /// Give each saved file the server's `Last-Modified` as its modification time (curl's `-R`).
    #[arg(short = 'R', long = "remote-time", global = true)]
    pub(crate) remote_time: bool,
    /// The fields `-z` and `--etag-compare` add to every request (`conditional::resolve`, once
    /// per command).
    #[arg(skip)]
    pub(crate) conditions: Vec<(
        courier_engine::reexports::http::HeaderName,
        courier_engine::reexports::http::HeaderValue,
    )>,
    /// Ask for a compressed body and decode it: what courier does anyway (gzip, deflate, br;
    /// accepted for curl's `--compressed`).
    #[arg(long, global = true)]
    pub(crate) compressed: bool,
    /// Read more URLs from FILE, one per line (`-` for stdin).
    #[arg(short = 'i', long = "input-file", global = true, value_name = "FILE")]
    pub(crate) input_file: Option<String>,
    /// No progress bars (`-s`, `--silent`: the same, as curl spells it).
    #[arg(
        short = 'q',
        long,
        global = true,
        visible_short_alias = 's',
        visible_alias = "silent"
    )]
    pub(crate) quiet: bool,
    /// Go through this proxy: HTTP (`http://[user:pass@]host[:port]`; https, ftp: and `stream`
    /// go through a CONNECT tunnel) or SOCKS5 (`socks5h://...`, the proxy resolves names;
    /// `socks5://...`, resolved here). Without it, the environment's HTTPS_PROXY, HTTP_PROXY,
    /// FTP_PROXY, ALL_PROXY and NO_PROXY apply.
    #[arg(short = 'x', long, global = true, value_name = "URL")]
    pub(crate) proxy: Option<String>,
    /// Refuse servers that cannot speak TLS 1.3 (the default accepts TLS 1.2 and 1.3).
    #[arg(long = "tlsv1.3", global = true)]
    pub(crate) tls13: bool,
    /// ftp:// URLs use explicit FTPS (AUTH TLS), with the session's trust (--cacert, --insecure);
    /// without it, ftp:// is cleartext and needs --allow-http.
    #[arg(long = "ftp-ssl", global = true)]
    pub(crate) ftp_ssl: bool,
    /// Hosts that bypass --proxy (comma-separated names, domain suffixes, addresses, networks).
    #[arg(long, global = true, value_name = "LIST", requires = "proxy")]
    pub(crate) noproxy: Option<String>,
    /// When the network cannot be reached (no route, the interface down), wait for it and go on
    /// (a `task_is_waiting_for_connectivity` event) instead of failing at once with -1009; the
    /// resource timeout still ends the wait.
    #[arg(long = "wait-for-connectivity", global = true)]
    pub(crate) wait_for_connectivity: bool,
}

impl Options {
    /// `--fail` or `--fail-with-body`: an HTTP status of 400 or above fails the command (exit 22).
    pub(crate) fn fails_on_status(&self) -> bool {
        self.fail || self.fail_with_body
    }
}
