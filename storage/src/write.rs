//! How the session writes and reads the files it keeps, one way for all of them.
//!
//! A file is replaced atomically: written aside under a fresh name (created exclusively, readable and
//! writable by the user only), synced, renamed over the old one, and the directory synced, so a crash
//! leaves the old file or the new one and never half of one. A link planted at the name is replaced by
//! the rename, never written through (wget CVE-2014-4877, curl CVE-2023-32001); files are opened for
//! reading or appending without following links; reads are bounded. A device, a FIFO or the
//! process's own standard output named as a destination (`/dev/null`, `/dev/stdout`) is written
//! into, never replaced ([`open_stream_destination`]).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

/// The largest file the session reads back whole (its cookie jar, its credentials, a cached response).
pub const MAX_READ: u64 = 64 << 20;

/// How the names of files written aside (then renamed into place) begin.
pub(crate) const ASIDE_PREFIX: &str = ".courier-";

/// What a write survives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Synced to the device (the data, then the directory entry): survives a power loss or an
    /// operating system crash. Every store the session keeps, and a download's checkpoint when it
    /// stops (suspended, cancelled for resume data, failed).
    Synced,
    /// In the page cache, which is what a killed or crashed process leaves behind: no sync, but
    /// still written aside and renamed, so a reader sees the old file or the new one. A running
    /// download's checkpoints (its first, and one every second) are of this kind: a sync each time
    /// made a fast download wait for the disk (a 1 GiB download: 1.4-3 s against 0.7-1 s
    /// without, in `courier-bench`), and 10,000 downloads at once queue behind the disk. After a
    /// power loss, the tail digest still refuses a file whose last bytes did not reach the disk.
    PageCache,
}

/// Replaces the file at `path` with `bytes`, atomically and privately (0600); synced when
/// `durability` asks for it.
///
/// # Errors
/// The file cannot be written or renamed (a full disk): the old file, if any, stays as it was and
/// nothing is left aside.
pub fn replace(path: &Path, bytes: &[u8], durability: Durability) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // tempfile creates with O_CREAT | O_EXCL and mode 0600, and removes the file if we fail.
    let mut aside = tempfile::Builder::new()
        .prefix(crate::write::ASIDE_PREFIX)
        .suffix(".new")
        .tempfile_in(dir)?;
    aside.write_all(bytes)?;
    if durability == Durability::Synced {
        aside.as_file().sync_all()?;
    }
    aside.persist(path).map_err(|e| e.error)?;
    if durability == Durability::Synced {
        sync_dir(dir);
    }
    Ok(())
}

/// Removes the file at `path`; one that is not there is already removed.
///
/// # Errors
/// It is there and cannot be removed.
pub fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Whether [`move_into_place`] may replace a file already at the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// Replace it (the user named the destination).
    Replace,
    /// Refuse: the destination was named by a server (curl's `-J`, CVE-2020-8177).
    Keep,
}

/// Moves a finished download from the session directory to `to`, as an ordinary file (0666 less
/// the process's umask, as curl and wget create theirs: 0644 under the usual 022, 0600 under 077),
/// even across file systems. The file's permissions are set on the session's own file before it moves,
/// never on whatever is at `to`; a link at `to` is replaced (or, with [`Existing::Keep`], makes the
/// move fail), never followed, unless it leads to a device or a pipe: with [`Existing::Replace`],
/// the bytes are written into what [`open_stream_destination`] opens (`/dev/null`, `/dev/stdout`),
/// never over it.
///
/// # Errors
/// The move or the copy failed (`to` is then as it was, `from` still in place); with
/// [`Existing::Keep`], [`io::ErrorKind::AlreadyExists`] when something is at `to`.
pub fn move_into_place(from: &Path, to: &Path, existing: Existing) -> io::Result<()> {
    if existing == Existing::Replace
        && let Some(mut stream) = open_stream_destination(to)?
    {
        // A device or a pipe the user named (`-o /dev/null`, `-o /dev/stdout`): the bytes go
        // into it, and the download's own file goes.
        let mut source = open_no_follow(OpenOptions::new().read(true), from)?;
        io::copy(&mut source, &mut stream)?;
        stream.flush()?;
        return std::fs::remove_file(from);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let file = open_no_follow(OpenOptions::new().read(true), from)?;
        file.set_permissions(std::fs::Permissions::from_mode(ordinary_file_mode()))?;
    }
    let moved = match existing {
        Existing::Replace => std::fs::rename(from, to),
        // A hard link is created only where nothing is: atomic, and no race with a planted file.
        Existing::Keep => std::fs::hard_link(from, to).and_then(|()| std::fs::remove_file(from)),
    };
    match moved {
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => copy_into_place(from, to, existing),
        other => other,
    }?;
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        sync_dir(dir);
    }
    Ok(())
}

