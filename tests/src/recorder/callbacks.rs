//! The recorder's delegate callbacks: each writes its event down, and those that must answer
//! answer as the test set them up to.

use super::*;

impl SessionDelegate for Recorder {
    fn did_receive_challenge(
        &self,
        challenge: &AuthenticationChallenge,
        reply: Reply<AuthChallengeDisposition>,
    ) {
        self.push(Event::SessionChallenge {
            method: challenge.protection_space.method.name(),
            host: challenge.protection_space.host.clone(),
            chain_len: challenge.server_trust.as_ref().map_or(0, |t| t.chain.len()),
        });
        if challenge.protection_space.method
            == courier_engine::AuthenticationMethod::ClientCertificate
        {
            let answer = match &self.identity {
                Some((chain, key)) => AuthChallengeDisposition::UseCredential(Some(
                    Credential::identity(chain.clone(), key.clone()),
                )),
                None => AuthChallengeDisposition::PerformDefaultHandling,
            };
            return reply.send(answer);
        }
        reply.send(match (self.server_trust, &challenge.server_trust) {
            (TrustAnswer::TrustAll, Some(trust)) => {
                AuthChallengeDisposition::UseCredential(Some(Credential::trusting(trust)))
            }
            (TrustAnswer::Refuse, _) => AuthChallengeDisposition::UseCredential(None),
            (TrustAnswer::Cancel, _) => AuthChallengeDisposition::CancelAuthenticationChallenge,
            _ => AuthChallengeDisposition::PerformDefaultHandling,
        });
    }

    fn did_finish_events_for_background_session(&self, _identifier: &str) {
        self.push(Event::BackgroundEventsDelivered);
    }

    fn did_become_invalid(&self, _error: Option<&Error>) {
        self.push(Event::Invalid);
    }
}

impl TaskDelegate for Recorder {
    fn read_closed(&self, task: &TaskInfo) {
        self.push(Event::ReadClosed { task: task.id() });
    }

    fn write_closed(&self, task: &TaskInfo) {
        self.push(Event::WriteClosed { task: task.id() });
    }

    fn did_become_streams(&self, task: &TaskInfo) {
        self.push(Event::BecameStreams { task: task.id() });
    }

    fn did_open_with_protocol(&self, task: &TaskInfo, protocol: Option<&str>) {
        self.push(Event::Opened {
            task: task.id(),
            protocol: protocol.map(str::to_owned),
        });
    }

    fn did_close_with(
        &self,
        task: &TaskInfo,
        code: courier_engine::CloseCode,
        reason: Option<&[u8]>,
    ) {
        self.push(Event::Closed {
            task: task.id(),
            code: code.code(),
            reason: reason.map(|r| String::from_utf8_lossy(r).into_owned()),
        });
    }

    fn did_change_state(&self, task: &TaskInfo, from: TaskState, to: TaskState) {
        self.push(Event::State {
            task: task.id(),
            from,
            to,
        });
    }

    fn will_perform_http_redirection(
        &self,
        task: &TaskInfo,
        response: &Response,
        new_request: &Request,
        reply: Reply<Option<Request>>,
    ) {
        self.push(Event::Redirect {
            task: task.id(),
            status: response.status().as_u16(),
            location: new_request.url_str().to_owned(),
            method: new_request.method().to_string(),
        });
        reply.send(match &self.redirects {
            None => Some(new_request.clone()),
            Some(RedirectAnswer::Refuse) => None,
            Some(RedirectAnswer::AddHeader(name, value)) => Some(new_request.clone().with_header(
                courier_engine::reexports::http::HeaderName::from_static(name),
                courier_engine::reexports::http::HeaderValue::from_static(value),
            )),
        });
    }

    fn did_receive_challenge(
        &self,
        task: &TaskInfo,
        challenge: &AuthenticationChallenge,
        reply: Reply<AuthChallengeDisposition>,
    ) {
        self.push(Event::Challenge {
            task: task.id(),
            method: challenge.protection_space.method.name(),
            realm: challenge.protection_space.realm.clone(),
            previous_failure_count: challenge.previous_failure_count,
            proposed: challenge.proposed_credential.is_some(),
        });
        let answer = self
            .challenges
            .lock()
            .expect("challenges")
            .pop_front()
            .unwrap_or(AuthChallengeDisposition::PerformDefaultHandling);
        reply.send(answer);
    }

    fn did_create_task(&self, task: &TaskInfo) {
        self.push(Event::Created { task: task.id() });
    }

    fn task_is_waiting_for_connectivity(&self, task: &TaskInfo) {
        self.push(Event::WaitingForConnectivity { task: task.id() });
    }

