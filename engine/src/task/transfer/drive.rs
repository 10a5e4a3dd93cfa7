//! The steps of an HTTP(S) or local transfer after its start: waiting for the earliest begin
//! date, sending (with the cache, resumed ranges and what a `101` leaves), presenting the response
//! head to the actor, and a `data:` or `file:` URL's body. `Run::run` in `transfer.rs` calls them.

use super::*;
use crate::task::file_reader;

impl Run {
    /// Waits for the task's earliest begin date, if it is ahead, then asks the delegate whether to
    /// load the request as it is, another one, or none (`will_begin_delayed_request`).
    pub(super) async fn begin_when_due(
        &mut self,
        target: Target,
        body: Option<&UploadBody>,
    ) -> Result<Target, Halt> {
        let Some(wait) = self
            .info
            .earliest_begin_date()
            .and_then(|at| at.duration_since(std::time::SystemTime::now()).ok())
        else {
            return Ok(target);
        };
        unless_stopped(&mut self.gate, tokio::time::sleep(wait)).await?;
        let Some(queue) = self.ctx.delivery(&self.info).filter(|_| self.callbacks) else {
            return Ok(target);
        };
        let (info, request) = (self.info.clone(), self.info.current_request());
        let asked = queue.ask_task(
            &self.info,
            Callback::DelayedRequest,
            || courier_delegates::DelayedRequestDisposition::ContinueLoading,
            move |d, reply| d.will_begin_delayed_request(&info, &request, reply),
        );
        use courier_delegates::DelayedRequestDisposition as Delayed;
        match unless_stopped(&mut self.gate, asked).await? {
            Ok(Delayed::UseNewRequest(request)) => {
                let (head, url) = crate::task::request::build_request(
                    &request,
                    body,
                    &self.ctx.config,
                    &self.ctx.base_headers,
                    self.sink.is_some(),
                )?;
                self.recorder.set_current_request(*request);
                self.url = url;
                Ok(Target::Http(Box::new(head)))
            }
            Ok(Delayed::Cancel) => Err(Halt::Failed(Error::cancelled(self.url.as_str()))),
            _ => Ok(target),
        }
    }

