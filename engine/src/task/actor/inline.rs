//! Running a completion-form task's transfer in its actor's own Tokio task, for as long as nothing
//! else needs the actor.
//!
//! A task that reports to no delegate (the completion forms: `data`, `upload`) hears nothing from
//! its transfer but the end: the transfer gathers the answer and sends it in one message. While it
//! runs, its actor waits for a control call that may never come. So the actor polls the transfer
//! itself, in the handler that started it, instead of spawning it as a Tokio task of its own: a
//! small GET then costs one Tokio task and two wake-ups fewer (its transfer's spawn, and the
//! actor's wake-up for the end, which it now finds in its mailbox as the transfer returns).
//!
//! An actor in its handler reads no messages, so whoever sends one rings its [`Doorbell`]: the
//! session as it relays a control call (cancel, suspend), and the transfer itself through its
//! [`ActorPost`] (progress of a request body, a question for the delegate, waiting for
//! connectivity). At the first ring the actor hands the transfer, as it stands, to a Tokio task
//! of its own (`Transfer::run_inline`) and returns to its mailbox; from then on the task runs as
//! every other does. So the actor still answers every call, and the transfer never waits on an
//! actor that is waiting on it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use futures_util::task::AtomicWaker;
use ractor::{ActorRef, MessagingErr};

use super::TaskMsg;

/// Rung by whoever sends a message to a task actor whose transfer may be running in its handler.
/// One per task run; a ring is kept until the actor hears it, even one that came before it
/// listened. (No lock, unlike Tokio's `Notify`: a ring is a store and, when the actor listens, a
/// wake-up.)
#[derive(Clone, Default)]
pub(crate) struct Doorbell(Arc<Bell>);

#[derive(Default)]
struct Bell {
    rung: AtomicBool,
    listener: AtomicWaker,
}

impl Doorbell {
    /// Says the actor has a message to handle.
    pub(crate) fn ring(&self) {
        self.0.rung.store(true, Ordering::Release);
        self.0.listener.wake();
    }

    /// Waits for a ring (or takes the one that came before).
    pub(crate) async fn rung(&self) {
        std::future::poll_fn(|cx| {
            if self.0.rung.swap(false, Ordering::Acquire) {
                return Poll::Ready(());
            }
            self.0.listener.register(cx.waker());
            // A ring between the check and the registration woke nobody: look again.
            match self.0.rung.swap(false, Ordering::Acquire) {
                true => Poll::Ready(()),
                false => Poll::Pending,
            }
        })
        .await
    }
}

/// A task actor's address as its transfer holds it: every message sent through it also rings the
/// actor's doorbell, if it has one.
#[derive(Clone)]
pub(crate) struct ActorPost {
    actor: ActorRef<TaskMsg>,
    doorbell: Option<Doorbell>,
}

impl ActorPost {
    pub(crate) fn new(actor: ActorRef<TaskMsg>, doorbell: Option<Doorbell>) -> ActorPost {
        ActorPost { actor, doorbell }
    }

    /// Sends `msg` to the actor and rings its doorbell.
    pub(crate) fn cast(&self, msg: TaskMsg) -> Result<(), MessagingErr<TaskMsg>> {
        let sent = self.actor.cast(msg);
        if let Some(bell) = &self.doorbell {
            bell.ring();
        }
        sent
    }

    /// The doorbell, for the actor to listen to while it polls the transfer.
    pub(crate) fn doorbell(&self) -> Option<&Doorbell> {
        self.doorbell.as_ref()
    }

    /// Sends the transfer's last message, without a ring: an actor polling the transfer finds it
    /// in its mailbox as the transfer's future returns, and a ring would only wake it again.
    pub(crate) fn cast_last(&self, msg: TaskMsg) -> Result<(), MessagingErr<TaskMsg>> {
        self.actor.cast(msg)
    }

    /// The same address without the doorbell: for a transfer that runs in a Tokio task of its
    /// own from the start, whose messages the actor reads as they come.
    pub(crate) fn without_doorbell(self) -> ActorPost {
        ActorPost {
            doorbell: None,
            ..self
        }
    }
}
