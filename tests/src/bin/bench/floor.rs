//! The floor of Courier's shape for one request: hyper-util's client with the topology Courier
//! puts around each task and nothing else. A session actor makes a ractor actor per request,
//! linked to it, and hears it stop; the actor starts the request in a Tokio task of its own (the
//! transfer), receives its end by message, answers the caller and stops.
//!
//! Measured beside hyper-util alone and Courier in the small-request scenario: the gap between
//! hyper-util and this floor is what the actor-per-task design costs by itself; Courier's time
//! beyond the floor is its own work on top (requests and responses, task records, the state
//! machine, cookies, the cache lookup, delivery).

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::oneshot;

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
    flavor.runtime().block_on(async {
        let client = hyper_client();
        let uri: http::Uri = url.parse().expect("URI");
        let (session, running) = Actor::spawn(None, SessionActor, (client, uri))
            .await
            .expect("the session actor");
        let elapsed = drive(n, move || {
            let session = session.clone();
            async move {
                let (tx, rx) = oneshot::channel();
                session.cast(Get(tx)).expect("the session runs");
                rx.await.expect("an answer")
            }
        })
        .await;
        running.abort();
        elapsed
    })
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
