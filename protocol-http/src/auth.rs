//! HTTP authentication, the wire part: reading `WWW-Authenticate` challenges and writing the
//! `Authorization` answer for Basic (RFC 7617) and Digest (RFC 7616: MD5 and SHA-256, `qop=auth`).
//! Which credential to use is the engine's decision.

use base64::Engine as _;
use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, HeaderValue, Method};
use md5::Md5;
use sha2::{Digest, Sha256};

/// One challenge from a `WWW-Authenticate` header: a scheme and its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme, lower-cased (`basic`, `digest`).
    pub scheme: String,
    /// Parameters, names lower-cased, values unquoted.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// A parameter's value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The realm, if named.
    pub fn realm(&self) -> Option<&str> {
        self.param("realm")
    }
}

/// Every challenge in `headers`' `WWW-Authenticate` values, in order.
pub fn challenges(headers: &HeaderMap) -> Vec<Challenge> {
    challenges_in(headers, &WWW_AUTHENTICATE)
}

/// Every challenge in `headers`' `Proxy-Authenticate` values (a proxy's `407`), in order.
pub fn proxy_challenges(headers: &HeaderMap) -> Vec<Challenge> {
    challenges_in(headers, &http::header::PROXY_AUTHENTICATE)
}

fn challenges_in(headers: &HeaderMap, field: &http::HeaderName) -> Vec<Challenge> {
    headers
        .get_all(field)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse)
        .collect()
}

#[derive(Debug, PartialEq)]
enum Tok {
    Token(String),
    Quoted(String),
    Eq,
    Comma,
}

fn lex(s: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' | '\t' => {
                chars.next();
            }
            ',' => {
                chars.next();
                out.push(Tok::Comma);
            }
            '=' => {
                chars.next();
                out.push(Tok::Eq);
            }
            '"' => {
                chars.next();
                let mut q = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(e) = chars.next() {
                                q.push(e);
                            }
                        }
                        '"' => break,
                        c => q.push(c),
                    }
                }
                out.push(Tok::Quoted(q));
            }
            _ => {
                let mut t = String::new();
                while let Some(&c) = chars.peek() {
                    if matches!(c, ' ' | '\t' | ',' | '=' | '"') {
                        break;
                    }
                    t.push(c);
                    chars.next();
                }
                out.push(Tok::Token(t));
            }
        }
    }
    out
}

