//! The task actor: owns one task's transfer and applies its state machine.
//!
//! Every event, whether a control call relayed by the session or news from the transfer, goes through
//! [`TaskMachine::step`]; this file only carries out the effects. The actor stops itself right after
//! the terminal message, and its session hears of it through supervision.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use courier_delegates::{
    Error, ErrorCode, Reply, Request, Response, ResponseDisposition, TaskInfo, TaskRecorder,
};
use courier_protocol_http::{RequestBody, body_from_bytes, empty_body};
use http::header::{CONTENT_TYPE, HeaderValue, USER_AGENT};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;
use url::Url;

use super::transfer::{DELEGATE_WINDOW, Timeouts, Transfer};
use super::{Control, Terminal, deliver_terminal, publish_state};
use crate::Configuration;
use crate::session::SessionContext;
use crate::state::{Effect, Outcome, TaskEvent, TaskMachine};

/// The default `User-Agent`, sent unless the request or the configuration sets one.
const DEFAULT_USER_AGENT: &str = concat!("courier/", env!("CARGO_PKG_VERSION"));

/// Messages a task actor handles.
pub(crate) enum TaskMsg {
    /// A control call from a handle, relayed by the session.
    Control(Control),
    /// The final response head arrived.
    Response(Response),
    /// Body bytes arrived; the permit holds their place in the delegate window.
    Data(Bytes, Option<OwnedSemaphorePermit>),
    /// The body ended.
    Finished,
    /// The transfer failed.
    Failed(Error),
    /// The delegate answered `did_receive_response`.
    Disposition(ResponseDisposition),
}

/// What a task actor starts from.
pub(crate) struct TaskArgs {
    pub(crate) ctx: Arc<SessionContext>,
    pub(crate) recorder: TaskRecorder,
    pub(crate) terminal: Terminal,
    /// True when the task reports to the delegate (false for the completion form).
    pub(crate) callbacks: bool,
}

pub(crate) struct TaskActor;

pub(crate) struct TaskState {
    ctx: Arc<SessionContext>,
    recorder: TaskRecorder,
    info: TaskInfo,
    terminal: Terminal,
    callbacks: bool,
    machine: TaskMachine,
    transfer: Option<Transfer>,
    /// The body of a completion-form task, gathered here.
    body: BytesMut,
    span: tracing::Span,
}

/// What came with the event being applied, for the effects that need it.
enum Payload {
    None,
    Response(Response),
    Data(Bytes, Option<OwnedSemaphorePermit>),
}

impl Actor for TaskActor {
    type Msg = TaskMsg;
    type State = TaskState;
    type Arguments = TaskArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<TaskMsg>,
        args: TaskArgs,
    ) -> Result<TaskState, ActorProcessingErr> {
        let info = args.recorder.info();
        let span = tracing::info_span!("task", session = args.ctx.id, task = info.id());
        Ok(TaskState {
            ctx: args.ctx,
            info,
            recorder: args.recorder,
            terminal: args.terminal,
            callbacks: args.callbacks,
            machine: TaskMachine::new(),
            transfer: None,
            body: BytesMut::new(),
            span,
        })
    }

    async fn handle(
        &self,
        me: ActorRef<TaskMsg>,
        msg: TaskMsg,
        st: &mut TaskState,
    ) -> Result<(), ActorProcessingErr> {
        let span = st.span.clone();
        async move {
            let (event, payload) = match msg {
                TaskMsg::Control(Control::Resume) => (TaskEvent::Resume, Payload::None),
                TaskMsg::Control(Control::Suspend) => (TaskEvent::Suspend, Payload::None),
                TaskMsg::Control(Control::Cancel) => (TaskEvent::Cancel, Payload::None),
                TaskMsg::Control(Control::Crash) => panic!("injected task actor panic"),
                TaskMsg::Response(r) => (TaskEvent::ResponseReceived, Payload::Response(r)),
                TaskMsg::Data(d, permit) => (TaskEvent::DataReceived, Payload::Data(d, permit)),
                TaskMsg::Finished => (TaskEvent::Finished, Payload::None),
                TaskMsg::Failed(e) => (TaskEvent::Failed(e), Payload::None),
                TaskMsg::Disposition(ResponseDisposition::Allow) => {
                    (TaskEvent::BodyAllowed, Payload::None)
                }
                TaskMsg::Disposition(_) => (TaskEvent::Cancel, Payload::None),
            };
            st.apply(&me, event, payload).await;
            Ok(())
        }
        .instrument(span)
        .await
    }
}

