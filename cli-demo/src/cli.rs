//! The command line: commands and options, as `shared/spec/cli.md` fixes them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod values;

pub(crate) use values::{BodyArg, TooLong, read_bounded_arg, read_bounded_file};
use values::{parse_body_arg, parse_bytes, parse_delay, parse_priority, parse_range};

/// courier: a transfer tool built on URLSession's model (sessions, tasks, delegates).
#[derive(Parser, Debug)]
#[command(name = "courier", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    #[command(flatten)]
    pub(crate) options: Options,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// One data task per URL, one after another in one session; bodies to stdout or to -o FILE.
    Get {
        /// The URLs to fetch.
        urls: Vec<String>,
        /// Write the bodies to FILE instead of stdout (`-`: stdout).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// Save each body in the current directory under its URL's name, as curl -O: the same as
        /// `courier download URL...` (a download task each, resumable, -C - and -J as there).
        #[arg(
            short = 'O',
            long = "remote-name",
            visible_alias = "remote-name-all",
            conflicts_with = "output"
        )]
        remote_name: bool,
        /// With -O, name each file as the server suggests (Content-Disposition), as curl -OJ.
        #[arg(short = 'J', long = "remote-header-name", requires = "remote_name")]
        remote_header_name: bool,
        /// Upload FILE to the URL, as curl -T: the same as `courier upload -T FILE URL` (PUT
        /// unless -X says otherwise; `-` streams stdin).
        #[arg(
            short = 'T',
            long = "upload-file",
            value_name = "FILE",
            conflicts_with_all = ["remote_name", "form", "json", "data_binary", "data"]
        )]
        upload_file: Option<PathBuf>,
        /// POST this JSON (curl's `--json`): the body, with `Content-Type` and `Accept`
        /// `application/json` (a field given with `-H` wins). `@FILE` reads it from FILE (`@-`:
        /// standard input), up to 16 MiB; a larger body goes with `courier upload --file`.
        #[arg(
            long,
            value_name = "JSON",
            conflicts_with_all = ["data", "data_binary"],
            value_parser = parse_body_arg
        )]
        json: Option<BodyArg>,
        /// POST this body as it is (curl's `--data-binary`): the text, or `@FILE` (`@-`:
        /// standard input) read byte for byte, up to 16 MiB; a larger body goes with `courier
        /// upload --file`.
        #[arg(
            long = "data-binary",
            value_name = "DATA",
            conflicts_with = "data",
            value_parser = parse_body_arg
        )]
        data_binary: Option<BodyArg>,
        /// POST a multipart/form-data form (curl's `-F`, repeatable): `name=text`,
        /// `name=@FILE` for a file part (`;type=TYPE`, `;filename=NAME` after the path; `@-` for
        /// standard input), `name=<FILE` for a field holding the file's text; a file part of
        /// any size is streamed from its file.
        #[arg(
            short = 'F',
            long = "form",
            value_name = "NAME=CONTENT",
            conflicts_with_all = ["data", "data_binary", "json"]
        )]
        form: Vec<String>,
    },
    /// Download tasks: each URL to a file, named from the URL unless -o says otherwise. Ctrl-C
    /// (or SIGTERM) saves resume data (not in an ephemeral session, which keeps nothing on disk);
    /// `--resume-data FILE` continues from it.
    Download {
        /// The URLs to download.
        urls: Vec<String>,
        /// The file (one URL) or directory (several, created if missing) to write to; a file's
        /// directory must exist (checked before anything is fetched); default: the current
        /// directory, with the name from the URL.
        #[arg(short = 'o', long = "output", value_name = "PATH")]
        output: Option<PathBuf>,
        /// Continue the download this resume-data file describes.
        #[arg(long = "resume-data", value_name = "FILE")]
        resume_data: Option<PathBuf>,
        /// Where Ctrl-C (or a failure) saves resume data (default: `<output>.courier-resume`); its
        /// directory must exist.
        #[arg(long = "save-resume-data", value_name = "FILE")]
        save_resume_data: Option<PathBuf>,
        /// Name each file as the server suggests (Content-Disposition), like curl -OJ; still one
        /// plain name inside the output directory, and never one a file has (that download stops
        /// at its first bytes).
        #[arg(short = 'J', long = "remote-header-name")]
        remote_header_name: bool,
        /// Continue where an interrupted download of the same URL stopped: what download does
        /// anyway (accepted for curl's `-C -`; an offset of your choosing is not).
        #[arg(
            short = 'C',
            long = "continue-at",
            value_name = "-",
            value_parser = clap::builder::PossibleValuesParser::new(["-"]),
            allow_hyphen_values = true
        )]
        continue_at: Option<String>,
        /// Save each file under its URL's name: what download does anyway (accepted for curl's
        /// `-O`, as in `-OJ`).
        #[arg(short = 'O', long = "remote-name")]
        remote_name: bool,
    },
    /// An upload task: PUT (or -X METHOD) the file or text to URL; the response body to stdout.
    Upload {
        /// The URL to upload to (not with --resume-data, which names it).
        #[arg(required_unless_present = "resume_data")]
        url: Option<String>,
        /// The file to send (`-` streams stdin; `-T`, `--upload-file`: curl's names).
        #[arg(
            long,
            short = 'T',
            visible_alias = "upload-file",
            value_name = "PATH",
            conflicts_with = "data"
        )]
        file: Option<PathBuf>,
        /// Go on with the upload this resume-data file describes: only what the server does not
        /// hold yet is sent.
        #[arg(long = "resume-data", value_name = "FILE", conflicts_with_all = ["file", "data", "url"])]
        resume_data: Option<PathBuf>,
        /// Where Ctrl-C (or a failure) saves resume data, when the server offered to resume the
        /// upload (default: `<file name>.courier-upload-resume` in the current directory); its
        /// directory must exist.
        #[arg(long = "save-resume-data", value_name = "FILE")]
        save_resume_data: Option<PathBuf>,
    },
    /// A WebSocket task: each line of stdin is sent as a text message (--binary: a binary one);
    /// each message received is printed on its own line (binary ones as hex). The end of stdin
    /// closes with 1000 and waits for the server's close. `ws://` needs --allow-http.
    Ws {
        /// The ws:// or wss:// URL.
        url: String,
        /// A subprotocol to offer (repeatable).
        #[arg(long = "protocol", value_name = "P")]
        protocols: Vec<String>,
        /// Send each line as a binary message.
        #[arg(long)]
        binary: bool,
    },
    /// A stream task, like netcat: stdin to the connection, the connection to stdout, until both
    /// sides are closed. --tls starts TLS at once; --starttls-after TEXT first sends the STARTTLS
    /// command, prints the server's lines until one contains TEXT, then starts TLS (the session's
    /// trust: --cacert, --insecure). The cleartext policy does not apply to a raw stream.
    Stream {
        /// The host to connect to.
        host: String,
        /// The port.
        port: u16,
        /// Start TLS at once.
        #[arg(long, conflicts_with = "starttls_after")]
        tls: bool,
        /// Start TLS once a server line contains TEXT (after sending the STARTTLS command).
        #[arg(long = "starttls-after", value_name = "TEXT")]
        starttls_after: Option<String>,
        /// The line that asks the server for TLS.
        #[arg(
            long = "starttls-command",
            value_name = "LINE",
            default_value = "STARTTLS"
        )]
        starttls_command: String,
    },
    /// A guided tour on an embedded loopback server (HTTP, and HTTPS with a generated certificate).
    Demo,
    /// Runs the background service for this user in the foreground until SIGTERM or Ctrl-C (then it
    /// lets its sessions settle and exits 0). Its sessions take the request and session options
    /// (`--allow-http`, `--cacert`, timeouts...).
    Daemon,
    /// Background sessions: tasks handed to the service, which goes on without this command.
    Bg {
        /// What to do.
        #[command(subcommand)]
        command: BgCommand,
    },
}

