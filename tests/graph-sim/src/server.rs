//! The accept loop: HTTP/1.1 and HTTP/2 on a 127.0.0.1 listener, with a per-connection switch
//! that lets a handler reset its connection without answering (fault injection): the socket is
//! closed with `SO_LINGER` 0, so the client sees a TCP reset.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
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

/// The socket twice: one handle for hyper, one kept to reset the connection.
fn with_twin(stream: TcpStream) -> std::io::Result<(TcpStream, TcpStream)> {
    let stream = stream.into_std()?;
    let twin = stream.try_clone()?;
    Ok((TcpStream::from_std(stream)?, TcpStream::from_std(twin)?))
}

/// Connections the kernel may queue before the accept loop takes them. Tokio's default (1,024)
/// is below what one client opening a connection per request in flight reaches (2,048 in the
/// engine bench): the kernel then drops SYNs and the client retries a second later, which
/// Graph's front door never makes anyone do. Linux caps it at `net.core.somaxconn`.
const ACCEPT_BACKLOG: u32 = 8_192;

/// A listener on `127.0.0.1:port` (0 = any free port) with [`ACCEPT_BACKLOG`].
pub fn listen(port: u16) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind((std::net::Ipv4Addr::LOCALHOST, port).into())?;
    socket.listen(ACCEPT_BACKLOG)
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
        let (stream, twin) = match with_twin(stream) {
            Ok(pair) => pair,
            Err(error) => {
                tracing::warn!(%error, "cannot duplicate an accepted socket; connection dropped");
                continue;
            }
        };
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
                () = kill.triggered() => {
                    // Closing the last handle with a zero linger sends RST.
                    let _ = twin.set_zero_linger();
                    tracing::trace!("connection reset by fault injection");
                }
                () = shutdown.cancelled() => {}
            }
        });
    }
}
