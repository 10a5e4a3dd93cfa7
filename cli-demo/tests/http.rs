//! Black-box tests of the `courier` binary's HTTP behaviour: redirects, challenges and the
//! credentials that answer them, TLS trust, the URL cache and proxies, read from its `--events -`
//! stream.

mod common;

use common::*;
use courier_tests::server::pattern_bytes;
use courier_tests::{TestCa, TestServer};
use serde_json::Value;

/// The first `event` line of a stream.
fn first<'a>(events: &'a [Value], event: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["event"] == event)
        .unwrap_or_else(|| panic!("no {event} event"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_followed_reported_and_can_be_refused_or_limited() {
    let server = TestServer::http().await;
    let u = server.url("/chain/2");
    let run = |extra: &'static [&'static str]| {
        let u = u.clone();
        tokio::task::spawn_blocking(move || {
            let mut args = vec!["get", u.as_str(), "--allow-http", "--events", "-"];
            args.extend_from_slice(extra);
            courier(&args)
        })
    };
    let out = run(&[]).await.unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"end of chain");
    let ev = stderr_events(&out);
    let hops: Vec<&Value> = ev
        .iter()
        .filter(|e| e["event"] == "will_perform_http_redirection")
        .collect();
    assert_eq!(hops.len(), 2);
    assert_eq!(hops[0]["status"], 302);
    assert_eq!(hops[0]["location"], server.url("/chain/1"));
    assert_eq!(hops[0]["method"], "GET");
    let response = ev
        .iter()
        .find(|e| e["event"] == "did_receive_response")
        .unwrap();
    assert_eq!(response["url"], server.url("/chain/0"));
    let metrics = ev
        .iter()
        .find(|e| e["event"] == "did_finish_collecting_metrics")
        .unwrap();
    assert_eq!(metrics["redirect_count"], 2);
    let transactions = metrics["transactions"].as_array().unwrap();
    assert_eq!(transactions.len(), 3);
    let first = &transactions[0];
    assert_eq!(first["url"], server.url("/chain/2"));
    assert_eq!(first["fetch_type"], "network");
    assert_eq!(first["protocol"], "http/1.1");
    assert_eq!(first["reused_connection"], false);
    assert!(first["connect_ms"].is_number() && first["secure_connection_ms"].is_null());
    for t in transactions {
        let at = |k: &str| t[k].as_f64().unwrap();
        assert!(at("fetch_start_ms") <= at("request_start_ms"), "{t}");
        assert!(at("request_start_ms") <= at("response_start_ms"), "{t}");
        assert!(at("response_start_ms") <= at("response_end_ms"), "{t}");
    }
    assert_eq!(transactions[1]["reused_connection"], true);
    // Every field cli.md names, each transaction; the addresses and ports apart.
    for t in transactions {
        for field in [
            "url",
            "fetch_type",
            "protocol",
            "reused_connection",
            "fetch_start_ms",
            "domain_lookup_ms",
            "connect_ms",
            "secure_connection_ms",
            "request_start_ms",
            "response_start_ms",
            "response_end_ms",
            "request_end_ms",
            "request_header_bytes_sent",
            "request_body_bytes_sent",
            "response_header_bytes_received",
            "response_body_bytes_received",
            "local_address",
            "local_port",
            "remote_address",
            "remote_port",
            "tls_protocol_version",
            "tls_cipher_suite",
            "proxy_connection",
        ] {
            assert!(t.get(field).is_some(), "{field} in {t}");
        }
        assert_eq!(t["remote_address"], "127.0.0.1");
        assert_eq!(t["remote_port"], server.addr().port());
        assert_eq!(t["local_address"], "127.0.0.1");
        assert!(t["local_port"].as_u64().is_some_and(|p| p > 0), "{t}");
    }

    let out = run(&["--no-follow"]).await.unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"hop", "the 3xx is the final response");
    let ev = stderr_events(&out);
    let complete = ev.iter().find(|e| e["event"] == "did_complete").unwrap();
    assert_eq!(complete["status"], 302);

    let out = run(&["--max-redirects", "1"]).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    let ev = stderr_events(&out);
    let complete = ev.iter().find(|e| e["event"] == "did_complete").unwrap();
    assert_eq!(complete["error"]["code"], "http_too_many_redirects");
    assert_eq!(complete["error"]["number"], -1007);
}

