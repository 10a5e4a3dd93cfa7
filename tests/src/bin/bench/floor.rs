//! The floor of the actor-per-task shape for one request: hyper-util's client with actors around
//! each request and nothing else. In [`run`], a session actor makes a ractor actor per request,
//! linked to it, and hears it stop; the actor starts the request in a Tokio task of its own (the
//! transfer), receives its end by message, answers the caller and stops. That was Courier's shape
//! until its task actors were kept for the session's next task: [`run_pooled`] is its shape now.
//!
//! Measured beside hyper-util alone and Courier in the small-request scenario: the gap between
//! hyper-util and these floors is what the actor-per-task design costs by itself; Courier's time
//! beyond the pooled floor is its own work on top (requests and responses, task records, the state
//! machine, cookies, the cache lookup, delivery).
//!
//! Two variants tell apart what ractor's part is made of:
//! - [`run_minimal`], the same topology with actors written by hand instead of ractor's: what the
//!   actor-per-task design would cost with the cheapest actor that still has a mailbox, a
//!   supervisor that hears it stop (or panic), and its transfer inside it;
//! - [`run_pooled`], ractor's actors, but each request actor serves one GET after another, as
//!   Courier's task actors do: the messages stay, the spawn, the links and the stop of an actor per
//!   request go.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::{mpsc, oneshot};

use super::small::{Flavor, HyperClient, drive, hyper_client, hyper_get};

/// The session: makes one request actor per GET.
struct SessionActor;

/// The session's one message: a GET whose body length goes to the caller.
struct Get(oneshot::Sender<usize>);

/// A request's actor; its only message is its transfer's end (the body's length).
struct RequestActor;

struct RequestArgs {
    client: HyperClient,
    uri: http::Uri,
    reply: oneshot::Sender<usize>,
}

impl Actor for SessionActor {
    type Msg = Get;
    type State = (HyperClient, http::Uri);
    type Arguments = (HyperClient, http::Uri);

    async fn pre_start(
        &self,
        _: ActorRef<Get>,
        args: (HyperClient, http::Uri),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(
        &self,
        me: ActorRef<Get>,
        Get(reply): Get,
        (client, uri): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let args = RequestArgs {
            client: client.clone(),
            uri: uri.clone(),
            reply,
        };
        RequestActor::spawn_linked(None, RequestActor, args, me.get_cell()).await?;
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<Get>,
        event: SupervisionEvent,
        _: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // A request actor stopped: the session's bookkeeping would forget it here.
        std::hint::black_box(matches!(event, SupervisionEvent::ActorTerminated(..)));
        Ok(())
    }
}

impl Actor for RequestActor {
    type Msg = usize;
    type State = Option<oneshot::Sender<usize>>;
    type Arguments = RequestArgs;

    async fn pre_start(
        &self,
        me: ActorRef<usize>,
        RequestArgs { client, uri, reply }: RequestArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        // The transfer: a Tokio task beside the actor, reporting its end by message.
        tokio::spawn(async move {
            let _ = me.cast(hyper_get(client, uri).await);
        });
        Ok(Some(reply))
    }

