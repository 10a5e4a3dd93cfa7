//! `Tinyproxy`: a real HTTP proxy (tinyproxy) on a free loopback port, with a generated
//! configuration: the proxy users meet behind a corporate `HTTPS_PROXY`. It forwards cleartext
//! requests and opens `CONNECT` tunnels to any port, optionally behind Basic credentials (407
//! without them). It stops when the value is dropped.

use crate::program::{self, Running};

/// A running tinyproxy.
pub struct Tinyproxy(Running);

impl Tinyproxy {
    /// Starts tinyproxy on 127.0.0.1, allowing loopback clients, requiring `credentials`
    /// (`user:pass`) when given. `None` where tinyproxy is not installed (never in CI).
    ///
    /// # Panics
    /// If tinyproxy is installed but does not start.
    pub fn start(credentials: Option<&str>) -> Option<Tinyproxy> {
        let binary = program::installed("tinyproxy")?;
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("tinyproxy.log");
        let auth = credentials
            .and_then(|c| c.split_once(':'))
            .map(|(user, pass)| format!("BasicAuth {user} {pass}\n"))
            .unwrap_or_default();
        let running = Running::start(dir, log.clone(), |dir, port| {
            // No `ConnectPort` line: tunnels to every port (the test servers use random ones).
            let conf = format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 32\nLogLevel Info\n\
                 LogFile \"{log}\"\nPidFile \"{pid}\"\nAllow 127.0.0.1\nDisableViaHeader Yes\n{auth}",
                log = log.display(),
                pid = dir.join("tinyproxy.pid").display(),
            );
            let conf_path = dir.join("tinyproxy.conf");
            std::fs::write(&conf_path, conf).expect("tinyproxy.conf");
            // `-d`: in the foreground, so dropping the child stops it.
            program::spawn(
                &binary,
                &["-d".as_ref(), "-c".as_ref(), conf_path.as_os_str()],
            )
        });
        Some(Tinyproxy(running))
    }

    /// The proxy's URL, with `userinfo` (`user:pass@`) if given.
    pub fn url(&self, userinfo: &str) -> String {
        format!("http://{userinfo}127.0.0.1:{}", self.0.port())
    }

    /// What tinyproxy logged so far (its connections and requests).
    pub fn log(&self) -> String {
        self.0.log()
    }
}
