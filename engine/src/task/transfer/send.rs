//! Sending one request under the clock, and what its response head tells: metrics, cookies,
//! whether the connection's trust was overridden; a request the server did not take sent again
//! (which failures those are: `failure`).

use super::failure::{NotTaken, is_superseded, transport_kind};
use super::upload::SentTally;
use super::*;

impl Run {
    /// The metrics log, when someone will read it (a delegate that implements
    /// `did_finish_collecting_metrics`): otherwise nothing is recorded, and no request pays for it.
    pub(super) fn metrics(&self) -> Option<std::sync::MutexGuard<'_, MetricsLog>> {
        self.metrics
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Records the arrival of a response head on the current transaction.
    pub(super) fn note_response(&mut self, response: &http::Response<ResponseBody>) {
        let connection = response.extensions().get::<ConnectionInfo>().cloned();
        // A response over a connection the application trusted against standard verification:
        // nothing of it outlives the session (Chromium and curl CVE-2021-22924's rule).
        self.overridden = connection.as_ref().is_some_and(|c| c.trust_overridden);
        // Every response's cookies count, a redirect's included: the next hop sends them.
        let main = self.info.original_request().url();
        if let Some(cookies) = &self.ctx.cookies {
            cookies.store_from(
                self.ctx.config.http_cookie_accept_policy,
                response.headers(),
                &self.url,
                main,
                self.overridden,
            );
        }
        // Whether a connection was used before is noted whoever records it: a later task on the
        // same connection must see it as reused.
        let reused = connection.as_ref().map(|c| c.note_use());
        let Some(mut log) = self.metrics() else {
            return;
        };
        let Some(t) = log.transactions.last_mut() else {
            return;
        };
        t.response_start = Some(std::time::Instant::now());
        t.status = Some(response.status().as_u16());
        t.response_header_bytes_received = response_head_bytes(response);
        if let Some(c) = &connection {
            t.local_address = c.local;
            t.remote_address = Some(c.remote);
            t.tls_protocol_version = c.tls_version;
            t.tls_cipher_suite = c.cipher_suite;
            t.proxy_connection = c.via_proxy;
        }
        t.protocol = Some(match response.version() {
            http::Version::HTTP_2 => "h2",
            http::Version::HTTP_10 => "http/1.0",
            _ => "http/1.1",
        });
        if let (Some(c), Some(reused)) = (connection, reused) {
            t.reused_connection = reused;
            if !reused {
                t.domain_lookup = Some(c.dns);
                t.connect = Some(c.connect);
                t.secure_connection = c.tls.then_some(c.tls_handshake);
            }
        }
    }

    /// Opens a transaction's metrics (when someone reads them): one per request sent or answer
    /// taken from the cache; `fill` sets what is known already. `fetch_start` is when the fetch
    /// began, read by the caller when metrics are recorded (now, when it was not read).
    pub(super) fn open_transaction(
        &self,
        fetch_type: FetchType,
        fetch_start: Option<std::time::Instant>,
        fill: impl FnOnce(&mut TransactionMetrics),
    ) {
        if let Some(mut log) = self.metrics() {
            let fetch_start = fetch_start.unwrap_or_else(std::time::Instant::now);
            let mut t = TransactionMetrics {
                url: self.url.to_string(),
                fetch_type,
                protocol: None,
                reused_connection: false,
                fetch_start,
                domain_lookup: None,
                connect: None,
                secure_connection: None,
                request_start: None,
                request_end: None,
                response_start: None,
                response_end: None,
                status: None,
                request_header_bytes_sent: 0,
                request_body_bytes_sent: 0,
                response_header_bytes_received: 0,
                response_body_bytes_received: 0,
                response_body_bytes_after_decoding: 0,
                local_address: None,
                remote_address: None,
                tls_protocol_version: None,
                tls_cipher_suite: None,
                proxy_connection: false,
            };
            fill(&mut t);
            log.transactions.push(t);
        }
    }

