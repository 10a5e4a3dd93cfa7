//! Starting a task's transfer: the request its work sends, where the body goes, and the
//! transfer's timeouts.

use super::*;

impl TaskActorState {
    /// Starts the transfer for `work`, with the `turn` its session took for it, if any, and
    /// counting its clocks `since` it began to wait in its host's line, if it did.
    pub(super) fn start_transfer(
        &mut self,
        me: &ActorRef<TaskMsg>,
        work: Work,
        turn: Option<Turn>,
        since: Option<std::time::Instant>,
    ) -> Result<(), Error> {
        // Only a task made from resume data starts from a request other than its original one;
        // the others read it in place instead of copying it.
        let info = self.info.clone();
        let resumed;
        let request = match &work {
            Work::Download { resume: Some(_) } => {
                resumed = info.current_request();
                &resumed
            }
            // The handshake is an HTTP request: ws: goes as http:, wss: as https:.
            Work::WebSocket(_) => {
                resumed = crate::task::web_socket::handshake_request(info.original_request())?;
                &resumed
            }
            _ => info.original_request(),
        };
        let socket = matches!(work, Work::WebSocket(_));
        let raw = matches!(work, Work::Stream(_));
        let mut resumed_upload = None;
        let (body, destination) = match work {
            Work::Data => (
                request
                    .body()
                    .filter(|b| !b.is_empty())
                    .cloned()
                    .map(UploadBody::Bytes),
                Destination::Memory {
                    // A streamed body is read as fast as its reader takes it, as a delegate's is.
                    window: (self.callbacks || self.stream.is_some())
                        .then(|| Arc::new(Semaphore::new(DELEGATE_WINDOW))),
                },
            ),
            Work::Upload(body) => (
                Some(body),
                Destination::Memory {
                    window: self
                        .callbacks
                        .then(|| Arc::new(Semaphore::new(DELEGATE_WINDOW))),
                },
            ),
            Work::ResumedUpload(resumption) => {
                let resumption = resumption?;
                let body = resumption.resource.body().clone();
                resumed_upload = Some(resumption.resource);
                (
                    Some(body),
                    Destination::Memory {
                        window: self
                            .callbacks
                            .then(|| Arc::new(Semaphore::new(DELEGATE_WINDOW))),
                    },
                )
            }
            Work::WebSocket(ends) => (None, Destination::Socket(ends)),
            Work::Stream(ends) => (None, Destination::Stream(ends)),
            Work::Download { resume } => {
                let from = resume.transpose()?;
                (
                    None,
                    Destination::File {
                        from,
                        slot: self.partial.clone(),
                    },
                )
            }
        };
        let (target, url) = match request.url().filter(|u| local::is_local(u) || raw) {
            // A stream task's `tcp://host:port` is not loaded: its transfer connects to it.
            Some(url) if raw => (Target::Local, url.clone()),
            Some(url) if body.is_some() => {
                return Err(Error::new(
                    ErrorCode::UnsupportedUrl,
                    format!("cannot upload to a {}: URL", url.scheme()),
                )
                .with_url(url.as_str()));
            }
            Some(url) => (Target::Local, url.clone()),
            None => {
                let (head, url) = build_request(
                    request,
                    body.as_ref(),
                    &self.ctx.config,
                    &self.ctx.base_headers,
                    matches!(destination, Destination::File { .. }),
                )
                // A refused handshake names the task's own (ws:, wss:) URL.
                .map_err(|e| match socket {
                    true => e.with_url(info.original_request().url_str()),
                    false => e,
                })?;
                let target = if url.scheme() == "ftp" {
                    Target::Ftp
                } else {
                    Target::Http(Box::new(head))
                };
                (target, url)
            }
        };
        self.recorder.set_expected_to_send(match &body {
            None => 0,
            Some(UploadBody::Bytes(b)) => b.len() as i64,
            Some(UploadBody::File(path)) => std::fs::metadata(path).map_or(-1, |m| m.len() as i64),
            Some(UploadBody::Stream) => -1,
        });
        let timeouts = Timeouts {
            idle: request
                .timeout()
                .unwrap_or(self.ctx.config.timeout_for_request),
            // Time spent in the session's line counts against it.
            resource: since.map_or(self.ctx.config.timeout_for_resource, |since| {
                self.ctx
                    .config
                    .timeout_for_resource
                    .saturating_sub(since.elapsed())
            }),
        };
        let transfer = Transfer::start(TransferArgs {
            ctx: self.ctx.clone(),
            info: self.info.clone(),
            recorder: self.recorder.clone(),
            callbacks: self.callbacks,
            target,
            url,
            body,
            timeouts,
            destination,
            actor: ActorPost::new(me.clone(), self.doorbell.clone()),
            turn,
            since,
            resumed_upload,
        });
        self.metrics = transfer
            .metrics()
            .map(|log| (log, since.unwrap_or_else(std::time::Instant::now)));
        self.transfer = Some(transfer);
        Ok(())
    }
}