impl Command {
    /// `get` as the command it means. The body it sends (`--json`, `--data-binary`, `-F`'s
    /// fields) moves into `options`, where every command's request takes it from. `get -O`
    /// (curl's `-O`, with `-J`) is the `download` it means: each body saved under its URL's name
    /// (or, with `-J`, the server's) in the current directory, with everything a download has
    /// (resume data, `-C -`, never replacing a file); so is `get -o "f_#1"` with a globbed URL,
    /// each to the file its values name, and `get -o FILE` with `-z` or `--etag-compare`, which
    /// keeps FILE on a 304. `get -T FILE URL` (curl's `-T`) is the
    /// `upload` it means. Any other command is returned as it is.
    ///
    /// # Errors
    /// `get -T` with other than one URL.
    pub(crate) fn into_meant(self, options: &mut Options) -> Result<Command, String> {
        let Command::Get {
            urls,
            output,
            json,
            data_binary,
            form,
            remote_name,
            remote_header_name,
            upload_file,
        } = self
        else {
            return Ok(self);
        };
        options.json = json.is_some();
        options.body = json.or(data_binary).map(|b| b.0);
        // Made into the body when the command runs (`form::apply`).
        options.form = form;
        if let Some(file) = upload_file {
            let [url] = <[String; 1]>::try_from(urls)
                .map_err(|_| "get -T uploads the file to one URL".to_owned())?;
            return Ok(Command::Upload {
                url: Some(url),
                file: Some(file),
                resume_data: None,
                save_resume_data: None,
            });
        }
        // A file to keep until a condition's answer says otherwise (`-z`, `--etag-compare`),
        // as a download keeps it on a 304, where `get -o` would empty it first.
        let kept_until_changed = crate::conditional::may_keep(options)
            && output.as_ref().is_some_and(|o| o.as_os_str() != "-");
        // curl's `-o "file_#1.txt"` with a globbed URL names a file for each URL: the downloads
        // it means, each to its own file.
        let named_by_values = !options.globoff
            && output
                .as_ref()
                .is_some_and(|o| crate::glob::names_values(&o.to_string_lossy()))
            && urls
                .iter()
                .chain(&options.url)
                .any(|u| crate::glob::has_patterns(u));
        Ok(if remote_name || named_by_values || kept_until_changed {
            Command::Download {
                urls,
                output: output.filter(|_| named_by_values || kept_until_changed),
                resume_data: None,
                save_resume_data: None,
                remote_header_name,
                continue_at: None,
                remote_name: true,
            }
        } else {
            Command::Get {
                urls,
                output,
                json: None,
                data_binary: None,
                form: Vec::new(),
                remote_name,
                remote_header_name,
                upload_file: None,
            }
        })
    }