    /// Closes the current transaction (its body ended, or was abandoned for a redirect or retry).
    pub(super) fn end_transaction(&mut self) {
        // A request that got no response: the host's next in line may go.
        self.turn = None;
        let moved = std::mem::take(&mut self.moved);
        if let Some(mut log) = self.metrics()
            && let Some(t) = log.transactions.last_mut()
            && t.response_end.is_none()
        {
            t.response_end = Some(std::time::Instant::now());
            t.response_body_bytes_received = moved.wire_in;
            t.response_body_bytes_after_decoding = moved.decoded_in;
            match &moved.out {
                Some(tally) => {
                    t.request_body_bytes_sent = tally.bytes();
                    t.request_end = tally.ended();
                }
                None => t.request_end = t.request_start,
            }
        }
    }

    /// Sends one request and waits for its response head, under the clock. With
    /// `wait_for_connectivity`, a host whose network cannot be reached is tried again (with
    /// backoff) until it can, the delegate told once (`task_is_waiting_for_connectivity`); only the
    /// resource timeout (or a cancel) ends the wait.
    pub(super) async fn send(
        &mut self,
        head: &Head,
        body: Option<&UploadBody>,
    ) -> Result<http::Response<ResponseBody>, Halt> {
        // An upload task made from resume data goes on at its upload resource. Boxed: rare.
        if let Some(body) = body
            && let Some(offered) = self.offered.clone()
            && let Some(resource) = offered.url(&self.url)
        {
            let outcome = Box::pin(self.go_on_with_upload(head, body, &offered, resource)).await;
            return self.answered(outcome);
        }
        let mut told = false;
        let mut backoff = CONNECTIVITY_FIRST_RETRY;
        let (mut superseded, mut closed) = (0, 0);
        let mut not_taken = NotTaken::default();
        loop {
            match self.send_once(head, body, 0).await {
                // An HTTP/2 server that is closing its connection (nginx after 1,000 requests on
                // it) or refusing streams did not act on the request: it goes again, on a
                // connection the pool opens or has (every request in flight on that connection
                // met this at once, and each failed with -1005). A graceful close (`GOAWAY` with
                // no error) may come round after round while a burst waits ([`NotTaken`]).
                Err(Halt::Failed(e)) if not_taken.again(&e) => {
                    self.end_transaction();
                    tracing::debug!(url = %self.url, error = %e, "not taken by the server: sent again");
                }
                // The connection closed before any of the response: most often a kept-alive
                // connection the server gave up on as the request went out (its idle timeout, its
                // request limit). An idempotent request without a body goes once more, on a new
                // connection, as curl and browsers send it; a second close is the server's answer.
                // (An upload is not sent twice unasked.)
                Err(Halt::Failed(e))
                    if closed < 1
                        && body.is_none()
                        && head.method.is_idempotent()
                        && matches!(
                            transport_kind(&e),
                            Some(
                                TransportErrorKind::ClosedBeforeResponse
                                    | TransportErrorKind::ConnectionLost
                            )
                        ) =>
                {
                    closed += 1;
                    self.end_transaction();
                    tracing::debug!(url = %self.url, error = %e, "closed before a response: sent again");
                }
                // The pool raced an HTTP/2 connection opening: nothing was sent, and the request
                // goes on that connection when sent again.
                // A server that does not take Courier's own `Expect: 100-continue` (RFC 9110
                // 10.1.1: the client SHOULD repeat the request without it), as curl repeats it.
                // One the request set itself is the application's to handle.
                Ok(response)
                    if response.status() == http::StatusCode::EXPECTATION_FAILED
                        && self.own_expect == OwnExpect::Sent =>
                {
                    drop(response);
                    self.own_expect = OwnExpect::Refused;
                    self.end_transaction();
                    tracing::debug!(url = %self.url, "417 to our Expect: sent again without it");
                }
                Err(Halt::Failed(e)) if is_superseded(&e) && superseded < SUPERSEDED_RETRIES => {
                    superseded += 1;
                    self.end_transaction();
                    // The connection may not be in the pool yet: it is counted as open once its
                    // TLS handshake is done, and pooled after hyper's HTTP/2 handshake, which on a
                    // multi-thread runtime may still be under way on another worker. After one
                    // retry at once, each waits longer (1, 2, 4... ms).
                    if superseded > 1 {
                        let wait = std::time::Duration::from_millis(1 << (superseded - 2).min(6));
                        unless_stopped(&mut self.gate, tokio::time::sleep(wait)).await?;
                    }
                }
                Err(Halt::Failed(e))
                    if e.code() == ErrorCode::NotConnectedToInternet
                        && self.ctx.config.wait_for_connectivity =>
                {
                    self.end_transaction();
                    if !told {
                        told = true;
                        if self.actor.cast(TaskMsg::WaitingForConnectivity).is_err() {
                            return Err(Halt::Interrupted);
                        }
                    }
                    tracing::debug!(url = %self.url, ?backoff, "waiting for connectivity");
                    unless_stopped(&mut self.gate, tokio::time::sleep(backoff)).await?;
                    backoff = (backoff * 2).min(CONNECTIVITY_LAST_RETRY);
                }
                // A lost connection after the server offered to resume the upload
                // (`resumable.rs`). Boxed: rare, and large.
                other
                    if resumable::lost(&other)
                        && let Some(body) = body
                        && let Some(offered) = self.offered.clone()
                        && let Some(resource) = offered.url(&self.url) =>
                {
                    let length = offered.length();
                    let outcome =
                        Box::pin(self.resume_upload(head, body, length, resource, other)).await;
                    return self.answered(outcome);
                }
                other => return self.answered(other),
            }
        }
    }

