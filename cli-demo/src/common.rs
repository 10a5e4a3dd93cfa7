//! What every command shares: the session configuration built from the options, the URLs, the
//! end of a session (every event written), and the exit status from the tasks' results. The
//! requests the options describe are [`crate::request`]'s.

use std::fs::File;
use std::io::{self, BufRead, BufWriter, Write};
use std::time::Duration;

use courier_engine::{Configuration, Session};
use tokio::sync::watch;

use crate::cli::{ConfigKind, Options};
use crate::events::Finished;
use crate::{ExitCode, Failure};

/// Builds the session configuration from the options.
pub(crate) fn configuration(options: &Options) -> Result<Configuration, Failure> {
    let mut config = match options.config {
        ConfigKind::Default => Configuration::default(),
        ConfigKind::Ephemeral => Configuration::ephemeral(),
    };
    for host in &options.allow_http {
        if host == "*" {
            config.cleartext = courier_engine::CleartextPolicy::AllowAll;
        } else {
            config.cleartext.allow_host(host.clone());
        }
    }
    if let Some(path) = &options.cacert {
        let pem = read_pem(path)?;
        config
            .trust_pem_certificates(&pem)
            .map_err(|e| Failure::usage(format!("{}: {}", path.display(), e.message())))?;
    }
    if let Some(secs) = options.timeout_request {
        config.timeout_for_request = seconds(secs)?;
    }
    config.http1_only = options.http1_only;
    config.ip_version = match (options.ipv4, options.ipv6) {
        (true, _) => Some(courier_engine::IpVersion::V4),
        (_, true) => Some(courier_engine::IpVersion::V6),
        _ => None,
    };
    for given in &options.resolve {
        let (key, addresses) = given_address(given)?;
        config
            .given_addresses
            .entry(key)
            .or_default()
            .extend(addresses);
    }
    if let Some(jar) = &options.jar {
        // `-b FILE`, `-c FILE`: the command's own cookies, not the session's jar (curl's).
        config.http_cookie_storage = courier_engine::StoreChoice::Shared(jar.clone());
    }
    if let Some(secs) = options.connect_timeout {
        config.timeout_for_connect = Some(seconds(secs)?);
    }
    config.maximum_body_length = options.max_filesize;
    config.maximum_receive_rate_per_task = options.limit_rate;
    config.maximum_send_rate_per_task = options.limit_rate;
    if let Some(n) = options.max_connections_per_host {
        config.http_maximum_connections_per_host = n;
    }
    if let Some(n) = options.max_redirects {
        config.http_maximum_redirects = n;
    }
    if let Some(secs) = options.timeout_resource {
        config.timeout_for_resource = seconds(secs)?;
    }
    config.wait_for_connectivity = options.wait_for_connectivity;
    // 1xx responses are an event of the stream (and cost every request a hook): asked for only
    // when the stream is written.
    config.deliver_informational_responses = options.events.is_some() || options.verbose;
    if options.tls13 {
        config.tls_minimum_version = courier_engine::TlsVersion::Tls13;
    }
    config.ftp_explicit_tls = options.ftp_ssl;
    if let Some(url) = &options.proxy {
        let (url, no_proxy) = (url.clone(), options.noproxy.clone().unwrap_or_default());
        config.proxy = if url.starts_with("http://") {
            courier_engine::Proxy::Http { url, no_proxy }
        } else if url.starts_with("socks5://") || url.starts_with("socks5h://") {
            courier_engine::Proxy::Socks5 { url, no_proxy }
        } else {
            return Err(Failure::usage(format!(
                "--proxy {url}: an http://, socks5:// or socks5h:// proxy URL is needed (HTTPS and SOCKS4 proxies are not supported)"
            )));
        };
    }
    Ok(config)
}

/// `--config ephemeral`: nothing of the session outlives the command (its resume data cannot
/// either: the partial files and the key that seals it go with the session).
pub(crate) fn ephemeral(options: &Options) -> bool {
    matches!(options.config, ConfigKind::Ephemeral)
}

/// Refuses resume-data options (`asked`) in an ephemeral session: its partial files and the key
/// that seals its resume data go with it.
pub(crate) fn resume_data_outlives_the_session(
    options: &Options,
    asked: bool,
) -> Result<(), Failure> {
    if asked && ephemeral(options) {
        return Err(Failure::usage(
            "resume data cannot outlive an ephemeral session (--config ephemeral keeps nothing on \
             disk): use the default configuration"
                .into(),
        ));
    }
    Ok(())
}

