//! The command line: commands and options, as `shared/spec/cli.md` fixes them. The commands are
//! here, with what `get` means when it is another command ([`Command::into_meant`]); the options
//! every command takes are in `options.rs`, and how their values are read in `values.rs`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod options;
mod values;

pub(crate) use options::{ConfigKind, Options};

pub(crate) use values::{BodyArg, TooLong, read_bounded_arg, read_bounded_file};
use values::{parse_body_arg, parse_delay, parse_priority};

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
