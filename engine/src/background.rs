//! Background sessions (URLSession's fourth function): transfers that go on in a per-user service
//! while the application is gone, and are handed over when it comes back.
//!
//! An application uses them through `Session::with_delegate(Configuration::background(id),
//! delegate)` and the same delegate traits as any session; this module is the other side:
//! - [`service`]: [`Service`], one session per identifier, tasks and events journaled, events
//!   replayed to whichever application attaches, then sent live; acknowledged ones deleted; after
//!   a crash every task goes on from its partial file. `courier daemon` is this, as a process.
//! - [`queue`]: which transfers run now, under the [`Limits`], by priority and discretion, not
//!   before their earliest begin date; the service drives it in time, with the retries and the
//!   throughput floor of its [`Policy`].
//! - [`wire`]: the local protocol between an application's background session and the service: a
//!   Unix socket in a private directory, the peer's user id checked on every connection, versioned
//!   length-framed messages through the storage codec, a handshake that refuses an unknown version;
//!   each task goes with the [`wire::SessionSettings`] it runs under.
//! - `client` (private): the application side of that protocol, behind a background `Session`.
//!
//! The service's durable state is [`journal`] (`courier_storage::journal`).

pub(crate) mod client;
pub mod queue;
pub mod service;
pub mod wire;

/// The journal's records, as the wire protocol carries them.
pub use courier_storage::journal;
pub use queue::Limits;
pub use service::{Policy, Service, Throughput};
