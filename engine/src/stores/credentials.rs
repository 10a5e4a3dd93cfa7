//! The session's credential store: credentials servers accepted, per protection space (scheme,
//! host, port, realm). `Permanent` ones of a default session are kept in its directory
//! (`credentials`, 0600, through the storage codec) and come back in the next session; an ephemeral
//! session keeps everything in memory.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use courier_delegates::{Credential, CredentialPersistence, ProtectionSpace};
use serde::{Deserialize, Serialize};

use super::saver::Saver;
use crate::context::SessionContext;

/// The session's credentials, per protection space. `Permanent` ones of a default session are kept
/// in its directory (`credentials`, readable by the user only, through the storage codec) and come
/// back in the next session; an ephemeral session keeps everything in memory.
#[derive(Default)]
pub(crate) struct CredentialStore {
    by_space: OnceLock<Mutex<HashMap<SpaceKey, Credential>>>,
    saver: Saver,
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
            protocol: space.protocol.clone(),
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

impl CredentialStore {
    /// Loads the saved credentials now (a session does it off the async workers as it starts).
    pub(crate) fn load(&self, ctx: &SessionContext) {
        drop(self.map(ctx));
    }

    /// The credentials, loaded from the session directory on first use (default sessions).
    fn map(
        &self,
        ctx: &SessionContext,
    ) -> std::sync::MutexGuard<'_, HashMap<SpaceKey, Credential>> {
        self.by_space
            .get_or_init(|| {
                let kept: Vec<Kept> = (!ctx.storage.is_ephemeral())
                    .then(|| ctx.storage.load(FILE).ok())
                    .flatten()
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

    pub(crate) fn get(&self, ctx: &SessionContext, space: &ProtectionSpace) -> Option<Credential> {
        self.map(ctx).get(&SpaceKey::of(space)).cloned()
    }

    pub(crate) fn put(
        &self,
        ctx: &SessionContext,
        space: &ProtectionSpace,
        credential: Credential,
    ) {
        let permanent = credential.persistence() == CredentialPersistence::Permanent;
        let mut map = self.map(ctx);
        map.insert(SpaceKey::of(space), credential);
        if permanent && let Some((path, contents)) = saved(ctx, &map) {
            self.saver.save(&ctx.writes, path, contents);
        }
    }

    /// Forgets every credential, the saved ones too (`Session::reset`, off the async workers).
    pub(crate) fn clear(&self, ctx: &SessionContext) {
        let mut map = self.map(ctx);
        map.clear();
        if let Some((path, contents)) = saved(ctx, &map) {
            self.saver.save_here(path, contents);
        }
    }

    pub(crate) fn forget(&self, ctx: &SessionContext, space: &ProtectionSpace) {
        let mut map = self.map(ctx);
        let gone = map.remove(&SpaceKey::of(space));
        if gone.is_some_and(|c| c.persistence() == CredentialPersistence::Permanent)
            && let Some((path, contents)) = saved(ctx, &map)
        {
            self.saver.save(&ctx.writes, path, contents);
        }
    }
}

/// The file a default session keeps its permanent credentials in, and what it should hold (none:
/// no file). `None` for an ephemeral session, which writes nothing.
fn saved(
    ctx: &SessionContext,
    map: &HashMap<SpaceKey, Credential>,
) -> Option<(std::path::PathBuf, Option<Vec<u8>>)> {
    if ctx.storage.is_ephemeral() {
        return None;
    }
    let path = ctx.storage.path().ok()?.join(FILE);
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
        return Some((path, None));
    }
    match courier_storage::codec::encode(&kept) {
        Ok(blob) => Some((path, Some(blob))),
        Err(e) => {
            tracing::warn!(error = %e, "cannot encode the credential store");
            None
        }
    }
}
