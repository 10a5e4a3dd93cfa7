//! [`CookieStorage`] (URLSession's `HTTPCookieStorage`): cookies set by responses, redirects
//! included, and the `Cookie` header for each request, through `cookie_store` (RFC 6265).
//!
//! A default session's own storage is `cookies.json` in its session directory, rewritten (aside,
//! then renamed) when a response changes it; an ephemeral session's is in memory only; a storage an
//! application made lives where it said. A `Cookie` header lists the longest path first and is at
//! most [`MAX_COOKIE_HEADER`] bytes.
//!
//! A server is not trusted with the jar's size or with other origins' cookies: [`admission`]
//! decides which cookies are kept (a name and value of at most
//! [`MAX_COOKIE_BYTES`](admission::MAX_COOKIE_BYTES), at most
//! [`MAX_COOKIES_PER_DOMAIN`](admission::MAX_COOKIES_PER_DOMAIN) a domain and
//! [`MAX_COOKIES`](admission::MAX_COOKIES) in all, no `Domain` that is a public suffix other than
//! the responding host, `Secure` cookies only from secure origins, the prefixes' promises).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use cookie_store::{CookieDomain, CookieExpiration, CookieStore, RawCookie};
use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderValue};
use url::Url;

use super::Home;
use super::saver::{Saver, Writes};
use crate::configuration::CookieAcceptPolicy;

mod admission;

pub use admission::CookieRefusal;
use admission::{admit, domain_match, domain_of};

/// The storage's file in its directory.
const FILE: &str = "cookies.json";

/// Cookies, as sessions keep and send them (URLSession's `HTTPCookieStorage`).
///
/// A session uses its own by default ([`StoreChoice::Own`](super::StoreChoice)); make one with
/// [`CookieStorage::in_memory`] or [`CookieStorage::persistent`] and hand it to several sessions'
/// [`Configuration::http_cookie_storage`](crate::Configuration::http_cookie_storage) to share
/// their cookies, or read and seed a session's through [`Session::cookie_storage`](crate::Session::cookie_storage).
/// A server is not trusted with the storage's size or with other origins' cookies, and cookies the
/// application sets with [`CookieStorage::set_cookie`] meet the same rules: a name and value of at
/// most 4096 bytes, at most 50 cookies per domain and 3000 in all, a `Cookie` header of at most
/// 8190 bytes, no `Domain` that is a public suffix (unless the host is that suffix), `Secure`
/// cookies only from secure origins (https, or loopback) and never shadowed from insecure ones, and
/// the `__Secure-` and `__Host-` prefixes' promises kept. Refusals are [`CookieRefusal`]s.
pub struct CookieStorage {
    store: OnceLock<Mutex<CookieStore>>,
    home: Home,
    saver: Saver,
    writes: Writes,
    accept: Mutex<CookieAcceptPolicy>,
}

impl std::fmt::Debug for CookieStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieStorage")
            .field("home", &self.home)
            .finish_non_exhaustive()
    }
}

/// A cookie as the storage holds it (URLSession's `HTTPCookie`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cookie {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: String,
    /// The domain it is sent to: the host that set it, or (with `host_only` false) that domain and
    /// its subdomains.
    pub domain: String,
    /// True when it goes to `domain` alone, not to its subdomains (no `Domain` attribute).
    pub host_only: bool,
    /// The path it is sent under.
    pub path: String,
    /// When it expires; `None` for a session cookie, which is never written to disk.
    pub expires: Option<SystemTime>,
    /// Sent over secure connections only.
    pub secure: bool,
    /// Not for scripts (kept for fidelity; Courier has no scripts).
    pub http_only: bool,
}

