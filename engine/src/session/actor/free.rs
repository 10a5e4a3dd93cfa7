//! The session's free task actors: those whose task ended, kept for its next tasks.
//!
//! The list is shared with the task actors so that one whose task ended joins it by itself,
//! without a message: a task then costs its session one message (its `Register`) instead of two,
//! and the session no wake-up at its end (about 4% of a small request's time, BENCHMARKS.md,
//! 2026-12-05 night). The session forgets an ended task when it gives the task's actor its next
//! one, when it looks at all its tasks (`SessionState::forget_ended`), or when it invalidates: so
//! the records of at most [`FREE_TASK_ACTORS`] ended tasks (their request and response heads) wait
//! to be forgotten. Invalidation closes the list and stops the actors in it; an actor that finds
//! the list full or closed says it is free by message instead (`TaskReport::ActorFree`), which the
//! session answers by stopping it, and invalidation waits for that.

use std::sync::{Mutex, MutexGuard};

use ractor::{ActorId, ActorRef};

use crate::task::actor::TaskMsg;

/// The most task actors a session keeps free for its next tasks: as many as a busy session runs
/// at once (64 small requests at once take an actor each), few enough that an idle session holds
/// little: a free actor keeps its Tokio task, its processing loop and its channels, about 6 KB
/// (dhat, BENCHMARKS.md, 2026-12-04 evening), so at most about 400 KB a session.
pub(super) const FREE_TASK_ACTORS: usize = 64;

/// Task actors free for the session's next tasks, shared between the session and its task actors.
#[derive(Default)]
pub(crate) struct FreeActors(Mutex<List>);

#[derive(Default)]
struct List {
    actors: Vec<ActorRef<TaskMsg>>,
    /// Set once the session invalidates or stops: no actor joins any more.
    closed: bool,
}

impl FreeActors {
    /// Adds `actor`, whose task ended; gives it back when the list is full or closed.
    pub(crate) fn join(&self, actor: ActorRef<TaskMsg>) -> Result<(), ActorRef<TaskMsg>> {
        let mut list = self.lock();
        if list.closed || list.actors.len() >= FREE_TASK_ACTORS {
            return Err(actor);
        }
        list.actors.push(actor);
        Ok(())
    }

    /// The free actor that joined last, if any.
    pub(super) fn take(&self) -> Option<ActorRef<TaskMsg>> {
        self.lock().actors.pop()
    }

    /// The ids of the free actors (whose tasks ended).
    pub(super) fn ids(&self) -> Vec<ActorId> {
        self.lock().actors.iter().map(|a| a.get_id()).collect()
    }

    /// Takes `actor` out, if it is free (it stopped).
    pub(super) fn remove(&self, actor: ActorId) {
        self.lock().actors.retain(|a| a.get_id() != actor);
    }

    /// Closes the list (no actor joins any more) and takes out every free actor.
    pub(super) fn close(&self) -> Vec<ActorRef<TaskMsg>> {
        let mut list = self.lock();
        list.closed = true;
        std::mem::take(&mut list.actors)
    }

    fn lock(&self) -> MutexGuard<'_, List> {
        // The list's every change is one push, pop or retain: a panic cannot leave it half done.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use ractor::{Actor, ActorProcessingErr};

    use super::*;

    /// An actor that takes a task actor's messages and does nothing with them.
    struct Idle;

    impl Actor for Idle {
        type Msg = TaskMsg;
        type State = ();
        type Arguments = ();

        async fn pre_start(&self, _: ActorRef<TaskMsg>, _: ()) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_list_keeps_at_most_its_room_and_none_once_closed() {
        let mut actors = Vec::new();
        for _ in 0..FREE_TASK_ACTORS + 1 {
            actors.push(Actor::spawn(None, Idle, ()).await.expect("spawn").0);
        }
        let free = FreeActors::default();
        assert!(free.take().is_none());
        for actor in &actors[..FREE_TASK_ACTORS] {
            assert!(free.join(actor.clone()).is_ok());
        }
        let last = &actors[FREE_TASK_ACTORS];
        // Full: the actor comes back, to say it is free by message.
        let back = free.join(last.clone()).expect_err("full");
        assert_eq!(back.get_id(), last.get_id());
        assert_eq!(free.ids().len(), FREE_TASK_ACTORS);

        // The last to join is the first taken; one that stopped is taken out.
        let taken = free.take().expect("a free actor");
        assert_eq!(taken.get_id(), actors[FREE_TASK_ACTORS - 1].get_id());
        free.remove(actors[0].get_id());
        assert!(!free.ids().contains(&actors[0].get_id()));
        assert_eq!(free.ids().len(), FREE_TASK_ACTORS - 2);

        // Closing hands every free actor over, and none joins after.
        assert_eq!(free.close().len(), FREE_TASK_ACTORS - 2);
        assert!(free.join(taken).is_err());
        assert!(free.take().is_none());
        for actor in actors {
            actor.stop(None);
        }
    }
}
