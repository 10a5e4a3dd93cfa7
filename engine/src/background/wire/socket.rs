//! Where the service listens and who may connect: the socket in a private directory, the peer's
//! user id checked on every connection, the socket systemd hands over, and the one way an
//! application reaches the service (starting it when none answers).

use std::io;
use std::path::{Path, PathBuf};

use tokio::net::{UnixListener, UnixStream};

use super::{SOCKET, WireError};

/// Connects to the service at `socket`, starting one when none answers: `program daemon`, where
/// `program` is the one given ([`Configuration::background_daemon`]), else the one
/// `COURIER_DAEMON` names, else the `courier` beside this program, else `courier` on `PATH`; then
/// waits a few seconds for it. The service runs in a process group of its own, so the signals
/// that stop the application (Ctrl-C in a terminal) leave it running. A blocking call (it is local
/// and quick).
///
/// [`Configuration::background_daemon`]: crate::Configuration::background_daemon
///
/// # Errors
/// No service answers and none could be started: the message says how to start one.
pub fn connect_or_start(
    socket: &Path,
    program: Option<&Path>,
) -> Result<std::os::unix::net::UnixStream, String> {
    use std::os::unix::net::UnixStream as Blocking;
    use std::os::unix::process::CommandExt;
    if let Ok(stream) = Blocking::connect(socket) {
        return Ok(stream);
    }
    let program = program
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("COURIER_DAEMON").map(PathBuf::from))
        .or_else(|| {
            let beside = std::env::current_exe().ok()?.with_file_name("courier");
            beside.is_file().then_some(beside)
        })
        .unwrap_or_else(|| PathBuf::from("courier"));
    let how = "start it with `courier daemon` (or a systemd user unit), or name its program in \
               COURIER_DAEMON";
    // What the service says if it cannot start goes to a file no one else can open (unlinked
    // from the start), read back for the message. Not a pipe: a service that starts lives on
    // after this call, and its later lines must not meet a closed pipe.
    let said = tempfile::tempfile().ok();
    let stderr = said
        .as_ref()
        .and_then(|f| f.try_clone().ok())
        .map_or_else(std::process::Stdio::null, std::process::Stdio::from);
    let spawned = std::process::Command::new(&program)
        .arg("daemon")
        // A process group of its own: the Ctrl-C that stops the application in a terminal must
        // not stop the service that carries its transfers on.
        .process_group(0)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn();
    let Ok(mut child) = spawned else {
        return Err(format!(
            "no background service answers at {}: {how}",
            socket.display()
        ));
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        if let Ok(stream) = Blocking::connect(socket) {
            return Ok(stream);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let why = said.map(first_words).unwrap_or_default();
            return Err(format!(
                "no background service answers at {}: the one started ({}) ended ({status}){why}",
                socket.display(),
                program.display()
            ));
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!(
                "no background service answers at {} (one was started, but did not answer): {how}",
                socket.display()
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The first line or so of what a service that could not start wrote, as `: TEXT` (nothing
/// when it wrote nothing): at most 2,000 bytes, on one line.
fn first_words(mut file: std::fs::File) -> String {
    use std::io::{Read, Seek};
    let mut text = Vec::new();
    let read = file
        .seek(io::SeekFrom::Start(0))
        .and_then(|_| file.take(2000).read_to_end(&mut text));
    let text = String::from_utf8_lossy(&text);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match read {
        Ok(_) if !text.is_empty() => format!(": {text}"),
        _ => String::new(),
    }
}

/// Where the service's socket lives: `$XDG_RUNTIME_DIR/courier/`, else `courier/run` in the user's
/// data directory (never a shared temporary directory).
pub fn socket_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(runtime) => PathBuf::from(runtime).join("courier"),
        None => courier_storage::SessionDirectory::data_dir()
            .join("courier")
            .join("run"),
    }
}

/// The service's listener: the socket in `dir` (made readable by the user only), replacing a socket
/// a dead service left, and the user id connections must come from (the directory's owner).
///
/// # Errors
/// The directory or the socket cannot be made.
pub fn listen(dir: &Path) -> io::Result<(UnixListener, u32)> {
    courier_storage::directory::create_private_dir_all(dir)?;
    let owner = owner_of(dir)?;
    let path = dir.join(SOCKET);
    if std::fs::symlink_metadata(&path).is_ok_and(|m| !m.is_dir()) {
        // A socket left by a service that died; one alive would hold the journal, not only this.
        std::fs::remove_file(&path)?;
    }
    Ok((UnixListener::bind(&path)?, owner))
}

/// Takes over a socket already listening (systemd's socket activation), and the user id
/// connections must come from: the owner of the socket's directory, as [`listen`] gives.
///
/// # Errors
/// The socket has no path (abstract or unnamed), or it cannot be made non-blocking.
pub fn adopt(listener: std::os::unix::net::UnixListener) -> io::Result<(UnixListener, u32)> {
    let path = listener
        .local_addr()?
        .as_pathname()
        .map(Path::to_path_buf)
        .ok_or_else(|| io::Error::other("the socket handed over has no path"))?;
    let owner = owner_of(path.parent().unwrap_or(Path::new("/")))?;
    listener.set_nonblocking(true)?;
    Ok((UnixListener::from_std(listener)?, owner))
}

/// Accepts the connection only from `owner` (checked with `SO_PEERCRED` before anything is read).
///
/// # Errors
/// [`WireError::OtherUser`] for another user; the credentials cannot be read.
pub fn check_peer(stream: &UnixStream, owner: u32) -> Result<(), WireError> {
    let peer = stream.peer_cred()?.uid();
    if peer == owner {
        Ok(())
    } else {
        Err(WireError::OtherUser { peer })
    }
}

/// The user id that owns `path`.
fn owner_of(path: &Path) -> io::Result<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Ok(std::fs::metadata(path)?.uid())
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Err(io::Error::other("background sessions need a Unix system"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_socket_is_private_and_its_owner_is_the_only_peer_accepted() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("courier");
        let (listener, owner) = listen(&dir).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        let client = UnixStream::connect(dir.join(SOCKET)).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        check_peer(&server, owner).unwrap();
        assert!(matches!(
            check_peer(&server, owner.wrapping_add(1)),
            Err(WireError::OtherUser { .. })
        ));
        drop((client, listener));
        // A socket left behind by a dead service is replaced.
        let (_again, _) = listen(&dir).unwrap();
    }

    /// Another user cannot reach the socket: run as root (as CI is), a child process that drops to
    /// `nobody` cannot even open it for writing (the directory refuses it before `SO_PEERCRED`
    /// would, which `the_socket_is_private_...` checks).

    #[tokio::test]
    async fn a_process_of_another_user_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("courier");
        let (_listener, owner) = listen(&dir).unwrap();
        if owner != 0 {
            eprintln!("skipped: dropping to another user needs root");
            return;
        }
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            // The tempdir itself is 0700 as well; let the other user reach `dir`'s parent, so that
            // only the service's own directory stands in its way.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            let as_nobody = |path: &Path| {
                std::process::Command::new("sh")
                    .arg("-c")
                    .arg(format!("test -w '{}'", path.display()))
                    .uid(65534)
                    .gid(65534)
                    .status()
                    .unwrap()
                    .success()
            };
            // The check works: a file that anyone may write, beside the directory, is writable.
            let open = root.path().join("anyone");
            std::fs::write(&open, b"").unwrap();
            std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o666)).unwrap();
            assert!(as_nobody(&open), "the other user's process runs");
            assert!(
                !as_nobody(&dir.join(SOCKET)),
                "another user reached the socket"
            );
        }
    }
}
