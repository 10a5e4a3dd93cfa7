//! `courier ws` against a real WebSocket server (Python's `websockets`, run from the script the
//! engine's tests use): stdin lines out as messages, messages back on stdout, the events of the
//! contract, and the exit status of a normal closure and of a server's other close code.

mod common;

use common::{courier_with_stdin, names, python_server, server_script, stderr_events};

/// Runs `courier ws ARGS` with `input` on stdin, holding stdin open for `hold` before closing it.
fn ws(args: &[&str], input: &str, hold: std::time::Duration) -> std::process::Output {
    let args: Vec<&str> = std::iter::once("ws").chain(args.iter().copied()).collect();
    courier_with_stdin(&args, input, hold)
}

#[test]
fn lines_go_out_as_messages_and_come_back_then_a_normal_closure_exits_0() {
    let args = [server_script("websockets_echo.py"), "{port}".into()];
    let Some(server) = python_server("websockets", &args) else {
        return;
    };
    let url = format!("ws://127.0.0.1:{}/echo", server.port);
    let out = ws(
        &["--allow-http", "--protocol", "chat", "--events", "-", &url],
        "hello\nworld\n",
        std::time::Duration::from_millis(300),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\nworld\n");
    let events = stderr_events(&out);
    let n = names(&events);
    let open = events
        .iter()
        .find(|e| e["event"] == "did_open_with_protocol")
        .unwrap();
    assert_eq!(open["protocol"], "chat");
    let messages: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "did_receive_message")
        .collect();
    assert_eq!(messages.len(), 2, "{n:?}");
    assert_eq!(messages[0]["kind"], "text");
    assert_eq!(messages[0]["bytes"], 5);
    let close = events
        .iter()
        .find(|e| e["event"] == "did_close_with")
        .unwrap();
    assert_eq!(close["code"], 1000);
    let at = |name: &str| n.iter().position(|e| e == name).unwrap();
    assert!(at("did_open_with_protocol") < at("did_receive_message"));
    assert!(at("did_close_with") < at("did_complete"));

    // Binary: hex on stdout.
    let out = ws(
        &["--allow-http", "--binary", &url],
        "AB\n",
        std::time::Duration::from_millis(300),
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "4142\n");
}

#[test]
fn a_close_other_than_normal_from_the_server_exits_1() {
    let args = [server_script("websockets_echo.py"), "{port}".into()];
    let Some(server) = python_server("websockets", &args) else {
        return;
    };
    let url = format!("ws://127.0.0.1:{}/close/4001", server.port);
    // Stdin stays open: the server closes first.
    let out = ws(
        &["--allow-http", "--events", "-", &url],
        "",
        std::time::Duration::from_millis(1500),
    );
    assert_eq!(out.status.code(), Some(1));
    let events = stderr_events(&out);
    let close = events
        .iter()
        .find(|e| e["event"] == "did_close_with")
        .unwrap();
    assert_eq!(close["code"], 4001);
    assert_eq!(close["reason"], "bye");
    // Said, not only in the exit status.
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(
            "courier: the WebSocket closed with 4001, reason \"bye\", not a normal closure"
        ),
        "{said}"
    );

    // ws:// without --allow-http: refused, exit 1.
    let out = ws(&[&url], "", std::time::Duration::ZERO);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("-1022"));
}
