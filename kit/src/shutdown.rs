//! When a server should stop: Ctrl-C, or SIGTERM (what Kubernetes sends before killing a pod).

use std::future::Future;

/// Listens for Ctrl-C and SIGTERM from now on and returns a future that ends at the first.
/// Call it before telling anyone the program is up: a signal that comes before the listening
/// starts kills the process outright (a test once sent Ctrl-C right after the printed URL).
/// If a signal cannot be listened for, waits for the other.
pub fn listen() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut interrupt), Ok(mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                }
                (Ok(mut one), Err(error)) | (Err(error), Ok(mut one)) => {
                    tracing::warn!(%error, "cannot listen for one of Ctrl-C and SIGTERM");
                    one.recv().await;
                }
                (Err(error), Err(_)) => {
                    tracing::warn!(%error, "cannot listen for Ctrl-C or SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async move {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    }
}

/// Waits for Ctrl-C or SIGTERM, listening from the first poll on (see [`listen`]).
pub async fn signal() {
    listen().await;
}
