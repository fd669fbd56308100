//! What the kernel counts for one node: iptables accounting rules in the
//! node's namespace, and its established TCP connections from `ss`.
//!
//! Two chains, `MFS_IN` (jumped to from `INPUT -i eth0`) and `MFS_OUT` (from
//! `OUTPUT -o eth0`), classify every IPv4 packet on the node's interface by
//! the first rule it matches; each rule counts and returns, so a packet is
//! counted exactly once:
//!
//! | class | in (`MFS_IN`) | out (`MFS_OUT`) |
//! |---|---|---|
//! | `api` | TCP to the API port | TCP from the API port |
//! | `p2p` | TCP to or from the libp2p port | TCP from or to the libp2p port |
//! | `media` | UDP/TCP to the media ports | UDP/TCP from the media ports |
//! | `other` | everything else | everything else |
//!
//! Every node listens on the same libp2p port, so `p2p` holds both the
//! connections the node accepted and those it dialed (libp2p's TCP transport
//! dials from its listening port, so the two cannot be told apart by port).
//! The control plane is `p2p + other`; `api` (the runner's own polling) and
//! `media` are counted apart and left out. Bytes are IPv4 packet lengths as
//! netfilter sees them: IP and TCP headers, ACKs and retransmissions
//! included; a GSO/GRO batch counts its headers once. Loopback traffic inside
//! the namespace is not on `eth0` and is not counted.

use std::net::SocketAddrV4;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use super::{LabError, LabNode};

/// The node's ports, which decide the classes.
#[derive(Debug, Clone)]
pub struct Ports {
    /// The HTTP API's TCP port.
    pub api: u16,
    /// The libp2p TCP port every node listens on.
    pub p2p: u16,
    /// The media (mediasoup) port range, UDP and TCP; keep it outside the
    /// kernel's ephemeral range (32768-60999) so no dialed connection's
    /// local port falls in it.
    pub media: RangeInclusive<u16>,
}

/// The iptables-restore input that installs the accounting chains.
pub fn rules(ports: &Ports) -> String {
    let (api, p2p) = (ports.api, ports.p2p);
    let media = format!("{}:{}", ports.media.start(), ports.media.end());
    let rule = |chain: &str, matches: &str, class: &str| {
        format!("-A {chain} {matches} -m comment --comment {class} -j RETURN\n")
    };
    let mut text = String::from(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:MFS_IN - [0:0]\n:MFS_OUT - [0:0]\n\
         -A INPUT -i eth0 -j MFS_IN\n-A OUTPUT -o eth0 -j MFS_OUT\n",
    );
    for (chain, local, remote) in [("MFS_IN", "--dport", "--sport"), ("MFS_OUT", "--sport", "--dport")] {
        text += &rule(chain, &format!("-p tcp {local} {api}"), "api");
        text += &rule(chain, &format!("-p tcp {local} {p2p}"), "p2p");
        text += &rule(chain, &format!("-p tcp {remote} {p2p}"), "p2p");
        text += &rule(chain, &format!("-p udp -m multiport {local}s {media}"), "media");
        text += &rule(chain, &format!("-p tcp -m multiport {local}s {media}"), "media");
        text += &rule(chain, "", "other");
    }
    text + "COMMIT\n"
}

/// Packets and bytes of one class, both ways.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    /// Bytes received.
    pub in_bytes: u64,
    /// Bytes sent.
    pub out_bytes: u64,
    /// Packets received.
    pub in_packets: u64,
    /// Packets sent.
    pub out_packets: u64,
}

impl Flow {
    fn add(self, other: Self) -> Self {
        Self {
            in_bytes: self.in_bytes + other.in_bytes,
            out_bytes: self.out_bytes + other.out_bytes,
            in_packets: self.in_packets + other.in_packets,
            out_packets: self.out_packets + other.out_packets,
        }
    }

    fn since(self, earlier: Self) -> Self {
        Self {
            in_bytes: self.in_bytes.saturating_sub(earlier.in_bytes),
            out_bytes: self.out_bytes.saturating_sub(earlier.out_bytes),
            in_packets: self.in_packets.saturating_sub(earlier.in_packets),
            out_packets: self.out_packets.saturating_sub(earlier.out_packets),
        }
    }
}

/// A node's counters, per class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// The HTTP API (the runner's requests).
    pub api: Flow,
    /// libp2p connections (accepted and dialed).
    pub p2p: Flow,
    /// Media ports.
    pub media: Flow,
    /// Everything else (ARP is not IPv4 and not counted).
    pub other: Flow,
}

impl Counters {
    /// The control plane: `p2p` and `other`.
    pub fn control_plane(&self) -> Flow {
        self.p2p.add(self.other)
    }

