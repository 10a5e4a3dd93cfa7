//! The background service as a process, for the tests: `courier daemon` started and stopped in
//! a private runtime and data directory, and the commands that talk to it.

use std::process::Command;

/// A running `courier daemon`, killed if a test ends (or fails) without stopping it, so a failed
/// test never leaves one behind.
pub(crate) struct Daemon(pub(crate) std::process::Child);

impl Daemon {
    /// Sends `signal` (`TERM`, `KILL`) and waits for the exit.
    pub(crate) fn signal(&mut self, signal: &str) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        self.0.wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `courier ARGS` for the daemon whose socket is under `run` and state under `data`.
pub(crate) fn courier_at(run: &std::path::Path, data: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_courier"));
    c.args(args)
        .env("XDG_RUNTIME_DIR", run)
        .env("XDG_DATA_HOME", data);
    c
}

/// `courier daemon --allow-http` with its socket under `run` and its state under `data`.
pub(crate) fn start_daemon(run: &std::path::Path, data: &std::path::Path) -> Daemon {
    Daemon(
        courier_at(run, data, &["daemon", "--allow-http"])
            .spawn()
            .unwrap(),
    )
}

/// A user's private runtime and data directories for a daemon and the commands that talk to it,
/// and a directory for what `bg attach` hands over. Cheap to clone (into a blocking task).
#[derive(Clone)]
pub(crate) struct Home {
    root: std::sync::Arc<tempfile::TempDir>,
}

impl Home {
    pub(crate) fn new() -> Home {
        Home {
            root: std::sync::Arc::new(tempfile::tempdir().unwrap()),
        }
    }

    pub(crate) fn run(&self) -> std::path::PathBuf {
        self.root.path().join("run")
    }

    pub(crate) fn data(&self) -> std::path::PathBuf {
        self.root.path().join("data")
    }

    pub(crate) fn out(&self) -> std::path::PathBuf {
        self.root.path().join("out")
    }

    /// `courier ARGS` for this home's daemon.
    pub(crate) fn courier(&self, args: &[&str]) -> std::process::Output {
        courier_at(&self.run(), &self.data(), args)
            .output()
            .unwrap()
    }

    /// `courier daemon ARGS` (quiet), listening once this returns.
    pub(crate) fn daemon(&self, args: &[&str]) -> Daemon {
        let mut command = vec!["daemon"];
        command.extend(args);
        let daemon = Daemon(
            courier_at(&self.run(), &self.data(), &command)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_for_socket(&self.run());
        daemon
    }

    /// Waits (20 s at most) until `bg list --id ID --json` shows what `done` looks for.
    pub(crate) fn listed_until(&self, id: &str, done: impl Fn(&str) -> bool) {
        use std::time::{Duration, Instant};
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let listed = self.courier(&["bg", "list", "--id", id, "--json"]);
            let text = String::from_utf8_lossy(&listed.stdout).into_owned();
            if done(&text) {
                return;
            }
            assert!(Instant::now() < deadline, "{text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `bg attach --id ID` into [`Home::out`], its events on stderr.
    pub(crate) fn attach(&self, id: &str) -> std::process::Output {
        let out = self.out();
        self.courier(&[
            "bg",
            "attach",
            "--id",
            id,
            "-o",
            out.to_str().unwrap(),
            "--events",
            "-",
        ])
    }
}

/// Waits (20 s at most) for the daemon whose runtime directory is `run` to listen: a connection
/// is accepted (a dead daemon's socket file is still there after `kill -9`).
pub(crate) fn wait_for_socket(run: &std::path::Path) {
    use std::time::{Duration, Instant};
    let socket = run.join("courier").join("service.sock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "the daemon listens");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops the daemon with SIGTERM and checks it exits 0 (a clean stop).
pub(crate) fn stop_daemon(daemon: &mut Daemon) {
    assert_eq!(
        daemon.signal("TERM").code(),
        Some(0),
        "a clean stop on SIGTERM"
    );
}

/// `program`'s path on `PATH` or in the system directories.
pub(crate) fn which(program: &str) -> Result<std::path::PathBuf, ()> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into(), "/sbin".into()])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .ok_or(())
}