    /// `--output-dir DIR` (curl's): `-o FILE` becomes DIR/FILE (an absolute FILE, and `-`, stay
    /// as they are), and a download named from its URL (or by its server) goes into DIR. DIR is
    /// made first under `--create-dirs`.
    ///
    /// # Errors
    /// DIR cannot be made.
    pub(crate) fn in_output_dir(mut self, options: &Options) -> Result<Command, String> {
        let Some(dir) = &options.output_dir else {
            return Ok(self);
        };
        if options.create_dirs {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let inside = |file: PathBuf| {
            if file.is_absolute() || file.as_os_str() == "-" {
                file
            } else {
                dir.join(file)
            }
        };
        match &mut self {
            Command::Get { output, .. } => *output = output.take().map(inside),
            // A trailing separator: the directory the downloads go into, even for one.
            Command::Download { output, .. } => {
                *output = Some(output.take().map_or_else(|| dir.join(""), inside));
            }
            _ => {}
        }
        Ok(self)
    }
}

/// `courier bg ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum BgCommand {
    /// Download tasks in the background session ID; exits 0 once the service holds them, one line
    /// per task: its identifier and URL.
    Download {
        /// The background session's identifier.
        #[arg(long)]
        id: String,
        /// The URLs to download.
        #[arg(required = true)]
        urls: Vec<String>,
        /// When the tasks may run.
        #[command(flatten)]
        schedule: BgSchedule,
    },
    /// An upload task from a file in the background session ID (PUT unless -X).
    Upload {
        /// The background session's identifier.
        #[arg(long)]
        id: String,
        /// The file to send.
        #[arg(long, value_name = "PATH")]
        file: PathBuf,
        /// Where to send it.
        url: String,
        /// When the task may run.
        #[command(flatten)]
        schedule: BgSchedule,
    },
    /// Attaches to ID: every event not yet acknowledged, in order, acknowledged as handled, then
    /// did_finish_events_for_background_session; finished downloads go into -o DIR (default: the
    /// current directory), named from their URL. With --follow, stays until every task completed,
    /// saying on stderr each attempt the service retries.
    Attach {
        /// The background session's identifier.
        #[arg(long)]
        id: String,
        /// Where finished downloads go.
        #[arg(short = 'o', long = "output", value_name = "DIR")]
        output: Option<PathBuf>,
        /// Stay attached, printing live events, until every task of ID has completed.
        #[arg(long)]
        follow: bool,
    },
    /// invalidate_and_cancel for ID: every task is cancelled (their did_complete -999 wait for the
    /// next attach, whose stream ends with did_become_invalid as always).
    Invalidate {
        /// The background session's identifier.
        #[arg(long)]
        id: String,
    },
    /// One line per task of ID the service holds: identifier, state, URL.
    List {
        /// The background session's identifier.
        #[arg(long)]
        id: String,
        /// One JSON object per line instead.
        #[arg(long)]
        json: bool,
    },
    /// Cancels these tasks (their did_complete with -999 comes at the next attach, or live).
    Cancel {
        /// The background session's identifier.
        #[arg(long)]
        id: String,
        /// The tasks' identifiers.
        #[arg(required = true)]
        tasks: Vec<u64>,
    },
}

