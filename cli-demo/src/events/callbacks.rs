//! The delegate's callbacks: each writes its event line (through the coalescing in
//! `events.rs`), and those that must answer (challenges, redirects, caching, a new body stream)
//! answer as the command's options say.

use super::*;

impl SessionDelegate for CliDelegate {
    fn did_receive_challenge(
        &self,
        challenge: &AuthenticationChallenge,
        reply: Reply<AuthChallengeDisposition>,
    ) {
        let disposition = match (&challenge.server_trust, self.insecure, &self.identity) {
            (Some(trust), true, _) => {
                AuthChallengeDisposition::UseCredential(Some(Credential::trusting(trust)))
            }
            (None, _, Some(identity))
                if challenge.protection_space.method == AuthenticationMethod::ClientCertificate =>
            {
                AuthChallengeDisposition::UseCredential(Some(identity.clone()))
            }
            _ => AuthChallengeDisposition::PerformDefaultHandling,
        };
        self.emit_challenge(None, challenge, &disposition);
        reply.send(disposition);
    }

    fn did_finish_events_for_background_session(&self, identifier: &str) {
        let mut inner = self.inner();
        self.emit(
            &mut inner,
            "did_finish_events_for_background_session",
            None,
            json!({ "identifier": identifier }),
        );
        drop(inner);
        self.replayed.send_replace(true);
    }

    fn did_become_invalid(&self, error: Option<&Error>) {
        let mut inner = self.inner();
        let mut tasks: Vec<u64> = inner.pending.keys().map(|(t, _)| *t).collect();
        tasks.sort_unstable();
        tasks.dedup();
        for t in tasks {
            self.flush_data(&mut inner, t);
        }
        self.emit(
            &mut inner,
            "did_become_invalid",
            None,
            json!({ "error": error_json(error) }),
        );
        let flushed = inner.body.flush();
        drop(inner);
        self.note_output_error(flushed);
        self.invalid.send_replace(true);
    }
}

impl TaskDelegate for CliDelegate {
    fn did_open_with_protocol(&self, task: &TaskInfo, protocol: Option<&str>) {
        let mut inner = self.inner();
        let fields = json!({ "protocol": protocol });
        self.emit(
            &mut inner,
            "did_open_with_protocol",
            Some(task.id()),
            fields,
        );
        drop(inner);
        self.opened.send_replace(true);
    }

    fn read_closed(&self, task: &TaskInfo) {
        let mut inner = self.inner();
        self.emit(&mut inner, "read_closed", Some(task.id()), json!({}));
    }

    fn write_closed(&self, task: &TaskInfo) {
        let mut inner = self.inner();
        self.emit(&mut inner, "write_closed", Some(task.id()), json!({}));
    }

    fn did_close_with(&self, task: &TaskInfo, code: CloseCode, reason: Option<&[u8]>) {
        let mut inner = self.inner();
        let reason = reason.map(String::from_utf8_lossy);
        let fields = json!({ "code": code.code(), "reason": reason });
        self.emit(&mut inner, "did_close_with", Some(task.id()), fields);
    }

    fn did_change_state(&self, task: &TaskInfo, from: TaskState, to: TaskState) {
        if !self.logs {
            return leave_at_default(self, Callback::ChangeState);
        }
        let mut inner = self.inner();
        self.emit(
            &mut inner,
            "state",
            Some(task.id()),
            json!({ "from": from.name(), "to": to.name() }),
        );
    }

    fn did_receive_informational_response(&self, task: &TaskInfo, response: &Response) {
        let mut inner = self.inner();
        let fields = json!({
            "status": response.status().as_u16(),
            "headers": headers_json(response),
        });
        let event = "did_receive_informational_response";
        self.emit(&mut inner, event, Some(task.id()), fields);
    }

    fn task_is_waiting_for_connectivity(&self, task: &TaskInfo) {
        let mut inner = self.inner();
        self.emit(
            &mut inner,
            "task_is_waiting_for_connectivity",
            Some(task.id()),
            json!({}),
        );
    }

