//! Task metrics (`URLSessionTaskMetrics`): one transaction per request a task sent (redirects and
//! authentication retries included), with its timings, delivered by `did_finish_collecting_metrics`.

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
    /// When the response head arrived.
    pub response_start: Option<Instant>,
    /// When the response body ended (or was abandoned for a redirect or a retry).
    pub response_end: Option<Instant>,
    /// The response's status, if one arrived.
    pub status: Option<u16>,
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