impl TaskState {
    /// Steps the machine with `event` and carries out the effects, including any events they cause.
    async fn apply(
        &mut self,
        me: &ActorRef<TaskMsg>,
        event: TaskEvent<Error>,
        mut payload: Payload,
    ) {
        let mut events = VecDeque::from([event]);
        while let Some(event) = events.pop_front() {
            let (next, effects) = self.machine.step(event);
            self.machine = next;
            for effect in effects {
                if let Some(follow_up) = self.carry_out(me, effect, &mut payload).await {
                    events.push_back(follow_up);
                }
            }
        }
    }

    async fn carry_out(
        &mut self,
        me: &ActorRef<TaskMsg>,
        effect: Effect<Error>,
        payload: &mut Payload,
    ) -> Option<TaskEvent<Error>> {
        match effect {
            Effect::StateChanged { from, to } => {
                publish_state(&self.ctx, &self.recorder, self.callbacks, from, to);
            }
            Effect::StartTransfer => {
                let request = self.info.current_request();
                let (http_request, url) = match build_request(&request, &self.ctx.config) {
                    Ok(built) => built,
                    Err(e) => return Some(TaskEvent::Failed(e)),
                };
                let timeouts = Timeouts {
                    idle: request
                        .timeout()
                        .unwrap_or(self.ctx.config.timeout_for_request),
                    resource: self.ctx.config.timeout_for_resource,
                };
                let window = self
                    .callbacks
                    .then(|| Arc::new(Semaphore::new(DELEGATE_WINDOW)));
                self.transfer = Some(Transfer::start(
                    self.ctx.transport.clone(),
                    http_request,
                    url,
                    timeouts,
                    window,
                    me.clone(),
                ));
            }
            Effect::PauseTransfer => {
                if let Some(t) = &self.transfer {
                    t.pause();
                }
            }
            Effect::ContinueTransfer => {
                if let Some(t) = &self.transfer {
                    t.resume();
                }
            }
            Effect::StopTransfer => {
                if let Some(t) = self.transfer.take() {
                    t.stop().await;
                }
                return Some(TaskEvent::TransferStopped);
            }
            Effect::AskDisposition => {
                let Payload::Response(response) = std::mem::replace(payload, Payload::None) else {
                    return None;
                };
                self.recorder.set_response(response.clone());
                match (&self.ctx.queue, self.callbacks) {
                    (Some(queue), true) => {
                        let info = self.info.clone();
                        let me = me.clone();
                        queue.push(move |d| {
                            let reply = Reply::new(ResponseDisposition::Allow, move |answer| {
                                // The task may have completed meanwhile; then nobody is listening.
                                let _ = me.cast(TaskMsg::Disposition(answer));
                            });
                            d.did_receive_response(&info, &response, reply);
                        });
                    }
                    // No delegate to ask: URLSession's default is to allow.
                    _ => return Some(TaskEvent::BodyAllowed),
                }
            }
            Effect::ReleaseBody => {
                if let Some(t) = &self.transfer {
                    t.allow_body();
                }
            }
            Effect::DeliverData => {
                let Payload::Data(data, permit) = std::mem::replace(payload, Payload::None) else {
                    return None;
                };
                self.recorder.add_received(data.len());
                match (&self.ctx.queue, self.callbacks) {
                    (Some(queue), true) => {
                        let info = self.info.clone();
                        queue.push(move |d| {
                            d.did_receive_data(&info, &data);
                            drop(permit); // frees the window only once the delegate has the bytes
                        });
                    }
                    (_, true) => {} // a delegate-style task without a delegate: nobody wants the bytes
                    (_, false) => self.body.extend_from_slice(&data),
                }
            }
            Effect::Complete(outcome) => {
                // The transfer is over either way; drop it before telling anyone.
                self.transfer = None;
                let result = match outcome {
                    Outcome::Finished => Ok(self.body.split().freeze()),
                    Outcome::Failed(e) => Err(e),
                    Outcome::Cancelled => {
                        Err(Error::cancelled(self.info.original_request().url_str()))
                    }
                };
                deliver_terminal(&self.ctx, &self.recorder, &self.terminal, result);
                me.stop(None);
            }
        }
        None
    }
}

