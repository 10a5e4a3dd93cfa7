//! `FtpServer`: a real FTP server on a free loopback port: pyftpdlib (Debian's python3-pyftpdlib,
//! which `tests/run.sh` installs) running `tests/servers/ftp_server.py` over a directory, with
//! anonymous reads and a user `ann` (password `pw`) who may write; with a test CA's leaf, explicit
//! FTPS is required. It stops when dropped.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::program::{self, Running};

const SCRIPT: &str = include_str!("../servers/ftp_server.py");

/// A running FTP server.
pub struct FtpServer(Running);

impl FtpServer {
    /// Starts the server over `root`; `None` where python3-pyftpdlib is not installed (never in
    /// CI).
    ///
    /// # Panics
    /// If it is installed but does not start.
    pub fn start(root: &Path) -> Option<FtpServer> {
        FtpServer::start_with(root, None)
    }

    /// Starts the server over `root`, requiring explicit FTPS with `ca`'s leaf certificate.
    pub fn start_tls(root: &Path, ca: &crate::TestCa) -> Option<FtpServer> {
        FtpServer::start_with(root, Some(ca))
    }

    fn start_with(root: &Path, ca: Option<&crate::TestCa>) -> Option<FtpServer> {
        let python = program::python_with("pyftpdlib", "python3-pyftpdlib")?;
        let dir = tempfile::tempdir().expect("temp dir");
        let script = dir.path().join("ftp_server.py");
        std::fs::write(&script, SCRIPT).expect("the server script");
        let log = dir.path().join("ftp.log");
        let tls = ca.map(|ca| {
            let (cert, key) = ca.leaf_pem();
            let (c, k) = (dir.path().join("leaf.pem"), dir.path().join("leaf.key"));
            std::fs::write(&c, cert).expect("leaf.pem");
            std::fs::write(&k, key).expect("leaf.key");
            (c, k)
        });
        let running = Running::start(dir, log.clone(), |_, port| {
            let mut command = Command::new(&python);
            command.arg(&script).arg(port.to_string()).arg(root);
            if let Some((c, k)) = &tls {
                command.arg(c).arg(k);
            }
            command
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("ftp log"))
                .spawn()
                .expect("python3 starts")
        });
        Some(FtpServer(running))
    }

    /// The URL of `path` on this server, with `userinfo` (`ann:pw@`) if given.
    pub fn url(&self, userinfo: &str, path: &str) -> String {
        format!("ftp://{userinfo}127.0.0.1:{}{path}", self.0.port())
    }

    /// What the server logged so far (its commands and replies).
    pub fn log(&self) -> String {
        self.0.log()
    }
}
