//! `courier stream` against a real SMTP server that speaks STARTTLS (Python's `aiosmtpd`): the
//! dialogue before TLS, the upgrade with the session's trust (`--cacert`), stdin piped over TLS
//! after it, and the events of both sides closing.

mod common;

use common::{PythonServer, courier_with_stdin, python_server, stderr_events};
use courier_cli::loopback::LoopbackCa;

/// aiosmtpd with STARTTLS from `ca`'s leaf, and the directory holding the leaf and the CA's PEM;
/// `None` where python3-aiosmtpd is missing (never in CI).
fn smtp(ca: &LoopbackCa) -> Option<(PythonServer, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.leaf_pem();
    std::fs::write(dir.path().join("leaf.pem"), cert).unwrap();
    std::fs::write(dir.path().join("leaf.key"), key).unwrap();
    std::fs::write(dir.path().join("ca.pem"), &ca.ca_pem).unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let args = [
        "-m".to_owned(),
        "aiosmtpd".into(),
        "-n".into(),
        "-l".into(),
        "127.0.0.1:{port}".into(),
        "--tlscert".into(),
        path("leaf.pem"),
        "--tlskey".into(),
        path("leaf.key"),
    ];
    let server = python_server("aiosmtpd", &args)?;
    Some((server, dir))
}

fn stream(args: &[&str], input: &str) -> std::process::Output {
    let args: Vec<&str> = std::iter::once("stream")
        .chain(args.iter().copied())
        .collect();
    courier_with_stdin(&args, input, std::time::Duration::ZERO)
}

#[test]
fn starttls_after_the_servers_go_ahead_then_stdin_over_tls() {
    let ca = LoopbackCa::new();
    let Some((server, dir)) = smtp(&ca) else {
        return;
    };
    let ca_pem = dir.path().join("ca.pem");
    let port = server.port.to_string();
    let out = stream(
        &[
            "--cacert",
            ca_pem.to_str().unwrap(),
            "--starttls-after",
            "Ready to start TLS",
            "--starttls-command",
            "EHLO courier.test\r\nSTARTTLS",
            "--events",
            "-",
            "localhost",
            &port,
        ],
        "EHLO again.test\r\nQUIT\r\n",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    // Before TLS: the greeting, EHLO's answer offering STARTTLS, the go-ahead.
    let go = said.find("220 Ready to start TLS").expect("the go-ahead");
    assert!(said[..go].contains("STARTTLS"), "{said}");
    // After it, over TLS: the second EHLO (no STARTTLS offered any more) and QUIT's answer.
    let after = &said[go..];
    assert!(
        after.contains("250 ") && !after.contains("250-STARTTLS"),
        "{said}"
    );
    assert!(after.contains("221"), "{said}");
    let events = stderr_events(&out);
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"read_closed") && names.contains(&"write_closed"),
        "{names:?}"
    );
    let done = events
        .iter()
        .find(|e| e["event"] == "did_complete")
        .unwrap();
    assert!(done["error"].is_null(), "{done}");

    // Without the CA, the upgrade is refused: exit 1, with the certificate error named.
    let out = stream(
        &[
            "--starttls-after",
            "Ready to start TLS",
            "--starttls-command",
            "EHLO courier.test\r\nSTARTTLS",
            "localhost",
            &port,
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server_certificate"));
}

/// A proxy from the environment that Courier cannot speak (`https://`, TLS to the proxy) fails a
/// stream task and an `ftp:` one as it fails an HTTP request: at once, saying so, without going
/// direct and without dialling the proxy first (it was spoken to as a cleartext HTTP proxy, which
/// held the task until its connect timeout).
#[test]
fn a_proxy_of_a_kind_courier_cannot_speak_fails_raw_connections_before_dialling_it() {
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    proxy.set_nonblocking(true).unwrap();
    let url = format!("https://127.0.0.1:{}", proxy.local_addr().unwrap().port());
    let cwd = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        common::courier_in(cwd.path(), cwd.path(), args)
            .env("ALL_PROXY", &url)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    // Names that resolve nowhere: reaching them at all would need the proxy.
    for out in [
        run(&["stream", "mail.example.invalid", "25"]),
        run(&["get", "--allow-http", "ftp://files.example.invalid/f"]),
        run(&["get", "https://www.example.invalid/"]),
    ] {
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("which Courier does not speak"), "{err}");
    }
    assert_eq!(
        proxy.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "the proxy was dialled"
    );
}
