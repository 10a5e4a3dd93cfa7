//! `courier upload`: one upload task (PUT unless `-X` says otherwise) from a file, from stdin
//! (`--file -`, streamed) or from `--data TEXT`; the response body goes to stdout.

use std::io::{self, BufWriter};
use std::path::PathBuf;
use std::sync::Arc;

use courier_engine::reexports::http::Method;
use courier_engine::{Session, UploadBody};

use crate::cli::Options;
use crate::common::{
    configuration, events_output, finish, note_data_naming_a_file, report, request,
};
use crate::events::CliDelegate;
use crate::progress::Progress;
use crate::{ExitCode, Failure};

/// Runs `courier upload`.
pub(crate) async fn run(
    url: String,
    file: Option<PathBuf>,
    options: &Options,
) -> Result<ExitCode, Failure> {
    note_data_naming_a_file(options);
    let mut request = request(&url, options)?;
    // The body travels as the upload body, not as the request's.
    request.set_body(Vec::new());
    request.set_method(match &options.method {
        Some(_) => request.method().clone(),
        None => Method::PUT,
    });
    let (body, label) = match (&file, &options.data) {
        (Some(path), _) if path.as_os_str() == "-" => (UploadBody::Stream, "stdin".to_owned()),
        (Some(path), _) => (UploadBody::File(path.clone()), path.display().to_string()),
        (None, Some(text)) => (
            UploadBody::Bytes(text.clone().into_bytes().into()),
            "data".into(),
        ),
        (None, None) => {
            return Err(Failure::usage(
                "upload needs --file PATH (or - for stdin) or --data TEXT".into(),
            ));
        }
    };
    let progress = Arc::new(Progress::new(options.quiet));
    let (mut delegate, mut finished, mut invalid) = CliDelegate::new(
        events_output(options)?,
        Box::new(BufWriter::new(io::stdout())),
        progress,
    );
    delegate.apply(options)?;
    if matches!(body, UploadBody::Stream) {
        delegate.set_upload_stream(Box::pin(tokio::io::stdin()));
    }
    let delegate = Arc::new(delegate);
    let session = Session::with_delegate(configuration(options)?, delegate.clone())?;
    crate::common::ftp_logins(&session, [url.as_str()], options);
    let task = session.upload_task(request, body)?;
    delegate.bars().add(task.info().id(), || label);
    task.resume();

    let ctrl_c = crate::common::stop_requested();
    tokio::pin!(ctrl_c);
    let mut interrupted = false;
    let result = loop {
        tokio::select! {
            done = finished.recv() => break done,
            _ = &mut ctrl_c, if !interrupted => {
                interrupted = true;
                task.cancel();
            }
        }
    };
    finish(&session, &mut invalid).await;
    let failed = delegate.output_failed();
    if let Some(failed) = crate::common::output_refused(&failed, None) {
        return Ok(failed);
    }
    if interrupted {
        return Ok(ExitCode::Interrupted);
    }
    Ok(report(&result.into_iter().collect::<Vec<_>>(), options))
}
