//! What a session keeps between its tasks, shared with them through the session context: the
//! cookie jar, the URL cache, the credential store, and the saver that writes them to the session
//! directory off the async workers.
//!
//! - `cookies`: [`cookies::CookieJar`], RFC 6265bis with the limits and `Secure` rules.
//! - `cache`: [`cache::UrlCache`], RFC 9111, in memory and on disk.
//! - `credentials`: [`credentials::CredentialStore`], per protection space.
//! - `saver`: background writes, in order, counted so `flush` and invalidation can wait for them.

pub(crate) mod cache;
pub(crate) mod cookies;
pub(crate) mod credentials;
pub(crate) mod saver;
