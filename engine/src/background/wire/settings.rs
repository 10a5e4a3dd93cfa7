//! [`SessionSettings`]: what of an application's background session goes to the service with each
//! task it creates, so that the task runs under it.
//!
//! URLSession runs a background session's tasks with that session's configuration; here the
//! service owns the engine sessions, and its own configuration (`courier daemon`'s options) is the
//! base. What an application's configuration adds travels with each `CreateTask`: the hosts it
//! allows cleartext to and the roots it trusts, which widen the base's, and the idle timeout, the
//! rate caps and the per-host connection cap, where the application changed them from
//! [`Configuration::default`], which replace the base's. Two answers a delegate would give go too,
//! since no delegate of the application is there to ask while it is away: trust in any server
//! (`courier --insecure`) and one credential for the task's origin (`courier --user`). The
//! service journals them with the task (0600, as the journal is), its own settings folded in
//! ([`SessionSettings::under`]), so a restart runs the task under what it was accepted with again,
//! whatever options the service is started with then.
//!
//! A task runs only under exactly its own settings: the service makes an identifier's engine
//! session for them, and refuses a task that needs others while tasks made under the current ones
//! are unfinished (a session's configuration cannot change, and a task must never get a
//! cleartext host, a root or a credential it was not given).

use std::fmt;
use std::time::Duration;

use courier_delegates::{
    AuthChallengeDisposition, AuthenticationChallenge, Credential, CredentialPersistence,
};
use serde::{Deserialize, Serialize};

use crate::{CleartextPolicy, Configuration};

/// The settings a background task was created under, beyond the service's own. Built by
/// [`SessionSettings::of`], which puts them in one order, so equal settings compare equal.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSettings {
    /// Cleartext `http://` is allowed to every host.
    pub cleartext_to_all: bool,
    /// Cleartext `http://` is allowed to these hosts (lowercase, sorted).
    pub cleartext_hosts: Vec<String>,
    /// Certificate authorities trusted besides the system's, DER-encoded (sorted).
    pub extra_roots: Vec<Vec<u8>>,
    /// The idle timeout, in milliseconds, where the application changed it.
    pub timeout_for_request_ms: Option<u64>,
    /// The receive rate cap of each task, in bytes per second, where the application set one.
    pub maximum_receive_rate_per_task: Option<u64>,
    /// The per-host connection cap, where the application changed it.
    pub http_maximum_connections_per_host: Option<u64>,
    /// Every server's certificate is accepted (the server-trust challenge is answered with the
    /// certificate presented): `courier --insecure`.
    pub trust_any_server: bool,
    /// A user and password for the challenges of the task's own origin
    /// ([`AuthChallengeDisposition::with_given_credential`]): `courier --user`.
    pub credential: Option<(String, String)>,
    /// The credential answers every origin a redirect leads to: `courier --location-trusted`.
    pub credential_for_any_origin: bool,
    /// The send rate cap of each task, in bytes per second, where the application set one. Last,
    /// as it came last: a journal written before it holds the fields above only
    /// ([`SessionSettings::from_journal`] reads both).
    pub maximum_send_rate_per_task: Option<u64>,
}

/// [`SessionSettings`] as builds before the send rate cap journaled them: read from a journal
/// such a build left, so its tasks keep their permissions after an upgrade.
#[derive(Deserialize)]
struct SettingsBeforeSendRate {
    cleartext_to_all: bool,
    cleartext_hosts: Vec<String>,
    extra_roots: Vec<Vec<u8>>,
    timeout_for_request_ms: Option<u64>,
    maximum_receive_rate_per_task: Option<u64>,
    http_maximum_connections_per_host: Option<u64>,
    trust_any_server: bool,
    credential: Option<(String, String)>,
    credential_for_any_origin: bool,
}

