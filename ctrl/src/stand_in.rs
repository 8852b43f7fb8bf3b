//! The HTTP loop the test stand-ins (Tilt, the notification webhook) share: an HTTP/1 server on
//! a loopback listener that answers every request with `answer`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Serves `listener` until the task is aborted, one task per connection.
pub(crate) async fn serve<S, F, Fut>(listener: TcpListener, shared: Arc<S>, answer: F)
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, Request<Incoming>) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let answered = answer(shared.clone(), request);
                async move { Ok::<_, Infallible>(answered.await) }
            });
            // A client hanging up mid-request is not the stand-in's problem.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
