//! The delegate traits: what an application can hear from, and answer to, a session.
//!
//! Every method has URLSession's default behaviour, so an implementation writes only what it needs. A
//! delegate implements all four traits (empty `impl` blocks for the ones it does not care about) and is
//! then a [`Delegate`]. Methods run on the session's delivery queue, one at a time, in order; they
//! should return quickly and hand long work elsewhere (a slow callback holds back the session's other
//! callbacks, and slows the body delivery of its task).
//!
//! A method left at its default is asked once; the session then knows the delegate does not
//! implement it and stops calling it, as URLSession skips what a delegate does not
//! `respondsTo` (see [`crate::queue`]). Nothing changes for the delegate: it would have got the
//! default behaviour anyway.

use std::any::Any;
use std::path::Path;
use std::pin::Pin;

use bytes::Bytes;

use crate::queue::{Callback, leave_at_default};
use crate::web_socket::CloseCode;
use crate::{
    AuthChallengeDisposition, AuthenticationChallenge, CachedResponse, DelayedRequestDisposition,
    Error, Reply, Request, Response, ResponseDisposition, TaskInfo, TaskMetrics, TaskState,
};

/// A streamed upload body, handed over by [`TaskDelegate::need_new_body_stream`] (URLSession's
/// `InputStream`, as Tokio's async reader: a `tokio::fs::File`, a socket, an in-memory cursor).
pub type BodyStream = Pin<Box<dyn tokio::io::AsyncRead + Send>>;

/// Session-level messages (`URLSessionDelegate`).
pub trait SessionDelegate: Send + Sync + 'static {
    /// A session-level challenge. A server that asks for a client certificate
    /// ([`AuthenticationMethod::ClientCertificate`](crate::AuthenticationMethod)) is answered with
    /// [`Credential::identity`](crate::Credential) (the connection is made again presenting it, and
    /// the host keeps it for the session); default handling connects without one. Otherwise it is a
    /// new TLS connection's server trust
    /// ([`AuthenticationMethod::ServerTrust`](crate::AuthenticationMethod), with
    /// [`AuthenticationChallenge::server_trust`] set). Answer
    /// [`AuthChallengeDisposition::UseCredential`] with [`Credential::trusting`](crate::Credential)
    /// to accept the certificate (a private CA, a pin the delegate checked), or
    /// [`AuthChallengeDisposition::PerformDefaultHandling`] (the default) for standard
    /// verification against the configured roots. `UseCredential(None)` refuses the server
    /// (-1202); cancelling ends the task with -999; rejecting the protection space leaves no other
    /// to try, so it counts as default handling. A decision applies to that connection only,
    /// which is never shared with another session.
    fn did_receive_challenge(
        &self,
        challenge: &AuthenticationChallenge,
        reply: Reply<AuthChallengeDisposition>,
    ) {
        let _ = challenge;
        leave_at_default(self, Callback::SessionChallenge);
        reply.send(AuthChallengeDisposition::PerformDefaultHandling);
    }

    /// A background session: every event that waited for the application (the tasks' progress and
    /// completions while it was away) has been delivered; live events follow. URLSession's
    /// `urlSessionDidFinishEvents(forBackgroundURLSession:)`; `identifier` is the session's.
    fn did_finish_events_for_background_session(&self, identifier: &str) {
        let _ = identifier;
    }

    /// The last message of a session: it was invalidated and every task has completed. `error` is
    /// `None` after an explicit invalidation. The session drops its delegate right after this returns.
    fn did_become_invalid(&self, error: Option<&Error>) {
        let _ = error;
    }
}

