//! Real task actors driven by random resume/suspend/cancel sequences against a loopback server with
//! random delays: the event stream keeps URLSession's invariants whatever the interleaving.

use std::sync::Arc;
use std::time::Duration;

use courier_engine::{CleartextPolicy, Configuration, Session};
use courier_tests::{Event, Recorder, TestServer, check_invariants};
use proptest::prelude::*;

#[derive(Clone, Copy, Debug)]
enum Op {
    Resume(usize),
    Suspend(usize),
    Cancel(usize),
    Sleep(u64),
}

fn op(tasks: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..tasks).prop_map(Op::Resume),
        2 => (0..tasks).prop_map(Op::Suspend),
        1 => (0..tasks).prop_map(Op::Cancel),
        2 => (0u64..15).prop_map(Op::Sleep),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn event_stream_keeps_its_invariants(
        delays in proptest::collection::vec(0u64..8, 4),
        ops in proptest::collection::vec(op(4), 1..25),
        cancel_at_end in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let result: Result<(), String> = rt.block_on(async move {
            let server = TestServer::http().await;
            let mut config = Configuration::ephemeral();
            config.cleartext = CleartextPolicy::AllowAll;
            let rec = Arc::new(Recorder::new());
            let session = Session::with_delegate(config, rec.clone()).unwrap();
            let tasks: Vec<_> = delays
                .iter()
                .map(|d| session.data_task(server.url(&format!("/drip?chunks=6&size=200&delay_ms={d}")).as_str()).unwrap())
                .collect();
            for op in &ops {
                match *op {
                    Op::Resume(i) => tasks[i].resume(),
                    Op::Suspend(i) => tasks[i].suspend(),
                    Op::Cancel(i) => tasks[i].cancel(),
                    Op::Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                }
            }
            // Whatever state the tasks were left in, invalidation must end every one exactly once.
            if cancel_at_end {
                session.invalidate_and_cancel();
            } else {
                for t in &tasks {
                    t.resume();
                }
                session.finish_tasks_and_invalidate();
            }
            let events = rec.wait_invalid(Duration::from_secs(30)).await;
            check_invariants(&events)?;
            if events.last() != Some(&Event::Invalid) {
                return Err(format!("did_become_invalid missing or not last: {events:?}"));
            }
            for t in &tasks {
                let n = events.iter().filter(|e| matches!(e, Event::Complete { task, .. } if *task == t.info().id())).count();
                if n != 1 {
                    return Err(format!("task {} completed {n} times: {events:?}", t.info().id()));
                }
            }
            Ok(())
        });
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }
}
