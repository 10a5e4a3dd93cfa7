//! `courier download`: download tasks, each file moved to its destination when it is complete.
//!
//! File names come from the URL's last path segment, sanitised to one plain name, so a download never
//! lands outside the output directory. Ctrl-C cancels every download by producing resume data and
//! saves it (`--save-resume-data FILE`, else `<output>.courier-resume`); so does a download that
//! fails part-way. `--resume-data FILE` continues from such a file, and so does the next
//! `courier download` of the same URL to the same file. A download that a killed `courier` left
//! part-way is continued by the next `courier download` of the same request. With `--retry N`, a
//! download that fails for a transient reason (the network's, or a server's "not now") is tried
//! again, from its resume data where it has some, after the wait the server asks for or a
//! doubling backoff ([`Retries`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use courier_engine::reexports::url::Url;
use courier_engine::{
    DownloadTask, ErrorCode, InterruptedDownload, Request, ResumeData, Session, plain_file_name,
};
use tokio::time::Instant;

use crate::cli::Options;
use crate::common::{self, configuration, events_output, finish, report, save_resume_data};
use crate::events::{CliDelegate, Finished, Stdout};
use crate::glob::{self, Globbed};
use crate::progress::Progress;
use crate::request::request;
use crate::retries::Retries;
use crate::{ExitCode, Failure};

/// What `courier download` was asked to do.
pub(crate) struct Args {
    pub(crate) urls: Vec<String>,
    pub(crate) output: Option<PathBuf>,
    pub(crate) resume_data: Option<PathBuf>,
    pub(crate) save_resume_data: Option<PathBuf>,
    /// `-J`: name files from the response (`Content-Disposition`) instead of the URL.
    pub(crate) remote_header_name: bool,
}

/// Where the files go.
enum Target {
    /// This file (one download, `-o FILE`).
    File(PathBuf),
    /// This directory, under names from the URLs.
    Dir(PathBuf),
    /// This name with `#1`, `#2`... in it, each filled with the value a pattern of the URL took
    /// (`-o "page_#1.html"` for `http://host/[1-9]`, as with curl).
    Named(PathBuf),
}

/// One download to start.
enum Job {
    /// A URL: it becomes a request as its task starts (a long list is not held as requests).
    /// The values its patterns took name its file under [`Target::Named`].
    Fresh(Globbed),
    Resume(ResumeData, PathBuf),
    /// A download tried again after a transient failure: from that attempt's resume data, or from
    /// the start.
    Again {
        url: String,
        data: Option<ResumeData>,
        destination: PathBuf,
        resumed_from: Option<PathBuf>,
        tried: u32,
    },
}

/// A download that is running.
struct Running {
    task: DownloadTask,
    destination: PathBuf,
    /// The resume-data file this download continues from (removed once it completes).
    resumed_from: Option<PathBuf>,
    /// Its URL, should it start over.
    url: String,
    /// How many times it was tried again already.
    tried: u32,
}