impl From<SettingsBeforeSendRate> for SessionSettings {
    fn from(s: SettingsBeforeSendRate) -> SessionSettings {
        SessionSettings {
            cleartext_to_all: s.cleartext_to_all,
            cleartext_hosts: s.cleartext_hosts,
            extra_roots: s.extra_roots,
            timeout_for_request_ms: s.timeout_for_request_ms,
            maximum_receive_rate_per_task: s.maximum_receive_rate_per_task,
            http_maximum_connections_per_host: s.http_maximum_connections_per_host,
            trust_any_server: s.trust_any_server,
            credential: s.credential,
            credential_for_any_origin: s.credential_for_any_origin,
            maximum_send_rate_per_task: None,
        }
    }
}

impl SessionSettings {
    /// What `config` adds to the service's own settings (and no delegate answers).
    pub fn of(config: &Configuration) -> SessionSettings {
        let base = Configuration::default();
        let (cleartext_to_all, mut cleartext_hosts) = match &config.cleartext {
            CleartextPolicy::Deny => (false, Vec::new()),
            CleartextPolicy::AllowAll => (true, Vec::new()),
            CleartextPolicy::AllowHosts(hosts) => (
                false,
                hosts
                    .iter()
                    .map(|h| {
                        h.trim_start_matches('[')
                            .trim_end_matches(']')
                            .to_ascii_lowercase()
                    })
                    .collect(),
            ),
        };
        cleartext_hosts.sort();
        cleartext_hosts.dedup();
        let mut extra_roots: Vec<Vec<u8>> = config
            .extra_root_certificates
            .iter()
            .map(|c| c.to_vec())
            .collect();
        extra_roots.sort();
        extra_roots.dedup();
        let changed = |ours: u64, theirs: u64| (ours != theirs).then_some(ours);
        SessionSettings {
            cleartext_to_all,
            cleartext_hosts,
            extra_roots,
            timeout_for_request_ms: changed(
                millis(config.timeout_for_request),
                millis(base.timeout_for_request),
            ),
            maximum_receive_rate_per_task: config.maximum_receive_rate_per_task,
            http_maximum_connections_per_host: changed(
                config.http_maximum_connections_per_host as u64,
                base.http_maximum_connections_per_host as u64,
            ),
            trust_any_server: false,
            credential: None,
            credential_for_any_origin: false,
            maximum_send_rate_per_task: config.maximum_send_rate_per_task,
        }
    }

    /// These settings with the service's own (`template`, what `courier daemon`'s options made)
    /// folded in: what a task created under them runs under. The service journals this with the
    /// task, so that a service started again with other settings of its own (a `kill -9`, then a
    /// service started by the next command, without options) runs the task as it was accepted,
    /// instead of failing it for a permission it was given. Its own settings win where both set
    /// one; cleartext hosts and roots are the union.
    pub fn under(&self, template: &Configuration) -> SessionSettings {
        let base = SessionSettings::of(template);
        let mut s = self.clone();
        s.cleartext_to_all |= base.cleartext_to_all;
        s.cleartext_hosts.extend(base.cleartext_hosts);
        if s.cleartext_to_all {
            s.cleartext_hosts.clear();
        }
        s.cleartext_hosts.sort();
        s.cleartext_hosts.dedup();
        s.extra_roots.extend(base.extra_roots);
        s.extra_roots.sort();
        s.extra_roots.dedup();
        s.timeout_for_request_ms = s.timeout_for_request_ms.or(base.timeout_for_request_ms);
        s.maximum_receive_rate_per_task = s
            .maximum_receive_rate_per_task
            .or(base.maximum_receive_rate_per_task);
        s.http_maximum_connections_per_host = s
            .http_maximum_connections_per_host
            .or(base.http_maximum_connections_per_host);
        s.maximum_send_rate_per_task = s
            .maximum_send_rate_per_task
            .or(base.maximum_send_rate_per_task);
        s
    }

