//! Courier's on-disk state.
//!
//! Where things are:
//! - [`directory`]: [`SessionDirectory`], the one place a session writes files (a stable directory for
//!   default sessions, a private temporary one for ephemeral sessions).
//! - [`download`]: [`PartialFile`], a download's file: appended in batches, synced at checkpoints, cut
//!   back on a failed write so it always holds a resumable prefix.
//! - `owner`: which live session holds a partial file, so that a later session takes over only
//!   the downloads of a process that died ([`SessionDirectory::interrupted`]).
//! - [`resume`]: [`ResumeRecord`], what resume data holds, and the checks before a partial file may be
//!   reused.
//! - [`upload`]: [`UploadResumeRecord`], what an upload's resume data holds (the server's upload
//!   resource, the body's file or bytes).
//! - [`cache`]: [`cache::DiskCache`], the URL cache's files (one per response).
//! - [`journal`]: [`journal::Journal`], the background service's durable record of its tasks and of
//!   the events its applications have not acknowledged (redb, values through the codec).
//! - [`codec`]: the one place where records become bytes: bincode 2 in an envelope with a magic, a
//!   format version and a checksum.
//! - [`seal`]: resume data sealed with a key of the session directory, so that only resume data this
//!   user's Courier made is trusted.
//! - [`write`](mod@write): the one way files are written (aside, private, synced, renamed; never through a
//!   link) and read back (bounded, never through a link).
//!
//! Everything here is synchronous `std::fs`; the engine calls it off its async workers.

pub mod cache;
pub mod codec;
pub mod directory;
pub mod download;
pub mod journal;
mod owner;
pub mod resume;
pub mod seal;
pub mod upload;
pub mod write;

pub use codec::CodecError;
pub use directory::SessionDirectory;
pub use download::{Checkpoint, Checkpointer, PartialFile};
pub use resume::{RequestRecord, ResponseRecord, ResumeError, ResumeRecord};
pub use upload::{UploadResumeRecord, UploadSource};
pub use write::Durability;
