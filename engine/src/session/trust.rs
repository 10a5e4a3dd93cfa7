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
