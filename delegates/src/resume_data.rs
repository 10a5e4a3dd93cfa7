//! `ResumeData`: the opaque blob that lets a cancelled or failed download continue.

use bytes::Bytes;

/// What a download needs to continue where it stopped (URLSession's resume data).
///
/// Opaque on purpose: the engine writes it and reads it back. Store it as bytes
/// ([`ResumeData::as_bytes`]) and hand it back with [`ResumeData::from_bytes`] to make a task that
/// continues the download, in this process or a later one, in a session using the same session
/// directory. Resume data names a partial file in that directory; if the file is removed or changes,
/// the resumed task fails at once and touches nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct ResumeData(Bytes);

impl ResumeData {
    /// Resume data read back from storage. It is checked only when a task is made from it.
    pub fn from_bytes(bytes: impl Into<Bytes>) -> ResumeData {
        ResumeData(bytes.into())
    }

    /// The blob, to store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The blob, to store, without copying.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl std::fmt::Debug for ResumeData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ResumeData({} bytes)", self.0.len())
    }
}
