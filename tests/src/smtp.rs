//! `SmtpServer`: a real SMTP server that speaks STARTTLS, on a free loopback port: Python's
//! `aiosmtpd` (Debian's python3-aiosmtpd, which `tests/run.sh` installs) with a test CA's leaf
//! certificate. The stream tasks' STARTTLS is tested against it. It stops when dropped.

use std::process::{Command, Stdio};

use crate::program::{self, Running};

/// A running aiosmtpd.
pub struct SmtpServer(Running);

impl SmtpServer {
    /// Starts aiosmtpd on 127.0.0.1 with STARTTLS from `ca`'s leaf certificate (for `localhost`
    /// and 127.0.0.1). `None` where python3-aiosmtpd is not installed (never in CI).
    ///
    /// # Panics
    /// If it is installed but does not start.
    pub fn start_starttls(ca: &crate::TestCa) -> Option<SmtpServer> {
        let python = program::python_with("aiosmtpd", "python3-aiosmtpd")?;
        let dir = tempfile::tempdir().expect("temp dir");
        let (cert, key) = ca.leaf_pem();
        let (cert_path, key_path) = (dir.path().join("leaf.pem"), dir.path().join("leaf.key"));
        std::fs::write(&cert_path, cert).expect("leaf.pem");
        std::fs::write(&key_path, key).expect("leaf.key");
        let log = dir.path().join("smtp.log");
        let running = Running::start(dir, log.clone(), |_, port| {
            Command::new(&python)
                .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
                .arg("--tlscert")
                .arg(&cert_path)
                .arg("--tlskey")
                .arg(&key_path)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("smtp log"))
                .spawn()
                .expect("python3 starts")
        });
        Some(SmtpServer(running))
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.0.port()
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        self.0.log()
    }
}
