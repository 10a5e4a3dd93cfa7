//! An `ftp:` URL's transfer: log in (the URL's user and password, else the credential store's for
//! the server, else anonymous; a refusal is a challenge for the delegate), then a file
//! down (`SIZE` and `MDTM`, `RETR`, from where a stopped download ended with `REST`) or up
//! (`STOR`), through the same gate, timeouts and delivery as HTTP. A URL whose path ends in `/`
//! names a directory: its listing comes down (`LIST`), as curl and URLSession give it. The method
//! says which: `GET` fetches, `HEAD` asks `SIZE` and `MDTM` only, a `PUT` with a body stores;
//! anything else fails with -1002 before the server is asked (a form posted to an `ftp:` URL was
//! stored over the file). A `GET` with one byte `Range` gets that part as an HTTP server gives it
//! (a 206 with `Content-Range`: `REST` to its first byte, the data connection closed after its
//! last; a 416 for a range past the end), as curl's `-r` does.
//!
//! The path is the login directory's, as RFC 1738 reads an `ftp:` URL and curl sends it:
//! `ftp://host/docs/a.txt` is `docs/a.txt` there, and `ftp://host/%2Fetc/motd` the absolute
//! `/etc/motd`. A server that shows each user the root of their own tree sees no difference.
//!
//! The response a delegate sees for a download is made from what the server said: a 200 with
//! `Content-Length` (the size), `Last-Modified` (the modification time) and an `ETag` made of
//! both. The last two are the validators a download's resume data keeps, so a resumed download
//! continues with `REST` only when the file still has the same size and time, and starts over
//! otherwise.

use bytes::{BufMut, Bytes, BytesMut};
use courier_delegates::{Error, ErrorCode, Response};
use courier_protocol_http::ftp::{FileFacts, FtpData, FtpError, FtpSession};
use courier_protocol_http::range::{self, AskedRange};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::timing::unless_stopped;
use super::upload::{self, UploadBody};
use super::{Halt, Pace, Run, map_transport_error};
use crate::task::actor::TaskMsg;
use crate::task::download::Placement;
use crate::task::file_reader;

/// What an upload sends once the server has agreed to store it.
enum Outgoing {
    Bytes(Bytes),
    /// Opened, not read yet.
    File(tokio::fs::File),
    /// The delegate's (`need_new_body_stream`), read as it is sent.
    Stream(courier_delegates::BodyStream),
}

/// Bytes read from a data connection at a time, at most.
const CHUNK: usize = 256 * 1024;

/// The headers of an FTP transfer's response: `Content-Length` (`length`), `Last-Modified` (the
/// file's modification time) and `ETag` (`etag`), each when known.
fn ftp_headers(facts: &FileFacts, etag: &Option<String>, length: Option<u64>) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    if let Some(length) = length {
        headers.insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from(length),
        );
    }
    if let Some(modified) = facts.modified
        && let Ok(v) = http::HeaderValue::from_str(&httpdate::fmt_http_date(modified))
    {
        headers.insert(http::header::LAST_MODIFIED, v);
    }
    if let Some(tag) = etag
        && let Ok(v) = http::HeaderValue::from_str(tag)
    {
        headers.insert(http::header::ETAG, v);
    }
    headers
}