/// Runs `courier download`.
pub(crate) async fn run(args: Args, options: &Options) -> Result<ExitCode, Failure> {
    common::resume_data_outlives_the_session(
        options,
        args.resume_data.is_some() || args.save_resume_data.is_some(),
    )?;
    if args.output.as_ref().is_some_and(|o| o.as_os_str() == "-") {
        // Not a file named `-`: what curl's and wget's `-o -` mean is standard output.
        return Err(Failure::usage(
            "download saves files: for standard output, use courier get URL".into(),
        ));
    }
    let mut jobs: VecDeque<Job> = VecDeque::new();
    if let Some(path) = &args.resume_data {
        let blob = courier_storage::write::read_bounded(path)
            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
        jobs.push_back(Job::Resume(ResumeData::from_bytes(blob), path.clone()));
    }
    if !args.urls.is_empty() || options.input_file.is_some() || jobs.is_empty() {
        let urls = common::globbed_urls(args.urls.clone(), options)?;
        crate::request::check_request_options(urls.first().map(|g| g.url.as_str()), options)?;
        jobs.extend(urls.into_iter().map(Job::Fresh));
    }
    let several = jobs.len() > 1;
    if several && args.save_resume_data.is_some() {
        return Err(Failure::usage(
            "--save-resume-data names one file: give one download".into(),
        ));
    }
    if let Some(path) = &args.save_resume_data {
        check_directory_of(path)?;
    }
    // `-o NAME/` names a directory, as it does for several downloads (made when missing), even
    // for one: saving one download as the file `NAME/` could only fail, after the transfer.
    let names_dir = |p: &Path| p.as_os_str().as_encoded_bytes().ends_with(b"/");
    let globbed = jobs
        .iter()
        .any(|job| matches!(job, Job::Fresh(g) if !g.values.is_empty()));
    let target = match (&args.output, several) {
        (Some(p), _) if globbed && glob::names_values(&p.to_string_lossy()) => {
            // Every file's directory, checked (or made) before anything is fetched.
            let mut checked = HashSet::new();
            for job in &jobs {
                if let Job::Fresh(g) = job {
                    let file = PathBuf::from(glob::fill(&p.to_string_lossy(), &g.values));
                    if checked.insert(file.parent().map(Path::to_path_buf)) {
                        output_directory(&file, options)?;
                    }
                }
            }
            Target::Named(p.clone())
        }
        (Some(p), false) if !p.is_dir() && !names_dir(p) => {
            output_directory(p, options)?;
            Target::File(p.clone())
        }
        (Some(p), _) => {
            std::fs::create_dir_all(p)
                .map_err(|e| Failure::usage(format!("cannot create {}: {e}", p.display())))?;
            Target::Dir(p.clone())
        }
        (None, _) => Target::Dir(PathBuf::from(".")),
    };

    let progress = Arc::new(Progress::new(options.quiet));
    let (mut delegate, mut finished, mut invalid) =
        CliDelegate::new(events_output(options)?, Box::new(io::sink()), progress);
    delegate.apply(options)?;
    delegate.report_to(options, Stdout::Apart)?;
    let delegate = Arc::new(delegate);
    let session = Session::with_delegate(configuration(options)?, delegate.clone())?;
    let fresh = jobs.iter().filter_map(|job| match job {
        Job::Fresh(g) => Some(g.url.as_str()),
        Job::Resume(..) | Job::Again { .. } => None,
    });
    common::ftp_logins(&session, fresh, options);

    // Downloads that an earlier `courier` (or any session on this directory) left part-way when
    // it was killed: the same request continues from them, as `wget -c` would.
    let mut left_behind = if common::ephemeral(options) {
        Vec::new()
    } else {
        let session = session.clone();
        tokio::task::spawn_blocking(move || session.interrupted_downloads())
            .await
            .unwrap_or_default()
    };
    let mut used: HashSet<PathBuf> = HashSet::new();
    let mut running: HashMap<u64, Running> = HashMap::new();
    let mut results: Vec<Finished> = Vec::new();
    let mut interrupted = false;
    let retries = Retries::from(options);
    // Downloads waiting to be tried again (`--retry`), and when.
    let mut waiting: Vec<(Instant, Job)> = Vec::new();
    let parallel = options.parallel.max(1);
    let ctrl_c = crate::common::stop_requested();
    tokio::pin!(ctrl_c);
    loop {
        while running.len() < parallel && !interrupted {
            let Some(job) = jobs.pop_front() else {
                break;
            };
            let (task, resumed_from, destination, url, tried) = match job {
                Job::Fresh(Globbed { url, values }) => {
                    let request = request(&url, options)?;
                    let destination =
                        destination_in(&target, request.url_str(), &values, &mut used);
                    // Resume data that Ctrl-C (or a failure) saved for this file, then a download
                    // a killed `courier` left: the same request continues from either.
                    let saved = resume_path(&args, options, &destination)
                        .and_then(|path| saved_resume_data(&session, path, &request, &delegate));
                    let (task, resumed_from) = match saved {
                        Some((data, path)) => {
                            delegate.bars().println(&format!(
                                "courier: continuing {url} from the resume data in {}",
                                path.display()
                            ));
                            (session.download_task_with_resume_data(&data)?, Some(path))
                        }
                        None => match continue_interrupted(&session, &mut left_behind, &request) {
                            Some((data, at)) => {
                                delegate.bars().println(&format!(
                                    "courier: continuing the interrupted download of {url} from \
                                     {at} bytes"
                                ));
                                (session.download_task_with_resume_data(&data)?, None)
                            }
                            None => (session.download_task(request)?, None),
                        },
                    };
                    (task, resumed_from, destination, url, 0)
                }
                Job::Resume(data, from) => {
                    let task = session.download_task_with_resume_data(&data)?;
                    let url = task.info().original_request().url_str().to_owned();
                    let destination = destination_in(&target, &url, &[], &mut used);
                    (task, Some(from), destination, url, 0)
                }
                Job::Again {
                    url,
                    data,
                    destination,
                    resumed_from,
                    tried,
                } => {
                    // Resume data that can no longer continue (its partial file went): the
                    // download starts over.
                    let task = match data.map(|d| session.download_task_with_resume_data(&d)) {
                        Some(Ok(task)) => task,
                        _ => session.download_task(request(&url, options)?)?,
                    };
                    (task, resumed_from, destination, url, tried)
                }
            };
            match &target {
                Target::Dir(dir) if args.remote_header_name => {
                    delegate.set_destination_by_response(&task, dir.clone());
                }
                _ => delegate.set_destination(task.info().id(), destination.clone()),
            }
            if tried < retries.most {
                delegate.set_retried_on_status(task.info().id());
            }
            delegate.bars().add(task.info().id(), || {
                destination
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            task.resume();
            running.insert(
                task.info().id(),
                Running {
                    task,
                    destination,
                    resumed_from,
                    url,
                    tried,
                },
            );
        }
        if running.is_empty() && waiting.is_empty() {
            break;
        }
        let next_retry = waiting.iter().map(|(at, _)| *at).min();
        tokio::select! {
            done = finished.recv() => {
                let Some(f) = done else { break };
                let Some(r) = running.remove(&f.task) else {
                    f.write_out();
                    results.push(f);
                    continue;
                };
                match retries.wait(&f, r.tried).filter(|_| !interrupted) {
                    Some(wait) => {
                        delegate
                            .bars()
                            .println(&retries.note(&r.url, &f, wait, r.tried));
                        let job = Job::Again {
                            data: f.error.as_ref().and_then(|e| e.resume_data()).cloned(),
                            url: r.url,
                            destination: r.destination,
                            resumed_from: r.resumed_from,
                            tried: r.tried + 1,
                        };
                        waiting.push((Instant::now() + wait, job));
                    }
                    None => {
                        settle(&f, &r, &args, options, &delegate);
                        f.write_out();
                        results.push(f);
                    }
                }
            }
            _ = tokio::time::sleep_until(next_retry.unwrap_or_else(Instant::now)),
                if next_retry.is_some() && !interrupted =>
            {
                let now = Instant::now();
                let (due, later): (Vec<_>, Vec<_>) =
                    waiting.drain(..).partition(|(at, _)| *at <= now);
                waiting = later;
                jobs.extend(due.into_iter().map(|(_, job)| job));
            }
            _ = &mut ctrl_c, if !interrupted => {
                interrupted = true;
                // Each download stops with resume data where it can; their completions follow.
                for r in running.values() {
                    if let Some(data) = r.task.cancel_by_producing_resume_data().await {
                        keep_resume_data(&data, &r.destination, &args, options, &delegate);
                    }
                }
                // Those waiting to be tried again keep the resume data of their last attempt.
                for (_, job) in waiting.drain(..) {
                    if let Job::Again { data: Some(data), destination, .. } = job {
                        keep_resume_data(&data, &destination, &args, options, &delegate);
                    }
                }
            }
        }
    }
    finish(&session, &mut invalid).await;
    if interrupted {
        return Ok(ExitCode::Interrupted);
    }
    let mut code = report(&results, options);
    if results.iter().any(|f| matches!(&f.saved, Some(Err(_)))) {
        code = ExitCode::TaskFailed;
    }
    Ok(code)
}

/// Where the download of `url` goes: the one file, a name from the URL in the directory, or the
/// name its patterns' `values` fill in.
fn destination_in(
    target: &Target,
    url: &str,
    values: &[String],
    used: &mut HashSet<PathBuf>,
) -> PathBuf {
    match target {
        Target::File(p) => p.clone(),
        Target::Dir(dir) => unique(dir, &file_name_for(url), used),
        Target::Named(template) => {
            // Two URLs whose values fill the name alike (`-o "#1"` for `{a,b}/[1-2]`) get
            // numbered files, as two URLs of one name do in a directory.
            let file = PathBuf::from(glob::fill(&template.to_string_lossy(), values));
            let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            unique(&dir, &name, used)
        }
    }
}

/// The resume data saved at `path` (by Ctrl-C or a failure of an earlier run), when it continues
/// `request` and still can. Resume data that no longer can is named: removed when its partial file
/// went or changed, kept when it does not decode here (another data directory's, or damaged).
/// Resume data of another request is left alone.
fn saved_resume_data(
    session: &Session,
    path: PathBuf,
    request: &Request,
    delegate: &CliDelegate,
) -> Option<(ResumeData, PathBuf)> {
    if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
        return None;
    }
    let data = ResumeData::from_bytes(courier_storage::write::read_bounded(&path).ok()?);
    match session.check_resume_data(&data) {
        Ok(of) if of.url_str() == request.url_str() && of.method() == request.method() => {
            Some((data, path))
        }
        Ok(_) => None,
        Err(e) => {
            delegate.bars().println(&format!(
                "courier: {} cannot continue the download ({e}); starting over",
                path.display()
            ));
            // This directory's resume data whose partial file went or changed can serve nothing
            // any more. Data that does not decode here may be another data directory's: kept.
            if e.code() != ErrorCode::CannotDecodeRawData {
                let _ = std::fs::remove_file(&path);
            }
            None
        }
    }
}

/// Resume data for the interrupted download of `request` with the most bytes on disk, taken over
/// from `interrupted` (the others of that request are removed: they hold less of the same bytes),
/// and how many bytes it holds.
fn continue_interrupted(
    session: &Session,
    interrupted: &mut Vec<InterruptedDownload>,
    request: &Request,
) -> Option<(ResumeData, u64)> {
    let (same, others): (Vec<_>, Vec<_>) = std::mem::take(interrupted)
        .into_iter()
        .partition(|d| d.is_for(request));
    *interrupted = others;
    let mut same = same;
    same.sort_by_key(InterruptedDownload::bytes_on_disk);
    let mut taken = None;
    while let Some(best) = same.pop() {
        if let Ok(data) = session.take_over_download(&best) {
            taken = Some((data, best.bytes_on_disk()));
            break;
        }
    }
    for rest in same {
        session.discard_interrupted_download(rest);
    }
    taken
}

/// `-o FILE`: its missing directories made first under `--create-dirs` (curl's), then checked
/// ([`check_directory_of`]).
pub(crate) fn output_directory(file: &Path, options: &Options) -> Result<(), Failure> {
    if options.create_dirs
        && let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::usage(format!("cannot create {}: {e}", dir.display())))?;
    }
    check_directory_of(file)
}