    fn did_receive_challenge(
        &self,
        task: &TaskInfo,
        challenge: &AuthenticationChallenge,
        reply: Reply<AuthChallengeDisposition>,
    ) {
        let space = &challenge.protection_space;
        let disposition = match (&self.credential, &self.netrc) {
            (Some(c), _) => AuthChallengeDisposition::with_given_credential(
                c,
                challenge,
                task.original_request().url(),
                self.location_trusted,
            ),
            // `-n`: the login of the host that asks, whichever URL led there; once.
            (None, Some(netrc)) if !space.is_proxy() => match netrc.login_for(&space.host) {
                Some(_) if challenge.previous_failure_count > 0 => {
                    AuthChallengeDisposition::UseCredential(None)
                }
                Some(login) => AuthChallengeDisposition::UseCredential(Some(Credential::password(
                    &login.user,
                    &login.password,
                    CredentialPersistence::ForSession,
                ))),
                None => AuthChallengeDisposition::PerformDefaultHandling,
            },
            _ => AuthChallengeDisposition::PerformDefaultHandling,
        };
        self.emit_challenge(Some(task.id()), challenge, &disposition);
        reply.send(disposition);
    }

    fn will_perform_http_redirection(
        &self,
        task: &TaskInfo,
        response: &Response,
        new_request: &Request,
        reply: Reply<Option<Request>>,
    ) {
        let mut inner = self.inner();
        self.emit(
            &mut inner,
            "will_perform_http_redirection",
            Some(task.id()),
            json!({
                "status": response.status().as_u16(),
                "location": crate::common::shown_url(new_request.url_str()),
                "method": new_request.method().as_str(),
            }),
        );
        // A 3xx not followed is the final response, written as such.
        if self.follow_redirects {
            self.dump_head(&mut inner, task.id(), response, false);
        }
        drop(inner);
        reply.send(self.follow_redirects.then(|| new_request.clone()));
    }

    fn need_new_body_stream(&self, task: &TaskInfo, reply: Reply<Option<BodyStream>>) {
        let stream = match &self.form_stream {
            // A form is read from its files again for each send.
            Some(form) => form
                .stream()
                .map_err(|e| {
                    self.progress
                        .println(&format!("courier: cannot read the -F form's file: {e}"));
                })
                .ok(),
            None => self.stream.as_ref().and_then(|s| s.hand_out()),
        };
        let mut inner = self.inner();
        self.emit(
            &mut inner,
            "need_new_body_stream",
            Some(task.id()),
            json!({ "offset": 0 }),
        );
        drop(inner);
        if stream.is_none() && self.form_stream.is_none() {
            self.progress
                .println("courier: the upload must be sent again, but its stream was read already");
        }
        reply.send(stream);
    }

    fn did_send_body_data(&self, task: &TaskInfo, sent: u64, total: u64, expected: Option<u64>) {
        // The event stream keeps URLSession's -1 for an unknown total.
        let (sent, total, expected) =
            (sent as i64, total as i64, expected.map_or(-1, |n| n as i64));
        self.progress.set(task.id(), total, expected);
        self.progress(task.id(), Flow::Sent, sent, total, expected);
    }

    fn did_finish_collecting_metrics(&self, task: &TaskInfo, metrics: &TaskMetrics) {
        if self.write_out.is_some() {
            self.inner().metrics.insert(task.id(), metrics.clone());
        }
        if !self.logs {
            if self.write_out.is_none() {
                leave_at_default(self, Callback::Metrics);
            }
            return;
        }
        // Instants as milliseconds since the session was created, like every line's `ms`;
        // durations in milliseconds.
        let at = |i: Option<std::time::Instant>| {
            i.map(|i| i.saturating_duration_since(self.start).as_secs_f64() * 1000.0)
        };
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
        let transactions: Vec<Value> = metrics
            .transactions
            .iter()
            .map(|t| {
                json!({
                    "url": crate::common::shown_url(&t.url),
                    "fetch_type": t.fetch_type.name(),
                    "protocol": t.protocol,
                    "reused_connection": t.reused_connection,
                    "fetch_start_ms": at(Some(t.fetch_start)),
                    "domain_lookup_ms": ms(t.domain_lookup),
                    "connect_ms": ms(t.connect),
                    "secure_connection_ms": ms(t.secure_connection),
                    "request_start_ms": at(t.request_start),
                    "request_end_ms": at(t.request_end),
                    "response_start_ms": at(t.response_start),
                    "response_end_ms": at(t.response_end),
                    "status": t.status,
                    "request_header_bytes_sent": t.request_header_bytes_sent,
                    "request_body_bytes_sent": t.request_body_bytes_sent,
                    "response_header_bytes_received": t.response_header_bytes_received,
                    "response_body_bytes_received": t.response_body_bytes_received,
                    "response_body_bytes_after_decoding": t.response_body_bytes_after_decoding,
                    // Address and port apart, as URLSession's `localAddress` and `localPort`.
                    "local_address": t.local_address.map(|a| a.ip().to_string()),
                    "local_port": t.local_address.map(|a| a.port()),
                    "remote_address": t.remote_address.map(|a| a.ip().to_string()),
                    "remote_port": t.remote_address.map(|a| a.port()),
                    "tls_protocol_version": t.tls_protocol_version,
                    "tls_cipher_suite": t.tls_cipher_suite,
                    "proxy_connection": t.proxy_connection,
                })
            })
            .collect();
        let mut inner = self.inner();
        self.emit(
            &mut inner,
            "did_finish_collecting_metrics",
            Some(task.id()),
            json!({ "redirect_count": metrics.redirect_count, "transactions": transactions }),
        );
    }

