//! The suite's 1 GiB upload from a file to a sink that reads every byte: courier's completion form
//! (`courier-bench upload-once`) against `curl -T` and reqwest on both runtime flavours
//! (`upload-once-reqwest`), each a fresh process per round. The sink is the in-process loopback
//! server, on a runtime thread of this process.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use courier_engine::{Request, Session, UploadBody};

use super::report::{Report, Scenario, Side, Target, Unit};
use super::transfers::{child, cleartext, megabytes, runtime, value};
use super::{loopback_server, status_field};

/// `courier-bench upload-once URL FILE`: one upload of FILE with the completion form.
pub(crate) fn upload_once(url: &str, file: &Path) {
    let dir = tempfile::tempdir().expect("temp dir");
    runtime().block_on(async {
        let session = Session::new(cleartext(dir.path())).expect("session");
        let request = Request::new(http::Method::POST, url);
        let (body, response) = session
            .upload(request, UploadBody::File(file.to_path_buf()))
            .await
            .expect("upload");
        assert_eq!(response.status(), 200);
        println!(
            "answer={}",
            String::from_utf8_lossy(&body).trim_start_matches("bytes=")
        );
    });
    println!("peak_rss_kib={}", status_field("self", "VmHWM:"));
}

/// `courier-bench upload-once-reqwest URL FILE FLAVOR`: the same upload with reqwest on a runtime
/// of `FLAVOR`, the file sent as a stream of 256 KiB chunks (`ReaderStream` over a
/// `tokio::fs::File`; `Body::from(File)` reads 4 KiB at a time).
pub(crate) fn upload_once_reqwest(url: &str, file: &Path, flavor: &str) {
    let flavor = super::small::Flavor::named(flavor).expect("a runtime flavour");
    flavor.runtime().block_on(async {
        let client = reqwest::Client::new();
        let file = tokio::fs::File::open(file).await.expect("the file");
        let length = file.metadata().await.expect("its length").len();
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 << 10);
        let response = client
            .post(url)
            .header(http::header::CONTENT_LENGTH, length)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .expect("upload");
        assert_eq!(response.status(), 200);
        let body = response.text().await.expect("answer");
        println!("answer={}", body.trim_start_matches("bytes="));
    });
    println!("peak_rss_kib={}", status_field("self", "VmHWM:"));
}

/// A 1 GiB upload from a file (`size` bytes with `--quick`) to a sink that reads every byte:
/// courier's completion form against `curl -T FILE -X POST` and reqwest on both runtime
/// flavours, interleaved.
pub(crate) fn upload(report: &mut Report, pairs: usize, size: usize) {
    let (_server_rt, server) = loopback_server();
    let url = server.url("/sink");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("up.bin");
    courier_tests::write_random_file(&file, size, 7).expect("the file");
    let file_arg = file.to_str().expect("a UTF-8 path");
    let run_courier = || {
        let (took, out) = child(&["upload-once", &url, file_arg]);
        assert_eq!(
            value(&out, "answer") as usize,
            size,
            "the sink got every byte"
        );
        took
    };
    let run_curl = || {
        let started = Instant::now();
        let output = Command::new("curl")
            .args(["-s", "-X", "POST", "-T", file_arg, &url])
            .output()
            .expect("curl runs");
        let took = started.elapsed().as_secs_f64();
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            format!("bytes={size}"),
            "the sink got every byte from curl"
        );
        took
    };
    let run_reqwest = |flavor: &str| {
        let (took, out) = child(&["upload-once-reqwest", &url, file_arg, flavor]);
        assert_eq!(
            value(&out, "answer") as usize,
            size,
            "the sink got every byte from reqwest"
        );
        took
    };
    let what = megabytes(size);
    println!("# {what} upload from a file to a sink over loopback; {pairs} interleaved rounds");
    // Warm-up: the file is in the page cache for every side.
    let _ = (run_courier(), run_curl(), run_reqwest("current-thread"));
    let (mut ours, mut theirs, mut reqwest_ct, mut reqwest_mt) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..pairs {
        let (c, k) = (run_courier(), run_curl());
        let (r, m) = (run_reqwest("current-thread"), run_reqwest("multi-thread"));
        println!(
            "round {i:2}: courier {c:.3} s  curl {k:.3} s  reqwest {r:.3} s (multi-thread {m:.3} s)  \
             ratio {:.2}",
            c / k.min(r).min(m)
        );
        ours.push(c);
        theirs.push(k);
        reqwest_ct.push(r);
        reqwest_mt.push(m);
    }
    report.add(Scenario {
        name: format!("{what} upload from a file (a sink that reads every byte), HTTP/1.1"),
        unit: Unit::Seconds,
        courier: vec![Side::new("courier library (current-thread)", ours)],
        peers: vec![
            Side::new("curl -T -X POST", theirs),
            Side::new("reqwest current-thread", reqwest_ct),
            Side::new("reqwest multi-thread", reqwest_mt),
        ],
        target: Target::AtMostTimesBestPeer(1.0),
        note: "the sink is the in-process server; each side a fresh process per round".into(),
    });
}
