//! `-v`: the event stream as a person reads it, on stderr, as curl's `-v` shows a transfer: each
//! response head (`< `), and what happened on the way (`* `): redirects, challenges and their
//! answers, each request's connection (protocol, address, TLS, reuse, proxy), resumptions, and
//! how each task ended.
//!
//! The request heads are not shown: the engine adds fields (`Host`, `Accept-Encoding`, cookies,
//! credentials) after the delegate's last look, and a head without them would mislead.

use serde_json::Value;

/// The lines `-v` shows for one event (none for the events it leaves to `--events`).
pub(super) fn lines(event: &str, task: Option<u64>, fields: &Value) -> Vec<String> {
    let who = task.map_or_else(|| "session".to_owned(), |t| format!("task {t}"));
    let text = |name: &str| fields[name].as_str().unwrap_or_default().to_owned();
    let number = |name: &str| fields[name].as_i64().unwrap_or_default();
    match event {
        "did_receive_response" => {
            let status = number("status");
            let reason = u16::try_from(status)
                .ok()
                .and_then(|s| http::StatusCode::from_u16(s).ok())
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            let mut out = vec![format!("< {status} {reason}").trim_end().to_owned()];
            if let Some(headers) = fields["headers"].as_object() {
                out.extend(
                    headers
                        .iter()
                        .map(|(name, value)| format!("< {name}: {}", value.as_str().unwrap_or(""))),
                );
            }
            out.push("<".to_owned());
            out
        }
        "will_perform_http_redirection" => vec![format!(
            "* {who}: {} redirects to {} ({})",
            number("status"),
            text("location"),
            text("method")
        )],
        "did_receive_challenge" => {
            let realm = fields["realm"]
                .as_str()
                .map(|r| format!(" realm {r:?}"))
                .unwrap_or_default();
            let tries = match number("previous_failure_count") {
                0 => String::new(),
                n => format!(" after {n} refused"),
            };
            vec![format!(
                "* {who}: {} challenge from {}:{}{realm}{tries}: {}",
                text("method"),
                text("host"),
                number("port"),
                text("disposition")
            )]
        }
        "did_finish_collecting_metrics" => fields["transactions"]
            .as_array()
            .map(|all| all.iter().map(|t| transaction(&who, t)).collect())
            .unwrap_or_default(),
        "did_resume_at_offset" => vec![format!(
            "* {who}: goes on from byte {} of {}",
            number("offset"),
            match number("expected_total_bytes") {
                -1 => "an unknown length".to_owned(),
                n => n.to_string(),
            }
        )],
        "did_become_download_task" => vec![format!(
            "* {who}: became download task {}",
            number("download_task")
        )],
        "did_open_with_protocol" => vec![format!(
            "* {who}: WebSocket open{}",
            fields["protocol"]
                .as_str()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default()
        )],
        "did_close_with" => vec![
            format!(
                "* {who}: WebSocket closed with {} {}",
                number("code"),
                text("reason")
            )
            .trim_end()
            .to_owned(),
        ],
        "did_complete" => vec![match fields["error"].as_object() {
            Some(e) => format!(
                "* {who}: failed: {} {}: {}{}",
                e["code"].as_str().unwrap_or_default(),
                e["number"],
                e["message"].as_str().unwrap_or_default(),
                if e["resume_data"] == true {
                    " (resumable)"
                } else {
                    ""
                }
            ),
            None => match fields["status"].as_i64() {
                Some(status) => format!("* {who}: done, status {status}"),
                None => format!("* {who}: done"),
            },
        }],
        _ => Vec::new(),
    }
}

/// One request of a task, as its metrics tell it.
fn transaction(who: &str, t: &Value) -> String {
    let text = |name: &str| t[name].as_str().map(str::to_owned);
    let url = text("url").unwrap_or_default();
    if t["fetch_type"] == "local_cache" {
        return format!("* {who}: {url} answered from the cache");
    }
    let mut parts = vec![text("protocol").unwrap_or_else(|| "no response".to_owned())];
    if let (Some(address), Some(port)) = (text("remote_address"), t["remote_port"].as_u64()) {
        let address = match address.contains(':') {
            true => format!("[{address}]"),
            false => address,
        };
        let how = match t["reused_connection"] == true {
            true => "reused connection",
            false => "new connection",
        };
        parts.push(format!("{how} to {address}:{port}"));
    }
    if let Some(version) = text("tls_protocol_version") {
        parts.push(match text("tls_cipher_suite") {
            Some(suite) => format!("{version} {suite}"),
            None => version,
        });
    }
    if t["proxy_connection"] == true {
        parts.push("through the proxy".to_owned());
    }
    if let Some(status) = t["status"].as_u64() {
        parts.push(format!("status {status}"));
    }
    let bytes = |a: &str, b: &str| t[a].as_u64().unwrap_or(0) + t[b].as_u64().unwrap_or(0);
    parts.push(format!(
        "{} bytes out, {} in",
        bytes("request_header_bytes_sent", "request_body_bytes_sent"),
        bytes(
            "response_header_bytes_received",
            "response_body_bytes_received"
        )
    ));
    format!("* {who}: {url}: {}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_response_head_and_its_request_read_as_curl_shows_them() {
        let head = lines(
            "did_receive_response",
            Some(1),
            &json!({"status": 404, "headers": {"content-type": "text/plain"}}),
        );
        assert_eq!(head, ["< 404 Not Found", "< content-type: text/plain", "<"]);
        let metrics = lines(
            "did_finish_collecting_metrics",
            Some(2),
            &json!({"transactions": [{
                "url": "https://h/x", "fetch_type": "network", "protocol": "h2",
                "remote_address": "::1", "remote_port": 8443, "reused_connection": false,
                "tls_protocol_version": "TLSv1.3", "tls_cipher_suite": "TLS_AES_128_GCM_SHA256",
                "proxy_connection": false, "status": 200,
                "request_header_bytes_sent": 40, "request_body_bytes_sent": 0,
                "response_header_bytes_received": 60, "response_body_bytes_received": 5
            }]}),
        );
        assert_eq!(
            metrics,
            [
                "* task 2: https://h/x: h2, new connection to [::1]:8443, TLSv1.3 \
              TLS_AES_128_GCM_SHA256, status 200, 40 bytes out, 65 in"
            ]
        );
        let failed = lines(
            "did_complete",
            Some(3),
            &json!({"error": {"code": "timed_out", "number": -1001, "message": "the request \
                    timed out", "resume_data": true}, "status": null}),
        );
        assert_eq!(
            failed,
            ["* task 3: failed: timed_out -1001: the request timed out (resumable)"]
        );
        assert!(lines("did_receive_data", Some(1), &json!({"bytes": 3})).is_empty());
    }
}
