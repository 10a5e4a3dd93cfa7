//! `Microsocks`: a real SOCKS5 server (microsocks, from Debian) on a free loopback port, optionally
//! behind a username and password (RFC 1929). It logs every connection it makes for a client, so a
//! test can tell the proxy carried a request, and with which host name. It stops when dropped.

use std::process::Command;

use crate::program::{self, Running};

/// A running microsocks.
pub struct Microsocks(Running);

impl Microsocks {
    /// Starts microsocks on 127.0.0.1, requiring `credentials` (`(user, pass)`) when given. `None`
    /// where microsocks is not installed (never in CI).
    ///
    /// # Panics
    /// If microsocks is installed but does not start.
    pub fn start(credentials: Option<(&str, &str)>) -> Option<Microsocks> {
        let binary = program::installed("microsocks")?;
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("microsocks.log");
        let running = Running::start(dir, log.clone(), |_, port| {
            let mut command = Command::new(&binary);
            command.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
            if let Some((user, pass)) = credentials {
                command.args(["-u", user, "-P", pass]);
            }
            let out = std::fs::File::create(&log).expect("microsocks.log");
            command
                .stdout(out.try_clone().expect("log handle"))
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()))
        });
        Some(Microsocks(running))
    }

    /// The proxy's URL with `scheme` (`socks5h` or `socks5`) and `userinfo` (`user:pass@`) if given.
    pub fn url(&self, scheme: &str, userinfo: &str) -> String {
        format!("{scheme}://{userinfo}127.0.0.1:{}", self.0.port())
    }

    /// What microsocks logged so far: one `connected to HOST:PORT` line per connection it made.
    pub fn log(&self) -> String {
        self.0.log()
    }
}
