//! How much of a download's body waits in memory before a write: the size of a batch, which a
//! session's downloads share, and how a batch's buffer grows.
//!
//! One download alone batches [`WRITE_BATCH`]. Thousands at once share [`BATCH_BUDGET`], so that
//! what waits in memory stays bounded however many run (10,000 slow downloads each held two
//! 32 KiB buffers before the budget).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::BytesMut;

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
}

impl Drop for BatchShare {
    fn drop(&mut self) {
        self.0.open_downloads.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Grows `pending` to hold `more` bytes: doubling, as a `Vec` does, but never past `batch` (unless
/// one chunk is larger). Left to `BytesMut`, a batch one chunk short of full doubles to twice the
/// batch size, and the two buffers a download keeps with it.
pub(super) fn make_room(pending: &mut BytesMut, more: usize, batch: usize) {
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
