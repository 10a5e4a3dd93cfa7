//! A file read from start to end on a blocking thread, a few chunks ahead of where they go: an
//! upload's connection (HTTP or `ftp:`), or a `file:` URL's task. Each chunk is read into a buffer
//! that starts on a cache line and comes back to the reader once the chunk is dropped.

use std::io;

use bytes::Bytes;

/// Bytes read from a file at a time.
pub(crate) const CHUNK: usize = 256 * 1024;

/// Chunks of a file read ahead, in order.
pub(crate) type ReadAhead = tokio::sync::mpsc::Receiver<io::Result<Bytes>>;

/// Reads `file` on one blocking thread from start to end, [`READ_AHEAD`] chunks ahead. A read per
/// chunk through Tokio's file (a blocking-pool round trip and two copies each) kept a 1 GiB upload
/// at 1.27x curl's time. Stops when the receiver is dropped.
pub(crate) fn read_ahead(file: tokio::fs::File) -> ReadAhead {
    use std::io::Read;
    let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
    let file = file.try_into_std();
    tokio::task::spawn_blocking(move || {
        let Ok(mut file) = file else {
            let _ = tx.blocking_send(Err(io::Error::other("the file is busy")));
            return;
        };
        // Buffers come back here once their chunks are dropped, and are read into again.
        let (back, returned) = std::sync::mpsc::channel();
        loop {
            let mut buffer = returned.try_recv().unwrap_or_else(|_| ReadBuffer::new());
            let space = buffer.space();
            let mut len = 0;
            while len < CHUNK {
                match file.read(&mut space[len..]) {
                    Ok(0) => break,
                    Ok(n) => len += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
            if len == 0 {
                return;
            }
            let chunk = Bytes::from_owner(Recycled {
                buffer,
                len,
                back: back.clone(),
            });
            if tx.blocking_send(Ok(chunk)).is_err() {
                return; // the receiver was dropped: nobody wants the rest
            }
        }
    });
    rx
}

/// Chunks a file is read ahead of where they go.
const READ_AHEAD: usize = 4;

/// Where the file reader reads a chunk: [`CHUNK`] bytes that start on a cache line.
///
/// The kernel copies a file into memory four to five times slower when the destination is not
/// 32-byte aligned (measured on this machine's AMD EPYC: 1 GiB from the page cache in 256 KiB
/// reads, 0.46-0.69 s of CPU against 0.11-0.13 s), and a buffer this large comes straight from
/// `mmap` 16 bytes past a page's start. So the buffer is over-allocated, and the chunk begins at
/// its first 64-byte boundary.
///
/// Its bytes stay initialized from one chunk to the next: `read_to_end` into a cleared buffer
/// zeroed all 256 KiB before every read. The default is empty: what a chunk leaves behind once it
/// has handed its buffer back.
#[derive(Default)]
struct ReadBuffer {
    bytes: Vec<u8>,
    /// Where the aligned space begins in `bytes`.
    start: usize,
}

impl ReadBuffer {
    /// The alignment of the space a chunk is read into: a cache line.
    const ALIGN: usize = 64;

    fn new() -> ReadBuffer {
        let bytes = vec![0; CHUNK + Self::ALIGN];
        // `align_offset` may answer "never" (`usize::MAX`) where it cannot tell; the buffer is
        // then read at its start, unaligned but correct.
        let start = bytes.as_ptr().align_offset(Self::ALIGN);
        let start = if start < Self::ALIGN { start } else { 0 };
        ReadBuffer { bytes, start }
    }

    /// The [`CHUNK`] bytes a read fills.
    fn space(&mut self) -> &mut [u8] {
        &mut self.bytes[self.start..self.start + CHUNK]
    }

    /// The first `len` bytes of the space: what a read put there.
    fn filled(&self, len: usize) -> &[u8] {
        &self.bytes[self.start..self.start + len]
    }
}

/// A chunk's buffer, handed back to the reader when the chunk is dropped: a new 256 KiB
/// buffer per chunk is mapped and unmapped by the allocator (above its mmap threshold), and its
/// pages faulted in afresh, 4,096 times a GiB.
struct Recycled {
    buffer: ReadBuffer,
    /// The bytes of the buffer's space this chunk holds (the file's last chunk fills it in part).
    len: usize,
    back: std::sync::mpsc::Sender<ReadBuffer>,
}

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        self.buffer.filled(self.len)
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        // The reader may be gone (the file was read to its end): the buffer is then simply freed.
        let _ = self.back.send(std::mem::take(&mut self.buffer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_is_read_into_space_that_starts_on_a_cache_line() {
        for _ in 0..8 {
            let mut buffer = ReadBuffer::new();
            let space = buffer.space();
            assert_eq!(space.len(), CHUNK);
            assert_eq!(space.as_ptr() as usize % ReadBuffer::ALIGN, 0);
            space[CHUNK - 1] = 7;
            assert_eq!(buffer.filled(CHUNK)[CHUNK - 1], 7);
        }
    }
}
