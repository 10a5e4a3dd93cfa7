//! The state machine against a small reference model, over random event sequences.

use super::*;
use proptest::prelude::*;

type Ev = TaskEvent<u8>;

fn event() -> impl Strategy<Value = Ev> {
    prop_oneof![
        3 => Just(TaskEvent::Resume),
        2 => Just(TaskEvent::Suspend),
        1 => Just(TaskEvent::Cancel),
        2 => Just(TaskEvent::ResponseReceived),
        2 => Just(TaskEvent::BodyAllowed),
        3 => Just(TaskEvent::DataReceived),
        1 => Just(TaskEvent::BodySent),
        1 => Just(TaskEvent::Finished),
        1 => (0u8..4).prop_map(TaskEvent::Failed),
        1 => Just(TaskEvent::TransferStopped),
    ]
}

/// The reference model, written from the spec rather than from the machine.
#[derive(Clone, Debug)]
struct Model {
    state: TaskState,
    started: bool,
    has_response: bool,
    body_allowed: bool,
}

impl Model {
    fn new() -> Model {
        Model {
            state: TaskState::Suspended,
            started: false,
            has_response: false,
            body_allowed: false,
        }
    }

    /// The outcome this event must produce, if it ends the task.
    fn apply(&mut self, ev: &Ev) -> Option<Outcome<u8>> {
        use TaskState::*;
        match self.state {
            Completed => None,
            Canceling => {
                if *ev == TaskEvent::TransferStopped {
                    self.state = Completed;
                    Some(Outcome::Cancelled)
                } else {
                    None
                }
            }
            Running | Suspended => match ev {
                TaskEvent::Resume => {
                    self.state = Running;
                    self.started = true;
                    None
                }
                TaskEvent::Suspend => {
                    self.state = Suspended;
                    None
                }
                TaskEvent::Cancel if !self.started => {
                    self.state = Completed;
                    Some(Outcome::Cancelled)
                }
                TaskEvent::Cancel => {
                    self.state = Canceling;
                    None
                }
                TaskEvent::ResponseReceived => {
                    if self.started && !self.has_response {
                        self.has_response = true;
                    }
                    None
                }
                TaskEvent::BodyAllowed => {
                    if self.has_response {
                        self.body_allowed = true;
                    }
                    None
                }
                TaskEvent::DataReceived | TaskEvent::BodySent | TaskEvent::TransferStopped => None,
                TaskEvent::Finished if self.body_allowed => {
                    self.state = Completed;
                    Some(Outcome::Finished)
                }
                TaskEvent::Finished => None,
                TaskEvent::Failed(e) => {
                    self.state = Completed;
                    Some(Outcome::Failed(*e))
                }
            },
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn machine_follows_the_model(events in proptest::collection::vec(event(), 0..60)) {
        let mut machine = TaskMachine::new();
        let mut model = Model::new();
        let mut completes = 0;
        let mut completed_at: Option<usize> = None;
        // Close every sequence with a cancel and the stop report: every task must end exactly once.
        let closing = [TaskEvent::Cancel, TaskEvent::TransferStopped];
        for (i, ev) in events.iter().cloned().chain(closing).enumerate() {
            let before = machine.state();
            let expected = model.apply(&ev);
            let (next, effects) = machine.step(ev.clone());
            prop_assert_eq!(next.state(), model.state, "state after {:?} from {:?}", ev, before);

            if completed_at.is_some() {
                prop_assert!(effects.is_empty(), "effects after completion: {:?}", effects);
            }
            // State changes chain from the old state to the new one.
            let mut cur = before;
            for e in &effects {
                if let Effect::StateChanged { from, to } = e {
                    prop_assert_eq!(*from, cur);
                    prop_assert_ne!(from, to);
                    cur = *to;
                }
            }
            prop_assert_eq!(cur, next.state());

            let terminal: Vec<_> = effects.iter().filter_map(|e| match e {
                Effect::Complete(o) => Some(o.clone()),
                _ => None,
            }).collect();
            prop_assert_eq!(terminal.first().cloned(), expected);
            if !terminal.is_empty() {
                prop_assert!(matches!(effects.last(), Some(Effect::Complete(_))), "Complete is the last effect");
                completes += terminal.len();
                completed_at = Some(i);
            }
            // Data and disposition effects only while the transfer is in the matching phase.
            if effects.contains(&Effect::DeliverData) {
                prop_assert_eq!(machine.phase(), Phase::Receiving);
            }
            if effects.contains(&Effect::ReportSent) {
                prop_assert!(machine.was_started());
            }
            // The hand-over comes only with a successful end, before the change to Completed.
            if effects.contains(&Effect::HandOver) {
                prop_assert_eq!(effects.first(), Some(&Effect::HandOver));
                prop_assert_eq!(terminal.first(), Some(&Outcome::Finished));
            } else {
                prop_assert_ne!(terminal.first(), Some(&Outcome::Finished));
            }
            machine = next;
        }
        prop_assert_eq!(completes, 1, "exactly one terminal effect");
        prop_assert_eq!(machine.state(), TaskState::Completed);
    }

    #[test]
    fn control_is_a_no_op_when_cancelling_or_completed(
        prefix in proptest::collection::vec(event(), 0..30),
        control in prop_oneof![Just(TaskEvent::Resume), Just(TaskEvent::Suspend), Just(TaskEvent::Cancel)],
    ) {
        let mut machine = TaskMachine::new();
        for ev in prefix {
            machine = machine.step::<u8>(ev).0;
        }
        if matches!(machine.state(), TaskState::Canceling | TaskState::Completed) {
            let (next, effects) = machine.step::<u8>(control);
            prop_assert_eq!(next, machine);
            prop_assert!(effects.is_empty());
        }
    }
}

#[test]
fn cancel_before_resume_completes_with_cancelled() {
    let (m, effects) = TaskMachine::new().step::<()>(TaskEvent::Cancel);
    assert_eq!(m.state(), TaskState::Completed);
    assert_eq!(effects.last(), Some(&Effect::Complete(Outcome::Cancelled)));
}

#[test]
fn resume_starts_once_and_continues_after_suspend() {
    let (m, e) = TaskMachine::new().step::<()>(TaskEvent::Resume);
    assert!(e.contains(&Effect::StartTransfer));
    let (m, e) = m.step::<()>(TaskEvent::Suspend);
    assert!(e.contains(&Effect::PauseTransfer));
    let (_, e) = m.step::<()>(TaskEvent::Resume);
    assert!(e.contains(&Effect::ContinueTransfer));
    assert!(!e.contains(&Effect::StartTransfer));
}
