//! A small HTTP/1.1 client for the nodes' API: one request per connection
//! (`Connection: close`), a bearer token, a deadline on the whole exchange,
//! fixed-length or chunked answers.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest answer read (a node's `/metrics` is a few tens of KiB).
const MAX_ANSWER: usize = 8 << 20;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// Connecting, writing or reading failed.
    #[error("{method} http://{addr}{path}: {source}")]
    Io {
        /// The method.
        method: &'static str,
        /// The server.
        addr: SocketAddr,
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// No complete answer within the deadline.
    #[error("{method} http://{addr}{path}: no answer within {timeout:?}")]
    Timeout {
        /// The method.
        method: &'static str,
        /// The server.
        addr: SocketAddr,
        /// The path.
        path: String,
        /// The deadline.
        timeout: Duration,
    },
    /// The answer is not HTTP/1.1 as expected.
    #[error("{method} http://{addr}{path}: malformed answer: {reason}")]
    Malformed {
        /// The method.
        method: &'static str,
        /// The server.
        addr: SocketAddr,
        /// The path.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// An answer: status and body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status code.
    pub status: u16,
    /// The body, as text.
    pub body: String,
}

impl Answer {
    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A node's API: address and token.
#[derive(Debug, Clone)]
pub struct Api {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The app token.
    pub token: String,
}

impl Api {
    /// `GET path`.
    pub async fn get(&self, path: &str, timeout: Duration) -> Result<Answer, HttpError> {
        self.request("GET", path, None, timeout).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put_json(&self, path: &str, body: &str, timeout: Duration) -> Result<Answer, HttpError> {
        self.request("PUT", path, Some(body), timeout).await
    }

    /// Sends one request and reads the whole answer within `timeout`.
    pub async fn request(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&str>,
        timeout: Duration,
    ) -> Result<Answer, HttpError> {
        let exchange = self.exchange(method, path, body);
        let raw = match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(raw)) => raw,
            Ok(Err(source)) => return Err(HttpError::Io { method, addr: self.addr, path: path.into(), source }),
            Err(_) => return Err(HttpError::Timeout { method, addr: self.addr, path: path.into(), timeout }),
        };
        parse_answer(&raw).map_err(|reason| HttpError::Malformed { method, addr: self.addr, path: path.into(), reason })
    }

    async fn exchange(&self, method: &str, path: &str, body: Option<&str>) -> std::io::Result<Vec<u8>> {
        let mut stream = TcpStream::connect(self.addr).await?;
        let body = body.unwrap_or("");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            self.token,
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        let mut raw = Vec::new();
        (&mut stream).take(MAX_ANSWER as u64).read_to_end(&mut raw).await?;
        Ok(raw)
    }
}

/// Parses a whole HTTP/1.1 answer (headers, then a fixed-length, chunked or
/// read-to-close body).
fn parse_answer(raw: &[u8]) -> Result<Answer, String> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|e| e.to_string())?;
    let mut body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name == "content-length" {
            let length: usize = value.parse().map_err(|_| format!("bad content-length {value:?}"))?;
            body = body.get(..length).ok_or("body shorter than its content-length")?;
        } else if name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked") {
            chunked = true;
        }
    }
    let body = if chunked { dechunk(body)? } else { body.to_vec() };
    Ok(Answer { status, body: String::from_utf8_lossy(&body).into_owned() })
}

fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let end = raw.windows(2).position(|w| w == b"\r\n").ok_or("unterminated chunk size")?;
        let size_text = std::str::from_utf8(&raw[..end]).map_err(|e| e.to_string())?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        raw = &raw[end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(raw.get(..size).ok_or("chunk shorter than its size")?);
        raw = raw.get(size + 2..).ok_or("chunk not terminated")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_length_and_chunked_answers_are_read() {
        let fixed = parse_answer(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello, and more").expect("valid");
        assert_eq!((fixed.status, fixed.body.as_str(), fixed.ok()), (200, "hello", true));
        let chunked = parse_answer(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .expect("valid");
        assert_eq!((chunked.status, chunked.body.as_str(), chunked.ok()), (404, "abcde", false));
        let to_close = parse_answer(b"HTTP/1.1 503 Busy\r\n\r\nall of it").expect("valid");
        assert_eq!(to_close.body, "all of it");
    }

    #[test]
    fn malformed_answers_are_errors_not_panics() {
        for raw in
            [&b""[..], b"HTTP/1.1 200 OK\r\n", b"garbage\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab"]
        {
            assert!(parse_answer(raw).is_err(), "{:?}", String::from_utf8_lossy(raw));
        }
        assert!(parse_answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err());
    }
}
