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
use crate::owner::{self, Owner};

/// Where a session keeps its files.
#[derive(Debug)]
pub struct SessionDirectory {
    kind: Kind,
    /// Created on first use, so sessions that never download touch no disk.
    ready: OnceLock<Result<PathBuf, io::ErrorKind>>,
    /// The key that seals resume data, read or made on first use.
    key: OnceLock<Result<[u8; 32], io::ErrorKind>>,
    /// This session's hold on the partial files it writes, taken on first use; only in a directory
    /// that other processes may use at once ([`SessionDirectory::persistent`]).
    owner: Option<OnceLock<Result<Owner, io::ErrorKind>>>,
    /// Held while this session looks at other owners' locks (the sweep, listing and taking over
    /// interrupted downloads), so that its own sweep, which takes a lock for a moment, never makes
    /// a listing of the same session see an ended owner as live.
    housekeeping: std::sync::Mutex<()>,
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
pub(crate) const PARTIAL_PREFIX: &str = "download-";
const PARTIAL_SUFFIX: &str = ".part";
/// The suffix of a partial file's checkpoint record, beside it.
pub(crate) const CHECKPOINT_SUFFIX: &str = ".checkpoint";

impl SessionDirectory {
    /// The directory of default sessions: `<data dir>/courier/sessions/default`, or `path` when given.
    ///
    /// Other processes may use it at once, and a process may die in mid-download: each partial
    /// file carries its session's owner token (the `owner` module), so that a later session takes
    /// over only the downloads of sessions that ended ([`SessionDirectory::interrupted`]).
    pub fn persistent(path: Option<PathBuf>) -> SessionDirectory {
        SessionDirectory {
            owner: Some(OnceLock::new()),
            ..SessionDirectory::unowned(path)
        }
    }

