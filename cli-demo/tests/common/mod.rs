//! What the `courier` black-box tests share: running the binary with a private data directory,
//! and reading and checking its `--events -` stream.
#![allow(dead_code)] // each test file uses its own share

pub(crate) mod daemon;

use std::process::{Command, Output};

use serde_json::Value;

/// A data directory for the default sessions these tests run, so they never touch the user's.
pub(crate) fn data_home() -> &'static std::path::Path {
    static HOME: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    HOME.get_or_init(|| tempfile::tempdir().expect("temp dir"))
        .path()
}

pub(crate) fn courier(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(args)
        .env("XDG_DATA_HOME", data_home())
        .output()
        .expect("run courier")
}

/// Runs `courier ARGS` with `input` on its stdin, which stays open for `hold` more before it is
/// closed (the end of input, for `ws` and `stream`).
pub(crate) fn courier_with_stdin(args: &[&str], input: &str, hold: std::time::Duration) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(args)
        .env("XDG_DATA_HOME", data_home())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run courier");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input.as_bytes()).expect("write stdin");
    std::thread::sleep(hold);
    drop(stdin);
    child.wait_with_output().expect("courier's output")
}

/// Asserts that a run of `courier` exited 0, showing its stderr when it did not.
#[track_caller]
pub(crate) fn assert_success(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The event lines on stderr (other stderr lines, such as the error summary, are skipped).
pub(crate) fn events(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("each event line is JSON"))
        .collect()
}

pub(crate) fn names(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect()
}

/// The contract every stream keeps: seq counts 1, 2, 3...; ms never goes back; nothing after a
/// task's did_complete; did_become_invalid last and once.
pub(crate) fn check_stream(events: &[Value]) {
    let mut done = std::collections::HashSet::new();
    let mut last_ms = 0.0;
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["seq"].as_u64(), Some(i as u64 + 1), "seq of {e}");
        let ms = e["ms"].as_f64().expect("ms");
        assert!(ms >= last_ms, "ms goes forward: {e}");
        last_ms = ms;
        if let Some(t) = e["task"].as_u64() {
            assert!(
                !done.contains(&t),
                "event after task {t}'s did_complete: {e}"
            );
            if e["event"] == "did_complete" {
                done.insert(t);
            }
        }
    }
    let n = names(events);
    assert_eq!(n.iter().filter(|e| *e == "did_become_invalid").count(), 1);
    assert_eq!(n.last().map(String::as_str), Some("did_become_invalid"));
}

pub(crate) fn stderr_events(out: &Output) -> Vec<Value> {
    let ev = events(out);
    check_stream(&ev);
    ev
}

/// A server run by Debian's Python for a test (a library nobody here wrote: `websockets`,
/// `aiosmtpd`, `pyftpdlib`); stopped when dropped.
pub(crate) struct PythonServer {
    child: std::process::Child,
    /// The loopback port it listens on.
    pub(crate) port: u16,
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `/usr/bin/python3 ARGS` (each `{port}` in them replaced by a free loopback port) once
/// `module` imports, and waits until it listens there itself. `None` where the module is missing, which only
/// a machine outside CI may be (`tests/run.sh` installs it).
pub(crate) fn python_server(module: &str, args: &[String]) -> Option<PythonServer> {
    let usable = Command::new("/usr/bin/python3")
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success());
    if !usable {
        assert!(
            std::env::var_os("CI").is_none(),
            "tests/run.sh installs the Python module {module}"
        );
        return None;
    }
    let (child, ports) = courier_tests::program::start_listening(
        1,
        |ports| {
            Command::new("/usr/bin/python3")
                .args(
                    args.iter()
                        .map(|a| a.replace("{port}", &ports[0].to_string())),
                )
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("python3")
        },
        || format!("{module} listens"),
    );
    Some(PythonServer {
        child,
        port: ports[0],
    })
}

/// nginx serving `root` (over TLS with `ca`'s leaf when given); `None` where it is not installed,
/// which CI never allows (`tests/run.sh` installs it).
pub(crate) fn nginx(
    root: &std::path::Path,
    ca: Option<&courier_tests::TestCa>,
) -> Option<courier_tests::Nginx> {
    let started = match ca {
        Some(ca) => courier_tests::Nginx::start_tls(root, ca),
        None => courier_tests::Nginx::start(root),
    };
    assert!(
        started.is_some() || std::env::var_os("CI").is_none(),
        "tests/run.sh installs nginx"
    );
    started
}

/// A script of the engine's tests (`tests/servers/NAME`), for a Python server.
pub(crate) fn server_script(name: &str) -> String {
    format!("{}/../tests/servers/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Waits until the events file `events` mentions `needle`, sends SIGINT to `child`, and checks
/// what Ctrl-C must do: exit 130, a well-formed stream, and the task's completion as cancelled.
/// Returns the events.
pub(crate) fn interrupt_once_logged(
    child: std::process::Child,
    events: &std::path::Path,
    needle: &str,
) -> Vec<Value> {
    stop_once_logged(child, events, needle, "INT")
}

/// As [`interrupt_once_logged`] with `signal` (`INT`, `TERM`): the exit status is 128 and its
/// number (130, 143).
pub(crate) fn stop_once_logged(
    mut child: std::process::Child,
    events: &std::path::Path,
    needle: &str,
    signal: &str,
) -> Vec<Value> {
    signal_when(
        &child,
        || {
            std::fs::read_to_string(events)
                .unwrap_or_default()
                .contains(needle)
        },
        signal,
    );
    let number = match signal {
        "INT" => 2,
        "TERM" => 15,
        other => panic!("no number for SIG{other}"),
    };
    assert_eq!(child.wait().unwrap().code(), Some(128 + number));
    let ev: Vec<Value> = std::fs::read_to_string(events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    check_stream(&ev);
    let complete = ev.iter().find(|e| e["event"] == "did_complete").unwrap();
    assert_eq!(complete["error"]["code"], "cancelled");
    ev
}

/// Waits (at most 20 s) until `ready` holds, then sends `child` SIG`signal` (`INT`, `TERM`).
#[track_caller]
pub(crate) fn signal_when(child: &std::process::Child, ready: impl Fn() -> bool, signal: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "never ready for SIG{signal}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// `courier` with a private data directory (so default sessions keep their files apart) in `cwd`.
pub(crate) fn courier_in(cwd: &std::path::Path, data: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_courier"));
    c.args(args).current_dir(cwd).env("XDG_DATA_HOME", data);
    c
}
