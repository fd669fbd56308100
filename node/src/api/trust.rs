//! Which web pages and which names may reach the API.
//!
//! A browser sends any site's requests to `127.0.0.1` if the site asks, and
//! lets any site open a WebSocket anywhere; the two checks here keep a web
//! page the user merely visits from driving the node:
//!
//! - **Origin**: a request that carries an `Origin` (browsers send one on
//!   WebSocket upgrades and on cross-site POST/PUT/DELETE) is served only if
//!   that origin is the node's own (`http://` and the API's address as bound,
//!   `http://localhost:PORT` on loopback, `http(s)://` a name of `--api-hosts`)
//!   or listed in `--api-origins`; `*` lets every origin in (unsafe: any page
//!   the user visits may then drive the node). Requests without `Origin` come
//!   from programs, not pages, and pass.
//! - **Host** (DNS rebinding: a site whose name now points at 127.0.0.1 is
//!   same-origin with itself, so the Origin check alone would pass it): the
//!   `Host` must be the API's own address — the bound IP and port (any IP
//!   literal at that port when bound to `0.0.0.0`/`::`, IP literals cannot be
//!   rebound), `localhost:PORT` when bound to loopback — or a name listed in
//!   `--api-hosts` (any port unless the entry gives one). HTTP/1.1 without a
//!   `Host` is refused.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::middleware::Next;
use axum::response::Response;

use super::{ApiState, error};

/// A setting of `--api-origins` or `--api-hosts` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustConfigError {
    /// Not `scheme://host[:port]` (or `*`).
    #[error("{0:?} is not an origin: expected http://HOST[:PORT] or https://HOST[:PORT] (no path), or *")]
    BadOrigin(String),
    /// Not `name[:port]` or an IP literal (IPv6 in brackets).
    #[error("{0:?} is not a host: expected NAME, NAME:PORT, IP, IP:PORT or [IPv6]:PORT")]
    BadHost(String),
}

/// A host as it appears in a `Host` header or an origin.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostName {
    Ip(IpAddr),
    /// Lower case, without a trailing dot.
    Name(String),
}

/// Splits `host[:port]` (IPv6 in brackets); `None` if malformed.
fn parse_authority(text: &str) -> Option<(HostName, Option<u16>)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let ip: std::net::Ipv6Addr = inside.parse().ok()?;
        let port = match after {
            "" => None,
            after => Some(after.strip_prefix(':')?.parse::<u16>().ok()?),
        };
        return Some((HostName::Ip(IpAddr::V6(ip)), port));
    }
    let (host, port) = match text.split_once(':') {
        Some((host, port)) => (host, Some(port.parse::<u16>().ok()?)),
        None => (text, None),
    };
    if let Ok(ip) = host.parse::<std::net::Ipv4Addr>() {
        return Some((HostName::Ip(IpAddr::V4(ip)), port));
    }
    let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    valid.then_some((HostName::Name(name), port))
}

/// An origin: scheme, host, port (the scheme's default port when omitted).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: HostName,
    port: u16,
}

fn parse_origin(text: &str) -> Option<Origin> {
    let (scheme, authority) = text.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    if authority.contains(['/', '?', '#', '@']) {
        return None;
    }
    let (host, port) = parse_authority(authority)?;
    Some(Origin { scheme, host, port: port.unwrap_or(default_port) })
}

/// One `--api-origins` entry: `*`, or an origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigin(Option<Origin>);

impl AllowedOrigin {
    /// Every origin: any web page may drive the node. Unsafe.
    pub const ANY: Self = Self(None);
}

impl std::str::FromStr for AllowedOrigin {
    type Err = TrustConfigError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text == "*" {
            return Ok(Self::ANY);
        }
        parse_origin(text).map(|o| Self(Some(o))).ok_or_else(|| TrustConfigError::BadOrigin(text.to_owned()))
    }
}

/// One `--api-hosts` entry: a name (or IP) the API is reached by, with a port
/// only if the entry gives one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    host: HostName,
    port: Option<u16>,
}

impl std::str::FromStr for AllowedHost {
    type Err = TrustConfigError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        parse_authority(text)
            .map(|(host, port)| Self { host, port })
            .ok_or_else(|| TrustConfigError::BadHost(text.to_owned()))
    }
}

/// The checks, set up for one bound address.
#[derive(Debug, Clone)]
pub(super) struct Trust {
    bound: SocketAddr,
    hosts: Vec<AllowedHost>,
    origins: Vec<AllowedOrigin>,
}

impl Trust {
    pub(super) fn new(bound: SocketAddr, hosts: Vec<AllowedHost>, origins: Vec<AllowedOrigin>) -> Self {
        Self { bound, hosts, origins }
    }

    /// The API's address itself: the bound IP at the bound port (any IP
    /// literal when bound to all addresses), or `localhost` on loopback.
    fn is_own_address(&self, host: &HostName, port: Option<u16>) -> bool {
        if port != Some(self.bound.port()) {
            return false;
        }
        let ip = self.bound.ip();
        match host {
            HostName::Ip(literal) => ip.is_unspecified() || *literal == ip,
            HostName::Name(name) => name == "localhost" && (ip.is_loopback() || ip.is_unspecified()),
        }
    }

    fn is_listed_host(&self, host: &HostName, port: Option<u16>) -> bool {
        self.hosts.iter().any(|allowed| allowed.host == *host && (allowed.port.is_none() || allowed.port == port))
    }