/// [`move_into_place`] across file systems: copied aside beside `to` (a fresh file), then renamed.
fn copy_into_place(from: &Path, to: &Path, existing: Existing) -> io::Result<()> {
    let dir = to
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut source = open_no_follow(OpenOptions::new().read(true), from)?;
    let mut aside = tempfile::Builder::new()
        .prefix(crate::write::ASIDE_PREFIX)
        .suffix(".new")
        .tempfile_in(dir)?;
    io::copy(&mut source, aside.as_file_mut())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        aside
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(ordinary_file_mode()))?;
    }
    aside.as_file().sync_all()?;
    match existing {
        Existing::Replace => aside.persist(to).map_err(|e| e.error)?,
        Existing::Keep => aside.persist_noclobber(to).map_err(|e| e.error)?,
    };
    std::fs::remove_file(from)
}

/// The mode of a file created the ordinary way: 0666 less the process's umask. Read from
/// `/proc/self/status` (Linux 4.7 and later), once: setting the umask to read it (`umask(2)`)
/// would change it for every thread meanwhile. Without it, the usual 022.
#[cfg(unix)]
fn ordinary_file_mode() -> u32 {
    static MODE: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *MODE.get_or_init(|| {
        let umask = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("Umask:"))
                    .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            })
            .unwrap_or(0o022);
        0o666 & !umask
    })
}

/// Syncs a directory, so a rename in it survives a crash. Best effort: not every platform or file
/// system can.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Opens `path` with `options`, refusing to follow a symbolic link at its last component.
///
/// # Errors
/// As [`OpenOptions::open`]; a link gives an error (`ELOOP` on Linux).
pub fn open_no_follow(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW);
    }
    options.open(path)
}

/// Opens `to` to write into it as it is, when it is a character device (`/dev/null`, a terminal)
/// or a FIFO, named or reached through links, or a link to one of this process's own descriptors
/// (`/dev/stdout`, `/dev/fd/1`, whatever the shell sent them to): curl writes into such a
/// destination, and replacing it would destroy a device node or a system link (as root,
/// `/dev/null` or `/dev/stdout` for the whole machine). `None` for a file to create or replace,
/// or nothing at all.
///
/// A link is followed here only to such a destination: one planted in a shared directory cannot
/// lead a download over another file. A FIFO no process reads fails at once instead of waiting
/// for one.
///
/// # Errors
/// `to` is a block device (a download is never written over a disk) or a socket; a FIFO has no
/// reader; the device cannot be opened.
pub fn open_stream_destination(to: &Path) -> io::Result<Option<File>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
        let kind = match std::fs::metadata(to) {
            Ok(meta) => meta.file_type(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            // Not for this function to say (a link loop, a path through a file): the caller's
            // own open or move meets it.
            Err(_) => return Ok(None),
        };
        let refused = |what: &str| {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is {what}: not written to", to.display()),
            ))
        };
        if kind.is_block_device() {
            return refused("a block device");
        }
        if kind.is_socket() {
            return refused("a socket");
        }
        if kind.is_fifo() {
            // Opening a FIFO to write waits for a reader: asked without waiting first (ENXIO
            // when there is none), then opened as usual, which the reader lets through at once.
            // The first stays open until the second is: a reader that saw every writer gone
            // would take it for the end.
            let probe = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(to)
                .map_err(|e| match e.raw_os_error() {
                    Some(libc::ENXIO) => io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        format!("no process reads the FIFO {}", to.display()),
                    ),
                    _ => e,
                })?;
            let opened = OpenOptions::new().write(true).open(to);
            drop(probe);
            return opened.map(Some);
        }
        if kind.is_char_device() {
            return OpenOptions::new().write(true).open(to).map(Some);
        }
        if leads_to_own_descriptor(to) {
            // This process's own standard output (or another descriptor of its), which a shell
            // sent to a file: written on at its end, as the shell's `>` or `>>` left it.
            return OpenOptions::new().append(true).open(to).map(Some);
        }
        Ok(None)
    }
    #[cfg(not(unix))]
    {
        let _ = to;
        Ok(None)
    }
}

