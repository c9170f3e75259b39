//! A unary gRPC call whose answer is kept as it arrived, undecoded: the load generator of
//! (f) shares the server's two cores, and decoding a thousand recipients per call would
//! spend on the callers' side the CPU the measurement is about. What arrives is still
//! checked, byte for byte, against an answer decoded and checked before.

use std::marker::PhantomData;

use prost::bytes::{Buf as _, Bytes};
use tonic::{
    Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    metadata::MetadataValue,
    transport::Channel,
};

/// Encodes the request with prost, keeps the response's bytes.
pub struct RawReply<T>(PhantomData<T>);

impl<T> Default for RawReply<T> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

pub struct RequestEncoder<T>(PhantomData<T>);

impl<T: prost::Message> Encoder for RequestEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(buf)
            .map_err(|e| Status::internal(format!("encode: {e}")))
    }
}

pub struct BytesDecoder;

impl Decoder for BytesDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}

impl<T: prost::Message + Send + 'static> Codec for RawReply<T> {
    type Encode = T;
    type Decode = Bytes;
    type Encoder = RequestEncoder<T>;
    type Decoder = BytesDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        RequestEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        BytesDecoder
    }
}

/// Calls `path` (`/package.Service/Method`) on `channel` with `token`, answering the
/// response's encoding.
pub async fn call<T: prost::Message + Send + 'static>(
    channel: Channel,
    token: &str,
    path: &'static str,
    request: T,
) -> Result<Bytes, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("not ready: {e}")))?;
    let mut request = tonic::Request::new(request);
    let bearer: MetadataValue<_> = format!("Bearer {token}")
        .parse()
        .map_err(|_| Status::internal("token is not ASCII"))?;
    request.metadata_mut().insert("authorization", bearer);
    let path = http::uri::PathAndQuery::from_static(path);
    Ok(grpc
        .unary(request, path, RawReply::<T>::default())
        .await?
        .into_inner())
}
