//! `courier`: a transfer tool and a guided demo, built only on courier-engine's public API.
//!
//! - `cli`: commands and options.
//! - `common`: what every command shares (the configuration from the options, the URLs, the exit
//!   status).
//! - `glob`: curl's URL globbing (`{a,b}`, `[1-10]`) and `#N` in output names.
//! - `request`: the request the options describe for each URL (`-H`, `-d`, `-G`...).
//! - `conditional`: `-z`, `--etag-compare`, `--etag-save` and `-R`: fetching only what changed.
//! - `form`: `-F`'s multipart form, in memory or streamed from its files.
//! - `cookie_file`: `-b FILE` and `-c FILE`, curl's cookie files.
//! - `netrc`: `-n`, logins from `~/.netrc`.
//! - `write_out`: `-w`'s line after each task.
//! - `retries`: `--retry`'s rules.
//! - `get`: `courier get`.
//! - `download`: `courier download`, with resume data on Ctrl-C and `--resume-data`.
//! - `upload`: `courier upload`.
//! - `ws`: `courier ws`, a WebSocket task between stdin and stdout.
//! - `stream`: `courier stream`, a stream task like netcat, with STARTTLS.
//! - `progress`: the progress bars.
//! - `demo`: `courier demo`, the tour on an embedded loopback server.
//! - `daemon`: `courier daemon`, the background service in the foreground.
//! - `bg`: `courier bg ...`, background sessions from the command line.
//! - `events`: the delegate that writes the `--events` stream and the bodies.

/// Writes a line on stderr for the person at the terminal, as `eprintln!` does, except that a
/// stderr that is gone (`courier get URL 2>&1 | head -1` closes it) loses the line instead of
/// panicking: curl loses such lines too, and the exit status still says how the command ended.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// [`say!`] for standard output, for lines a reader may stop reading (`courier demo | head`,
/// `courier bg download ... | head -1`). Bodies go through their own writer, whose errors count.
macro_rules! show {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod bg;
mod cli;
mod common;
mod conditional;
mod cookie_file;
mod daemon;
mod demo;
mod download;
mod events;
mod form;
mod get;
mod glob;
mod netrc;
mod progress;
mod request;
mod retries;
mod stream;
mod upload;
mod write_out;
mod ws;

use clap::Parser;

/// The command's allocator is mimalloc, not the C library's.
///
/// The command runs the engine on one thread and the delegate on another, and much of what the
/// engine allocates for a response (its body chunks, its callbacks) is freed on the delegate's
/// thread. Once its per-thread cache is full, glibc's malloc returns such blocks to the allocating
/// thread's arena under that arena's lock, and the two threads then wake each other through it:
/// with 10,000 GETs of 1 KiB (`-j 64`, nginx on loopback) a tenth of the engine thread's samples
/// were `futex` wake-ups under `__lll_lock_wake_private`. mimalloc puts a block freed by another
/// thread on its page's own list without a lock: the same run takes 0.18-0.19 s instead of
/// 0.23-0.26 s, for about 2 MiB more peak memory (BENCHMARKS.md, 2026-12-03). Built with `no_thp`: mimalloc would otherwise ask for
/// transparent huge pages, and each 2 MiB page it touched counted whole (one GET peaked at 18.4
/// MiB instead of 11.3). The choice is the binary's; the library leaves the allocator to the
/// program that uses it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How `courier` exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExitCode {
    /// Everything succeeded.
    Success,
    /// A task completed with an error (printed on stderr).
    TaskFailed,
    /// Bad arguments or input.
    Usage,
    /// `--fail` and an HTTP status of 400 or above.
    HttpError,
    /// Stopped by Ctrl-C or SIGTERM (`common::stop_requested`).
    Interrupted,
    /// Something panicked (a bug): even when every task ended, the run is not trusted.
    Internal,
}

impl ExitCode {
    fn code(self) -> i32 {
        match self {
            ExitCode::Success => 0,
            ExitCode::TaskFailed => 1,
            ExitCode::Usage => 2,
            ExitCode::HttpError => 22,
            ExitCode::Interrupted => 128 + STOPPED_BY.load(std::sync::atomic::Ordering::SeqCst),
            ExitCode::Internal => 70,
        }
    }

    /// The status to exit with when a panic was seen somewhere in the process (a delegate callback,
    /// a task, the runtime): never success.
    fn after_panic(self, panicked: bool) -> ExitCode {
        match (self, panicked) {
            (ExitCode::Success, true) => ExitCode::Internal,
            (code, _) => code,
        }
    }
}

/// The signal that stopped the command: SIGINT (2) unless SIGTERM (15) came.
pub(crate) static STOPPED_BY: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(2);

