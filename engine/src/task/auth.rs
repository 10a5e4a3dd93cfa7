//! Answering HTTP authentication challenges (Basic, Digest) for one task; the credentials the
//! session keeps are in `crate::stores::credentials`.
//!
//! On a 401 with `WWW-Authenticate`, or a proxy's 407 with `Proxy-Authenticate` (to a cleartext
//! request it carried, or to the `CONNECT` of an `https` request's tunnel), the transfer asks its
//! [`Authenticator`] what to do. A proxy's challenge names the proxy's protection space
//! (`proxy_type` set), is answered with `Proxy-Authorization`, which only the proxy ever sees, and
//! never takes the request URL's user and password. The strongest
//! scheme the server offers comes first (Digest SHA-256, Digest MD5, Basic); the delegate answers
//! with a disposition (or, without one, default handling: the URL's user and password, then the
//! credential store). Every protection space counts its attempts, and a credential default handling
//! already tried is never tried again, so the loop always ends: at worst the 401 is delivered.

use std::collections::{HashMap, HashSet};

use courier_delegates::{
    AuthChallengeDisposition, AuthenticationChallenge, AuthenticationMethod, Callback, Credential,
    CredentialPersistence, ProtectionSpace, ProxyType, Response, TaskInfo,
};
use courier_protocol_http::auth::{self, Challenge, DigestAlgorithm, DigestInput};
use http::{HeaderValue, Method};
use url::Url;

use crate::context::SessionContext;

/// Attempts per protection space after which the challenge's response is delivered, whatever the
/// delegate says (it may keep answering with credentials the server refuses).
const MAX_ATTEMPTS: u32 = 8;

/// Who asked for credentials.
#[derive(Clone, Debug)]
pub(crate) enum Asker {
    /// The server (`401`, `WWW-Authenticate`).
    Server,
    /// The HTTP proxy at `host:port` (`407`, `Proxy-Authenticate`), carrying the request as `kind`
    /// (whole for a cleartext one, through a `CONNECT` tunnel for `https`).
    Proxy {
        proxy: courier_protocol_http::HttpProxy,
        kind: ProxyType,
    },
}

/// What to do with a 401 or 407.
pub(crate) enum Answer {
    /// Send the request again with this `Authorization` (`Proxy-Authorization` for a proxy).
    Retry(HeaderValue),
    /// Deliver the 401 (or the cleartext request's 407) as the response; a tunnel's 407 fails.
    Deliver,
    /// The delegate cancelled the challenge: the task ends with -999.
    Cancel,
}

/// One task's authentication state.
#[derive(Default)]
pub(crate) struct Authenticator {
    attempts: HashMap<ProtectionSpace, u32>,
    /// Credentials default handling has tried, per space.
    tried: HashMap<ProtectionSpace, Vec<Credential>>,
    rejected: HashSet<ProtectionSpace>,
    /// The credential sent last to the server, and to the proxy, to keep once accepted.
    pending: Option<(ProtectionSpace, Credential)>,
    pending_proxy: Option<(ProtectionSpace, Credential)>,
    nonce_count: u32,
}

