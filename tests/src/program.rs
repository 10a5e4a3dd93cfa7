//! Running real server programs in tests: finding the binary, starting it on a free loopback port
//! once it listens there itself, and the running program stopped when dropped. Shared by
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

/// A loopback port nobody listens on right now (it may be taken again before it is used: see
/// [`start_listening`]).
///
/// # Panics
/// When no port can be bound.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Starts a program on `count` free loopback ports and waits (10 s at most) until it listens on each
/// of them itself. `spawn` gets the ports, writes whatever configuration names them, and starts
/// the program.
///
/// A port found free can be taken again before the program binds it, by another test's server
/// started at the same moment. The program then exits, and a probe that only connects would
/// reach the other server, which goes away with its test. So the wait is for this program's own
/// listening sockets, and a program that exits before it listens is started again on other
/// ports, five times at most.
///
/// # Panics
/// When the program does not listen in time, or exits five times; the message carries
/// `diagnostics()` (its log, say).
pub fn start_listening(
    count: usize,
    mut spawn: impl FnMut(&[u16]) -> Child,
    diagnostics: impl Fn() -> String,
) -> (Child, Vec<u16>) {
    for _ in 0..5 {
        let ports: Vec<u16> = (0..count).map(|_| free_port()).collect();
        let mut child = spawn(&ports);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if ports.iter().all(|&port| listens(&child, port)) {
                return (child, ports);
            }
            if child.try_wait().is_ok_and(|status| status.is_some()) {
                break; // it could not listen there: other ports
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("nothing listens on {ports:?}: {}", diagnostics());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!(
        "the program exited five times before it listened: {}",
        diagnostics()
    );
}

/// True when `child` listens on loopback `port`: a socket of its own in the LISTEN state there,
/// found through Linux's `/proc`. Where `/proc/net/tcp` cannot be read, whatever answers on the
/// port counts.
pub fn listens(child: &Child, port: u16) -> bool {
    let Ok(mut table) = std::fs::read_to_string("/proc/net/tcp") else {
        return std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    };
    table.push_str(&std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default());
    // Each line: slot, local address ("0100007F:1F90"), remote address, state ("0A" is LISTEN),
    // queues, timer, retransmits, uid, timeout, inode.
    let sockets: Vec<String> = table
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?.rsplit(':').next()?;
            let listening = u16::from_str_radix(local, 16).ok()? == port && fields.get(3)? == &"0A";
            let inode = fields.get(9)?;
            listening.then(|| format!("socket:[{inode}]"))
        })
        .collect();
    !sockets.is_empty()
        && std::fs::read_dir(format!("/proc/{}/fd", child.id())).is_ok_and(|fds| {
            fds.flatten().any(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|target| sockets.iter().any(|s| target.as_os_str() == s.as_str()))
            })
        })
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
    /// Starts a program that logs to `log` (in `dir`) on a free loopback port, once it listens
    /// there: `spawn` gets `dir` and the port, and starts it (see [`start_listening`]).
    ///
    /// # Panics
    /// When it does not listen within 10 s (the message carries the log).
    pub fn start(
        dir: tempfile::TempDir,
        log: PathBuf,
        mut spawn: impl FnMut(&Path, u16) -> Child,
    ) -> Running {
        let (child, ports) = start_listening(
            1,
            |ports| spawn(dir.path(), ports[0]),
            || std::fs::read_to_string(&log).unwrap_or_default(),
        );
        Running {
            child,
            _dir: dir,
            log,
            port: ports[0],
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A Python that listens on the port it is given, then waits to be stopped.
    fn listener(port: u16) -> Child {
        let script = format!(
            "import socket, time\ns = socket.socket()\ns.bind(('127.0.0.1', {port}))\ns.listen()\ntime.sleep(60)"
        );
        Command::new("/usr/bin/python3")
            .args(["-c", &script])
            .stderr(Stdio::null())
            .spawn()
            .expect("python3")
    }

    #[test]
    fn a_program_that_finds_its_port_taken_is_started_again_on_another() {
        if python_with("socket", "python3").is_none() {
            return;
        }
        let mut taken = Vec::new();
        let mut starts = 0;
        let (mut child, ports) = start_listening(
            1,
            |ports| {
                starts += 1;
                if starts == 1 {
                    // Another test's server takes the port first: something answers there, but
                    // not this program, which cannot bind and exits.
                    taken.push(TcpListener::bind(("127.0.0.1", ports[0])).unwrap());
                }
                listener(ports[0])
            },
            String::new,
        );
        assert_eq!(starts, 2, "started again after it could not listen");
        assert_ne!(ports[0], taken[0].local_addr().unwrap().port());
        assert!(listens(&child, ports[0]));
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn a_socket_someone_else_listens_on_is_not_the_programs() {
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = other.local_addr().unwrap().port();
        let mut sleeper = Command::new("sleep").arg("30").spawn().expect("sleep");
        assert!(!listens(&sleeper, port), "the port is this process's");
        let _ = sleeper.kill();
        let _ = sleeper.wait();
    }
}
