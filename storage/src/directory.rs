//! The session directory: the one place where a session writes files.
//!
//! Default sessions share a stable directory under the user's data directory
//! (`$XDG_DATA_HOME/courier/sessions/default` on Linux), so resume data made by one process can be used
//! by the next. Ephemeral sessions get a private temporary directory (mode 0700) that is removed when the
//! last holder of the [`SessionDirectory`] drops it. Download files are created only inside the
//! directory, under names Courier picks; a name read back from resume data is accepted only if it is a
//! single plain file name inside it ([`SessionDirectory::resolve`]).

use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use crate::download::PartialFile;

/// Where a session keeps its files.
#[derive(Debug)]
pub struct SessionDirectory {
    kind: Kind,
    /// Created on first use, so sessions that never download touch no disk.
    ready: OnceLock<Result<PathBuf, io::ErrorKind>>,
    /// The key that seals resume data, read or made on first use.
    key: OnceLock<Result<[u8; 32], io::ErrorKind>>,
}

#[derive(Debug)]
enum Kind {
    /// A directory that outlives the session.
    Persistent(PathBuf),
    /// A private temporary directory inside `parent`, removed on drop.
    Ephemeral {
        parent: PathBuf,
        dir: OnceLock<tempfile::TempDir>,
    },
}

/// The prefix and suffix of a download's partial file.
const PARTIAL_PREFIX: &str = "download-";
const PARTIAL_SUFFIX: &str = ".part";
/// The suffix of a partial file's checkpoint record, beside it.
pub(crate) const CHECKPOINT_SUFFIX: &str = ".checkpoint";

impl SessionDirectory {
    /// The directory of default sessions: `<data dir>/courier/sessions/default`, or `path` when given.
    pub fn persistent(path: Option<PathBuf>) -> SessionDirectory {
        let path = path.unwrap_or_else(default_location);
        SessionDirectory {
            kind: Kind::Persistent(path),
            ready: OnceLock::new(),
            key: OnceLock::new(),
        }
    }

    /// A private directory for an ephemeral session, created inside `parent` (the system's temporary
    /// directory when `None`) on first use and removed when this value is dropped.
    pub fn ephemeral(parent: Option<PathBuf>) -> SessionDirectory {
        SessionDirectory {
            kind: Kind::Ephemeral {
                parent: parent.unwrap_or_else(std::env::temp_dir),
                dir: OnceLock::new(),
            },
            ready: OnceLock::new(),
            key: OnceLock::new(),
        }
    }

    /// The user's data directory (`$XDG_DATA_HOME`, usually `~/.local/share`); the temporary
    /// directory when the platform has none.
    pub fn data_dir() -> PathBuf {
        dirs::data_dir().unwrap_or_else(std::env::temp_dir)
    }

    /// True for an ephemeral session's private directory.
    pub fn is_ephemeral(&self) -> bool {
        matches!(self.kind, Kind::Ephemeral { .. })
    }

    /// A persistent directory's path, as configured (without creating it); `None` for an
    /// ephemeral one.
    pub fn persistent_path(&self) -> Option<&Path> {
        match &self.kind {
            Kind::Persistent(path) => Some(path),
            Kind::Ephemeral { .. } => None,
        }
    }

    /// The directory's path, creating it on first use.
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn path(&self) -> io::Result<&Path> {
        let ready = self
            .ready
            .get_or_init(|| self.create().map_err(|e| e.kind()));
        match ready {
            Ok(p) => Ok(p.as_path()),
            Err(kind) => Err(io::Error::new(*kind, "cannot create the session directory")),
        }
    }