    /// Sends the request (again, when a resumed download's answer cannot be used) and moves the
    /// body.
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` stores its arguments twice"
    )]
    pub(super) fn drive(
        &mut self,
        mut head: Head,
        body: Option<UploadBody>,
    ) -> impl Future<Output = Result<(), Halt>> + Send + '_ {
        // A block, not an `async fn`: see `Run::run`.
        async move {
            // Only data tasks' GETs use the URL cache.
            let plan = if self.cache_has_a_say(&head, body.as_ref()) {
                self.cache_plan(&mut head).await?
            } else {
                caching::Plan::Network
            };
            let revalidating = match plan {
                caching::Plan::Serve(entry) => return self.serve_cached(*entry).await,
                caching::Plan::Revalidate(entry) => Some(entry),
                caching::Plan::Network => None,
            };
            // A network answer may be stored (a revalidation answered with a 200 replaces the entry).
            let cacheable =
                self.sink.is_none() && body.is_none() && head.method == http::Method::GET;
            let resuming = self
                .sink
                .as_ref()
                .and_then(|s| s.validator().map(|v| (s.offset(), v)));
            if let Some((offset, validator)) = &resuming {
                let headers = Arc::make_mut(&mut head.headers);
                range::ask_to_continue(headers, *offset, validator);
                // Ranges address the bytes as stored; the partial data was never encoded.
                headers.insert(
                    http::header::ACCEPT_ENCODING,
                    http::HeaderValue::from_static("identity"),
                );
            }
            let mut body = body;
            // The request's exchange is boxed: its future (1,928 bytes) would otherwise size this
            // one, which a download holds for as long as its body flows. It is written in place in
            // its box (`Box::pin` made it on the stack and copied all of it).
            let (mut parts, mut incoming) = Box::into_pin(Box::write(
                Box::new_uninit(),
                self.send_following(&mut head, &mut body),
            ))
            .await?
            .into_parts();
            if parts.status == http::StatusCode::SWITCHING_PROTOCOLS {
                // Kept in case the delegate makes a stream task of the connection.
                self.upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
            }
            let mut placement = Placement::Fresh;
            let mut total = None;
            if let Some((offset, validator)) = &resuming {
                placement =
                    match range::continuation(parts.status, &parts.headers, *offset, validator) {
                        Continuation::Append { total: t } => {
                            total = t;
                            Placement::Append
                        }
                        Continuation::StartOverWithThisBody => Placement::StartOver,
                        Continuation::StartOverWithNewRequest => {
                            // The answer is unusable: ask for the whole resource, and take whatever comes.
                            drop(incoming);
                            let headers = Arc::make_mut(&mut head.headers);
                            headers.remove(http::header::RANGE);
                            headers.remove(http::header::IF_RANGE);
                            let fresh = Box::into_pin(Box::write(
                                Box::new_uninit(),
                                self.send_following(&mut head, &mut body),
                            ))
                            .await?
                            .into_parts();
                            (parts, incoming) = fresh;
                            Placement::StartOver
                        }
                    };
            }
            self.wait_until(|g| !g.paused).await?;
            // A stream of replacing parts: each is a response of its own, for a delegate to see.
            if self.sink.is_none()
                && self.callbacks
                && self.ctx.delivery(&self.info).is_some()
                && let Some(boundary) = parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(courier_protocol_http::multipart::mixed_replace_boundary)
            {
                return self.receive_parts(incoming, &boundary, parts.version).await;
            }
            // Bodies of HEAD requests, 204 and 304 are empty whatever their headers say.
            let has_body =
                !matches!(parts.status.as_u16(), 204 | 304) && head.method != http::Method::HEAD;
            // Most responses name no coding: one lookup, and the decoder's reading of the header's
            // lines only for those that do. A gzip file labelled with its own coding is kept.
            let decoder = match parts.headers.get(http::header::CONTENT_ENCODING) {
                Some(_)
                    if has_body
                        && !courier_protocol_http::decode::is_a_gzip_file(
                            &parts.headers,
                            self.url.path(),
                        ) =>
                {
                    Decoder::for_encoding(
                        parts.headers.get_all(http::header::CONTENT_ENCODING),
                        self.ctx.config.maximum_decompression_ratio,
                    )
                    .map(Box::new)
                }
                _ => None,
            };
            // A body announced longer than the session takes is not read at all.
            if let Some(max) = self.ctx.config.maximum_body_length
                && has_body
                && decoder.is_none()
            {
                let length = range::content_length(&parts.headers);
                let announced = match (placement, &resuming) {
                    (Placement::Append, Some((offset, _))) => {
                        total.or_else(|| length.map(|l| offset + l))
                    }
                    _ => length,
                };
                if announced.is_some_and(|n| n > max) {
                    return Err(self.too_long(max));
                }
            }
            let status = parts.status;
            let response =
                Response::new(self.url.clone(), parts.status, parts.version, parts.headers);
            if let Some(entry) = revalidating
                && status == http::StatusCode::NOT_MODIFIED
            {
                // Not modified: the cached response answers, with its headers refreshed.
                drop(incoming);
                self.end_transaction();
                let fresh = self.revalidated(&entry, &head, &response);
                return self.serve_cached(fresh).await;
            }
            if cacheable && !self.overridden {
                self.consider_for_cache(&head, &response);
            }
            // Only a download keeps the head (for its resume record); a data task hands it over.
            let kept = self.sink.is_some().then(|| response.clone());
            self.present(response).await?;
            let converted = self
                .conversion
                .as_ref()
                .and_then(|c| c.lock().unwrap_or_else(|p| p.into_inner()).take());
            if let Some(Becoming::Stream(info, recorder, ends)) = converted {
                drop(incoming);
                self.info = info;
                self.recorder = recorder;
                let Some(upgrade) = self.upgrade.take() else {
                    return Err(Halt::Failed(Error::new(
                        ErrorCode::Unknown,
                        "only a 101 answer's connection can become a stream task",
                    )));
                };
                let conn = unless_stopped(
                    &mut self.gate,
                    courier_protocol_http::stream::RawStream::upgraded(upgrade),
                )
                .await?
                .map_err(|e| Halt::Failed(map_transport_error(e, &self.url)))?;
                return Box::pin(self.stream_loop(conn, *ends)).await;
            }
            if let Some(Becoming::Download(info, slot)) = converted {
                self.info = info;
                let opened = DownloadSink::open(
                    self.ctx.clone(),
                    self.actor.clone(),
                    &self.info,
                    None,
                    &slot,
                );
                self.sink = Some(Box::new(opened.await?));
                self.window = None;
            }
            // A data task that became a download reads its head back (a copy only then).
            if let Some(sink) = &mut self.sink
                && let Some(response) = kept.or_else(|| self.info.response())
            {
                // From its first checkpoint on, the sink's waits for its disk hold the reads.
                sink.read_over(
                    parts
                        .extensions
                        .get::<ConnectionInfo>()
                        .and_then(|c| c.reads().cloned()),
                );
                let (offset, expected) = sink.begin(&response, placement, total).await?;
                if resuming.is_some() {
                    let _ = self.actor.cast(TaskMsg::ResumedAt { offset, expected });
                }
            }
            self.receive(incoming, decoder).await?;
            self.offer_to_cache().await
        }
    }

    /// Hands a response head to the actor, once not suspended, and waits until the body may flow
    /// (the delegate's disposition): the one way a response is presented, from the network, the
    /// cache or a local URL.
    pub(super) async fn present(&mut self, response: Response) -> Result<(), Halt> {
        self.wait_until(|g| !g.paused).await?;
        if let Some(gathering) = &mut self.gathering {
            // Nobody is asked about it (a completion-form task): it goes with the body.
            gathering.response = Some(response);
            return Ok(());
        }
        if self.actor.cast(TaskMsg::Response(response)).is_err() {
            return Err(Halt::Interrupted);
        }
        if self
            .ctx
            .asks_disposition(&self.info, self.callbacks, self.sink.is_some())
        {
            self.wait_until(|g| g.body_allowed).await
        } else {
            // The actor allows the body as it takes the head (the same rule): the bytes may
            // follow the head at once, in order, without a round trip to the actor.
            Ok(())
        }
    }

    /// Serves a `data:` or `file:` URL: the same response, gate and delivery as over HTTP.
    pub(super) async fn drive_local(&mut self) -> Result<(), Halt> {
        let (response, body) = local::open(&self.url).await?;
        let kept = self.sink.is_some().then(|| response.clone());
        self.present(response).await?;
        if let (Some(sink), Some(response)) = (&mut self.sink, kept) {
            sink.begin(&response, Placement::Fresh, None).await?;
        }
        match body {
            LocalBody::Bytes(bytes) => self.deliver(bytes).await,
            LocalBody::File(file) => {
                // Read ahead on a thread, as an upload's file is.
                let mut chunks = file_reader::read_ahead(file);
                loop {
                    self.wait_until(|g| !g.paused).await?;
                    let Some(chunk) = chunks.recv().await else {
                        return Ok(());
                    };
                    let chunk = chunk.map_err(|e| {
                        Error::new(ErrorCode::NoPermissionsToReadFile, e.to_string())
                            .with_url(self.url.as_str())
                            .with_source(e)
                    })?;
                    self.deliver(chunk).await?;
                }
            }
        }
    }
}
