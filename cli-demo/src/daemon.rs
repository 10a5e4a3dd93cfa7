//! `courier daemon`: runs the background service for this user in the foreground (socket under
//! `$XDG_RUNTIME_DIR/courier/`, journal and files under `$XDG_DATA_HOME/courier/background/`) until
//! SIGTERM or Ctrl-C, then lets its sessions settle and exits 0.
//!
//! Under systemd's socket activation (`cli-demo/systemd/`) it serves the socket it is handed
//! (`LISTEN_FDS`) instead of making one.

use courier_engine::background::{Policy, Service, wire};
use courier_storage::SessionDirectory;

use crate::cli::Options;
use crate::{ExitCode, Failure};

/// Runs the service until SIGTERM or Ctrl-C.
pub(crate) async fn run(options: &Options) -> Result<ExitCode, Failure> {
    let template = crate::common::configuration(options)?;
    let data = SessionDirectory::data_dir()
        .join("courier")
        .join("background");
    let mut policy = Policy::default();
    // --max-connections-per-host is also how many transfers run at once to one host.
    if let Some(n) = options.max_connections_per_host {
        policy.limits.max_per_host = n;
        policy.limits.max_total = policy.limits.max_total.max(n);
    }
    let handed = listenfd::ListenFd::from_env().take_unix_listener(0)?;
    let started = match handed {
        Some(listener) => {
            let (listener, owner) = wire::adopt(listener)?;
            Service::start_on(listener, owner, &data, template, policy).await
        }
        None => Service::start(&data, &wire::socket_dir(), template, policy).await,
    };
    // The message alone: it names its cause already.
    let service = started.map_err(|e| Failure::usage(e.message().to_owned()))?;
    say!(
        "courier daemon: listening on {}, journal in {}",
        service.socket().display(),
        data.display()
    );
    // SIGTERM or Ctrl-C, as any command is stopped.
    crate::common::stop_requested().await;
    say!("courier daemon: stopping");
    service.shutdown().await;
    Ok(ExitCode::Success)
}
