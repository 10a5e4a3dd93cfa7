//! [`CredentialStorage`] (URLSession's `URLCredentialStorage`): credentials servers accepted, and
//! ones the application seeded, per protection space (scheme, host, port, realm). `Permanent` ones
//! are kept on disk when the storage has a directory (`credentials`, 0600, through the storage
//! codec) and come back in the next process; the others last as long as the storage.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use courier_delegates::{Credential, CredentialPersistence, ProtectionSpace};
use serde::{Deserialize, Serialize};

use super::Home;
use super::saver::{Saver, Writes};

/// Credentials per protection space, as sessions use them to answer authentication challenges
/// (URLSession's `URLCredentialStorage`).
///
/// A challenge whose protection space has a credential here is answered with it before the
/// delegate is asked (URLSession's default credential), and a credential a server accepted is
/// stored here as its persistence says (`ForSession` and `Permanent`; `Permanent` ones on disk too).
/// A session uses its own storage by default; make one with [`CredentialStorage::in_memory`] or
/// [`CredentialStorage::persistent`] to seed credentials before the first challenge or to share
/// them between sessions
/// ([`Configuration::url_credential_storage`](crate::Configuration::url_credential_storage)).
pub struct CredentialStorage {
    by_space: OnceLock<Mutex<HashMap<SpaceKey, Credential>>>,
    home: Home,
    saver: Saver,
    writes: Writes,
}

impl std::fmt::Debug for CredentialStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials themselves.
        f.debug_struct("CredentialStorage")
            .field("home", &self.home)
            .finish_non_exhaustive()
    }
}

/// The store's file in a default session's directory.
const FILE: &str = "credentials";

/// A protection space as the store files it: credentials apply per realm, whatever the method.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct SpaceKey {
    protocol: String,
    host: String,
    port: u16,
    realm: Option<String>,
}

impl SpaceKey {
    fn of(space: &ProtectionSpace) -> SpaceKey {
        SpaceKey {
            // A proxy's space never answers for a server at the same address, nor the other way
            // round: it is filed under a protocol of its own (`http-proxy`, `https-proxy`),
            // which keeps the file's format.
            protocol: match space.proxy_type {
                Some(kind) => format!("{}-proxy", kind.name()),
                None => space.protocol.clone(),
            },
            host: space.host.to_ascii_lowercase(),
            port: space.port,
            realm: space.realm.clone(),
        }
    }
}

/// A permanent credential as the file keeps it.
#[derive(Serialize, Deserialize)]
struct Kept {
    space: SpaceKey,
    user: String,
    password: String,
}

impl CredentialStorage {
    /// A storage kept in memory only.
    pub fn in_memory() -> Arc<CredentialStorage> {
        Arc::new(CredentialStorage::new(Home::memory()))
    }

    /// A storage that keeps its `Permanent` credentials in `dir` (as `credentials`, readable by the
    /// user only; the directory is created on the first write), with what an earlier process left
    /// there.
    pub fn persistent(dir: impl Into<std::path::PathBuf>) -> Arc<CredentialStorage> {
        Arc::new(CredentialStorage::new(Home::directory(dir)))
    }

    pub(crate) fn new(home: Home) -> CredentialStorage {
        CredentialStorage {
            by_space: OnceLock::new(),
            home,
            saver: Saver::default(),
            writes: Writes::default(),
        }
    }

    /// The credential for `space` (its scheme, host, port and realm; the authentication method
    /// does not matter).
    pub fn credential(&self, space: &ProtectionSpace) -> Option<Credential> {
        self.map().get(&SpaceKey::of(space)).cloned()
    }

    /// Sets the credential for `space`: the one a challenge of that space is answered with first.
    /// A `Permanent` one is written to disk when the storage has a directory.
    pub fn set(&self, space: &ProtectionSpace, credential: Credential) {
        let permanent = credential.persistence() == CredentialPersistence::Permanent;
        let mut map = self.map();
        let replaced = map.insert(SpaceKey::of(space), credential);
        let was_permanent =
            replaced.is_some_and(|c| c.persistence() == CredentialPersistence::Permanent);
        if permanent || was_permanent {
            self.save(&map, false);
        }
    }

    /// Removes the credential for `space`; true when there was one.
    pub fn remove(&self, space: &ProtectionSpace) -> bool {
        let mut map = self.map();
        let gone = map.remove(&SpaceKey::of(space));
        if gone
            .as_ref()
            .is_some_and(|c| c.persistence() == CredentialPersistence::Permanent)
        {
            self.save(&map, false);
        }
        gone.is_some()
    }

    /// Removes every credential, the saved ones too.
    pub fn remove_all(&self) {
        let mut map = self.map();
        map.clear();
        self.save(&map, true);
    }

    /// Loads the saved credentials now (a session does it off the async workers as it starts).
    pub(crate) fn load(&self) {
        drop(self.map());
    }

    /// Waits until what changed is on disk.
    pub(crate) async fn written(&self) {
        self.writes.idle().await;
    }

    /// The credentials, loaded from the storage's file on first use.
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<SpaceKey, Credential>> {
        self.by_space
            .get_or_init(|| {
                let kept: Vec<Kept> = self
                    .home
                    .load(FILE)
                    .and_then(|blob| courier_storage::codec::decode(&blob).ok())
                    .unwrap_or_default();
                let map = kept
                    .into_iter()
                    .map(|k| {
                        let c = Credential::password(
                            k.user,
                            k.password,
                            CredentialPersistence::Permanent,
                        );
                        (k.space, c)
                    })
                    .collect();
                Mutex::new(map)
            })
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the permanent credentials of `map` (locked by the caller), on this thread when `now`.
    fn save(&self, map: &HashMap<SpaceKey, Credential>, now: bool) {
        let Some(path) = self.home.file(FILE) else {
            return;
        };
        let Some(contents) = saved(map) else {
            return;
        };
        if now {
            self.saver.save_here(path, contents);
        } else {
            self.saver.save(&self.writes, path, contents);
        }
    }
}

/// What the storage's file should hold (`Some(None)`: no file, as nothing is permanent); `None`
/// when it cannot be encoded.
fn saved(map: &HashMap<SpaceKey, Credential>) -> Option<Option<Vec<u8>>> {
    let kept: Vec<Kept> = map
        .iter()
        .filter(|(_, c)| c.persistence() == CredentialPersistence::Permanent)
        .map(|(space, c)| Kept {
            space: space.clone(),
            user: c.user().to_owned(),
            password: c.secret().to_owned(),
        })
        .collect();
    if kept.is_empty() {
        // Nothing to keep: no file either.
        return Some(None);
    }
    match courier_storage::codec::encode(&kept) {
        Ok(blob) => Some(Some(blob)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot encode the credential store");
            None
        }
    }
}
