//! Raw HTTP/1.1 requests to a node's API on 127.0.0.1, written by hand so a
//! test controls every header (`Host`, `Origin`, WebSocket upgrades) the way a
//! browser or an attacker would send them.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An answer: status code, header block, body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The header lines as sent.
    pub headers: String,
    /// The body (empty for a 101).
    pub body: String,
}

/// Sends `head` (request line and headers, each ending in CRLF, without the
/// blank line) and `body`, and reads one answer: its headers and as many body
/// bytes as its `Content-Length` says (to the connection's end without one);
/// a `101 Switching Protocols` has no body (the connection then speaks WebSocket).
pub async fn raw(addr: SocketAddr, head: &str, body: &str) -> Answer {
    let mut stream = TcpStream::connect(addr).await.expect("connect to the API");
    let mut request = head.to_owned();
    if !body.is_empty() {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream.read(&mut chunk).await.expect("read");
        response.extend_from_slice(&chunk[..read]);
        if read == 0 || complete(&String::from_utf8_lossy(&response)) {
            break;
        }
    }
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response.split(' ').nth(1).and_then(|code| code.parse().ok()).expect("status line");
    let (headers, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    Answer { status, headers: headers.to_owned(), body: body.to_owned() }
}

/// A WebSocket upgrade of `/v1/rope` (`query` appended as is), with the given
/// `Host` and, if any, `Origin`.
pub async fn upgrade(addr: SocketAddr, query: &str, host: &str, origin: Option<&str>) -> Answer {
    let mut head = format!(
        "GET /v1/rope{query} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    );
    if let Some(origin) = origin {
        head.push_str(&format!("Origin: {origin}\r\n"));
    }
    raw(addr, &head, "").await
}

/// Whether `response` holds a whole answer (the server may keep the
/// connection open after it).
fn complete(response: &str) -> bool {
    let Some((headers, body)) = response.split_once("\r\n\r\n") else { return false };
    if headers.starts_with("HTTP/1.1 101") {
        return true;
    }
    let length = headers.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim().eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok())?
    });
    length.is_some_and(|length| body.len() >= length)
}
