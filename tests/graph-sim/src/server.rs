//! The accept loop: HTTP/1.1 and HTTP/2 on a 127.0.0.1 listener, with a per-connection switch
//! that lets a handler drop its connection without answering (fault injection).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Closes the connection a request arrived on; found in every top-level request's extensions.
#[derive(Clone, Debug, Default)]
pub struct ConnKill(Arc<Notify>);

impl ConnKill {
    /// Asks the connection task to close the connection now.
    pub fn trigger(&self) {
        self.0.notify_one();
    }

    async fn triggered(&self) {
        self.0.notified().await;
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::debug!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        // Best effort: only latency is affected if it fails.
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let builder = builder.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let kill = ConnKill::default();
            let per_request = kill.clone();
            let service =
                hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
                    request.extensions_mut().insert(per_request.clone());
                    router.clone().oneshot(request)
                });
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                result = connection => {
                    if let Err(error) = result {
                        tracing::trace!(%error, "connection ended with an error");
                    }
                }
                () = kill.triggered() => tracing::trace!("connection dropped by fault injection"),
                () = shutdown.cancelled() => {}
            }
        });
    }
}