    /// A persistent directory whose partial files carry no owner: for a holder that keeps its own
    /// record of its partial files and that no other process shares the directory with (the
    /// background service: its journal's lock keeps a second service out, and the journal names
    /// each task's partial file), and for stores, which write no partial files.
    pub fn unowned(path: Option<PathBuf>) -> SessionDirectory {
        let path = path.unwrap_or_else(default_location);
        SessionDirectory {
            kind: Kind::Persistent(path),
            ready: OnceLock::new(),
            key: OnceLock::new(),
            owner: None,
            housekeeping: std::sync::Mutex::default(),
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
            owner: None,
            housekeeping: std::sync::Mutex::default(),
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
            Err(kind) => Err(io::Error::new(
                *kind,
                match self.persistent_path() {
                    Some(path) => format!(
                        "cannot create the session directory {}: {}",
                        path.display(),
                        io::Error::from(*kind)
                    ),
                    None => format!(
                        "cannot create the session's private directory: {}",
                        io::Error::from(*kind)
                    ),
                },
            )),
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
        let (file, path) = self.new_partial_name()?;
        PartialFile::created(file, path)
    }

    /// A new, empty file under a fresh partial file's name (with this session's owner token, where
    /// partial files carry one).
    pub(crate) fn new_partial_name(&self) -> io::Result<(std::fs::File, PathBuf)> {
        let dir = self.path()?;
        let prefix = match self.owner_token()? {
            Some(token) => format!("{PARTIAL_PREFIX}{token}-"),
            None => PARTIAL_PREFIX.to_owned(),
        };
        tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(PARTIAL_SUFFIX)
            .tempfile_in(dir)?
            .keep()
            .map_err(|e| e.error)
    }

    /// This session's owner token, taking its owner lock on first use; `None` in a directory whose
    /// partial files carry no owner.
    pub(crate) fn owner_token(&self) -> io::Result<Option<&str>> {
        let Some(owner) = &self.owner else {
            return Ok(None);
        };
        let dir = self.path()?;
        match owner.get_or_init(|| Owner::take(dir).map_err(|e| e.kind())) {
            Ok(owner) => Ok(Some(owner.token())),
            Err(kind) => Err(io::Error::new(
                *kind,
                "cannot take an owner lock in the session directory",
            )),
        }
    }

    /// Whether the partial file `name` is this session's to write without taking it over: its own,
    /// or one in a directory whose partial files carry no owner.
    pub(crate) fn holds(&self, name: &str) -> io::Result<bool> {
        Ok(match self.owner_token()? {
            Some(token) => owner::token_of(name) == Some(token),
            None => true,
        })
    }

    /// The partial files (with a checkpoint record) of sessions that ended without stopping
    /// their downloads, and those records: what [`SessionDirectory::take_over`] may take. Changes
    /// nothing; empty in a directory whose partial files carry no owner, or that does not exist.
    pub fn interrupted(&self) -> Vec<(String, Vec<u8>)> {
        let (Kind::Persistent(dir), Some(_)) = (&self.kind, &self.owner) else {
            return Vec::new();
        };
        let _housekeeping = self.housekeeping();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        // This session's own partial files, if it has any (looking takes no lock of its own).
        let mine = self
            .owner
            .as_ref()
            .and_then(OnceLock::get)
            .and_then(|o| o.as_ref().ok())
            .map(Owner::token);
        let mut found = Vec::new();
        let mut ended_owners = std::collections::HashMap::new();
        for entry in entries.filter_map(Result::ok) {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let Some(token) = owner::token_of(&name) else {
                continue;
            };
            if !name.ends_with(PARTIAL_SUFFIX)
                || Some(token) == mine
                || !entry.file_type().is_ok_and(|t| t.is_file())
            {
                continue;
            }
            // One look at each owner's lock, however many partial files it left.
            let ended = *ended_owners
                .entry(token.to_owned())
                .or_insert_with(|| owner::if_ended(dir, token, || ()).is_some());
            if !ended {
                continue;
            }
            let record =
                crate::write::read_bounded(&crate::download::checkpoint_path(&entry.path()));
            if let Ok(record) = record {
                found.push((name, record));
            }
        }
        found.sort();
        found
    }

    /// Removes the partial file `name` of a session that ended (one [`SessionDirectory::interrupted`]
    /// named) and its checkpoint record; does nothing when its owner lives.
    pub fn discard_interrupted(&self, name: &str) {
        let _housekeeping = self.housekeeping();
        let (Ok(path), Some(token)) = (self.resolve(name), owner::token_of(name)) else {
            return;
        };
        let Ok(dir) = self.path() else { return };
        if owner::if_ended(dir, token, || crate::download::remove_partial(&path)).is_some() {
            owner::remove_if_unused(dir, token, || self.partial_names());
        }
    }

    /// Holds [`SessionDirectory`]'s housekeeping turn.
    pub(crate) fn housekeeping(&self) -> std::sync::MutexGuard<'_, ()> {
        self.housekeeping.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The names of the partial files in the directory.
    pub(crate) fn partial_names(&self) -> Vec<String> {
        match self.path() {
            Ok(dir) => self.partial_names_in(dir),
            Err(_) => Vec::new(),
        }
    }

    fn partial_names_in(&self, dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| n.starts_with(PARTIAL_PREFIX) && n.ends_with(PARTIAL_SUFFIX))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Moves the partial file at `path` under a fresh name of this session's (a rename: of two
    /// sessions taking the same file, one wins and the other finds it gone), and removes the
    /// checkpoint record beside the old name. Returns the new path. With `if_owner_ended`, only a
    /// partial whose session ended is moved (a live owner's: [`io::ErrorKind::ResourceBusy`]).
    pub(crate) fn move_to_own_name(
        &self,
        path: &Path,
        if_owner_ended: bool,
    ) -> io::Result<PathBuf> {
        let dir = self.path()?;
        let old = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned)
            .unwrap_or_default();
        let rename = || -> io::Result<PathBuf> {
            let (_placeholder, new) = self.new_partial_name()?;
            if let Err(e) = std::fs::rename(path, &new) {
                let _ = std::fs::remove_file(&new);
                return Err(e);
            }
            let _ = std::fs::remove_file(crate::download::checkpoint_path(path));
            Ok(new)
        };
        let token = owner::token_of(&old);
        let moved = match (token, if_owner_ended) {
            (Some(token), true) => owner::if_ended(dir, token, rename).unwrap_or_else(|| {
                Err(io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    format!("{old:?} belongs to a session that is still running"),
                ))
            }),
            (None, true) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{old:?} names no session"),
            )),
            (_, false) => rename(),
        }?;
        if let Some(token) = token {
            owner::remove_if_unused(dir, token, || self.partial_names());
        }
        Ok(moved)
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
        let _housekeeping = self.housekeeping();
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
        // The lock files that killed processes left, once none of their partial files is left.
        let names = std::cell::OnceCell::new();
        for token in owner::lock_files(&dir) {
            owner::remove_if_unused(&dir, &token, || {
                names.get_or_init(|| self.partial_names_in(&dir)).clone()
            });
        }
        removed
    }

    /// What the end of this session's process does to the directory when the process dies: the
    /// owner lock ends, its file and the partial files stay.
    #[cfg(test)]
    pub(crate) fn die(mut self) {
        if let Some(Ok(owner)) = self.owner.take().and_then(OnceLock::into_inner) {
            owner.die();
        }
    }

    /// The files in the directory (for tests and housekeeping), but for owner locks (which come and
    /// go with sessions); empty when it was never created.
    pub fn list(&self) -> Vec<PathBuf> {
        let Some(Ok(dir)) = self.ready.get() else {
            return Vec::new();
        };
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| !owner::is_lock_file(p))
                    .collect()
            })
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
        // A killed process's stale partial, and its owner's lock file.
        let gone = SessionDirectory::persistent(Some(root.path().to_path_buf()));
        let killed = gone.create_partial().unwrap().finish();
        aged(&killed);
        let lock_of = |p: &Path| {
            let name = p.file_name().unwrap().to_str().unwrap();
            root.path()
                .join(format!("owner-{}.lock", owner::token_of(name).unwrap()))
        };
        let (killed_lock, live_lock) = (lock_of(&killed), lock_of(&fresh));
        gone.die();
        let other = root.path().join("cookies.json");
        std::fs::write(&other, b"{}").unwrap();
        aged(&other);

        assert_eq!(dir.sweep_partials(7 * day), 2);
        assert!(
            !old.exists() && !record.exists() && !killed.exists(),
            "the stale ones and the record went"
        );
        assert!(!killed_lock.exists(), "the killed process's lock file went");
        assert!(live_lock.exists(), "a live session's lock file stays");
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
    fn a_directory_that_cannot_be_made_is_named_with_why() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let under_a_file = file.join("session");
        let dir = SessionDirectory::persistent(Some(under_a_file.clone()));
        let said = dir.path().unwrap_err().to_string();
        assert!(
            said.contains(&under_a_file.display().to_string()) && said.contains("not a directory"),
            "{said}"
        );
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