    /// [`Run::send`]'s outcome: an answer is the upload's final one, and leaves nothing to
    /// resume; a failure keeps the upload resource, for the resume data.
    fn answered(
        &mut self,
        outcome: Result<http::Response<ResponseBody>, Halt>,
    ) -> Result<http::Response<ResponseBody>, Halt> {
        if outcome.is_ok() {
            self.offered = None;
        }
        outcome
    }

    /// One attempt of [`Run::send`]; `from`, the first byte of the body sent (0 but for the rest
    /// of a resumed upload).
    pub(super) async fn send_once(
        &mut self,
        head: &Head,
        body: Option<&UploadBody>,
        from: u64,
    ) -> Result<http::Response<ResponseBody>, Halt> {
        if self.own_expect == OwnExpect::Sent {
            self.own_expect = OwnExpect::NotSent;
        }
        // The first request may have its turn already, taken for `head` when the transfer started
        // (`Transfer::start`): nothing changes a request between then and its first send.
        let (queued, fetch_start) = match self.queued.take() {
            Some((turn, fetch_start)) => (Some(turn), fetch_start),
            // Read only when someone records the metrics (a clock read per request otherwise).
            None => (None, self.metrics.is_some().then(std::time::Instant::now)),
        };
        let mut builder = http::Request::builder()
            .method(head.method.clone())
            .uri(head.uri.clone());
        if let Some(h) = builder.headers_mut() {
            // Copied with room for the fields added on the way (`Cookie` here, `Host` in
            // hyper-util's client, a body's `Content-Length` below): a map cloned at its exact
            // size is reallocated, bucket by bucket, by the first insert.
            *h = http::HeaderMap::with_capacity(
                head.headers.len() + 2 + usize::from(body.is_some()),
            );
            h.extend(head.headers.iter().map(|(n, v)| (n.clone(), v.clone())));
            // The jar's cookies for this URL, unless the request brings its own.
            if self.ctx.config.http_should_set_cookies
                && !h.contains_key(http::header::COOKIE)
                && !head.omits(&http::header::COOKIE)
                && let Some(cookies) = &self.ctx.cookies
                && let Some(cookie) = cookies.header_for(&self.url)
            {
                h.insert(http::header::COOKIE, cookie);
            }
            // A priority other than the default travels with the request, as RFC 9218's
            // `priority` field: what HTTP/2 (and HTTP/3) servers read as the stream's urgency.
            if let Some(urgency) = urgency(self.info.priority())
                && !h.contains_key(PRIORITY)
                && !head.omits(&PRIORITY)
            {
                h.insert(PRIORITY, urgency);
            }
        }
        if !self.ctx.config.protocol_handlers.is_empty()
            && let Some(h) = builder.headers_mut()
        {
            let mut asked = Request::new(head.method.clone(), self.url.as_str());
            *asked.headers_mut() = std::mem::take(h);
            if let Some(UploadBody::Bytes(bytes)) = body {
                asked.set_body(bytes.clone());
            }
            let handlers = &self.ctx.config.protocol_handlers;
            if let Some(handler) = protocol::claimer(handlers, &asked).cloned() {
                // Boxed, as the upload's preparation below: the rare paths do not make every
                // request's future larger.
                return Box::pin(self.ask_handler(&*handler, asked, fetch_start)).await;
            }
            *h = std::mem::take(asked.headers_mut());
        }
        let mut continuing = None;
        let request_body = match body {
            Some(source) => {
                // Counted for the metrics too, when someone reads them.
                let tally = self.metrics.is_some().then(Arc::default);
                self.moved.out = tally.clone();
                let tells =
                    self.callbacks && self.ctx.delegate_wants(&self.info, Callback::SendBodyData);
                let sent_to = upload::SentTo {
                    record: self.recorder.clone(),
                    actor: tells.then(|| self.actor.clone()),
                };
                // A delegate slow to hand over a stream must not hold up a cancel.
                let preparing = upload::prepare(
                    source,
                    from,
                    &self.ctx,
                    &self.info,
                    self.callbacks,
                    self.resending,
                    sent_to,
                    tally,
                );
                // Boxed: 1 KB that a request without a body would carry in its future too.
                let prepared = unless_stopped(&mut self.gate, Box::pin(preparing)).await??;
                self.resending = true;
                if let (Some(len), Some(h)) = (prepared.length, builder.headers_mut()) {
                    h.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
                    // An upload task's body that can be read again from any byte: offered to
                    // the server as a resumable upload, as URLSession's are.
                    if from == 0
                        && self.info.kind() == courier_delegates::TaskKind::Upload
                        && matches!(source, UploadBody::Bytes(_) | UploadBody::File(_))
                    {
                        // (A `PATCH` from offset 0 speaks the protocol itself: no new offer,
                        // and the upload resource it goes on at stays.)
                        if let Some(offer) = resumable::offer(h, len, source) {
                            self.offered = Some(offer);
                        }
                    }
                }
                match self.expects_continue(head, prepared.length) {
                    Some((gate, ours)) => {
                        if ours {
                            self.own_expect = OwnExpect::Sent;
                        }
                        if let Some(h) = builder.headers_mut() {
                            h.insert(
                                http::header::EXPECT,
                                http::HeaderValue::from_static("100-continue"),
                            );
                        }
                        let held =
                            gate.hold(prepared.body, self.ctx.config.expect_continue_timeout);
                        continuing = Some(gate);
                        held
                    }
                    None => prepared.body,
                }
            }
            None => empty_body(),
        };
        // An HTTP/1.1 host serves one exchange per connection: wait for a turn, behind tasks of
        // higher priority (a cancel or a pause ends the wait).
        self.turn = None;
        if queued.is_some() || self.ctx.transport.speaks_http1(&head.uri) {
            // HTTP/1.1's `Host`, unless the request brings its own: hyper-util would add the same
            // field, with a `format!` when the port is not the scheme's default.
            if let Some(h) = builder.headers_mut()
                && !h.contains_key(http::header::HOST)
                && let Some(host) = &head.host
            {
                h.insert(http::header::HOST, host.clone());
            }
            self.turn = Some(match queued {
                Some(turn) => turn,
                None => {
                    let waiting = self.ctx.host_queue.turn(&head.uri, self.info.priority());
                    unless_stopped(&mut self.gate, waiting).await?
                }
            });
        }
        // The head's size is counted only for a transaction that is recorded.
        self.open_transaction(FetchType::Network, fetch_start, |t| {
            t.request_start = Some(std::time::Instant::now());
            t.request_header_bytes_sent = builder
                .headers_ref()
                .map_or(0, |h| request_head_bytes(&head.method, &head.uri, h));
        });
        // Made in a block of its own: the request then takes no room in this future beside the
        // sending future it moves into.
        let sending = {
            let mut request = builder.body(request_body).map_err(|e| {
                Error::new(ErrorCode::BadUrl, format!("bad request: {e}"))
                    .with_url(self.url.as_str())
                    .with_source(e)
            })?;
            let resource = self.offered.clone();
            self.hear_informational(&mut request, continuing.clone(), resource);
            // The session's context, not a clone of its transport (a dozen reference counts and
            // hyper-util's builder, copied for every request).
            let ctx = self.ctx.clone();
            async move { ctx.transport.send(request).await }
        };
        let sent = self
            .timed_while(std::pin::pin!(sending), body.is_some())
            .await;
        // A final answer before the server asked for the body: the body is not sent.
        if let Some(gate) = &continuing {
            gate.close();
        }
        match sent {
            Ok(Ok(r)) => {
                let turn = self.turn.take();
                let r = r.map(|incoming| ResponseBody::Wire(incoming, turn));
                self.note_response(&r);
                Ok(r)
            }
            Ok(Err(e)) => Err(Halt::Failed(map_transport_error(e, &self.url))),
            Err(halt) => Err(halt),
        }
    }
}

