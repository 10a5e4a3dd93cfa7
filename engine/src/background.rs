//! Background sessions (URLSession's fourth function): transfers that go on in a per-user service
//! while the application is gone, and are handed over when it comes back.
//!
//! Being built (issue 9). What is here so far:
//! - [`service`]: [`Service`], one session per identifier, tasks and events journaled, events
//!   replayed to whichever application attaches, then sent live; acknowledged ones deleted.
//! - [`wire`]: the local protocol between an application's background session and the service: a
//!   Unix socket in a private directory, the peer's user id checked on every connection, versioned
//!   length-framed messages through the storage codec, a handshake that refuses an unknown version.
//!
//! The service's durable state is `courier_storage::journal`.

pub(crate) mod client;
pub mod queue;
pub mod service;
pub mod wire;

/// The journal's records, as the wire protocol carries them.
pub use courier_storage::journal;
pub use queue::Limits;
pub use service::{Policy, Service, Throughput};