/// A redirect to a URL that is not `http:` or `https:` is not followed: the 3xx is the final
/// response, as URLSession delivers it, and stderr says why the body is the redirect's (curl fails
/// such a redirect; courier said nothing, exit 0, and a script took the 3xx's body for the file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_a_url_that_is_not_http_is_delivered_and_said() {
    let server = TestServer::http().await;
    let u = server.url("/redirect/302?to=file:///etc/passwd");
    let out = tokio::task::spawn_blocking(move || {
        [
            courier(&["get", "--allow-http", &u]),
            courier(&["get", "--allow-http", "--no-follow", &u]),
        ]
    })
    .await
    .unwrap();
    let said = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(out[0].status.code(), Some(0), "{}", said(&out[0]));
    assert!(
        said(&out[0]).contains(
            "task 1: the 302 is not followed: its Location, \"file:///etc/passwd\", is not an http: or https: URL"
        ),
        "{}",
        said(&out[0])
    );
    assert_eq!(out[0].stdout, out[1].stdout, "the 3xx's body either way");
    assert!(!said(&out[1]).contains("not followed"), "{}", said(&out[1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_answers_challenges_and_a_refusal_ends_with_the_401() {
    let server = TestServer::http().await;
    let u = server.url("/digest/ann/pw?alg=SHA-256");
    let run = |user: &'static str, fail: bool| {
        let u = u.clone();
        tokio::task::spawn_blocking(move || {
            let mut args = vec![
                "get",
                u.as_str(),
                "--allow-http",
                "--events",
                "-",
                "--user",
                user,
            ];
            if fail {
                args.push("--fail");
            }
            courier(&args)
        })
    };
    let out = run("ann:pw", false).await.unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"welcome ann");
    let ev = stderr_events(&out);
    let challenge = first(&ev, "did_receive_challenge");
    assert_eq!(challenge["scope"], "task");
    assert_eq!(challenge["method"], "http_digest");
    assert_eq!(challenge["realm"], "digest-realm");
    assert_eq!(challenge["host"], "127.0.0.1");
    assert_eq!(challenge["previous_failure_count"], 0);
    assert_eq!(challenge["disposition"], "use_credential");

    let out = run("ann:wrong", true).await.unwrap();
    assert_eq!(out.status.code(), Some(22), "--fail and a final 401");
    let ev = stderr_events(&out);
    let counts: Vec<u64> = ev
        .iter()
        .filter(|e| e["event"] == "did_receive_challenge")
        .map(|e| e["previous_failure_count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [0, 1]);
    let complete = ev.iter().find(|e| e["event"] == "did_complete").unwrap();
    assert_eq!(complete["status"], 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_trusts_an_unknown_certificate_and_says_so_in_the_stream() {
    let ca = TestCa::new();
    let server = TestServer::https(&ca).await;
    let u = server.url("/bytes/5");
    let u2 = u.clone();
    let refused = tokio::task::spawn_blocking(move || courier(&["get", &u2, "--events", "-"]))
        .await
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("server_certificate_has_unknown_root")
    );
    let out =
        tokio::task::spawn_blocking(move || courier(&["get", &u, "--insecure", "--events", "-"]))
            .await
            .unwrap();
    assert_success(&out);
    assert_eq!(out.stdout.len(), 5);
    let ev = stderr_events(&out);
    let challenge = first(&ev, "did_receive_challenge");
    assert_eq!(challenge["scope"], "session");
    assert_eq!(challenge["method"], "server_trust");
    assert_eq!(challenge["host"], "localhost");
    assert_eq!(challenge["disposition"], "use_credential");
    assert!(
        challenge.get("task").is_none(),
        "a session event has no task"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_reports_will_cache_response_and_serves_the_second_get_from_the_cache() {
    let server = TestServer::http().await;
    let u = server.url("/cache/max-age/60");
    let out = tokio::task::spawn_blocking(move || {
        courier(&["get", &u, &u, "--allow-http", "--events", "-"])
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let ev = stderr_events(&out);
    let cached = first(&ev, "will_cache_response");
    assert_eq!(cached["task"], 1);
    assert_eq!(cached["stored"], true);
    // Both bodies are the same token: the second came from the cache (one session for both).
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let half = text.len() / 2;
    assert_eq!(&text[..half], &text[half..], "{text}");
    let metrics: Vec<&Value> = ev
        .iter()
        .filter(|e| e["event"] == "did_finish_collecting_metrics")
        .collect();
    assert_eq!(metrics[1]["transactions"][0]["fetch_type"], "local_cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_option_sends_requests_through_the_proxy() {
    let server = TestServer::http().await;
    let proxy = courier_tests::ProxyServer::start(Some("ann:pw")).await;
    let (url, with_auth, without, bad) = (
        server.url("/bytes/2000"),
        proxy.url("ann:pw@"),
        proxy.url(""),
        "socks4://127.0.0.1:1080".to_owned(),
    );
    let (through, refused, no_proxy, unsupported) = tokio::task::spawn_blocking(move || {
        (
            courier(&["get", &url, "--allow-http", "-x", &with_auth]),
            courier(&["get", &url, "--allow-http", "-x", &without, "--fail"]),
            courier(&[
                "get",
                &url,
                "--allow-http",
                "-x",
                &without,
                "--noproxy",
                "127.0.0.1",
            ]),
            courier(&["get", &url, "--allow-http", "--proxy", &bad]),
        )
    })
    .await
    .unwrap();
    assert_eq!(through.status.code(), Some(0));
    assert_eq!(through.stdout, pattern_bytes(0, 2000));
    assert_eq!(
        refused.status.code(),
        Some(22),
        "the proxy's 407 with --fail"
    );
    assert_eq!(no_proxy.status.code(), Some(0));
    assert_eq!(no_proxy.stdout, pattern_bytes(0, 2000));
    assert_eq!(unsupported.status.code(), Some(2), "a usage error");
    let asked = proxy.asked();
    assert_eq!(asked.len(), 2, "the --noproxy run went direct: {asked:?}");
    assert_eq!(asked[0].authorization.as_deref(), Some("Basic YW5uOnB3"));
}

/// With no `-x`, the environment's proxy (`HTTP_PROXY`, as curl reads it) carries requests, except
/// to loopback hosts, which a proxy elsewhere could not reach; an empty variable names no proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environments_proxy_carries_requests_but_not_to_loopback() {
    let server = TestServer::http().await;
    let proxy = courier_tests::ProxyServer::start(None).await;
    let (local, through) = (server.url("/bytes/2000"), proxy.url(""));
    let run = move |url: &str, proxy: &str| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_courier"));
        // None of this process's proxy settings (any `*_proxy`, in either case) reach the run.
        for (name, _) in std::env::vars_os() {
            if name
                .to_string_lossy()
                .to_ascii_lowercase()
                .ends_with("_proxy")
            {
                command.env_remove(name);
            }
        }
        command
            .args(["get", "--allow-http", "--fail", url])
            .env("XDG_DATA_HOME", data_home())
            .env("HTTP_PROXY", proxy)
            .output()
            .expect("run courier")
    };
    let (direct, proxied, unset) = tokio::task::spawn_blocking(move || {
        (
            run(&local, &through),
            run("http://origin.invalid/named", &through),
            run("http://origin.invalid/unnamed", ""),
        )
    })
    .await
    .unwrap();
    assert_eq!(direct.status.code(), Some(0), "a loopback host goes direct");
    assert_eq!(direct.stdout, pattern_bytes(0, 2000));
    assert_ne!(proxied.status.code(), Some(0), "the proxy cannot reach it");
    assert_ne!(unset.status.code(), Some(0), "no such host");
    let asked: Vec<String> = proxy.asked().into_iter().map(|a| a.line).collect();
    assert_eq!(
        asked,
        ["GET http://origin.invalid/named HTTP/1.1"],
        "only the named proxy's request reached it"
    );
}

/// `--user` answers challenges of the URL's own origin only (curl CVE-2018-1000007), unless
/// `--location-trusted`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_cve_2018_1000007_user_credentials_stay_with_the_urls_origin_unless_location_trusted()
{
    let (a, b) = (TestServer::http().await, TestServer::http().await);
    let cross = a.url(&format!("/redirect/302?to={}", b.url("/basic/ann/pw")));
    let same = a.url("/redirect/302?to=/basic/ann/pw");
    let (crossed, trusted, kept) = tokio::task::spawn_blocking(move || {
        let run = |url: &str, extra: &[&str]| {
            let mut args = vec![
                "get",
                "--allow-http",
                "--user",
                "ann:pw",
                "--events",
                "-",
                url,
            ];
            args.extend_from_slice(extra);
            courier(&args)
        };
        (
            run(&cross, &[]),
            run(&cross, &["--location-trusted"]),
            run(&same, &[]),
        )
    })
    .await
    .unwrap();
    assert_success(&crossed);
    assert_eq!(
        crossed.stdout, b"who are you?",
        "the other origin got no credential"
    );
    let ev = stderr_events(&crossed);
    assert_eq!(
        first(&ev, "did_receive_challenge")["disposition"],
        "perform_default_handling"
    );
    assert_success(&trusted);
    assert_eq!(trusted.stdout, b"welcome ann");
    assert_success(&kept);
    assert_eq!(kept.stdout, b"welcome ann");
}