impl Run {
    /// The gate an upload of `length` bytes waits behind for `100 Continue`, when it asks for one:
    /// a large (or unknown-length) body over HTTP/1.1 (unless a server refused the header with a
    /// 417 already, or the request left the field out), or any body whose request set the header;
    /// with whether the header is Courier's own.
    fn expects_continue(
        &self,
        head: &Head,
        length: Option<u64>,
    ) -> Option<(expect::ContinueGate, bool)> {
        let asked = head
            .headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let large = self.own_expect != OwnExpect::Refused
            && !head.omits(&http::header::EXPECT)
            && match (self.ctx.config.expect_continue_threshold, length) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(threshold), Some(len)) => len >= threshold,
            };
        ((asked || large) && self.ctx.transport.speaks_http1(&head.uri))
            .then(|| (expect::ContinueGate::new(), !asked))
    }

    /// Has 1xx responses open the upload's gate (`100 Continue`) and reach the delegate, when
    /// either is wanted; otherwise nothing is registered, and nothing is paid.
    fn hear_informational(
        &self,
        request: &mut http::Request<courier_protocol_http::RequestBody>,
        gate: Option<expect::ContinueGate>,
        resource: Option<resumable::UploadResource>,
    ) {
        let tell = self.ctx.config.deliver_informational_responses
            && self.callbacks
            && self
                .ctx
                .delegate_wants(&self.info, Callback::InformationalResponse);
        if gate.is_none() && !tell && resource.is_none() {
            return;
        }
        let (actor, url) = (self.actor.clone(), self.url.clone());
        hyper::ext::on_informational(request, move |response| {
            // A `104 (Upload Resumption Supported)` may stand for `100 Continue` (the draft).
            let resumable = resource
                .as_ref()
                .is_some_and(|r| r.hear(response.status(), response.headers()));
            let goes_on = resumable || response.status() == http::StatusCode::CONTINUE;
            if goes_on && let Some(gate) = &gate {
                gate.open();
            }
            if tell {
                let seen = Response::new(
                    url.clone(),
                    response.status(),
                    response.version(),
                    response.headers().clone(),
                );
                let _ = actor.cast(TaskMsg::Informational(seen));
            }
        });
    }

    /// Has a protocol handler answer `request` in place of the network, under the same clock.
    async fn ask_handler(
        &mut self,
        handler: &dyn ProtocolHandler,
        request: Request,
        fetch_start: Option<std::time::Instant>,
    ) -> Result<http::Response<ResponseBody>, Halt> {
        self.open_transaction(FetchType::Unknown, fetch_start, |t| {
            t.request_start = Some(std::time::Instant::now());
        });
        let answer = self
            .timed(std::pin::pin!(handler.answer(request)))
            .await?
            .map_err(|e| {
                if e.failing_url().is_none() {
                    e.with_url(self.url.as_str())
                } else {
                    e
                }
            })?;
        let mut response = http::Response::new(ResponseBody::from(answer.body));
        *response.status_mut() = answer.status;
        *response.headers_mut() = answer.headers;
        self.note_response(&response);
        Ok(response)
    }
}

