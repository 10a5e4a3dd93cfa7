//! Redirects and authentication: sending a request and following it until a final response,
//! answering 401 challenges and asking the delegate about each hop.

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
            let response = self.send(head, body.as_ref()).await?;
            if response.status() == http::StatusCode::UNAUTHORIZED
                && response
                    .headers()
                    .contains_key(http::header::WWW_AUTHENTICATE)
            {
                let seen = Response::new(
                    self.url.clone(),
                    response.status(),
                    response.version(),
                    response.headers().clone(),
                );
                let (ctx, info, url) = (self.ctx.clone(), self.info.clone(), self.url.clone());
                let deciding = self.auth.on_401(&ctx, &info, &seen, &head.method, &url);
                match unless_stopped(&mut self.gate, deciding).await? {
                    auth::Answer::Retry(authorization) => {
                        drop(response);
                        self.end_transaction();
                        head.headers
                            .insert(http::header::AUTHORIZATION, authorization);
                        continue;
                    }
                    auth::Answer::Deliver => return Ok(response),
                    auth::Answer::Cancel => {
                        return Err(Halt::Failed(Error::cancelled(
                            self.info.original_request().url_str(),
                        )));
                    }
                }
            }
            self.auth.accepted(&self.ctx);
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
            *proposed.headers_mut() = head.headers.clone();
            redirect::rewrite_headers(proposed.headers_mut(), &hop, &self.url);
            let next = match self.ctx.queue.clone() {
                Some(queue) => {
                    let seen = Response::new(
                        self.url.clone(),
                        response.status(),
                        response.version(),
                        response.headers().clone(),
                    );
                    let info = self.info.clone();
                    let default = Some(proposed.clone());
                    let rx = queue.ask(Callback::Redirection, default, move |d, reply| {
                        d.will_perform_http_redirection(&info, &seen, &proposed, reply);
                    });
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
            head.uri = url.as_str().parse().map_err(|e: http::uri::InvalidUri| {
                Halt::Failed(
                    Error::new(ErrorCode::BadUrl, format!("bad redirect location: {e}"))
                        .with_url(url.as_str())
                        .with_source(e),
                )
            })?;
            head.method = next.method().clone();
            head.headers = next.headers().clone();
            if !hop.keeps_body {
                *body = None;
            }
            self.recorder.set_current_request(next);
            self.url = url;
            followed += 1;
        }
    }
}
