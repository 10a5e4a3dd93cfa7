//! [`CookieStorage`] (URLSession's `HTTPCookieStorage`): cookies set by responses, redirects
//! included, and the `Cookie` header for each request, through `cookie_store` (RFC 6265).
//!
//! A default session's own storage is `cookies.json` in its session directory, rewritten (aside,
//! then renamed) when a response changes it; an ephemeral session's is in memory only; a storage an
//! application made lives where it said. A cookie whose
//! `Domain` is a public suffix (`com`, `co.uk`, `github.io`: the list is compiled in, through the
//! `psl` crate) is refused unless that suffix is the responding host itself (RFC 6265 5.3 step 5).
//!
//! A server is not trusted with the jar's size or with other origins' cookies (RFC 6265bis, and the
//! limits curl adopted after CVE-2022-32205): a cookie's name and value are at most
//! [`MAX_COOKIE_BYTES`], a domain keeps at most [`MAX_COOKIES_PER_DOMAIN`] and the jar
//! [`MAX_COOKIES`], and a `Cookie` header is at most [`MAX_COOKIE_HEADER`] bytes. A `Secure` cookie
//! is taken only from a secure origin, an insecure one can neither set nor shadow a `Secure` cookie,
//! and the `__Secure-` and `__Host-` prefixes hold their promises. A secure origin is https, or a
//! loopback host (as browsers and curl count it).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use cookie_store::{CookieDomain, CookieExpiration, CookieStore, RawCookie};
use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderValue};
use url::Url;

use super::Home;
use super::saver::{Saver, Writes};
use crate::configuration::CookieAcceptPolicy;

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

/// The most bytes of a cookie's name and value together (RFC 6265bis 5.7).
pub(crate) const MAX_COOKIE_BYTES: usize = 4096;

/// The most cookies one domain keeps; a response cannot add more (it may still replace or remove
/// its cookies).
pub(crate) const MAX_COOKIES_PER_DOMAIN: usize = 50;

/// The most cookies the jar keeps.
pub(crate) const MAX_COOKIES: usize = 3000;

/// The longest `Cookie` header sent (curl's limit).
pub(crate) const MAX_COOKIE_HEADER: usize = 8190;

/// Why a cookie is not kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CookieRefusal {
    /// Not a `Set-Cookie` value (no `name=value`).
    Malformed,
    /// Name and value are longer than 4096 bytes.
    TooLarge,
    /// The cookie does not fit the URL: a bad domain or path (cookie_store's refusal), or a
    /// `Domain` that is a public suffix other than the host itself.
    Unfit,
    /// `Secure` from an insecure origin.
    SecureFromInsecureOrigin,
    /// An insecure origin setting a cookie that would shadow a `Secure` one.
    ShadowsSecure,
    /// A `__Secure-` or `__Host-` name whose promise the cookie does not keep.
    BrokenPrefix,
    /// The domain holds 50 cookies already.
    DomainFull,
    /// The storage holds 3000 cookies already.
    JarFull,
}

impl std::fmt::Display for CookieRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CookieRefusal::Malformed => "not a Set-Cookie value",
            CookieRefusal::TooLarge => "name and value longer than 4096 bytes",
            CookieRefusal::Unfit => "does not fit the URL's domain or path",
            CookieRefusal::SecureFromInsecureOrigin => "Secure, from an insecure origin",
            CookieRefusal::ShadowsSecure => "would shadow a Secure cookie, from an insecure origin",
            CookieRefusal::BrokenPrefix => {
                "a __Secure- or __Host- name without what the prefix requires"
            }
            CookieRefusal::DomainFull => "its domain has 50 cookies already",
            CookieRefusal::JarFull => "the jar is full",
        })
    }
}

impl std::error::Error for CookieRefusal {}