/// How many times a request whose connection was superseded is sent again (each time means an
/// HTTP/2 connection opened meanwhile: once is the rule). With the waits between them, the last
/// comes about a quarter of a second after the first; three retries at once were not enough when
/// the new connection was still being handed to the pool on another worker.
const SUPERSEDED_RETRIES: u32 = 10;

/// The first wait before trying an unreachable host again; each later one doubles, up to
/// [`CONNECTIVITY_LAST_RETRY`].
const CONNECTIVITY_FIRST_RETRY: std::time::Duration = std::time::Duration::from_millis(250);
const CONNECTIVITY_LAST_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// What one transaction moved, kept by the transfer until the transaction ends.
#[derive(Default)]
pub(super) struct Moved {
    /// Response body bytes as they came.
    pub(super) wire_in: u64,
    /// Response body bytes after decoding.
    pub(super) decoded_in: u64,
    /// The request body's count, when there is a body and someone reads the metrics.
    pub(super) out: Option<Arc<SentTally>>,
}

/// A request head's size as HTTP/1.1 writes it: the request line, a `Host` header hyper adds
/// when the request has none, each header, the blank line.
fn request_head_bytes(method: &http::Method, uri: &http::Uri, headers: &http::HeaderMap) -> u64 {
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    // "METHOD SP target SP HTTP/1.1 CRLF"
    let mut n = method.as_str().len() + 1 + target.len() + 11;
    if !headers.contains_key(http::header::HOST) {
        n += "host: ".len() + uri.authority().map_or(0, |a| a.as_str().len()) + 2;
    }
    (n + fields_bytes(headers) + 2) as u64
}