    async fn handle(
        &self,
        me: ActorRef<usize>,
        length: usize,
        reply: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(reply) = reply.take() {
            let _ = reply.send(length);
        }
        me.stop(None);
        Ok(())
    }
}

/// `n` GETs of `url` through the floor, 64 at once.
pub(crate) fn run(url: &str, n: usize, flavor: Flavor) -> Duration {
    run_ractor(url, n, flavor, SessionActor, |s, tx| {
        s.cast(Get(tx)).expect("the session runs")
    })
}

/// `n` GETs of `url`, 64 at once, through a ractor floor whose session actor is `session`, each
/// asked of it by `ask`.
fn run_ractor<A>(
    url: &str,
    n: usize,
    flavor: Flavor,
    session: A,
    ask: fn(&ActorRef<A::Msg>, oneshot::Sender<usize>),
) -> Duration
where
    A: Actor<Arguments = (HyperClient, http::Uri)>,
{
    flavor.runtime().block_on(async {
        let client = hyper_client();
        let uri: http::Uri = url.parse().expect("URI");
        let (session, running) = Actor::spawn(None, session, (client, uri))
            .await
            .expect("the session actor");
        let elapsed = ask_each(n, session, ask).await;
        running.abort();
        elapsed
    })
}

/// `n` GETs, 64 at once, each asked of a floor's `session` by `ask` with the channel its answer
/// (the body's length) comes back on.
async fn ask_each<S: Clone + Send + Sync + 'static>(
    n: usize,
    session: S,
    ask: fn(&S, oneshot::Sender<usize>),
) -> Duration {
    drive(n, move || {
        let session = session.clone();
        async move {
            let (tx, rx) = oneshot::channel();
            ask(&session, tx);
            rx.await.expect("an answer")
        }
    })
    .await
}

/// `n` GETs of `url` through hyper-util's client with one Tokio task per request and nothing
/// else: each GET runs in a task of its own, as Courier's transfer does, and its caller awaits the
/// task's end. Between hyper-util alone and the floor, it tells the transfer's task apart from
/// ractor's actors in what the shape costs.
pub(crate) fn run_task(url: &str, n: usize, flavor: Flavor) -> Duration {
    flavor.runtime().block_on(async {
        let client = hyper_client();
        let uri: http::Uri = url.parse().expect("URI");
        drive(n, move || {
            let (client, uri) = (client.clone(), uri.clone());
            async move {
                tokio::spawn(hyper_get(client, uri))
                    .await
                    .expect("the request's task")
            }
        })
        .await
    })
}

/// What the hand-written session hears: a GET, or a request's actor stopping (with the panic's
/// message when it panicked).
enum MinimalMsg {
    Get(oneshot::Sender<usize>),
    Stopped(u64, Option<String>),
}

/// `n` GETs of `url` through the floor's topology with hand-written actors, 64 at once.
///
/// The session is a Tokio task with a mailbox and a map of its running children; each GET is a
/// Tokio task with a mailbox of its own, which runs its transfer inside itself (a `select!`
/// between the mailbox and the GET), answers the caller, and tells the session it stopped, its
/// panic caught. One spawn and one channel per request, against ractor's spawn, its four ports,
/// its supervision links, and a second task for the transfer.
pub(crate) fn run_minimal(url: &str, n: usize, flavor: Flavor) -> Duration {
    flavor.runtime().block_on(async {
        let client = hyper_client();
        let uri: http::Uri = url.parse().expect("URI");
        let (session, mut mailbox) = mpsc::unbounded_channel::<MinimalMsg>();
        let me = session.clone();
        let running = tokio::spawn(async move {
            // Each child's mailbox: its one control call is a cancel.
            let mut children: HashMap<u64, mpsc::UnboundedSender<()>> = HashMap::new();
            let mut last = 0u64;
            while let Some(msg) = mailbox.recv().await {
                match msg {
                    MinimalMsg::Get(reply) => {
                        last += 1;
                        let (id, me) = (last, me.clone());
                        let (cancel, cancels) = mpsc::unbounded_channel();
                        children.insert(id, cancel);
                        let (client, uri) = (client.clone(), uri.clone());
                        tokio::spawn(async move {
                            let ended = AssertUnwindSafe(minimal_request(
                                hyper_get(client, uri),
                                reply,
                                cancels,
                            ))
                            .catch_unwind()
                            .await;
                            let why = ended.err().map(|_| "panicked".to_owned());
                            let _ = me.send(MinimalMsg::Stopped(id, why));
                        });
                    }
                    MinimalMsg::Stopped(id, why) => {
                        // The session's bookkeeping forgets the task here.
                        std::hint::black_box((children.remove(&id), why));
                    }
                }
            }
        });
        let elapsed = ask_each(n, session, |s, tx| {
            assert!(s.send(MinimalMsg::Get(tx)).is_ok(), "the session runs")
        })
        .await;
        running.abort();
        elapsed
    })
}

