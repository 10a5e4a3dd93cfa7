//! Black-box tests of how `courier bg` and `courier daemon` fail: each failure said, a second
//! service refused, a service that does not answer given up on.

mod common;

use common::daemon::*;
use common::*;
use courier_tests::TestServer;
use courier_tests::server::pattern_bytes;

/// `bg attach` says each failure on stderr, as every command does, and exits 1: a task's error
/// (-1022: neither the service nor the task allows cleartext), and a finished download it could
/// not move into the output directory (a directory has its name). The other download is handed
/// over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bg_attach_says_what_failed() {
    let server = TestServer::http().await;
    let (fine, blocked) = (server.url("/bytes/5000"), server.url("/bytes/6000"));
    let home = Home::new();
    std::fs::create_dir_all(home.out().join("6000")).unwrap();
    let h = home.clone();
    let (refused, unmoved) = tokio::task::spawn_blocking(move || {
        let mut daemon = h.daemon(&[]);
        assert_success(&h.courier(&["bg", "download", "--id", "plain", &fine]));
        let moves = [
            "bg",
            "download",
            "--id",
            "moves",
            "--allow-http",
            &fine,
            &blocked,
        ];
        assert_success(&h.courier(&moves));
        h.listed_until("plain", |t| t.contains("\"completed\""));
        h.listed_until("moves", |t| t.matches("\"completed\"").count() == 2);
        let attached = (h.attach("plain"), h.attach("moves"));
        stop_daemon(&mut daemon);
        attached
    })
    .await
    .unwrap();
    let said = |out: &std::process::Output| String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        said(&refused).contains("failed: app_transport_security_requires_secure_connection -1022"),
        "{}",
        said(&refused)
    );
    assert_eq!(unmoved.status.code(), Some(1));
    let why = format!("cannot save {}", home.out().join("6000").display());
    assert!(said(&unmoved).contains(&why), "{}", said(&unmoved));
    assert_eq!(
        std::fs::read(home.out().join("5000")).unwrap(),
        pattern_bytes(0, 5000)
    );
}

/// One service per user: a second `courier daemon` exits 2 at once, saying another holds the
/// journal, and the first goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_says_that_one_is_running() {
    let home = Home::new();
    let h = home.clone();
    let (second, listed) = tokio::task::spawn_blocking(move || {
        let mut first = h.daemon(&[]);
        let second = h.courier(&["daemon"]);
        let listed = h.courier(&["bg", "list", "--id", "x"]);
        stop_daemon(&mut first);
        (second, listed)
    })
    .await
    .unwrap();
    assert_eq!(second.status.code(), Some(2));
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(
        said.contains("is in use by another courier service"),
        "{said}"
    );
    assert_eq!(said.matches("in use").count(), 1, "said once: {said}");
    assert_success(&listed);
}

/// A service the application starts that cannot start (here: another runs for the same data
/// directory, under another runtime directory) is reported with what it said, not as one that
/// "did not answer" after a 5 s wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_cannot_start_is_reported_with_its_reason() {
    let home = Home::new();
    let h = home.clone();
    let listed = tokio::task::spawn_blocking(move || {
        let mut first = h.daemon(&[]);
        let elsewhere = tempfile::tempdir().unwrap();
        let listed = courier_at(elsewhere.path(), &h.data(), &["bg", "list", "--id", "x"])
            .output()
            .unwrap();
        stop_daemon(&mut first);
        listed
    })
    .await
    .unwrap();
    assert_eq!(listed.status.code(), Some(2));
    let said = String::from_utf8_lossy(&listed.stderr);
    assert!(
        said.contains("ended (exit status: 2): courier: cannot start: the journal")
            && said.contains("is in use by another courier service"),
        "{said}"
    );
}

