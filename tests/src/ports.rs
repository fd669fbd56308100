//! Ports chosen before whoever listens on them exists (a page server the
//! nodes are told about first, a seed started after its joiner). Probed on
//! 127.0.0.1, such a port is free when probed, and then any process's
//! outgoing connection may take it as its source port before the listener
//! binds it: `EADDRINUSE`, seen in CI. Probed on a loopback address of the
//! test's own, only a wildcard listener could.

use std::net::{Ipv4Addr, SocketAddr};

/// A random address in 127.0.0.0/8 outside 127.0.x.x (left to the tests that
/// name loopback addresses themselves) and never 127.255.255.255 (the
/// broadcast address of 127.0.0.0/8), and a TCP port free on it now.
pub fn unshared_tcp_addr() -> SocketAddr {
    let [b, c, d] = rand::random::<[u8; 3]>();
    let host = Ipv4Addr::new(127, b.max(1), c, d.clamp(1, 254));
    let port = std::net::TcpListener::bind((host, 0)).expect("bind").local_addr().expect("addr").port();
    (host, port).into()
}
