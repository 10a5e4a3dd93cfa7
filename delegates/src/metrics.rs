//! Task metrics (`URLSessionTaskMetrics`): one transaction per request a task sent (redirects and
//! authentication retries included), with its timings, delivered by `did_finish_collecting_metrics`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Where a transaction's response came from (`URLSessionTaskMetrics.ResourceFetchType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FetchType {
    /// From the network.
    Network,
    /// From the URL cache.
    LocalCache,
    /// From somewhere URLSession cannot name: Courier's protocol handlers (URLSession reports what
    /// a `URLProtocol` loads as `unknown`).
    Unknown,
}

impl FetchType {
    /// The name the event stream uses (`network`).
    pub fn name(self) -> &'static str {
        match self {
            FetchType::Network => "network",
            FetchType::LocalCache => "local_cache",
            FetchType::Unknown => "unknown",
        }
    }
}

/// One request and its response (`URLSessionTaskTransactionMetrics`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionMetrics {
    /// The request's URL.
    pub url: String,
    /// Where the response came from.
    pub fetch_type: FetchType,
    /// `http/1.1` or `h2`, once a response arrived.
    pub protocol: Option<&'static str>,
    /// True when the request went over a connection that had carried another request before.
    pub reused_connection: bool,
    /// When the task started to fetch this resource.
    pub fetch_start: Instant,
    /// Time resolving the host, when this transaction opened a new connection.
    pub domain_lookup: Option<Duration>,
    /// Time connecting TCP, when this transaction opened a new connection.
    pub connect: Option<Duration>,
    /// Time in the TLS handshake, when this transaction opened a new TLS connection.
    pub secure_connection: Option<Duration>,
    /// When the request started going out.
    pub request_start: Option<Instant>,
    /// When the last byte of the request was handed to the connection: the end of an upload's
    /// body; for a request without a body, its start (the head goes out whole at once).
    pub request_end: Option<Instant>,
    /// When the response head arrived.
    pub response_start: Option<Instant>,
    /// When the response body ended (or was abandoned for a redirect or a retry).
    pub response_end: Option<Instant>,
    /// The response's status, if one arrived.
    pub status: Option<u16>,
    /// `countOfRequestHeaderBytesSent`: the request line and headers as HTTP/1.1 writes them
    /// (over HTTP/2, HPACK sends fewer: this is their uncompressed size).
    pub request_header_bytes_sent: u64,
    /// `countOfRequestBodyBytesSent`: request body bytes handed to the connection.
    pub request_body_bytes_sent: u64,
    /// `countOfResponseHeaderBytesReceived`: the status line and headers, as HTTP/1.1 writes them.
    pub response_header_bytes_received: u64,
    /// `countOfResponseBodyBytesReceived`: response body bytes as they came (before decoding).
    pub response_body_bytes_received: u64,
    /// `countOfResponseBodyBytesAfterDecoding`: response body bytes after content decoding.
    pub response_body_bytes_after_decoding: u64,
    /// `localAddress` and `localPort`: this end of the connection, when there was one.
    pub local_address: Option<SocketAddr>,
    /// `remoteAddress` and `remotePort`: the other end (a proxy's, through a proxy).
    pub remote_address: Option<SocketAddr>,
    /// `negotiatedTLSProtocolVersion`: `TLSv1.3` or `TLSv1.2`, over TLS.
    pub tls_protocol_version: Option<&'static str>,
    /// `negotiatedTLSCipherSuite`: the suite's IANA name (`TLS13_AES_128_GCM_SHA256`), over TLS.
    pub tls_cipher_suite: Option<&'static str>,
    /// `isProxyConnection`: the connection went through a proxy (HTTP or SOCKS).
    pub proxy_connection: bool,
}

/// A task's metrics (`URLSessionTaskMetrics`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskMetrics {
    /// When the task started.
    pub task_start: Instant,
    /// From the start to completion.
    pub task_duration: Duration,
    /// Redirects followed.
    pub redirect_count: u32,
    /// One per request sent, in order.
    pub transactions: Vec<TransactionMetrics>,
}