fn parse(value: &str) -> Vec<Challenge> {
    let toks = lex(value);
    let mut out: Vec<Challenge> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        match (&toks[i], toks.get(i + 1)) {
            (Tok::Comma, _) => i += 1,
            (Tok::Token(name), Some(Tok::Eq)) => {
                let value = match toks.get(i + 2) {
                    Some(Tok::Token(v)) | Some(Tok::Quoted(v)) => {
                        i += 3;
                        v.clone()
                    }
                    _ => {
                        i += 2;
                        String::new()
                    }
                };
                if let Some(c) = out.last_mut() {
                    c.params.push((name.to_ascii_lowercase(), value));
                }
            }
            (Tok::Token(scheme), _) => {
                out.push(Challenge {
                    scheme: scheme.to_ascii_lowercase(),
                    params: Vec::new(),
                });
                i += 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// The `Authorization` value for Basic.
pub fn basic(user: &str, password: &str) -> HeaderValue {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    HeaderValue::from_str(&format!("Basic {token}")).expect("base64 is a valid header value")
}

/// The Digest algorithms supported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestAlgorithm {
    /// `MD5` (the default when none is named).
    Md5,
    /// `SHA-256`.
    Sha256,
}

impl DigestAlgorithm {
    /// The algorithm a Digest challenge names, if supported (`-sess` variants are not).
    pub fn of(challenge: &Challenge) -> Option<DigestAlgorithm> {
        match challenge
            .param("algorithm")
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("MD5") => Some(DigestAlgorithm::Md5),
            Some("SHA-256") => Some(DigestAlgorithm::Sha256),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Sha256 => "SHA-256",
        }
    }

    fn hash(self, data: &str) -> String {
        match self {
            DigestAlgorithm::Md5 => hex(&Md5::digest(data.as_bytes())),
            DigestAlgorithm::Sha256 => hex(&Sha256::digest(data.as_bytes())),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The inputs of one Digest answer besides the challenge.
#[derive(Clone, Debug)]
pub struct DigestInput<'a> {
    /// The user.
    pub user: &'a str,
    /// The password.
    pub password: &'a str,
    /// The request method.
    pub method: &'a Method,
    /// The request target (path and query).
    pub uri: &'a str,
    /// The nonce count (1 for the first use of a nonce).
    pub nc: u32,
    /// The client nonce.
    pub cnonce: &'a str,
}

/// The `Authorization` value answering a Digest challenge, or `None` when the challenge lacks a
/// nonce, names an unsupported algorithm, or offers a `qop` without `auth`.
pub fn digest(challenge: &Challenge, input: &DigestInput<'_>) -> Option<HeaderValue> {
    let alg = DigestAlgorithm::of(challenge)?;
    let realm = challenge.realm().unwrap_or("");
    let nonce = challenge.param("nonce")?;
    let qop = match challenge.param("qop") {
        None => None,
        Some(q) if q.split(',').any(|v| v.trim().eq_ignore_ascii_case("auth")) => Some("auth"),
        Some(_) => return None,
    };
    let ha1 = alg.hash(&format!("{}:{realm}:{}", input.user, input.password));
    let ha2 = alg.hash(&format!("{}:{}", input.method.as_str(), input.uri));
    let nc = format!("{:08x}", input.nc);
    let response = match qop {
        Some(q) => alg.hash(&format!("{ha1}:{nonce}:{nc}:{}:{q}:{ha2}", input.cnonce)),
        None => alg.hash(&format!("{ha1}:{nonce}:{ha2}")),
    };
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut value = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", algorithm={}, response=\"{response}\"",
        quote(input.user),
        quote(realm),
        quote(nonce),
        quote(input.uri),
        alg.name(),
    );
    if let Some(q) = qop {
        value.push_str(&format!(
            ", qop={q}, nc={nc}, cnonce=\"{}\"",
            quote(input.cnonce)
        ));
    }
    if let Some(opaque) = challenge.param("opaque") {
        value.push_str(&format!(", opaque=\"{}\"", quote(opaque)));
    }
    HeaderValue::from_str(&value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_challenges_in_one_header_and_quoted_commas() {
        let mut h = HeaderMap::new();
        h.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(
                r#"Digest realm="a, b", qop="auth,auth-int", nonce="n1", algorithm=SHA-256, Basic realm="plain""#,
            ),
        );
        h.append(WWW_AUTHENTICATE, HeaderValue::from_static("Negotiate"));
        let c = challenges(&h);
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].scheme, "digest");
        assert_eq!(c[0].realm(), Some("a, b"));
        assert_eq!(c[0].param("qop"), Some("auth,auth-int"));
        assert_eq!(c[0].param("algorithm"), Some("SHA-256"));
        assert_eq!(
            (c[1].scheme.as_str(), c[1].realm()),
            ("basic", Some("plain"))
        );
        assert_eq!(c[2].scheme, "negotiate");
    }

    #[test]
    fn basic_is_base64_of_user_colon_password() {
        // RFC 7617 section 2.
        assert_eq!(
            basic("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    /// RFC 7616 section 3.9.1.
    #[test]
    fn digest_matches_the_rfc_example() {
        let challenge = |alg: &str| Challenge {
            scheme: "digest".into(),
            params: vec![
                ("realm".into(), "http-auth@example.org".into()),
                ("qop".into(), "auth, auth-int".into()),
                ("algorithm".into(), alg.into()),
                (
                    "nonce".into(),
                    "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v".into(),
                ),
                (
                    "opaque".into(),
                    "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS".into(),
                ),
            ],
        };
        let input = DigestInput {
            user: "Mufasa",
            password: "Circle of Life",
            method: &Method::GET,
            uri: "/dir/index.html",
            nc: 1,
            cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        };
        let md5 = digest(&challenge("MD5"), &input).unwrap();
        assert!(
            md5.to_str()
                .unwrap()
                .contains(r#"response="8ca523f5e9506fed4657c9700eebdbec""#),
            "{md5:?}"
        );
        let sha = digest(&challenge("SHA-256"), &input).unwrap();
        let sha = sha.to_str().unwrap();
        assert!(
            sha.contains(
                r#"response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1""#
            ),
            "{sha}"
        );
        assert!(sha.contains("qop=auth, nc=00000001"));
        assert!(sha.contains(r#"opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#));
        assert!(digest(&challenge("SHA-512-256"), &input).is_none());
    }

    // 256 cases each by default; `PROPTEST_CASES=N` runs N.
    proptest::proptest! {
        /// Any header text: challenges or none, never a panic; and a Digest answer to any of them
        /// is written or refused, never a panic.
        #[test]
        fn arbitrary_challenges_never_panic(text in "\\PC{0,200}") {
            let method = Method::GET;
            let input = DigestInput { user: "u", password: "p", method: &method, uri: "/", nc: 1, cnonce: "c" };
            for c in parse(&text) {
                let _ = digest(&c, &input);
            }
        }

        /// Challenges written out (tokens and quoted values with escapes) read back as written.
        #[test]
        fn written_challenges_read_back(
            list in proptest::collection::vec(
                ("[A-Za-z][A-Za-z0-9-]{0,10}", proptest::collection::vec(("[a-z][a-z0-9]{0,8}", "[ -~]{0,20}"), 0..4)),
                1..4,
            ),
        ) {
            let text = list
                .iter()
                .map(|(scheme, params)| {
                    let params: Vec<String> = params
                        .iter()
                        .map(|(n, v)| format!("{n}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
                        .collect();
                    format!("{scheme} {}", params.join(", "))
                })
                .collect::<Vec<_>>()
                .join(", ");
            let read = parse(&text);
            proptest::prop_assert_eq!(read.len(), list.len(), "{}", text);
            for (c, (scheme, params)) in read.iter().zip(&list) {
                proptest::prop_assert_eq!(&c.scheme, &scheme.to_ascii_lowercase());
                let want: Vec<(String, String)> = params.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
                proptest::prop_assert_eq!(&c.params, &want);
            }
        }
    }
}
