//! Authentication challenges: what a server asks for (`ProtectionSpace`), what a delegate answers with
//! (`Credential`, `AuthChallengeDisposition`), and the challenge itself (`AuthenticationChallenge`).

use std::fmt;

use crate::Response;

/// How a protection space authenticates (`NSURLAuthenticationMethod...`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthenticationMethod {
    /// HTTP Basic (RFC 7617).
    HttpBasic,
    /// HTTP Digest (RFC 7616).
    HttpDigest,
    /// The server's certificate must be trusted (session level).
    ServerTrust,
    /// The server asks for a client certificate (session level).
    ClientCertificate,
    /// A user and password for a protocol with no scheme of its own: an FTP server's login
    /// (URLSession's `NSURLAuthenticationMethodDefault`).
    Default,
}

impl AuthenticationMethod {
    /// The name the event stream uses (`http_basic`).
    pub fn name(self) -> &'static str {
        match self {
            AuthenticationMethod::HttpBasic => "http_basic",
            AuthenticationMethod::HttpDigest => "http_digest",
            AuthenticationMethod::ServerTrust => "server_trust",
            AuthenticationMethod::ClientCertificate => "client_certificate",
            AuthenticationMethod::Default => "default",
        }
    }
}

/// Where a credential applies (`URLProtectionSpace`): host, port, scheme, realm and method.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProtectionSpace {
    /// The host.
    pub host: String,
    /// The port.
    pub port: u16,
    /// `http`, `https` or `ftp`.
    pub protocol: String,
    /// The realm the server named, if any.
    pub realm: Option<String>,
    /// The authentication method.
    pub method: AuthenticationMethod,
    /// Set when a proxy asks (a `407`), and then `host` and `port` are the proxy's: what kind of
    /// proxy it is (URLSession's `proxyType`). `None` for a server's own challenge.
    pub proxy_type: Option<ProxyType>,
}

/// What a proxy that asks for credentials carries (URLSession's `NSURLProtectionSpaceHTTPProxy`
/// and `HTTPSProxy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyType {
    /// Cleartext requests, sent to the proxy whole (absolute-form).
    Http,
    /// `https` requests, through a `CONNECT` tunnel.
    Https,
}

impl ProxyType {
    /// `http` or `https`, as the event stream names it.
    pub fn name(self) -> &'static str {
        match self {
            ProxyType::Http => "http",
            ProxyType::Https => "https",
        }
    }
}

impl ProtectionSpace {
    /// True for a proxy's protection space (URLSession's `isProxy()`).
    pub fn is_proxy(&self) -> bool {
        self.proxy_type.is_some()
    }
}

/// How long a credential is kept (`URLCredential.Persistence`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum CredentialPersistence {
    /// Used for this request only.
    None,
    /// Kept in memory for the session's life (the default).
    #[default]
    ForSession,
    /// Kept in the session's credential store: on disk for a default session, in memory for an
    /// ephemeral one.
    Permanent,
}

/// A credential (`URLCredential`): a user and a password, or the decision to trust a server.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credential {
    user: String,
    password: String,
    persistence: CredentialPersistence,
    /// Set for a server-trust credential: the leaf certificate (DER) it trusts.
    trusted_leaf: Option<Vec<u8>>,
    /// Set for a client identity: the certificate chain (DER, leaf first) and the private key
    /// (PKCS#8 DER).
    identity: Option<(Vec<Vec<u8>>, Vec<u8>)>,
}

impl Credential {
    /// A user and password, kept as `persistence` says.
    pub fn password(
        user: impl Into<String>,
        password: impl Into<String>,
        persistence: CredentialPersistence,
    ) -> Credential {
        Credential {
            user: user.into(),
            password: password.into(),
            persistence,
            trusted_leaf: None,
            identity: None,
        }
    }

    /// A client identity for mutual TLS (`URLCredential(identity:certificates:)`): a certificate
    /// chain (DER, leaf first) and the leaf's private key (PKCS#8 DER). Answer a client-certificate
    /// challenge with it.
    pub fn identity(chain: Vec<Vec<u8>>, key: Vec<u8>) -> Credential {
        Credential {
            user: String::new(),
            password: String::new(),
            persistence: CredentialPersistence::ForSession,
            trusted_leaf: None,
            identity: Some((chain, key)),
        }
    }

    /// The certificate chain and key of a client identity.
    pub fn identity_parts(&self) -> Option<(&[Vec<u8>], &[u8])> {
        self.identity
            .as_ref()
            .map(|(chain, key)| (chain.as_slice(), key.as_slice()))
    }