impl Cookie {
    fn of(c: &cookie_store::Cookie<'_>) -> Cookie {
        let (domain, host_only) = match &c.domain {
            CookieDomain::HostOnly(d) => (d.clone(), true),
            CookieDomain::Suffix(d) => (d.clone(), false),
            CookieDomain::NotPresent | CookieDomain::Empty => (String::new(), true),
        };
        let expires = match &c.expires {
            CookieExpiration::AtUtc(at) => Some(SystemTime::from(*at)),
            CookieExpiration::SessionEnd => None,
        };
        Cookie {
            name: c.name().to_owned(),
            value: c.value().to_owned(),
            domain,
            host_only,
            path: String::from(c.path.clone()),
            expires,
            secure: c.secure() == Some(true),
            http_only: c.http_only() == Some(true),
        }
    }
}

impl CookieStorage {
    /// A storage kept in memory only.
    pub fn in_memory() -> Arc<CookieStorage> {
        Arc::new(CookieStorage::new(
            Home::memory(),
            CookieAcceptPolicy::Always,
        ))
    }

    /// A storage kept in `dir` (as `cookies.json`, readable by the user only; the directory is
    /// created on the first write), with what an earlier process left there.
    pub fn persistent(dir: impl Into<std::path::PathBuf>) -> Arc<CookieStorage> {
        Arc::new(CookieStorage::new(
            Home::directory(dir),
            CookieAcceptPolicy::Always,
        ))
    }

    /// A session's own storage, accepting as `accept` says.
    pub(crate) fn new(home: Home, accept: CookieAcceptPolicy) -> CookieStorage {
        CookieStorage {
            store: OnceLock::new(),
            home,
            saver: Saver::default(),
            writes: Writes::default(),
            accept: Mutex::new(accept),
        }
    }