impl Authenticator {
    /// Decides what to do with `response`, a 401 (or a 407 from `asker`) to `method url`.
    pub(crate) async fn on_challenge(
        &mut self,
        ctx: &SessionContext,
        info: &TaskInfo,
        response: &Response,
        method: &Method,
        url: &Url,
        asker: &Asker,
    ) -> Answer {
        // A refused credential is forgotten: default handling must not offer it again.
        let refused = match asker {
            Asker::Server => self.pending.take(),
            Asker::Proxy { .. } => self.pending_proxy.take(),
        };
        if let Some((space, _)) = refused
            && let Some(store) = &ctx.credentials
        {
            store.remove(&space);
        }
        let offered = match asker {
            Asker::Server => auth::challenges(response.headers()),
            Asker::Proxy { .. } => auth::proxy_challenges(response.headers()),
        };
        let mut offered: Vec<(Challenge, AuthenticationMethod)> = offered
            .into_iter()
            .filter_map(|c| match c.scheme.as_str() {
                "digest" if DigestAlgorithm::of(&c).is_some() => {
                    Some((c, AuthenticationMethod::HttpDigest))
                }
                "basic" => Some((c, AuthenticationMethod::HttpBasic)),
                _ => None,
            })
            .collect();
        // Strongest first: Digest SHA-256, Digest MD5, Basic.
        offered.sort_by_key(|(c, m)| match (m, DigestAlgorithm::of(c)) {
            (AuthenticationMethod::HttpDigest, Some(DigestAlgorithm::Sha256)) => 0,
            (AuthenticationMethod::HttpDigest, _) => 1,
            _ => 2,
        });
        for (challenge, method_kind) in offered {
            let realm = challenge.realm().map(str::to_owned);
            let space = match asker {
                Asker::Server => ProtectionSpace {
                    host: url.host_str().unwrap_or("").to_owned(),
                    port: url.port_or_known_default().unwrap_or(0),
                    protocol: url.scheme().to_owned(),
                    realm,
                    method: method_kind,
                    proxy_type: None,
                },
                Asker::Proxy { proxy, kind } => ProtectionSpace {
                    host: proxy.host.clone(),
                    port: proxy.port,
                    protocol: "http".to_owned(),
                    realm,
                    method: method_kind,
                    proxy_type: Some(*kind),
                },
            };
            if self.rejected.contains(&space) {
                continue;
            }
            let previous = self.attempts.get(&space).copied().unwrap_or(0);
            if previous >= MAX_ATTEMPTS {
                return Answer::Deliver;
            }
            let proposed = self.default_credential(ctx, &space, url, asker);
            let disposition = ask(ctx, info, &space, proposed.clone(), previous, response).await;
            let credential = match disposition {
                AuthChallengeDisposition::UseCredential(Some(c)) => c,
                AuthChallengeDisposition::UseCredential(None) => return Answer::Deliver,
                AuthChallengeDisposition::CancelAuthenticationChallenge => return Answer::Cancel,
                AuthChallengeDisposition::RejectProtectionSpace => {
                    self.rejected.insert(space);
                    continue;
                }
                // Default handling (and any disposition added later).
                _ => match proposed {
                    Some(c) => {
                        self.tried.entry(space.clone()).or_default().push(c.clone());
                        c
                    }
                    None => return Answer::Deliver,
                },
            };
            *self.attempts.entry(space.clone()).or_insert(0) += 1;
            let Some(header) = self.authorization(&challenge, &credential, method, url, asker)
            else {
                return Answer::Deliver;
            };
            match asker {
                Asker::Server => self.pending = Some((space, credential)),
                Asker::Proxy { .. } => self.pending_proxy = Some((space, credential)),
            }
            return Answer::Retry(header);
        }
        Answer::Deliver
    }

    /// An FTP server refused a login (`530`): asks the delegate for a user and password for the
    /// server's protection space (protocol `ftp`, method `Default`), URLSession's way. Default
    /// handling takes the credential store's, never one it tried already. `None`: no more tries
    /// (the task fails with the server's refusal).
    pub(crate) async fn on_ftp_refusal(
        &mut self,
        ctx: &SessionContext,
        info: &TaskInfo,
        url: &Url,
        refusal: &Response,
    ) -> Option<Credential> {
        let space = ftp_space(url);
        // The credential tried last was refused: forgotten.
        if let Some((refused, _)) = self.pending.take()
            && let Some(store) = &ctx.credentials
        {
            store.remove(&refused);
        }
        let previous = self.attempts.get(&space).copied().unwrap_or(0);
        if previous >= MAX_ATTEMPTS {
            return None;
        }
        let tried = self.tried.get(&space).map(Vec::as_slice).unwrap_or(&[]);
        let proposed = ctx
            .credentials
            .as_ref()
            .and_then(|store| store.credential(&space))
            .filter(|c| !tried.contains(c));
        let credential = match ask(ctx, info, &space, proposed.clone(), previous, refusal).await {
            AuthChallengeDisposition::UseCredential(Some(c)) => c,
            AuthChallengeDisposition::UseCredential(None)
            | AuthChallengeDisposition::CancelAuthenticationChallenge
            | AuthChallengeDisposition::RejectProtectionSpace => return None,
            _ => {
                let c = proposed?;
                self.tried.entry(space.clone()).or_default().push(c.clone());
                c
            }
        };
        *self.attempts.entry(space.clone()).or_insert(0) += 1;
        self.pending = Some((space, credential.clone()));
        Some(credential)
    }

    /// The server accepted the last credential (and the proxy its own, when the answer is not
    /// its 407): keep them as their persistence says.
    pub(crate) fn accepted(&mut self, ctx: &SessionContext, by_proxy_only: bool) {
        let accepted = [
            self.pending_proxy.take(),
            if by_proxy_only {
                None
            } else {
                self.pending.take()
            },
        ];
        for (space, credential) in accepted.into_iter().flatten() {
            if credential.persistence() != CredentialPersistence::None
                && let Some(store) = &ctx.credentials
            {
                store.set(&space, credential);
            }
        }
    }

