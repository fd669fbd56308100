//! ROPE over WebSocket (`tokio-tungstenite`): binary frames carry CBOR, text
//! frames JSON. A client picks the encoding with the URL query `?format=json`
//! (default CBOR); the server answers in the encoding the client chose. Frames
//! over the size limit are refused by the WebSocket layer (close code 1009) and
//! end that connection only.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::server::{Request as HttpRequest, Response as HttpResponse};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message as Frame};
use tokio_tungstenite::{WebSocketStream, accept_hdr_async_with_config};
use tracing::{debug, warn};

use super::{Connection, TransportError};
use crate::codec::{self, MAX_MESSAGE_SIZE, cbor, json};
use crate::message::Message;
use crate::server::Server;

/// How messages are encoded on a WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// CBOR in binary frames.
    #[default]
    Cbor,
    /// JSON in text frames.
    Json,
}

impl Format {
    /// The format a URL query asks for: `format=json` is JSON, anything else CBOR.
    pub fn from_query(query: Option<&str>) -> Self {
        let json = query.is_some_and(|q| q.split('&').any(|pair| pair == "format=json"));
        if json { Self::Json } else { Self::Cbor }
    }
}

/// Most WebSocket connections a server takes at once.
pub const MAX_CONNECTIONS: usize = 1024;

fn config(limit: usize) -> WebSocketConfig {
    WebSocketConfig::default().max_message_size(Some(limit)).max_frame_size(Some(limit))
}

fn encode(message: &Message, format: Format, limit: usize) -> Result<Frame, TransportError> {
    Ok(match format {
        Format::Cbor => Frame::Binary(cbor::encode_with_limit(message, limit)?.into()),
        Format::Json => Frame::Text(json::encode_with_limit(message, limit)?.into()),
    })
}

fn decode(frame: Frame, limit: usize) -> Option<Result<Message, TransportError>> {
    match frame {
        Frame::Binary(bytes) => Some(cbor::decode_with_limit(&bytes, limit).map_err(TransportError::from)),
        Frame::Text(text) => Some(json::decode_with_limit(text.as_str(), limit).map_err(TransportError::from)),
        Frame::Close(_) => Some(Err(TransportError::Closed)),
        // Pings are answered by tungstenite itself.
        Frame::Ping(_) | Frame::Pong(_) | Frame::Frame(_) => None,
    }
}

fn failed(error: tungstenite::Error) -> TransportError {
    match error {
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => TransportError::Closed,
        other => TransportError::Failed(other.to_string()),
    }
}

/// Wraps an established WebSocket as a ROPE connection.
pub fn connection<S>(socket: WebSocketStream<S>, format: Format, limit: usize) -> Connection
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sink, stream) = socket.split();
    let sink =
        sink.sink_map_err(failed).with(move |message: Message| futures::future::ready(encode(&message, format, limit)));
    let stream = stream.filter_map(move |frame| {
        futures::future::ready(match frame {
            Ok(frame) => decode(frame, limit),
            Err(error) => Some(Err(failed(error))),
        })
    });
    Connection { sink: Box::pin(sink), stream: Box::pin(stream) }
}

/// Wraps a connection that an HTTP server already upgraded to WebSocket (the
/// `101 Switching Protocols` answer sent by the caller, with
/// [`accept_key`]) as the server side of a ROPE connection, with the same
/// frame limits as [`serve`].
pub async fn from_upgraded<S>(io: S, format: Format) -> Connection
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let socket = WebSocketStream::from_raw_socket(
        io,
        tungstenite::protocol::Role::Server,
        Some(config(codec::MAX_MESSAGE_SIZE)),
    )
    .await;
    connection(socket, format, codec::MAX_MESSAGE_SIZE)
}

/// The `Sec-WebSocket-Accept` value answering a client's `Sec-WebSocket-Key`.
pub fn accept_key(client_key: &[u8]) -> String {
    tungstenite::handshake::derive_accept_key(client_key)
}

/// Connects to a ROPE server at `url` (`ws://host:port/path[?format=json]`).
pub async fn connect(url: &str) -> Result<Connection, TransportError> {
    let format = Format::from_query(url.split_once('?').map(|(_, query)| query));
    let (socket, _) = tokio_tungstenite::connect_async_with_config(url, Some(config(MAX_MESSAGE_SIZE)), true)
        .await
        .map_err(failed)?;
    Ok(connection(socket, format, MAX_MESSAGE_SIZE))
}

/// Accepts ROPE WebSocket clients on `listener` and serves each with `server`.
/// Returns the accept task; aborting it stops accepting (open connections go on).
pub fn serve(listener: TcpListener, server: Server) -> JoinHandle<()> {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    warn!(%error, "accepting a ROPE WebSocket connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                warn!(%peer, "too many ROPE connections; refusing");
                continue;
            };
            let server = server.clone();
            tokio::spawn(async move {
                if let Some(connection) = accept(stream, peer).await {
                    server.serve(connection).await;
                }
                drop(permit);
            });
        }
    })
}

async fn accept(stream: TcpStream, peer: SocketAddr) -> Option<Connection> {
    let _ = stream.set_nodelay(true);
    let mut format = Format::Cbor;
    // The callback's error type is tungstenite's own (an HTTP response).
    #[allow(clippy::result_large_err)]
    let pick_format = |request: &HttpRequest, response: HttpResponse| {
        format = Format::from_query(request.uri().query());
        Ok(response)
    };
    match accept_hdr_async_with_config(stream, pick_format, Some(config(codec::MAX_MESSAGE_SIZE))).await {
        Ok(socket) => {
            debug!(%peer, ?format, "ROPE WebSocket client connected");
            Some(connection(socket, format, codec::MAX_MESSAGE_SIZE))
        }
        Err(error) => {
            debug!(%peer, %error, "WebSocket handshake failed");
            None
        }
    }
}
