//! Request bodies that do not decode are the caller's mistake: tonic answers them with
//! INTERNAL (its prost codec maps every `DecodeError` so, on both sides), which would tell a
//! client the server is broken and log an ERROR per hostile call. This layer turns exactly
//! those answers into [`crate::api::undecodable_request_status`]'s INVALID_ARGUMENT.
//!
//! A layer rather than a codec: the codec is named in the generated code that the client
//! shares, where an undecodable *response* is rightly INTERNAL. Framing errors (a truncated
//! frame, a compressed flag without `grpc-encoding`) stay INTERNAL, as the gRPC protocol
//! specifies.

use std::task::{Context, Poll};

use futures::{TryFutureExt as _, future::MapOk};
use http::{HeaderMap, Request, Response};
use tonic::{Code, Status};
use tower::{Layer, Service};

use crate::api::{PROST_DECODE_ERROR, undecodable_request_status};

/// Rewrites tonic's INTERNAL for an undecodable request into INVALID_ARGUMENT.
#[derive(Clone, Copy, Debug, Default)]
pub struct UndecodableRequestsLayer;

impl<S> Layer<S> for UndecodableRequestsLayer {
    type Service = UndecodableRequests<S>;

    fn layer(&self, inner: S) -> Self::Service {
        UndecodableRequests { inner }
    }
}

/// The service made by [`UndecodableRequestsLayer`].
#[derive(Clone, Debug)]
pub struct UndecodableRequests<S> {
    inner: S,
}

impl<S, B, R> Service<Request<B>> for UndecodableRequests<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = MapOk<S::Future, fn(Response<R>) -> Response<R>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.inner.call(request).map_ok(rewrite::<R>)
    }
}

/// A decode failure is answered before the handler runs, so its status is in the headers
/// (a trailers-only response); nothing else is touched.
fn rewrite<R>(mut response: Response<R>) -> Response<R> {
    if let Some(answer) = invalid_argument_for(response.headers()) {
        let mut headers = HeaderMap::new();
        match answer.add_header(&mut headers) {
            Ok(()) => {
                let all = response.headers_mut();
                all.remove(Status::GRPC_STATUS);
                all.remove(Status::GRPC_MESSAGE);
                all.remove(Status::GRPC_STATUS_DETAILS);
                all.extend(headers);
            }
            Err(err) => tracing::warn!(error = %err, "cannot rewrite a decode failure's status"),
        }
    }
    response
}

/// The INVALID_ARGUMENT to send instead, when `headers` carry tonic's decode failure.
fn invalid_argument_for(headers: &HeaderMap) -> Option<Status> {
    if headers.get(Status::GRPC_STATUS)?.as_bytes() != b"13" {
        return None;
    }
    let status = Status::from_header_map(headers)?;
    if status.code() != Code::Internal {
        return None;
    }
    let detail = status.message().strip_prefix(PROST_DECODE_ERROR)?;
    Some(undecodable_request_status(detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: &Status) -> Response<()> {
        let mut response = Response::new(());
        status.add_header(response.headers_mut()).unwrap();
        response
    }

    fn code(response: &Response<()>) -> Code {
        Status::from_header_map(response.headers()).unwrap().code()
    }

    #[test]
    fn only_decode_failures_become_invalid_argument() {
        let decode = Status::internal(format!(
            "{PROST_DECODE_ERROR}GetTenantRequest.tenant_id: invalid string value: data is not UTF-8 encoded"
        ));
        assert_eq!(code(&rewrite(answer(&decode))), Code::InvalidArgument);
        for other in [
            Status::internal("internal error"),
            Status::internal("Unexpected EOF decoding stream."),
            Status::not_found(PROST_DECODE_ERROR),
        ] {
            let before = other.code();
            assert_eq!(code(&rewrite(answer(&other))), before);
        }
    }
}