/// A request's hand-written actor: its mailbox and its `transfer` (whose result is the body's
/// length), in one task. The concurrent downloads' floor runs its downloads in it too.
pub(crate) async fn minimal_request(
    transfer: impl std::future::Future<Output = usize>,
    reply: oneshot::Sender<usize>,
    mut cancels: mpsc::UnboundedReceiver<()>,
) {
    tokio::select! {
        biased;
        Some(()) = cancels.recv() => drop(reply),
        length = transfer => {
            let _ = reply.send(length);
        }
    }
}

/// The pooled floor's session: a GET, or one of its request actors free again.
enum PooledMsg {
    Get(oneshot::Sender<usize>),
    Free(ActorRef<PooledRequest>),
}

/// What a pooled request actor hears: a GET to run, or its transfer's end.
enum PooledRequest {
    Run(oneshot::Sender<usize>),
    Done(usize),
}

struct PooledSession;

struct PooledRequestActor;

struct PooledArgs {
    client: HyperClient,
    uri: http::Uri,
    session: ActorRef<PooledMsg>,
}

impl Actor for PooledSession {
    type Msg = PooledMsg;
    type State = (HyperClient, http::Uri, Vec<ActorRef<PooledRequest>>);
    type Arguments = (HyperClient, http::Uri);

    async fn pre_start(
        &self,
        _: ActorRef<PooledMsg>,
        (client, uri): (HyperClient, http::Uri),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok((client, uri, Vec::new()))
    }

    async fn handle(
        &self,
        me: ActorRef<PooledMsg>,
        msg: PooledMsg,
        (client, uri, free): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PooledMsg::Get(reply) => {
                let actor = match free.pop() {
                    Some(actor) => actor,
                    None => {
                        let args = PooledArgs {
                            client: client.clone(),
                            uri: uri.clone(),
                            session: me.clone(),
                        };
                        let (actor, _) = PooledRequestActor::spawn_linked(
                            None,
                            PooledRequestActor,
                            args,
                            me.get_cell(),
                        )
                        .await?;
                        actor
                    }
                };
                actor.cast(PooledRequest::Run(reply))?;
            }
            PooledMsg::Free(actor) => free.push(actor),
        }
        Ok(())
    }
}

impl Actor for PooledRequestActor {
    type Msg = PooledRequest;
    type State = (PooledArgs, Option<oneshot::Sender<usize>>);
    type Arguments = PooledArgs;

    async fn pre_start(
        &self,
        _: ActorRef<PooledRequest>,
        args: PooledArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok((args, None))
    }

    async fn handle(
        &self,
        me: ActorRef<PooledRequest>,
        msg: PooledRequest,
        (args, waiting): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PooledRequest::Run(reply) => {
                *waiting = Some(reply);
                let (client, uri) = (args.client.clone(), args.uri.clone());
                tokio::spawn(async move {
                    let _ = me.cast(PooledRequest::Done(hyper_get(client, uri).await));
                });
            }
            PooledRequest::Done(length) => {
                if let Some(reply) = waiting.take() {
                    let _ = reply.send(length);
                }
                args.session.cast(PooledMsg::Free(me))?;
            }
        }
        Ok(())
    }
}

/// `n` GETs of `url` through ractor's actors, each request actor serving one GET after another
/// (64 of them, spawned as the session first needs them) instead of one actor per GET.
pub(crate) fn run_pooled(url: &str, n: usize, flavor: Flavor) -> Duration {
    run_ractor(url, n, flavor, PooledSession, |s, tx| {
        s.cast(PooledMsg::Get(tx)).expect("the session runs")
    })
}