    fn did_complete(&self, task: &TaskInfo, error: Option<&Error>) {
        let response = task.response();
        let status = response.as_ref().map(|r| r.status().as_u16());
        let retry_after = response
            .as_ref()
            .filter(|r| retry::is_transient_status(r.status()))
            .and_then(|r| retry::retry_after(r.headers(), std::time::SystemTime::now()));
        // Following redirects (not `--no-follow`), a redirect that ends the task is one the engine
        // would not follow.
        let unfollowed = response
            .as_ref()
            .filter(|_| self.follow_redirects && error.is_none())
            .filter(|r| matches!(r.status().as_u16(), 301 | 302 | 303 | 307 | 308))
            .and_then(|r| r.headers().get(http::header::LOCATION))
            .map(|location| String::from_utf8_lossy(location.as_bytes()).into_owned());
        self.progress.finish(task.id());
        let mut inner = self.inner();
        let saved = inner.saved.remove(&task.id());
        inner.retried_on_status.remove(&task.id());
        let body_written = inner.wrote_body.remove(&task.id());
        if inner.unchecked_names.remove(&task.id()).is_some() && inner.unchecked_names.is_empty() {
            self.checks_names.store(false, Ordering::Release);
        }
        self.emit(
            &mut inner,
            "did_complete",
            Some(task.id()),
            json!({ "error": error_json(error), "status": status }),
        );
        // A download's final head (a data task's went at its response).
        if let Some(response) = &response {
            self.dump_head(&mut inner, task.id(), response, true);
            if let Some(file) = &self.etag_save
                && let Err(e) = crate::conditional::save_etag(file, response)
            {
                say!("courier: --etag-save: cannot write {}: {e}", file.display());
            }
        }
        inner.dumped.remove(&task.id());
        let line = self.write_out.as_ref().map(|(format, to)| {
            let metrics = inner.metrics.remove(&task.id());
            let current = task.current_request();
            let exit_code = if error.is_some() {
                crate::ExitCode::TaskFailed
            } else if status.is_some_and(|s| self.fails_on_status && s >= 400) {
                crate::ExitCode::HttpError
            } else {
                crate::ExitCode::Success
            };
            let outcome = crate::write_out::Outcome {
                url: task.original_request().url_str(),
                method: current.method().as_str(),
                response: response.as_ref(),
                metrics: metrics.as_ref(),
                error,
                exit_code: exit_code.code(),
                file: saved
                    .as_ref()
                    .and_then(|s| s.as_ref().ok())
                    .map(PathBuf::as_path)
                    .or(self.body_file.as_deref()),
                received: task.bytes_received(),
                sent: task.bytes_sent(),
            };
            (Bytes::from(format.render(&outcome)), *to)
        });
        // Under `--retry` the command writes the line, once it knows the task is not tried again.
        let (line, left_to_the_command) = match line {
            Some((line, _)) if self.retrying => (None, Some(line)),
            line => (line, None),
        };
        let flushed = {
            let inner = &mut *inner;
            match &line {
                Some((line, Stdout::Bodies)) => inner.with_body(task.id(), line),
                _ => Ok(()),
            }
            .and_then(|()| match inner.in_order.as_mut() {
                Some(in_order) => {
                    let cancelled =
                        error.is_some_and(|e| e.code() == courier_engine::ErrorCode::Cancelled);
                    in_order.completed(task.id(), cancelled, &mut inner.body)
                }
                None => Ok(()),
            })
            .and_then(|()| inner.body.flush())
            .map(|()| {
                // `get -o FILE -R`: the file takes the time of the body it holds last.
                if let (Some(file), Some(response), true) =
                    (&self.body_file, &response, self.remote_time)
                {
                    crate::conditional::set_remote_time(file, response);
                }
            })
            .and_then(|()| match &line {
                Some((line, Stdout::Apart)) => {
                    let mut stdout = std::io::stdout().lock();
                    stdout.write_all(line).and_then(|()| stdout.flush())
                }
                _ => Ok(()),
            })
        };
        drop(inner);
        self.note_output_error(flushed);
        let _ = self.finished.send(Finished {
            task: task.id(),
            status,
            error: error.cloned(),
            saved,
            retry_after,
            body_written,
            write_out: left_to_the_command,
            unfollowed,
        });
    }
}

