//! The session-level server-trust challenge: each new TLS connection's certificate chain goes to the
//! delegate, whose answer decides (standard verification by default).

use courier_delegates::{
    AuthChallengeDisposition, AuthenticationChallenge, AuthenticationMethod, DeliveryQueue,
    ProtectionSpace, Reply, ServerTrust, SessionDelegate,
};
use courier_protocol_http::trust::{TrustDecision, TrustEvaluator, TrustFuture};
use rustls_pki_types::CertificateDer;
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