/// True when `path`, or a link it leads through, names one of this process's own descriptors
/// (`/dev/stdout` leads to `/proc/self/fd/1`; `/dev/fd/N`).
#[cfg(unix)]
fn leads_to_own_descriptor(path: &Path) -> bool {
    const OWN: [&str; 3] = ["/proc/self/fd/", "/proc/thread-self/fd/", "/dev/fd/"];
    let mut at = path.to_path_buf();
    // As many hops as the kernel follows (its `MAXSYMLINKS`).
    for _ in 0..40 {
        if OWN.iter().any(|own| at.starts_with(own)) {
            return true;
        }
        match std::fs::read_link(&at) {
            Ok(target) => at = at.parent().unwrap_or(Path::new("/")).join(target),
            Err(_) => return false,
        }
    }
    false
}

/// Reads the whole file at `path`, if it is a regular file (not a link) of at most [`MAX_READ`]
/// bytes.
///
/// # Errors
/// The file is missing, a link, too large, or unreadable.
pub fn read_bounded(path: &Path) -> io::Result<Vec<u8>> {
    let file = open_no_follow(OpenOptions::new().read(true), path)?;
    let len = file.metadata()?.len();
    if len > MAX_READ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is larger than {MAX_READ} bytes", path.display()),
        ));
    }
    let mut out = Vec::with_capacity(len as usize);
    file.take(MAX_READ + 1).read_to_end(&mut out)?;
    if out.len() as u64 > MAX_READ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the file grew too large",
        ));
    }
    Ok(out)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A FIFO at `dir/name`, a thread that reads it to its end, and a writer held open (the
    /// reader's end comes once it is dropped, after the writes under test).
    fn fifo_with_reader(
        dir: &Path,
        name: &str,
    ) -> (std::path::PathBuf, std::thread::JoinHandle<Vec<u8>>, File) {
        let fifo = dir.join(name);
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let reading = fifo.clone();
        let reader = std::thread::spawn(move || std::fs::read(reading).unwrap());
        // Waits for the reader to open its end.
        let held = OpenOptions::new().write(true).open(&fifo).unwrap();
        (fifo, reader, held)
    }

    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn a_download_named_to_a_fifo_or_a_device_goes_into_it_never_over_it() {
        let dir = tempfile::tempdir().unwrap();
        let download = dir.path().join("download");
        std::fs::write(&download, b"the body").unwrap();
        let (fifo, reader, held) = fifo_with_reader(dir.path(), "fifo");
        move_into_place(&download, &fifo, Existing::Replace).unwrap();
        drop(held);
        assert_eq!(reader.join().unwrap(), b"the body");
        assert!(
            std::fs::symlink_metadata(&fifo)
                .unwrap()
                .file_type()
                .is_fifo()
        );
        assert!(!download.exists(), "the download's own file goes");

        // Through a link to this process's own descriptor (as `/dev/stdout` leads): a pipe here.
        let (mut read, write) = std::io::pipe().unwrap();
        let own = dir.path().join("own");
        use std::os::fd::AsRawFd;
        std::os::unix::fs::symlink(format!("/proc/self/fd/{}", write.as_raw_fd()), &own).unwrap();
        std::fs::write(&download, b"to the pipe").unwrap();
        move_into_place(&download, &own, Existing::Replace).unwrap();
        drop(write);
        let mut got = Vec::new();
        read.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"to the pipe");
        assert!(
            std::fs::symlink_metadata(&own)
                .unwrap()
                .file_type()
                .is_symlink()
        );

        // A character device: written into, left as it is.
        let null = Path::new("/dev/null");
        assert!(open_stream_destination(null).unwrap().is_some());
        // Nothing there, a file, a link to a file: for the caller to create or replace.
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        for plain in [dir.path().join("none").as_path(), &file, &link] {
            assert!(
                open_stream_destination(plain).unwrap().is_none(),
                "{plain:?}"
            );
        }
        // With `Keep` (a name a server gave), what is there is kept: the FIFO is refused.
        std::fs::write(&download, b"x").unwrap();
        let kept = move_into_place(&download, &fifo, Existing::Keep).unwrap_err();
        assert_eq!(kept.kind(), io::ErrorKind::AlreadyExists);
    }

    #[test]
    fn a_fifo_nobody_reads_fails_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let err = open_stream_destination(&fifo).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
        assert!(
            err.to_string().contains("no process reads the FIFO"),
            "{err}"
        );
    }

    #[test]
    fn a_replaced_file_is_private_and_a_planted_link_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = dir.path().join("cookies.json");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        replace(&path, b"new", Durability::Synced).unwrap();
        assert_eq!(
            std::fs::read(&victim).unwrap(),
            b"precious",
            "not written through"
        );
        let mode = std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "the user's file keeps its permissions");
        assert!(
            !std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 2, "nothing left aside");
    }

    #[test]
    fn a_moved_download_never_writes_through_a_link_nor_changes_the_users_file() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
        let download = |name: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, b"downloaded").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            p
        };
        let to = dir.path().join("out.bin");
        std::os::unix::fs::symlink(&victim, &to).unwrap();
        // Kept: the link (something at `to`) makes the move fail, and nothing changes.
        let from = download("a.part");
        let err = move_into_place(&from, &to, Existing::Keep).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(from.exists(), "the download stays where it was");
        // Replaced: the link itself goes, the file it pointed to is untouched.
        move_into_place(&from, &to, Existing::Replace).unwrap();
        assert_eq!(std::fs::read(&to).unwrap(), b"downloaded");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode(&victim),
            0o600,
            "the user's file keeps its permissions"
        );
        // As the kernel makes an ordinary file here (0666 less the umask).
        let ordinary = dir.path().join("ordinary");
        std::fs::write(&ordinary, b"").unwrap();
        assert_eq!(
            mode(&to),
            mode(&ordinary),
            "a saved download is an ordinary file"
        );
        // Kept, with nothing there: moved.
        let fresh = dir.path().join("fresh.bin");
        move_into_place(&download("b.part"), &fresh, Existing::Keep).unwrap();
        assert_eq!(std::fs::read(&fresh).unwrap(), b"downloaded");
    }

    #[test]
    fn a_copy_across_file_systems_is_made_aside_then_renamed() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("a.part");
        std::fs::write(&from, b"downloaded").unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let to = dir.path().join("out.bin");
        std::os::unix::fs::symlink(&victim, &to).unwrap();
        assert!(copy_into_place(&from, &to, Existing::Keep).is_err());
        copy_into_place(&from, &to, Existing::Replace).unwrap();
        assert_eq!(std::fs::read(&to).unwrap(), b"downloaded");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(!from.exists());
    }

    #[test]
    fn reads_refuse_links_and_large_files() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::write(&real, b"data").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(read_bounded(&real).unwrap(), b"data");
        assert!(read_bounded(&link).is_err());
        let big = dir.path().join("big");
        File::create(&big).unwrap().set_len(MAX_READ + 1).unwrap();
        assert!(read_bounded(&big).is_err());
    }
}