/// Why a `-J` download is not saved: the name its server suggested is a file's already.
fn refusal(to: &Path) -> String {
    format!(
        "refusing to overwrite {}, which exists (the name came from the server)",
        to.display()
    )
}

impl CliDelegate {
    /// `-J`: at a download's first bytes, the name its response suggests is looked at, once. When
    /// a file has it already, the download is cancelled now, as curl -OJ stops at its first
    /// write, instead of after the whole body; the name is checked again as the file is moved
    /// (`Existing::Keep`), so a file that appears meanwhile is not replaced either.
    fn refuse_a_taken_name(&self, task: &TaskInfo) {
        let mut inner = self.inner();
        let handle = inner.unchecked_names.remove(&task.id());
        if inner.unchecked_names.is_empty() {
            self.checks_names.store(false, Ordering::Release);
        }
        let (Some(handle), Some(dir), Some(response)) = (
            handle,
            inner.named_by_response.get(&task.id()).cloned(),
            task.response(),
        ) else {
            return;
        };
        let to = inner.unsaved_name(&dir, &response.suggested_filename());
        if std::fs::symlink_metadata(&to).is_ok() {
            inner.saved.insert(task.id(), Err(refusal(&to)));
            drop(inner);
            handle.cancel();
        }
    }
}

impl DownloadDelegate for CliDelegate {
    fn did_write_data(&self, task: &TaskInfo, written: u64, total: u64, expected: Option<u64>) {
        if self.checks_names.load(Ordering::Acquire) {
            self.refuse_a_taken_name(task);
        }
        let (written, total) = (written as i64, total as i64);
        let expected = expected.map_or(-1, |n| n as i64);
        self.progress.set(task.id(), total, expected);
        self.progress(task.id(), Flow::Written, written, total, expected);
    }

    fn did_resume_at_offset(&self, task: &TaskInfo, offset: u64, expected: Option<u64>) {
        let (offset, expected) = (offset as i64, expected.map_or(-1, |n| n as i64));
        self.progress.restart_at(task.id(), offset, expected);
        let mut inner = self.inner();
        self.emit(
            &mut inner,
            "did_resume_at_offset",
            Some(task.id()),
            json!({ "offset": offset, "expected_total_bytes": expected }),
        );
    }

    fn did_finish_downloading_to(&self, task: &TaskInfo, location: &Path) {
        let mut inner = self.inner();
        self.emit(
            &mut inner,
            "did_finish_downloading_to",
            Some(task.id()),
            json!({ "path": location.to_string_lossy() }),
        );
        // Read once: each read copies the head.
        let response = task.response();
        let status = response.as_ref().map(Response::status);
        if status.is_some_and(|s| self.discards(s.as_u16())) {
            // `--fail`: an error page is not saved; the engine removes the file.
            return;
        }
        if inner.retried_on_status.contains(&task.id())
            && status.is_some_and(retry::is_transient_status)
        {
            // "Not now" is not the file: the download is tried again (`--retry`).
            return;
        }
        if matches!(inner.saved.get(&task.id()), Some(Err(_))) {
            // Refused at its first bytes (`refuse_a_taken_name`), and finished before its cancel.
            return;
        }
        if status == Some(http::StatusCode::NOT_MODIFIED) {
            // The file you have is current (`-z`, `--etag-compare`, an `If-None-Match` of your
            // own): an empty body does not take its place, as curl and wget leave it.
            return;
        }
        let mut existing = Existing::Replace;
        if let (Some(dir), Some(response)) =
            (inner.named_by_response.get(&task.id()).cloned(), &response)
        {
            // A name the server chose never replaces a file (curl's -J, CVE-2020-8177).
            existing = Existing::Keep;
            let to = inner.unsaved_name(&dir, &response.suggested_filename());
            inner.destinations.insert(task.id(), to);
        }
        if !inner.destinations.contains_key(&task.id())
            && let Some(dir) = inner.default_dir.clone()
        {
            let name = crate::download::file_name_for(task.original_request().url_str());
            let to = inner.unsaved_name(&dir, &name);
            inner.destinations.insert(task.id(), to);
        }
        // The file is removed when this returns: move it to its destination now.
        if let Some(to) = inner.destinations.get(&task.id()).cloned() {
            let moved = move_into_place(location, &to, existing)
                .map(|()| {
                    if let Some(response) = response.as_ref().filter(|_| self.remote_time) {
                        crate::conditional::set_remote_time(&to, response);
                    }
                    to.clone()
                })
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => refusal(&to),
                    _ => match self
                        .keeps_unsaved
                        .then(|| crate::download::keep_unsaved(location, &to))
                    {
                        Some(Some(kept)) => format!(
                            "cannot save {}: {e}; the download is kept at {}",
                            to.display(),
                            kept.display()
                        ),
                        _ => format!("cannot save {}: {e}", to.display()),
                    },
                });
            inner.saved.insert(task.id(), moved);
        }
    }
}

