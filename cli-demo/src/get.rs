//! `courier get`: one data task per URL in one session, bodies to stdout or a file. With
//! `--retry N`, a task that fails for a transient reason before any of its body was written is
//! tried again ([`Retries`]); one cut off mid-body is not (what was written cannot be taken back).

use std::collections::VecDeque;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::sync::Arc;

use courier_engine::Session;

use crate::cli::Options;
use crate::common::{self, configuration, events_output, finish, report};
use crate::events::{CliDelegate, Finished, Stdout};
use crate::progress::Progress;
use crate::request::{self, request};
use crate::retries::Retries;
use crate::{ExitCode, Failure};

/// The write buffer of `-o FILE` (standard output keeps the default, so that a body arriving
/// slowly is not held back longer).
const FILE_BUFFER: usize = 256 << 10;

/// Runs `courier get`.
pub(crate) async fn run(
    urls: Vec<String>,
    output: Option<std::path::PathBuf>,
    options: &Options,
) -> Result<ExitCode, Failure> {
    let urls = common::urls(urls, options)?;
    request::check_request_options(urls.first().map(String::as_str), options)?;
    let config = configuration(options)?;
    if let Some(path) = &output {
        crate::download::output_directory(path, options)?;
    }
    let body: Box<dyn Write + Send> = match &output {
        // A file takes the body in large writes: over HTTP/2 it comes in 8-16 KiB frames, and
        // 1 GiB in 8 KiB writes took 131,000 system calls on the delegate's thread.
        Some(path) => Box::new(BufWriter::with_capacity(
            FILE_BUFFER,
            common::create_output(path)
                .map_err(|e| Failure::usage(format!("cannot create {}: {e}", path.display())))?,
        )),
        None => Box::new(BufWriter::new(io::stdout())),
    };
    // Like curl, no bars over a body that goes to the terminal.
    let quiet = options.quiet || (output.is_none() && io::stdout().is_terminal());
    let (mut delegate, mut finished, mut invalid) = CliDelegate::new(
        events_output(options)?,
        body,
        Arc::new(Progress::new(quiet)),
    );
    delegate.apply(options)?;
    if let Some(form) = &options.form_stream {
        delegate.set_form_stream(form.clone());
    }
    if let Some(path) = &output {
        delegate.set_body_file(path.clone());
    }
    delegate.report_to(
        options,
        match output {
            Some(_) => Stdout::Apart,
            None => Stdout::Bodies,
        },
    )?;
    let delegate = Arc::new(delegate);
    let session = Session::with_delegate(config, delegate.clone())?;
    common::ftp_logins(&session, urls.iter().map(String::as_str), options);

    // Each URL with how often it was tried again (`--retry`).
    let mut waiting: VecDeque<(String, u32)> = urls.into_iter().map(|url| (url, 0)).collect();
    let mut running = 0usize;
    let retries = Retries::from(options);
    // With --retry (one task at a time), the running task's URL and how often it was tried again.
    let mut current: Option<(String, u32)> = None;
    let mut results: Vec<Finished> = Vec::new();
    let parallel = options.parallel.max(1);
    let mut interrupted = false;
    let mut output_failed = delegate.output_failed();
    let ctrl_c = crate::common::stop_requested();
    tokio::pin!(ctrl_c);
    loop {
        while running < parallel && !interrupted {
            let Some((url, tried)) = waiting.pop_front() else {
                break;
            };
            // A form streamed from its files goes as an upload task's body stream (URLSession's
            // `uploadTask(withStreamedRequest:)`), which the delegate hands out for each send.
            let task: courier_engine::Task = match &options.form_stream {
                Some(_) => session
                    .upload_task(request(&url, options)?, courier_engine::UploadBody::Stream)?
                    .into(),
                None => session.data_task(request(&url, options)?)?.into(),
            };
            if retries.most > 0 {
                if tried < retries.most {
                    delegate.set_retried_on_status(task.info().id());
                }
                current = Some((url, tried));
            }
            if parallel > 1 {
                // One output for every body: each goes out whole, in the order of the URLs.
                delegate.write_in_order(task.info().id());
            }
            delegate.bars().add(task.info().id(), || {
                crate::download::file_name_for(task.info().original_request().url_str())
            });
            task.resume();
            running += 1;
        }
        if running == 0 {
            break;
        }
        tokio::select! {
            done = finished.recv() => match done {
                Some(f) => {
                    let again = current
                        .take()
                        .and_then(|(url, tried)| Some((retries.wait(&f, tried)?, url, tried)));
                    if let Some((_, url, _)) = again.as_ref().filter(|_| f.body_written) {
                        delegate.bars().println(&format!(
                            "courier: {}: not tried again: part of its body was written already",
                            crate::common::shown_url(url)
                        ));
                    }
                    running -= 1;
                    if let Some((wait, url, tried)) = again.filter(|_| !f.body_written) {
                        delegate.bars().println(&retries.note(&url, &f, wait, tried));
                        tokio::select! {
                            // Started again by the loop, first of all.
                            () = tokio::time::sleep(wait) => waiting.push_front((url, tried + 1)),
                            _ = &mut ctrl_c => {
                                interrupted = true;
                                session.invalidate_and_cancel();
                                f.write_out();
                                results.push(f);
                            }
                        }
                        continue;
                    }
                    f.write_out();
                    results.push(f);
                }
                None => break,
            },
            _ = &mut ctrl_c, if !interrupted => {
                interrupted = true;
                session.invalidate_and_cancel();
            }
            // The output refused the body (a full disk, a closed pipe): nothing more can be kept.
            Ok(()) = output_failed.changed(), if !interrupted => {
                interrupted = true;
                session.invalidate_and_cancel();
            }
        }
    }
    finish(&session, &mut invalid).await;

    if let Some(failed) = common::output_refused(&output_failed, output.as_deref()) {
        return Ok(failed);
    }
    if interrupted {
        return Ok(ExitCode::Interrupted);
    }
    Ok(report(&results, options))
}
