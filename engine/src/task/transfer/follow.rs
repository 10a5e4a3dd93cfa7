//! Redirects and authentication: sending a request and following it until a final response,
//! answering 401 and proxy 407 challenges and asking the delegate about each hop.

use super::*;

impl Run {
    /// Sends the request and follows redirects until a final response. The delegate may change or
    /// refuse each hop (`will_perform_http_redirection`); a followed redirect's body is never
    /// delivered; the task's current request follows each hop.
    pub(super) async fn send_following(
        &mut self,
        head: &mut Head,
        body: &mut Option<UploadBody>,
    ) -> Result<http::Response<ResponseBody>, Halt> {
        let mut followed = 0;
        loop {
            let response = match self.send(head, body.as_ref()).await {
                // The proxy wants credentials before it opens the tunnel for an `https` request:
                // answered as a 407 to the request itself, or the task fails as it would have.
                Err(Halt::Failed(e)) if let Some(asked) = tunnel_challenge(&e) => {
                    let Some(asker) = self.proxy_asker(head, ProxyType::Https) else {
                        return Err(Halt::Failed(e));
                    };
                    let status = http::StatusCode::PROXY_AUTHENTICATION_REQUIRED;
                    let seen =
                        Response::new(self.url.clone(), status, http::Version::HTTP_11, asked);
                    if Box::pin(self.answer_challenge(&seen, head, &asker)).await? {
                        self.end_transaction();
                        continue;
                    }
                    return Err(Halt::Failed(e));
                }
                other => other?,
            };
            let asker = match response.status() {
                http::StatusCode::UNAUTHORIZED
                    if response
                        .headers()
                        .contains_key(http::header::WWW_AUTHENTICATE) =>
                {
                    // Past the proxy, if there is one: it took its credential.
                    if let Some(auth) = &mut self.auth {
                        auth.accepted(&self.ctx, true);
                    }
                    Some(auth::Asker::Server)
                }
                // A 407 is the proxy's only when the request went to it whole (cleartext).
                http::StatusCode::PROXY_AUTHENTICATION_REQUIRED
                    if self.url.scheme() == "http"
                        && response
                            .headers()
                            .contains_key(http::header::PROXY_AUTHENTICATE) =>
                {
                    self.proxy_asker(head, ProxyType::Http)
                }
                _ => None,
            };
            if let Some(asker) = asker {
                let seen = Response::new(
                    self.url.clone(),
                    response.status(),
                    response.version(),
                    response.headers().clone(),
                );
                // Boxed: a challenge is rare, and its future would make every request's larger.
                if Box::pin(self.answer_challenge(&seen, head, &asker)).await? {
                    drop(response);
                    self.end_transaction();
                    continue;
                }
                return Ok(response);
            }
            if let Some(auth) = &mut self.auth {
                auth.accepted(&self.ctx, false);
            }
            let Some(hop) = redirect::redirect(
                response.status(),
                response.headers(),
                &head.method,
                &self.url,
            ) else {
                return Ok(response);
            };
            let fail = |code, message: String, url: &Url| {
                Halt::Failed(Error::new(code, message).with_url(url.as_str()))
            };
            if followed >= self.ctx.config.http_maximum_redirects {
                return Err(fail(
                    ErrorCode::HttpTooManyRedirects,
                    format!("more than {followed} redirects"),
                    &self.url,
                ));
            }
            let mut proposed = Request::new(hop.method.clone(), hop.url.as_str());
            *proposed.headers_mut() = (*head.headers).clone();
            redirect::rewrite_headers(proposed.headers_mut(), &hop, &self.url);
            for name in head.omitted.iter().flat_map(|o| o.iter()) {
                // Left out still: the jar's `Cookie` for the next origin, say.
                proposed.omit_header(name.clone());
            }
            let next = match self.ctx.delivery(&self.info) {
                Some(queue) => {
                    let seen = Response::new(
                        self.url.clone(),
                        response.status(),
                        response.version(),
                        response.headers().clone(),
                    );
                    let info = self.info.clone();
                    let default = proposed.clone();
                    let rx = queue.ask_task(
                        &self.info,
                        Callback::Redirection,
                        move || Some(default.clone()),
                        move |d, reply| {
                            d.will_perform_http_redirection(&info, &seen, &proposed, reply);
                        },
                    );
                    match unless_stopped(&mut self.gate, rx).await? {
                        Ok(Some(request)) => request,
                        // The delegate declined: the redirect is the final response.
                        Ok(None) | Err(_) => return Ok(response),
                    }
                }
                None => proposed,
            };
            drop(response);
            self.end_transaction();
            if let Some(mut log) = self.metrics() {
                log.redirects += 1;
            }
            let Some(url) = next.url().cloned() else {
                return Err(fail(
                    ErrorCode::BadUrl,
                    "the redirect's request has a bad URL".into(),
                    &self.url,
                ));
            };
            let host = url.host_str().unwrap_or("").to_owned();
            let claimed = protocol::claimer(&self.ctx.config.protocol_handlers, &next).is_some();
            match url.scheme() {
                _ if claimed => {}
                "https" => {}
                "http" if self.ctx.config.cleartext.allows(&host) => {}
                "http" => {
                    return Err(fail(
                        ErrorCode::AppTransportSecurityRequiresSecureConnection,
                        format!("a redirect to cleartext HTTP on {host}, which is not allowed"),
                        &url,
                    ));
                }
                other => {
                    return Err(fail(
                        ErrorCode::UnsupportedUrl,
                        format!("a redirect to the unsupported scheme {other:?}"),
                        &url,
                    ));
                }
            }
            (head.uri, head.host) = crate::task::request::wire_target(&url).map_err(|e| {
                Halt::Failed(
                    Error::new(ErrorCode::BadUrl, format!("bad redirect location: {e}"))
                        .with_url(url.as_str())
                        .with_source(e),
                )
            })?;
            head.method = next.method().clone();
            head.headers = Arc::new(next.headers().clone());
            head.omitted = crate::task::request::left_out(&next);
            if !hop.keeps_body {
                *body = None;
            }
            self.recorder.set_current_request(next);
            self.url = url;
            followed += 1;
        }
    }
}