    /// Which cookies responses may set here. A session's own storage starts with the
    /// configuration's `http_cookie_accept_policy`; one made by the application with
    /// [`CookieAcceptPolicy::Always`] (each session using it still applies its own policy too).
    pub fn accept_policy(&self) -> CookieAcceptPolicy {
        *self.accept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes [`CookieStorage::accept_policy`] for the responses that come from now on.
    pub fn set_accept_policy(&self, policy: CookieAcceptPolicy) {
        *self.accept.lock().unwrap_or_else(|p| p.into_inner()) = policy;
    }

    /// Every cookie that has not expired.
    pub fn cookies(&self) -> Vec<Cookie> {
        self.lock().iter_unexpired().map(Cookie::of).collect()
    }

    /// The cookies a request to `url` would carry (domain, path, `Secure` and expiry applied), in
    /// the order its `Cookie` header lists them: the longest path first.
    pub fn cookies_for(&self, url: &Url) -> Vec<Cookie> {
        in_request_order(&self.lock(), url)
            .into_iter()
            .map(Cookie::of)
            .collect()
    }

    /// Sets a cookie as if a response from `url` had sent `set_cookie` (a `Set-Cookie` header's
    /// value), with the same rules (size, domain, `Secure`, prefixes, limits); the accept policy
    /// does not apply to the application.
    ///
    /// # Errors
    /// Why the cookie is not kept.
    pub fn set_cookie(&self, url: &Url, set_cookie: &str) -> Result<(), CookieRefusal> {
        let raw = RawCookie::parse(set_cookie.to_owned()).map_err(|_| CookieRefusal::Malformed)?;
        let mut store = self.lock();
        let cookie = admit(&store, &raw, url)?;
        store
            .insert(cookie, url)
            .map_err(|_| CookieRefusal::Unfit)?;
        self.save(&store);
        Ok(())
    }

    /// Removes the cookie `name` of `domain` and `path`; true when there was one.
    pub fn delete(&self, name: &str, domain: &str, path: &str) -> bool {
        let mut store = self.lock();
        let gone = store.remove(domain, path, name).is_some();
        if gone {
            self.save(&store);
        }
        gone
    }

    /// Removes every cookie, from memory and from disk (`removeCookies(since:)` with the epoch).
    pub fn remove_all(&self) {
        let mut store = self.lock();
        store.clear();
        if let Some(path) = self.home.file(FILE) {
            self.saver.save_here(path, None);
        }
    }

    /// Waits until what changed is on disk.
    pub(crate) async fn written(&self) {
        self.writes.idle().await;
    }

    /// The store, loaded from its file on first use.
    fn lock(&self) -> std::sync::MutexGuard<'_, CookieStore> {
        self.store
            .get_or_init(|| {
                let loaded = self
                    .home
                    .load(FILE)
                    .and_then(|bytes| cookie_store::serde::json::load(&bytes[..]).ok());
                Mutex::new(loaded.unwrap_or_default())
            })
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Loads the file now (a session does it off the async workers as it starts).
    pub(crate) fn load(&self) {
        drop(self.lock());
    }

    /// Saves `store` (locked by the caller, so versions are written in the order they changed).
    fn save(&self, store: &CookieStore) {
        let Some(path) = self.home.file(FILE) else {
            return;
        };
        let mut json = Vec::new();
        match cookie_store::serde::json::save(store, &mut json) {
            Ok(()) => self.saver.save(&self.writes, path, Some(json)),
            Err(e) => tracing::warn!(error = %e, "cannot save the cookie storage"),
        }
    }

    /// The `Cookie` header for a request to `url`, if any cookie applies: at most
    /// [`MAX_COOKIE_HEADER`] bytes (cookies that would go past it are left out).
    pub(crate) fn header_for(&self, url: &Url) -> Option<HeaderValue> {
        let store = self.lock();
        let value = cookie_header(
            in_request_order(&store, url)
                .into_iter()
                .map(|c| c.name_value()),
        );
        drop(store);
        (!value.is_empty())
            .then(|| HeaderValue::from_str(&value).ok())
            .flatten()
    }

    /// Stores the cookies a response from `url` sets, as the session's policy `session_policy` and
    /// the storage's own allow; `main` is the task's main document URL. `session_only` (a response
    /// over a connection whose server trust the application overrode): the cookies last for this
    /// process and are never written.
    pub(crate) fn store_from(
        &self,
        session_policy: CookieAcceptPolicy,
        headers: &HeaderMap,
        url: &Url,
        main: Option<&Url>,
        session_only: bool,
    ) {
        if !headers.contains_key(SET_COOKIE) {
            return;
        }
        let allows = |policy| match policy {
            CookieAcceptPolicy::Always => true,
            CookieAcceptPolicy::Never => false,
            _ => match (main.and_then(Url::host_str), url.host_str()) {
                (Some(main), Some(host)) => domain_match(host, main),
                _ => false,
            },
        };
        if !allows(session_policy) || !allows(self.accept_policy()) {
            return;
        }
        let cookies: Vec<RawCookie<'static>> = headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|s| RawCookie::parse(s.to_owned()).ok())
            .map(|mut c| {
                if session_only {
                    // A session cookie: the storage never saves those.
                    c.unset_expires();
                    c.set_max_age(None);
                }
                c
            })
            .collect();
        if cookies.is_empty() {
            return;
        }
        let mut store = self.lock();
        let mut changed = false;
        for raw in &cookies {
            match admit(&store, raw, url) {
                Ok(cookie) => changed |= store.insert(cookie, url).is_ok(),
                Err(why) => tracing::debug!(cookie = raw.name(), %why, "cookie refused"),
            }
        }
        if changed {
            self.save(&store);
        }
    }
}

/// The longest `Cookie` header sent (curl's limit).
pub(crate) const MAX_COOKIE_HEADER: usize = 8190;

/// The cookies `store` holds for a request to `url`, in the order RFC 6265 (5.4 step 2) says a
/// `Cookie` header lists them: the longest path first, so that of two cookies of the same name the
/// one set for the more specific path is the one a server reads first (as curl, browsers and
/// `HTTPCookieStorage` send them). `cookie_store` keeps no creation times, the RFC's second key:
/// cookies of equal paths go by name, then the longer domain first, so the order never depends on
/// a hash map's.
fn in_request_order<'s>(
    store: &'s CookieStore,
    url: &Url,
) -> Vec<&'s cookie_store::Cookie<'static>> {
    let mut cookies = store.matches(url);
    cookies.sort_by(|a, b| {
        b.path
            .len()
            .cmp(&a.path.len())
            .then_with(|| a.name().cmp(b.name()))
            .then_with(|| domain_of(b).len().cmp(&domain_of(a).len()))
    });
    cookies
}

