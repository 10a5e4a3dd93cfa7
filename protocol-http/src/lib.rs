//! Courier's wire: HTTP/1.1 and HTTP/2 over TCP and rustls, with no policy of its own.
//!
//! The engine asks this crate to send a request and decides everything else (timeouts, redirects,
//! what an error means for the task). Where things are:
//! - [`transport`]: [`Transport`], the pooled client; [`RequestBody`] and its constructors.
//! - `connect`: the connector behind the pool (DNS, TCP, TLS with ALPN, the per-host connection cap)
//!   and [`ConnectionInfo`], the facts about a connection found in each response's extensions,
//!   among them its [`ReadPause`] (a download holds an HTTP/2 connection's reads while its disk
//!   catches up).
//! - [`host_key`]: [`host_key::HostKey`], one host as the connector and the engine's per-host
//!   queue tell hosts apart, read from a URI without allocating.
//! - `happy_eyeballs`: connecting to the first of a host's addresses that answers (RFC 8305).
//! - [`identity`]: client certificates (mutual TLS), asked from a [`identity::ClientIdentityProvider`]
//!   when a server wants one.
//! - [`trust`]: server trust decided after the handshake by a [`trust::TrustEvaluator`] (the
//!   delegate's server-trust challenge), with standard verification one answer away.
//! - [`proxy`]: [`proxy::Proxies`], which requests go through an HTTP proxy (the environment's, or
//!   one given), and the `CONNECT` tunnel for `https` requests.
//! - `tls`: the rustls client configuration (ring provider, Mozilla's roots plus extra roots).
//! - [`auth`]: `WWW-Authenticate` challenges read, and `Authorization` written for Basic and Digest.
//! - [`decode`]: content decoding (gzip, deflate, br) as the body arrives, with a decompression-bomb
//!   guard.
//! - [`multipart`]: `multipart/x-mixed-replace` bodies split into parts as they arrive.
//! - [`range`]: byte ranges for resumed downloads: which responses can be resumed, the `Range` and
//!   `If-Range` headers, and what the server's answer means ([`range::Continuation`]).
//! - [`redirect`]: whether a response redirects and how the next request is rewritten (the method
//!   table; credentials dropped across origins).
//! - [`stream`]: raw connections for stream tasks, and TLS started and stopped on them (STARTTLS).
//! - [`websocket`]: the WebSocket handshake's fields and check, and the framed stream on the
//!   connection its `101` hands over.
//! - [`ftp`]: `ftp:` sessions (login, `SIZE`/`MDTM`, `REST`+`RETR`, `STOR`), explicit FTPS with the
//!   session's trust.
//! - [`error`]: [`TransportError`] and its classification, [`TransportErrorKind`].

pub mod auth;
mod connect;
pub mod decode;
pub mod error;
pub mod ftp;
mod happy_eyeballs;
pub mod host_key;
pub mod identity;
pub mod multipart;
pub mod proxy;
pub mod range;
pub mod redirect;
pub mod stream;
mod tls;
pub mod transport;
pub mod trust;
pub mod websocket;

pub use connect::{
    ConnectionInfo, GivenAddresses, IpVersion, Naming, ReadHold, ReadPause, is_localhost_name,
};
pub use error::{TlsFailure, TransportError, TransportErrorKind};
pub use hyper::body::Incoming;
pub use tls::TlsVersion;
pub use transport::{
    HttpProxy, RequestBody, Transport, TransportSettings, body_from_bytes, empty_body,
};
