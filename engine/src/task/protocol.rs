//! Protocol handlers (URLSession's `URLProtocol` and `protocolClasses`): application code that
//! answers some requests instead of the network, for a scheme of its own or to mock a server in its
//! tests.
//!
//! A handler stands where the connection would: the request it sees is the one that would go on the
//! wire (the configuration's headers, cookies from the jar, an `Authorization` Courier added), and its
//! answer goes through everything a network response goes through: redirects (with the delegate's
//! say), authentication challenges, cookies, the URL cache, content decoding, the response
//! disposition, data or download delivery, metrics, and `did_complete`. A handler is asked for every
//! request a task sends (each redirect hop, each retry with credentials), so a redirect may lead from
//! a handled URL to the network and back.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use courier_delegates::{Error, Request};
use futures_core::Stream;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

/// A body a handler answers with, read as the task reads it.
pub type AnswerStream = Pin<Box<dyn Stream<Item = Result<Bytes, Error>> + Send + 'static>>;

/// What [`ProtocolHandler::answer`] returns.
pub type AnswerFuture = Pin<Box<dyn Future<Output = Result<Answer, Error>> + Send + 'static>>;

/// Answers requests in place of the network: URLSession's `URLProtocol`.
///
/// Register handlers in [`Configuration::protocol_handlers`](crate::Configuration::protocol_handlers);
/// for each request a task sends, the first handler (in that order) whose [`claims`] is true
/// answers it (`canInit(with:)`, then `startLoading`). A request no handler claims goes to the
/// network. Claimed requests skip the checks that are about the network (the scheme must be http or
/// https, the cleartext policy), so a handler may serve a scheme of its own, such as `mock://`; the
/// URL must still have a host.
///
/// The answer is a status, headers and a body ([`Answer`]); an `Err` fails the task with that error,
/// as a connection failure would. A task that is cancelled or suspended while the handler works
/// drops or pauses the future and the body stream (URLProtocol's `stopLoading`). The session's
/// request timeout applies to the answer's head and to each piece of its body.
///
/// Background sessions do not use handlers: their transfers run in the background service.
///
/// [`claims`]: ProtocolHandler::claims
///
/// ```
/// use courier_engine::{Answer, AnswerFuture, Configuration, ProtocolHandler, Request, Session};
/// use std::sync::Arc;
///
/// /// Serves `mock://api/...` with canned JSON: a test double for an API.
/// struct MockApi;
///
/// impl ProtocolHandler for MockApi {
///     fn claims(&self, request: &Request) -> bool {
///         request.url().is_some_and(|u| u.scheme() == "mock")
///     }
///
///     fn answer(&self, request: Request) -> AnswerFuture {
///         let path = request.url().map(|u| u.path().to_owned()).unwrap_or_default();
///         Box::pin(async move {
///             Ok(match path.as_str() {
///                 "/user" => Answer::new(200)
///                     .header("content-type", "application/json")
///                     .body(r#"{"name":"ada"}"#),
///                 _ => Answer::new(404),
///             })
///         })
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut config = Configuration::ephemeral();
/// config.protocol_handlers.push(Arc::new(MockApi));
/// let session = Session::new(config).unwrap();
/// let (body, response) = session.data("mock://api/user").await.unwrap();
/// assert_eq!((response.status().as_u16(), &body[..]), (200, &br#"{"name":"ada"}"#[..]));
/// # }
/// ```
pub trait ProtocolHandler: Send + Sync + 'static {
    /// Whether this handler answers `request` (`canInit(with:)`). Called for every request sent,
    /// on the task's transfer: keep it quick and free of I/O.
    fn claims(&self, request: &Request) -> bool;

    /// Answers `request` (`startLoading`): the request as it would go on the wire, with the body of
    /// an upload from bytes in [`Request::body`] (an upload from a file or a stream is not read).
    fn answer(&self, request: Request) -> AnswerFuture;
}

