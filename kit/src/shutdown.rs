//! When a server should stop: Ctrl-C, or SIGTERM (what Kubernetes sends before killing a pod).

use std::future::Future;

/// Which signal came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Ctrl-C: a person at a terminal, who wants it to stop now.
    Interrupt,
    /// SIGTERM: Kubernetes (or a supervisor) stopping the pod, which leaves its Service first.
    Terminate,
}

/// Listens for Ctrl-C and SIGTERM from now on and returns a future that ends at the first.
/// Call it before telling anyone the program is up: a signal that comes before the listening
/// starts kills the process outright (a test once sent Ctrl-C right after the printed URL).
/// If a signal cannot be listened for, waits for the other.
pub fn listen() -> impl Future<Output = Signal> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut interrupt), Ok(mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => Signal::Interrupt,
                        _ = terminate.recv() => Signal::Terminate,
                    }
                }
                (Ok(mut interrupt), Err(error)) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM");
                    interrupt.recv().await;
                    Signal::Interrupt
                }
                (Err(error), Ok(mut terminate)) => {
                    tracing::warn!(%error, "cannot listen for Ctrl-C");
                    terminate.recv().await;
                    Signal::Terminate
                }
                (Err(error), Err(_)) => {
                    tracing::warn!(%error, "cannot listen for Ctrl-C or SIGTERM");
                    std::future::pending::<Signal>().await
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
        Signal::Interrupt
    }
}

/// Waits for Ctrl-C or SIGTERM, listening from the first poll on (see [`listen`]).
pub async fn signal() -> Signal {
    listen().await
}
