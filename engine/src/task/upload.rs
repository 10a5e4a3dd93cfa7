//! Where an upload's body comes from: bytes, a file (streamed, in constant memory), or a stream the
//! delegate hands over through `need_new_body_stream`. The body counts what the connection takes and
//! reports it to the task actor, which turns it into `did_send_body_data`.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use courier_delegates::{BodyStream, Callback, Error, ErrorCode, TaskInfo, TaskRecorder};
use courier_protocol_http::RequestBody;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};

use super::actor::{ActorPost, TaskMsg};
use super::file_reader::{self, ReadAhead};
use super::pace::Pace;
use crate::context::SessionContext;

/// Bytes read from a stream at a time, and the largest chunk handed to the connection: as many as
/// a file's chunk.
const CHUNK: usize = file_reader::CHUNK;

/// The body of an upload task.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum UploadBody {
    /// These bytes (`uploadTask(with:from:)`).
    Bytes(Bytes),
    /// The contents of this file, read as they are sent (`uploadTask(with:fromFile:)`). A missing
    /// file fails the task with -1100, a directory with -1101, an unreadable file with -1102.
    File(PathBuf),
    /// A stream the delegate provides in `need_new_body_stream`, asked again whenever the body must
    /// be sent anew (`uploadTask(withStreamedRequest:)`; no stream for a resend fails the task with
    /// -1021). Sent with chunked encoding; to an `ftp:` URL, as the file's bytes.
    Stream,
}

/// What a body source gives the transfer: the body and its length, when known.
pub(crate) struct Prepared {
    pub(crate) body: RequestBody,
    pub(crate) length: Option<u64>,
}

/// Makes the request body for one send, from byte `from` of the body on (0 but for the rest of a
/// resumable upload, `transfer/resumable.rs`; a stream body is never resumed). Called again for
/// every resend (`resending`).
///
/// # Errors
/// The file's (-1100, -1101, -1102), or a file now shorter than `from` (-1102); for a stream
/// body that must be sent again and that the delegate does not hand over anew,
/// `RequestBodyStreamExhausted` (-1021), as URLSession fails it: a resend without its body would
/// reach the server as an empty upload.
#[allow(
    clippy::too_many_arguments,
    reason = "each is one fact of the send; a struct for one call would only rename them"
)]
pub(crate) async fn prepare(
    source: &UploadBody,
    from: u64,
    ctx: &SessionContext,
    info: &TaskInfo,
    callbacks: bool,
    resending: bool,
    sent_to: SentTo,
    tally: Option<Arc<SentTally>>,
) -> Result<Prepared, Error> {
    let url = info.original_request().url_str();
    let rate = ctx.config.maximum_send_rate_per_task;
    let counted = |source| Counted::new(source, sent_to.clone(), tally.clone(), rate).boxed();
    let shorter = |length: u64| {
        Error::new(
            ErrorCode::NoPermissionsToReadFile,
            format!(
                "the upload's body is {length} bytes now, shorter than the {from} to resume from"
            ),
        )
        .with_url(url)
    };
    match source {
        UploadBody::Bytes(bytes) => {
            let from = usize::try_from(from)
                .ok()
                .filter(|&f| f <= bytes.len())
                .ok_or_else(|| shorter(bytes.len() as u64))?;
            Ok(Prepared {
                length: Some((bytes.len() - from) as u64),
                body: counted(Source::Bytes(bytes.slice(from..))),
            })
        }
        UploadBody::File(path) => {
            let (mut file, length) = open_upload_file(path).await.map_err(|e| e.with_url(url))?;
            if from > length {
                return Err(shorter(length));
            }
            if from > 0 {
                use tokio::io::AsyncSeekExt;
                file.seek(io::SeekFrom::Start(from))
                    .await
                    .map_err(|e| file_error(e, path).with_url(url))?;
            }
            Ok(Prepared {
                length: Some(length - from),
                body: counted(Source::File {
                    chunks: file_reader::read_ahead(file),
                    length,
                    left: length - from,
                }),
            })
        }
        UploadBody::Stream => {
            let stream = ask_for_stream(ctx, info, callbacks).await;
            if stream.is_none() && resending {
                return Err(Error::new(
                    ErrorCode::RequestBodyStreamExhausted,
                    "the upload must be sent again and no new body stream was given for it",
                )
                .with_url(url));
            }
            Ok(Prepared {
                length: if stream.is_some() { None } else { Some(0) },
                body: match stream {
                    Some(s) => counted(Source::reader(s)),
                    None => counted(Source::Bytes(Bytes::new())),
                },
            })
        }
    }
}

/// Asks the delegate for a fresh body stream; `None` without a delegate or when it declines.
pub(crate) async fn ask_for_stream(
    ctx: &SessionContext,
    info: &TaskInfo,
    callbacks: bool,
) -> Option<BodyStream> {
    let queue = ctx.delivery(info)?;
    // Completion-form tasks are asked too: URLSession sends them the messages that need an answer.
    let _ = callbacks;
    let task = info.clone();
    queue
        .ask_task(
            info,
            Callback::NewBodyStream,
            || None,
            move |d, reply| d.need_new_body_stream(&task, reply),
        )
        .await
        .ok()
        .flatten()
}