/// Writes resume data to `path` and says how to go on with it (`continue_with`, then
/// `--resume-data PATH`), or why it could not be written.
pub(crate) fn save_resume_data(
    data: &courier_engine::ResumeData,
    path: &std::path::Path,
    delegate: &crate::events::CliDelegate,
    continue_with: &str,
) {
    // Resume data is a secret (it names a file to append to, or to send): 0600, written aside and
    // renamed, never through a link planted at the name.
    let line = match courier_storage::write::replace(
        path,
        data.as_bytes(),
        courier_storage::Durability::Synced,
    ) {
        Ok(()) => format!(
            "courier: resume data saved to {}; continue with {continue_with} --resume-data {}",
            path.display(),
            path.display()
        ),
        Err(e) => format!(
            "courier: cannot save resume data to {}: {e}",
            path.display()
        ),
    };
    delegate.bars().println(&line);
}

/// `--user USER:PASS` as its user and password (no colon: the whole is the user, with no
/// password, as curl reads it).
pub(crate) fn user_and_password(user: &str) -> (&str, &str) {
    user.split_once(':').unwrap_or((user, ""))
}

/// A timeout option's seconds; `0` is no limit, as curl reads `-m 0` and `--connect-timeout 0`.
fn seconds(secs: f64) -> Result<Duration, Failure> {
    if secs == 0.0 {
        return Ok(Duration::MAX);
    }
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| Failure::usage(format!("not a usable number of seconds: {secs}")))
}

/// Creates (or empties) the file the command writes to (`-o`, `--events`). A symbolic link at the
/// name is replaced by the file, never written through, as `download` replaces one: a link planted
/// in a shared directory must not point the output at another file. A device or a FIFO (named,
/// or through links: `/dev/null`, `/dev/stdout`) is written into, as curl writes into it:
/// replacing it would destroy it.
pub(crate) fn create_output(path: &std::path::Path) -> io::Result<File> {
    // `/dev/null`, `/dev/stdout`, a FIFO: written into, never replaced.
    if let Some(stream) = courier_storage::write::open_stream_destination(path)? {
        return Ok(stream);
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    match courier_storage::write::open_no_follow(&mut options, path) {
        Err(_)
            if path
                .symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink()) =>
        {
            std::fs::remove_file(path)?;
            // Only where nothing is: a link planted again meanwhile fails the command.
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
        }
        opened => opened,
    }
}

/// Resolves when the command is asked to stop: Ctrl-C (SIGINT), or SIGTERM (`kill`, `timeout`,
/// a service manager). Both stop it as Ctrl-C does (downloads save their resume data, every
/// event is written); the exit status then says which (130 or 143, 128 and the signal). Until this
/// is first polled, SIGTERM ends the process as by default.
pub(crate) async fn stop_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => crate::STOPPED_BY.store(15, std::sync::atomic::Ordering::SeqCst),
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// `url` as the command shows it (the event stream, messages, listings): a password in it is
/// replaced by `***`, so that a log or a terminal never holds one (the request still carries it).
pub(crate) fn shown_url(url: &str) -> std::borrow::Cow<'_, str> {
    match courier_engine::reexports::url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string().into()
        }
        _ => url.into(),
    }
}

/// `text` as a message line shows it: whole up to 2,000 bytes, else its start and how much more
/// there was (a URL of megabytes, which no server takes, would fill the terminal).
fn abbreviated(text: &str) -> std::borrow::Cow<'_, str> {
    const SHOWN: usize = 2_000;
    if text.len() <= SHOWN {
        return text.into();
    }
    let cut = (0..=SHOWN)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}... ({} bytes more)", &text[..cut], text.len() - cut).into()
}

/// The most a PEM file an option names may hold: a system's whole CA bundle is a few hundred KiB.
const LARGEST_PEM: u64 = 16 << 20;

/// A PEM file an option names (`--cacert`, `--cert`, `--key`), at most [`LARGEST_PEM`] bytes.
fn read_pem(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    crate::cli::read_bounded_file(path, LARGEST_PEM).map_err(|e| match e {
        crate::cli::TooLong::Read(why) => Failure::usage(why),
        crate::cli::TooLong::Over(max) => Failure::usage(format!(
            "{} is larger than {} MiB: not a PEM file",
            path.display(),
            max >> 20
        )),
    })
}

/// `--cert` and `--key` as a client identity (the key in the certificate's file without `--key`).
pub(crate) fn client_identity(
    options: &Options,
) -> Result<Option<courier_engine::Credential>, Failure> {
    let Some(cert) = &options.cert else {
        return Ok(None);
    };
    let chain = read_pem(cert)?;
    let key = match &options.key {
        Some(key) => read_pem(key)?,
        None => chain.clone(),
    };
    courier_engine::identity_from_pem(&chain, &key)
        .map(Some)
        .map_err(|e| Failure::usage(format!("--cert {}: {}", cert.display(), e.message())))
}