    /// As the journal keeps them beside a task: nothing when they add nothing.
    ///
    /// # Errors
    /// They do not encode.
    pub fn to_journal(&self) -> Result<Vec<u8>, courier_storage::codec::CodecError> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        courier_storage::codec::encode(self)
    }

    /// What the journal kept beside a task ([`SessionSettings::to_journal`]), by this build or
    /// one before the send rate cap: nothing, or a blob that does not decode, is the service's own
    /// settings (a task never gains a permission from a damaged record).
    pub fn from_journal(blob: Option<&[u8]>) -> SessionSettings {
        let Some(blob) = blob.filter(|b| !b.is_empty()) else {
            return SessionSettings::default();
        };
        courier_storage::codec::decode(blob)
            .or_else(|_| {
                courier_storage::codec::decode::<SettingsBeforeSendRate>(blob).map(Into::into)
            })
            .unwrap_or_default()
    }

    /// True when they add nothing to the service's settings.
    pub fn is_empty(&self) -> bool {
        *self == SessionSettings::default()
    }

    /// Adds these settings to `config` (the service's own): cleartext hosts and roots widen its
    /// own, the rest replaces its own.
    pub fn apply_to(&self, config: &mut Configuration) {
        if self.cleartext_to_all {
            config.cleartext = CleartextPolicy::AllowAll;
        }
        for host in &self.cleartext_hosts {
            config.cleartext.allow_host(host.clone());
        }
        config.extra_root_certificates.extend(
            self.extra_roots
                .iter()
                .map(|r| rustls_pki_types::CertificateDer::from(r.clone())),
        );
        if let Some(ms) = self.timeout_for_request_ms {
            config.timeout_for_request = Duration::from_millis(ms);
        }
        if self.maximum_receive_rate_per_task.is_some() {
            config.maximum_receive_rate_per_task = self.maximum_receive_rate_per_task;
        }
        if let Some(n) = self.http_maximum_connections_per_host {
            config.http_maximum_connections_per_host = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if self.maximum_send_rate_per_task.is_some() {
            config.maximum_send_rate_per_task = self.maximum_send_rate_per_task;
        }
    }

    /// How a session under these settings answers `challenge` for a task made for `url`, in
    /// place of an application's delegate: server trust as [`SessionSettings::trust_any_server`]
    /// says, a user's challenge with [`SessionSettings::credential`], the rest by default.
    pub fn answer(
        &self,
        challenge: &AuthenticationChallenge,
        url: Option<&url::Url>,
    ) -> AuthChallengeDisposition {
        match (&challenge.server_trust, &self.credential) {
            (Some(trust), _) if self.trust_any_server => {
                AuthChallengeDisposition::UseCredential(Some(Credential::trusting(trust)))
            }
            (None, Some((user, password))) => AuthChallengeDisposition::with_given_credential(
                &Credential::password(user, password, CredentialPersistence::ForSession),
                challenge,
                url,
                self.credential_for_any_origin,
            ),
            _ => AuthChallengeDisposition::PerformDefaultHandling,
        }
    }
}

