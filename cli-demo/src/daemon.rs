//! `courier daemon`: runs the background service for this user in the foreground (socket under
//! `$XDG_RUNTIME_DIR/courier/`, journal and files under `$XDG_DATA_HOME/courier/background/`) until
//! SIGTERM or Ctrl-C, then lets its sessions settle and exits 0.

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
    let socket = wire::socket_dir();
    let service = Service::start(&data, &socket, template, Policy::default()).await?;
    eprintln!(
        "courier daemon: listening on {}, journal in {}",
        service.socket().display(),
        data.display()
    );
    stopped().await;
    eprintln!("courier daemon: stopping");
    service.shutdown().await;
    Ok(ExitCode::Success)
}

/// Resolves on SIGTERM or Ctrl-C.
async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
