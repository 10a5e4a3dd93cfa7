//! Which live session holds a partial download, in a directory several processes share.
//!
//! A default session's directory outlives its process and may serve two processes at once (two
//! `courier` runs). When a process dies without stopping its downloads (killed, crashed, out of
//! power), their partial files and checkpoint records stay; the next session may continue them
//! ([`SessionDirectory::interrupted`](crate::SessionDirectory::interrupted)), but it must never
//! take a partial that a live session is still writing.
//!
//! So each session that writes partial files holds an [`Owner`]: an exclusive `flock` on a file
//! of its own (`owner-<token>.lock`), kept for the session's life, and every partial file it
//! writes carries the token in its name (`download-<token>-XXXXXX.part`). A partial whose owner's
//! lock can be taken has no live owner. A lock is the kernel's, so it ends with the process
//! however the process ends; a file descriptor per session, not per download, holds it (a
//! download among thousands closes its file between writes).
//!
//! Taking over a partial is a rename into the taker's own name, which only one taker can win.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// The prefix and suffix of an owner's lock file.
const LOCK_PREFIX: &str = "owner-";
const LOCK_SUFFIX: &str = ".lock";
/// A token's length: random letters and digits.
const TOKEN_LEN: usize = 16;

/// A live session's hold on its partial files: the lock on its owner file, released (and the file
/// removed) when dropped, or by the kernel when the process dies.
#[derive(Debug)]
pub(crate) struct Owner {
    token: String,
    path: PathBuf,
    /// Holds the lock while open.
    _lock: File,
}

impl Owner {
    /// Makes a new owner file in `dir` and locks it. The file is locked before it takes its final
    /// name, so no other process ever sees it unlocked while its owner lives.
    pub(crate) fn take(dir: &Path) -> io::Result<Owner> {
        let aside = tempfile::Builder::new()
            .prefix(LOCK_PREFIX)
            .suffix(".new")
            .rand_bytes(TOKEN_LEN)
            .tempfile_in(dir)?;
        aside.as_file().try_lock().map_err(io::Error::from)?;
        let token = aside
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(LOCK_PREFIX))
            .and_then(|n| n.strip_suffix(".new"))
            .map(str::to_owned)
            .ok_or_else(|| io::Error::other("an owner file's name is not what was asked for"))?;
        let path = lock_path(dir, &token);
        let lock = aside.persist_noclobber(&path).map_err(|e| e.error)?;
        Ok(Owner {
            token,
            path,
            _lock: lock,
        })
    }

    /// What the kernel does to a process's owner when the process dies: the lock ends, the file
    /// stays.
    #[cfg(test)]
    pub(crate) fn die(mut self) {
        self.path = PathBuf::new();
    }

    /// The token that names this owner's partial files.
    pub(crate) fn token(&self) -> &str {
        &self.token
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        // Removed while still locked: a process that opens it after this finds no owner, as it
        // would find the lock free once the descriptor closes.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The owner token in a partial file's name (`download-<token>-XXXXXX.part`), if it has one.
pub(crate) fn token_of(partial: &str) -> Option<&str> {
    let rest = partial.strip_prefix(crate::directory::PARTIAL_PREFIX)?;
    let (token, _) = rest.split_once('-')?;
    (token.len() == TOKEN_LEN && token.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(token)
}

/// Whether the owner `token` of `dir` has ended. Holds the owner's lock (taken, so no one else
/// decides the same meanwhile) while `then` runs, and returns what it returns; `None` when the
/// owner lives, or when this cannot be known (a file system without locks): then nothing is taken.
pub(crate) fn if_ended<T>(dir: &Path, token: &str, then: impl FnOnce() -> T) -> Option<T> {
    let path = lock_path(dir, token);
    match crate::write::open_no_follow(std::fs::OpenOptions::new().read(true), &path) {
        // Its owner ended and removed it.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Some(then()),
        Err(_) => None,
        Ok(file) => match file.try_lock() {
            Ok(()) => Some(then()),
            Err(_) => None,
        },
    }
}

/// Removes the lock file of an owner that ended, if none of the partial file names `names` gives
/// (a listing of `dir`) carries its token any more. The listing is made only for a lock file that
/// is there and free (a killed owner's): an owner that ended cleanly took its file with it, and a
/// live one keeps it, so neither costs a pass over the directory.
pub(crate) fn remove_if_unused(dir: &Path, token: &str, names: impl FnOnce() -> Vec<String>) {
    let path = lock_path(dir, token);
    // The lock is held only to look: an owner that ended stays ended (a token is never used
    // again), and another process looking for interrupted downloads meanwhile would take a held
    // lock for a live owner.
    let ended = if_ended(dir, token, || ()).is_some();
    if ended && path.exists() && !names().iter().any(|n| token_of(n) == Some(token)) {
        let _ = std::fs::remove_file(&path);
    }
}

/// The tokens of the owner lock files in `dir`.
pub(crate) fn lock_files(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| {
            let token = n.strip_prefix(LOCK_PREFIX)?.strip_suffix(LOCK_SUFFIX)?;
            (token.len() == TOKEN_LEN).then(|| token.to_owned())
        })
        .collect()
}

/// Whether `path` names an owner's lock file.
pub(crate) fn is_lock_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(LOCK_PREFIX) && n.ends_with(LOCK_SUFFIX))
}

