//! The demo's routes (listed in `server.rs`): what each path answers, the protected ones' Basic
//! and Digest checks, and the resumable resource.

use super::*;

/// `/basic/USER/PASS`, `/digest/USER/PASS[?alg=SHA-256]`, `/basic-or-digest/USER/PASS`: 200
/// `welcome USER` with the right credential, else 401 with the challenges. Digest answers are checked
/// here with code of the test kit's own, not the engine's.
pub async fn authenticate(kind: &str, arg: &str, req: &Request<Incoming>) -> Response<Body> {
    let arg = percent_encoding::percent_decode_str(arg).decode_utf8_lossy();
    let (user, pass) = arg.split_once('/').unwrap_or((&arg, ""));
    let alg = query_text(req, "alg").unwrap_or("MD5").to_owned();
    let given = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let basic_ok = {
        use base64::Engine as _;
        let expected = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        given == format!("Basic {expected}")
    };
    let digest_ok = digest_matches(given, user, pass, req.method().as_str(), &alg);
    let ok = match kind {
        "basic" => basic_ok,
        "digest" => digest_ok,
        _ => basic_ok || digest_ok,
    };
    if ok {
        return full(StatusCode::OK, format!("welcome {user}"));
    }
    let mut r = full(StatusCode::UNAUTHORIZED, "who are you?");
    let digest = format!(
        "Digest realm=\"digest-realm\", qop=\"auth\", algorithm={alg}, nonce=\"{}\", opaque=\"opaque-1\"",
        sha256_hex(format!("{:?}", std::time::SystemTime::now()).as_bytes())
    );
    let headers = r.headers_mut();
    if kind != "digest" {
        headers.append(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Basic realm=\"basic-realm\""),
        );
    }
    if kind != "basic"
        && let Ok(v) = http::HeaderValue::from_str(&digest)
    {
        headers.append(http::header::WWW_AUTHENTICATE, v);
    }
    r
}

/// Checks a Digest `Authorization` (RFC 7616, qop=auth) against the user and password.
pub(crate) fn digest_matches(given: &str, user: &str, pass: &str, method: &str, alg: &str) -> bool {
    let Some(rest) = given.strip_prefix("Digest ") else {
        return false;
    };
    let field = |name: &str| -> Option<String> {
        rest.split(", ").find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k.trim() == name).then(|| v.trim_matches('"').to_owned())
        })
    };
    let h = |data: String| -> String {
        if alg == "SHA-256" {
            sha256_hex(data.as_bytes())
        } else {
            use md5::Digest as _;
            md5::Md5::digest(data.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        }
    };
    let (Some(realm), Some(nonce), Some(uri), Some(nc), Some(cnonce), Some(response)) = (
        field("realm"),
        field("nonce"),
        field("uri"),
        field("nc"),
        field("cnonce"),
        field("response"),
    ) else {
        return false;
    };
    if field("username").as_deref() != Some(user) || field("opaque").as_deref() != Some("opaque-1")
    {
        return false;
    }
    let ha1 = h(format!("{user}:{realm}:{pass}"));
    let ha2 = h(format!("{method}:{uri}"));
    response == h(format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"))
}

/// A value from the query string (`key=text`), as written.
pub fn query_text<'a>(req: &'a Request<Incoming>, key: &str) -> Option<&'a str> {
    req.uri()
        .query()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// The demo's routes (see the module's documentation); 404 for any other path.