/// Why an upload's body stopped before its end: its source (the file could not be read, or
/// ended short), not the connection. It travels through hyper as the body's error and becomes the
/// task's error again ([`UploadSourceError::in_chain`]); it failed as a lost connection (-1005).
#[derive(Debug)]
pub(crate) struct UploadSourceError(Error);

impl UploadSourceError {
    /// The task's error, if `e` (or what caused it) is an upload's source failing.
    pub(crate) fn in_chain<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Error> {
        let mut cause = Some(e);
        while let Some(e) = cause {
            if let Some(UploadSourceError(error)) = e.downcast_ref::<UploadSourceError>() {
                return Some(error);
            }
            cause = e.source();
        }
        None
    }
}

impl std::fmt::Display for UploadSourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for UploadSourceError {}

/// Opens an upload's file, naming the failure as URLSession does.
pub(crate) async fn open_upload_file(path: &PathBuf) -> Result<(tokio::fs::File, u64), Error> {
    let meta = tokio::fs::metadata(path)
        .await
        .map_err(|e| file_error(e, path))?;
    if meta.is_dir() {
        return Err(Error::new(
            ErrorCode::FileIsDirectory,
            format!("{} is a directory", path.display()),
        ));
    }
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| file_error(e, path))?;
    Ok((file, meta.len()))
}

/// The code for a file that cannot be read: -1100 when it is missing, -1102 otherwise.
pub(crate) fn file_error(e: io::Error, path: &std::path::Path) -> Error {
    let code = match e.kind() {
        io::ErrorKind::NotFound => ErrorCode::FileDoesNotExist,
        io::ErrorKind::IsADirectory => ErrorCode::FileIsDirectory,
        _ => ErrorCode::NoPermissionsToReadFile,
    };
    Error::new(code, format!("cannot read {}: {e}", path.display())).with_source(e)
}

enum Source {
    Bytes(Bytes),
    /// A file, read ahead on a thread of its own: the `left` bytes to send of the `length` it had
    /// when the upload began (what `Content-Length` says). A file that grows meanwhile is sent as
    /// it was; one that shrinks fails the task ([`UploadSourceError`]).
    File {
        chunks: ReadAhead,
        length: u64,
        left: u64,
    },
    /// The mutex is never locked (`get_mut`); it only makes the reader `Sync`, as boxed bodies must be.
    Reader(std::sync::Mutex<Pin<Box<dyn AsyncRead + Send>>>),
}

impl Source {
    fn reader(r: Pin<Box<dyn AsyncRead + Send>>) -> Source {
        Source::Reader(std::sync::Mutex::new(r))
    }
}

/// One send's request body bytes handed to the connection, and when the last went: the
/// transaction's metrics (`countOfRequestBodyBytesSent`, `requestEndDate`).
#[derive(Debug, Default)]
pub(crate) struct SentTally {
    bytes: AtomicU64,
    ended: OnceLock<Instant>,
}

impl SentTally {
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn ended(&self) -> Option<Instant> {
        self.ended.get().copied()
    }
}

/// Where the progress of a request body goes, chunk by chunk.
#[derive(Clone)]
pub(crate) struct SentTo {
    /// The task's record: its [`TaskInfo::bytes_sent`], counted here as each chunk goes, as a
    /// stream task's transfer counts its own.
    pub(crate) record: TaskRecorder,
    /// The task's actor, when its delegate may want to hear (`did_send_body_data`): the actor
    /// keeps the total it tells. `None` otherwise: no message nobody reads. (A completion form's
    /// message rang its actor's doorbell, and a small upload's transfer left the actor's handler
    /// for a Tokio task of its own at its first chunk: 10,000 POSTs of 1 KiB took 7.8 Tokio polls
    /// a request against 5.6 without.)
    pub(crate) actor: Option<ActorPost>,
}

/// A request body that reports each chunk the connection takes: its progress ([`SentTo`]), and
/// to the send's [`SentTally`] when the metrics are read. Under a send rate cap it hands the
/// chunks over in slices, each when the bytes before it fit the rate.
struct Counted {
    source: Source,
    buffer: Vec<u8>,
    done: bool,
    sent_to: SentTo,
    tally: Option<Arc<SentTally>>,
    paced: Option<Box<Paced>>,
}

/// A body's rate cap at work: the pace, the wait for the next slice, and what is left of the
/// chunk being sliced. Boxed: most bodies have no cap.
struct Paced {
    pace: Pace,
    wait: Option<Pin<Box<tokio::time::Sleep>>>,
    held: Bytes,
}

impl Counted {
    fn new(
        source: Source,
        sent_to: SentTo,
        tally: Option<Arc<SentTally>>,
        rate: Option<u64>,
    ) -> Counted {
        Counted {
            source,
            buffer: Vec::new(),
            done: false,
            sent_to,
            tally,
            paced: Pace::of(rate).map(|pace| {
                Box::new(Paced {
                    pace,
                    wait: None,
                    held: Bytes::new(),
                })
            }),
        }
    }