    /// Trust for the server presenting `trust`'s certificate chain (`URLCredential(trust:)`):
    /// answer a server-trust challenge with it to accept the certificate (a private CA, a pinned
    /// key the delegate checked).
    pub fn trusting(trust: &ServerTrust) -> Credential {
        Credential {
            user: String::new(),
            password: String::new(),
            persistence: CredentialPersistence::None,
            trusted_leaf: trust.chain.first().cloned(),
            identity: None,
        }
    }

    /// True when this is a server-trust credential for the leaf certificate `der`.
    pub fn trusts_leaf(&self, der: &[u8]) -> bool {
        self.trusted_leaf.as_deref() == Some(der)
    }

    /// True for a credential made by [`Credential::trusting`].
    pub fn is_server_trust(&self) -> bool {
        self.trusted_leaf.is_some()
    }

    /// The user (empty for a server-trust credential).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The password.
    pub fn secret(&self) -> &str {
        &self.password
    }

    /// How long it is kept.
    pub fn persistence(&self) -> CredentialPersistence {
        self.persistence
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the password.
        f.debug_struct("Credential")
            .field("user", &self.user)
            .field("persistence", &self.persistence)
            .finish_non_exhaustive()
    }
}

/// What a server-trust challenge is about (`SecTrust`): the host and the certificate chain the
/// server presented, leaf first, DER-encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerTrust {
    /// The host the connection is for.
    pub host: String,
    /// The certificates, leaf first.
    pub chain: Vec<Vec<u8>>,
}

/// A challenge from a server (`URLAuthenticationChallenge`).
#[derive(Clone, Debug)]
pub struct AuthenticationChallenge {
    /// What is protected, and how.
    pub protection_space: ProtectionSpace,
    /// The credential default handling would use (from the URL, or the credential store), if any.
    pub proposed_credential: Option<Credential>,
    /// How many times this task was already challenged for this protection space.
    pub previous_failure_count: u32,
    /// The response that carried the challenge.
    pub failure_response: Option<Response>,
    /// For a server-trust challenge: the chain to evaluate.
    pub server_trust: Option<ServerTrust>,
}

/// How to answer a challenge (`URLSession.AuthChallengeDisposition`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthChallengeDisposition {
    /// Use this credential; `None` continues without one (the challenge's response is delivered).
    UseCredential(Option<Credential>),
    /// As if the delegate did not implement the method: the URL's user and password, then the
    /// credential store, else the challenge's response is delivered.
    PerformDefaultHandling,
    /// Cancel the task: it completes with -999.
    CancelAuthenticationChallenge,
    /// Try the server's next authentication scheme, if it offered another.
    RejectProtectionSpace,
}

impl AuthChallengeDisposition {
    /// How a client given one credential for the URLs it asks for (curl's `--user`) answers a
    /// task's challenge, the task having been made for `url`:
    /// - a proxy's challenge: default handling (a proxy's credentials come from its own URL);
    /// - another origin than `url`'s, reached by a redirect: default handling, unless
    ///   `any_origin` (curl's `--location-trusted`); the credential is not for it (curl's rule
    ///   since CVE-2018-1000007);
    /// - a challenge the credential already failed: none, so the 401 is delivered;
    /// - else the credential.
    pub fn with_given_credential(
        credential: &Credential,
        challenge: &AuthenticationChallenge,
        url: Option<&url::Url>,
        any_origin: bool,
    ) -> AuthChallengeDisposition {
        let space = &challenge.protection_space;
        let own_origin = url.is_some_and(|url| {
            url.scheme() == space.protocol
                && url
                    .host_str()
                    .is_some_and(|h| h.eq_ignore_ascii_case(&space.host))
                && url.port_or_known_default() == Some(space.port)
        });
        if space.is_proxy() || (!own_origin && !any_origin) {
            AuthChallengeDisposition::PerformDefaultHandling
        } else if challenge.previous_failure_count > 0 {
            AuthChallengeDisposition::UseCredential(None)
        } else {
            AuthChallengeDisposition::UseCredential(Some(credential.clone()))
        }
    }

    /// The name the event stream uses (`use_credential`).
    pub fn name(&self) -> &'static str {
        match self {
            AuthChallengeDisposition::UseCredential(_) => "use_credential",
            AuthChallengeDisposition::PerformDefaultHandling => "perform_default_handling",
            AuthChallengeDisposition::CancelAuthenticationChallenge => "cancel",
            AuthChallengeDisposition::RejectProtectionSpace => "reject_protection_space",
        }
    }
}
