//! ROPE over libp2p request-response: a size-capped CBOR codec.
//!
//! Each request-response substream carries one request and one response, each a
//! single CBOR value written until the end of the stream. Reading stops one byte
//! past the limit, so an oversized message is refused before it is decoded and
//! never allocates more than the limit.
//!
//! A request that is oversized or malformed is not a stream error: it is read as
//! [`Inbound::Rejected`], so the node can answer it with a clear error and count
//! it against the sender (libp2p does not report a failed `read_request` to the
//! behaviour, and the codec does not know which peer sent it).

use std::io;
use std::marker::PhantomData;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Protocol name of ROPE between nodes.
pub const ROPE_PROTOCOL: StreamProtocol = StreamProtocol::new("/mafalda/rope/1");

/// A request as read from or written to the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound<Req> {
    /// A well-formed request.
    Request(Req),
    /// Bytes that are not a request within the limits; the reason says why.
    Rejected(String),
}

/// CBOR codec for request type `Req` and response type `Resp`, refusing messages
/// larger than `max_bytes`.
#[derive(Debug)]
pub struct CborCodec<Req, Resp> {
    max_bytes: usize,
    types: PhantomData<fn() -> (Req, Resp)>,
}

impl<Req, Resp> Clone for CborCodec<Req, Resp> {
    fn clone(&self) -> Self {
        Self { max_bytes: self.max_bytes, types: PhantomData }
    }
}

impl<Req, Resp> CborCodec<Req, Resp> {
    /// A codec refusing messages over `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Self { max_bytes, types: PhantomData }
    }

    async fn read<T: DeserializeOwned, R: AsyncRead + Unpin + Send>(&self, io: &mut R) -> io::Result<T> {
        let mut bytes = Vec::new();
        let limit = u64::try_from(self.max_bytes).unwrap_or(u64::MAX).saturating_add(1);
        io.take(limit).read_to_end(&mut bytes).await?;
        if bytes.len() > self.max_bytes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("message exceeds the limit of {} bytes", self.max_bytes),
            ));
        }
        ciborium::from_reader(bytes.as_slice())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("malformed CBOR message: {e}")))
    }

    fn encode<T: Serialize>(&self, value: &T) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        ciborium::into_writer(value, &mut bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        if bytes.len() > self.max_bytes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("message of {} bytes exceeds the limit of {} bytes", bytes.len(), self.max_bytes),
            ));
        }
        Ok(bytes)
    }
}

async fn write_all_and_close<W: AsyncWrite + Unpin + Send>(io: &mut W, bytes: Vec<u8>) -> io::Result<()> {
    io.write_all(&bytes).await?;
    io.close().await
}

impl<Req, Resp> request_response::Codec for CborCodec<Req, Resp>
where
    Req: Serialize + DeserializeOwned + Send + 'static,
    Resp: Serialize + DeserializeOwned + Send + 'static,
{
    type Protocol = StreamProtocol;
    type Request = Inbound<Req>;
    type Response = Resp;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Inbound<Req>> {
        match self.read(io).await {
            Ok(request) => Ok(Inbound::Request(request)),
            Err(error) if error.kind() == io::ErrorKind::InvalidData => Ok(Inbound::Rejected(error.to_string())),
            Err(error) => Err(error),
        }
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Resp> {
        self.read(io).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Inbound<Req>,
    ) -> io::Result<()> {
        let Inbound::Request(request) = request else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a rejected request cannot be sent"));
        };
        let bytes = self.encode(&request)?;
        write_all_and_close(io, bytes).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Resp,
    ) -> io::Result<()> {
        let bytes = self.encode(&response)?;
        write_all_and_close(io, bytes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use futures::io::Cursor;
    use request_response::Codec;

    type TestCodec = CborCodec<Vec<String>, u32>;

    #[test]
    fn round_trips_and_refuses_oversized_and_garbage() {
        block_on(async {
            let mut codec = TestCodec::new(64);
            let mut wire = Cursor::new(Vec::new());
            let request = Inbound::Request(vec!["a".to_owned(), "b".to_owned()]);
            codec.write_request(&ROPE_PROTOCOL, &mut wire, request.clone()).await.expect("write");
            let mut read = Cursor::new(wire.into_inner());
            assert_eq!(codec.read_request(&ROPE_PROTOCOL, &mut read).await.expect("read"), request);

            let big = Inbound::Request(vec!["x".repeat(100)]);
            let error = codec.write_request(&ROPE_PROTOCOL, &mut Cursor::new(Vec::new()), big).await;
            assert_eq!(error.expect_err("too big to send").kind(), io::ErrorKind::InvalidInput);

            let mut oversized = Cursor::new(vec![0x61; 65]);
            let read = codec.read_request(&ROPE_PROTOCOL, &mut oversized).await.expect("read as rejected");
            assert!(matches!(read, Inbound::Rejected(ref reason) if reason.contains("limit")), "{read:?}");
            let mut garbage_request = Cursor::new(vec![0xff, 0xfe, 0x00]);
            let read = codec.read_request(&ROPE_PROTOCOL, &mut garbage_request).await.expect("read as rejected");
            assert!(matches!(read, Inbound::Rejected(ref reason) if reason.contains("malformed")), "{read:?}");

            let mut garbage = Cursor::new(vec![0xff, 0xfe, 0x00]);
            let error = codec.read_response(&ROPE_PROTOCOL, &mut garbage).await.expect_err("garbage");
            assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        });
    }
}
