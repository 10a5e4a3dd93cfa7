//! `WebSocketServer`: a real WebSocket server on a free loopback port: Python's `websockets`
//! library (Debian's python3-websockets, which `tests/run.sh` installs) running
//! `tests/servers/websockets_echo.py`, over `ws://` or, with a test CA's leaf certificate,
//! `wss://`. Its paths are described in that script. It stops when the value is dropped.

use std::process::{Command, Stdio};

use crate::program::{self, Running};

/// The script, kept in the repository beside the other servers' configurations.
const SCRIPT: &str = include_str!("../servers/websockets_echo.py");

/// A running WebSocket server.
pub struct WebSocketServer {
    running: Running,
    tls: bool,
}

impl WebSocketServer {
    /// Starts the server over `ws://`. `None` where python3-websockets is not installed (never
    /// in CI).
    ///
    /// # Panics
    /// If it is installed but the server does not start.
    pub fn start() -> Option<WebSocketServer> {
        WebSocketServer::start_with(None)
    }

    /// Starts the server over `wss://`, with `ca`'s leaf certificate (for `localhost` and
    /// 127.0.0.1).
    pub fn start_tls(ca: &crate::TestCa) -> Option<WebSocketServer> {
        WebSocketServer::start_with(Some(ca))
    }

    fn start_with(ca: Option<&crate::TestCa>) -> Option<WebSocketServer> {
        let python = program::python_with("websockets", "python3-websockets")?;
        let dir = tempfile::tempdir().expect("temp dir");
        let script = dir.path().join("websockets_echo.py");
        std::fs::write(&script, SCRIPT).expect("the server script");
        let log = dir.path().join("server.log");
        let tls = ca.map(|ca| {
            let (cert, key) = ca.leaf_pem();
            let (cert_path, key_path) = (dir.path().join("leaf.pem"), dir.path().join("leaf.key"));
            std::fs::write(&cert_path, cert).expect("leaf.pem");
            std::fs::write(&key_path, key).expect("leaf.key");
            (cert_path, key_path)
        });
        let running = Running::start(dir, log.clone(), |_, port| {
            let mut command = Command::new(&python);
            command.arg(&script).arg(port.to_string());
            if let Some((cert_path, key_path)) = &tls {
                command.arg(cert_path).arg(key_path);
            }
            command
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("server log"))
                .spawn()
                .expect("python3 starts")
        });
        Some(WebSocketServer {
            running,
            tls: ca.is_some(),
        })
    }

    /// The URL of `path` on this server (`ws://127.0.0.1:PORT/path`, or `wss://localhost:...`).
    pub fn url(&self, path: &str) -> String {
        if self.tls {
            format!("wss://localhost:{}{path}", self.running.port())
        } else {
            format!("ws://127.0.0.1:{}{path}", self.running.port())
        }
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        self.running.log()
    }
}
