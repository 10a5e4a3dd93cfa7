//! `courier stream HOST PORT`: a stream task, like netcat: stdin to the connection, the
//! connection to stdout, until both sides are closed. `--tls` starts TLS at once; with
//! `--starttls-after TEXT` the task first sends `--starttls-command` (default `STARTTLS`), prints
//! the server's lines until one contains TEXT, starts TLS with the session's trust, and only then
//! pipes stdin.

use std::io::Write;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::cli::Options;
use crate::common::{BodilessSession, bodiless_session, finish, report};
use crate::{ExitCode, Failure};

/// How long the STARTTLS dialogue may wait for the server's lines.
const DIALOGUE: Duration = Duration::from_secs(30);

/// What `courier stream` was asked.
pub(crate) struct Args {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: bool,
    pub(crate) starttls_after: Option<String>,
    pub(crate) starttls_command: String,
}

/// Runs `courier stream`.
pub(crate) async fn run(args: Args, options: &Options) -> Result<ExitCode, Failure> {
    let BodilessSession {
        session,
        mut finished,
        mut invalid,
        ..
    } = bodiless_session(options)?;
    let task = session.stream_task(&args.host, args.port)?;
    task.resume();

    // The opening: TLS at once, or after the server's go-ahead. A failure ends the task, whose
    // completion says why.
    let opened = async {
        if let Some(text) = &args.starttls_after {
            task.write(format!("{}\r\n", args.starttls_command), DIALOGUE)
                .await?;
            let mut seen = String::new();
            while !seen.lines().any(|l| l.contains(text.as_str())) {
                let (bytes, eof) = task.read(1, 4096, DIALOGUE).await?;
                let text = String::from_utf8_lossy(&bytes);
                print_out(text.as_bytes());
                seen.push_str(&text);
                if eof {
                    break;
                }
            }
            task.start_secure_connection().await?;
        } else if args.tls {
            task.start_secure_connection().await?;
        }
        Ok::<(), courier_engine::Error>(())
    };
    let mut stdin_open = opened.await.is_ok();
    if !stdin_open {
        task.cancel();
    }

    // The connection to stdout, in a task of its own: a read stays awaited until it resolves.
    let printing = {
        let task = task.clone();
        tokio::spawn(async move {
            while let Ok((bytes, eof)) = task
                .read(1, 64 * 1024, Duration::from_secs(24 * 3600))
                .await
            {
                print_out(&bytes);
                if eof {
                    break;
                }
            }
        })
    };
    let mut stdin = tokio::io::stdin();
    let mut chunk = vec![0u8; 16 * 1024];
    let ctrl_c = crate::common::stop_requested();
    tokio::pin!(ctrl_c);
    let mut interrupted = false;
    let result = loop {
        tokio::select! {
            n = stdin.read(&mut chunk), if stdin_open => match n {
                Ok(0) | Err(_) => {
                    stdin_open = false;
                    task.close_write();
                }
                Ok(n) => {
                    // A failed write ends the task too: its completion says why.
                    let _ = task.write(chunk[..n].to_vec(), DIALOGUE).await;
                }
            },
            done = finished.recv() => break done,
            _ = &mut ctrl_c, if !interrupted => {
                interrupted = true;
                task.cancel();
            }
        }
    };
    // Everything read before the end is printed.
    let _ = tokio::time::timeout(DIALOGUE, printing).await;
    finish(&session, &mut invalid).await;
    if interrupted {
        return Ok(ExitCode::Interrupted);
    }
    Ok(report(&result.into_iter().collect::<Vec<_>>(), options))
}

fn print_out(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes);
    let _ = out.flush();
}