/// Messages common to every task (`URLSessionTaskDelegate`).
pub trait TaskDelegate: Send + Sync + 'static {
    /// The task's state changed (Courier's addition: URLSession exposes this through key-value
    /// observation of `state`). Comes before the message that caused it is delivered; the change to
    /// `Completed` comes right before [`TaskDelegate::did_complete`].
    fn did_change_state(&self, task: &TaskInfo, from: TaskState, to: TaskState) {
        let _ = (task, from, to);
        leave_at_default(self, Callback::ChangeState);
    }

    /// The server redirected the task (a 301, 302, 303, 307 or 308 with a `Location`), and the session
    /// would follow with `new_request`: its method already rewritten (301/302 turn a POST into a GET,
    /// 303 anything but GET and HEAD; a request turned into a GET loses its body, any other keeps
    /// it) and, when it goes to another origin, without
    /// `Authorization`, `Proxy-Authorization` and `Cookie`.
    ///
    /// Answer `Some(request)` (the proposed one, or a changed one) to follow, or `None` to stop: the
    /// redirect response then becomes the task's final response, body included. The default (also
    /// sent when `reply` is dropped) follows. Asked for completion-form tasks too.
    fn will_perform_http_redirection(
        &self,
        task: &TaskInfo,
        response: &Response,
        new_request: &Request,
        reply: Reply<Option<Request>>,
    ) {
        let _ = (task, response);
        leave_at_default(self, Callback::Redirection);
        reply.send(Some(new_request.clone()));
    }

    /// An informational (1xx) response arrived before the final one: `103 Early Hints` (its
    /// `Link` headers name what the final response will need), `100 Continue` (the server asks for
    /// an upload's body), `102 Processing`. URLSession's
    /// `urlSession(_:task:didReceiveInformationalResponse:)`. Delivered when the session's
    /// configuration asks for them (`deliver_informational_responses`: URLSession asks the
    /// delegate whether it implements the method; Rust cannot, and listening costs every request).
    /// HTTP/1.1 only: hyper does not surface them on HTTP/2 streams. `101 Switching Protocols` is
    /// not informational here.
    fn did_receive_informational_response(&self, task: &TaskInfo, response: &Response) {
        let _ = (task, response);
        leave_at_default(self, Callback::InformationalResponse);
    }

    /// A task was made in the session (URLSession's `urlSession(_:didCreateTask:)`), before any
    /// other callback about it: delegate-style tasks, and the tasks behind the completion forms
    /// too (their only callback besides questions).
    fn did_create_task(&self, task: &TaskInfo) {
        let _ = task;
        leave_at_default(self, Callback::CreateTask);
    }

    /// A task resumed before its `earliest_begin_date` (`TaskInfo::set_earliest_begin_date`)
    /// waited until then and is about to load `request` (URLSession's
    /// `urlSession(_:task:willBeginDelayedRequest:completionHandler:)`). Answer to go on, to load
    /// another request instead (headers fresher than when the task was made), or to cancel. The
    /// default (also sent when `reply` is dropped) goes on. Asked in sessions in this process; a
    /// background session's service holds its tasks back until their date without asking.
    fn will_begin_delayed_request(
        &self,
        task: &TaskInfo,
        request: &Request,
        reply: Reply<DelayedRequestDisposition>,
    ) {
        let _ = (task, request);
        leave_at_default(self, Callback::DelayedRequest);
        reply.send(DelayedRequestDisposition::ContinueLoading);
    }

    /// The task cannot reach its host for a network reason (no route, the network down) and the
    /// session's configuration says to wait (`wait_for_connectivity`): it waits and tries again
    /// until it can, or until the resource timeout. Called once per task, before it waits. A good
    /// time to tell the user "waiting for the network", or to offer an offline mode.
    fn task_is_waiting_for_connectivity(&self, task: &TaskInfo) {
        let _ = task;
        leave_at_default(self, Callback::WaitingForConnectivity);
    }

    /// A server asks this task to authenticate (HTTP Basic or Digest). Answer with a disposition;
    /// the default (also sent when `reply` is dropped) is
    /// [`AuthChallengeDisposition::PerformDefaultHandling`]: the URL's user and password, then the
    /// session's credential store, else the 401 is delivered as the response. Asked again, with a
    /// higher `previous_failure_count`, when the credential is refused. Completion-form tasks are
    /// asked too.
    fn did_receive_challenge(
        &self,
        task: &TaskInfo,
        challenge: &AuthenticationChallenge,
        reply: Reply<AuthChallengeDisposition>,
    ) {
        let _ = (task, challenge);
        leave_at_default(self, Callback::TaskChallenge);
        reply.send(AuthChallengeDisposition::PerformDefaultHandling);
    }

    /// An upload made from a stream needs its body: at the start, and again whenever the body must be
    /// sent anew (a 307 or 308 redirect, an authentication retry). Answer with a fresh stream that
    /// starts at the beginning of the body; the default (also sent when `reply` is dropped) is `None`,
    /// which sends no body at the start, and on a resend fails the task with
    /// `RequestBodyStreamExhausted` (-1021), as URLSession does: the server must not get an empty
    /// body in place of the one it redirected.
    fn need_new_body_stream(&self, task: &TaskInfo, reply: Reply<Option<BodyStream>>) {
        let _ = task;
        leave_at_default(self, Callback::NewBodyStream);
        reply.send(None);
    }

    /// Upload progress: `bytes_sent` more bytes went out, `total_bytes_sent` in all, of
    /// `total_bytes_expected_to_send` (`None` when unknown, as for a stream: URLSession's -1).
    /// Totals only grow.
    fn did_send_body_data(
        &self,
        task: &TaskInfo,
        bytes_sent: u64,
        total_bytes_sent: u64,
        total_bytes_expected_to_send: Option<u64>,
    ) {
        let _ = (
            task,
            bytes_sent,
            total_bytes_sent,
            total_bytes_expected_to_send,
        );
        leave_at_default(self, Callback::SendBodyData);
    }

    /// The task's metrics: one transaction per request it sent (redirects and authentication
    /// retries included). Sent once, just before the task's completion, for tasks that were started.
    fn did_finish_collecting_metrics(&self, task: &TaskInfo, metrics: &TaskMetrics) {
        let _ = (task, metrics);
        leave_at_default(self, Callback::Metrics);
    }

    /// The task's terminal message, sent exactly once per task, even for a task cancelled before it
    /// was resumed. `error` is `None` on success; HTTP error statuses are successes.
    fn did_complete(&self, task: &TaskInfo, error: Option<&Error>) {
        let _ = (task, error);
        leave_at_default(self, Callback::Complete);
    }

    /// A WebSocket task's handshake succeeded: `protocol` is the subprotocol the server chose
    /// among those offered, if any (`URLSessionWebSocketDelegate`'s
    /// `urlSession(_:webSocketTask:didOpenWithProtocol:)`).
    ///
    /// URLSession puts the two WebSocket messages in a protocol of their own that inherits from
    /// the task delegate's; here they are task-delegate methods with defaults, so that existing
    /// delegates need no new `impl` block.
    fn did_open_with_protocol(&self, task: &TaskInfo, protocol: Option<&str>) {
        let _ = (task, protocol);
        leave_at_default(self, Callback::WebSocketOpen);
    }

    /// A WebSocket task received the server's close frame (or closed itself after an error, with
    /// the code it sent), before its `did_complete` (`urlSession(_:webSocketTask:didCloseWith:reason:)`).
    /// `reason` is the close frame's reason, `None` when it had none.
    fn did_close_with(&self, task: &TaskInfo, code: CloseCode, reason: Option<&[u8]>) {
        let _ = (task, code, reason);
        leave_at_default(self, Callback::WebSocketClose);
    }

    /// A stream task's reading side closed: the server ended its side (end of stream), or
    /// `close_read` was called (`URLSessionStreamDelegate`'s `urlSession(_:readClosedFor:)`).
    /// Like the WebSocket messages, the stream delegate's are task-delegate methods here.
    fn read_closed(&self, task: &TaskInfo) {
        let _ = task;
        leave_at_default(self, Callback::ReadClosed);
    }

    /// A stream task's writing side closed (`close_write`, or a write that failed)
    /// (`urlSession(_:writeClosedFor:)`).
    fn write_closed(&self, task: &TaskInfo) {
        let _ = task;
        leave_at_default(self, Callback::WriteClosed);
    }

    /// A stream task handed its connection to the application (`capture_streams`); the task
    /// completes next (`urlSession(_:streamTask:didBecome:outputStream:)`: one Tokio stream here,
    /// readable and writable, instead of a pair of Foundation streams).
    fn did_become_streams(&self, task: &TaskInfo) {
        let _ = task;
        leave_at_default(self, Callback::BecomeStreams);
    }
}

