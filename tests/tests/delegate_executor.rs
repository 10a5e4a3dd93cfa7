//! The delegate executor (URLSession's `delegateQueue`): a session made with `with_delegate_on`
//! calls its delegate on the application's Tokio runtime, still one callback at a time, in order,
//! `did_become_invalid` last.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use courier_engine::reexports::bytes::Bytes;
use courier_engine::{
    CleartextPolicy, Configuration, DataDelegate, DownloadDelegate, Error, Session,
    SessionDelegate, TaskDelegate, TaskInfo, TaskState,
};
use courier_tests::TestServer;

/// Records each callback with the thread it ran on and whether a runtime was current there.
#[derive(Default)]
struct Where(Mutex<Vec<(String, String, bool)>>);

impl Where {
    fn note(&self, what: &str) {
        let thread = std::thread::current().name().unwrap_or("").to_owned();
        let in_runtime = tokio::runtime::Handle::try_current().is_ok();
        self.0
            .lock()
            .unwrap()
            .push((what.to_owned(), thread, in_runtime));
    }
}

impl SessionDelegate for Where {
    fn did_become_invalid(&self, _error: Option<&Error>) {
        self.note("invalid");
    }
}
impl TaskDelegate for Where {
    fn did_change_state(&self, task: &TaskInfo, _from: TaskState, to: TaskState) {
        self.note(&format!("{} state {to:?}", task.id()));
    }
    fn did_complete(&self, task: &TaskInfo, _error: Option<&Error>) {
        self.note(&format!("{} complete", task.id()));
    }
}
impl DataDelegate for Where {
    fn did_receive_data(&self, task: &TaskInfo, _data: &Bytes) {
        self.note(&format!("{} data", task.id()));
    }
}
impl DownloadDelegate for Where {}

#[test]
fn callbacks_run_on_the_applications_runtime_in_order() {
    let app = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("app-runtime")
        .enable_all()
        .build()
        .unwrap();
    let (server, session, delegate) = app.block_on(async {
        let server = TestServer::http().await;
        let mut config = Configuration::ephemeral();
        config.cleartext = CleartextPolicy::AllowAll;
        let delegate = Arc::new(Where::default());
        let session =
            Session::with_delegate_on(config, delegate.clone(), &tokio::runtime::Handle::current())
                .unwrap();
        (server, session, delegate)
    });
    app.block_on(async {
        for _ in 0..3 {
            let task = session
                .data_task(server.url("/drip?chunks=3&size=1000&delay_ms=5").as_str())
                .unwrap();
            task.resume();
        }
        session.finish_tasks_and_invalidate();
        tokio::time::timeout(Duration::from_secs(20), session.invalidated())
            .await
            .expect("invalidated");
    });
    let seen = delegate.0.lock().unwrap().clone();
    assert!(!seen.is_empty());
    for (what, thread, in_runtime) in &seen {
        assert_eq!(thread, "app-runtime", "{what} ran on {thread}");
        assert!(in_runtime, "{what}: the runtime is current in callbacks");
    }
    let names: Vec<&str> = seen.iter().map(|(w, _, _)| w.as_str()).collect();
    assert_eq!(names.last(), Some(&"invalid"), "{names:?}");
    let count = |what: &str| names.iter().filter(|w| w.ends_with(what)).count();
    assert_eq!(count(" complete"), 3);
    // The chunks may be coalesced; each task gets at least one.
    assert!(count(" data") >= 3, "{names:?}");
    // Each task's own callbacks come in URLSession's order: running, data, completed, complete
    // (other tasks' callbacks may come in between).
    for id in 1..=3 {
        let own: Vec<&str> = names
            .iter()
            .filter_map(|w| w.strip_prefix(&format!("{id} ")))
            .collect();
        assert_eq!(own.first(), Some(&"state Running"), "task {id}: {own:?}");
        assert_eq!(
            &own[own.len() - 2..],
            ["state Completed", "complete"],
            "task {id}: {own:?}"
        );
        assert!(
            own[1..own.len() - 2].iter().all(|w| *w == "data"),
            "task {id}: {own:?}"
        );
    }
}
