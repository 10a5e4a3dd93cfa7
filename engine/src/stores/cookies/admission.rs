//! Which cookies the jar takes: the rules a `Set-Cookie` (a response's, or the application's
//! through [`CookieStorage::set_cookie`](super::CookieStorage::set_cookie)) meets before it is
//! kept. Sizes and counts are bounded (RFC 6265bis, and the limits curl adopted after
//! CVE-2022-32205), a `Domain` that is a public suffix is refused, `Secure` cookies come only from
//! secure origins and are never shadowed from insecure ones, and the `__Secure-` and `__Host-`
//! prefixes keep their promises.

use cookie_store::{CookieDomain, CookieStore, RawCookie};
use url::Url;

/// The most bytes of a cookie's name and value together (RFC 6265bis 5.7).
pub(crate) const MAX_COOKIE_BYTES: usize = 4096;

/// The most cookies one domain keeps; a response cannot add more (it may still replace or remove
/// its cookies).
pub(crate) const MAX_COOKIES_PER_DOMAIN: usize = 50;

/// The most cookies the jar keeps.
pub(crate) const MAX_COOKIES: usize = 3000;

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
pub(super) fn admit(
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
pub(super) fn domain_of<'c>(cookie: &'c cookie_store::Cookie<'_>) -> &'c str {
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
pub(super) fn domain_match(host: &str, domain: &str) -> bool {
    let (host, domain) = (host.to_ascii_lowercase(), domain.to_ascii_lowercase());
    host == domain || host.ends_with(&format!(".{domain}"))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    /// Sets `text` from `from` into `store` through the jar's rules.
    pub(crate) fn set(
        store: &mut CookieStore,
        text: &str,
        from: &str,
    ) -> Result<(), CookieRefusal> {
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
