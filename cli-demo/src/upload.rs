//! `courier upload`: one upload task (PUT unless `-X` says otherwise) from a file, from stdin
//! (`--file -`, streamed) or from `--data TEXT`; the response body goes to stdout.
//!
//! An upload the server offered to resume (the IETF resumable-upload draft) goes on by itself
//! after a lost connection; when it cannot go on now (Ctrl-C, or a failure past its resumptions),
//! its resume data is saved (`--save-resume-data FILE`, else `<file name>.courier-upload-resume` in
//! the current directory), and `courier upload --resume-data FILE` sends only the rest.

use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use courier_engine::reexports::http::Method;
use courier_engine::{ResumeData, Session, UploadBody, plain_file_name};

use crate::cli::Options;
use crate::common::{
    self, configuration, events_output, finish, note_data_naming_a_file, report, request,
    save_resume_data,
};
use crate::events::{CliDelegate, Finished, WriteOutTo};
use crate::progress::Progress;
use crate::{ExitCode, Failure};

/// What `courier upload` was asked to do.
pub(crate) struct Args {
    pub(crate) url: Option<String>,
    pub(crate) file: Option<PathBuf>,
    pub(crate) resume_data: Option<PathBuf>,
    pub(crate) save_resume_data: Option<PathBuf>,
}

/// What the upload sends.
enum Source {
    /// A new upload: the request and its body.
    New(Box<courier_engine::Request>, UploadBody),
    /// The rest of one its resume data describes, read from this file.
    Resumed(ResumeData, PathBuf),
}

/// Runs `courier upload`.
pub(crate) async fn run(args: Args, options: &Options) -> Result<ExitCode, Failure> {
    common::resume_data_outlives_the_session(
        options,
        args.resume_data.is_some() || args.save_resume_data.is_some(),
    )?;
    if let Some(path) = &args.save_resume_data {
        crate::download::check_directory_of(path)?;
    }
    let (source, label) = source(&args, options)?;
    let progress = Arc::new(Progress::new(options.quiet));
    let (mut delegate, mut finished, mut invalid) = CliDelegate::new(
        events_output(options)?,
        Box::new(BufWriter::new(io::stdout())),
        progress,
    );
    delegate.apply(options)?;
    delegate.write_out_to(options, WriteOutTo::Body);
    if matches!(&source, Source::New(_, UploadBody::Stream)) {
        delegate.set_upload_stream(Box::pin(tokio::io::stdin()));
    }
    let delegate = Arc::new(delegate);
    let session = Session::with_delegate(configuration(options)?, delegate.clone())?;
    let (task, resumed_from) = match source {
        Source::New(request, body) => {
            common::ftp_logins(&session, [request.url_str()], options);
            (session.upload_task(*request, body)?, None)
        }
        Source::Resumed(data, from) => (session.upload_task_with_resume_data(&data)?, Some(from)),
    };
    delegate.bars().add(task.info().id(), || label.clone());
    task.resume();

    let ctrl_c = crate::common::stop_requested();
    tokio::pin!(ctrl_c);
    let mut interrupted = false;
    let result = loop {
        tokio::select! {
            done = finished.recv() => break done,
            _ = &mut ctrl_c, if !interrupted => {
                interrupted = true;
                // The upload stops with resume data when its server offered to resume it.
                if let Some(data) = task.cancel_by_producing_resume_data().await {
                    keep_resume_data(&data, &args, &label, resumed_from.as_deref(), &delegate);
                }
            }
        }
    };
    if let Some(f) = &result {
        settle(f, &args, &label, resumed_from.as_deref(), &delegate);
    }
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

/// The upload asked for, and a label for its progress bar (and its resume data's name).
fn source(args: &Args, options: &Options) -> Result<(Source, String), Failure> {
    if let Some(path) = &args.resume_data {
        let blob = courier_storage::write::read_bounded(path)
            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
        let label = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let label = label
            .strip_suffix(RESUME_SUFFIX)
            .map(str::to_owned)
            .unwrap_or(label);
        return Ok((
            Source::Resumed(ResumeData::from_bytes(blob), path.clone()),
            label,
        ));
    }
    note_data_naming_a_file(options);
    let url = args.url.as_deref().unwrap_or_default();
    let mut request = request(url, options)?;
    // The body travels as the upload body, not as the request's.
    request.set_body(Vec::new());
    request.set_method(match &options.method {
        Some(_) => request.method().clone(),
        None => Method::PUT,
    });
    let (body, label) = match (&args.file, &options.data) {
        (Some(path), _) if path.as_os_str() == "-" => (UploadBody::Stream, "stdin".to_owned()),
        (Some(path), _) => (
            UploadBody::File(path.clone()),
            // One plain name: its resume data is saved under it, in the current directory.
            path.file_name()
                .map(|n| plain_file_name(&n.to_string_lossy()))
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "upload".to_owned()),
        ),
        (None, Some(text)) => (
            UploadBody::Bytes(text.clone().into_bytes().into()),
            "data".into(),
        ),
        (None, None) => {
            return Err(Failure::usage(
                "upload needs --file PATH (or - for stdin), --data TEXT or --resume-data FILE"
                    .into(),
            ));
        }
    };
    Ok((Source::New(Box::new(request), body), label))
}

/// The default resume-data file's suffix, after the upload's file name.
const RESUME_SUFFIX: &str = ".courier-upload-resume";

/// After the upload completed: a failure that left resume data saves it; a success removes the
/// resume-data file it went on from, which can serve nothing any more.
fn settle(
    f: &Finished,
    args: &Args,
    label: &str,
    resumed_from: Option<&Path>,
    delegate: &CliDelegate,
) {
    match &f.error {
        None => {
            if let Some(from) = resumed_from {
                let _ = std::fs::remove_file(from);
            }
        }
        // A cancel from Ctrl-C saved its data already.
        Some(e) if !e.is_cancelled() => {
            if let Some(data) = e.resume_data() {
                keep_resume_data(data, args, label, resumed_from, delegate);
            }
        }
        Some(_) => {}
    }
}

/// Saves an upload's resume data where `--save-resume-data` says, else over the file it went on
/// from, else as `<label>.courier-upload-resume` in the current directory.
fn keep_resume_data(
    data: &ResumeData,
    args: &Args,
    label: &str,
    resumed_from: Option<&Path>,
    delegate: &CliDelegate,
) {
    let path = match (&args.save_resume_data, resumed_from) {
        (Some(path), _) => path.clone(),
        (None, Some(from)) => from.to_path_buf(),
        (None, None) => PathBuf::from(format!("{label}{RESUME_SUFFIX}")),
    };
    save_resume_data(data, &path, delegate, "courier upload");
}