    /// No more frames: the tally's end, once.
    fn note_end(&self) {
        if let Some(t) = &self.tally {
            let _ = t.ended.set(Instant::now());
        }
    }

    fn boxed(self) -> RequestBody {
        RequestBody::new(self)
    }

    /// The source's next chunk, as it comes (a file's read-ahead chunk, up to [`CHUNK`] of the
    /// bytes or a stream's read); the end, or the source's error, as the body's frame says it.
    fn next_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, <Counted as Body>::Error>>> {
        let chunk = match &mut self.source {
            Source::Bytes(bytes) => {
                if bytes.is_empty() {
                    self.done = true;
                    self.note_end();
                    return Poll::Ready(None);
                }
                bytes.split_to(bytes.len().min(CHUNK))
            }
            Source::File { left: 0, .. } => {
                self.done = true;
                self.note_end();
                return Poll::Ready(None);
            }
            Source::File {
                chunks,
                length,
                left,
            } => match chunks.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    self.done = true;
                    let message = format!(
                        "the upload's file ended {left} bytes short of the {length} it had when the \
                         upload began: it changed while it was sent"
                    );
                    let error = Error::new(ErrorCode::NoPermissionsToReadFile, message);
                    return Poll::Ready(Some(Err(Box::new(UploadSourceError(error)))));
                }
                Poll::Ready(Some(Err(e))) => {
                    self.done = true;
                    let message = format!("the upload's file cannot be read: {e}");
                    let error =
                        Error::new(ErrorCode::NoPermissionsToReadFile, message).with_source(e);
                    return Poll::Ready(Some(Err(Box::new(UploadSourceError(error)))));
                }
                Poll::Ready(Some(Ok(mut chunk))) => {
                    // Past the length the upload announced (the file grew): not sent.
                    chunk.truncate(usize::try_from(*left).unwrap_or(usize::MAX));
                    *left -= chunk.len() as u64;
                    chunk
                }
            },
            Source::Reader(reader) => {
                if self.buffer.len() != CHUNK {
                    self.buffer = vec![0; CHUNK];
                }
                let mut buf = ReadBuf::new(&mut self.buffer);
                let reader = reader.get_mut().unwrap_or_else(|p| p.into_inner());
                match reader.as_mut().poll_read(cx, &mut buf) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => {
                        self.done = true;
                        return Poll::Ready(Some(Err(Box::new(e))));
                    }
                    Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                        self.done = true;
                        self.note_end();
                        return Poll::Ready(None);
                    }
                    Poll::Ready(Ok(())) => Bytes::copy_from_slice(buf.filled()),
                }
            }
        };
        Poll::Ready(Some(Ok(chunk)))
    }
}

impl Body for Counted {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let mut chunk = match this.paced.as_deref_mut() {
            Some(paced) => {
                if let Some(due) = paced.pace.due() {
                    let wait = paced
                        .wait
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
                    if wait.deadline() != due {
                        wait.as_mut().reset(due);
                    }
                    if wait.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
                std::mem::take(&mut paced.held)
            }
            None => Bytes::new(),
        };
        if chunk.is_empty() {
            chunk = match this.next_chunk(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => chunk,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
            };
        }
        if let Some(paced) = this.paced.as_deref_mut() {
            let slice = paced.pace.slice(CHUNK);
            if chunk.len() > slice {
                paced.held = chunk.split_off(slice);
            }
            paced.pace.moved(chunk.len());
        }
        this.sent_to.record.add_sent(chunk.len() as u64);
        // The actor may be gone (the task was cancelled); then nobody is told.
        if let Some(actor) = &this.sent_to.actor {
            let _ = actor.cast(TaskMsg::Sent(chunk.len() as u64));
        }
        if let Some(t) = &this.tally {
            t.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        // hyper stops polling a body that says it ended: this frame is the last.
        if this.is_end_stream() {
            this.note_end();
        }
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        let held = self.paced.as_deref().is_some_and(|p| !p.held.is_empty());
        self.done
            || (!held
                && match &self.source {
                    Source::Bytes(b) => b.is_empty(),
                    Source::File { left, .. } => *left == 0,
                    Source::Reader(_) => false,
                })
    }

    fn size_hint(&self) -> SizeHint {
        let held = self.paced.as_deref().map_or(0, |p| p.held.len());
        match &self.source {
            Source::Bytes(b) => SizeHint::with_exact((b.len() + held) as u64),
            Source::File { .. } | Source::Reader(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_errors_get_urlsession_codes() {
        let p = std::path::Path::new("/x");
        let code = |kind| file_error(io::Error::from(kind), p).code();
        assert_eq!(code(io::ErrorKind::NotFound), ErrorCode::FileDoesNotExist);
        assert_eq!(
            code(io::ErrorKind::IsADirectory),
            ErrorCode::FileIsDirectory
        );
        // Root reads any file, so tests cannot make one unreadable: the mapping is checked here.
        assert_eq!(
            code(io::ErrorKind::PermissionDenied),
            ErrorCode::NoPermissionsToReadFile
        );
    }
}