/// Never prints the password.
impl fmt::Debug for SessionSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionSettings")
            .field("cleartext_to_all", &self.cleartext_to_all)
            .field("cleartext_hosts", &self.cleartext_hosts)
            .field("extra_roots", &self.extra_roots.len())
            .field("timeout_for_request_ms", &self.timeout_for_request_ms)
            .field(
                "maximum_receive_rate_per_task",
                &self.maximum_receive_rate_per_task,
            )
            .field(
                "http_maximum_connections_per_host",
                &self.http_maximum_connections_per_host,
            )
            .field("trust_any_server", &self.trust_any_server)
            .field(
                "credential",
                &self.credential.as_ref().map(|(user, _)| user),
            )
            .field("credential_for_any_origin", &self.credential_for_any_origin)
            .field(
                "maximum_send_rate_per_task",
                &self.maximum_send_rate_per_task,
            )
            .finish()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use courier_delegates::{AuthenticationMethod, ProtectionSpace, ServerTrust};

    fn settings(config: impl FnOnce(&mut Configuration)) -> SessionSettings {
        let mut c = Configuration::default();
        config(&mut c);
        SessionSettings::of(&c)
    }

    #[test]
    fn a_default_configuration_adds_nothing() {
        assert!(SessionSettings::of(&Configuration::default()).is_empty());
        assert!(SessionSettings::of(&Configuration::background("x")).is_empty());
    }

    #[test]
    fn the_services_own_settings_are_folded_in_and_the_tasks_win() {
        let template = {
            let mut c = Configuration::default();
            c.cleartext.allow_host("a.test");
            c.timeout_for_request = Duration::from_secs(9);
            c.maximum_receive_rate_per_task = Some(500);
            c.maximum_send_rate_per_task = Some(400);
            c
        };
        let task = settings(|c| {
            c.cleartext.allow_host("b.test");
            c.timeout_for_request = Duration::from_secs(5);
        });
        let under = task.under(&template);
        assert_eq!(under.cleartext_hosts, ["a.test", "b.test"]);
        assert_eq!(under.timeout_for_request_ms, Some(5000), "the task's own");
        assert_eq!(
            under.maximum_receive_rate_per_task,
            Some(500),
            "the service's"
        );
        // Run by a service with no settings of its own, the task keeps what it was accepted with.
        let mut bare = Configuration::default();
        under.apply_to(&mut bare);
        assert!(bare.cleartext.allows("a.test") && bare.cleartext.allows("b.test"));
        assert_eq!(bare.maximum_receive_rate_per_task, Some(500));
        assert_eq!(bare.maximum_send_rate_per_task, Some(400));
        // One canonical form: equal permissions compare equal, so the session is shared.
        let mut all = Configuration::default();
        all.cleartext = CleartextPolicy::AllowAll;
        let one_host = settings(|c| c.cleartext.allow_host("b.test"));
        assert_eq!(one_host.under(&all), SessionSettings::default().under(&all));
        assert_eq!(task.under(&all).cleartext_hosts, Vec::<String>::new());
        assert_eq!(
            SessionSettings::default().under(&template),
            SessionSettings::of(&template)
        );
    }

    #[test]
    fn what_a_configuration_changes_goes_and_comes_back() {
        let s = settings(|c| {
            c.cleartext.allow_host("127.0.0.1");
            c.timeout_for_request = Duration::from_secs(5);
            c.maximum_receive_rate_per_task = Some(1000);
            c.maximum_send_rate_per_task = Some(700);
            c.http_maximum_connections_per_host = 2;
        });
        let mut base = Configuration::default();
        s.apply_to(&mut base);
        assert!(base.cleartext.allows("127.0.0.1"));
        assert!(!base.cleartext.allows("example.com"));
        assert_eq!(base.timeout_for_request, Duration::from_secs(5));
        assert_eq!(base.maximum_receive_rate_per_task, Some(1000));
        assert_eq!(base.maximum_send_rate_per_task, Some(700));
        assert_eq!(base.http_maximum_connections_per_host, 2);
        assert_eq!(SessionSettings::of(&base), s);
        // Through the codec, as the wire and the journal carry them.
        let with_user = SessionSettings {
            credential: Some(("u".into(), "secret".into())),
            ..s
        };
        let blob = with_user.to_journal().unwrap();
        assert_eq!(SessionSettings::from_journal(Some(&blob)), with_user);
        assert!(SessionSettings::default().to_journal().unwrap().is_empty());
        assert!(SessionSettings::from_journal(Some(b"damaged")).is_empty());
        assert!(!format!("{with_user:?}").contains("secret"));
    }

    #[test]
    fn the_service_base_is_widened_not_narrowed() {
        let mut base = Configuration::default();
        base.cleartext = CleartextPolicy::AllowAll;
        base.timeout_for_request = Duration::from_secs(9);
        SessionSettings::default().apply_to(&mut base);
        assert_eq!(base.cleartext, CleartextPolicy::AllowAll);
        assert_eq!(base.timeout_for_request, Duration::from_secs(9));
    }

    #[test]
    fn the_same_settings_however_spelled_are_equal() {
        let a = settings(|c| {
            c.cleartext.allow_host("B.test");
            c.cleartext.allow_host("[::1]");
        });
        let b = settings(|c| {
            c.cleartext.allow_host("::1");
            c.cleartext.allow_host("b.test");
            c.cleartext.allow_host("b.test");
        });
        assert_eq!(a, b);
        assert_ne!(a, SessionSettings::default());
    }

    #[test]
    fn challenges_are_answered_as_the_settings_say() {
        let space = |host: &str, method| ProtectionSpace {
            host: host.into(),
            port: 443,
            protocol: "https".into(),
            realm: None,
            method,
            proxy_type: None,
        };
        let challenge = |space, trust| AuthenticationChallenge {
            protection_space: space,
            proposed_credential: None,
            previous_failure_count: 0,
            failure_response: None,
            server_trust: trust,
        };
        let trust = ServerTrust {
            host: "a.test".into(),
            chain: vec![vec![1, 2, 3]],
        };
        let url = url::Url::parse("https://a.test/file").unwrap();
        let server = challenge(
            space("a.test", AuthenticationMethod::ServerTrust),
            Some(trust),
        );
        let basic = challenge(space("a.test", AuthenticationMethod::HttpBasic), None);
        let elsewhere = challenge(space("b.test", AuthenticationMethod::HttpBasic), None);
        let none = SessionSettings::default();
        assert_eq!(
            none.answer(&server, Some(&url)),
            AuthChallengeDisposition::PerformDefaultHandling
        );
        assert_eq!(
            none.answer(&basic, Some(&url)),
            AuthChallengeDisposition::PerformDefaultHandling
        );
        let given = SessionSettings {
            trust_any_server: true,
            credential: Some(("u".into(), "p".into())),
            ..SessionSettings::default()
        };
        assert!(matches!(
            given.answer(&server, Some(&url)),
            AuthChallengeDisposition::UseCredential(Some(c)) if c.trusts_leaf(&[1, 2, 3])
        ));
        assert!(matches!(
            given.answer(&basic, Some(&url)),
            AuthChallengeDisposition::UseCredential(Some(c)) if c.user() == "u" && c.secret() == "p"
        ));
        assert_eq!(
            given.answer(&elsewhere, Some(&url)),
            AuthChallengeDisposition::PerformDefaultHandling,
            "not for another origin"
        );
    }

    #[test]
    fn a_journal_from_before_the_send_rate_is_read_with_its_permissions() {
        // The nine fields in the order builds before the send rate cap encoded them.
        let before = (
            false,
            vec!["127.0.0.1".to_string()],
            vec![vec![1u8, 2]],
            Some(5000u64),
            Some(300u64),
            Some(2u64),
            true,
            Some(("u".to_string(), "p".to_string())),
            true,
        );
        let blob = courier_storage::codec::encode(&before).unwrap();
        let read = SessionSettings::from_journal(Some(&blob));
        assert_eq!(read.cleartext_hosts, ["127.0.0.1"]);
        assert_eq!(read.extra_roots, [vec![1u8, 2]]);
        assert_eq!(read.timeout_for_request_ms, Some(5000));
        assert_eq!(read.maximum_receive_rate_per_task, Some(300));
        assert_eq!(read.http_maximum_connections_per_host, Some(2));
        assert!(read.trust_any_server && read.credential_for_any_origin);
        assert_eq!(read.credential, Some(("u".into(), "p".into())));
        assert_eq!(read.maximum_send_rate_per_task, None);
        // And this build's own blob is read as itself, not as the older shape.
        let now = SessionSettings {
            maximum_send_rate_per_task: Some(64),
            ..read.clone()
        };
        let blob = now.to_journal().unwrap();
        assert_eq!(SessionSettings::from_journal(Some(&blob)), now);
    }
}
