//! The command line: commands and options, as `shared/spec/cli.md` fixes them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
        /// Write the bodies to FILE instead of stdout.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// A guided tour on an embedded loopback server (HTTP, and HTTPS with a generated certificate).
    Demo,
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
    /// Request header 'Name: value' (repeatable).
    #[arg(short = 'H', long = "header", global = true, value_name = "HEADER")]
    pub(crate) headers: Vec<String>,
    /// Request method.
    #[arg(short = 'X', long = "request", global = true, value_name = "METHOD")]
    pub(crate) method: Option<String>,
    /// Request body.
    #[arg(long, global = true, value_name = "TEXT")]
    pub(crate) data: Option<String>,
    /// Permit cleartext http:// (to all hosts, or to HOST; repeatable).
    #[arg(long = "allow-http", global = true, value_name = "HOST", num_args = 0..=1, default_missing_value = "*")]
    pub(crate) allow_http: Vec<String>,
    /// Trust this PEM certificate authority too.
    #[arg(long, global = true, value_name = "PEM")]
    pub(crate) cacert: Option<PathBuf>,
    /// The idle timeout, in seconds (default 60).
    #[arg(long = "timeout-request", global = true, value_name = "SECS")]
    pub(crate) timeout_request: Option<f64>,
    /// The whole-task timeout, in seconds (default 7 days).
    #[arg(long = "timeout-resource", global = true, value_name = "SECS")]
    pub(crate) timeout_resource: Option<f64>,
    /// Run up to N tasks at once.
    #[arg(
        short = 'j',
        long = "parallel",
        global = true,
        value_name = "N",
        default_value_t = 1
    )]
    pub(crate) parallel: usize,
    /// Exit 22 when the final HTTP status is 400 or above.
    #[arg(long, global = true)]
    pub(crate) fail: bool,
    /// Read more URLs from FILE, one per line (`-` for stdin).
    #[arg(short = 'i', long = "input-file", global = true, value_name = "FILE")]
    pub(crate) input_file: Option<String>,
    /// No progress bars.
    #[arg(short = 'q', long, global = true)]
    pub(crate) quiet: bool,
}
