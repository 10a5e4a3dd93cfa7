//! The session-level challenges: each new TLS connection's certificate chain goes to the delegate,
//! whose answer decides (standard verification by default); and a server that asks for a client
//! certificate gets the identity the delegate gives (none by default).

use courier_delegates::{
    AuthChallengeDisposition, AuthenticationChallenge, AuthenticationMethod, DeliveryQueue,
    ProtectionSpace, Reply, ServerTrust, SessionDelegate,
};
use courier_protocol_http::identity::{
    ClientIdentityProvider, Identity, IdentityDecision, IdentityFuture,
};
use courier_protocol_http::trust::{TrustDecision, TrustEvaluator, TrustFuture};
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use tokio::sync::oneshot;

/// Asks a session's delegate about server trust.
pub(crate) struct DelegateTrust {
    queue: DeliveryQueue,
}

impl DelegateTrust {
    pub(crate) fn new(queue: DeliveryQueue) -> DelegateTrust {
        DelegateTrust { queue }
    }
}

impl std::fmt::Debug for DelegateTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelegateTrust").finish_non_exhaustive()
    }
}

impl TrustEvaluator for DelegateTrust {
    fn evaluate(&self, host: &str, port: u16, chain: &[CertificateDer<'static>]) -> TrustFuture {
        let leaf = chain.first().map(|c| c.to_vec()).unwrap_or_default();
        let challenge = AuthenticationChallenge {
            protection_space: ProtectionSpace {
                host: host.to_owned(),
                port,
                protocol: "https".to_owned(),
                realm: None,
                method: AuthenticationMethod::ServerTrust,
            },
            proposed_credential: None,
            previous_failure_count: 0,
            failure_response: None,
            server_trust: Some(ServerTrust {
                host: host.to_owned(),
                chain: chain.iter().map(|c| c.to_vec()).collect(),
            }),
        };
        let (tx, rx) = oneshot::channel();
        self.queue.push(move |d| {
            let reply = Reply::new(AuthChallengeDisposition::PerformDefaultHandling, move |a| {
                let _ = tx.send(a);
            });
            SessionDelegate::did_receive_challenge(d, &challenge, reply);
        });
        Box::pin(async move {
            // A delegate gone (the session invalidated) means default handling.
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

/// Asks a session's delegate for a client certificate when a server wants one.
pub(crate) struct DelegateIdentities {
    queue: DeliveryQueue,
}

impl DelegateIdentities {
    pub(crate) fn new(queue: DeliveryQueue) -> DelegateIdentities {
        DelegateIdentities { queue }
    }
}

impl std::fmt::Debug for DelegateIdentities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelegateIdentities").finish_non_exhaustive()
    }
}

impl ClientIdentityProvider for DelegateIdentities {
    fn identity(&self, host: &str, port: u16) -> IdentityFuture {
        let challenge = AuthenticationChallenge {
            protection_space: ProtectionSpace {
                host: host.to_owned(),
                port,
                protocol: "https".to_owned(),
                realm: None,
                method: AuthenticationMethod::ClientCertificate,
            },
            proposed_credential: None,
            previous_failure_count: 0,
            failure_response: None,
            server_trust: None,
        };
        let (tx, rx) = oneshot::channel();
        self.queue.push(move |d| {
            let reply = Reply::new(AuthChallengeDisposition::PerformDefaultHandling, move |a| {
                let _ = tx.send(a);
            });
            SessionDelegate::did_receive_challenge(d, &challenge, reply);
        });
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