/// Fails before anything is fetched when `file` cannot be written where it is asked for: its
/// directory must exist. A download's file is moved there only once complete, so without this a
/// mistyped `-o` would cost the whole transfer (`get -o` fails as early: it creates its file at
/// once; wget checks before it connects, curl fails on its first write).
pub(crate) fn check_directory_of(file: &Path) -> Result<(), Failure> {
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };

    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Failure::usage(format!(
            "cannot save {}: {} is not a directory",
            file.display(),
            dir.display()
        ))),
        Err(e) => Err(Failure::usage(format!(
            "cannot save {}: {}: {e}",
            file.display(),
            dir.display()
        ))),
    }
}

/// After a download completed: reports where its file went, or saves its resume data.
fn settle(f: &Finished, r: &Running, args: &Args, options: &Options, delegate: &CliDelegate) {
    match (&f.error, &f.saved) {
        (None, Some(Ok(path))) => {
            if let Some(from) = &r.resumed_from {
                // The download is whole: its resume data is stale now.
                let _ = std::fs::remove_file(from);
            }
            tracing::debug!(path = %path.display(), "saved");
        }
        (None, Some(Err(why))) => delegate.bars().println(&format!("courier: {why}")),
        (None, None) => {}
        // Stopped by its delegate at its first bytes: why, before the cancel's report.
        (Some(_), Some(Err(why))) => delegate.bars().println(&format!("courier: {why}")),
        (Some(e), _) => {
            // Cancellations from Ctrl-C saved theirs already.
            if let (Some(data), false) = (e.resume_data(), e.is_cancelled())
                && let Some(path) = resume_path(args, options, &r.destination)
            {
                save_resume_data(
                    data,
                    &path,
                    delegate,
                    "the same command, or with: courier download",
                );
            }
        }
    }
}

