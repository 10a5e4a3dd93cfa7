//! `courier upload`: one upload task (PUT unless `-X` says otherwise) from a file, from stdin
//! (`--file -`, streamed; a file given as stdin goes as that file) or from `--data TEXT`; the
//! response body goes to stdout. A file sent to a URL ending in `/` goes into that directory under
//! its own name, as curl's `-T` sends it.
//!
//! An upload the server offered to resume (the IETF resumable-upload draft) goes on by itself
//! after a lost connection; when it cannot go on now (Ctrl-C, or a failure past its resumptions),
//! its resume data is saved (`--save-resume-data FILE`, else `<file name>.courier-upload-resume` in
//! the current directory), and `courier upload --resume-data FILE` sends only the rest. So does
//! the same command run again: it goes on from the resume data it finds where it would save its
//! own, when that data is of the same upload (method, URL, and the same file unchanged or the same
//! bytes).

use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use courier_engine::reexports::http::Method;
use courier_engine::{ErrorCode, ResumeData, Session, UploadBody, plain_file_name};

use crate::cli::Options;
use crate::common::{self, configuration, events_output, finish, report, save_resume_data};
use crate::events::{CliDelegate, Finished, Stdout};
use crate::progress::Progress;
use crate::request::{note_data_naming_a_file, request};
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
    delegate.report_to(options, Stdout::Bodies)?;
    if matches!(&source, Source::New(_, UploadBody::Stream)) {
        delegate.set_upload_stream(Box::pin(tokio::io::stdin()));
    }
    let delegate = Arc::new(delegate);
    let session = Session::with_delegate(configuration(options)?, delegate.clone())?;
    let source = match source {
        Source::New(request, body) => {
            match interrupted(&session, &request, &body, &args, &label, &delegate) {
                Some((data, from)) => {
                    delegate.bars().println(&format!(
                    "courier: continuing the interrupted upload of {label} (its resume data: {})",
                    from.display()
                ));
                    Source::Resumed(data, from)
                }
                None => Source::New(request, body),
            }
        }
        resumed => resumed,
    };
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
    // A stdin that is a file is uploaded as that file (see `stdin_file`).
    let file = match args.file.as_deref() {
        Some(path) if path.as_os_str() == "-" => stdin_file().or(Some(path.to_owned())),
        other => other.map(Path::to_owned),
    };
    let (body, label) = match (&file, &options.data_text) {
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
    // `-T FILE URL/`: the URL names a directory, and the file goes into it under its own name.
    if let Some(named) = args.file.as_deref().filter(|f| f.as_os_str() != "-") {
        into_directory(&mut request, named);
    }
    Ok((Source::New(Box::new(request), body), label))
}

/// A URL whose path ends in `/` names a directory: the upload of `file` goes to that directory
/// under the file's own name, percent-encoded (`-T a.txt ftp://host/dir/` stores `dir/a.txt`), as
/// curl sends it. Any other URL is the upload's target as it is.
fn into_directory(request: &mut courier_engine::Request, file: &Path) {
    let (Some(url), Some(name)) = (request.url(), file.file_name()) else {
        return;
    };
    if !url.path().ends_with('/') {
        return;
    }
    let mut url = url.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().push(&name.to_string_lossy());
    }
    request.set_url(url);
}

/// Stdin's file, when stdin is a regular file read from its start (`courier upload -T - < FILE`).
///
/// A stream cannot be sent twice, so a streamed upload that meets a 307, a 308 or a challenge after
/// its body went out fails with -1021. A file can: it is sent by its path, as `-T FILE` is (with
/// its length, and resumable), as curl rewinds a stdin it can seek. The path is the one stdin's
/// descriptor names, and is taken only while it still names the same file.
fn stdin_file() -> Option<PathBuf> {
    use std::io::Seek;
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let stdin = std::fs::File::from(io::stdin().as_fd().try_clone_to_owned().ok()?);
    let meta = stdin.metadata().ok()?;
    if !meta.is_file() || (&stdin).stream_position().ok()? != 0 {
        return None;
    }
    let path = std::fs::canonicalize("/dev/stdin").ok()?;
    let named = std::fs::metadata(&path).ok()?;
    (named.dev() == meta.dev() && named.ino() == meta.ino()).then_some(path)
}

/// The default resume-data file's suffix, after the upload's file name.
const RESUME_SUFFIX: &str = ".courier-upload-resume";

/// Where this upload's resume data goes when it cannot go on now: `--save-resume-data`, else
/// `<label>.courier-upload-resume` in the current directory.
fn resume_data_path(args: &Args, label: &str) -> PathBuf {
    args.save_resume_data
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{label}{RESUME_SUFFIX}")))
}

/// The resume data an earlier run of the same command left where this one would save its own
/// (Ctrl-C, a failure), when it goes on with this very upload: the same method and URL, and the
/// same body (the same file, unchanged since, or the same bytes). Resume data of another upload
/// is left as it is, and the upload starts over; so does one whose file changed or is gone, which
/// can never go on and is removed.
fn interrupted(
    session: &Session,
    request: &courier_engine::Request,
    body: &UploadBody,
    args: &Args,
    label: &str,
    delegate: &CliDelegate,
) -> Option<(ResumeData, PathBuf)> {
    if matches!(body, UploadBody::Stream) {
        return None;
    }
    let path = resume_data_path(args, label);
    let blob = courier_storage::write::read_bounded(&path).ok()?;
    let data = ResumeData::from_bytes(blob);
    let (kept_request, kept_body) = match session.check_upload_resume_data(&data) {
        Ok(checked) => checked,
        Err(e)
            if matches!(
                e.code(),
                ErrorCode::FileDoesNotExist | ErrorCode::CannotOpenFile
            ) =>
        {
            delegate.bars().println(&format!(
                "courier: removed {}: the upload it goes on with cannot go on ({})",
                path.display(),
                match e.code() {
                    ErrorCode::FileDoesNotExist => "its file is gone",
                    _ => "its file changed",
                }
            ));
            let _ = std::fs::remove_file(&path);
            return None;
        }
        Err(_) => return None,
    };
    let same_body = match (&kept_body, body) {
        (UploadBody::File(kept), UploadBody::File(file)) => {
            // The data keeps an absolute path; a link or `..` may name the same file otherwise.
            std::fs::canonicalize(kept).ok() == std::fs::canonicalize(file).ok()
        }
        (UploadBody::Bytes(kept), UploadBody::Bytes(bytes)) => kept == bytes,
        _ => false,
    };
    (same_body
        && kept_request.method() == request.method()
        && kept_request.url_str() == request.url_str())
    .then_some((data, path))
}

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
        (None, Some(from)) => from.to_path_buf(),
        _ => resume_data_path(args, label),
    };
    save_resume_data(data, &path, delegate, "courier upload");
}