impl Run {
    /// The proxy a request to `head` goes through, as the asker of a 407.
    fn proxy_asker(&self, head: &Head, kind: ProxyType) -> Option<auth::Asker> {
        let proxy = self.ctx.transport.http_proxy(&head.uri)?;
        Some(auth::Asker::Proxy { proxy, kind })
    }

    /// Asks the task's authenticator (and through it the delegate) about a 401 or a proxy's
    /// 407. True when the request is to go again, its answer (`Authorization`, or
    /// `Proxy-Authorization` for the proxy) now in `head`; false to take the response as it is.
    async fn answer_challenge(
        &mut self,
        seen: &Response,
        head: &mut Head,
        asker: &auth::Asker,
    ) -> Result<bool, Halt> {
        let (ctx, info, url) = (self.ctx.clone(), self.info.clone(), self.url.clone());
        let deciding = self.auth.get_or_insert_with(Box::default).on_challenge(
            &ctx,
            &info,
            seen,
            &head.method,
            &url,
            asker,
        );
        match unless_stopped(&mut self.gate, deciding).await? {
            auth::Answer::Retry(answer) => {
                let field = match asker {
                    auth::Asker::Proxy { .. } => http::header::PROXY_AUTHORIZATION,
                    auth::Asker::Server => http::header::AUTHORIZATION,
                };
                Arc::make_mut(&mut head.headers).insert(field, answer);
                Ok(true)
            }
            auth::Answer::Deliver => Ok(false),
            auth::Answer::Cancel => Err(Halt::Failed(Error::cancelled(
                self.info.original_request().url_str(),
            ))),
        }
    }
}

/// The headers of a tunnel's 407 (`Proxy-Authenticate`), when `e` is a proxy asking for
/// credentials before it opens one.
fn tunnel_challenge(e: &Error) -> Option<http::HeaderMap> {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<TransportError>())
        .and_then(TransportError::proxy_challenge)
        .cloned()
}
