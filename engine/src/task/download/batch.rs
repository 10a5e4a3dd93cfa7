//! How much of a download's body waits in memory before a write, and in what form: the size of a
//! batch, which a session's downloads share, and the [`Batch`] that holds it.
//!
//! One download alone batches [`WRITE_BATCH`]. Thousands at once share [`BATCH_BUDGET`], so that
//! what waits in memory stays bounded however many run (10,000 slow downloads each held two
//! 32 KiB buffers before the budget).
//!
//! A download among few keeps the chunks the connection gave it and writes them with one vectored
//! write, never copying them; a download among many copies them into one buffer, so that its
//! chunk does not keep the connection's read buffer from being reused.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use courier_storage::PartialFile;

use crate::context::SessionContext;

/// Body bytes gathered before one write: large writes keep the kernel's per-call cost small, and
/// what waits in memory bounds the peak (1 GiB from nginx: 1 MiB batches 0.67-0.85 s and a peak of
/// 12.2-13.4 MiB; 256 KiB batches 0.81-0.87 s and 10.2-11.0 MiB, curl 1.02 s).
pub(super) const WRITE_BATCH: usize = 256 << 10;
/// The most bytes all of a session's downloads batch at once: 64 downloads batch a full
/// [`WRITE_BATCH`] each; more share it, down to [`MIN_BATCH`]. (10,000 slow downloads at once
/// held two 32 KiB buffers each before.)
const BATCH_BUDGET: usize = 16 << 20;
/// The smallest batch, however many downloads run.
const MIN_BATCH: usize = 16 << 10;

/// The batch size of each download while `open` of the session's downloads are open.
fn batch_size(open: usize) -> usize {
    (BATCH_BUDGET / open.max(1)).clamp(MIN_BATCH, WRITE_BATCH)
}

/// The capacity a batch of `capacity` grows to when it must hold `needed` bytes: twice as much,
/// at least `needed`, at most `batch` (or `needed`, for one chunk larger than a batch).
fn grown_capacity(capacity: usize, needed: usize, batch: usize) -> usize {
    (capacity * 2).clamp(needed, batch.max(needed))
}

/// One open download, counted in its session's until dropped: what its batch size is shared
/// among.
pub(super) struct BatchShare(Arc<SessionContext>);

impl BatchShare {
    pub(super) fn new(ctx: Arc<SessionContext>) -> BatchShare {
        ctx.open_downloads.fetch_add(1, Ordering::AcqRel);
        BatchShare(ctx)
    }

    /// This download's batch size now.
    pub(super) fn size(&self) -> usize {
        batch_size(self.0.open_downloads.load(Ordering::Relaxed))
    }

    /// True while more downloads are open than get a full batch each: then a download copies its
    /// chunks (see [`Batch`]) and closes its file between writes (a descriptor per download for
    /// its socket alone).
    pub(super) fn among_many(&self) -> bool {
        self.size() < WRITE_BATCH
    }
}