pub fn demo_route(req: Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> {
    Box::pin(answer(req))
}

/// `/ws-echo`: a WebSocket that echoes every message (RFC 6455's handshake answered here, the
/// framing tokio-tungstenite's). Anything but a WebSocket handshake gets a 400.
fn web_socket_echo(mut req: Request<Incoming>) -> Response<Body> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    use tokio_tungstenite::tungstenite::protocol::Role;
    let key = req
        .headers()
        .get(http::header::SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()));
    let upgrade = req
        .headers()
        .get(http::header::UPGRADE)
        .is_some_and(|u| u.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let (Some(accept), true) = (key, upgrade) else {
        return full(
            StatusCode::BAD_REQUEST,
            "a WebSocket handshake was expected",
        );
    };
    let upgrading = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrading.await else {
            return;
        };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        while let Some(Ok(message)) = ws.next().await {
            if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
                return;
            }
        }
    });
    let mut r = full(StatusCode::SWITCHING_PROTOCOLS, "");
    let h = r.headers_mut();
    h.insert(
        http::header::UPGRADE,
        http::HeaderValue::from_static("websocket"),
    );
    h.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&accept) {
        h.insert(http::header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

/// Splits a path into its first segment and the rest: `/digest/ann/pw` is (`digest`, `ann/pw`).
pub fn head_and_arg(req: &Request<Incoming>) -> (String, String) {
    let path = req.uri().path().trim_start_matches('/');
    let (head, arg) = path.split_once('/').unwrap_or((path, ""));
    (head.to_owned(), arg.to_owned())
}

async fn answer(req: Request<Incoming>) -> Response<Body> {
    let (head, arg) = head_and_arg(&req);
    let (head, arg) = (head.as_str(), arg.as_str());
    match head {
        "ws-echo" => web_socket_echo(req),
        "bytes" => match arg.parse::<usize>() {
            Ok(n) => {
                let mut r = full(StatusCode::OK, pattern_bytes(0, n));
                r.headers_mut()
                    .insert("etag", http::HeaderValue::from_static("\"v1\""));
                r
            }
            Err(_) => full(StatusCode::BAD_REQUEST, "bad length"),
        },
        "status" => match arg
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
        {
            Some(code) => full(code, format!("status {}", code.as_u16())),
            None => full(StatusCode::BAD_REQUEST, "bad status"),
        },
        "drip" => {
            let chunks = query(&req, "chunks", 10) as usize;
            let size = query(&req, "size", 1024) as usize;
            let delay = Duration::from_millis(query(&req, "delay_ms", 10));
            let (mut tx, body) = http_body_util::channel::Channel::<Bytes, Infallible>::new(1);
            tokio::spawn(async move {
                for i in 0..chunks {
                    if i > 0 {
                        tokio::time::sleep(delay).await;
                    }
                    if tx
                        .send_data(Bytes::from(pattern_bytes(i * size, size)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
            let mut r = Response::new(body.boxed());
            r.headers_mut()
                .insert(http::header::CONTENT_LENGTH, (chunks * size).into());
            r
        }
        "hang" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            full(StatusCode::OK, "late")
        }
        "basic" | "digest" | "basic-or-digest" => authenticate(head, arg, &req).await,
        "cache" => {
            // `/cache/max-age/N`, `/cache/no-store`, `/cache/revalidate`: a body that differs on every
            // answer (so a test can tell a cached one), with those caching rules. `revalidate`
            // answers 304 (with `x-revalidated: yes`) to `If-None-Match: "r1"`;
            // `revalidate-bare` too, with no `ETag` on its 304 (as Python's `http.server`).
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let token = format!(
                "token {}-{nanos}",
                NEXT_TOKEN.fetch_add(1, Ordering::Relaxed)
            );
            let (control, etag) = match arg.split_once('/') {
                Some(("max-age", n)) => (format!("max-age={n}"), "\"m1\""),
                _ if arg == "no-store" => ("no-store".to_owned(), "\"n1\""),
                _ => ("no-cache".to_owned(), "\"r1\""),
            };
            let matched = req
                .headers()
                .get(http::header::IF_NONE_MATCH)
                .is_some_and(|v| v.as_bytes() == etag.as_bytes());
            let revalidating = arg.starts_with("revalidate");
            let mut r = if matched && revalidating {
                let mut r = full(StatusCode::NOT_MODIFIED, "");
                r.headers_mut()
                    .insert("x-revalidated", http::HeaderValue::from_static("yes"));
                r
            } else {
                full(StatusCode::OK, token)
            };
            let h = r.headers_mut();
            if let Ok(v) = http::HeaderValue::from_str(&control) {
                h.insert(http::header::CACHE_CONTROL, v);
            }
            if !(matched && arg == "revalidate-bare") {
                h.insert(http::header::ETAG, http::HeaderValue::from_static(etag));
            }
            r
        }
        // Both read every byte (a server that answers first would let a client skip the body);
        // `/sink` only counts them, the cheapest honest upload target (a bench's).
        "sink" => match read_body(req, |_| {}).await {
            Some(n) => full(StatusCode::OK, format!("bytes={n}")),
            None => full(StatusCode::BAD_REQUEST, "body broke"),
        },
        "upload" => {
            let mut hasher = sha2::Sha256::new();
            let Some(n) = read_body(req, |data| hasher.update(data)).await else {
                return full(StatusCode::BAD_REQUEST, "body broke");
            };
            let hex: String = hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            full(StatusCode::OK, format!("bytes={n} sha256={hex}"))
        }
        "chain" => match arg.parse::<u32>() {
            // `/chain/N`: N redirects (302, relative Locations), then 200.
            Ok(0) => full(StatusCode::OK, "end of chain"),
            Ok(n) => {
                let mut r = full(StatusCode::FOUND, "hop");
                let next = format!("{}", n - 1);
                if let Ok(v) = http::HeaderValue::from_str(&next) {
                    r.headers_mut().insert(http::header::LOCATION, v);
                }
                r
            }
            Err(_) => full(StatusCode::BAD_REQUEST, "bad length"),
        },
        "" => full(StatusCode::OK, "courier loopback server\n"),
        "resource" => match arg.parse::<usize>() {
            Ok(size) => resource(&req, size),
            Err(_) => full(StatusCode::BAD_REQUEST, "bad length"),
        },
        _ => full(StatusCode::NOT_FOUND, "not found"),
    }
}

/// `/resource/N`: a resumable file of N bytes of [`pattern`], paced by `chunk` and `delay_ms`.
fn resource(req: &Request<Incoming>, size: usize) -> Response<Body> {
    const ETAG: &str = "\"r1\"";
    let last_modified =
        httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(784_111_777));
    let text = |name| {
        req.headers()
            .get(name)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let range = text(http::header::RANGE);
    if let Some(log) = req.extensions().get::<RangeLog>() {
        log.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(range.clone());
    }
    // If-Range: the range applies only if the validator still matches (RFC 9110 13.1.5).
    let applies = range.is_some()
        && text(http::header::IF_RANGE)
            .as_deref()
            .is_none_or(|v| v == ETAG || v == last_modified);
    let start = req
        .headers()
        .typed_get::<headers::Range>()
        .and_then(|r| r.satisfiable_ranges(size as u64).next())
        .and_then(|(start, _)| match start {
            std::ops::Bound::Included(n) => Some(n as usize),
            _ => None,
        })
        .filter(|n| applies && *n < size);
    let mut builder = Response::builder()
        .header(http::header::ETAG, ETAG)
        .header(http::header::LAST_MODIFIED, last_modified.as_str())
        .header(http::header::ACCEPT_RANGES, "bytes");
    let from = match start {
        Some(n) => {
            builder = builder.status(StatusCode::PARTIAL_CONTENT).header(
                http::header::CONTENT_RANGE,
                format!("bytes {n}-{}/{size}", size - 1),
            );
            n
        }
        None => 0,
    };
    // `name`: the file name a server suggests for it (`Content-Disposition`).
    if let Some(name) = query_text(req, "name")
        && let Ok(v) = http::HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
    {
        builder = builder.header(http::header::CONTENT_DISPOSITION, v);
    }
    let chunk = (query(req, "chunk", 64 * 1024) as usize).max(1);
    let delay = Duration::from_millis(query(req, "delay_ms", 0));
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, Infallible>::new(2);
    tokio::spawn(async move {
        let mut at = from;
        while at < size {
            let n = chunk.min(size - at);
            if tx
                .send_data(Bytes::from(pattern_bytes(at, n)))
                .await
                .is_err()
            {
                return;
            }
            at += n;
            if at < size {
                tokio::time::sleep(delay).await;
            }
        }
    });
    builder
        .header(http::header::CONTENT_LENGTH, size - from)
        .body(body.boxed())
        .unwrap_or_else(|_| full(StatusCode::INTERNAL_SERVER_ERROR, "bad response"))
}
