//! Which requests take a turn with their host before they start ([`host_queue`]): the rule, as a
//! transfer applies it to its first request (`Run::first_turn`) and as a session applies it to a
//! task before spawning its actor ([`turn_before_start`]).

use super::*;

impl Run {
    /// The first request's turn with its host, for an HTTP/1.1 request that takes one before it
    /// starts: a free turn, or a place in the host's line. `None` when the request takes its turn
    /// as it is sent: one the URL cache may answer or a protocol handler may claim (neither needs a
    /// connection), one that begins later, and any over HTTP/2.
    pub(super) fn first_turn(
        &self,
        head: &Head,
        body: Option<&UploadBody>,
        destination: &Destination,
    ) -> Option<Result<host_queue::Turn, host_queue::InLine>> {
        let memory = match destination {
            Destination::Memory { .. } => true,
            Destination::File { .. } => false,
            Destination::Socket(_) | Destination::Stream(_) => return None,
        };
        takes_turn_first(&self.ctx, &self.info, head, body, memory).then(|| {
            self.ctx
                .host_queue
                .try_turn(&head.uri, self.info.priority())
        })
    }
}

/// [`Run::first_turn`]'s rule: whether the first send of `head` takes a turn with its host before
/// the transfer starts.
fn takes_turn_first(
    ctx: &SessionContext,
    info: &TaskInfo,
    head: &Head,
    body: Option<&UploadBody>,
    memory: bool,
) -> bool {
    let cached = memory && caching::cache_has_a_say(ctx, info, &head.method, body.is_some());
    takes_turn_first_unless(ctx, info, cached) && ctx.transport.speaks_http1(&head.uri)
}

/// The part of [`takes_turn_first`] that needs no request head: not a request the URL cache may
/// answer (`cached`) or a protocol handler may claim (neither needs a connection), nor one that
/// begins later. (The rest: not one over HTTP/2.)
fn takes_turn_first_unless(ctx: &SessionContext, info: &TaskInfo, cached: bool) -> bool {
    !(cached || !ctx.config.protocol_handlers.is_empty() || info.earliest_begin_date().is_some())
}

/// The host a task about to start takes a turn with before anything else happens
/// ([`Run::first_turn`]'s rule, read off its request; a `GET` the URL cache has a say in counts
/// as one it cannot answer when the cache holds nothing for its URL in memory and keeps nothing on
/// disk): its session takes that turn, or stands the
/// task in the host's line, before it spawns the task's actor. So a task waiting for a connection
/// holds neither an actor nor a transfer (about 9.6 KB, two thirds of it ractor's) while thousands
/// wait, and the turn it takes is counted at once, not when its actor first runs. `None`: the
/// transfer decides as it starts.
///
/// Only for a data task, an upload or a download not made from resume data, to an `http` or
/// `https` URL with a host. A request the transfer's checks then refuse
/// ([`build_request`](crate::task::request::build_request)) fails at once and hands its turn on.
pub(crate) fn turn_before_start(
    ctx: &SessionContext,
    info: &TaskInfo,
    work: &crate::task::Work,
) -> Option<HostKey> {
    use crate::task::Work;
    let request = info.original_request();
    let (has_body, memory) = match work {
        Work::Data => (request.body().is_some_and(|b| !b.is_empty()), true),
        Work::Upload(_) => (true, true),
        Work::Download { resume: None } => (false, false),
        _ => return None,
    };
    let url = request.url()?;
    let cached = memory && caching::cache_may_answer(ctx, info, request.method(), has_body, url);
    if !takes_turn_first_unless(ctx, info, cached) {
        return None;
    }
    let tls = match url.scheme() {
        "http" => false,
        "https" => true,
        _ => return None,
    };
    let host = HostKey::new(tls, url.host_str()?, url.port_or_known_default()?);
    ctx.transport.host_speaks_http1(&host).then_some(host)
}