/// Set by the panic hook: the engine turns panics into task failures and goes on, so the process
/// would otherwise exit as if nothing had happened.
static PANICKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// How long the command may go on once a panic was seen: the engine turns panics into task
/// failures, so it usually ends by itself, but a panic that swallowed a completion the command
/// waits for must not leave the process hanging.
const AFTER_A_PANIC: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs `command`; once a panic has been seen anywhere, gives it `grace` (in use:
/// [`AFTER_A_PANIC`]) to end, then gives up with [`ExitCode::Internal`].
async fn never_hang_after_a_panic(
    command: impl std::future::Future<Output = Result<ExitCode, Failure>>,
    grace: std::time::Duration,
) -> Result<ExitCode, Failure> {
    tokio::pin!(command);
    let panic_seen = async {
        while !PANICKED.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    tokio::select! {
        done = &mut command => done,
        () = panic_seen => tokio::time::timeout(grace, command)
            .await
            .unwrap_or(Ok(ExitCode::Internal)),
    }
}

/// Notes every panic (and still prints it, as the default hook does).
fn notice_panics() {
    let print = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICKED.store(true, std::sync::atomic::Ordering::SeqCst);
        print(info);
    }));
}

/// A failure before any task ran (bad arguments, unreadable files).
#[derive(Debug)]
pub(crate) struct Failure(String);

/// Any error a command cannot go on after (a session that cannot start, an I/O error) is a failure
/// with that error's text, so commands can use `?`.
impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure(e.to_string())
    }
}

impl Failure {
    pub(crate) fn usage(message: String) -> Failure {
        Failure(message)
    }
}

/// Refuses an option given to a command it means nothing to, rather than ignore it.
fn misplaced_options(cli: &cli::Cli) -> Result<(), Failure> {
    use cli::Command;
    let o = &cli.options;
    let get = matches!(cli.command, Command::Get { .. });
    let fetch = get || matches!(cli.command, Command::Download { .. });
    let transfer = fetch || matches!(cli.command, Command::Upload { .. });
    let refusals = [
        // A HEAD has no body: a download would save an empty file, an upload send nothing.
        (
            o.head && !get,
            "-I (--head) shows a response's head: use it with courier get",
        ),
        (
            o.retry > 0 && !fetch,
            "--retry tries a fetch again: use it with courier get or courier download (an upload \
             its server offered to resume goes on by itself)",
        ),
        // A body tried again must keep its place in the output, which -j orders by task.
        (
            o.retry > 0 && o.parallel > 1 && get,
            "get --retry runs one task at a time: drop -j (download takes both)",
        ),
        (
            (o.write_out.is_some() || o.dump_header.is_some()) && !transfer,
            "-w (--write-out) and -D (--dump-header) report on a fetch: use them with courier \
             get, download or upload",
        ),
        // A download asks for ranges of its own, to continue: a part of a file is not something
        // it can resume or save as the file.
        (
            !o.resolve.is_empty() && matches!(cli.command, Command::Bg { .. } | Command::Daemon),
            "--resolve is not taken by background tasks: the service resolves names with DNS",
        ),
        (
            o.http1_only && matches!(cli.command, Command::Bg { .. } | Command::Daemon),
            "--http1.1 is not taken by background tasks: the service keeps its own protocols",
        ),
        (
            (o.ipv4 || o.ipv6) && matches!(cli.command, Command::Bg { .. } | Command::Daemon),
            "-4 and -6 are not taken by background tasks: the service connects over both",
        ),
        (
            (o.cookie.is_some() || o.cookie_jar.is_some())
                && matches!(cli.command, Command::Bg { .. } | Command::Daemon),
            "-b and -c are this command's cookies: the background service keeps its own",
        ),
        (
            !o.url.is_empty() && !fetch,
            "--url names more URLs to fetch: use it with courier get or download",
        ),
        (
            o.query && !fetch,
            "-G (--get) sends the -d parts in a GET's URL: use it with courier get or download",
        ),
        // The service opens its connections with its own setting (`timeout_for_connect`).
        (
            o.connect_timeout.is_some() && matches!(cli.command, Command::Bg { .. }),
            "--connect-timeout is not taken by background tasks: the service opens their \
             connections with its own setting",
        ),
        // The service takes bodies of any length (`maximum_body_length`).
        (
            o.max_filesize.is_some() && matches!(cli.command, Command::Bg { .. }),
            "--max-filesize is not taken by background tasks: the service takes bodies of any \
             length",
        ),
        (
            o.range.is_some() && !get,
            "-r (--range) fetches part of a body: use it with courier get",
        ),
    ];
    match refusals.into_iter().find(|(refused, _)| *refused) {
        Some((_, why)) => Err(Failure::usage(why.to_owned())),
        None => Ok(()),
    }
}

