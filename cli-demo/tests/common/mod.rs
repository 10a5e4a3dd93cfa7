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
/// `module` imports, and waits until it listens. `None` where the module is missing, which only
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
    // A port found free can be taken again before the server binds it (by another test's
    // server, started at the same moment): then this server exits, and a probe that connects
    // would reach the other one, which goes away with its test. So the wait is for this child to
    // listen on the port itself; a child that exited tries another port.
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("/usr/bin/python3")
            .args(args.iter().map(|a| a.replace("{port}", &port.to_string())))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if listens(&child, port) {
                return Some(PythonServer { child, port });
            }
            if child.try_wait().expect("the server's status").is_some() {
                break; // it could not listen there: another port
            }
            assert!(std::time::Instant::now() < deadline, "{module} listens");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    panic!("{module} could not listen on any of five ports");
}

/// True when `child` listens on loopback `port`: a socket of its own in the LISTEN state there,
/// found through Linux's `/proc`. Where `/proc/net/tcp` cannot be read, whatever answers on the
/// port counts.
fn listens(child: &std::process::Child, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    };
    // Each line: slot, local address ("0100007F:1F90"), remote address, state ("0A" is LISTEN),
    // queues, timer, retransmits, uid, timeout, inode.
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?.rsplit(':').next()?;
            let listening = u16::from_str_radix(local, 16).ok()? == port && fields.get(3)? == &"0A";
            let inode = fields.get(9)?;
            listening.then(|| format!("socket:[{inode}]"))
        })
        .collect();
    if inodes.is_empty() {
        return false;
    }
    std::fs::read_dir(format!("/proc/{}/fd", child.id())).is_ok_and(|fds| {
        fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
        })
    })
}

/// A script of the engine's tests (`tests/servers/NAME`), for a Python server.
pub(crate) fn server_script(name: &str) -> String {
    format!("{}/../tests/servers/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Waits until the events file `events` mentions `needle`, sends SIGINT to `child`, and checks
/// what Ctrl-C must do: exit 130, a well-formed stream, and the task's completion as cancelled.
/// Returns the events.
pub(crate) fn interrupt_once_logged(
    mut child: std::process::Child,
    events: &std::path::Path,
    needle: &str,
) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !std::fs::read_to_string(events)
        .unwrap_or_default()
        .contains(needle)
    {
        assert!(std::time::Instant::now() < deadline, "no {needle} event");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(child.wait().unwrap().code(), Some(130));
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

/// `courier` with a private data directory (so default sessions keep their files apart) in `cwd`.
pub(crate) fn courier_in(cwd: &std::path::Path, data: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_courier"));
    c.args(args).current_dir(cwd).env("XDG_DATA_HOME", data);
    c
}