    fn host_allowed(&self, authority: &str) -> bool {
        parse_authority(authority)
            .is_some_and(|(host, port)| self.is_own_address(&host, port) || self.is_listed_host(&host, port))
    }

    fn origin_allowed(&self, value: &HeaderValue) -> bool {
        if self.origins.contains(&AllowedOrigin::ANY) {
            return true;
        }
        // "null" (sandboxed frames, file: pages) and anything unparsable are foreign.
        let Some(origin) = value.to_str().ok().and_then(parse_origin) else { return false };
        let own = (origin.scheme == "http" && self.is_own_address(&origin.host, Some(origin.port)))
            || self.is_listed_host(&origin.host, Some(origin.port));
        own || self.origins.iter().any(|allowed| allowed.0.as_ref() == Some(&origin))
    }
}

/// Refuses requests for a foreign `Host` (421; 400 without one on HTTP/1.1)
/// or from a foreign `Origin` (403), before anything else looks at them.
pub(super) async fn check(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let trust = &state.trust;
    // An absolute-form target's authority overrides the Host header (RFC 9112 §3.2.2).
    let authority = match request.uri().authority() {
        Some(authority) => Some(authority.as_str().to_owned()),
        None => match request.headers().get(header::HOST).map(|h| h.to_str()) {
            Some(Ok(host)) => Some(host.to_owned()),
            Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "the Host header is not text".into()),
            None => None,
        },
    };
    match authority {
        Some(authority) if !trust.host_allowed(&authority) => {
            let message = format!("Host {authority:?} is not this API's address or one of its names (--api-hosts)");
            return error(StatusCode::MISDIRECTED_REQUEST, message);
        }
        Some(_) => {}
        // HTTP/1.0 clients may omit Host, and no browser is one of them.
        None if request.version() == Version::HTTP_10 => {}
        None => return error(StatusCode::BAD_REQUEST, "a Host header is required".into()),
    }
    for origin in request.headers().get_all(header::ORIGIN) {
        if !trust.origin_allowed(origin) {
            let shown = String::from_utf8_lossy(origin.as_bytes()).into_owned();
            let message = format!("Origin {shown:?} may not use this API (allow it with --api-origins)");
            return error(StatusCode::FORBIDDEN, message);
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trust(bound: &str, hosts: &[&str], origins: &[&str]) -> Trust {
        Trust::new(
            bound.parse().expect("addr"),
            hosts.iter().map(|h| h.parse().expect("host")).collect(),
            origins.iter().map(|o| o.parse().expect("origin")).collect(),
        )
    }

    fn origin(trust: &Trust, value: &str) -> bool {
        trust.origin_allowed(&HeaderValue::from_str(value).expect("header"))
    }

    #[test]
    fn hosts_are_the_bound_address_localhost_on_loopback_and_listed_names() {
        let t = trust("127.0.0.1:7700", &["media.example.com", "alt.example:8443"], &[]);
        for ok in ["127.0.0.1:7700", "localhost:7700", "LOCALHOST:7700", "media.example.com", "media.example.com:443"] {
            assert!(t.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:7700",
            "127.0.0.1:7701",
            "127.0.0.1",
            "localhost",
            "alt.example:8444",
            "127.0.0.2:7700",
            "[::1]:7700",
            "127.0.0.1:7700:1",
            "",
        ] {
            assert!(!t.host_allowed(bad), "{bad}");
        }
        let v6 = trust("[::1]:7700", &[], &[]);
        assert!(v6.host_allowed("[::1]:7700") && v6.host_allowed("localhost:7700"));
        assert!(!v6.host_allowed("::1:7700") && !v6.host_allowed("[::2]:7700"));
        let routable = trust("192.0.2.1:7700", &[], &[]);
        assert!(routable.host_allowed("192.0.2.1:7700") && !routable.host_allowed("localhost:7700"));
        let all = trust("0.0.0.0:7700", &[], &[]);
        assert!(all.host_allowed("192.0.2.1:7700") && all.host_allowed("localhost:7700"));
        assert!(!all.host_allowed("evil.example:7700"));
    }

    #[test]
    fn origins_are_the_nodes_own_and_listed_ones() {
        let t = trust("127.0.0.1:7700", &["media.example.com"], &["https://app.example", "http://127.0.0.1:3000"]);
        for ok in [
            "http://127.0.0.1:7700",
            "http://localhost:7700",
            "https://app.example",
            "https://app.example:443",
            "http://127.0.0.1:3000",
            "https://media.example.com",
        ] {
            assert!(origin(&t, ok), "{ok}");
        }
        for bad in [
            "http://evil.example",
            "null",
            "https://127.0.0.1:7700",
            "http://app.example",
            "http://127.0.0.1:3001",
            "ftp://127.0.0.1:7700",
            "http://127.0.0.1:7700/path",
        ] {
            assert!(!origin(&t, bad), "{bad}");
        }
        assert!(origin(&trust("127.0.0.1:7700", &[], &["*"]), "http://evil.example"));
    }

    #[test]
    fn bad_settings_are_refused() {
        for bad in ["evil.example", "http://", "http://a/b", "ws://a", "http://a:99999"] {
            assert!(bad.parse::<AllowedOrigin>().is_err(), "{bad}");
        }
        for bad in ["", "a b", "a:port", "[::1", "::1"] {
            assert!(bad.parse::<AllowedHost>().is_err(), "{bad}");
        }
    }
}