fn main() {
    notice_panics();
    let mut cli = cli::Cli::parse_from(cli::disambiguate(std::env::args_os()));
    cli.command = match cli
        .command
        .into_meant(&mut cli.options)
        .and_then(|c| c.in_output_dir(&cli.options))
    {
        Ok(command) => command,
        Err(why) => {
            say!("courier: {why}");
            std::process::exit(ExitCode::Usage.code());
        }
    };
    if cli.options.parallel_default && cli.options.parallel == 1 {
        // curl's `-Z`: its default most at once.
        cli.options.parallel = 50;
    }
    if let Err(e) = request::join_data(&mut cli.options)
        .and_then(|()| conditional::resolve(&mut cli.options))
        .and_then(|()| {
            cli.options.netrc_logins = netrc::load(&cli.options)?.map(std::sync::Arc::new);
            Ok(())
        })
    {
        say!("courier: {}", e.0);
        std::process::exit(ExitCode::Usage.code());
    }
    let file_cookies = cli
        .options
        .cookie
        .as_ref()
        .is_some_and(|c| !c.contains('='));
    if file_cookies || cli.options.cookie_jar.is_some() {
        match cookie_file::jar(cli.options.cookie.as_deref()) {
            Ok(jar) => cli.options.jar = Some(jar),
            Err(e) => {
                say!("courier: {}", e.0);
                std::process::exit(ExitCode::Usage.code());
            }
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("COURIER_LOG"))
        .with_writer(std::io::stderr)
        .init();
    // One big transfer runs best on a current-thread runtime on a small machine; many tasks still
    // interleave on it (see shared/spec/performance.md).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            say!("courier: cannot start the runtime: {e}");
            std::process::exit(ExitCode::TaskFailed.code());
        }
    };
    let jar_out = (cli.options.jar.clone(), cli.options.cookie_jar.clone());
    let result = runtime.block_on(async {
        let command = async {
            misplaced_options(&cli)?;
            match cli.command {
                // Its body is in the options already (`Command::into_meant`).
                cli::Command::Get { urls, output, .. } => {
                    // `-o -` is standard output, as curl and wget read it.
                    let output = output.filter(|o| o.as_os_str() != "-");
                    form::apply(&mut cli.options, true)?;
                    get::run(urls, output, &cli.options).await
                }
                cli::Command::Download {
                    urls,
                    output,
                    resume_data,
                    save_resume_data,
                    remote_header_name,
                    remote_name: _,
                    continue_at: _,
                } => {
                    form::apply(&mut cli.options, false)?;
                    let args = download::Args {
                        urls,
                        output,
                        resume_data,
                        save_resume_data,
                        remote_header_name,
                    };
                    download::run(args, &cli.options).await
                }
                cli::Command::Upload {
                    url,
                    file,
                    resume_data,
                    save_resume_data,
                } => {
                    let args = upload::Args {
                        url,
                        file,
                        resume_data,
                        save_resume_data,
                    };
                    upload::run(args, &cli.options).await
                }
                cli::Command::Ws {
                    url,
                    protocols,
                    binary,
                } => ws::run(url, protocols, binary, &cli.options).await,
                cli::Command::Stream {
                    host,
                    port,
                    tls,
                    starttls_after,
                    starttls_command,
                } => {
                    let args = stream::Args {
                        host,
                        port,
                        tls,
                        starttls_after,
                        starttls_command,
                    };
                    stream::run(args, &cli.options).await
                }
                cli::Command::Demo => demo::run().await,
                cli::Command::Daemon => daemon::run(&cli.options).await,
                cli::Command::Bg { command } => bg::run(command, &cli.options).await,
            }
        };
        never_hang_after_a_panic(command, AFTER_A_PANIC).await
    });
    // `-c FILE`: the cookies as the command leaves them, whatever became of its tasks.
    let written = match &jar_out {
        (Some(jar), Some(path)) => cookie_file::write_jar(jar, path),
        _ => Ok(()),
    };
    let result = result.and_then(|code| written.map(|()| code));
    let code = match result {
        Ok(code) => code,
        Err(Failure(message)) => {
            say!("courier: {message}");
            ExitCode::Usage
        }
    };
    let panicked = PANICKED.load(std::sync::atomic::Ordering::SeqCst);
    if panicked {
        say!("courier: an internal error (a panic) happened; see above");
    }
    std::process::exit(code.after_panic(panicked).code());
}

#[cfg(test)]
mod tests {
    use super::ExitCode;

    #[test]
    fn a_panic_anywhere_never_exits_with_success() {
        assert_eq!(ExitCode::Success.after_panic(true), ExitCode::Internal);
        assert_eq!(ExitCode::Success.after_panic(false), ExitCode::Success);
        assert_eq!(ExitCode::TaskFailed.after_panic(true), ExitCode::TaskFailed);
        assert_ne!(ExitCode::Internal.code(), 0);
    }

    /// A command that would wait forever (its completion swallowed by a panic) ends with
    /// `Internal` once a panic was seen; one that ends by itself keeps its own status.
    #[tokio::test]
    async fn a_panic_never_leaves_the_command_hanging() {
        use std::time::Duration;
        let finishes = async { Ok(ExitCode::TaskFailed) };
        let result = super::never_hang_after_a_panic(finishes, Duration::from_millis(50)).await;
        assert_eq!(result.ok(), Some(ExitCode::TaskFailed));
        super::PANICKED.store(true, std::sync::atomic::Ordering::SeqCst);
        let forever = std::future::pending::<Result<ExitCode, super::Failure>>();
        let result = super::never_hang_after_a_panic(forever, Duration::from_millis(50)).await;
        assert_eq!(result.ok(), Some(ExitCode::Internal));
    }
}
