//! Frames on the socket: a little-endian `u32` length, then one message in the storage codec's
//! versioned, checked envelope, at most [`MAX_FRAME`] bytes; the decoder that splits bytes into
//! messages as they arrive; and [`Connection`], a socket with the handshake on it.

use bytes::{Buf, BytesMut};
use courier_storage::codec;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use courier_storage::journal::{Schedule, TaskKind, TaskRecord};
use courier_storage::resume::RequestRecord;

use super::{ClientMessage, MAX_FRAME, PROTOCOL_VERSION, ServiceMessage, WireError, welcomed};

/// A task as [`Connection::list_tasks`] gives it.
#[derive(Clone, Debug)]
pub struct ListedTask {
    /// Its identifier.
    pub task: u64,
    /// Its record in the journal.
    pub record: TaskRecord,
    /// Bytes received (downloads) or sent (uploads) so far.
    pub written: i64,
    /// Bytes expected, or -1 when unknown.
    pub expected: i64,
}

/// One message as a frame.
///
/// # Errors
/// [`WireError::TooLarge`] for a message past [`MAX_FRAME`].
pub fn encode_frame<T: Serialize>(message: &T) -> Result<Vec<u8>, WireError> {
    let payload = codec::encode(message).map_err(WireError::Malformed)?;
    if payload.len() > MAX_FRAME {
        return Err(WireError::TooLarge(payload.len()));
    }
    let mut frame = Vec::with_capacity(4 + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

/// Splits bytes as they arrive into messages.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: BytesMut,
}

impl FrameDecoder {
    /// Adds bytes read from the socket.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, `None` when more bytes are needed.
    ///
    /// # Errors
    /// A frame past [`MAX_FRAME`] (checked from its length, before its bytes are buffered), or a
    /// message that does not decode. The connection is of no further use.
    pub fn next_message<T: DeserializeOwned>(&mut self) -> Result<Option<T>, WireError> {
        let Some(head) = self.buf.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if len > MAX_FRAME {
            return Err(WireError::TooLarge(len));
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        self.buf.advance(4);
        let payload = self.buf.split_to(len);
        codec::decode(&payload)
            .map(Some)
            .map_err(WireError::Malformed)
    }
}

/// One side of a connection: reads and writes whole messages.
#[derive(Debug)]
pub struct Connection<S> {
    stream: S,
    decoder: FrameDecoder,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Wraps a connected stream.
    pub fn new(stream: S) -> Connection<S> {
        Connection {
            stream,
            decoder: FrameDecoder::default(),
        }
    }

    /// Sends one message.
    ///
    /// # Errors
    /// The message is too large, or the socket failed.
    pub async fn send<T: Serialize>(&mut self, message: &T) -> Result<(), WireError> {
        write_message(&mut self.stream, message).await
    }

    /// Receives the next message.
    ///
    /// # Errors
    /// [`WireError::Closed`] when the peer closed the connection; a bad frame; the socket failed.
    pub async fn receive<T: DeserializeOwned>(&mut self) -> Result<T, WireError> {
        read_message(&mut self.stream, &mut self.decoder).await
    }

    /// The stream, and what was read past the last message, to read and write separately.
    pub fn into_parts(self) -> (S, FrameDecoder) {
        (self.stream, self.decoder)
    }

    /// The application's side of the handshake: attaches to `identifier`, and takes its events.
    ///
    /// # Errors
    /// The service refused (another version), or went away.
    pub async fn hello(&mut self, identifier: &str) -> Result<(), WireError> {
        self.greet(identifier, true).await
    }

    /// As [`Connection::hello`] for a connection that only creates, controls and lists tasks: the
    /// identifier's events are not sent to it, and wait for the application.
    ///
    /// # Errors
    /// The service refused (another version), or went away.
    pub async fn hello_without_events(&mut self, identifier: &str) -> Result<(), WireError> {
        self.greet(identifier, false).await
    }

    async fn greet(&mut self, identifier: &str, events: bool) -> Result<(), WireError> {
        self.send(&ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            identifier: identifier.to_owned(),
            events,
        })
        .await?;
        welcomed(self.receive::<ServiceMessage>().await?)
    }

    /// Creates a task and returns its identifier (the service's). For a connection made with
    /// [`Connection::hello_without_events`]: on one that takes events, those arriving meanwhile
    /// would be skipped.
    ///
    /// # Errors
    /// The service went away, or refused the task.
    pub async fn create_task(
        &mut self,
        kind: TaskKind,
        request: RequestRecord,
        schedule: Schedule,
        settings: super::SessionSettings,
    ) -> Result<u64, WireError> {
        self.send(&ClientMessage::CreateTask {
            kind,
            request,
            description: String::new(),
            schedule,
            settings,
        })
        .await?;
        loop {
            match self.receive().await? {
                ServiceMessage::TaskCreated { task } => return Ok(task),
                ServiceMessage::Refused { reason } => return Err(WireError::Refused(reason)),
                _ => {}
            }
        }
    }

    /// Every task of the identifier, as the service holds it now. Like
    /// [`Connection::create_task`], for a connection without events. Once it returns, every
    /// request sent before it has been carried out (the service answers in order).
    ///
    /// # Errors
    /// The service went away.
    pub async fn list_tasks(&mut self) -> Result<Vec<ListedTask>, WireError> {
        self.send(&ClientMessage::ListTasks).await?;
        let mut tasks = Vec::new();
        loop {
            match self.receive::<ServiceMessage>().await? {
                ServiceMessage::Task {
                    task,
                    record,
                    written,
                    expected,
                } => tasks.push(ListedTask {
                    task,
                    record,
                    written,
                    expected,
                }),
                ServiceMessage::EndOfTasks => return Ok(tasks),
                _ => {}
            }
        }
    }

    /// The service's side of the handshake, after the peer's user was checked: the identifier
    /// the client attaches to, and whether it takes its events. A client of another protocol
    /// version is told why, then refused; any other is answered with [`Connection::welcome`] or
    /// [`Connection::refuse`].
    ///
    /// # Errors
    /// Another version ([`WireError::Version`]), another first message, or a failed socket.
    pub async fn greeting(&mut self) -> Result<(String, bool), WireError> {
        match self.receive::<ClientMessage>().await? {
            ClientMessage::Hello {
                version,
                identifier,
                events,
            } if version == PROTOCOL_VERSION => Ok((identifier, events)),
            ClientMessage::Hello { version, .. } => {
                let error = WireError::Version {
                    ours: PROTOCOL_VERSION,
                    theirs: version,
                };
                let _ = self.refuse(error.to_string()).await;
                Err(error)
            }
            _ => Err(WireError::Unexpected),
        }
    }

    /// Admits the client whose [`Connection::greeting`] was read.
    ///
    /// # Errors
    /// The socket failed.
    pub async fn welcome(&mut self) -> Result<(), WireError> {
        self.send(&ServiceMessage::Welcome {
            version: PROTOCOL_VERSION,
        })
        .await
    }

    /// Turns the client whose [`Connection::greeting`] was read away, saying why.
    ///
    /// # Errors
    /// The socket failed.
    pub async fn refuse(&mut self, reason: String) -> Result<(), WireError> {
        self.send(&ServiceMessage::Refused { reason }).await
    }
}

/// Writes one message to `writer`.
///
/// # Errors
/// The message is too large, or the write failed.
pub async fn write_message<T: Serialize, W: AsyncWrite + Unpin>(
    writer: &mut W,
    message: &T,
) -> Result<(), WireError> {
    let frame = encode_frame(message)?;
    writer.write_all(&frame).await?;
    writer.flush().await?;
    Ok(())
}

/// Reads the next message from `reader`, through `decoder` (which keeps what was read past it).
///
/// # Errors
/// [`WireError::Closed`] when the peer closed the connection; a bad frame; the read failed.
pub async fn read_message<T: DeserializeOwned, R: AsyncRead + Unpin>(
    reader: &mut R,
    decoder: &mut FrameDecoder,
) -> Result<T, WireError> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(message) = decoder.next_message()? {
            return Ok(message);
        }
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            return Err(WireError::Closed);
        }
        decoder.push(&chunk[..n]);
    }
}