impl DataDelegate for CliDelegate {
    fn did_receive_response(
        &self,
        task: &TaskInfo,
        response: &Response,
        reply: Reply<ResponseDisposition>,
    ) {
        let disposition = ResponseDisposition::Allow;
        if !self.logs && !self.fail && !self.heads && !self.retrying && !self.dumps {
            // Nothing to write and no body to drop: the default answer, from now on without a
            // trip here.
            reply.send(disposition);
            return leave_at_default(self, Callback::ReceiveResponse);
        }
        let mut inner = self.inner();
        self.emit(
            &mut inner,
            "did_receive_response",
            Some(task.id()),
            json!({
                "status": response.status().as_u16(),
                "url": crate::common::shown_url(response.url().as_str()),
                "headers": headers_json(response),
                // The contract's -1 when unknown (URLSession's `NSURLResponseUnknownLength`),
                // never null: an encoded body, or one with no Content-Length.
                "expected_content_length": response
                    .expected_content_length()
                    .and_then(|n| i64::try_from(n).ok())
                    .unwrap_or(-1),
                "disposition": disposition.name(),
            }),
        );
        if self.discards(response.status().as_u16())
            || (inner.retried_on_status.contains(&task.id())
                && retry::is_transient_status(response.status()))
        {
            inner.discarding.insert(task.id());
        }
        self.dump_head(&mut inner, task.id(), response, true);
        // `-I`: the head where the body goes (none under `--fail` for an error status, as curl).
        let written = (self.heads && !inner.discarding.contains(&task.id()))
            .then(|| inner.with_body(task.id(), &Bytes::from(head_text(response))));
        drop(inner);
        if let Some(written) = written {
            self.note_output_error(written);
        }
        reply.send(disposition);
    }

    fn will_cache_response(
        &self,
        task: &TaskInfo,
        proposed: &CachedResponse,
        reply: Reply<Option<CachedResponse>>,
    ) {
        if !self.logs {
            // Nothing to write: the default answer (store it), from now on without a trip here.
            reply.send(Some(proposed.clone()));
            return leave_at_default(self, Callback::WillCache);
        }
        let mut inner = self.inner();
        self.emit(
            &mut inner,
            "will_cache_response",
            Some(task.id()),
            json!({ "stored": true }),
        );
        drop(inner);
        reply.send(Some(proposed.clone()));
    }

    fn did_become_download_task(&self, task: &TaskInfo, download_task: &TaskInfo) {
        let mut inner = self.inner();
        self.emit(
            &mut inner,
            "did_become_download_task",
            Some(task.id()),
            json!({ "download_task": download_task.id() }),
        );
    }

    fn did_become_stream_task(&self, task: &TaskInfo, stream_task: &TaskInfo) {
        let mut inner = self.inner();
        let fields = json!({ "stream_task": stream_task.id() });
        self.emit(
            &mut inner,
            "did_become_stream_task",
            Some(task.id()),
            fields,
        );
    }

    fn did_receive_data(&self, task: &TaskInfo, data: &Bytes) {
        let mut guard = self.inner();
        let inner = &mut *guard;
        let written = if inner.discarding.contains(&task.id()) {
            Ok(())
        } else if let Some(in_order) = inner.in_order.as_mut() {
            in_order.received(task.id(), data, &mut inner.body)
        } else {
            // Looked up only under `--retry`: this runs for every chunk of every body.
            if self.retrying && inner.retried_on_status.contains(&task.id()) {
                inner.wrote_body.insert(task.id());
            }
            inner.body.write_all(data)
        };
        drop(guard);
        self.note_output_error(written);
        if task.kind() == TaskKind::Data {
            // An upload's bar shows what it sent, not its response.
            self.progress.set(
                task.id(),
                task.bytes_received() as i64,
                task.bytes_expected_to_receive().map_or(-1, |n| n as i64),
            );
        }
        if self.logs {
            self.progress(task.id(), Flow::Received, data.len() as i64, 0, -1);
        }
    }
}
