//! The session-level challenges: each new TLS connection's certificate chain goes to the delegate,
//! whose answer decides (standard verification by default); and a server that asks for a client
//! certificate gets the identity the delegate gives (none by default).

use courier_delegates::{
    AuthChallengeDisposition, AuthenticationChallenge, AuthenticationMethod, Callback,
    DeliveryQueue, ProtectionSpace, ServerTrust, SessionDelegate,
};
use courier_protocol_http::identity::{
    ClientIdentityProvider, Identity, IdentityDecision, IdentityFuture,
};
use courier_protocol_http::trust::{TrustDecision, TrustEvaluator, TrustFuture};
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use tokio::sync::oneshot;

/// A client identity read from PEM text, to answer a client-certificate challenge with
/// (`AuthChallengeDisposition::UseCredential`): the certificate chain (leaf first) from
/// `chain_pem`, the leaf's private key from `key_pem` (both may be the same text), as curl's
/// `--cert` and `--key` read them.
///
/// # Errors
/// `ClientCertificateRejected` (-1205), saying why: no certificate, text that does not parse, or
/// a key that is missing or not PKCS#8 (a PKCS#1 or SEC1 key converts with
/// `openssl pkcs8 -topk8 -nocrypt`).
pub fn identity_from_pem(
    chain_pem: &[u8],
    key_pem: &[u8],
) -> Result<courier_delegates::Credential, courier_delegates::Error> {
    use courier_delegates::{Error, ErrorCode};
    use rustls_pki_types::PrivateKeyDer;
    use rustls_pki_types::pem::PemObject;
    let refused = |why: String| Error::new(ErrorCode::ClientCertificateRejected, why);
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| refused(format!("unreadable PEM certificate: {e}")))?;
    if chain.is_empty() {
        return Err(refused("no certificate in the PEM text".into()));
    }
    match PrivateKeyDer::from_pem_slice(key_pem) {
        Ok(PrivateKeyDer::Pkcs8(key)) => Ok(courier_delegates::Credential::identity(
            chain,
            key.secret_pkcs8_der().to_vec(),
        )),
        Ok(_) => Err(refused(
            "the private key is not PKCS#8 (convert it: openssl pkcs8 -topk8 -nocrypt)".into(),
        )),
        Err(e) => Err(refused(format!(
            "no usable private key in the PEM text: {e}"
        ))),
    }
}

/// Puts a session's TLS challenges to its delegate.
pub(crate) struct SessionChallenges {
    queue: DeliveryQueue,
}

impl SessionChallenges {
    pub(crate) fn new(queue: DeliveryQueue) -> SessionChallenges {
        SessionChallenges { queue }
    }

    /// Asks the delegate; its answer (default handling when it is gone) comes on the receiver.
    fn ask(
        &self,
        host: &str,
        port: u16,
        method: AuthenticationMethod,
        server_trust: Option<ServerTrust>,
    ) -> oneshot::Receiver<AuthChallengeDisposition> {
        let challenge = AuthenticationChallenge {
            protection_space: ProtectionSpace {
                host: host.to_owned(),
                port,
                protocol: "https".to_owned(),
                realm: None,
                method,
                proxy_type: None,
            },
            proposed_credential: None,
            previous_failure_count: 0,
            failure_response: None,
            server_trust,
        };
        let default = AuthChallengeDisposition::PerformDefaultHandling;
        self.queue
            .ask(Callback::SessionChallenge, default, move |d, reply| {
                SessionDelegate::did_receive_challenge(d, &challenge, reply);
            })
    }
}

impl std::fmt::Debug for SessionChallenges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionChallenges").finish_non_exhaustive()
    }
}

impl TrustEvaluator for SessionChallenges {
    fn evaluate(&self, host: &str, port: u16, chain: &[CertificateDer<'static>]) -> TrustFuture {
        let leaf = chain.first().map(|c| c.to_vec()).unwrap_or_default();
        let trust = ServerTrust {
            host: host.to_owned(),
            chain: chain.iter().map(|c| c.to_vec()).collect(),
        };
        let rx = self.ask(host, port, AuthenticationMethod::ServerTrust, Some(trust));
        Box::pin(async move {
            match rx
                .await
                .unwrap_or(AuthChallengeDisposition::PerformDefaultHandling)
            {
                AuthChallengeDisposition::UseCredential(Some(c)) if c.trusts_leaf(&leaf) => {
                    TrustDecision::Accept
                }
                AuthChallengeDisposition::UseCredential(_) => TrustDecision::Reject,
                AuthChallengeDisposition::CancelAuthenticationChallenge => TrustDecision::Cancel,
                // Default handling; rejecting the protection space leaves nothing else to try.
                _ => TrustDecision::Standard,
            }
        })
    }
}

impl ClientIdentityProvider for SessionChallenges {
    fn identity(&self, host: &str, port: u16) -> IdentityFuture {
        let rx = self.ask(host, port, AuthenticationMethod::ClientCertificate, None);
        Box::pin(async move {
            match rx
                .await
                .unwrap_or(AuthChallengeDisposition::PerformDefaultHandling)
            {
                AuthChallengeDisposition::UseCredential(Some(c)) => match c.identity_parts() {
                    Some((chain, key)) => IdentityDecision::Use(Identity {
                        chain: chain
                            .iter()
                            .map(|c| CertificateDer::from(c.clone()))
                            .collect(),
                        key: PrivatePkcs8KeyDer::from(key.to_vec()).into(),
                    }),
                    None => IdentityDecision::Without,
                },
                AuthChallengeDisposition::CancelAuthenticationChallenge => IdentityDecision::Cancel,
                _ => IdentityDecision::Without,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::identity_from_pem;
    use courier_delegates::ErrorCode;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nBAUG\n-----END PRIVATE KEY-----\n";

    #[test]
    fn a_pem_chain_and_pkcs8_key_make_an_identity() {
        let both = format!("{CERT}{KEY}");
        for (chain, key) in [(CERT, KEY), (both.as_str(), both.as_str())] {
            let credential = identity_from_pem(chain.as_bytes(), key.as_bytes()).unwrap();
            let (chain, key) = credential.identity_parts().unwrap();
            assert_eq!(chain, [vec![1, 2, 3]]);
            assert_eq!(key, [4, 5, 6]);
        }
    }

    #[test]
    fn what_is_not_an_identity_says_why() {
        let rsa = "-----BEGIN RSA PRIVATE KEY-----\nBAUG\n-----END RSA PRIVATE KEY-----\n";
        for (chain, key, why) in [
            ("", KEY, "no certificate"),
            (CERT, "", "no usable private key"),
            (CERT, rsa, "not PKCS#8"),
            ("-----BEGIN CERTIFICATE-----\n!!\n", KEY, "unreadable"),
        ] {
            let e = identity_from_pem(chain.as_bytes(), key.as_bytes()).unwrap_err();
            assert_eq!(e.code(), ErrorCode::ClientCertificateRejected);
            assert!(e.message().contains(why), "{why}: {e}");
        }
    }
}
