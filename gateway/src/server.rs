//! Client connections: HTTP/1.1 with upgrades, optional TLS, a cap on open connections, a time
//! limit on request headers (which also closes idle keep-alive connections) and on the TLS
//! handshake, a cap on header size, and draining on shutdown.
//!
//! Connections are served by worker threads, each with its own single-threaded runtime
//! accepting from the same listening socket, and its own upstream clients ([`Upstreams`]), as
//! nginx runs one event loop per worker process. A request, its upstream connection and every
//! task between them stay on one thread: measured against one multi-threaded runtime, this
//! removes the cross-thread wake-ups that cost most of a proxied request (README: benchmark).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::timer::CoarseTimer;
use crate::tls::TlsAcceptor;
use crate::{Gateway, Upstreams};

/// Starts `workers` threads accepting from `listener` until `stop` is cancelled; each then
/// lets its connections finish their request in flight. `workers_done` tracks the threads.
pub fn spawn_workers(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
    workers_done: TaskTracker,
    workers: usize,
) -> std::io::Result<()> {
    let listener = listener.into_std()?;
    let permits = Arc::new(Semaphore::new(gateway.limits.max_connections));
    for index in 0..workers.max(1) {
        let listener = listener.try_clone()?;
        let (gateway, tls, stop) = (gateway.clone(), tls.clone(), stop.child_token());
        let permits = permits.clone();
        let done = workers_done.token();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name(format!("ephgateway-worker-{index}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(error) => {
                            tracing::error!(%error, "a worker cannot use the listener");
                            return;
                        }
                    };
                    let connections = TaskTracker::new();
                    let upstreams = Upstreams::new(&gateway.limits);
                    let timer = CoarseTimer::default();
                    let sweeper = tokio::spawn(timer.clone().sweep_forever());
                    let worker = Worker {
                        gateway,
                        upstreams,
                        timer,
                        stop,
                    };
                    accept(listener, &worker, tls, permits, &connections).await;
                    connections.close();
                    connections.wait().await;
                    sweeper.abort();
                });
                drop(done);
            })?;
    }
    Ok(())
}

/// What one worker thread's connections share.
#[derive(Clone)]
struct Worker {
    gateway: Arc<Gateway>,
    upstreams: Upstreams,
    timer: CoarseTimer,
    /// The worker's own child of the shutdown token: its connections wait on it without
    /// contending with other workers.
    stop: CancellationToken,
}

/// Accepts connections until the worker is told to stop.
async fn accept(
    listener: TcpListener,
    worker: &Worker,
    tls: Option<TlsAcceptor>,
    permits: Arc<Semaphore>,
    connections: &TaskTracker,
) {
    loop {
        // At the cap, stop accepting: new clients wait in the kernel's backlog.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = worker.stop.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: pause briefly rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = worker.stop.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let (worker, tls) = (worker.clone(), tls.clone());
        connections.spawn(async move {
            let open = worker.gateway.metrics.connections().clone();
            open.inc();
            match tls {
                None => serve_connection(stream, peer, worker).await,
                Some(tls) => {
                    let handshake = tokio::time::timeout(
                        worker.gateway.limits.header_read_timeout,
                        tls.accept(stream),
                    )
                    .await;
                    match handshake {
                        Ok(Ok(stream)) => serve_connection(stream, peer, worker).await,
                        Ok(Err(error)) => tracing::debug!(%error, %peer, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            open.dec();
            drop(permit);
        });
    }
}

async fn serve_connection<I>(io: I, peer: SocketAddr, worker: Worker)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Worker {
        gateway,
        upstreams,
        timer,
        stop,
    } = worker;
    let limits = gateway.limits.clone();
    let service = hyper::service::service_fn(move |request| {
        let (gateway, upstreams) = (gateway.clone(), upstreams.clone());
        async move {
            Ok::<_, Infallible>(crate::proxy::handle(gateway, upstreams, request, peer.ip()).await)
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(timer)
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(limits.max_headers);
    let connection = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, %peer, "client connection ended with an error");
    }
}
