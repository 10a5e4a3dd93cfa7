//! The loopback kit: servers on 127.0.0.1 that `courier demo` tours, and that Courier's tests build
//! on (the test crate adds its own routes, fault injectors and real-server launchers, none of which
//! the `courier` binary carries).
//!
//! - `server`: [`server::LoopbackServer`], HTTP/1.1 and HTTP/2 over TLS, with the demo's routes.
//! - `ca`: [`ca::LoopbackCa`], a throwaway certificate authority and a leaf it signs.
//! - `proxy`: [`proxy::ProxyServer`], an HTTP proxy (`CONNECT` tunnels and absolute form).
//! - `starttls`: [`starttls::StartTlsServer`], a line server that starts TLS on request.

pub mod ca;
pub mod proxy;
pub mod server;
pub mod starttls;

pub use ca::{Leaf, LoopbackCa};
pub use proxy::{Asked, ProxyServer};
pub use server::{LoopbackServer, demo_route, pattern_bytes, sha256_hex};
pub use starttls::StartTlsServer;
