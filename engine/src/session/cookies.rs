//! The session's cookie jar (RFC 6265, through `cookie_store`): cookies set by responses, redirects
//! included, and the `Cookie` header for each request.
//!
//! A default session keeps its jar in `cookies.json` in its session directory, rewritten (aside, then
//! renamed) when a response changes it; an ephemeral session keeps it in memory only. A cookie whose
//! `Domain` is a public suffix (`com`, `co.uk`, `github.io`: the list is compiled in, through the
//! `psl` crate) is refused unless that suffix is the responding host itself (RFC 6265 5.3 step 5).

use std::io::BufReader;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use cookie_store::{CookieStore, RawCookie};
use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderValue};
use url::Url;

use crate::configuration::CookieAcceptPolicy;
use crate::session::SessionContext;

/// A session's cookies.
#[derive(Default)]
pub(crate) struct CookieJar {
    store: OnceLock<Mutex<CookieStore>>,
}

impl std::fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieJar").finish_non_exhaustive()
    }
}

impl CookieJar {
    /// The store, loaded from the session directory on first use (default sessions).
    fn store(&self, ctx: &SessionContext) -> std::sync::MutexGuard<'_, CookieStore> {
        self.store
            .get_or_init(|| {
                let loaded = file(ctx)
                    .and_then(|p| std::fs::File::open(p).ok())
                    .and_then(|f| cookie_store::serde::json::load(BufReader::new(f)).ok());
                Mutex::new(loaded.unwrap_or_default())
            })
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The `Cookie` header for a request to `url`, if any cookie applies.
    pub(crate) fn header_for(&self, ctx: &SessionContext, url: &Url) -> Option<HeaderValue> {
        if !ctx.config.http_should_set_cookies {
            return None;
        }
        let store = self.store(ctx);
        let value = store
            .get_request_values(url)
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        drop(store);
        (!value.is_empty())
            .then(|| HeaderValue::from_str(&value).ok())
            .flatten()
    }

    /// Stores the cookies a response from `url` sets, as the accept policy allows; `main` is the
    /// task's main document URL.
    pub(crate) fn store_from(
        &self,
        ctx: &SessionContext,
        headers: &HeaderMap,
        url: &Url,
        main: Option<&Url>,
    ) {
        if !ctx.config.http_should_set_cookies || !headers.contains_key(SET_COOKIE) {
            return;
        }
        let allowed = match ctx.config.http_cookie_accept_policy {
            CookieAcceptPolicy::Always => true,
            CookieAcceptPolicy::Never => false,
            _ => match (main.and_then(Url::host_str), url.host_str()) {
                (Some(main), Some(host)) => domain_match(host, main),
                _ => false,
            },
        };
        if !allowed {
            return;
        }
        let cookies: Vec<RawCookie<'static>> = headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|s| RawCookie::parse(s.to_owned()).ok())
            .filter(|c| c.domain().is_none_or(|d| !is_foreign_public_suffix(d, url)))
            .collect();
        if cookies.is_empty() {
            return;
        }
        let mut store = self.store(ctx);
        store.store_response_cookies(cookies.into_iter(), url);
        if let Some(path) = file(ctx) {
            save(&store, path);
        }
    }
}

impl CookieJar {
    /// Forgets every cookie, and the saved jar (`Session::reset`).
    pub(crate) fn clear(&self, ctx: &SessionContext) {
        let mut store = self.store(ctx);
        store.clear();
        if let Some(path) = file(ctx) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// `cookies.json` in a default session's directory; none for an ephemeral session.
fn file(ctx: &SessionContext) -> Option<PathBuf> {
    if ctx.storage.is_ephemeral() {
        return None;
    }
    ctx.storage.path().ok().map(|d| d.join("cookies.json"))
}

/// Writes the jar aside, then renames it over the old one: a crash leaves the old jar or the new.
fn save(store: &CookieStore, path: PathBuf) {
    let aside = path.with_extension("json-new");
    let written = std::fs::File::create(&aside)
        .map_err(|e| e.to_string())
        .and_then(|mut f| cookie_store::serde::json::save(store, &mut f).map_err(|e| e.to_string()))
        .and_then(|()| std::fs::rename(&aside, &path).map_err(|e| e.to_string()));
    if let Err(e) = written {
        tracing::warn!(error = %e, "cannot save the cookie jar");
        let _ = std::fs::remove_file(&aside);
    }
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
    use super::domain_match;

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