/// Messages of data tasks (`URLSessionDataDelegate`).
pub trait DataDelegate: Send + Sync + 'static {
    /// The final response's head arrived. Body delivery waits until `reply` is answered; the default
    /// (also sent when `reply` is dropped unanswered) is [`ResponseDisposition::Allow`].
    fn did_receive_response(
        &self,
        task: &TaskInfo,
        response: &Response,
        reply: Reply<ResponseDisposition>,
    ) {
        let _ = (task, response);
        leave_at_default(self, Callback::ReceiveResponse);
        reply.send(ResponseDisposition::Allow);
    }

    /// The data task `task` became the download task `download_task` (its answer to
    /// `did_receive_response` was [`ResponseDisposition::BecomeDownload`]). From here on, messages
    /// name the download task; the data task gets none, not even `did_complete`.
    fn did_become_download_task(&self, task: &TaskInfo, download_task: &TaskInfo) {
        let _ = (task, download_task);
        leave_at_default(self, Callback::BecomeDownload);
    }

    /// The data task `task` became the stream task `stream_task` (its answer to
    /// `did_receive_response` was [`ResponseDisposition::BecomeStream`]): the connection that
    /// answered `101 Switching Protocols` is the stream task's. URLSession hands the task object
    /// itself; here the handle comes from `Session::adopt_stream_task(stream_task.id())`, once. The data
    /// task gets no more messages, not even `did_complete`.
    fn did_become_stream_task(&self, task: &TaskInfo, stream_task: &TaskInfo) {
        let _ = (task, stream_task);
        leave_at_default(self, Callback::BecomeStream);
    }

    /// The response can be stored in the URL cache (after its last data, before completion).
    /// Answer with it (the default), a changed one, or `None` to keep it out of the cache.
    fn will_cache_response(
        &self,
        task: &TaskInfo,
        proposed: &CachedResponse,
        reply: Reply<Option<CachedResponse>>,
    ) {
        let _ = task;
        leave_at_default(self, Callback::WillCache);
        reply.send(Some(proposed.clone()));
    }

    /// Body bytes arrived, in order. Called zero or more times after `did_receive_response`.
    fn did_receive_data(&self, task: &TaskInfo, data: &Bytes) {
        let _ = (task, data);
        leave_at_default(self, Callback::ReceiveData);
    }
}

