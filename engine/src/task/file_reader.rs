//! A file read from start to end on a blocking thread, a few chunks ahead of where they go: an
//! upload's connection (HTTP or `ftp:`), or a `file:` URL's task. Each chunk is read into a buffer
//! that starts on a cache line and comes back to the reader once the chunk is dropped.

use std::io;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

/// Bytes read from a file at a time.
pub(crate) const CHUNK: usize = 256 * 1024;

/// How long the reader waits with its chunks untaken (the task suspended, a connection stalled)
/// before it hands the file back and frees its thread: a thread of Tokio's blocking pool held for
/// as long as a task stays suspended would leave fewer for everyone else's file work.
#[cfg(not(test))]
const IDLE: Duration = Duration::from_secs(2);
#[cfg(test)]
const IDLE: Duration = Duration::from_millis(50);

/// A file's chunks, in order, read on a thread of Tokio's blocking pool [`READ_AHEAD`] chunks
/// ahead of the reader of this. A read per chunk through Tokio's file (a blocking-pool round trip
/// and two copies each) kept a 1 GiB upload at 1.27x curl's time.
///
/// The thread stops when this is dropped, when the file ends or fails, and when its chunks have
/// waited [`IDLE`]: it then hands the file back, and the next chunk asked for starts another.
pub(crate) struct ReadAhead {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    /// Where an idle reader hands the file back.
    parked: oneshot::Receiver<Parked>,
    runtime: tokio::runtime::Handle,
    /// Readers started after the first, for the tests.
    restarts: u32,
}

/// What an idle reader hands back: the file where it stopped, the chunk it could not hand over,
/// and its buffers.
struct Parked {
    file: std::fs::File,
    pending: Bytes,
    buffers: Buffers,
}

/// The read buffers that chunks hand back once dropped, to be read into again: a new 256 KiB
/// buffer per chunk is mapped and unmapped by the allocator (above its mmap threshold), and its
/// pages faulted in afresh, 4,096 times a GiB.
struct Buffers {
    back: std::sync::mpsc::Sender<ReadBuffer>,
    returned: std::sync::mpsc::Receiver<ReadBuffer>,
}

/// Starts reading `file` from where it stands. Must be called within a Tokio runtime.
pub(crate) fn read_ahead(file: tokio::fs::File) -> ReadAhead {
    let runtime = tokio::runtime::Handle::current();
    let (back, returned) = std::sync::mpsc::channel();
    let buffers = Buffers { back, returned };
    let (chunks, parked) = match file.try_into_std() {
        Ok(file) => start(&runtime, file, buffers),
        // A Tokio file with an operation in flight: never one just opened.
        Err(_) => {
            let (tx, chunks) = mpsc::channel(1);
            let _ = tx.try_send(Err(io::Error::other("the file is busy")));
            (chunks, oneshot::channel().1)
        }
    };
    ReadAhead {
        chunks,
        parked,
        runtime,
        restarts: 0,
    }
}

impl ReadAhead {
    /// The next chunk; `None` at the file's end.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        match self.chunks.poll_recv(cx) {
            Poll::Ready(None) => {}
            other => return other,
        }
        // The reader is gone, every chunk it sent taken: it ended, or it went idle.
        let Ok(Parked {
            file,
            pending,
            buffers,
        }) = self.parked.try_recv()
        else {
            return Poll::Ready(None);
        };
        (self.chunks, self.parked) = start(&self.runtime, file, buffers);
        self.restarts += 1;
        Poll::Ready(Some(Ok(pending)))
    }

    /// The next chunk; `None` at the file's end.
    pub(crate) async fn recv(&mut self) -> Option<io::Result<Bytes>> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }
}

/// Starts a reader thread, and returns where its chunks come, and where it hands the file back if
/// it goes idle.
fn start(
    runtime: &tokio::runtime::Handle,
    file: std::fs::File,
    buffers: Buffers,
) -> (mpsc::Receiver<io::Result<Bytes>>, oneshot::Receiver<Parked>) {
    let (tx, chunks) = mpsc::channel(READ_AHEAD);
    let (park, parked) = oneshot::channel();
    let handle = runtime.clone();
    runtime.spawn_blocking(move || read(&handle, file, buffers, tx, park));
    (chunks, parked)
}

/// The reader thread's loop.
fn read(
    runtime: &tokio::runtime::Handle,
    mut file: std::fs::File,
    buffers: Buffers,
    tx: mpsc::Sender<io::Result<Bytes>>,
    park: oneshot::Sender<Parked>,
) {
    use std::io::Read;
    loop {
        let mut buffer = buffers
            .returned
            .try_recv()
            .unwrap_or_else(|_| ReadBuffer::new());
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
            back: buffers.back.clone(),
        });
        // A blocking thread may wait on the runtime (it is not one of its workers).
        match runtime.block_on(tokio::time::timeout(IDLE, tx.reserve())) {
            Ok(Ok(permit)) => permit.send(Ok(chunk)),
            // The receiver was dropped: nobody wants the rest.
            Ok(Err(_)) => return,
            Err(_idle) => {
                // The file goes back before the channel closes, so the receiver finds it there
                // once it has taken every chunk sent before.
                let _ = park.send(Parked {
                    file,
                    pending: chunk,
                    buffers,
                });
                return;
            }
        }
    }
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

/// A chunk's buffer, handed back to the reader (its [`Buffers`]) when the chunk is dropped.
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

    async fn read_all(chunks: &mut ReadAhead, into: &mut Vec<u8>) {
        while let Some(chunk) = chunks.recv().await {
            into.extend_from_slice(&chunk.unwrap());
        }
    }

    #[tokio::test]
    async fn a_reader_left_idle_hands_the_file_back_and_the_next_chunk_starts_another() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        let content: Vec<u8> = (0..(9 * CHUNK + 1234) as u32)
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&path, &content).unwrap();

        // Read straight through: one reader.
        let mut chunks = read_ahead(tokio::fs::File::open(&path).await.unwrap());
        let mut got = Vec::new();
        read_all(&mut chunks, &mut got).await;
        assert!(got == content);
        assert_eq!(chunks.restarts, 0);

        // Left waiting twice, longer than IDLE each time (as a suspended task is): the reader
        // parks, and the chunks after come from the next one, in order.
        let mut chunks = read_ahead(tokio::fs::File::open(&path).await.unwrap());
        let mut got = Vec::new();
        for _ in 0..2 {
            tokio::time::sleep(IDLE * 4).await;
            for _ in 0..=READ_AHEAD {
                got.extend_from_slice(&chunks.recv().await.unwrap().unwrap());
            }
        }
        read_all(&mut chunks, &mut got).await;
        assert!(got == content, "{} bytes of {}", got.len(), content.len());
        assert_eq!(chunks.restarts, 2);
    }

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
