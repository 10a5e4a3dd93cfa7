//! Courier's test kit: loopback servers, a recording delegate, and (in `tests/`) the integration and
//! property tests; `src/bin/bench.rs` is the bench binary. It builds on the loopback kit of
//! `courier_cli::loopback` (the servers the demo tours, and [`TestCa`], a throwaway CA;
//! [`ProxyServer`], an HTTP proxy), adding what only tests need.
//!
//! - [`server`]: [`TestServer`], the loopback server (HTTP/1.1; HTTP/2 over TLS) with the tests'
//!   deterministic routes in front of the demo's.
//! - [`fault`]: [`FaultServer`], raw TCP that fails in one precise way.
//! - [`resource`]: [`ResourceServer`], one downloadable resource with byte ranges and scripted
//!   faults (cut, stall, lie, ignore or misplace ranges, change).
//! - [`resumable_upload`]: [`ResumableUploadServer`], an upload resource by the IETF draft, which
//!   can cut an upload's connection part-way.
//! - [`nginx`]: [`Nginx`], a real nginx on a free loopback port with a generated configuration.
//! - [`tinyproxy`]: [`Tinyproxy`], a real proxy program on a free loopback port.
//! - [`websockets`]: [`WebSocketServer`], a real WebSocket server (Python's `websockets`).
//! - [`ftp`]: [`FtpServer`], a real FTP server with explicit FTPS (pyftpdlib).
//! - [`smtp`]: [`SmtpServer`], a real SMTP server with STARTTLS (Python's `aiosmtpd`).
//! - [`netns`]: a test half run where there is no network, until it brings loopback up.
//! - [`program`]: finding, placing and waiting for the real server programs.
//! - [`recorder`]: [`Recorder`], a delegate that records every callback, and the stream invariants.

pub mod fault;
pub mod ftp;
pub mod microsocks;
pub mod mock;
pub mod netns;
pub mod nginx;
pub mod program;
pub mod recorder;
pub mod resource;
pub mod resumable_upload;
pub mod server;
pub mod smtp;
pub mod tinyproxy;
pub mod websockets;

pub use courier_cli::loopback::{Asked, Leaf, LoopbackCa as TestCa, ProxyServer, sha256_hex};
pub use fault::{Fault, FaultServer};
pub use ftp::FtpServer;
pub use microsocks::Microsocks;
pub use nginx::{AccessLine, Nginx, write_random_file};
pub use recorder::{Event, Recorder, RedirectAnswer, Transaction, TrustAnswer, check_invariants};
pub use resource::{Misbehaviour, ResourceServer, Served};
pub use resumable_upload::{Cut, ResumableUploadServer};
pub use server::TestServer;
pub use smtp::SmtpServer;
pub use tinyproxy::Tinyproxy;
pub use websockets::WebSocketServer;

/// `Configuration::default()` (a persistent session: cookies, credentials, cache and downloads on
/// disk) with its session directory in `dir` and cleartext allowed, for the loopback servers.
pub fn default_config_in(dir: &std::path::Path) -> courier_engine::Configuration {
    let mut c = courier_engine::Configuration::default();
    c.cleartext = courier_engine::CleartextPolicy::AllowAll;
    c.session_directory = Some(dir.to_path_buf());
    c
}

/// The names of the files in a session directory, leaving out the one a session keeps for good
/// (`resume.key`, the key that seals its resume data) and the owner locks of live sessions
/// (`owner-*.lock`, removed as each session ends; see [`live_owner_locks`]): what a test of
/// leftovers looks at.
pub fn session_files(dir: &std::path::Path) -> Vec<String> {
    names_in(dir)
        .into_iter()
        .filter(|n| n != "resume.key" && !is_owner_lock(n))
        .collect()
}

/// The owner lock files in a session directory: one per live session that has written a partial
/// file there.
pub fn live_owner_locks(dir: &std::path::Path) -> Vec<String> {
    names_in(dir)
        .into_iter()
        .filter(|n| is_owner_lock(n))
        .collect()
}

fn is_owner_lock(name: &str) -> bool {
    name.starts_with("owner-") && name.ends_with(".lock")
}

fn names_in(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}