/// When the service runs a background task: URLSession's `isDiscretionary`, `earliestBeginDate`
/// and `priority`, as `bg download` and `bg upload` take them.
#[derive(Args, Clone, Copy, Debug)]
pub(crate) struct BgSchedule {
    /// Run only when no other transfer of the service is ready to (the configuration's
    /// `is_discretionary`): for work that can wait.
    #[arg(long)]
    pub(crate) discretionary: bool,
    /// Not before SECS seconds from now (the task's earliest begin date, kept across restarts of
    /// the service).
    #[arg(long = "begin-after", value_name = "SECS", value_parser = parse_delay)]
    pub(crate) begin_after: Option<std::time::Duration>,
    /// 0 (lowest) to 1 (highest), default 0.5: among the tasks waiting for a turn, higher first.
    #[arg(long, value_name = "0..1", value_parser = parse_priority)]
    pub(crate) priority: Option<f32>,
}

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

/// `--allow-http` takes an optional HOST, so `--allow-http http://host/` would read the URL as the
/// host, and `courier --allow-http daemon` (or `courier bg --allow-http download`) the command. A
/// host never contains `://` or `/`: such a next argument is a URL, and `--allow-http` alone (all
/// hosts) is meant; so it is when the next argument names a subcommand of the command reached so
/// far (the top level's, then `bg`'s).
pub(crate) fn disambiguate(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    use clap::CommandFactory;
    let args: Vec<std::ffi::OsString> = args.into_iter().collect();
    let mut out = Vec::with_capacity(args.len());
    // The command reached so far: a subcommand's name descends into it.
    let mut command = Cli::command();
    let subcommand = |of: &clap::Command, arg: Option<&str>| {
        arg.and_then(|a| of.get_subcommands().find(|c| c.get_name() == a).cloned())
    };
    for (i, arg) in args.iter().enumerate() {
        // A host has neither `://` nor a path: `localhost:8080/x`, a URL typed without its
        // scheme, is a URL too.
        let next = args.get(i + 1).and_then(|n| n.to_str());
        let next_is_url = next.is_some_and(|n| n.contains("://") || n.contains('/'));
        let next_is_command = subcommand(&command, next).is_some();
        if arg == "--allow-http" && (next_is_url || next_is_command) {
            out.push("--allow-http=*".into());
            continue;
        }
        if i > 0
            && let Some(inner) = subcommand(&command, arg.to_str())
        {
            command = inner;
        }
        out.push(arg.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn allow_http_before_a_url_or_a_command_means_every_host() {
        let read_as = |given: &[&str], meant: &[&str]| {
            let got = super::disambiguate(given.iter().map(|s| s.into()));
            let meant: Vec<std::ffi::OsString> = meant.iter().map(|s| s.into()).collect();
            assert_eq!(got, meant, "{given:?}");
        };
        let all = "--allow-http=*";
        read_as(
            &["courier", "get", "--allow-http", "http://h/"],
            &["courier", "get", all, "http://h/"],
        );
        read_as(
            &["courier", "get", "--allow-http", "localhost:8080/x"],
            &["courier", "get", all, "localhost:8080/x"],
        );
        // A host stays a host.
        let host = ["courier", "get", "--allow-http", "h", "http://h/"];
        read_as(&host, &host);
        // Before the command, a command's name is the command, not a host.
        read_as(
            &["courier", "--allow-http", "daemon"],
            &["courier", all, "daemon"],
        );
        read_as(
            &["courier", "--allow-http", "get", "http://h/"],
            &["courier", all, "get", "http://h/"],
        );
        // After it, a host that happens to be named like one stays a host.
        let named_bg = ["courier", "get", "--allow-http", "bg", "http://bg/"];
        read_as(&named_bg, &named_bg);
        // A command's own subcommands are commands too, and only they.
        read_as(
            &["courier", "bg", "--allow-http", "attach", "--id", "x"],
            &["courier", "bg", all, "attach", "--id", "x"],
        );
        let named_get = [
            "courier",
            "bg",
            "download",
            "--allow-http",
            "get",
            "http://h/",
        ];
        read_as(&named_get, &named_get);
    }
}