/// Checks a request against the configuration and builds what goes on the wire.
///
/// # Errors
/// The URL is malformed (-1000) or of an unsupported scheme (-1002); cleartext HTTP is not allowed
/// for the host (-1022); a GET carries a body (-1103).
pub(crate) fn build_request(
    request: &Request,
    config: &Configuration,
) -> Result<(http::Request<RequestBody>, Url), Error> {
    let text = request.url_str();
    let Some(url) = request.url() else {
        let reason = request.url_error().unwrap_or("malformed URL");
        return Err(Error::new(ErrorCode::BadUrl, format!("bad URL: {reason}")).with_url(text));
    };
    let secure = match url.scheme() {
        "https" => true,
        "http" => false,
        other => {
            return Err(Error::new(
                ErrorCode::UnsupportedUrl,
                format!("unsupported URL scheme {other:?}"),
            )
            .with_url(text));
        }
    };
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(Error::new(ErrorCode::BadUrl, "bad URL: no host").with_url(text));
    };
    if !secure && !config.cleartext.allows(host) {
        return Err(Error::new(
            ErrorCode::AppTransportSecurityRequiresSecureConnection,
            format!("cleartext HTTP to {host} is not allowed by the session's configuration"),
        )
        .with_url(text));
    }
    let body = request.body().filter(|b| !b.is_empty());
    if body.is_some() && request.method() == http::Method::GET {
        return Err(Error::new(
            ErrorCode::DataLengthExceedsMaximum,
            "resource exceeds maximum size",
        )
        .with_url(text));
    }
    let uri: http::Uri = url.as_str().parse().map_err(|e: http::uri::InvalidUri| {
        Error::new(ErrorCode::BadUrl, format!("bad URL: {e}")).with_url(text)
    })?;

    // The configuration's headers first, then the request's, which replace same-named ones.
    let mut headers = config.http_additional_headers.clone();
    for name in request.headers().keys() {
        headers.remove(name);
    }
    for (name, value) in request.headers() {
        headers.append(name.clone(), value.clone());
    }
    if !headers.contains_key(USER_AGENT) {
        headers.insert(USER_AGENT, HeaderValue::from_static(DEFAULT_USER_AGENT));
    }
    if body.is_some()
        && request.method() == http::Method::POST
        && !headers.contains_key(CONTENT_TYPE)
    {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
    }

    let mut builder = http::Request::builder()
        .method(request.method().clone())
        .uri(uri);
    if let Some(h) = builder.headers_mut() {
        *h = headers;
    }
    let body = match body {
        Some(b) => body_from_bytes(b.clone()),
        None => empty_body(),
    };
    let built = builder
        .body(body)
        .map_err(|e| Error::new(ErrorCode::BadUrl, format!("bad request: {e}")).with_url(text))?;
    Ok((built, url.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn code(r: Result<(http::Request<RequestBody>, Url), Error>) -> Option<ErrorCode> {
        r.err().map(|e| e.code())
    }

    #[test]
    fn refusals_before_the_wire() {
        let c = Configuration::default();
        assert_eq!(
            code(build_request(&Request::get("http://127.0.0.1:99999/"), &c)),
            Some(ErrorCode::BadUrl)
        );
        assert_eq!(
            code(build_request(&Request::get("gopher://a.test/"), &c)),
            Some(ErrorCode::UnsupportedUrl)
        );
        assert_eq!(
            code(build_request(&Request::get("http://a.test/"), &c)),
            Some(ErrorCode::AppTransportSecurityRequiresSecureConnection)
        );
        assert_eq!(
            code(build_request(
                &Request::get("https://a.test/").with_body("x"),
                &c
            )),
            Some(ErrorCode::DataLengthExceedsMaximum)
        );
        assert_eq!(
            code(build_request(&Request::get("https://a.test/"), &c)),
            None
        );
    }

    #[test]
    fn request_headers_win_over_configuration_headers() {
        let mut c = Configuration::default();
        c.http_additional_headers
            .insert("x-a", HeaderValue::from_static("config"));
        c.http_additional_headers
            .insert("x-b", HeaderValue::from_static("config"));
        let r = Request::get("https://a.test/").with_header(
            http::HeaderName::from_static("x-a"),
            HeaderValue::from_static("request"),
        );
        let (built, _) = build_request(&r, &c).unwrap();
        assert_eq!(built.headers()["x-a"], "request");
        assert_eq!(built.headers()["x-b"], "config");
        assert_eq!(built.headers()[USER_AGENT], DEFAULT_USER_AGENT);
    }

    #[test]
    fn post_body_gets_a_form_content_type() {
        let r = Request::new(Method::POST, "https://a.test/").with_body("a=1");
        let (built, _) = build_request(&r, &Configuration::default()).unwrap();
        assert_eq!(
            built.headers()[CONTENT_TYPE],
            "application/x-www-form-urlencoded"
        );
        let r = Request::new(Method::POST, "https://a.test/");
        let (built, _) = build_request(&r, &Configuration::default()).unwrap();
        assert!(built.headers().get(CONTENT_TYPE).is_none());
    }
}
