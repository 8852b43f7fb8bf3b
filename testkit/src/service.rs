//! A stand-in for a Kubernetes Service in front of server replicas, for rolling-update tests.
//! kube-proxy cannot run here (no pod network, and the real control plane's pods are kwok's,
//! with no processes behind them), so this does what it does for a ClusterIP: each new
//! connection goes to one of the endpoints (in turn here; kube-proxy picks at random), an
//! endpoint taken out (its pod terminating, or not ready) gets no new connection, and
//! connections already open to it stay open until one side closes them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};

/// A running stand-in; stops (with every connection through it) when dropped.
pub struct Service {
    addr: SocketAddr,
    endpoints: Arc<Mutex<Endpoints>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Endpoints {
    ready: Vec<SocketAddr>,
    next: usize,
}

impl Service {
    /// A Service on a free port of 127.0.0.1 with `endpoints`.
    pub async fn start(endpoints: &[SocketAddr]) -> std::io::Result<Service> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let endpoints = Arc::new(Mutex::new(Endpoints {
            ready: endpoints.to_vec(),
            next: 0,
        }));
        let task = tokio::spawn({
            let endpoints = endpoints.clone();
            async move {
                let mut connections = tokio::task::JoinSet::new();
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    while connections.try_join_next().is_some() {}
                    let Some(endpoint) = pick(&endpoints) else {
                        // No endpoint: refused, as kube-proxy rejects it.
                        continue;
                    };
                    connections.spawn(async move {
                        let Ok(mut server) = TcpStream::connect(endpoint).await else {
                            return;
                        };
                        let mut client = client;
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    });
                }
            }
        });
        Ok(Service {
            addr,
            endpoints,
            task,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A new ready endpoint.
    pub fn add(&self, endpoint: SocketAddr) {
        let mut endpoints = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        if !endpoints.ready.contains(&endpoint) {
            endpoints.ready.push(endpoint);
        }
    }

    /// An endpoint taken out: no new connection goes there.
    pub fn remove(&self, endpoint: SocketAddr) {
        let mut endpoints = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        endpoints.ready.retain(|ready| *ready != endpoint);
    }

    /// The endpoints new connections go to.
    pub fn endpoints(&self) -> Vec<SocketAddr> {
        let endpoints = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        endpoints.ready.clone()
    }
}

fn pick(endpoints: &Mutex<Endpoints>) -> Option<SocketAddr> {
    let mut endpoints = endpoints.lock().unwrap_or_else(|p| p.into_inner());
    if endpoints.ready.is_empty() {
        return None;
    }
    let index = endpoints.next % endpoints.ready.len();
    endpoints.next = endpoints.next.wrapping_add(1);
    Some(endpoints.ready[index])
}

impl Drop for Service {
    fn drop(&mut self) {
        self.task.abort();
    }
}