    /// What was counted since `earlier`.
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            api: self.api.since(earlier.api),
            p2p: self.p2p.since(earlier.p2p),
            media: self.media.since(earlier.media),
            other: self.other.since(earlier.other),
        }
    }

    /// Reads `iptables-save -c` output.
    pub fn parse(text: &str) -> Self {
        let mut counters = Self::default();
        for line in text.lines() {
            let Some((counts, rule)) = line.strip_prefix('[').and_then(|rest| rest.split_once("] ")) else {
                continue;
            };
            let Some((packets, bytes)) = counts.split_once(':') else { continue };
            let (Ok(packets), Ok(bytes)) = (packets.parse::<u64>(), bytes.parse::<u64>()) else { continue };
            let inbound = rule.starts_with("-A MFS_IN ");
            if !inbound && !rule.starts_with("-A MFS_OUT ") {
                continue;
            }
            let class = rule.split_once("--comment ").and_then(|(_, rest)| rest.split_whitespace().next());
            let flow = match class.map(|c| c.trim_matches('"')) {
                Some("api") => &mut counters.api,
                Some("p2p") => &mut counters.p2p,
                Some("media") => &mut counters.media,
                Some("other") => &mut counters.other,
                _ => continue,
            };
            if inbound {
                flow.in_bytes += bytes;
                flow.in_packets += packets;
            } else {
                flow.out_bytes += bytes;
                flow.out_packets += packets;
            }
        }
        counters
    }

    /// Reads a node's counters.
    pub fn read(node: &LabNode) -> Result<Self, LabError> {
        Ok(Self::parse(&node.output(&["iptables-save", "-c", "-t", "filter"])?))
    }
}

/// One established TCP connection, as `ss -tni` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpConnection {
    /// Local address.
    pub local: SocketAddrV4,
    /// Remote address.
    pub peer: SocketAddrV4,
    /// Payload bytes sent (`bytes_sent`: retransmissions included).
    pub bytes_sent: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
}

/// Parses `ss -Htni state established` (a socket line, then an indented
/// line of TCP info).
pub fn parse_ss(text: &str) -> Vec<TcpConnection> {
    let mut connections: Vec<TcpConnection> = Vec::new();
    for line in text.lines() {
        if line.starts_with(char::is_whitespace) {
            if let Some(last) = connections.last_mut() {
                for field in line.split_whitespace() {
                    if let Some(n) = field.strip_prefix("bytes_sent:").and_then(|n| n.parse().ok()) {
                        last.bytes_sent = n;
                    } else if let Some(n) = field.strip_prefix("bytes_received:").and_then(|n| n.parse().ok()) {
                        last.bytes_received = n;
                    }
                }
            }
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [.., local, peer] = words.as_slice()
            && let (Ok(local), Ok(peer)) = (local.parse(), peer.parse())
        {
            connections.push(TcpConnection { local, peer, bytes_sent: 0, bytes_received: 0 });
        }
    }
    connections
}

/// A node's established libp2p connections (local or remote port `p2p`).
pub fn p2p_connections(node: &LabNode, p2p: u16) -> Result<Vec<TcpConnection>, LabError> {
    let text = node.output(&["ss", "-Htni", "state", "established"])?;
    Ok(parse_ss(&text).into_iter().filter(|c| c.local.port() == p2p || c.peer.port() == p2p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_class_is_read_from_iptables_save_and_control_plane_leaves_out_api_and_media() {
        let text = "*filter\n:INPUT ACCEPT [12:2031]\n[12:2031] -A INPUT -i eth0 -j MFS_IN\n\
            [6:398] -A MFS_IN -p tcp -m tcp --dport 7700 -m comment --comment api -j RETURN\n\
            [3:300] -A MFS_IN -p tcp -m tcp --dport 4001 -m comment --comment p2p -j RETURN\n\
            [2:200] -A MFS_IN -p tcp -m tcp --sport 4001 -m comment --comment \"p2p\" -j RETURN\n\
            [1:1000] -A MFS_IN -p udp -m multiport --dports 20000:29999 -m comment --comment media -j RETURN\n\
            [1:50] -A MFS_IN -m comment --comment other -j RETURN\n\
            [4:40] -A MFS_OUT -p tcp -m tcp --dport 4001 -m comment --comment p2p -j RETURN\n\
            [9:9999] -A MFS_OUT -p tcp -m tcp --sport 7700 -m comment --comment api -j RETURN\nCOMMIT\n";
        let counters = Counters::parse(text);
        assert_eq!(counters.api, Flow { in_bytes: 398, out_bytes: 9999, in_packets: 6, out_packets: 9 });
        let control = counters.control_plane();
        assert_eq!((control.in_bytes, control.out_bytes, control.in_packets), (550, 40, 6));
        let later = Counters::parse(&text.replace("[1:50]", "[3:150]"));
        assert_eq!(later.since(&counters).other.in_bytes, 100);
    }

    #[test]
    fn every_class_has_a_rule_in_each_direction() {
        let text = rules(&Ports { api: 7700, p2p: 4001, media: 20000..=29999 });
        for class in ["api", "p2p", "media", "other"] {
            for chain in ["MFS_IN", "MFS_OUT"] {
                assert!(
                    text.lines().any(|l| l.starts_with(&format!("-A {chain} ")) && l.contains(class)),
                    "{chain} {class}"
                );
            }
        }
        assert!(text.contains("-A MFS_IN -p tcp --dport 7700") && text.contains("--dports 20000:29999"));
    }

    #[test]
    fn ss_lines_give_addresses_and_payload_bytes() {
        let text = "0      0      10.213.0.2:48858 10.213.0.3:4001 \n\t bbr wscale:10,10 bytes_sent:1000 bytes_acked:1001 segs_out:3\n\
                    0      0      10.213.0.2:4001  10.213.0.4:48858\n\t bbr bytes_received:77 segs_in:3\n";
        let connections = parse_ss(text);
        assert_eq!(connections.len(), 2);
        assert_eq!((connections[0].peer.port(), connections[0].bytes_sent), (4001, 1000));
        assert_eq!((connections[1].local.port(), connections[1].bytes_received), (4001, 77));
    }
}