/// Decides whether the jar takes `raw`, which a response from `url` set; the cookie as it would be
/// stored when it does.
fn admit(
    store: &CookieStore,
    raw: &RawCookie<'_>,
    url: &Url,
) -> Result<cookie_store::Cookie<'static>, CookieRefusal> {
    if raw.name().len() + raw.value().len() > MAX_COOKIE_BYTES {
        return Err(CookieRefusal::TooLarge);
    }
    if raw
        .domain()
        .is_some_and(|d| is_foreign_public_suffix(d, url))
    {
        return Err(CookieRefusal::Unfit);
    }
    let cookie = cookie_store::Cookie::try_from_raw_cookie(raw, url)
        .map_err(|_| CookieRefusal::Unfit)?
        .into_owned();
    let secure_origin = is_secure_origin(url);
    let secure = raw.secure() == Some(true);
    if secure && !secure_origin {
        return Err(CookieRefusal::SecureFromInsecureOrigin);
    }
    let name = raw.name();
    let prefixed = |prefix: &str| {
        name.len() >= prefix.len() && name[..prefix.len()].eq_ignore_ascii_case(prefix)
    };
    if (prefixed("__Secure-") || prefixed("__Host-")) && !secure {
        return Err(CookieRefusal::BrokenPrefix);
    }
    if prefixed("__Host-")
        && (!matches!(cookie.domain, CookieDomain::HostOnly(_)) || raw.path() != Some("/"))
    {
        return Err(CookieRefusal::BrokenPrefix);
    }
    let domain = domain_of(&cookie);
    let path: &str = cookie.path.as_ref();
    if !secure_origin
        && store.iter_unexpired().any(|old| {
            old.secure() == Some(true)
                && old.name() == name
                && (domain_match(domain, domain_of(old)) || domain_match(domain_of(old), domain))
                && path_match(path, old.path.as_ref())
        })
    {
        return Err(CookieRefusal::ShadowsSecure);
    }
    // Replacing (or removing) a cookie the jar has never adds one.
    if store.contains_any(domain, path, name) {
        return Ok(cookie);
    }
    let mut in_domain = 0;
    let mut total = 0;
    for old in store.iter_unexpired() {
        total += 1;
        in_domain += usize::from(domain_of(old).eq_ignore_ascii_case(domain));
    }
    if in_domain >= MAX_COOKIES_PER_DOMAIN {
        return Err(CookieRefusal::DomainFull);
    }
    if total >= MAX_COOKIES {
        return Err(CookieRefusal::JarFull);
    }
    Ok(cookie)
}

/// The domain a stored cookie belongs to (its host, or its `Domain` attribute).
fn domain_of<'c>(cookie: &'c cookie_store::Cookie<'_>) -> &'c str {
    match &cookie.domain {
        CookieDomain::HostOnly(d) | CookieDomain::Suffix(d) => d,
        CookieDomain::NotPresent | CookieDomain::Empty => "",
    }
}

/// https, or a loopback host (`localhost` and names under it among them, which never leave this
/// machine): where `Secure` cookies may come from and go to, as browsers take a secure context.
fn is_secure_origin(url: &Url) -> bool {
    url.scheme() == "https"
        || match url.host() {
            Some(url::Host::Domain(d)) => courier_protocol_http::is_localhost_name(d),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        }
}

/// RFC 6265 5.1.4 path-match: `path` is `cookie_path` or below it.
fn path_match(path: &str, cookie_path: &str) -> bool {
    path == cookie_path
        || (path.starts_with(cookie_path)
            && (cookie_path.ends_with('/') || path[cookie_path.len()..].starts_with('/')))
}

/// Joins `name=value` pairs into a `Cookie` header of at most [`MAX_COOKIE_HEADER`] bytes; pairs that
/// would go past it are left out.
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

/// True when a cookie's `Domain` is a public suffix other than the responding host itself.
fn is_foreign_public_suffix(domain: &str, url: &Url) -> bool {
    let domain = domain.trim_start_matches('.').to_ascii_lowercase();
    let is_suffix = psl::suffix_str(&domain).is_some_and(|s| s == domain);
    is_suffix
        && url
            .host_str()
            .is_none_or(|h| !h.eq_ignore_ascii_case(&domain))
}