/// `--user` as the login of the `ftp://` servers among `urls` (those that name no user): FTP has
/// no challenge before its login, so the credential goes to the session's store (for this run
/// only) as the server's default credential, which the engine tries first (curl's `--user`).
pub(crate) fn ftp_logins<'a>(
    session: &courier_engine::Session,
    urls: impl IntoIterator<Item = &'a str>,
    options: &Options,
) {
    let Some(store) = session.credential_storage() else {
        return;
    };
    let given = options
        .user
        .as_deref()
        .map(|u| u.split_once(':').unwrap_or((u, "")));
    if given.is_none() && options.netrc_logins.is_none() {
        return;
    }
    for url in urls {
        let Ok(url) = courier_engine::reexports::url::Url::parse(url) else {
            continue;
        };
        if url.scheme() != "ftp" || !url.username().is_empty() {
            continue;
        }
        let space = courier_engine::ProtectionSpace {
            host: url.host_str().unwrap_or("").to_owned(),
            port: url.port().unwrap_or(21),
            protocol: "ftp".to_owned(),
            realm: None,
            method: courier_engine::AuthenticationMethod::Default,
            proxy_type: None,
        };
        // `--user`, else the host's login in `.netrc` (`-n`).
        let netrc = options
            .netrc_logins
            .as_ref()
            .and_then(|n| n.login_for(&space.host))
            .map(|l| (l.user.as_str(), l.password.as_str()));
        let Some((user, password)) = given.or(netrc) else {
            continue;
        };
        let login = courier_engine::Credential::password(
            user,
            password,
            courier_engine::CredentialPersistence::ForSession,
        );
        store.set(&space, login);
    }
}

