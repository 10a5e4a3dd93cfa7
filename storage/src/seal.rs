//! Sealed resume data: resume data an application hands back is trusted only if this user's Courier
//! made it.
//!
//! Resume data travels through the application's hands (and its storage), and names a file in the
//! session directory that a resumed task appends to. The codec's checksum catches damage but not
//! intent: anyone can recompute it. So resume data carries a seal, an HMAC-SHA256 of its envelope
//! under a key kept in the session directory (`resume.key`, 32 random bytes, readable by the user
//! only; an ephemeral session's key lives in memory). Resume data edited and resealed without the key
//! is refused; it stays valid across processes of the same user and session directory.

use std::io::{self, Write};

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::directory::SessionDirectory;
use crate::resume::ResumeError;

/// Bytes of the seal after the envelope.
pub const SEAL_LEN: usize = 32;

/// The key's file in a default session's directory.
const KEY_FILE: &str = "resume.key";

/// A fresh random key.
pub(crate) fn new_key() -> io::Result<[u8; 32]> {
    let mut key = [0u8; 32];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| io::Error::other("no randomness for the resume-data key"))?;
    Ok(key)
}

/// The persistent key in `dir`: read, or made once. Two processes making it at once agree: the key
/// file appears whole or not at all (linked into place, never replaced), and the loser reads the
/// winner's.
pub(crate) fn persistent_key(dir: &std::path::Path) -> io::Result<[u8; 32]> {
    let path = dir.join(KEY_FILE);
    for _ in 0..2 {
        match crate::write::read_bounded(&path) {
            Ok(bytes) => {
                return <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidData, "the resume-data key is damaged")
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let key = new_key()?;
        let mut aside = tempfile::Builder::new()
            .prefix(crate::write::ASIDE_PREFIX)
            .suffix(".new")
            .tempfile_in(dir)?;
        aside.write_all(&key)?;
        aside.as_file().sync_all()?;
        match aside.persist_noclobber(&path) {
            Ok(_) => {
                crate::write::sync_dir(dir);
                return Ok(key);
            }
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e.error),
        }
    }
    Err(io::Error::other("cannot settle on a resume-data key"))
}

impl SessionDirectory {
    fn seal_key(&self) -> io::Result<hmac::Key> {
        Ok(hmac::Key::new(hmac::HMAC_SHA256, &self.resume_key()?))
    }

    /// Seals encoded resume data (an envelope from [`crate::ResumeRecord::encode`]) with this
    /// directory's key.
    ///
    /// # Errors
    /// The key cannot be read or made.
    pub fn seal(&self, mut encoded: Vec<u8>) -> io::Result<Vec<u8>> {
        let tag = hmac::sign(&self.seal_key()?, &encoded);
        encoded.extend_from_slice(tag.as_ref());
        Ok(encoded)
    }

    /// The envelope inside `sealed`, if this directory's key sealed it.
    ///
    /// # Errors
    /// [`ResumeError::NotSealedHere`]: too short, altered, or sealed with another key;
    /// [`ResumeError::Io`]: the key cannot be read.
    pub fn unseal<'a>(&self, sealed: &'a [u8]) -> Result<&'a [u8], ResumeError> {
        let Some(split) = sealed.len().checked_sub(SEAL_LEN) else {
            return Err(ResumeError::NotSealedHere);
        };
        let (envelope, tag) = sealed.split_at(split);
        let key = self.seal_key().map_err(ResumeError::Io)?;
        hmac::verify(&key, envelope, tag).map_err(|_| ResumeError::NotSealedHere)?;
        Ok(envelope)
    }
}

#[cfg(test)]
mod tests {
    use crate::{ResumeRecord, SessionDirectory};

    #[test]
    fn sealed_data_opens_in_any_process_of_the_same_directory_only() {
        let root = tempfile::tempdir().unwrap();
        let one = SessionDirectory::persistent(Some(root.path().to_path_buf()));
        let record = ResumeRecord::sample("https://a.test/f", b"x");
        let sealed = one.seal(record.encode().unwrap()).unwrap();
        // Another process (another value) on the same directory reads the same key.
        let two = SessionDirectory::persistent(Some(root.path().to_path_buf()));
        assert_eq!(ResumeRecord::open(&sealed, &two).unwrap(), record);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(root.path().join("resume.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Another directory has another key.
        let elsewhere = tempfile::tempdir().unwrap();
        let other = SessionDirectory::persistent(Some(elsewhere.path().to_path_buf()));
        assert!(matches!(
            ResumeRecord::open(&sealed, &other),
            Err(crate::ResumeError::NotSealedHere)
        ));
    }

    #[test]
    fn edited_and_resealed_without_the_key_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = SessionDirectory::persistent(Some(root.path().to_path_buf()));
        let mut record = ResumeRecord::sample("https://a.test/f", b"x");
        let sealed = dir.seal(record.encode().unwrap()).unwrap();
        // Point it at another file, with a valid envelope (the checksum is public), old seal kept.
        record.partial_file = "download-other.part".into();
        let mut forged = record.encode().unwrap();
        forged.extend_from_slice(&sealed[sealed.len() - super::SEAL_LEN..]);
        assert!(matches!(
            ResumeRecord::open(&forged, &dir),
            Err(crate::ResumeError::NotSealedHere)
        ));
        assert!(ResumeRecord::open(&sealed[..10], &dir).is_err());
        assert!(ResumeRecord::open(b"", &dir).is_err());
    }

    #[test]
    fn an_ephemeral_directory_keeps_its_key_in_memory() {
        let parent = tempfile::tempdir().unwrap();
        let dir = SessionDirectory::ephemeral(Some(parent.path().to_path_buf()));
        let record = ResumeRecord::sample("https://a.test/f", b"x");
        let sealed = dir.seal(record.encode().unwrap()).unwrap();
        assert_eq!(ResumeRecord::open(&sealed, &dir).unwrap(), record);
        assert!(
            std::fs::read_dir(parent.path()).unwrap().next().is_none(),
            "nothing written"
        );
    }
}