/// RFC 6265 domain-match: `host` is `domain` or a subdomain of it.
fn domain_match(host: &str, domain: &str) -> bool {
    let (host, domain) = (host.to_ascii_lowercase(), domain.to_ascii_lowercase());
    host == domain || host.ends_with(&format!(".{domain}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    /// Sets `text` from `from` into `store` through the jar's rules.
    fn set(store: &mut CookieStore, text: &str, from: &str) -> Result<(), CookieRefusal> {
        let raw = RawCookie::parse(text.to_owned()).unwrap();
        let cookie = admit(store, &raw, &url(from))?;
        store
            .insert(cookie, &url(from))
            .map_err(|_| CookieRefusal::Unfit)?;
        Ok(())
    }

    #[test]
    fn a_cookie_is_at_most_4096_bytes() {
        let mut jar = CookieStore::default();
        let value = "v".repeat(MAX_COOKIE_BYTES - 1);
        assert_eq!(
            set(&mut jar, &format!("a={value}"), "https://a.test/"),
            Ok(())
        );
        let value = "v".repeat(MAX_COOKIE_BYTES);
        assert_eq!(
            set(&mut jar, &format!("a={value}"), "https://a.test/"),
            Err(CookieRefusal::TooLarge)
        );
    }

    #[test]
    fn a_domain_keeps_50_and_the_jar_3000() {
        let mut jar = CookieStore::default();
        for i in 0..MAX_COOKIES_PER_DOMAIN {
            set(&mut jar, &format!("c{i}=1"), "https://a.test/").unwrap();
        }
        assert_eq!(
            set(&mut jar, "one-more=1", "https://a.test/"),
            Err(CookieRefusal::DomainFull)
        );
        assert_eq!(
            set(&mut jar, "c7=2", "https://a.test/"),
            Ok(()),
            "replacing is fine"
        );
        assert_eq!(
            set(&mut jar, "x=1", "https://b.test/"),
            Ok(()),
            "another domain"
        );
        let mut jar = CookieStore::default();
        for i in 0..MAX_COOKIES {
            set(&mut jar, "c=1", &format!("https://h{i}.test/")).unwrap();
        }
        assert_eq!(
            set(&mut jar, "c=1", "https://new.test/"),
            Err(CookieRefusal::JarFull)
        );
    }

    #[test]
    fn secure_cookies_come_from_secure_origins_and_are_not_shadowed() {
        let mut jar = CookieStore::default();
        assert_eq!(
            set(&mut jar, "s=1; Secure", "http://a.test/"),
            Err(CookieRefusal::SecureFromInsecureOrigin)
        );
        set(&mut jar, "s=1; Secure", "https://a.test/").unwrap();
        assert_eq!(
            set(&mut jar, "s=evil", "http://a.test/"),
            Err(CookieRefusal::ShadowsSecure),
            "http cannot overwrite it"
        );
        assert_eq!(
            set(&mut jar, "s=evil; Path=/deeper", "http://a.test/"),
            Err(CookieRefusal::ShadowsSecure),
            "nor shadow it on a longer path"
        );
        assert_eq!(
            set(&mut jar, "s=evil; Domain=a.test", "http://sub.a.test/"),
            Err(CookieRefusal::ShadowsSecure),
            "nor from a subdomain"
        );
        assert_eq!(set(&mut jar, "other=1", "http://a.test/"), Ok(()));
        assert_eq!(set(&mut jar, "s=2", "https://a.test/"), Ok(()), "https may");
        assert_eq!(
            set(&mut jar, "t=1; Secure", "http://127.0.0.1/"),
            Ok(()),
            "loopback counts as secure"
        );
        assert_eq!(
            set(&mut jar, "t=1; Secure", "http://app.localhost/"),
            Ok(()),
            "so does a name under localhost, which never leaves this machine"
        );
        assert_eq!(
            set(&mut jar, "t=1; Secure", "http://localhost.a.test/"),
            Err(CookieRefusal::SecureFromInsecureOrigin),
            "not a name that only begins with it"
        );
    }

    #[test]
    fn prefixes_keep_their_promises() {
        let mut jar = CookieStore::default();
        let https = "https://a.test/dir/page";
        assert_eq!(
            set(&mut jar, "__Secure-a=1", https),
            Err(CookieRefusal::BrokenPrefix)
        );
        assert_eq!(
            set(&mut jar, "__secure-a=1", https),
            Err(CookieRefusal::BrokenPrefix)
        );
        assert_eq!(set(&mut jar, "__Secure-a=1; Secure", https), Ok(()));
        assert_eq!(
            set(&mut jar, "__Secure-b=1; Secure", "http://a.test/"),
            Err(CookieRefusal::SecureFromInsecureOrigin)
        );
        assert_eq!(
            set(&mut jar, "__Host-a=1; Secure", https),
            Err(CookieRefusal::BrokenPrefix),
            "no Path=/"
        );
        assert_eq!(
            set(&mut jar, "__Host-a=1; Secure; Path=/; Domain=a.test", https),
            Err(CookieRefusal::BrokenPrefix),
            "a Domain"
        );
        assert_eq!(set(&mut jar, "__Host-a=1; Secure; Path=/", https), Ok(()));
    }

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

    #[test]
    fn public_suffixes_take_no_cookies_from_other_hosts() {
        use super::is_foreign_public_suffix as foreign;
        let url = |s: &str| url::Url::parse(s).unwrap();
        assert!(foreign("com", &url("https://example.com/")));
        assert!(foreign(".co.uk", &url("https://shop.example.co.uk/")));
        assert!(foreign("github.io", &url("https://me.github.io/")));
        assert!(!foreign("example.com", &url("https://a.example.com/")));
        assert!(
            !foreign("github.io", &url("https://github.io/")),
            "the suffix's own host"
        );
    }

    #[test]
    fn domains_match_themselves_and_their_subdomains_only() {
        assert!(domain_match("a.example.com", "example.com"));
        assert!(domain_match("EXAMPLE.com", "example.com"));
        assert!(!domain_match("badexample.com", "example.com"));
        assert!(!domain_match("example.com", "a.example.com"));
    }
}