impl Drop for BatchShare {
    fn drop(&mut self) {
        self.0.open_downloads.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The body bytes of one batch, in order: first the chunks held as they arrived, then the ones
/// copied.
#[derive(Default)]
pub(super) struct Batch {
    /// Chunks as the connection handed them over: no copy on the way to the file. (1 GiB over
    /// HTTPS + HTTP/2 spent 4.8% of its process's samples copying chunks into one buffer.)
    held: Vec<Bytes>,
    held_len: usize,
    /// Chunks copied into one buffer. Holding a slow download's chunk made hyper allocate another
    /// read buffer while the write was awaited: with thousands of downloads, one more each.
    copied: BytesMut,
}

impl Batch {
    pub(super) fn len(&self) -> usize {
        self.held_len + self.copied.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of memory kept for the next batch's chunks.
    pub(super) fn capacity(&self) -> usize {
        self.copied.capacity() + self.held.capacity() * std::mem::size_of::<Bytes>()
    }

    /// Adds a chunk: held as it is when `hold` and nothing was copied into this batch yet (so the
    /// order stays that of arrival), otherwise copied into a buffer grown by `make_room`.
    pub(super) fn push(&mut self, data: Bytes, batch: usize, hold: bool) {
        if hold && self.copied.is_empty() {
            self.held_len += data.len();
            self.held.push(data);
        } else {
            make_room(&mut self.copied, data.len(), batch);
            self.copied.extend_from_slice(&data);
        }
    }

    /// Empties the batch, keeping its memory for the next one.
    pub(super) fn clear(&mut self) {
        self.held.clear();
        self.held_len = 0;
        self.copied.clear();
    }

    /// Appends the batch to `file` (blocking).
    pub(super) fn write_to(&self, file: &mut PartialFile) -> io::Result<()> {
        if self.held.is_empty() {
            return file.append(&self.copied);
        }
        let mut parts: Vec<&[u8]> = self.held.iter().map(|b| &b[..]).collect();
        parts.push(&self.copied);
        file.append_parts(&parts)
    }
}

/// Grows `pending` to hold `more` bytes: doubling, as a `Vec` does, but never past `batch` (unless
/// one chunk is larger). Left to `BytesMut`, a batch one chunk short of full doubles to twice the
/// batch size, and the two buffers a download keeps with it.
fn make_room(pending: &mut BytesMut, more: usize, batch: usize) {
    let needed = pending.len() + more;
    if needed <= pending.capacity() {
        return;
    }
    let mut bigger = BytesMut::with_capacity(grown_capacity(pending.capacity(), needed, batch));
    bigger.extend_from_slice(pending);
    *pending = bigger;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills batches the way `accept` does (a batch that a chunk would overflow is written first)
    /// and returns the largest capacity a batch reached.
    fn largest_batch(chunk: usize) -> usize {
        let (mut pending, mut largest) = (BytesMut::new(), 0usize);
        let data = vec![7u8; chunk];
        for _ in 0..100 {
            if !pending.is_empty() && pending.len() + chunk > WRITE_BATCH {
                pending.clear(); // written; the next batch reuses a buffer of the same capacity
            }
            make_room(&mut pending, chunk, WRITE_BATCH);
            pending.extend_from_slice(&data);
            largest = largest.max(pending.capacity());
        }
        largest
    }

    #[test]
    fn a_batch_never_grows_past_its_size() {
        // Odd sizes too: doubling from them overshoots a power of two.
        for chunk in [1, 1000, 8192, 16_484, 65_536, 100_003, WRITE_BATCH] {
            assert!(
                largest_batch(chunk) <= WRITE_BATCH,
                "chunks of {chunk} bytes"
            );
        }
        // A chunk larger than a batch is taken whole, in a buffer of its own size.
        assert_eq!(largest_batch(WRITE_BATCH + 1), WRITE_BATCH + 1);
    }

    #[test]
    fn a_batch_writes_its_chunks_in_arrival_order() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = courier_storage::SessionDirectory::persistent(Some(dir.path().into()));
        let mut file = sessions.create_partial().unwrap();
        let mut batch = Batch::default();
        // Held while the download is among few, then copied once it is among many; a chunk
        // that may be held again after a copy is copied too, or it would be written first.
        batch.push(Bytes::from_static(b"held "), WRITE_BATCH, true);
        batch.push(Bytes::from_static(b"held too, "), WRITE_BATCH, true);
        batch.push(Bytes::from_static(b"copied, "), MIN_BATCH, false);
        batch.push(Bytes::from_static(b"copied again"), WRITE_BATCH, true);
        assert_eq!(batch.len(), 35);
        batch.write_to(&mut file).unwrap();
        assert_eq!(
            std::fs::read(file.path()).unwrap(),
            b"held held too, copied, copied again"
        );
        batch.clear();
        assert!(batch.is_empty());
        // Copied alone, it is one plain write.
        batch.push(Bytes::from_static(b"!"), MIN_BATCH, false);
        batch.write_to(&mut file).unwrap();
        assert_eq!(file.len(), 36);
        file.remove();
    }

    #[test]
    fn many_downloads_share_the_batch_budget() {
        assert_eq!(batch_size(0), WRITE_BATCH);
        assert_eq!(batch_size(1), WRITE_BATCH);
        assert_eq!(batch_size(BATCH_BUDGET / WRITE_BATCH), WRITE_BATCH);
        assert!(batch_size(BATCH_BUDGET / WRITE_BATCH + 1) < WRITE_BATCH);
        assert_eq!(batch_size(10_000), MIN_BATCH);
        // Their batches together stay within the budget until each is at the floor.
        for open in [1, 10, 64, 65, 100, 500, 1024] {
            assert!(open * batch_size(open) <= BATCH_BUDGET, "{open} downloads");
        }
    }
}