/// A response head's size as HTTP/1.1 writes it: the status line, each header, the blank line.
fn response_head_bytes(response: &http::Response<ResponseBody>) -> u64 {
    let reason = response.status().canonical_reason().unwrap_or("");
    // "HTTP/1.1 SP 200 SP reason CRLF"
    let line = 9 + 3 + 1 + reason.len() + 2;
    (line + fields_bytes(response.headers()) + 2) as u64
}

/// Header fields as `name: value CRLF` lines.
fn fields_bytes(headers: &http::HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum()
}

/// RFC 9218's request header field.
const PRIORITY: http::HeaderName = http::HeaderName::from_static("priority");

/// A task priority (0.0 to 1.0, URLSession's scale) as RFC 9218's urgency (0, most urgent, to 7):
/// 1.0 is `u=0`, the default 0.5 is the RFC's default `u=3` (then nothing is sent), 0.0 is `u=6`;
/// `u=7`, which the RFC keeps for background work a client does not wait for, is not used.
fn urgency(priority: f32) -> Option<http::HeaderValue> {
    const URGENCIES: [&str; 7] = ["u=0", "u=1", "u=2", "u=3", "u=4", "u=5", "u=6"];
    let u = ((1.0 - priority.clamp(0.0, 1.0)) * 6.0).round() as usize;
    (u != 3).then(|| http::HeaderValue::from_static(URGENCIES[u.min(6)]))
}

#[cfg(test)]
mod tests {
    use super::urgency;

    #[test]
    fn priorities_map_onto_rfc_9218_urgencies() {
        let u = |p: f32| urgency(p).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(u(0.5), None, "the default is not sent");
        assert_eq!(u(1.0).as_deref(), Some("u=0"));
        assert_eq!(u(0.75).as_deref(), Some("u=2"), "high");
        assert_eq!(u(0.25).as_deref(), Some("u=5"), "low");
        assert_eq!(u(0.0).as_deref(), Some("u=6"));
        assert_eq!(u(0.45), None, "close to the default rounds to it");
    }
}