impl std::fmt::Debug for dyn ProtocolHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProtocolHandler")
    }
}

/// A handler's answer: a status, headers and a body. Built like a response:
/// `Answer::new(200).header("content-type", "text/plain").body("hi")`.
pub struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: AnswerBody,
}

/// Where an answer's body comes from.
pub(crate) enum AnswerBody {
    /// All of it, at once.
    Whole(Bytes),
    /// Pieces as the handler produces them; an error ends the body, failing the task.
    Stream(AnswerStream),
}

impl Answer {
    /// An answer with `status` and no body (a status outside 100-999 becomes 500, as a server
    /// that cannot answer properly would).
    pub fn new(status: u16) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            headers: HeaderMap::new(),
            body: AnswerBody::Whole(Bytes::new()),
        }
    }

    /// Adds a header (appended to same-named ones). A name or value that is not valid HTTP is
    /// left out, with a warning in the log.
    pub fn header(mut self, name: &str, value: &str) -> Answer {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(name), Ok(value)) => {
                self.headers.append(name, value);
            }
            _ => tracing::warn!(
                name,
                "a protocol handler's header is not valid HTTP: left out"
            ),
        }
        self
    }

    /// The whole body; sets `Content-Length` unless a header gave one already.
    pub fn body(mut self, body: impl Into<Bytes>) -> Answer {
        let body = body.into();
        if !self.headers.contains_key(http::header::CONTENT_LENGTH) {
            self.headers
                .insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        self.body = AnswerBody::Whole(body);
        self
    }

    /// A body read piece by piece as the task reads it (a slow server, a large file, a body that
    /// fails part-way with an error such as [`ErrorCode::NetworkConnectionLost`]).
    ///
    /// [`ErrorCode::NetworkConnectionLost`]: crate::ErrorCode::NetworkConnectionLost
    pub fn stream(
        mut self,
        body: impl Stream<Item = Result<Bytes, Error>> + Send + 'static,
    ) -> Answer {
        self.body = AnswerBody::Stream(Box::pin(body));
        self
    }
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

/// A handler made of two closures: `claims` as [`ProtocolHandler::claims`], `answer` as
/// [`ProtocolHandler::answer`] with an `async` body. For mocks in tests, where a type of its own is
/// more than the handler needs.
///
/// ```
/// use courier_engine::task::protocol::handler_fn;
/// use courier_engine::{Answer, Configuration};
///
/// let mut config = Configuration::ephemeral();
/// config.protocol_handlers.push(handler_fn(
///     |request| request.url().and_then(|u| u.host_str()) == Some("api.example.com"),
///     |_request| async { Ok(Answer::new(204)) },
/// ));
/// ```
pub fn handler_fn<C, A, F>(claims: C, answer: A) -> std::sync::Arc<dyn ProtocolHandler>
where
    C: Fn(&Request) -> bool + Send + Sync + 'static,
    A: Fn(Request) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Answer, Error>> + Send + 'static,
{
    struct FnHandler<C, A>(C, A);
    impl<C, A, F> ProtocolHandler for FnHandler<C, A>
    where
        C: Fn(&Request) -> bool + Send + Sync + 'static,
        A: Fn(Request) -> F + Send + Sync + 'static,
        F: Future<Output = Result<Answer, Error>> + Send + 'static,
    {
        fn claims(&self, request: &Request) -> bool {
            (self.0)(request)
        }

        fn answer(&self, request: Request) -> AnswerFuture {
            Box::pin((self.1)(request))
        }
    }
    std::sync::Arc::new(FnHandler(claims, answer))
}

/// The first of `handlers` that claims `request`.
pub(crate) fn claimer<'h>(
    handlers: &'h [std::sync::Arc<dyn ProtocolHandler>],
    request: &Request,
) -> Option<&'h std::sync::Arc<dyn ProtocolHandler>> {
    handlers.iter().find(|h| h.claims(request))
}