/// A task whose host refuses connections is retried without an event to the application (as
/// URLSession's background tasks are); `bg list --json` shows the attempts retried so far and when
/// the next may start, and `bg attach --follow` says each on stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_retried_against_a_refusing_host_shows_its_retries_in_bg_list_and_attach() {
    let home = Home::new();
    let h = home.clone();
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/x.bin",
        refused.local_addr().unwrap().port()
    );
    drop(refused);
    tokio::task::spawn_blocking(move || {
        let mut daemon = h.daemon(&[]);
        assert_success(&h.courier(&["bg", "download", "--id", "r", "--allow-http", &url]));
        h.listed_until("r", |text| {
            text.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .any(|t| {
                    t["retries"].as_u64().is_some_and(|n| n >= 1)
                        && t["not_before_ms"].as_u64().is_some()
                        && t["state"] == "running"
                })
        });
        // `bg attach --follow` says each retry above its bars, as `--retry` says a foreground
        // one's (it showed nothing at all while the task waited).
        let log = h.out().join("attach.err");
        std::fs::create_dir_all(h.out()).unwrap();
        let out = h.out();
        let mut attach = courier_at(
            &h.run(),
            &h.data(),
            &[
                "bg",
                "attach",
                "--id",
                "r",
                "--follow",
                "-o",
                out.to_str().unwrap(),
            ],
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
        let said = |text: &str| {
            text.contains("(http://127.0.0.1:")
                && text.contains("failed; the service tries again in")
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !said(&std::fs::read_to_string(&log).unwrap()) && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        attach.kill().unwrap();
        attach.wait().unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(said(&text), "{text}");
        assert_success(&h.courier(&["bg", "invalidate", "--id", "r"]));
        stop_daemon(&mut daemon);
    })
    .await
    .unwrap();
}

/// A service that does not answer (stopped with SIGSTOP) is reported, not waited for forever:
/// `bg list` gives up after its 30 s, and `bg attach` (a background session's handshake) after
/// 10 s, each saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_does_not_answer_is_reported_not_waited_for() {
    let home = Home::new();
    let h = home.clone();
    let listed = tokio::task::spawn_blocking(move || {
        let mut daemon = h.daemon(&[]);
        let pid = daemon.0.id().to_string();
        let stop = |signal: &str| {
            let sent = std::process::Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap();
            assert!(sent.success());
        };
        stop("-STOP");
        let listed = h.courier(&["bg", "list", "--id", "x"]);
        let attached = h.attach("x");
        stop("-CONT");
        stop_daemon(&mut daemon);
        (listed, attached)
    })
    .await
    .unwrap();
    let (listed, attached) = listed;
    for (out, within) in [(&listed, "30 s"), (&attached, "10 s")] {
        assert_eq!(out.status.code(), Some(2));
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains(&format!("did not answer within {within}")),
            "{said}"
        );
    }
}

/// A service that goes away while `bg attach --follow` waits (killed with SIGKILL) ends the
/// attach with exit 1 and a line that says so and how to go on; before, the exit said nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attach_whose_service_goes_away_says_so() {
    use std::io::BufRead;
    let server = TestServer::http().await;
    let slow = server.url("/bytes/400000");
    let home = Home::new();
    let h = home.clone();
    let (status, said) = tokio::task::spawn_blocking(move || {
        let mut daemon = h.daemon(&[]);
        let download = [
            "bg",
            "download",
            "--id",
            "slow",
            "--allow-http",
            "--limit-rate",
            "10k",
            &slow,
        ];
        assert_success(&h.courier(&download));
        let out = h.out();
        let mut attach = courier_at(&h.run(), &h.data(), &["bg", "attach", "--id", "slow"])
            .args(["--follow", "-o", out.to_str().unwrap(), "--events", "-"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Killed once the attach is connected: its replay has ended.
        let mut lines = std::io::BufReader::new(attach.stderr.take().unwrap()).lines();
        let mut said = String::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            said.push_str(&line);
            said.push('\n');
            if line.contains("did_finish_events_for_background_session") {
                break;
            }
        }
        daemon.signal("KILL");
        for line in lines {
            said.push_str(&line.unwrap());
            said.push('\n');
        }
        (attach.wait().unwrap(), said)
    })
    .await
    .unwrap();
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(
        said.contains(
            "courier: the background service went away; the tasks of slow go on once it runs \
             again (`courier bg attach --id slow` starts it)"
        ),
        "{said}"
    );
}