/// Joins `name=value` pairs into a `Cookie` header of at most [`MAX_COOKIE_HEADER`] bytes; pairs that
/// would go past it are left out.
fn cookie_header<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut header = String::new();
    for (name, value) in pairs {
        let sep = if header.is_empty() { 0 } else { 2 };
        if header.len() + sep + name.len() + 1 + value.len() > MAX_COOKIE_HEADER {
            continue;
        }
        if sep > 0 {
            header.push_str("; ");
        }
        header.push_str(name);
        header.push('=');
        header.push_str(value);
    }
    header
}

#[cfg(test)]
mod tests {
    use super::admission::tests::{set, url};
    use super::admission::{MAX_COOKIE_BYTES, MAX_COOKIES};
    use super::*;

    #[test]
    fn the_cookie_header_stops_at_8190_bytes() {
        let big = "v".repeat(4000);
        let pairs = vec![
            ("a", big.as_str()),
            ("b", big.as_str()),
            ("c", big.as_str()),
            ("d", "1"),
        ];
        let header = cookie_header(pairs.into_iter());
        assert!(header.len() <= MAX_COOKIE_HEADER, "{}", header.len());
        assert!(header.starts_with("a=") && header.contains("; b=") && header.ends_with("; d=1"));
        assert!(
            !header.contains("c="),
            "the one that does not fit is left out"
        );
    }

    proptest::proptest! {
        /// Any Set-Cookie text from any of a few origins: the jar stays within its limits and
        /// nothing panics.
        #[test]
        fn arbitrary_set_cookies_keep_the_jar_bounded(
            lines in proptest::collection::vec(
                ("[ -~]{0,80}", 0usize..4, proptest::prelude::any::<bool>()),
                0..200,
            ),
        ) {
            let origins = ["https://a.test/", "http://a.test/x/", "https://sub.a.test/", "http://b.test/"];
            let mut jar = CookieStore::default();
            for (text, origin, big) in lines {
                let text = if big { format!("{text}{}", "x".repeat(5000)) } else { text };
                if let Ok(raw) = RawCookie::parse(text) {
                    let _ = set(&mut jar, &raw.to_string(), origins[origin]);
                }
            }
            let all: Vec<_> = jar.iter_unexpired().collect();
            proptest::prop_assert!(all.len() <= MAX_COOKIES);
            for c in &all {
                proptest::prop_assert!(c.name().len() + c.value().len() <= MAX_COOKIE_BYTES);
            }
            for origin in origins {
                let header = cookie_header(
                    in_request_order(&jar, &url(origin)).into_iter().map(|c| c.name_value()),
                );
                proptest::prop_assert!(header.len() <= MAX_COOKIE_HEADER);
            }
        }
    }

    #[test]
    fn the_longest_path_goes_first_then_the_name() {
        let mut jar = CookieStore::default();
        for text in [
            "id=root; Path=/",
            "b=1; Path=/",
            "id=app; Path=/app",
            "a=1; Path=/",
            "id=deep; Path=/app/v2",
            "id=wide; Domain=a.test; Path=/",
        ] {
            assert_eq!(set(&mut jar, text, "https://www.a.test/app/v2/x"), Ok(()));
        }
        let header = |u: &str| {
            cookie_header(
                in_request_order(&jar, &url(u))
                    .into_iter()
                    .map(|c| c.name_value()),
            )
        };
        for _ in 0..20 {
            assert_eq!(
                header("https://www.a.test/app/v2/x"),
                "id=deep; id=app; a=1; b=1; id=root; id=wide"
            );
        }
        assert_eq!(
            header("https://www.a.test/app"),
            "id=app; a=1; b=1; id=root; id=wide"
        );
        assert_eq!(header("https://other.a.test/"), "id=wide");
    }
}
