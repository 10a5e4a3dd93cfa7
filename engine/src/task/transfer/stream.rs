//! A stream task's transfer: the TCP connection, then the loop that serves the handle's reads and
//! writes (at the same time, each with its own deadline) and, between them, its closes, TLS starts
//! and stops, and the capture that hands the connection over.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use courier_delegates::{Error, ErrorCode};
use courier_protocol_http::stream::{self as raw, RawStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::time::Instant;

use super::timing::{halt_of, unless_stopped};
use super::{Halt, Run, map_transport_error};
use crate::task::actor::{StreamNews, TaskMsg};
use crate::task::download::Stopped;
use crate::task::stream::{CapturedStream, Command, StreamEnds};

/// Bytes read from the connection at a time, at least.
const READ_CHUNK: usize = 16 * 1024;

/// Bytes read ahead of the application's reads, at most.
const READ_AHEAD: usize = 64 * 1024;

struct Read {
    min: usize,
    max: usize,
    deadline: Instant,
    reply: tokio::sync::oneshot::Sender<Result<(Bytes, bool), Error>>,
}

struct Write {
    data: Bytes,
    written: usize,
    deadline: Instant,
    reply: tokio::sync::oneshot::Sender<Result<(), Error>>,
}

/// The connection, split so that a read and a write can wait at once.
type Halves = (ReadHalf<RawStream>, WriteHalf<RawStream>);

impl Run {
    /// Runs a stream task's transfer to its end.
    pub(super) async fn run_stream(
        mut self,
        ends: StreamEnds,
    ) -> (Option<TaskMsg>, Option<Stopped>) {
        let url = self.info.original_request().url_str().to_owned();
        match self.drive_stream(ends).await {
            Ok(()) => (Some(TaskMsg::Finished(None)), None),
            Err(Halt::Failed(e)) => {
                let e = if e.failing_url().is_none() {
                    e.with_url(&url)
                } else {
                    e
                };
                (Some(TaskMsg::Failed(e)), None)
            }
            Err(Halt::Interrupted) => (None, None),
        }
    }

    async fn drive_stream(&mut self, ends: StreamEnds) -> Result<(), Halt> {
        let host = self.url.host_str().unwrap_or_default().to_owned();
        let Some(port) = self.url.port() else {
            return Err(Halt::Failed(Error::new(
                ErrorCode::BadUrl,
                "a stream task needs a host and a port",
            )));
        };
        let transport = self.ctx.transport.clone();
        let opened = unless_stopped(&mut self.gate, transport.open_stream(&host, port)).await?;
        let conn = opened.map_err(|e| Halt::Failed(map_transport_error(e, &self.url)))?;
        if self
            .actor
            .cast(TaskMsg::Stream(StreamNews::Connected))
            .is_err()
        {
            return Err(Halt::Interrupted);
        }
        self.stream_loop(conn, ends).await
    }

    /// Serves the handle's commands on `conn` until both sides are closed, the connection is
    /// captured, or the task stops.
    pub(super) async fn stream_loop(
        &mut self,
        conn: RawStream,
        mut ends: StreamEnds,
    ) -> Result<(), Halt> {
        let host = self.url.host_str().unwrap_or_default().to_owned();
        let port = self.url.port_or_known_default().unwrap_or(0);
        let mut halves: Option<Halves> = Some(tokio::io::split(conn));
        let mut reads: VecDeque<Read> = VecDeque::new();
        let mut writes: VecDeque<Write> = VecDeque::new();
        // Commands that wait until no read or write is under way.
        let mut controls: VecDeque<Command> = VecDeque::new();
        let mut buffer = BytesMut::new();
        let (mut at_eof, mut read_closed, mut write_closed) = (false, false, false);
        let (mut bytes_in, mut bytes_out) = (0i64, 0i64);
        let mut commands_open = true;
        loop {
            let gate = self.gate.borrow();
            if gate.crash {
                panic!("injected transfer panic");
            }
            if gate.halted() {
                return Err(halt_of(&self.gate));
            }
            // Reads that can be answered from what was read already (or from the end).
            while let Some(head) = reads.front() {
                // A read whose caller stopped waiting takes nothing.
                if head.reply.is_closed() {
                    reads.pop_front();
                    continue;
                }
                let enough = buffer.len() >= head.min.max(1) || (head.min == 0 && at_eof);
                if read_closed {
                    let r = reads.pop_front().expect("a head");
                    let _ = r.reply.send(Err(closed("reading")));
                } else if enough || at_eof {
                    let r = reads.pop_front().expect("a head");
                    let taken = buffer.split_to(buffer.len().min(r.max)).freeze();
                    let _ = r.reply.send(Ok((taken, at_eof && buffer.is_empty())));
                } else {
                    break;
                }
            }
            if write_closed {
                for w in writes.drain(..) {
                    let _ = w.reply.send(Err(closed("writing")));
                }
            }
            if reads.is_empty()
                && writes.is_empty()
                && let Some(control) = controls.pop_front()
            {
                let Some(taken) = halves.take() else {
                    return Err(Halt::Interrupted);
                };
                match self
                    .control(
                        control,
                        taken,
                        &host,
                        port,
                        &mut read_closed,
                        &mut write_closed,
                    )
                    .await?
                {
                    Some(back) => halves = Some(back),
                    // Captured: the connection is the application's now.
                    None => return Ok(()),
                }
                continue;
            }
            // Both sides closed (the reading one by `close_read`, or by the end of the stream once
            // everything read was handed out): the task is done.
            let read_done = read_closed || (at_eof && buffer.is_empty() && reads.is_empty());
            if read_done && write_closed {
                return Ok(());
            }
            let (rd, wr) = halves.as_mut().expect("the connection");
            let deadline = [
                reads.front().map(|r| r.deadline),
                writes.front().map(|w| w.deadline),
            ]
            .into_iter()
            .flatten()
            .min();
            // Read for the read asked for, or ahead (a little) when none is: the end of the stream
            // is noticed as it comes, and the next read finds its bytes waiting.
            let wanted = reads.front().map_or(READ_AHEAD, |r| r.max);
            let reading = buffer.len() < wanted && !at_eof && !read_closed && !gate.paused;
            if reading && buffer.capacity() - buffer.len() < READ_CHUNK {
                buffer.reserve(READ_CHUNK);
            }
            tokio::select! {
                changed = self.gate.changed() => {
                    if changed.is_err() {
                        return Err(Halt::Interrupted);
                    }
                }
                command = ends.commands.recv(), if commands_open => match command {
                    None => commands_open = false,
                    Some(Command::Read { min, max, timeout, reply }) => reads.push_back(Read {
                        min, max, deadline: Instant::now() + timeout, reply,
                    }),
                    Some(Command::Write { data, timeout, reply }) => writes.push_back(Write {
                        data, written: 0, deadline: Instant::now() + timeout, reply,
                    }),
                    Some(other) => controls.push_back(other),
                },
                read = rd.read_buf(&mut buffer), if reading => match read {
                    Ok(0) => {
                        at_eof = true;
                        let _ = self.actor.cast(TaskMsg::Stream(StreamNews::ReadClosed));
                    }
                    Ok(n) => {
                        bytes_in += n as i64;
                        self.recorder.set_received(bytes_in);
                    }
                    Err(e) => return Err(Halt::Failed(lost(e))),
                },
                wrote = async {
                    let w = writes.front().expect("a write");
                    wr.write(&w.data[w.written..]).await
                }, if !writes.is_empty() => match wrote {
                    Ok(n) => {
                        let w = writes.front_mut().expect("a write");
                        w.written += n;
                        bytes_out += n as i64;
                        self.recorder.set_sent(bytes_out);
                        if w.written == w.data.len() {
                            let w = writes.pop_front().expect("a write");
                            let flushed = tokio::time::timeout_at(w.deadline, wr.flush()).await;
                            let _ = w.reply.send(match flushed {
                                Ok(Ok(())) => Ok(()),
                                Ok(Err(e)) => Err(lost(e)),
                                Err(_) => Err(timed_out("the write")),
                            });
                        }
                    }
                    Err(e) => {
                        let e = lost(e);
                        if let Some(w) = writes.pop_front() {
                            let _ = w.reply.send(Err(e.clone()));
                        }
                        return Err(Halt::Failed(e));
                    }
                },
                () = async {
                    match deadline {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    let now = Instant::now();
                    if reads.front().is_some_and(|r| r.deadline <= now) {
                        let r = reads.pop_front().expect("a read");
                        let _ = r.reply.send(Err(timed_out("the read")));
                    }
                    if writes.front().is_some_and(|w| w.deadline <= now) {
                        let w = writes.pop_front().expect("a write");
                        let _ = w.reply.send(Err(timed_out("the write")));
                    }
                }
            }
        }
    }

    /// Carries out a command that needs the whole connection; the halves back, or `None` once
    /// the connection was captured.
    async fn control(
        &mut self,
        control: Command,
        (rd, mut wr): Halves,
        host: &str,
        port: u16,
        read_closed: &mut bool,
        write_closed: &mut bool,
    ) -> Result<Option<Halves>, Halt> {
        match control {
            Command::CloseRead => {
                if !*read_closed {
                    *read_closed = true;
                    let _ = self.actor.cast(TaskMsg::Stream(StreamNews::ReadClosed));
                }
                Ok(Some((rd, wr)))
            }
            Command::CloseWrite => {
                if !*write_closed {
                    *write_closed = true;
                    let _ = wr.shutdown().await;
                    let _ = self.actor.cast(TaskMsg::Stream(StreamNews::WriteClosed));
                }
                Ok(Some((rd, wr)))
            }
            Command::StartSecure(reply) => {
                let transport = self.ctx.transport.clone();
                let secured = unless_stopped(
                    &mut self.gate,
                    transport.secure_stream(rd.unsplit(wr), host, port),
                )
                .await?;
                match secured {
                    Ok(conn) => {
                        let _ = reply.send(Ok(()));
                        Ok(Some(tokio::io::split(conn)))
                    }
                    Err(e) => {
                        let e = map_transport_error(e, &self.url);
                        let _ = reply.send(Err(e.clone()));
                        Err(Halt::Failed(e))
                    }
                }
            }
            Command::StopSecure(reply) => match raw::insecure(rd.unsplit(wr)).await {
                Ok(conn) => {
                    let _ = reply.send(Ok(()));
                    Ok(Some(tokio::io::split(conn)))
                }
                Err(e) => {
                    let e = lost(e);
                    let _ = reply.send(Err(e.clone()));
                    Err(Halt::Failed(e))
                }
            },
            Command::Capture(reply) => {
                let _ = self.actor.cast(TaskMsg::Stream(StreamNews::Captured));
                let _ = reply.send(Ok(CapturedStream(rd.unsplit(wr))));
                Ok(None)
            }
            Command::Read { .. } | Command::Write { .. } => {
                unreachable!("reads and writes are queued apart")
            }
        }
    }
}

fn lost(e: std::io::Error) -> Error {
    Error::new(
        ErrorCode::NetworkConnectionLost,
        format!("the stream's connection failed: {e}"),
    )
    .with_source(e)
}

fn timed_out(what: &str) -> Error {
    Error::new(ErrorCode::TimedOut, format!("{what} timed out"))
}

fn closed(side: &str) -> Error {
    Error::new(
        ErrorCode::NetworkConnectionLost,
        format!("the stream's {side} side is closed"),
    )
}