    fn create(&self) -> io::Result<PathBuf> {
        match &self.kind {
            Kind::Persistent(path) => {
                create_private_dir_all(path)?;
                Ok(path.clone())
            }
            Kind::Ephemeral { parent, dir } => {
                std::fs::create_dir_all(parent)?;
                let mut builder = tempfile::Builder::new();
                builder.prefix("courier-ephemeral-");
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    builder.permissions(std::fs::Permissions::from_mode(0o700));
                }
                let made = builder.tempdir_in(parent)?;
                let path = made.path().to_path_buf();
                let _ = dir.set(made);
                Ok(path)
            }
        }
    }

    /// Creates a new, empty partial file for a download, under a fresh name.
    ///
    /// # Errors
    /// The directory or the file cannot be created.
    pub fn create_partial(&self) -> io::Result<PartialFile> {
        let dir = self.path()?;
        let (file, path) = tempfile::Builder::new()
            .prefix(PARTIAL_PREFIX)
            .suffix(PARTIAL_SUFFIX)
            .tempfile_in(dir)?
            .keep()
            .map_err(|e| e.error)?;
        PartialFile::created(file, path)
    }

    /// The key that seals this directory's resume data ([`crate::seal`]): kept in the directory
    /// for a default session, in memory for an ephemeral one.
    ///
    /// Call it once off an async runtime's workers: it may read or write the key's file.
    ///
    /// # Errors
    /// The key cannot be read or made.
    pub fn resume_key(&self) -> io::Result<[u8; 32]> {
        let key = self.key.get_or_init(|| {
            match &self.kind {
                Kind::Persistent(_) => self.path().and_then(crate::seal::persistent_key),
                Kind::Ephemeral { .. } => crate::seal::new_key(),
            }
            .map_err(|e| e.kind())
        });
        key.map_err(|kind| io::Error::new(kind, "cannot read or make the resume-data key"))
    }

    /// Replaces the directory's file `name` (one of Courier's own: `cookies.json`, `credentials`)
    /// with `bytes`, atomically and readable by the user only ([`crate::write::replace`]).
    ///
    /// # Errors
    /// The directory or the file cannot be written.
    pub fn store(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        crate::write::replace(
            &self.path()?.join(plain(name)?),
            bytes,
            crate::write::Durability::Synced,
        )
    }

    /// The contents of the directory's file `name`, read without following a link and bounded.
    ///
    /// # Errors
    /// The file is missing, a link, too large or unreadable.
    pub fn load(&self, name: &str) -> io::Result<Vec<u8>> {
        crate::write::read_bounded(&self.path()?.join(plain(name)?))
    }

    /// Removes the directory's file `name`, if it is there.
    pub fn discard(&self, name: &str) {
        if let (Ok(dir), Ok(name)) = (self.path(), plain(name)) {
            let _ = std::fs::remove_file(dir.join(name));
        }
    }

    /// The path of `name` inside this directory, if `name` is a single plain file name that Courier
    /// could have made (no separators, no `..`, not absolute).
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidInput`] for any other name; the directory cannot be created.
    pub fn resolve(&self, name: &str) -> io::Result<PathBuf> {
        let mut parts = Path::new(name).components();
        let plain = matches!(
            (parts.next(), parts.next()),
            (Some(Component::Normal(_)), None)
        ) && !name.contains(['/', '\\'])
            && name.starts_with(PARTIAL_PREFIX)
            && name.ends_with(PARTIAL_SUFFIX);
        if !plain {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name:?} is not a file of the session directory"),
            ));
        }
        Ok(self.path()?.join(name))
    }

    /// Removes the partial downloads (and their checkpoint records) last written more than `age`
    /// ago: those of resume data that was never used, or of a process that died. Files still being
    /// written are recent and stay. Returns how many partial files went. Does nothing to a
    /// directory that does not exist yet (it is not created for this).
    pub fn sweep_partials(&self, age: std::time::Duration) -> usize {
        let dir = match &self.kind {
            Kind::Persistent(path) => path.clone(),
            Kind::Ephemeral { .. } => return 0, // removed whole with its session
        };
        let Some(cutoff) = std::time::SystemTime::now().checked_sub(age) else {
            return 0;
        };
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !(name.starts_with(PARTIAL_PREFIX) && name.ends_with(PARTIAL_SUFFIX)) {
                continue;
            }
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|written| written < cutoff);
            if stale {
                crate::download::remove_partial(&entry.path());
                removed += 1;
            }
        }
        removed
    }

    /// The files in the directory (for tests and housekeeping); empty when it was never created.
    pub fn list(&self) -> Vec<PathBuf> {
        let Some(Ok(dir)) = self.ready.get() else {
            return Vec::new();
        };
        std::fs::read_dir(dir)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    }
}

/// `name` if it is one plain file name.
fn plain(name: &str) -> io::Result<&str> {
    let mut parts = Path::new(name).components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(_)), None) if !name.contains(['/', '\\']) => Ok(name),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a plain file name"),
        )),
    }
}

/// `<data dir>/courier/sessions/default`.
fn default_location() -> PathBuf {
    SessionDirectory::data_dir()
        .join("courier")
        .join("sessions")
        .join("default")
}

/// Creates `path` (and its parents) readable by the user only, and tightens it to 0700 if it existed
/// wider: a session directory holds resume data, cookies, credentials and cached responses.
pub fn create_private_dir_all(path: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::symlink_metadata(path)?;
        if meta.is_dir() && meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_session_directory_wider_than_0700_is_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("sessions").join("default");
        std::fs::create_dir_all(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = SessionDirectory::persistent(Some(path.clone()));
        dir.path().unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn a_sweep_removes_only_stale_partial_downloads_and_their_records() {
        let root = tempfile::tempdir().unwrap();
        let dir = SessionDirectory::persistent(Some(root.path().to_path_buf()));
        let day = std::time::Duration::from_secs(24 * 60 * 60);
        let aged = |path: &Path| {
            let f = std::fs::File::options().write(true).open(path).unwrap();
            f.set_modified(std::time::SystemTime::now() - 10 * day)
                .unwrap();
        };
        let old = dir.create_partial().unwrap().finish();
        let record = crate::download::checkpoint_path(&old);
        std::fs::write(&record, b"checkpoint").unwrap();
        aged(&old);
        let fresh = dir.create_partial().unwrap().finish();
        let other = root.path().join("cookies.json");
        std::fs::write(&other, b"{}").unwrap();
        aged(&other);

        assert_eq!(dir.sweep_partials(7 * day), 1);
        assert!(
            !old.exists() && !record.exists(),
            "the stale one and its record went"
        );
        assert!(fresh.exists(), "a recent partial file stays");
        assert!(other.exists(), "files that are not partial downloads stay");
        assert_eq!(dir.sweep_partials(7 * day), 0);
        let never = SessionDirectory::persistent(Some(root.path().join("never")));
        assert_eq!(never.sweep_partials(day), 0);
        assert!(
            !root.path().join("never").exists(),
            "a sweep creates nothing"
        );
    }

    #[test]
    fn ephemeral_directory_is_private_and_removed_on_drop() {
        let parent = tempfile::tempdir().unwrap();
        let dir = SessionDirectory::ephemeral(Some(parent.path().to_path_buf()));
        assert!(dir.list().is_empty(), "nothing is created before first use");
        let path = dir.path().unwrap().to_path_buf();
        assert!(path.starts_with(parent.path()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        let partial = dir.create_partial().unwrap();
        assert!(partial.path().starts_with(&path));
        drop(partial);
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn only_plain_partial_names_resolve() {
        let parent = tempfile::tempdir().unwrap();
        let dir = SessionDirectory::persistent(Some(parent.path().join("s")));
        let ok = dir.resolve("download-abc.part").unwrap();
        assert_eq!(ok, parent.path().join("s").join("download-abc.part"));
        for bad in [
            "../download-abc.part",
            "/etc/passwd",
            "sub/download-abc.part",
            "download-..\\x.part",
            "..",
            "",
            "notes.txt",
            "/tmp/download-a.part",
        ] {
            assert_eq!(
                dir.resolve(bad).unwrap_err().kind(),
                io::ErrorKind::InvalidInput,
                "{bad:?}"
            );
        }
    }
}
