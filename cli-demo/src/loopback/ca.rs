//! A throwaway certificate authority and a server certificate it signs, made with rcgen at start.
//!
//! Fixtures are a CA plus a leaf for `localhost` and `127.0.0.1`, or (`LoopbackCa::self_signed`)
//! one self-signed certificate marked as a CA, as `openssl req -x509` makes it, that the server
//! presents as its own.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// What is wrong with the server certificate, if anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leaf {
    /// Valid for `localhost`, `127.0.0.1` and `::1`.
    Valid,
    /// Expired in 2021.
    Expired,
    /// Valid only from 2090.
    NotYetValid,
    /// Valid, but for `other.test` only.
    OtherHost,
}

/// A test CA and a server identity signed by it.
pub struct LoopbackCa {
    /// The CA certificate, DER (what a client trusts).
    pub ca_der: CertificateDer<'static>,
    /// The CA certificate, PEM.
    pub ca_pem: String,
    leaf_der: CertificateDer<'static>,
    leaf_key: Vec<u8>,
    client_der: CertificateDer<'static>,
    client_key: Vec<u8>,
}

impl LoopbackCa {
    /// A new CA and a leaf for `localhost`, `127.0.0.1` and `::1`.
    ///
    /// # Panics
    /// If rcgen fails, which only a bug would cause.
    pub fn new() -> LoopbackCa {
        LoopbackCa::with_leaf(Leaf::Valid)
    }

    /// A new CA and a leaf that is wrong in the way `leaf` says.
    ///
    /// # Panics
    /// If rcgen fails, which only a bug would cause.
    pub fn with_leaf(leaf: Leaf) -> LoopbackCa {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Courier Test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
            .expect("ca cert");
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf = server_params(leaf)
            .signed_by(&leaf_key, &ca)
            .expect("leaf cert");
        LoopbackCa::issuing(&ca, leaf.der().clone(), &leaf_key)
    }

    /// A server certificate that is its own CA, as `openssl req -x509` makes a self-signed
    /// certificate (`CA:TRUE`), for the names and dates `leaf` says: the server presents the same
    /// certificate a client trusts as a root ([`LoopbackCa::ca_der`]).
    ///
    /// # Panics
    /// If rcgen fails, which only a bug would cause.
    pub fn self_signed(leaf: Leaf) -> LoopbackCa {
        let mut params = server_params(leaf);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key"))
            .expect("self-signed cert");
        LoopbackCa::issuing(&ca, ca.der().clone(), ca.key())
    }

    /// `ca` with the server certificate `leaf` (its key `leaf_key`), and a client identity `ca`
    /// issues for servers that require one.
    fn issuing(
        ca: &CertifiedIssuer<'static, KeyPair>,
        leaf_der: CertificateDer<'static>,
        leaf_key: &KeyPair,
    ) -> LoopbackCa {
        let mut client_params =
            CertificateParams::new(vec!["courier-client".to_string()]).expect("client params");
        client_params
            .distinguished_name
            .push(DnType::CommonName, "courier test client");
        client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let client_key = KeyPair::generate().expect("client key");
        let client = client_params
            .signed_by(&client_key, ca)
            .expect("client cert");
        LoopbackCa {
            ca_der: ca.der().clone(),
            ca_pem: ca.pem(),
            leaf_der,
            leaf_key: leaf_key.serialize_der(),
            client_der: client.der().clone(),
            client_key: client_key.serialize_der(),
        }
    }

    /// A client identity issued by this CA: its certificate chain (DER) and private key (PKCS#8 DER).
    pub fn client_identity(&self) -> (Vec<Vec<u8>>, Vec<u8>) {
        (vec![self.client_der.to_vec()], self.client_key.clone())
    }

    /// The client identity, PEM-encoded: its certificate and private key (PKCS#8), as files for
    /// `courier --cert` and `--key`.
    pub fn client_identity_pem(&self) -> (String, String) {
        (
            pem("CERTIFICATE", &self.client_der),
            pem("PRIVATE KEY", &self.client_key),
        )
    }

    /// A rustls server configuration like [`LoopbackCa::server_config`] that requires a client
    /// certificate issued by this CA.
    pub fn server_config_requiring_client_cert(&self) -> Arc<ServerConfig> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key.clone()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).expect("the CA");
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .expect("client verifier");
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![self.leaf_der.clone()], key)
            .expect("server certificate");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// The leaf certificate and its private key (PKCS#8), PEM-encoded: for a real server program.
    pub fn leaf_pem(&self) -> (String, String) {
        (
            pem("CERTIFICATE", &self.leaf_der),
            pem("PRIVATE KEY", &self.leaf_key),
        )
    }

    /// A rustls server configuration presenting the leaf, offering `h2` and `http/1.1` by ALPN.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server_config_with_versions(rustls::DEFAULT_VERSIONS)
    }

    /// As [`LoopbackCa::server_config`], speaking only these TLS versions.
    pub fn server_config_with_versions(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<ServerConfig> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key.clone()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.leaf_der.clone()], key)
            .expect("server certificate");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl Default for LoopbackCa {
    fn default() -> LoopbackCa {
        LoopbackCa::new()
    }
}

/// A server certificate's names and dates, wrong in the way `leaf` says.
fn server_params(leaf: Leaf) -> CertificateParams {
    let name = if leaf == Leaf::OtherHost {
        "other.test"
    } else {
        "localhost"
    };
    let mut params = CertificateParams::new(vec![name.to_string()]).expect("leaf params");
    if leaf != Leaf::OtherHost {
        for ip in ["127.0.0.1", "::1"] {
            params
                .subject_alt_names
                .push(SanType::IpAddress(ip.parse().expect("ip")));
        }
    }
    match leaf {
        Leaf::Expired => {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        Leaf::NotYetValid => {
            params.not_before = rcgen::date_time_ymd(2090, 1, 1);
            params.not_after = rcgen::date_time_ymd(2091, 1, 1);
        }
        Leaf::Valid | Leaf::OtherHost => {}
    }
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params
}

/// `der` as a PEM block labelled `label`.
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
