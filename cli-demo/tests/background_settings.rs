//! Black-box tests of what a background task runs under: `courier bg download`'s session options
//! (`--allow-http`, timeouts, `--insecure`, `--user`) go to the service with each task, are kept
//! across a killed service, and a task under other settings is refused while others run; its
//! schedule (`--priority`, `--discretionary`, `--begin-after`) orders the tasks that wait.

mod common;

use common::daemon::*;
use common::*;
use courier_tests::TestServer;
use courier_tests::server::pattern_bytes;

/// `courier bg download` hands its session options to the service with each task, as an
/// application's background configuration goes with its tasks: a daemon started without
/// `--allow-http` runs the cleartext download of a `bg download --allow-http`, and refuses one
/// made without it (`AppTransportSecurityRequiresSecureConnection`, at the attach). While an
/// identifier has unfinished tasks, a task made with other settings than theirs is refused at
/// once, with the reason (fewer too: it must not run under a permission it was not given); one
/// made with the same is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bg_download_takes_its_session_options_to_the_service() {
    let server = TestServer::http().await;
    let (file, slow) = (
        server.url("/bytes/5000"),
        server.url("/drip?chunks=100&size=100&delay_ms=100"),
    );
    let home = Home::new();
    let h = home.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        // The service's own settings allow no cleartext.
        let mut daemon = h.daemon(&[]);
        let denied = h.courier(&["bg", "download", "--id", "plain", &file]);
        let allowed = h.courier(&["bg", "download", "--id", "opts", "--allow-http", &file]);
        h.listed_until("plain", |t| t.contains("\"completed\""));
        h.listed_until("opts", |t| t.contains("\"completed\""));
        let (plain, opts) = (h.attach("plain"), h.attach("opts"));
        let running = h.courier(&["bg", "download", "--id", "mix", "--allow-http", &slow]);
        let other = h.courier(&[
            "bg",
            "download",
            "--id",
            "mix",
            "--allow-http",
            "--timeout-request",
            "7",
            &file,
        ]);
        let fewer = h.courier(&["bg", "download", "--id", "mix", &file]);
        let same = h.courier(&["bg", "download", "--id", "mix", "--allow-http", &file]);
        stop_daemon(&mut daemon);
        (denied, allowed, plain, opts, running, other, fewer, same)
    })
    .await
    .unwrap();
    let (denied, allowed, plain, opts, running, other, fewer, same) = outcome;
    // Both are taken: the service checks a task's URL when it runs it.
    assert_success(&denied);
    assert_success(&allowed);
    assert_eq!(
        completion(&plain)["error"]["code"],
        "app_transport_security_requires_secure_connection",
        "the service's own settings: {:?}",
        stderr_events(&plain)
    );
    assert!(!plain.status.success());
    assert_success(&opts);
    assert_eq!(completion(&opts)["error"], serde_json::Value::Null);
    assert_eq!(
        std::fs::read(home.out().join("5000")).unwrap(),
        pattern_bytes(0, 5000)
    );
    assert_success(&running);
    for refused in [&other, &fewer] {
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(said.contains("other settings"), "{said}");
    }
    assert_success(&same);
}

/// The `did_complete` event of a `bg attach` (the first).
fn completion(attach: &std::process::Output) -> serde_json::Value {
    stderr_events(attach)
        .into_iter()
        .find(|e| e["event"] == "did_complete")
        .expect("a completion")
}

/// A task's settings are journaled with it: after the service is killed (`kill -9`) and started
/// again, with no `--allow-http` of its own, the cleartext download of a `bg download
/// --allow-http` goes on under them and completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tasks_settings_outlive_a_killed_service() {
    across_a_killed_service(&[], &["--allow-http"]).await;
}

/// A task runs under the service's settings as they were when it was accepted: a cleartext
/// download made without `--allow-http`, taken by a service started with it, goes on after that
/// service is killed and a bare one (as a later command starts it) takes over, instead of failing
/// with -1022.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_keeps_the_services_settings_it_was_accepted_under() {
    across_a_killed_service(&["--allow-http"], &[]).await;
}

