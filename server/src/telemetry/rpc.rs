//! Per-RPC metrics: a tower layer that counts every call by RPC and gRPC code, with its
//! latency. The code is read where gRPC puts it: the response headers for an immediate
//! refusal, the trailers at the end of the body otherwise; a body dropped before its end
//! (the caller went away) counts as CANCELLED. A streaming call is timed to its end.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::OnceLock,
    task::{Context, Poll},
    time::Instant,
};

use http_body::{Body, Frame, SizeHint};
use prost::Message as _;

use super::metrics;

/// Counts RPCs (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct RpcMetricsLayer;

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics { inner }
    }
}

/// The service of [`RpcMetricsLayer`].
#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
}

impl<S, B, RB> tower::Service<http::Request<B>> for RpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    RB: Body + Unpin,
{
    type Response = http::Response<MeteredBody<RB>>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let rpc = rpc_name(request.uri().path());
        let started = Instant::now();
        let call = self.inner.call(request);
        Box::pin(async move {
            match call.await {
                Ok(response) => {
                    let code = grpc_status(response.headers());
                    Ok(response.map(|inner| MeteredBody {
                        inner,
                        call: Some(Call { rpc, started, code }),
                    }))
                }
                Err(err) => {
                    metrics::rpc_finished(rpc, tonic::Code::Internal, started.elapsed());
                    Err(err)
                }
            }
        })
    }
}

/// A response body that records its call when it ends (or is dropped).
pub struct MeteredBody<B> {
    inner: B,
    call: Option<Call>,
}

struct Call {
    rpc: &'static str,
    started: Instant,
    /// The code seen so far (headers, then trailers).
    code: Option<tonic::Code>,
}

impl<B> MeteredBody<B> {
    fn finish(&mut self, otherwise: tonic::Code) {
        if let Some(call) = self.call.take() {
            metrics::rpc_finished(
                call.rpc,
                call.code.unwrap_or(otherwise),
                call.started.elapsed(),
            );
        }
    }
}

impl<B: Body + Unpin> Body for MeteredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(grpc_status)
                    && let Some(call) = self.call.as_mut()
                {
                    call.code = Some(code);
                }
            }
            Poll::Ready(Some(Err(_))) => self.finish(tonic::Code::Internal),
            // Ended without a status: not a gRPC answer (the consent page), or a broken one.
            Poll::Ready(None) => self.finish(tonic::Code::Unknown),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for MeteredBody<B> {
    fn drop(&mut self) {
        // Dropped before its end: the caller left (or the connection broke).
        self.finish(tonic::Code::Cancelled);
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<tonic::Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?;
    value.parse::<i32>().ok().map(tonic::Code::from_i32)
}

/// The RPC label of a request path: `service/Method` for the RPCs this server serves (a
/// closed set, read from the descriptors once), `other` for anything a caller made up.
pub fn rpc_name(path: &str) -> &'static str {
    known_rpcs()
        .get(path.trim_start_matches('/'))
        .copied()
        .unwrap_or("other")
}

fn known_rpcs() -> &'static HashMap<String, &'static str> {
    static KNOWN: OnceLock<HashMap<String, &'static str>> = OnceLock::new();
    KNOWN.get_or_init(|| {
        let mut names: Vec<String> = [
            retract_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ]
        .into_iter()
        .filter_map(|set| prost_types::FileDescriptorSet::decode(set).ok())
        .flat_map(|set| set.file)
        .flat_map(|file| {
            let package = file.package.unwrap_or_default();
            file.service.into_iter().flat_map(move |service| {
                let service_name = format!("{package}.{}", service.name.unwrap_or_default());
                service
                    .method
                    .into_iter()
                    .map(move |m| format!("{service_name}/{}", m.name.unwrap_or_default()))
            })
        })
        .collect();
        names.extend([
            "grpc.reflection.v1.ServerReflection/ServerReflectionInfo".to_owned(),
            "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo".to_owned(),
        ]);
        // A closed set built once per process: leaking it gives labels without a copy per call.
        names
            .into_iter()
            .map(|n| {
                let label: &'static str = Box::leak(n.clone().into_boxed_str());
                (n, label)
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::rpc_name;

    #[test]
    fn rpc_labels_are_our_rpcs_or_other() {
        assert_eq!(
            rpc_name("/retract.v1.RetractService/Retract"),
            "retract.v1.RetractService/Retract"
        );
        assert_eq!(
            rpc_name("/grpc.health.v1.Health/Check"),
            "grpc.health.v1.Health/Check"
        );
        assert_eq!(
            rpc_name("/retract.v1.RetractService/alice@acme.example"),
            "other"
        );
        assert_eq!(rpc_name("/consent/callback"), "other");
    }
}