    /// What default handling would use: the URL's user and password (the request's for its
    /// server, the proxy URL's for the proxy: each only to its own), then the store; never a
    /// credential it tried already for this space.
    fn default_credential(
        &self,
        ctx: &SessionContext,
        space: &ProtectionSpace,
        url: &Url,
        asker: &Asker,
    ) -> Option<Credential> {
        let tried = self.tried.get(space).map(Vec::as_slice).unwrap_or(&[]);
        let from_url = match asker {
            Asker::Server => (!url.username().is_empty()).then(|| {
                Credential::password(
                    percent_decode(url.username()),
                    percent_decode(url.password().unwrap_or("")),
                    CredentialPersistence::None,
                )
            }),
            Asker::Proxy { proxy, .. } => proxy.login.as_ref().map(|(user, password)| {
                Credential::password(user, password, CredentialPersistence::None)
            }),
        };
        from_url
            .into_iter()
            .chain(ctx.credentials.as_ref().and_then(|s| s.credential(space)))
            .find(|c| !tried.contains(c))
    }

    fn authorization(
        &mut self,
        challenge: &Challenge,
        credential: &Credential,
        method: &Method,
        url: &Url,
        asker: &Asker,
    ) -> Option<HeaderValue> {
        match challenge.scheme.as_str() {
            "basic" => Some(auth::basic(credential.user(), credential.secret())),
            _ => {
                self.nonce_count += 1;
                // The digest covers the request line's target: the path for a server, the whole
                // URL for a proxy carrying a cleartext request, `host:port` for a `CONNECT`.
                let connect = Method::CONNECT;
                let (method, uri) = match asker {
                    Asker::Proxy {
                        kind: ProxyType::Https,
                        ..
                    } => (
                        &connect,
                        format!(
                            "{}:{}",
                            url.host_str().unwrap_or(""),
                            url.port_or_known_default().unwrap_or(443)
                        ),
                    ),
                    Asker::Proxy { .. } => (method, url.as_str().to_owned()),
                    Asker::Server => (
                        method,
                        match url.query() {
                            Some(q) => format!("{}?{q}", url.path()),
                            None => url.path().to_owned(),
                        },
                    ),
                };
                auth::digest(
                    challenge,
                    &DigestInput {
                        user: credential.user(),
                        password: credential.secret(),
                        method,
                        uri: &uri,
                        nc: self.nonce_count,
                        cnonce: &cnonce(),
                    },
                )
            }
        }
    }
}

/// Asks the delegate, or answers as default handling when the session has none.
/// An FTP server's protection space: protocol `ftp`, method `Default`, no realm.
pub(crate) fn ftp_space(url: &Url) -> ProtectionSpace {
    ProtectionSpace {
        host: url.host_str().unwrap_or("").to_owned(),
        port: url.port().unwrap_or(21),
        protocol: "ftp".to_owned(),
        realm: None,
        method: AuthenticationMethod::Default,
        proxy_type: None,
    }
}

/// The login to try first on an FTP server: the URL's user and password, else the credential
/// store's for the server (URLSession's default credential), else anonymous.
pub(crate) fn ftp_login(ctx: &SessionContext, url: &Url) -> (String, String) {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    if !url.username().is_empty() {
        return (decode(url.username()), decode(url.password().unwrap_or("")));
    }
    match ctx
        .credentials
        .as_ref()
        .and_then(|store| store.credential(&ftp_space(url)))
    {
        Some(c) => (c.user().to_owned(), c.secret().to_owned()),
        None => ("anonymous".to_owned(), "courier@".to_owned()),
    }
}

async fn ask(
    ctx: &SessionContext,
    info: &TaskInfo,
    space: &ProtectionSpace,
    proposed: Option<Credential>,
    previous: u32,
    response: &Response,
) -> AuthChallengeDisposition {
    let Some(queue) = ctx.delivery(info) else {
        return AuthChallengeDisposition::PerformDefaultHandling;
    };
    let challenge = AuthenticationChallenge {
        protection_space: space.clone(),
        proposed_credential: proposed,
        previous_failure_count: previous,
        failure_response: Some(response.clone()),
        server_trust: None,
    };
    let task = info.clone();
    queue
        .ask_task(
            info,
            Callback::TaskChallenge,
            || AuthChallengeDisposition::PerformDefaultHandling,
            move |d, reply| {
                courier_delegates::TaskDelegate::did_receive_challenge(d, &task, &challenge, reply);
            },
        )
        .await
        .unwrap_or(AuthChallengeDisposition::PerformDefaultHandling)
}

/// A fresh client nonce: not secret, only unpredictable enough to keep answers distinct.
fn cnonce() -> String {
    use sha2::Digest;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!(
        "{now}:{}:{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    sha2::Sha256::digest(seed.as_bytes())[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}
