//! Black-box tests of `courier download`: files named from the URL or by the server (`-J`), inside
//! the output directory and never over an existing file; downloads side by side. Stopping and
//! continuing downloads is `continuing.rs`.

mod common;

use common::*;
use courier_tests::TestServer;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_saves_the_file_under_its_url_name_with_progress_events() {
    let server = courier_tests::ResourceServer::start(1024 * 1024 + 7).await;
    let (cwd, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let url = server.url();
    let (c, d) = (cwd.path().to_path_buf(), data.path().to_path_buf());
    let out = tokio::task::spawn_blocking(move || {
        courier_in(&c, &d, &["download", &url, "--allow-http", "--events", "-"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_success(&out);
    let saved = std::fs::read(cwd.path().join("resource.bin")).unwrap();
    assert!(saved == server.content(), "the saved file is the resource");
    let ev = stderr_events(&out);
    let n = names(&ev);
    let last_write = ev
        .iter()
        .rfind(|e| e["event"] == "did_write_data")
        .expect("did_write_data");
    assert_eq!(last_write["total_bytes_written"], 1024 * 1024 + 7);
    assert_eq!(last_write["total_bytes_expected_to_write"], 1024 * 1024 + 7);
    let finish = n
        .iter()
        .position(|e| e == "did_finish_downloading_to")
        .unwrap();
    let complete = n.iter().position(|e| e == "did_complete").unwrap();
    assert!(finish < complete);
    assert_eq!(ev[complete]["error"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_url_names_never_leave_the_output_directory() {
    let server = courier_tests::ResourceServer::start(1000).await;
    let root = tempfile::tempdir().unwrap();
    let out_dir = root.path().join("out");
    let data = tempfile::tempdir().unwrap();
    let base = server.url().replace("/files/resource.bin", "");
    let urls = [
        format!("{base}/a/..%2F..%2Fescape.bin"),
        format!("{base}/%2e%2e"),
        format!("{base}/.hidden"),
    ];
    let (o, d, r) = (
        out_dir.clone(),
        data.path().to_path_buf(),
        root.path().to_path_buf(),
    );
    let out = tokio::task::spawn_blocking(move || {
        let mut args = vec!["download", "--allow-http", "-o", o.to_str().unwrap()];
        args.extend(urls.iter().map(String::as_str));
        courier_in(&r, &d, &args).output().unwrap()
    })
    .await
    .unwrap();
    assert_success(&out);
    let mut names: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["_.._escape.bin", "hidden", "index.html"]);
    let mut top: Vec<String> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["out"], "nothing written beside the output directory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_downloads_land_in_the_output_directory() {
    let server = courier_tests::ResourceServer::start(300_000).await;
    let (cwd, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let base = server.url().replace("/files/resource.bin", "");
    let urls: Vec<String> = ["a.bin", "b.bin", "c.bin", "a.bin"]
        .iter()
        .map(|n| format!("{base}/{n}"))
        .collect();
    let (c, d) = (cwd.path().to_path_buf(), data.path().to_path_buf());
    let out = tokio::task::spawn_blocking(move || {
        let mut args = vec![
            "download",
            "-j",
            "3",
            "--limit-rate",
            "50m",
            "-o",
            "out",
            "--allow-http",
            "--events",
            "-",
        ];
        args.extend(urls.iter().map(String::as_str));
        courier_in(&c, &d, &args).output().unwrap()
    })
    .await
    .unwrap();
    assert_success(&out);
    let ev = stderr_events(&out);
    let completes = ev.iter().filter(|e| e["event"] == "did_complete").count();
    assert_eq!(completes, 4);
    let mut names: Vec<String> = std::fs::read_dir(cwd.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["a-2.bin", "a.bin", "b.bin", "c.bin"]);
    for n in &names {
        let bytes = std::fs::read(cwd.path().join("out").join(n)).unwrap();
        assert!(bytes == server.content(), "{n}");
    }
    // Three at once: the fourth task starts only after one of the first three completed.
    let started: Vec<u64> = ev
        .iter()
        .filter(|e| e["event"] == "state" && e["to"] == "running")
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    let first_complete = ev
        .iter()
        .find(|e| e["event"] == "did_complete")
        .and_then(|e| e["seq"].as_u64())
        .unwrap();
    assert_eq!(started.len(), 4);
    assert!(started[..3].iter().all(|s| *s < first_complete));
    assert!(started[3] > first_complete);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_header_name_takes_the_servers_file_name_inside_the_output_directory() {
    let server = TestServer::http().await;
    let named = server.url("/disposition?value=attachment%3B%20filename%3D%22report.pdf%22");
    let hostile =
        server.url("/disposition?value=attachment%3B%20filename%3D%22..%2F..%2Fescape.txt%22");
    let (root, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let out_dir = root.path().join("out");
    let (r, d, o) = (
        root.path().to_path_buf(),
        data.path().to_path_buf(),
        out_dir.clone(),
    );
    let (with_j, without_j) = tokio::task::spawn_blocking(move || {
        let o = o.to_str().unwrap();
        let with_j = courier_in(
            &r,
            &d,
            &[
                "download",
                "-OJ",
                "--allow-http",
                "-q",
                "-o",
                o,
                &named,
                &hostile,
            ],
        )
        .output()
        .unwrap();
        let without_j = courier_in(&r, &d, &["download", "--allow-http", "-q", &named])
            .output()
            .unwrap();
        (with_j, without_j)
    })
    .await
    .unwrap();
    assert_success(&with_j);
    assert_success(&without_j);
    let mut names: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["_.._escape.txt", "report.pdf"]);
    assert!(
        !root.path().join("escape.txt").exists(),
        "nothing outside -o"
    );
    assert_eq!(
        std::fs::read(root.path().join("disposition")).unwrap(),
        b"attached",
        "without -J the name comes from the URL"
    );
}

/// Asserts the command failed, refusing a name its server chose `times` times.
fn assert_refused(out: &std::process::Output, times: usize) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stderr.matches("refusing to overwrite").count(),
        times,
        "{stderr}"
    );
}

/// `-J` looks at the name the server suggests at the download's first bytes: a file that has it
/// stops the download there (as curl -OJ stops at its first write), not after the whole body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_header_name_that_is_taken_stops_the_download_at_its_first_bytes() {
    const SIZE: u64 = 8_000_000;
    let server = TestServer::http().await;
    // Paced: 8 MB at 64 KiB every 20 ms, about 2.5 s for the whole body.
    let url = server.url(&format!(
        "/resource/{SIZE}?chunk=65536&delay_ms=20&name=model.bin"
    ));
    // The output directory is the command's own directory, where a file has the name already.
    let (cwd, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(cwd.path().join("model.bin"), b"precious").unwrap();
    let (c, d) = (cwd.path().to_path_buf(), data.path().to_path_buf());
    let out = tokio::task::spawn_blocking(move || {
        let args = [
            "download",
            "-J",
            "--allow-http",
            "-q",
            "--events",
            "-",
            &url,
        ];
        courier_in(&c, &d, &args).output().unwrap()
    })
    .await
    .unwrap();
    assert_refused(&out, 1);
    assert_eq!(
        std::fs::read(cwd.path().join("model.bin")).unwrap(),
        b"precious"
    );
    let ev = events(&out);
    let written = ev
        .iter()
        .filter(|e| e["event"] == "did_write_data")
        .filter_map(|e| e["total_bytes_written"].as_u64())
        .max()
        .expect("some bytes came before the name was looked at");
    assert!(written < SIZE, "stopped at {written} of {SIZE} bytes");
    let complete = ev.iter().find(|e| e["event"] == "did_complete").unwrap();
    assert_eq!(complete["error"]["code"], "cancelled", "{complete}");
    assert!(
        courier_tests::session_files(&data.path().join("courier/sessions/default")).is_empty(),
        "no download is left behind"
    );
}

/// `-J` never replaces a file (curl CVE-2020-8177): a name the server chose that exists already,
/// or a link planted under it, is refused with a clear error, and the file is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_cve_2020_8177_remote_header_name_never_replaces_an_existing_file() {
    let server = TestServer::http().await;
    let named = server.url("/disposition?value=attachment%3B%20filename%3D%22.bashrc%22");
    let linked = server.url("/disposition?value=attachment%3B%20filename%3D%22notes.txt%22");
    let (root, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let out_dir = root.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    // `.bashrc` is sanitised to `bashrc`: put a precious file there, and a link at `notes.txt`.
    std::fs::write(out_dir.join("bashrc"), b"precious").unwrap();
    let victim = root.path().join("victim");
    std::fs::write(&victim, b"also precious").unwrap();
    std::os::unix::fs::symlink(&victim, out_dir.join("notes.txt")).unwrap();
    let (r, d, o) = (
        root.path().to_path_buf(),
        data.path().to_path_buf(),
        out_dir.clone(),
    );
    let out = tokio::task::spawn_blocking(move || {
        let o = o.to_str().unwrap();
        courier_in(
            &r,
            &d,
            &[
                "download",
                "-J",
                "--allow-http",
                "-q",
                "-o",
                o,
                &named,
                &linked,
            ],
        )
        .output()
        .unwrap()
    })
    .await
    .unwrap();
    assert_refused(&out, 2);
    assert_eq!(std::fs::read(out_dir.join("bashrc")).unwrap(), b"precious");
    assert_eq!(std::fs::read(&victim).unwrap(), b"also precious");
    assert!(
        std::fs::symlink_metadata(out_dir.join("notes.txt"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link is left as it was"
    );
    assert!(
        courier_tests::session_files(&data.path().join("courier/sessions/default")).is_empty(),
        "no download is left behind"
    );
}

/// A saved download is made as any new file is, under the user's umask (curl and wget do the
/// same): 0600 under `umask 077`, where a private download must not become readable by others,
/// and 0644 under the usual 022.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_download_follows_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::http().await;
    let url = server.url("/bytes/1000");
    let (cwd, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (c, d) = (cwd.path().to_path_buf(), data.path().to_path_buf());
    let modes = tokio::task::spawn_blocking(move || {
        ["077", "022"].map(|umask| {
            let out = c.join(format!("under-{umask}"));
            let status = std::process::Command::new("sh")
                .args(["-c", &format!("umask {umask}; exec \"$0\" \"$@\"")])
                .arg(env!("CARGO_BIN_EXE_courier"))
                .args(["download", "-q", "--allow-http", &url, "-o"])
                .arg(&out)
                .env("XDG_DATA_HOME", &d)
                .status()
                .unwrap();
            assert!(status.success());
            std::fs::metadata(&out).unwrap().permissions().mode() & 0o777
        })
    })
    .await
    .unwrap();
    assert_eq!(modes, [0o600, 0o644]);
}

/// `-o NAME/` names a directory even for one download: made when missing, the file saved in it
/// under the URL's name. (It was taken as the file `NAME/`: the transfer ran, then saving failed
/// with "Not a directory".)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_ending_in_a_slash_is_a_directory_for_one_download_too() {
    let server = courier_tests::ResourceServer::start(1000).await;
    let (cwd, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let url = server.url();
    let (c, d) = (cwd.path().to_path_buf(), data.path().to_path_buf());
    let out = tokio::task::spawn_blocking(move || {
        let args = ["download", "--allow-http", "-q", "-o", "fresh/", &url];
        courier_in(&c, &d, &args).output().unwrap()
    })
    .await
    .unwrap();
    assert_success(&out);
    let saved = std::fs::read(cwd.path().join("fresh/resource.bin")).unwrap();
    assert_eq!(saved.len(), 1000);
}

/// A finished download that cannot be saved where it goes (here a directory has its name; a full
/// disk is the usual cause) is not lost: exit 1, and the error names where it is kept, in the
/// session's directory, whole. A second one is kept beside it, replacing nothing. In an ephemeral
/// session, which keeps nothing on disk, it goes, and the error says only why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_that_cannot_be_saved_is_kept_and_said_where() {
    let server = courier_tests::ResourceServer::start(50_000).await;
    let (cwd, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::create_dir_all(cwd.path().join("out/resource.bin")).unwrap();
    let url = server.url();
    let (c, d) = (cwd.path().to_path_buf(), data.path().to_path_buf());
    let runs = tokio::task::spawn_blocking(move || {
        let run = |config: &str| {
            let args = [
                "--config",
                config,
                "download",
                "--allow-http",
                "-q",
                "-o",
                "out/",
                &url,
            ];
            courier_in(&c, &d, &args).output().unwrap()
        };
        [run("default"), run("default"), run("ephemeral")]
    })
    .await
    .unwrap();
    let kept: Vec<std::path::PathBuf> = runs[..2]
        .iter()
        .map(|out| {
            assert_eq!(out.status.code(), Some(1));
            let said = String::from_utf8_lossy(&out.stderr);
            let (why, kept) = said
                .trim_end()
                .split_once("; the download is kept at ")
                .unwrap_or_else(|| panic!("{said}"));
            assert!(why.ends_with("Is a directory (os error 21)"), "{said}");
            kept.into()
        })
        .collect();
    assert_ne!(kept[0], kept[1], "the second replaces nothing");
    for kept in &kept {
        use std::os::unix::fs::PermissionsExt;
        assert!(kept.starts_with(data.path()), "{}", kept.display());
        let dir = std::fs::metadata(kept.parent().unwrap()).unwrap();
        assert_eq!(
            dir.permissions().mode() & 0o777,
            0o700,
            "private, as the session's"
        );
        assert_eq!(std::fs::read(kept).unwrap(), server.content());
    }
    let said = String::from_utf8_lossy(&runs[2].stderr);
    assert_eq!(runs[2].status.code(), Some(1));
    assert!(
        said.contains("Is a directory") && !said.contains("kept"),
        "{said}"
    );
}

/// Files that options name are read bounded: a resume-data file at most 64 MiB, a PEM file at
/// most 16 MiB. `/dev/zero` given as either is refused with exit 2 after that much; it was read
/// until the memory ran out.
#[test]
fn a_file_an_option_names_is_read_bounded() {
    let runs: [&[&str]; 2] = [
        &["download", "--resume-data", "/dev/zero"],
        &["get", "--cacert", "/dev/zero", "https://127.0.0.1:1/"],
    ];
    for args in runs {
        let out = courier(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains("grew too large") || said.contains("larger than 16 MiB"),
            "{args:?}: {said}"
        );
    }
}

/// `-o` naming a FIFO, or a link to the process's own standard output (what `/dev/stdout` is):
/// the bytes go into it, as with curl, and it stays what it was. Both were replaced by a regular
/// file, and as root `-o /dev/null` or `-o /dev/stdout` would have replaced the machine's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_that_is_a_fifo_or_the_commands_stdout_is_written_into_not_replaced() {
    use std::os::unix::fs::FileTypeExt;
    let server = TestServer::http().await;
    let url = server.url("/bytes/70000");
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let stdout = dir.path().join("stdout");
    std::os::unix::fs::symlink("/proc/self/fd/1", &stdout).unwrap();
    let (f, s) = (fifo.clone(), stdout.clone());
    let (read, got, downloaded) = tokio::task::spawn_blocking(move || {
        let reading = f.clone();
        let reader = std::thread::spawn(move || std::fs::read(reading).unwrap());
        // A writer held open until courier is done: the reader is there, and its end comes after.
        let held = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
        let got = courier(&["get", "--allow-http", "-o", f.to_str().unwrap(), &url]);
        drop(held);
        let downloaded = courier_in(
            s.parent().unwrap(),
            data_home(),
            &["download", "--allow-http", "-o", s.to_str().unwrap(), &url],
        )
        .output()
        .unwrap();
        (reader.join().unwrap(), got, downloaded)
    })
    .await
    .unwrap();
    assert_success(&got);
    assert_eq!(read, courier_tests::server::pattern_bytes(0, 70_000));
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_success(&downloaded);
    assert_eq!(
        downloaded.stdout,
        courier_tests::server::pattern_bytes(0, 70_000),
        "the download went to the command's standard output"
    );
    assert!(
        std::fs::symlink_metadata(&stdout)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}
