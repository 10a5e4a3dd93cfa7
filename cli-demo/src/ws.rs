//! `courier ws URL`: a WebSocket task. Each line of stdin goes as a text message (`--binary`: a
//! binary one); each message received is printed on a line of its own (binary ones in hex). The
//! end of stdin closes with 1000 and waits for the server's close. Exit 0 after a normal closure,
//! 1 otherwise.

use std::io::Write;
use std::time::Duration;

use courier_engine::reexports::bytes::Bytes;
use courier_engine::{CloseCode, Message};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::cli::Options;
use crate::common::{BodilessSession, bodiless_session, finish, report};
use crate::request::{request, with_scheme};
use crate::{ExitCode, Failure};

/// Runs `courier ws`.
pub(crate) async fn run(
    url: String,
    protocols: Vec<String>,
    binary: bool,
    options: &Options,
) -> Result<ExitCode, Failure> {
    // Without a scheme, a WebSocket URL is `wss://`, as a request's is `https://`.
    let request = request(&with_scheme(&url, "wss"), options)?;
    let BodilessSession {
        delegate,
        session,
        mut finished,
        mut invalid,
    } = bodiless_session(options)?;
    let offered: Vec<&str> = protocols.iter().map(String::as_str).collect();
    let task = session.web_socket_task(request, &offered)?;
    let id = task.info().id();
    task.resume();

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let ctrl_c = crate::common::stop_requested();
    tokio::pin!(ctrl_c);
    let mut interrupted = false;
    let mut receiving = true;
    // A received message: its event once the open's is out, then its line.
    let show = |message: Message| {
        let delegate = delegate.clone();
        async move {
            delegate.opened(Duration::from_secs(5)).await;
            delegate.message_received(id, &message);
            print_message(&message);
        }
    };
    let result = loop {
        tokio::select! {
            line = lines.next_line(), if stdin_open => match line {
                Ok(Some(line)) => {
                    let message = if binary {
                        Message::Binary(Bytes::from(line.into_bytes()))
                    } else {
                        Message::Text(line)
                    };
                    // A failed send ends the task too: its completion says why.
                    let _ = task.send(message).await;
                }
                // The end of stdin: a normal closure, then the server's close is awaited.
                Ok(None) | Err(_) => {
                    stdin_open = false;
                    task.cancel_with(CloseCode::NormalClosure, None);
                }
            },
            received = task.receive(), if receiving => match received {
                Ok(message) => show(message).await,
                // The socket ended; its completion follows.
                Err(_) => receiving = false,
            },
            done = finished.recv() => {
                // The completion can come before the last messages are taken (the server's
                // echo, then its close): they are printed first. Once the socket has ended,
                // `receive` hands out what it holds and then fails, so this ends.
                while receiving {
                    match tokio::time::timeout(Duration::from_secs(5), task.receive()).await {
                        Ok(Ok(message)) => show(message).await,
                        _ => receiving = false,
                    }
                }
                break done;
            }
            _ = &mut ctrl_c, if !interrupted => {
                interrupted = true;
                task.cancel();
            }
        }
    };
    finish(&session, &mut invalid).await;
    if interrupted {
        return Ok(ExitCode::Interrupted);
    }
    // A failure is printed as every command prints it; a close other than a normal closure is
    // a failure too, said with the server's code and reason (quoted and escaped: it is the
    // server's text, on the user's terminal).
    let results: Vec<_> = result.into_iter().collect();
    Ok(match (report(&results, options), task.close_code()) {
        (ExitCode::Success, CloseCode::NormalClosure) => ExitCode::Success,
        (ExitCode::Success, code) => {
            let reason = task
                .close_reason()
                .filter(|r| !r.is_empty())
                .map(|r| format!(", reason {:?}", String::from_utf8_lossy(&r)))
                .unwrap_or_default();
            let name = match code {
                CloseCode::Other(_) => String::new(),
                named => format!(" ({named:?})"),
            };
            say!(
                "courier: the WebSocket closed with {}{name}{reason}, not a normal closure",
                code.code()
            );
            ExitCode::TaskFailed
        }
        (failed, _) => failed,
    })
}

/// A message on its own line: text as it is, binary in hex.
fn print_message(message: &Message) {
    let mut out = std::io::stdout().lock();
    let _ = match message {
        Message::Text(text) => writeln!(out, "{text}"),
        Message::Binary(bytes) => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            writeln!(out, "{hex}")
        }
    };
    let _ = out.flush();
}