/// Messages of download tasks (`URLSessionDownloadDelegate`). Download tasks get no
/// `did_receive_response` and no `did_receive_data`: the body goes to a file.
pub trait DownloadDelegate: Send + Sync + 'static {
    /// Progress: `bytes_written` more bytes are in the file, `total_bytes_written` in all, of
    /// `total_bytes_expected_to_write` (`None` when unknown: URLSession's -1). Totals only grow; the
    /// last call's total is the file's size.
    fn did_write_data(
        &self,
        task: &TaskInfo,
        bytes_written: u64,
        total_bytes_written: u64,
        total_bytes_expected_to_write: Option<u64>,
    ) {
        let _ = (
            task,
            bytes_written,
            total_bytes_written,
            total_bytes_expected_to_write,
        );
        leave_at_default(self, Callback::WriteData);
    }

    /// A task made from resume data started: the download continues at `file_offset` (0 when the
    /// server could not continue it and it starts over), of `expected_total_bytes` (`None` when
    /// unknown: URLSession's -1).
    fn did_resume_at_offset(
        &self,
        task: &TaskInfo,
        file_offset: u64,
        expected_total_bytes: Option<u64>,
    ) {
        let _ = (task, file_offset, expected_total_bytes);
        leave_at_default(self, Callback::ResumeAtOffset);
    }

    /// The download is complete, in the file at `location`. The file is removed when this returns:
    /// move it (`std::fs::rename`) or open it before then. Comes before `did_complete`.
    fn did_finish_downloading_to(&self, task: &TaskInfo, location: &Path) {
        let _ = (task, location);
        leave_at_default(self, Callback::FinishDownloading);
    }
}

/// Every protocol a message about one task may belong to: what a task's own delegate implements
/// (URLSession's `task.delegate`, iOS 15), and part of every [`Delegate`]. Implemented for any
/// type that implements the three traits (empty `impl` blocks for the ones it does not care about).
///
/// A task's own delegate is asked first about that task; whatever it leaves at its default goes
/// on to the session's delegate, as URLSession sends a message the task delegate does not
/// implement to the session delegate. Session-level messages (`SessionDelegate`) go to the
/// session's delegate only.
pub trait TaskLevelDelegate: TaskDelegate + DataDelegate + DownloadDelegate + Any {}

impl<T: TaskDelegate + DataDelegate + DownloadDelegate> TaskLevelDelegate for T {}

/// A complete delegate: every protocol a session may call. Implemented for any type that implements the
/// four traits. (`Any` lets the delivery queue tell the delegate's own default methods from those of
/// an object it forwards to.)
pub trait Delegate: SessionDelegate + TaskLevelDelegate {}

impl<T: SessionDelegate + TaskLevelDelegate> Delegate for T {}
