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

/// What a reader reads: a file (a test's source may fail part way).
type Source = Box<dyn io::Read + Send>;

/// What an idle reader hands back: the file where it stopped, what it could not hand over (a chunk,
/// or the error that ended the file), and its buffers.
struct Parked {
    file: Source,
    pending: io::Result<Bytes>,
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
    match file.try_into_std() {
        Ok(file) => read_from(Box::new(file)),
        // A Tokio file with an operation in flight: never one just opened.
        Err(_) => {
            let (tx, chunks) = mpsc::channel(1);
            let _ = tx.try_send(Err(io::Error::other("the file is busy")));
            ReadAhead {
                chunks,
                parked: oneshot::channel().1,
                runtime: tokio::runtime::Handle::current(),
                restarts: 0,
            }
        }
    }
}

/// [`read_ahead`] of any source. Must be called within a Tokio runtime.
fn read_from(file: Source) -> ReadAhead {
    let runtime = tokio::runtime::Handle::current();
    let (back, returned) = std::sync::mpsc::channel();
    let (chunks, parked) = start(&runtime, file, Buffers { back, returned });
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
        // After an error, nothing more is read: the next call finds the reader gone for good.
        if pending.is_ok() {
            (self.chunks, self.parked) = start(&self.runtime, file, buffers);
            self.restarts += 1;
        }
        Poll::Ready(Some(pending))
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
    file: Source,
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
    mut file: Source,
    buffers: Buffers,
    tx: mpsc::Sender<io::Result<Bytes>>,
    park: oneshot::Sender<Parked>,
) {
    loop {
        let (item, last) = match read_chunk(&mut file, &buffers) {
            Ok(Some(chunk)) => (Ok(chunk), false),
            Ok(None) => return,
            Err(e) => (Err(e), true),
        };
        // A blocking thread may wait on the runtime (it is not one of its workers). An error waits
        // as a chunk does: a reader that failed while its task was suspended frees its thread too.
        match runtime.block_on(tokio::time::timeout(IDLE, tx.reserve())) {
            Ok(Ok(permit)) => permit.send(item),
            // The receiver was dropped: nobody wants the rest.
            Ok(Err(_)) => return,
            Err(_idle) => {
                // The file goes back before the channel closes, so the receiver finds it there
                // once it has taken every chunk sent before.
                let _ = park.send(Parked {
                    file,
                    pending: item,
                    buffers,
                });
                return;
            }
        }
        if last {
            return;
        }
    }
}

/// Reads the file's next chunk into a returned buffer (or a new one); `None` at the file's end.
fn read_chunk(file: &mut Source, buffers: &Buffers) -> io::Result<Option<Bytes>> {
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
            Err(e) => return Err(e),
        }
    }
    Ok((len > 0).then(|| {
        Bytes::from_owner(Recycled {
            buffer,
            len,
            back: buffers.back.clone(),
        })
    }))
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

    /// A source of `left` bytes that then fails, as a disk may part way through a file.
    struct FailsAfter {
        left: usize,
    }

    impl io::Read for FailsAfter {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.left == 0 {
                return Err(io::Error::other("the disk is gone"));
            }
            let n = buf.len().min(self.left);
            buf[..n].fill(7);
            self.left -= n;
            Ok(n)
        }
    }

    #[test]
    fn a_reader_that_fails_while_its_chunks_wait_frees_its_thread_and_the_error_comes_last() {
        // One blocking thread: the reader holds it until it returns.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .max_blocking_threads(1)
            .build()
            .unwrap();
        runtime.block_on(async {
            // The reader fills the channel, then fails with nobody taking chunks (a suspended
            // task).
            let mut chunks = read_from(Box::new(FailsAfter {
                left: READ_AHEAD * CHUNK,
            }));
            tokio::time::sleep(IDLE * 4).await;
            // The thread is free again (a reader that waited to send its error held it for as long
            // as the task stayed suspended).
            let other = tokio::task::spawn_blocking(|| 42);
            let answer = tokio::time::timeout(Duration::from_secs(10), other).await;
            assert_eq!(answer.expect("the blocking thread is free").unwrap(), 42);
            // Every chunk read, then the error, then the end; no reader started after it.
            for _ in 0..READ_AHEAD {
                assert_eq!(chunks.recv().await.unwrap().unwrap().len(), CHUNK);
            }
            let failed = chunks.recv().await.unwrap().unwrap_err();
            assert_eq!(failed.to_string(), "the disk is gone");
            assert!(chunks.recv().await.is_none());
            assert_eq!(chunks.restarts, 0);
        });
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
