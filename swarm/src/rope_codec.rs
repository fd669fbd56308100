//! ROPE over libp2p request-response: each substream carries one ROPE request
//! and its response, each one CBOR message (ROPE's own codec) written until the
//! end of the stream. Reading stops one byte past the limit, so an oversized
//! message is refused before it is decoded and never allocates more than the limit.
//!
//! A request that is oversized or malformed is not a stream error: it is read as
//! [`Inbound::Rejected`], so the node can answer it with a clear JSON-RPC error
//! and count it against the sender (libp2p does not report a failed
//! `read_request` to the behaviour, and the codec does not know the sender).

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response;
use mafalda_rope::codec::{CodecError, cbor};
use mafalda_rope::{ErrorCode, Message, Request, RequestId, Response, RpcError};

/// Protocol name of ROPE between nodes.
pub const ROPE_PROTOCOL: StreamProtocol = StreamProtocol::new("/mafalda/rope/1");

/// A request as read from or written to the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// A well-formed request.
    Request(Request),
    /// Bytes that are not a request within the limits.
    Rejected {
        /// The request id, when it could be read.
        id: Option<RequestId>,
        /// The error to answer with.
        error: RpcError,
    },
}

/// The ROPE codec for request-response, refusing messages larger than `max_bytes`.
#[derive(Debug, Clone)]
pub struct RopeCodec {
    max_bytes: usize,
}

impl RopeCodec {
    /// A codec refusing messages over `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Self { max_bytes }
    }

    async fn read_message<R: AsyncRead + Unpin + Send>(&self, io: &mut R) -> io::Result<Result<Message, CodecError>> {
        let mut bytes = Vec::new();
        let limit = u64::try_from(self.max_bytes).unwrap_or(u64::MAX).saturating_add(1);
        io.take(limit).read_to_end(&mut bytes).await?;
        Ok(cbor::decode_with_limit(&bytes, self.max_bytes))
    }

    fn encode(&self, message: &Message) -> io::Result<Vec<u8>> {
        cbor::encode_with_limit(message, self.max_bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    }
}

async fn write_all_and_close<W: AsyncWrite + Unpin + Send>(io: &mut W, bytes: Vec<u8>) -> io::Result<()> {
    io.write_all(&bytes).await?;
    io.close().await
}

impl request_response::Codec for RopeCodec {
    type Protocol = StreamProtocol;
    type Request = Inbound;
    type Response = Response;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Inbound> {
        Ok(match self.read_message(io).await? {
            Ok(Message::Request(request)) => Inbound::Request(request),
            Ok(_) => Inbound::Rejected {
                id: None,
                error: RpcError::new(ErrorCode::InvalidRequest, "only requests may open a ROPE stream"),
            },
            Err(error) => Inbound::Rejected { id: error.request_id(), error: error.to_rpc_error() },
        })
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Response> {
        match self.read_message(io).await? {
            Ok(Message::Response(response)) => Ok(response),
            Ok(_) => Err(io::Error::new(io::ErrorKind::InvalidData, "expected a ROPE response")),
            Err(error) => Err(io::Error::new(io::ErrorKind::InvalidData, error)),
        }
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Inbound,
    ) -> io::Result<()> {
        let Inbound::Request(request) = request else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a rejected request cannot be sent"));
        };
        let bytes = self.encode(&Message::Request(request))?;
        write_all_and_close(io, bytes).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Response,
    ) -> io::Result<()> {
        let bytes = self.encode(&Message::Response(response))?;
        write_all_and_close(io, bytes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use futures::io::Cursor;
    use mafalda_rope::Value;
    use request_response::Codec;

    #[test]
    fn round_trips_and_rejects_oversized_and_garbage() {
        block_on(async {
            let mut codec = RopeCodec::new(256);
            let request = Request {
                id: RequestId::Number(3),
                method: "stream.describe".into(),
                target: None,
                params: Value::Text("cam".into()),
            };
            let mut wire = Cursor::new(Vec::new());
            codec.write_request(&ROPE_PROTOCOL, &mut wire, Inbound::Request(request.clone())).await.expect("write");
            let mut read = Cursor::new(wire.into_inner());
            assert_eq!(codec.read_request(&ROPE_PROTOCOL, &mut read).await.expect("read"), Inbound::Request(request));

            let mut big = Request { id: RequestId::Number(4), method: "x".into(), target: None, params: Value::Null };
            big.params = Value::Bytes(vec![0; 300]);
            let error = codec.write_request(&ROPE_PROTOCOL, &mut Cursor::new(Vec::new()), Inbound::Request(big)).await;
            assert_eq!(error.expect_err("too big to send").kind(), io::ErrorKind::InvalidInput);

            let mut oversized = Cursor::new(vec![0x61; 257]);
            let read = codec.read_request(&ROPE_PROTOCOL, &mut oversized).await.expect("read as rejected");
            assert!(matches!(read, Inbound::Rejected { ref error, .. } if error.code == -32002), "{read:?}");
            let mut garbage = Cursor::new(vec![0xff, 0xfe, 0x00]);
            let read = codec.read_request(&ROPE_PROTOCOL, &mut garbage).await.expect("read as rejected");
            assert!(matches!(read, Inbound::Rejected { ref error, .. } if error.code == -32700), "{read:?}");
            let mut garbage = Cursor::new(vec![0xff, 0xfe, 0x00]);
            let error = codec.read_response(&ROPE_PROTOCOL, &mut garbage).await.expect_err("garbage response");
            assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        });
    }
}