/// A slow cleartext download made with `bg download TASK_OPTIONS` in a service started with
/// `SERVICE_OPTIONS`, which is killed mid-body; a service with no options takes over. The download
/// must complete, byte-exact, and its attach succeed.
async fn across_a_killed_service(
    service_options: &'static [&'static str],
    task_options: &'static [&'static str],
) {
    let server = TestServer::http().await;
    let slow = server.url("/drip?chunks=30&size=1000&delay_ms=50");
    let home = Home::new();
    let h = home.clone();
    let (submitted, attached) = tokio::task::spawn_blocking(move || {
        let mut daemon = h.daemon(service_options);
        let mut submit = vec!["bg", "download", "--id", "kept"];
        submit.extend(task_options);
        submit.push(&slow);
        let submitted = h.courier(&submit);
        h.listed_until("kept", |t| {
            t.contains("\"running\"") && !t.contains("\"written\":0")
        });
        assert!(!daemon.signal("KILL").success());
        let mut bare = h.daemon(&[]);
        h.listed_until("kept", |t| t.contains("\"completed\""));
        let attached = h.attach("kept");
        stop_daemon(&mut bare);
        (submitted, attached)
    })
    .await
    .unwrap();
    assert_success(&submitted);
    assert_eq!(completion(&attached)["error"], serde_json::Value::Null);
    assert_success(&attached);
    assert_eq!(
        std::fs::read(home.out().join("drip")).unwrap(),
        pattern_bytes(0, 30_000)
    );
}

/// `bg download --insecure` and `--user`: the service answers the challenges in the command's
/// place, as its delegate would have (an unknown root trusted, a Basic challenge of the URL's own
/// origin answered); without them it answers by default (the unknown root refused, the 401
/// delivered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bg_download_answers_challenges_as_insecure_and_user_say() {
    let ca = courier_tests::TestCa::new();
    let (tls, plain) = (TestServer::https(&ca).await, TestServer::http().await);
    let (secure, basic) = (tls.url("/bytes/5"), plain.url("/basic/ann/pw"));
    let home = Home::new();
    let h = home.clone();
    let (submitted, attached) = tokio::task::spawn_blocking(move || {
        let mut daemon = h.daemon(&[]);
        let cases = [
            ("untrusted", vec![secure.as_str()]),
            ("trusted", vec!["--insecure", secure.as_str()]),
            ("anonymous", vec!["--allow-http", basic.as_str()]),
            (
                "ann",
                vec!["--allow-http", "--user", "ann:pw", basic.as_str()],
            ),
        ];
        let mut submitted = Vec::new();
        for (id, args) in &cases {
            let mut command = vec!["bg", "download", "--id", id];
            command.extend(args);
            submitted.push(h.courier(&command));
        }
        let attached: Vec<_> = cases
            .iter()
            .map(|(id, _)| {
                h.listed_until(id, |t| t.contains("\"completed\""));
                h.attach(id)
            })
            .collect();
        stop_daemon(&mut daemon);
        (submitted, attached)
    })
    .await
    .unwrap();
    for s in &submitted {
        assert_success(s);
    }
    assert_eq!(
        completion(&attached[0])["error"]["code"],
        "server_certificate_has_unknown_root"
    );
    assert_success(&attached[1]);
    assert_eq!(std::fs::read(home.out().join("5")).unwrap().len(), 5);
    assert_eq!(
        completion(&attached[2])["status"],
        401,
        "delivered by default"
    );
    assert_eq!(completion(&attached[3])["status"], 200);
    assert_eq!(
        std::fs::read_to_string(home.out().join("pw")).unwrap(),
        "welcome ann"
    );
}

