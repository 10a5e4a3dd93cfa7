//! What sessions keep between tasks: the cookie storage, the URL cache and the credential storage
//! (URLSession's `HTTPCookieStorage`, `URLCache` and `URLCredentialStorage`). Each is an object an
//! application can read, seed and share between sessions, or leave to the session that made it.
//!
//! - `cookies`: [`CookieStorage`], RFC 6265bis with the limits and `Secure` rules.
//! - `cache`: [`UrlCache`], RFC 9111, in memory and on disk.
//! - `credentials`: [`CredentialStorage`], per protection space.
//! - `saver`: background writes, in order, counted so `flush` and invalidation can wait for them.
//!
//! A store lives in a `Home`: a directory it keeps its file in (a default session's directory, or
//! one the application chose), or memory only (an ephemeral session's, or one made `in_memory`).

pub(crate) mod cache;
pub(crate) mod cookies;
pub(crate) mod credentials;
pub(crate) mod saver;

use std::path::PathBuf;
use std::sync::Arc;

use courier_storage::SessionDirectory;

pub use cache::UrlCache;
pub use cookies::{Cookie, CookieRefusal, CookieStorage};
pub use credentials::CredentialStorage;

/// Which store a session uses, in its [`Configuration`](crate::Configuration): its own, one shared
/// with other sessions, or none. URLSession's configuration holds an optional store that defaults to
/// the shared one; here the default is the session's own store, kept where the session keeps its
/// files (in memory for an ephemeral session), which is what URLSession's default and ephemeral
/// configurations give a single session.
#[derive(Debug, Default)]
pub enum StoreChoice<T> {
    /// A store of the session's own, persisted in the session directory by a default session, in
    /// memory only for an ephemeral one.
    #[default]
    Own,
    /// This store, shared with whoever else holds it (other sessions, the application).
    Shared(Arc<T>),
    /// No store: nothing is kept or sent from one (URLSession's `nil`).
    None,
}

// Not derived: a shared store is cloned as its `Arc`, whatever `T` is.
impl<T> Clone for StoreChoice<T> {
    fn clone(&self) -> Self {
        match self {
            StoreChoice::Own => StoreChoice::Own,
            StoreChoice::Shared(store) => StoreChoice::Shared(store.clone()),
            StoreChoice::None => StoreChoice::None,
        }
    }
}

impl<T> StoreChoice<T> {
    /// The store a session uses: its own made by `own` (given where it lives), the shared one, or
    /// none.
    pub(crate) fn pick(&self, home: &Home, own: impl FnOnce(Home) -> T) -> Option<Arc<T>> {
        match self {
            StoreChoice::Own => Some(Arc::new(own(home.clone()))),
            StoreChoice::Shared(store) => Some(store.clone()),
            StoreChoice::None => None,
        }
    }
}

/// Where a store keeps its file, and its writes under way.
#[derive(Clone, Debug)]
pub(crate) struct Home {
    /// `None`: memory only.
    dir: Option<Arc<SessionDirectory>>,
}

impl Home {
    /// Memory only: nothing is ever written.
    pub(crate) fn memory() -> Home {
        Home { dir: None }
    }

    /// A session's directory: a default session's own, or memory for an ephemeral session (which
    /// writes nothing but its downloads).
    pub(crate) fn of_session(storage: &Arc<SessionDirectory>) -> Home {
        Home {
            dir: (!storage.is_ephemeral()).then(|| storage.clone()),
        }
    }

    /// A directory the application chose, created (private to the user) on first write.
    pub(crate) fn directory(path: impl Into<PathBuf>) -> Home {
        Home {
            dir: Some(Arc::new(SessionDirectory::persistent(Some(path.into())))),
        }
    }

    /// The directory, when the store is kept on disk.
    pub(crate) fn dir(&self) -> Option<&SessionDirectory> {
        self.dir.as_deref()
    }

    /// The directory, shared, for work that outlives the call (a writer on a blocking thread).
    pub(crate) fn shared_dir(&self) -> Option<Arc<SessionDirectory>> {
        self.dir.clone()
    }

    /// The path of the store's file `name`, when it is kept on disk.
    pub(crate) fn file(&self, name: &str) -> Option<PathBuf> {
        Some(self.dir()?.path().ok()?.join(name))
    }

    /// The store's file `name`, when it is kept on disk and there.
    pub(crate) fn load(&self, name: &str) -> Option<Vec<u8>> {
        self.dir()?.load(name).ok()
    }
}