fn lock_path(dir: &Path, token: &str) -> PathBuf {
    dir.join(format!("{LOCK_PREFIX}{token}{LOCK_SUFFIX}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_read_only_from_a_name_that_carries_one() {
        assert_eq!(
            token_of("download-abcdefgh12345678-XyZ123.part"),
            Some("abcdefgh12345678")
        );
        assert_eq!(token_of("download-XyZ123.part"), None);
        assert_eq!(token_of("download-abcdefgh1234567!-XyZ123.part"), None);
        assert_eq!(token_of("download-abcdefgh123456789-XyZ123.part"), None);
        assert_eq!(token_of("other-abcdefgh12345678-XyZ123.part"), None);
    }

    proptest::proptest! {
        /// Any file name: reading a token never panics, and finds one only in the form Courier
        /// writes; every name Courier writes gives its token back.
        #[test]
        fn a_token_is_read_back_from_any_name_courier_writes_and_from_no_other(
            name in "\\PC{0,40}",
            token in "[a-zA-Z0-9]{16}",
            rest in "[a-zA-Z0-9]{6}",
        ) {
            if let Some(t) = token_of(&name) {
                let prefix = format!("download-{t}-");
                proptest::prop_assert!(name.starts_with(&prefix));
                proptest::prop_assert_eq!(t.len(), TOKEN_LEN);
            }
            let written = format!("download-{token}-{rest}.part");
            proptest::prop_assert_eq!(token_of(&written), Some(token.as_str()));
        }
    }

    #[test]
    fn an_owner_is_live_until_dropped_even_to_another_descriptor_of_this_process() {
        let dir = tempfile::tempdir().unwrap();
        let owner = Owner::take(dir.path()).unwrap();
        let token = owner.token().to_owned();
        assert_eq!(token.len(), TOKEN_LEN);
        assert!(dir.path().join(format!("owner-{token}.lock")).exists());
        assert_eq!(if_ended(dir.path(), &token, || ()), None, "alive");
        drop(owner);
        assert_eq!(if_ended(dir.path(), &token, || ()), Some(()), "ended");
        assert!(!dir.path().join(format!("owner-{token}.lock")).exists());
    }

    #[test]
    fn an_owner_whose_process_died_leaves_an_unlocked_file_and_has_ended() {
        let dir = tempfile::tempdir().unwrap();
        let owner = Owner::take(dir.path()).unwrap();
        let token = owner.token().to_owned();
        let path = dir.path().join(format!("owner-{token}.lock"));
        owner.die();
        assert!(path.exists());
        assert_eq!(if_ended(dir.path(), &token, || 7), Some(7));
        remove_if_unused(dir.path(), &token, || {
            vec![format!("download-{token}-aaaaaa.part")]
        });
        assert!(path.exists(), "kept while a partial names it");
        remove_if_unused(dir.path(), &token, Vec::new);
        assert!(!path.exists());
    }
}
