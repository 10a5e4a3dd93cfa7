//! Running real server programs in tests: finding the binary, a free loopback port, and waiting
//! until the program listens, and the running program stopped when dropped. Shared by
//! [`Nginx`](crate::Nginx), [`Tinyproxy`](crate::Tinyproxy) and [`Microsocks`](crate::Microsocks).

use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The program `name`: on `PATH`, or in `/usr/sbin`. `None` when it is not installed, which only
/// a machine outside CI may be: `tests/run.sh` installs the programs, and in CI a missing one
/// fails the test instead of skipping it.
///
/// # Panics
/// In CI (`CI` set), when the program is missing.
pub fn installed(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    let found = on_path.or_else(|| {
        let sbin = PathBuf::from("/usr/sbin").join(name);
        sbin.is_file().then_some(sbin)
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is not installed: tests/run.sh installs it in CI"
        );
        eprintln!("skipped: {name} is not installed");
    }
    found
}

/// Debian's Python (not a user's, which may lack the library), if it can import `module` (from
/// the Debian `package`, which `tests/run.sh` installs). `None` otherwise, which only a machine
/// outside CI may be.
///
/// # Panics
/// In CI (`CI` set), when it cannot.
pub fn python_with(module: &str, package: &str) -> Option<PathBuf> {
    let python = PathBuf::from("/usr/bin/python3");
    let usable = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !usable {
        assert!(
            std::env::var_os("CI").is_none(),
            "{package} is not installed: tests/run.sh installs it in CI"
        );
        eprintln!("skipped: {package} is not installed");
        return None;
    }
    Some(python)
}

/// Starts `binary` with `args`, its output discarded (the programs log to files of their own).
///
/// # Panics
/// When it cannot be started.
pub fn spawn(binary: &Path, args: &[&OsStr]) -> Child {
    Command::new(binary)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()))
}

/// A loopback port nobody listens on right now.
///
/// # Panics
/// When no port can be bound.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Waits (10 s at most) until something listens on `port`.
///
/// # Panics
/// When nothing does in time; the message carries `diagnostics()` (a log, say).
pub fn wait_until_listening(port: u16, diagnostics: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on {port}: {}",
            diagnostics()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A program started for a test: its process, its scratch directory and log, and the loopback port
/// it listens on. Stopped (killed and reaped) when dropped.
pub struct Running {
    child: Child,
    _dir: tempfile::TempDir,
    log: PathBuf,
    port: u16,
}

impl Running {
    /// Takes charge of `child`, which logs to `log` (in `dir`) and listens on `port`, once it
    /// listens.
    ///
    /// # Panics
    /// When nothing listens on `port` within 10 s (the message carries the log).
    pub fn listening(child: Child, dir: tempfile::TempDir, log: PathBuf, port: u16) -> Running {
        let running = Running {
            child,
            _dir: dir,
            log,
            port,
        };
        wait_until_listening(port, || running.log());
        running
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