    fn did_receive_informational_response(&self, task: &TaskInfo, response: &Response) {
        self.push(Event::Informational {
            task: task.id(),
            status: response.status().as_u16(),
            link: response
                .headers()
                .get("link")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        });
    }

    fn need_new_body_stream(&self, task: &TaskInfo, reply: Reply<Option<BodyStream>>) {
        self.push(Event::NeedBody { task: task.id() });
        let stream = self
            .stream_body
            .clone()
            .map(|b| Box::pin(std::io::Cursor::new(b)) as BodyStream);
        reply.send(stream);
    }

    fn did_send_body_data(&self, task: &TaskInfo, _sent: u64, total: u64, expected: Option<u64>) {
        self.push(Event::Sent {
            task: task.id(),
            total: total as i64,
            expected: minus_one(expected),
        });
    }

    fn did_finish_collecting_metrics(&self, task: &TaskInfo, metrics: &TaskMetrics) {
        let transactions = metrics
            .transactions
            .iter()
            .map(|t| {
                // Timings are complete when each step that happened comes in order.
                let ordered = t.request_start.is_some_and(|r| r >= t.fetch_start)
                    && match (t.request_start, t.response_start, t.response_end) {
                        (Some(a), Some(b), Some(c)) => a <= b && b <= c,
                        (_, None, _) => true,
                        _ => false,
                    };
                Transaction {
                    url: t.url.clone(),
                    status: t.status,
                    protocol: t.protocol,
                    reused: t.reused_connection,
                    ordered,
                    full: t.clone(),
                }
            })
            .collect();
        self.push(Event::Metrics {
            task: task.id(),
            redirect_count: metrics.redirect_count,
            transactions,
        });
    }

    fn did_complete(&self, task: &TaskInfo, error: Option<&Error>) {
        if let Some(e) = error {
            self.errors
                .lock()
                .expect("errors")
                .insert(task.id(), e.clone());
            if let Some(data) = e.resume_data() {
                self.resume_data
                    .lock()
                    .expect("resume")
                    .insert(task.id(), data.clone());
            }
        }
        self.push(Event::Complete {
            task: task.id(),
            error: error.map(|e| e.code()),
            failing_url: error.and_then(|e| e.failing_url().map(str::to_owned)),
        });
    }
}

impl DataDelegate for Recorder {
    fn did_become_stream_task(&self, task: &TaskInfo, stream_task: &TaskInfo) {
        self.push(Event::BecameStreamTask {
            task: task.id(),
            stream: stream_task.id(),
        });
    }

    fn did_receive_response(
        &self,
        task: &TaskInfo,
        response: &Response,
        reply: Reply<ResponseDisposition>,
    ) {
        self.push(Event::Response {
            task: task.id(),
            status: response.status().as_u16(),
        });
        if let Some(held) = &self.held {
            held.lock().expect("held").push(reply);
            return;
        }
        reply.send(self.disposition.unwrap_or(ResponseDisposition::Allow));
    }

    fn will_cache_response(
        &self,
        task: &TaskInfo,
        proposed: &CachedResponse,
        reply: Reply<Option<CachedResponse>>,
    ) {
        self.push(Event::WillCache {
            task: task.id(),
            bytes: proposed.data.len(),
        });
        reply.send((!self.refuse_caching).then(|| proposed.clone()));
    }

    fn did_become_download_task(&self, task: &TaskInfo, download_task: &TaskInfo) {
        self.push(Event::BecameDownload {
            task: task.id(),
            download: download_task.id(),
        });
    }

    fn did_receive_data(&self, task: &TaskInfo, data: &Bytes) {
        self.body.lock().expect("body").extend_from_slice(data);
        self.push(Event::Data {
            task: task.id(),
            bytes: data.len(),
        });
    }
}

impl DownloadDelegate for Recorder {
    fn did_write_data(&self, task: &TaskInfo, written: u64, total: u64, expected: Option<u64>) {
        self.push(Event::Wrote {
            task: task.id(),
            written: written as i64,
            total: total as i64,
            expected: minus_one(expected),
        });
    }

    fn did_resume_at_offset(&self, task: &TaskInfo, offset: u64, expected: Option<u64>) {
        self.push(Event::Resumed {
            task: task.id(),
            offset: offset as i64,
            expected: minus_one(expected),
        });
    }

    fn did_finish_downloading_to(&self, task: &TaskInfo, location: &Path) {
        let bytes = std::fs::read(location).unwrap_or_default();
        self.push(Event::Finished {
            task: task.id(),
            size: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
        });
    }
}
