//! Black-box tests of conditional transfers against a real nginx, as an update script makes them
//! with curl: `-z`, `--etag-compare`, `--etag-save`, `-R`, and a 304 to a download, which leaves
//! the file you have as it is.

mod common;

use std::time::{Duration, SystemTime};

use common::*;

/// `get -o FILE -R --etag-save TAG` saves the body with the server's time and tag; then
/// `--etag-compare TAG` and `-z FILE` are answered 304 and leave FILE as it is (its bytes and its
/// time), where a plain `get -o` would have emptied it; `-z` with an older date fetches it again;
/// a download of your own `If-None-Match` answered 304 keeps the file too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_304_keeps_the_file_you_have_as_curl_does() {
    if courier_tests::Nginx::binary().is_none() {
        eprintln!("nginx is not installed (tests/run.sh installs it): skipped");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let served = root.path().join("f.bin");
    courier_tests::write_random_file(&served, 100_000, 7).unwrap();
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    std::fs::File::options()
        .write(true)
        .open(&served)
        .unwrap()
        .set_modified(when)
        .unwrap();
    let content = std::fs::read(&served).unwrap();
    let nginx = courier_tests::Nginx::start(root.path()).expect("nginx starts");
    let url = nginx.url("/f.bin");
    let (cwd, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (c, d) = (cwd.path().to_path_buf(), data.path().to_path_buf());
    let saved = cwd.path().join("f.bin");
    let mtime = |p: &std::path::Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let run = move |extra: &[&str]| {
        let mut args = vec!["get", "-s", "--allow-http", "-w", "%{http_code}"];
        args.extend(extra);
        args.push(&url);
        let out = courier_in(&c, &d, &args).output().unwrap();
        assert_success(&out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let run = move |extra: &'static [&'static str]| {
        let run = run.clone();
        async move {
            tokio::task::spawn_blocking(move || run(extra))
                .await
                .unwrap()
        }
    };

    assert_eq!(
        run(&["-o", "f.bin", "-R", "--etag-save", "tag"]).await,
        "200"
    );
    assert_eq!(std::fs::read(&saved).unwrap(), content);
    assert_eq!(mtime(&saved), when);
    let tag = std::fs::read_to_string(cwd.path().join("tag")).unwrap();
    assert!(tag.starts_with('"') && tag.ends_with("\"\n"), "{tag:?}");

    // The file is yours now: a 304 leaves your bytes and your time.
    std::fs::write(&saved, b"mine").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&saved)
        .unwrap()
        .set_modified(when)
        .unwrap();
    assert_eq!(run(&["-o", "f.bin", "--etag-compare", "tag"]).await, "304");
    assert_eq!(std::fs::read(&saved).unwrap(), b"mine");
    assert_eq!(run(&["-o", "f.bin", "-z", "f.bin"]).await, "304");
    assert_eq!(std::fs::read(&saved).unwrap(), b"mine");
    assert_eq!(mtime(&saved), when);
    // Newer than 2001: fetched, and given the server's time.
    assert_eq!(run(&["-o", "f.bin", "-R", "-z", "2001-01-01"]).await, "200");
    assert_eq!(std::fs::read(&saved).unwrap(), content);
    assert_eq!(mtime(&saved), when);
    // Not newer than 2001: refused by the server's 412, which is written as any error body.
    assert_eq!(run(&["-o", "/dev/null", "-z", "-2001-01-01"]).await, "412");

    // A download of your own conditional request: the 304 is not the file.
    std::fs::write(&saved, b"mine").unwrap();
    let header = format!("If-None-Match: {}", tag.trim_end());
    let (c, d, u) = (
        cwd.path().to_path_buf(),
        data.path().to_path_buf(),
        nginx.url("/f.bin"),
    );
    let out = tokio::task::spawn_blocking(move || {
        courier_in(
            &c,
            &d,
            &["download", "-s", "--allow-http", "-H", &header, &u],
        )
        .output()
        .unwrap()
    })
    .await
    .unwrap();
    assert_success(&out);
    assert_eq!(std::fs::read(&saved).unwrap(), b"mine");
    let statuses: Vec<u16> = nginx.access_log().iter().map(|l| l.status).collect();
    assert_eq!(statuses, [200, 304, 304, 200, 412, 304]);
}
