//! `ftp://` through the `courier` command against a real FTP server (pyftpdlib, from the script
//! the engine's tests use): `download`, `get`, `upload --file`, a directory's listing, a missing
//! file's exit status, a path that would smuggle a command, and the cleartext policy.

mod common;

use common::{assert_success, courier, python_server, server_script};

#[test]
fn download_get_and_upload_over_ftp() {
    let root = tempfile::tempdir().unwrap();
    let args = [
        server_script("ftp_server.py"),
        "{port}".into(),
        root.path().display().to_string(),
    ];
    let Some(server) = python_server("pyftpdlib", &args) else {
        return;
    };
    let data: Vec<u8> = (0..1_500_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(root.path().join("file.bin"), &data).unwrap();
    let url =
        |userinfo: &str, path: &str| format!("ftp://{userinfo}127.0.0.1:{}{path}", server.port);
    let out_dir = tempfile::tempdir().unwrap();
    let target = out_dir.path().join("file.bin");

    let out = courier(&[
        "download",
        "--allow-http",
        "-q",
        "-o",
        target.to_str().unwrap(),
        &url("", "/file.bin"),
    ]);
    assert_success(&out);
    assert_eq!(std::fs::read(&target).unwrap(), data);

    let out = courier(&["get", "--allow-http", &url("", "/file.bin")]);
    assert_eq!(out.stdout, data);
    // `-w` reads the sizes from the task, an `ftp:` transfer having no HTTP request to tell.
    let out = courier(&[
        "get",
        "--allow-http",
        "-o",
        out_dir.path().join("again.bin").to_str().unwrap(),
        "-w",
        "%{size_download}",
        &url("", "/file.bin"),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), data.len().to_string());

    let upload = out_dir.path().join("up.txt");
    std::fs::write(&upload, b"sent over ftp\n").unwrap();
    let out = courier(&[
        "upload",
        "--allow-http",
        "--file",
        upload.to_str().unwrap(),
        &url("ann:pw@", "/up.txt"),
    ]);
    assert_success(&out);
    assert_eq!(
        std::fs::read(root.path().join("up.txt")).unwrap(),
        b"sent over ftp\n"
    );

    // `--user` is the login for a URL that names no user (curl's way): only ann may write.
    let out = courier(&[
        "upload",
        "--allow-http",
        "--user",
        "ann:pw",
        "--file",
        upload.to_str().unwrap(),
        &url("", "/by-user.txt"),
    ]);
    assert_success(&out);
    assert!(root.path().join("by-user.txt").exists());

    // A path ending in `/` is a directory: its listing (`LIST`), as curl prints it.
    std::fs::create_dir(root.path().join("sub")).unwrap();
    std::fs::write(root.path().join("sub").join("inner.txt"), b"x").unwrap();
    let out = courier(&["get", "--allow-http", &url("", "/")]);
    assert_success(&out);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("file.bin") && listing.contains("sub") && listing.lines().count() >= 3,
        "{listing}"
    );
    let out = courier(&["get", "--allow-http", &url("", "/sub/")]);
    assert_success(&out);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("inner.txt") && !listing.contains("file.bin"),
        "{listing}"
    );

    // A line break in the path is a bad URL, not a second command: nothing is deleted.
    let out = courier(&["get", "--allow-http", &url("", "/sub%0d%0aDELE%20file.bin")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad_url -1000"));
    assert!(root.path().join("file.bin").exists());
    // So is one in the user name or the password (`USER`, `PASS`), as `ann`, who may delete.
    for userinfo in ["ann%0d%0aDELE%20file.bin:pw@", "ann:pw%0aDELE%20file.bin@"] {
        let out = courier(&["get", "--allow-http", &url(userinfo, "/file.bin")]);
        assert_eq!(out.status.code(), Some(1), "{userinfo}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("bad_url -1000"));
        assert!(root.path().join("file.bin").exists());
    }

    // A missing file: exit 1, the error named; and without --allow-http, refused.
    let out = courier(&["get", "--allow-http", &url("", "/missing.bin")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("file_does_not_exist -1100"));
    let out = courier(&["get", &url("", "/file.bin")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("-1022"));
}