/// Saves the resume data of the download to `destination` where Ctrl-C saves it, or says why it
/// cannot be.
fn keep_resume_data(
    data: &ResumeData,
    destination: &Path,
    args: &Args,
    options: &Options,
    delegate: &CliDelegate,
) {
    match resume_path(args, options, destination) {
        Some(path) => save_resume_data(
            data,
            &path,
            delegate,
            "the same command, or with: courier download",
        ),
        None => delegate.bars().println(&format!(
            "courier: {} is not resumable: an ephemeral session keeps nothing on disk",
            destination.display()
        )),
    }
}

/// Where a download's resume data is saved: nowhere for an ephemeral session, whose resume data
/// names a partial file and is sealed with a key that both go with it when the command ends.
fn resume_path(args: &Args, options: &Options, destination: &Path) -> Option<PathBuf> {
    if common::ephemeral(options) {
        return None;
    }
    Some(args.save_resume_data.clone().unwrap_or_else(|| {
        let mut name = destination.as_os_str().to_owned();
        name.push(".courier-resume");
        PathBuf::from(name)
    }))
}

/// Keeps a finished download that could not be saved at `to` (a full disk, a directory in the
/// way): moved into `kept/` beside it in the session's directory (0700, as that directory), under
/// `to`'s name, or numbered (`a-2.bin`, [`unique`]'s way) when that is taken. [`move_into_place`] with
/// [`Existing::Keep`] never replaces a file kept earlier. `None` when even that fails.
///
/// [`move_into_place`]: courier_storage::write::move_into_place
/// [`Existing::Keep`]: courier_storage::write::Existing::Keep
pub(crate) fn keep_unsaved(location: &Path, to: &Path) -> Option<PathBuf> {
    use courier_storage::write::{Existing, move_into_place};
    let dir = location.parent()?.join("kept");
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.recursive(true).create(&dir).ok()?;
    let name = to
        .file_name()
        .map_or_else(|| "download".into(), |n| n.to_string_lossy().into_owned());
    (1..1000).find_map(|n| {
        let kept = match n {
            1 => dir.join(&name),
            n => dir.join(numbered(&name, n)),
        };
        match move_into_place(location, &kept, Existing::Keep) {
            Ok(()) => Some(Some(kept)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => None,
            Err(_) => Some(None),
        }
    })?
}

/// `dir/name`, or `dir/stem-2.ext`, `dir/stem-3.ext`... when another download of this command has
/// it: the number goes before the extension, which keeps saying what the file is (`a-2.bin`,
/// `src-2.tar.gz`).
pub(crate) fn unique(dir: &Path, name: &str, used: &mut HashSet<PathBuf>) -> PathBuf {
    let mut candidate = dir.join(name);
    let mut n = 2;
    while used.contains(&candidate) {
        candidate = dir.join(numbered(name, n));
        n += 1;
    }
    used.insert(candidate.clone());
    candidate
}

/// `name` with the number `n` before its extension: `a-2.bin`, `src-2.tar.gz`, `README-2`.
fn numbered(name: &str, n: u32) -> String {
    let (stem, extension) = split_extension(name);
    format!("{stem}-{n}{extension}")
}

/// `name` as its stem and its extension with the dot (empty when it has none): the last dot's,
/// or a compressed tarball's two (`.tar.gz`). A name that starts with its only dot has none.
fn split_extension(name: &str) -> (&str, &str) {
    const DOUBLE: [&str; 5] = [".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst", ".tar.lz"];
    let lower = name.to_ascii_lowercase();
    let at = DOUBLE
        .iter()
        .find(|d| lower.ends_with(*d) && lower.len() > d.len())
        .map(|d| name.len() - d.len())
        .or_else(|| name.rfind('.').filter(|&i| i > 0));
    match at {
        Some(i) => name.split_at(i),
        None => (name, ""),
    }
}

/// A file name for `url`: its last path segment, percent-decoded and reduced to one plain name (no
/// separators, no leading dots, no control characters), or `index.html` when there is none.
pub(crate) fn file_name_for(url: &str) -> String {
    let segment = Url::parse(url)
        .ok()
        .and_then(|u| {
            u.path_segments()
                .and_then(|mut s| s.next_back().map(str::to_owned))
        })
        .unwrap_or_default();
    let decoded = percent_encoding::percent_decode_str(&segment).decode_utf8_lossy();
    let name = plain_file_name(&decoded);
    if name.is_empty() {
        "index.html".to_owned()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_inside_the_output_directory() {
        assert_eq!(file_name_for("https://a.test/files/model.bin"), "model.bin");
        assert_eq!(
            file_name_for("https://a.test/files/model.bin?x=1#y"),
            "model.bin"
        );
        assert_eq!(file_name_for("https://a.test/"), "index.html");
        assert_eq!(file_name_for("https://a.test"), "index.html");
        assert_eq!(
            file_name_for("https://a.test/a/%2e%2e%2fetc%2fpasswd"),
            "_etc_passwd"
        );
        assert_eq!(file_name_for("https://a.test/..%2F..%2Fx"), "_.._x");
        assert_eq!(file_name_for("https://a.test/%2e%2e"), "index.html");
        assert_eq!(file_name_for("https://a.test/.bashrc"), "bashrc");
        assert_eq!(file_name_for("https://a.test/a%5Cb"), "a_b");
        assert_eq!(file_name_for("https://a.test/na%00me"), "na_me");
        assert_eq!(file_name_for("https://a.test/caf%C3%A9.txt"), "café.txt");
        assert_eq!(file_name_for("not a url"), "index.html");
        for hostile in ["%2F", "..", "...", "%2e", "a%2fb"] {
            let name = file_name_for(&format!("https://a.test/{hostile}"));
            assert!(
                !name.contains('/') && !name.starts_with('.'),
                "{hostile}: {name}"
            );
        }
    }

    #[test]
    fn names_are_unique_within_a_command() {
        let mut used = HashSet::new();
        let dir = Path::new("out");
        assert_eq!(unique(dir, "a.bin", &mut used), dir.join("a.bin"));
        assert_eq!(unique(dir, "a.bin", &mut used), dir.join("a-2.bin"));
        assert_eq!(unique(dir, "a.bin", &mut used), dir.join("a-3.bin"));
        for (name, second) in [
            ("src.tar.gz", "src-2.tar.gz"),
            ("v1.2.zip", "v1.2-2.zip"),
            ("README", "README-2"),
            ("bashrc", "bashrc-2"),
            ("tar.gz", "tar-2.gz"),
        ] {
            unique(dir, name, &mut used);
            assert_eq!(unique(dir, name, &mut used), dir.join(second), "{name}");
        }
    }
}