/// [`write_message`] on a blocking socket (an application session's thread).
///
/// # Errors
/// The message is too large, or the write failed.
pub fn write_message_blocking<T: Serialize>(
    writer: &mut impl std::io::Write,
    message: &T,
) -> Result<(), WireError> {
    let frame = encode_frame(message)?;
    writer.write_all(&frame)?;
    writer.flush()?;
    Ok(())
}

/// [`read_message`] on a blocking socket (an application session's reader thread).
///
/// # Errors
/// [`WireError::Closed`] when the peer closed the connection; a bad frame; the read failed.
pub fn read_message_blocking<T: DeserializeOwned>(
    reader: &mut impl std::io::Read,
    decoder: &mut FrameDecoder,
) -> Result<T, WireError> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(message) = decoder.next_message()? {
            return Ok(message);
        }
        let n = reader.read(&mut chunk)?;
        if n == 0 {
            return Err(WireError::Closed);
        }
        decoder.push(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use courier_storage::journal::{EventRecord, StoredEvent};
    use proptest::prelude::*;
    use tokio::net::UnixStream;

    fn event(seq: u64) -> ServiceMessage {
        ServiceMessage::Event {
            seq,
            record: EventRecord {
                task: 3,
                event: StoredEvent::WroteData {
                    written: 10,
                    total: 10 * seq as i64,
                    expected: -1,
                },
            },
        }
    }

    #[tokio::test]
    async fn messages_cross_a_socket_after_the_handshake() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut app, mut service) = (Connection::new(a), Connection::new(b));
        let serving = tokio::spawn(async move {
            let identifier = service.greeting().await.unwrap();
            service.welcome().await.unwrap();
            for seq in 1..=3 {
                service.send(&event(seq)).await.unwrap();
            }
            service.send(&ServiceMessage::FinishedEvents).await.unwrap();
            identifier
        });
        app.hello("com.example.sync").await.unwrap();
        for seq in 1..=3 {
            assert_eq!(app.receive::<ServiceMessage>().await.unwrap(), event(seq));
        }
        assert_eq!(
            app.receive::<ServiceMessage>().await.unwrap(),
            ServiceMessage::FinishedEvents
        );
        assert_eq!(
            serving.await.unwrap(),
            ("com.example.sync".to_owned(), true)
        );
        assert!(matches!(
            app.receive::<ServiceMessage>().await,
            Err(WireError::Closed)
        ));
    }

    #[tokio::test]
    async fn another_protocol_version_is_refused_with_the_reason() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut app, mut service) = (Connection::new(a), Connection::new(b));
        let serving = tokio::spawn(async move { service.greeting().await });
        app.send(&ClientMessage::Hello {
            version: PROTOCOL_VERSION + 1,
            identifier: "x".into(),
            events: true,
        })
        .await
        .unwrap();
        match app.receive::<ServiceMessage>().await.unwrap() {
            ServiceMessage::Refused { reason } => {
                let theirs = format!("protocol version {}", PROTOCOL_VERSION + 1);
                assert!(reason.contains(&theirs), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            serving.await.unwrap(),
            Err(WireError::Version { ours, theirs })
                if ours == PROTOCOL_VERSION && theirs == PROTOCOL_VERSION + 1
        ));
    }

    #[test]
    fn only_a_welcome_in_this_version_lets_a_client_go_on() {
        assert!(
            welcomed(ServiceMessage::Welcome {
                version: PROTOCOL_VERSION
            })
            .is_ok()
        );
        // A service of another build that welcomes anyway (the client checks too, not only the
        // service): what follows would be misread.
        assert!(matches!(
            welcomed(ServiceMessage::Welcome { version: PROTOCOL_VERSION + 1 }),
            Err(WireError::Version { ours, theirs })
                if ours == PROTOCOL_VERSION && theirs == PROTOCOL_VERSION + 1
        ));
        assert!(matches!(
            welcomed(ServiceMessage::Refused { reason: "why".into() }),
            Err(WireError::Refused(r)) if r == "why"
        ));
        assert!(matches!(
            welcomed(ServiceMessage::FinishedEvents),
            Err(WireError::Unexpected)
        ));
    }

    proptest! {
        /// Any bytes in any pieces: messages, "need more", or an error; never a panic, never a
        /// buffer past one frame.
        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(
            bytes in proptest::collection::vec(any::<u8>(), 0..2048),
            cut in 0usize..2048,
        ) {
            let mut d = FrameDecoder::default();
            let cut = cut.min(bytes.len());
            d.push(&bytes[..cut]);
            let _ = d.next_message::<ServiceMessage>();
            d.push(&bytes[cut..]);
            while let Ok(Some(_)) = d.next_message::<ServiceMessage>() {}
        }

        /// Frames split anywhere decode to the same messages; a length past the limit is refused
        /// from its four bytes alone.
        #[test]
        fn frames_split_anywhere_decode_whole(
            seqs in proptest::collection::vec(1u64..1000, 1..8),
            cuts in proptest::collection::vec(0usize..4096, 0..6),
        ) {
            let messages: Vec<ServiceMessage> = seqs.iter().map(|s| event(*s)).collect();
            let mut bytes = Vec::new();
            for m in &messages {
                bytes.extend_from_slice(&encode_frame(m).unwrap());
            }
            let mut cuts = cuts;
            cuts.push(bytes.len());
            cuts.sort_unstable();
            let mut d = FrameDecoder::default();
            let (mut at, mut out) = (0, Vec::new());
            for cut in cuts {
                let cut = cut.min(bytes.len()).max(at);
                d.push(&bytes[at..cut]);
                at = cut;
                while let Some(m) = d.next_message::<ServiceMessage>().unwrap() {
                    out.push(m);
                }
            }
            prop_assert_eq!(out, messages);
            let mut d = FrameDecoder::default();
            d.push(&((MAX_FRAME as u32) + 1).to_le_bytes());
            prop_assert!(matches!(d.next_message::<ServiceMessage>(), Err(WireError::TooLarge(_))));
        }
    }
}