/// `bg download --priority`, `--discretionary` and `--begin-after` reach the service's queue. With
/// one transfer at a time to the host, and one running, four more wait, made in this order: a
/// discretionary one, a plain one, one of priority 1, and one that may not begin for an hour. They
/// run highest priority first, the discretionary one last (after the plain one, which came after
/// it), and the delayed one not at all: it is still waiting, nothing written, after the
/// discretionary one, which gives way to any task that is ready, has completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bg_download_takes_its_schedule_to_the_service() {
    let server = TestServer::http().await;
    let blocker = server.url("/drip?chunks=40&size=100&delay_ms=100");
    let urls: Vec<String> = (1..=4)
        .map(|i| server.url(&format!("/bytes/100{i}")))
        .collect();
    let home = Home::new();
    let h = home.clone();
    let (submitted, listed, attached) = tokio::task::spawn_blocking(move || {
        let mut daemon = h.daemon(&["--allow-http", "--max-connections-per-host", "1"]);
        let mut submitted = vec![h.courier(&["bg", "download", "--id", "s", &blocker])];
        // The blocker holds the host's one slot before the others queue behind it.
        h.listed_until("s", |t| {
            t.contains("\"running\"") && !t.contains("\"written\":0")
        });
        let schedules: [&[&str]; 4] = [
            &["--discretionary"],
            &[],
            &["--priority", "1"],
            &["--begin-after", "3600"],
        ];
        for (schedule, url) in schedules.iter().zip(&urls) {
            let mut command = vec!["bg", "download", "--id", "s"];
            command.extend(*schedule);
            command.push(url);
            submitted.push(h.courier(&command));
        }
        h.listed_until("s", |t| t.matches("\"completed\"").count() >= 4);
        let listed = h.courier(&["bg", "list", "--id", "s", "--json"]);
        let delayed = task_of(&submitted[4]);
        assert_success(&h.courier(&["bg", "cancel", "--id", "s", &delayed.to_string()]));
        // A task the identifier does not have is said, not passed over.
        let unknown = h.courier(&["bg", "cancel", "--id", "s", "999"]);
        assert_eq!(unknown.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&unknown.stderr).contains("s has no task 999"));
        h.listed_until("s", |t| t.matches("\"completed\"").count() == 5);
        let attached = h.attach("s");
        stop_daemon(&mut daemon);
        (submitted, listed, attached)
    })
    .await
    .unwrap();
    for s in &submitted {
        assert_success(s);
    }
    let tasks: Vec<u64> = submitted.iter().map(task_of).collect();
    let delayed = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|t| t["task"] == tasks[4])
        .expect("the delayed task is listed");
    assert_eq!(delayed["state"], "running", "resumed, waiting for its date");
    assert_eq!(delayed["written"], 0);
    assert_eq!(delayed["retries"], 0);
    assert!(
        delayed["not_before_ms"].as_u64().is_some(),
        "its begin date: {delayed}"
    );
    let order: Vec<u64> = stderr_events(&attached)
        .iter()
        .filter(|e| e["event"] == "did_complete")
        .map(|e| e["task"].as_u64().unwrap())
        .collect();
    // The blocker, priority 1, the plain one, the discretionary one; then the cancelled one.
    let expected = [tasks[0], tasks[3], tasks[2], tasks[1], tasks[4]];
    assert_eq!(order, expected, "tasks {tasks:?}");
}

/// The task identifier `bg download` printed for its one URL.
fn task_of(submitted: &std::process::Output) -> u64 {
    let line = String::from_utf8_lossy(&submitted.stdout);
    line.split_whitespace()
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("a task identifier: {line:?}"))
}

/// `bg download` takes its URLs as `download` does: a globbed URL stands for one task per value,
/// and `-i FILE` adds the file's lines (it was taken and left unread).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bg_download_globs_its_urls_and_reads_an_input_file() {
    let server = TestServer::http().await;
    let home = Home::new();
    let list = home.out().with_file_name("list.txt");
    std::fs::write(&list, format!("{}\n", server.url("/bytes/7"))).unwrap();
    let globbed = server.url("/bytes/[5-6]");
    let h = home.clone();
    let submitted = tokio::task::spawn_blocking(move || {
        let mut daemon = h.daemon(&[]);
        let list = list.to_string_lossy().into_owned();
        let submitted = h.courier(&[
            "bg",
            "download",
            "--id",
            "many",
            "--allow-http",
            "-i",
            &list,
            &globbed,
        ]);
        h.listed_until("many", |t| t.matches("\"completed\"").count() == 3);
        stop_daemon(&mut daemon);
        submitted
    })
    .await
    .unwrap();
    assert_success(&submitted);
    let urls: Vec<String> = String::from_utf8_lossy(&submitted.stdout)
        .lines()
        .map(|l| l.rsplit('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(urls, ["5", "6", "7"]);
}