/// How long a finished transfer's `QUIT` waits for the server's answer.
const GOODBYE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl Run {
    /// Runs an `ftp:` transfer: the upload `body` if there is one, else a download.
    pub(super) async fn drive_ftp(&mut self, body: Option<UploadBody>) -> Result<(), Halt> {
        let host = self.url.host_str().unwrap_or_default().to_owned();
        let port = self.url.port().unwrap_or(21);
        // The URL path's first `/` only separates it from the host (see the module's comment); it
        // is never percent-encoded, so it goes before the rest is decoded.
        let path = self.url.path().strip_prefix('/').unwrap_or_default();
        let path = percent_encoding::percent_decode_str(path)
            .decode_utf8_lossy()
            .into_owned();
        self.one_line("path", &path)?;
        self.ftp_method(body.is_some())?;
        let (user, password) = crate::task::auth::ftp_login(&self.ctx, &self.url);
        let transport = self.ctx.transport.clone();
        let tls = self.ctx.config.ftp_explicit_tls;
        let connecting = transport.ftp_connect(&host, port, tls);
        let mut ftp = self
            .timed(std::pin::pin!(connecting))
            .await?
            .map_err(|e| self.ftp_error(e))?;
        self.ftp_login(&mut ftp, user, password).await?;
        let outcome = match body {
            Some(body) => self.ftp_upload(&mut ftp, &path, body).await,
            None if path.is_empty() || path.ends_with('/') => self.ftp_list(&mut ftp, &path).await,
            None if self.info.original_request().method() == http::Method::HEAD => {
                self.ftp_head(&mut ftp, &path).await
            }
            None => self.ftp_download(&mut ftp, &path).await,
        };
        if outcome.is_ok() {
            // The transfer ended when the server said so; the goodbye goes on its own, bounded, so
            // that a server which never answers `QUIT` neither delays the task's end nor keeps a
            // connection for ever.
            tokio::spawn(tokio::time::timeout(GOODBYE_WAIT, ftp.quit()));
        }
        outcome
    }

    /// Logs in with `user` and `password`; when the server refuses (530), asks the delegate for
    /// others (a challenge for the `ftp` protection space), as long as it gives some.
    async fn ftp_login(
        &mut self,
        ftp: &mut FtpSession,
        mut user: String,
        mut password: String,
    ) -> Result<(), Halt> {
        loop {
            // From the URL, the credential store or the delegate, each goes on a line of its own.
            self.one_line("user name", &user)?;
            self.one_line("password", &password)?;
            let logged_in = self
                .timed(std::pin::pin!(ftp.login(&user, &password)))
                .await?;
            let refusal = match logged_in {
                Ok(()) => {
                    if let Some(auth) = &mut self.auth {
                        auth.accepted(&self.ctx, false);
                    }
                    return Ok(());
                }
                Err(FtpError::Refused { code: 530, text }) => text,
                Err(e) => return Err(self.ftp_error(e)),
            };
            let (ctx, info, url) = (self.ctx.clone(), self.info.clone(), self.url.clone());
            let seen = Response::new(
                url.clone(),
                http::StatusCode::UNAUTHORIZED,
                http::Version::HTTP_11,
                http::HeaderMap::new(),
            );
            let asking = self
                .auth
                .get_or_insert_with(Box::default)
                .on_ftp_refusal(&ctx, &info, &url, &seen);
            match unless_stopped(&mut self.gate, asking).await? {
                Some(credential) => {
                    user = credential.user().to_owned();
                    password = credential.secret().to_owned();
                }
                None => {
                    return Err(self.ftp_error(FtpError::Refused {
                        code: 530,
                        text: refusal,
                    }));
                }
            }
        }
    }

    async fn ftp_download(&mut self, ftp: &mut FtpSession, path: &str) -> Result<(), Halt> {
        let facts = self.timed(std::pin::pin!(ftp.facts(path))).await?;
        // Continue where the partial file ends, if the file is the one it came from.
        let resuming = self
            .sink
            .as_ref()
            .and_then(|s| s.validator().map(|v| (s.offset(), v)));
        let etag = etag_of(&facts);
        let request = self.info.original_request();
        let asked = if request.method() == http::Method::GET {
            range::asked_range(request.headers(), facts.size)
        } else {
            AskedRange::Whole
        };
        let (offset, placement, part) = match (asked, resuming) {
            (AskedRange::Unsatisfiable, _) => return self.ftp_unsatisfiable(&facts, &etag).await,
            // A part is fetched whole again rather than continued: its resume data counts from
            // the part's start, not the file's.
            (AskedRange::Part { first, last }, resuming) => {
                let placement = match resuming {
                    Some(_) => Placement::StartOver,
                    None => Placement::Fresh,
                };
                (first, placement, Some(last))
            }
            (AskedRange::Whole, Some((offset, validator)))
                if offset > 0
                    && etag.is_some()
                    && validator.etag == etag
                    && facts.size.is_some_and(|size| size >= offset) =>
            {
                (offset, Placement::Append, None)
            }
            (AskedRange::Whole, Some(_)) => (0, Placement::StartOver, None),
            (AskedRange::Whole, None) => (0, Placement::Fresh, None),
        };
        let retrieving = ftp.retrieve(path, offset);
        let data = self
            .timed(std::pin::pin!(retrieving))
            .await?
            .map_err(|e| self.ftp_error(e))?;
        let response = match part {
            Some(last) => self.ftp_part_response(&facts, &etag, offset, last),
            None => self.ftp_response(&facts, &etag, offset),
        };
        self.present(response.clone()).await?;
        if let Some(sink) = &mut self.sink {
            let (at, expected) = sink.begin(&response, placement, facts.size).await?;
            if matches!(placement, Placement::Append) {
                let _ = self.actor.cast(TaskMsg::ResumedAt {
                    offset: at,
                    expected,
                });
            }
        }
        // A part ends at its last byte: what the server sends after it is not read.
        let limit = part.flatten().map(|last| last - offset + 1);
        self.receive_ftp(ftp, data, limit).await
    }

    /// The answer to a `Range` no byte of the file is in: a 416 naming the file's size, with no
    /// body, as an HTTP server gives it; nothing is retrieved.
    async fn ftp_unsatisfiable(
        &mut self,
        facts: &FileFacts,
        etag: &Option<String>,
    ) -> Result<(), Halt> {
        let mut headers = ftp_headers(facts, etag, Some(0));
        if let Some(size) = facts.size
            && let Ok(v) = http::HeaderValue::from_str(&format!("bytes */{size}"))
        {
            headers.insert(http::header::CONTENT_RANGE, v);
        }
        let response = self.response_of(http::StatusCode::RANGE_NOT_SATISFIABLE, headers);
        self.present(response.clone()).await?;
        if let Some(sink) = &mut self.sink {
            sink.begin(&response, Placement::Fresh, Some(0)).await?;
        }
        Ok(())
    }

    /// A `HEAD`: the response of a download, from `SIZE` and `MDTM` alone, without the file (curl's
    /// `-I` asks the same). A server that answers neither (it lacks both, or there is no such
    /// file) gets the download's `RETR`, which tells the two apart: from a server without `SIZE`
    /// and `MDTM`, the file comes down with it.
    async fn ftp_head(&mut self, ftp: &mut FtpSession, path: &str) -> Result<(), Halt> {
        let facts = self.timed(std::pin::pin!(ftp.facts(path))).await?;
        if facts.size.is_none() && facts.modified.is_none() {
            return self.ftp_download(ftp, path).await;
        }
        let response = self.ftp_response(&facts, &etag_of(&facts), 0);
        self.present(response.clone()).await?;
        if let Some(sink) = &mut self.sink {
            sink.begin(&response, Placement::Fresh, Some(0)).await?;
        }
        Ok(())
    }

    /// The listing of the directory `path`: a 200 with no length (the server does not say it
    /// beforehand) and no validators (a listing is not resumed), then the lines as they come.
    async fn ftp_list(&mut self, ftp: &mut FtpSession, path: &str) -> Result<(), Halt> {
        let listing = ftp.list(path);
        let data = self
            .timed(std::pin::pin!(listing))
            .await?
            .map_err(|e| self.ftp_error(e))?;
        let response = self.ftp_response(&FileFacts::default(), &None, 0);
        self.present(response.clone()).await?;
        if let Some(sink) = &mut self.sink {
            sink.begin(&response, Placement::Fresh, None).await?;
        }
        self.receive_ftp(ftp, data, None).await
    }

    /// Reads `data` to its end, delivering it as it comes, then hears the server's verdict. Under
    /// a receive rate cap, each read waits until the bytes before it fit the rate, and reads a
    /// slice at most. With a `limit`, the transfer ends once that many bytes came: the data
    /// connection is closed, and the server's word on the cut (`426`) is left to the goodbye.
    async fn receive_ftp(
        &mut self,
        ftp: &mut FtpSession,
        mut data: FtpData,
        mut limit: Option<u64>,
    ) -> Result<(), Halt> {
        let mut pace = Pace::of(self.ctx.config.maximum_receive_rate_per_task);
        loop {
            if limit == Some(0) {
                drop(data);
                return Ok(());
            }
            self.wait_until(|g| !g.paused).await?;
            self.keep_pace(pace.as_ref()).await?;
            let want = pace.as_ref().map_or(CHUNK, |pace| pace.slice(CHUNK));
            let want = limit.map_or(want, |left| want.min(usize::try_from(left).unwrap_or(want)));
            let mut chunk = BytesMut::with_capacity(want);
            let read = self
                .timed(std::pin::pin!(data.read_buf(&mut (&mut chunk).limit(want))))
                .await?;
            match read {
                Ok(0) => break,
                Ok(n) => {
                    if let Some(pace) = &mut pace {
                        pace.moved(n);
                    }
                    self.moved.wire_in += n as u64;
                    if let Some(left) = &mut limit {
                        *left -= n as u64;
                    }
                    self.deliver(chunk.freeze()).await?;
                }
                Err(e) => return Err(self.lost(e)),
            }
        }
        let finished = ftp.finish(data);
        self.timed(std::pin::pin!(finished))
            .await?
            .map_err(|e| self.ftp_error(e))
    }

    async fn ftp_upload(
        &mut self,
        ftp: &mut FtpSession,
        path: &str,
        body: UploadBody,
    ) -> Result<(), Halt> {
        // The body is checked before the server is asked to store anything: a file that cannot
        // be read fails the task as an HTTP upload's does (-1100, -1101, -1102), and neither it
        // nor a stream leaves an empty file on the server.
        let outgoing = match body {
            UploadBody::Bytes(bytes) => Outgoing::Bytes(bytes),
            UploadBody::File(path) => Outgoing::File(
                upload::open_upload_file(&path)
                    .await
                    .map_err(|e| Halt::Failed(e.with_url(self.url.as_str())))?
                    .0,
            ),
            // Asked of the delegate as an HTTP upload's stream is; none sends an empty file, as
            // none sends an empty HTTP body.
            UploadBody::Stream => {
                let asking = upload::ask_for_stream(&self.ctx, &self.info, self.callbacks);
                match unless_stopped(&mut self.gate, asking).await? {
                    Some(stream) => Outgoing::Stream(stream),
                    None => Outgoing::Bytes(Bytes::new()),
                }
            }
        };
        let storing = ftp.store(path);
        let mut data: FtpData = self
            .timed(std::pin::pin!(storing))
            .await?
            .map_err(|e| self.ftp_error(e))?;
        let mut pace = Pace::of(self.ctx.config.maximum_send_rate_per_task);
        match outgoing {
            Outgoing::Bytes(bytes) => self.send_ftp_chunk(&mut data, bytes, &mut pace).await?,
            Outgoing::File(file) => {
                // Read ahead on a thread, as an HTTP upload's file is.
                let mut chunks = file_reader::read_ahead(file);
                loop {
                    self.wait_until(|g| !g.paused).await?;
                    let Some(chunk) = chunks.recv().await else {
                        break;
                    };
                    let chunk = chunk.map_err(|e| self.lost(e))?;
                    self.send_ftp_chunk(&mut data, chunk, &mut pace).await?;
                }
            }
            Outgoing::Stream(mut stream) => {
                // One buffer for the whole stream: each chunk sent is written and dropped before
                // the next read, so `reserve` takes its room back instead of allocating anew.
                let mut chunk = BytesMut::new();
                loop {
                    self.wait_until(|g| !g.paused).await?;
                    chunk.reserve(CHUNK);
                    let reading = stream.read_buf(&mut chunk);
                    // The delegate's stream is not the network: no request timeout, but a stop ends
                    // the wait.
                    let n = unless_stopped(&mut self.gate, reading)
                        .await?
                        .map_err(|e| {
                            let message = format!("the upload's stream failed: {e}");
                            Error::new(ErrorCode::NetworkConnectionLost, message)
                                .with_url(self.url.as_str())
                                .with_source(e)
                        })?;
                    if n == 0 {
                        break;
                    }
                    self.send_ftp_chunk(&mut data, chunk.split().freeze(), &mut pace)
                        .await?;
                }
            }
        }
        let finished = ftp.finish(data);
        self.timed(std::pin::pin!(finished))
            .await?
            .map_err(|e| self.ftp_error(e))?;
        // The server's verdict (226) is the response: an empty body.
        let response = self.ftp_response(&FileFacts::default(), &None, 0);
        self.present(response).await
    }

    /// Writes `chunk` to the data connection; under a send rate cap, in slices, each when the
    /// bytes before it fit the rate.
    async fn send_ftp_chunk(
        &mut self,
        data: &mut FtpData,
        mut chunk: Bytes,
        pace: &mut Option<Pace>,
    ) -> Result<(), Halt> {
        while !chunk.is_empty() {
            self.keep_pace(pace.as_ref()).await?;
            let slice = match pace {
                Some(pace) => {
                    let slice = chunk.split_to(chunk.len().min(pace.slice(CHUNK)));
                    pace.moved(slice.len());
                    slice
                }
                None => std::mem::take(&mut chunk),
            };
            let n = slice.len();
            let written = self.timed(std::pin::pin!(data.write_all(&slice))).await?;
            written.map_err(|e| self.lost(e))?;
            // Counted where an HTTP body's chunks are (`countOfBytesSent`), and told to the actor.
            self.recorder.add_sent(n as u64);
            let _ = self.actor.cast(TaskMsg::Sent(n as u64));
        }
        Ok(())
    }

    /// The response a delegate sees for an FTP transfer.
    fn ftp_response(&self, facts: &FileFacts, etag: &Option<String>, offset: u64) -> Response {
        let length = facts.size.map(|size| size.saturating_sub(offset));
        self.response_of(http::StatusCode::OK, ftp_headers(facts, etag, length))
    }

    /// The response for the part of a file from `first` to `last` (to the end, when `None`): a
    /// 206 with its `Content-Range`, as an HTTP server answers a `Range`. The field needs the last
    /// byte: a part open to the end of a file of unknown size has none.
    fn ftp_part_response(
        &self,
        facts: &FileFacts,
        etag: &Option<String>,
        first: u64,
        last: Option<u64>,
    ) -> Response {
        let length = last.map(|last| last - first + 1);
        let mut headers = ftp_headers(facts, etag, length);
        let size = facts.size.map_or("*".to_owned(), |size| size.to_string());
        if let Some(last) = last
            && let Ok(v) = http::HeaderValue::from_str(&format!("bytes {first}-{last}/{size}"))
        {
            headers.insert(http::header::CONTENT_RANGE, v);
        }
        self.response_of(http::StatusCode::PARTIAL_CONTENT, headers)
    }

    fn response_of(&self, status: http::StatusCode, headers: http::HeaderMap) -> Response {
        Response::new(self.url.clone(), status, http::Version::HTTP_11, headers)
    }

    /// `text` goes on a command line of its own (`RETR`, `USER`, `PASS`...), which a line break
    /// would end and start another (`%0d%0aDELE x`; suppaftp refuses to send such a line, which
    /// then failed as a lost connection) and a NUL would cut short on many servers: such a
    /// `text` is a bad URL (-1000), refused before anything is sent.
    fn one_line(&self, what: &str, text: &str) -> Result<(), Halt> {
        if !text.contains(['\r', '\n', '\0']) {
            return Ok(());
        }
        Err(Halt::Failed(
            Error::new(
                ErrorCode::BadUrl,
                format!("bad URL: an ftp {what} holds a line break or NUL"),
            )
            .with_url(self.url.as_str()),
        ))
    }

    /// Checks the request's method, before anything is sent: an `ftp:` URL is fetched with `GET`
    /// (or `HEAD`) and stored with a `PUT` that has a body, as curl's `-T` stores it. Any other
    /// (a `POST` with a body, a `DELETE`) fails with -1002 rather than be read as one of those: a
    /// form posted to an `ftp:` URL must not replace the file there.
    fn ftp_method(&self, has_body: bool) -> Result<(), Halt> {
        use http::Method;
        let method = self.info.original_request().method();
        let fits = if has_body {
            method == Method::PUT
        } else {
            method == Method::GET || method == Method::HEAD
        };
        if fits {
            return Ok(());
        }
        let what = if has_body { "a body" } else { "no body" };
        Err(Halt::Failed(
            Error::new(
                ErrorCode::UnsupportedUrl,
                format!(
                    "an ftp: URL is fetched with GET or stored with PUT, not {method} with {what}"
                ),
            )
            .with_url(self.url.as_str()),
        ))
    }

    /// A failed FTP exchange as the task's error.
    fn ftp_error(&self, e: FtpError) -> Halt {
        let code = match &e {
            FtpError::Connect(t) => {
                return Halt::Failed(map_transport_error(
                    courier_protocol_http::TransportError::new(t.kind(), t.to_string()),
                    &self.url,
                ));
            }
            // 530: not logged in (or not allowed to).
            FtpError::Refused {
                code: 530 | 331 | 332,
                ..
            } => ErrorCode::UserAuthenticationRequired,
            // 550: no such file (or no access to it); 553: a name the server will not store.
            FtpError::Refused {
                code: 550 | 450, ..
            } => ErrorCode::FileDoesNotExist,
            FtpError::Refused {
                code: 552 | 452, ..
            } => ErrorCode::DataLengthExceedsMaximum,
            FtpError::Refused { code: 553, .. } => ErrorCode::NoPermissionsToReadFile,
            FtpError::Refused { .. } => ErrorCode::ResourceUnavailable,
            FtpError::Broken(_) => ErrorCode::NetworkConnectionLost,
        };
        Halt::Failed(
            Error::new(code, e.to_string())
                .with_url(self.url.as_str())
                .with_source(e),
        )
    }

    fn lost(&self, e: std::io::Error) -> Halt {
        Halt::Failed(
            Error::new(
                ErrorCode::NetworkConnectionLost,
                format!("the FTP data connection failed: {e}"),
            )
            .with_url(self.url.as_str())
            .with_source(e),
        )
    }
}

/// The validator of a file: its size and modification time together, as a strong entity tag.
fn etag_of(facts: &FileFacts) -> Option<String> {
    let size = facts.size?;
    let modified = facts
        .modified?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(format!("\"ftp-{size}-{modified}\""))
}
