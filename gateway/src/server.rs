//! Client connections: HTTP/1.1 with upgrades, optional TLS, a cap on open connections, a time
//! limit on request headers (which also closes idle keep-alive connections) and on the TLS
//! handshake, a cap on header size, and draining on shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Gateway;
use crate::tls::TlsAcceptor;

/// Accepts connections until `stop` is cancelled, then lets each connection finish its request
/// in flight (`tracker` says when all have).
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    let permits = Arc::new(Semaphore::new(gateway.limits.max_connections));
    loop {
        // At the cap, stop accepting: new clients wait in the kernel's backlog.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = stop.cancelled() => break,
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
            () = stop.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let (gateway, tls, stop) = (gateway.clone(), tls.clone(), stop.clone());
        tracker.spawn(async move {
            let open = gateway.metrics.connections().clone();
            open.inc();
            match tls {
                None => serve_connection(stream, peer, gateway, stop).await,
                Some(tls) => {
                    let handshake = tokio::time::timeout(
                        gateway.limits.header_read_timeout,
                        tls.accept(stream),
                    )
                    .await;
                    match handshake {
                        Ok(Ok(stream)) => serve_connection(stream, peer, gateway, stop).await,
                        Ok(Err(error)) => tracing::debug!(%error, %peer, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            open.dec();
            drop(permit);
        });
    }
    tracker.close();
}

async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    gateway: Arc<Gateway>,
    stop: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = gateway.limits.clone();
    let service = hyper::service::service_fn(move |request| {
        let gateway = gateway.clone();
        async move { Ok::<_, Infallible>(crate::proxy::handle(gateway, request, peer.ip()).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
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