/// Reads `--resolve HOST:PORT:ADDR[,ADDR]...` as curl does (an IPv6 address in brackets).
fn given_address(text: &str) -> Result<((String, u16), Vec<std::net::IpAddr>), Failure> {
    let bad = || {
        Failure::usage(format!(
            "--resolve {text:?}: expected HOST:PORT:ADDR (several addresses separated by commas)"
        ))
    };
    let (host, rest) = text.split_once(':').ok_or_else(bad)?;
    let (port, addresses) = rest.split_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let addresses = addresses
        .split(',')
        .map(|a| {
            let a = a.trim();
            a.strip_prefix('[')
                .and_then(|a| a.strip_suffix(']'))
                .unwrap_or(a)
                .parse::<std::net::IpAddr>()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || addresses.is_empty() {
        return Err(bad());
    }
    Ok(((host.to_ascii_lowercase(), port), addresses))
}

/// The longest line `-i FILE` reads: curl's limit for a URL (`CURL_MAX_INPUT_LENGTH`). A file
/// with a longer line (a URL with no end, or not a list of URLs at all) is refused before it fills
/// the memory.
const LONGEST_URL_LINE: u64 = 8_000_000;

/// The URLs from the arguments, then from `--url`, then from `-i FILE`.
pub(crate) fn urls(urls: Vec<String>, options: &Options) -> Result<Vec<String>, Failure> {
    Ok(globbed_urls(urls, options)?
        .into_iter()
        .map(|g| g.url)
        .collect())
}

/// [`urls`], each with the values its patterns took: the arguments and `--url` are globbed as
/// curl globs them (`{a,b}`, `[1-9]`; not with `-g`), the lines of `-i FILE` are taken as they
/// are.
pub(crate) fn globbed_urls(
    given: Vec<String>,
    options: &Options,
) -> Result<Vec<crate::glob::Globbed>, Failure> {
    let mut urls = Vec::new();
    for url in given.into_iter().chain(options.url.iter().cloned()) {
        if options.globoff {
            urls.push(crate::glob::Globbed {
                url,
                values: Vec::new(),
            });
        } else {
            urls.extend(crate::glob::expand(&url).map_err(Failure::usage)?);
        }
    }
    if let Some(file) = &options.input_file {
        let mut reader: Box<dyn BufRead> = if file == "-" {
            Box::new(io::BufReader::new(io::stdin()))
        } else {
            Box::new(io::BufReader::new(File::open(file).map_err(|e| {
                Failure::usage(format!("cannot read {file}: {e}"))
            })?))
        };
        let unreadable = |e: io::Error| Failure::usage(format!("cannot read {file}: {e}"));
        for number in 1.. {
            let mut line = Vec::new();
            let read = io::Read::take(&mut reader, LONGEST_URL_LINE + 1)
                .read_until(b'\n', &mut line)
                .map_err(unreadable)?;
            if read == 0 {
                break;
            }
            if line.len() as u64 > LONGEST_URL_LINE && line.last() != Some(&b'\n') {
                return Err(Failure::usage(format!(
                    "{file}: line {number} is longer than {LONGEST_URL_LINE} bytes, the most a \
                     URL may be"
                )));
            }
            let line = String::from_utf8(line)
                .map_err(|_| Failure::usage(format!("{file}: line {number} is not UTF-8 text")))?;
            let line = line.trim();
            if !line.is_empty() && !line.starts_with('#') {
                urls.push(crate::glob::Globbed {
                    url: line.to_owned(),
                    values: Vec::new(),
                });
            }
        }
    }
    if urls.is_empty() {
        return Err(Failure::usage("no URL given".into()));
    }
    Ok(urls)
}

/// Where `--events` goes.
pub(crate) fn events_output(options: &Options) -> Result<Option<Box<dyn Write + Send>>, Failure> {
    Ok(match options.events.as_deref() {
        None => None,
        Some("-") => Some(Box::new(io::stderr())),
        Some(path) => Some(Box::new(BufWriter::new(
            create_output(std::path::Path::new(path))
                .map_err(|e| Failure::usage(format!("cannot create {path}: {e}")))?,
        ))),
    })
}

/// The command's failure when the body's output (`file`, else standard output) refused a write
/// (a full disk, a closed pipe; curl's exit 23): said on stderr, and the exit status is 1 whatever
/// the tasks did.
pub(crate) fn output_refused(
    failed: &watch::Receiver<Option<String>>,
    file: Option<&std::path::Path>,
) -> Option<ExitCode> {
    let why = failed.borrow().clone()?;
    let to = file.map_or("standard output".into(), |p| p.display().to_string());
    say!("courier: cannot write the body to {to}: {why}");
    Some(ExitCode::TaskFailed)
}

/// Invalidates the session and waits until `did_become_invalid` was written: every line is out.
pub(crate) async fn finish(session: &Session, invalid: &mut watch::Receiver<bool>) {
    session.finish_tasks_and_invalidate();
    let _ = tokio::time::timeout(Duration::from_secs(30), invalid.wait_for(|done| *done)).await;
}

/// A session for a task whose bytes the command handles itself (`ws`, `stream`): no body writer,
/// no progress bars, the events as `--events` asks.
pub(crate) struct BodilessSession {
    pub(crate) delegate: std::sync::Arc<crate::events::CliDelegate>,
    pub(crate) session: Session,
    /// The tasks' completions.
    pub(crate) finished: tokio::sync::mpsc::UnboundedReceiver<Finished>,
    /// Set once the session is invalid.
    pub(crate) invalid: watch::Receiver<bool>,
}

/// Makes a [`BodilessSession`] from the options.
pub(crate) fn bodiless_session(options: &Options) -> Result<BodilessSession, Failure> {
    let config = configuration(options)?;
    let (mut delegate, finished, invalid) = crate::events::CliDelegate::new(
        events_output(options)?,
        Box::new(io::sink()),
        std::sync::Arc::new(crate::progress::Progress::new(true)),
    );
    delegate.apply(options)?;
    let delegate = std::sync::Arc::new(delegate);
    let session = Session::with_delegate(config, delegate.clone())?;
    Ok(BodilessSession {
        delegate,
        session,
        finished,
        invalid,
    })
}

/// Prints each failed task on stderr and picks the exit status.
pub(crate) fn report(results: &[Finished], options: &Options) -> ExitCode {
    let mut code = ExitCode::Success;
    for f in results {
        if let Some(e) = &f.error {
            let url = e
                .failing_url()
                .map(|u| format!(" ({})", abbreviated(&shown_url(u))))
                .unwrap_or_default();
            say!(
                "courier: task {} failed: {} {}{url}: {}",
                f.task,
                e.code().name(),
                e.code().number(),
                e.message()
            );
            code = ExitCode::TaskFailed;
        } else if options.fails_on_status()
            && f.status.is_some_and(|s| s >= 400)
            && code == ExitCode::Success
        {
            say!(
                "courier: task {} got HTTP status {}",
                f.task,
                f.status.unwrap_or_default()
            );
            code = ExitCode::HttpError;
        }
        if let Some(location) = &f.unfollowed {
            say!(
                "courier: task {}: the {} is not followed: its Location, {:?}, is not an http: or https: URL",
                f.task,
                f.status.unwrap_or_default(),
                abbreviated(&shown_url(location))
            );
        }
    }
    code
}
