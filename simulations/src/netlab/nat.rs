//! A lab of real networks in miniature: public hosts on one segment (the
//! "Internet", the lab's bridge) and private hosts each behind its own NAT
//! router, with names for the public hosts. Nodes behind the routers can
//! reach the public hosts; nothing reaches them unless they spoke first
//! (the routers MASQUERADE and forward no port), as with two offices and a
//! cloud VM.
//!
//! Layout, in the address block the lab claims (10.213.B.0/20, like
//! [`super::Lab`]): the bridge is `.1`, public host `i` is `.(10 + i)`, the
//! router of private host `j` has `.(100 + j)` on the bridge (`wan`) and
//! `192.168.(j + 1).1` on its LAN (`lan`), where private host `j` is
//! `192.168.(j + 1).2` with the router as its default route. Public hosts
//! have no default route: they answer the routers' WAN addresses, nothing
//! else. Each namespace gets `/etc/netns/<ns>/hosts` (what `ip netns exec`
//! shows it as `/etc/hosts`): `localhost`, then `<name>.lab` for every public
//! host, so a node bootstraps from `/dns4/<name>.lab/…`.
//!
//! Every link is dual-stack: the same numbers in IPv6, the segment
//! `fd13:213:B::/64` (public host `i` is `fd13:213:B::` plus `10 + i`,
//! router `j` plus `100 + j`), LAN `j` `fd13:213:B:(j + 1)::/64` (router `::1`, host
//! `::2`); the routers MASQUERADE IPv6 too (NAT66, as some networks do) and
//! `<name>.lab` also names the public host's IPv6 address (`/dns6/…`).
//!
//! Names: namespaces `mfsXXXX-<name>` (hosts) and `mfsXXXX-r<j>` (routers);
//! links `mfsXXXXbr`, `mfsXXXXp<i>`, `mfsXXXXw<j>` on the bridge. Everything
//! goes on drop, and [`super::cleanup_stale`] removes what a killed run left.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::{LabError, LabNode, check_root, claim_block, kill_inside, link_exists, sh, sh_in};

/// Where `ip netns exec` finds a namespace's own `/etc` files.
pub const NETNS_ETC: &str = "/etc/netns";

/// Most public or private hosts in a NAT lab.
pub const MAX_HOSTS: usize = 50;

/// A NAT lab (see the module doc); removed on drop.
#[derive(Debug)]
pub struct NatLab {
    run: String,
    block: u8,
    bridge: String,
    claim: PathBuf,
    public: Vec<LabNode>,
    public6: Vec<Ipv6Addr>,
    private: Vec<PrivateHost>,
    names: Vec<String>,
    namespaces: Vec<String>,
    links: Vec<String>,
}

/// A host behind its own NAT router.
#[derive(Debug, Clone)]
pub struct PrivateHost {
    /// The host (its `ip` is on the router's LAN).
    pub host: LabNode,
    /// The router's namespace.
    pub router: String,
    /// The router's address on the lab's segment: what public hosts see the
    /// private host's connections come from.
    pub wan_ip: Ipv4Addr,
    /// The host's IPv6 address on its LAN.
    pub ip6: Ipv6Addr,
    /// The router's IPv6 address on the lab's segment.
    pub wan_ip6: Ipv6Addr,
}

impl NatLab {
    /// Creates public hosts named `public` (reachable as `<name>.lab`) and
    /// private hosts named `private`, each behind its own router. Names are
    /// 1-8 lowercase letters or digits.
    pub fn create(public: &[&str], private: &[&str]) -> Result<Self, LabError> {
        check_root()?;
        let all = public.iter().chain(private);
        if public.len() > MAX_HOSTS || private.len() > MAX_HOSTS || public.len() + private.len() == 0 {
            return Err(LabError::NatSize { public: public.len(), private: private.len() });
        }
        for name in all.clone() {
            let fine =
                (1..=8).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            if !fine || all.clone().filter(|other| *other == name).count() > 1 {
                return Err(LabError::Name((*name).to_owned()));
            }
        }
        let run = format!("mfs{:04x}", rand::random::<u16>());
        let (block, claim) = claim_block(&run)?;
        let mut lab = Self {
            bridge: format!("{run}br"),
            run,
            block,
            claim,
            public: Vec::new(),
            public6: Vec::new(),
            private: Vec::new(),
            names: public.iter().map(|n| (*n).to_owned()).collect(),
            namespaces: Vec::new(),
            links: Vec::new(),
        };
        // From here on, dropping `lab` removes whatever was made.
        lab.links.push(lab.bridge.clone());
        sh(&["ip", "link", "add", &lab.bridge, "type", "bridge"])?;
        sh(&["ip", "addr", "add", &format!("{}/20", lab.wan(1)), "dev", &lab.bridge])?;
        // No duplicate address detection: an address is usable at once.
        sh(&["ip", "addr", "add", &format!("{}/64", lab.wan6(1)), "dev", &lab.bridge, "nodad"])?;
        sh(&["ip", "link", "set", &lab.bridge, "up"])?;
        for (i, name) in public.iter().enumerate() {
            let host = LabNode { index: i, netns: format!("{}-{name}", lab.run), ip: lab.wan(10 + i as u32) };
            let ip6 = lab.wan6(10 + i as u16);
            lab.wire(&host.netns, &format!("{}p{i}", lab.run), host.ip, ip6)?;
            lab.public.push(host);
            lab.public6.push(ip6);
        }
        for (j, name) in private.iter().enumerate() {
            let (router, wan_ip) = (format!("{}-r{j}", lab.run), lab.wan(100 + j as u32));
            let wan_ip6 = lab.wan6(100 + j as u16);
            let lan = |last: u8| Ipv4Addr::new(192, 168, j as u8 + 1, last);
            let block = u16::from(lab.block);
            let lan6 = |last: u16| Ipv6Addr::new(0xfd13, 0x213, block, j as u16 + 1, 0, 0, 0, last);
            lab.wire(&router, &format!("{}w{j}", lab.run), wan_ip, wan_ip6)?;
            let host = LabNode { index: public.len() + j, netns: format!("{}-{name}", lab.run), ip: lan(2) };
            lab.namespace(&host.netns)?;
            // The LAN: a veth pair between router and host, inside the two namespaces.
            sh(&[
                "ip",
                "-n",
                &router,
                "link",
                "add",
                "lan",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &host.netns,
            ])?;
            let router_side =
                format!("addr add {}/24 dev lan\naddr add {}/64 dev lan nodad\nlink set lan up\n", lan(1), lan6(1));
            sh_in(&["ip", "-n", &router, "-batch", "-"], &router_side)?;
            let host_side = format!(
                "addr add {}/24 dev eth0\naddr add {}/64 dev eth0 nodad\nlink set eth0 up\nlink set lo up\n\
                 route add default via {}\nroute add ::/0 via {}\n",
                host.ip,
                lan6(2),
                lan(1),
                lan6(1)
            );
            sh_in(&["ip", "-n", &host.netns, "-batch", "-"], &host_side)?;
            let exec = |args: &[&str]| {
                let mut full = vec!["ip", "netns", "exec", router.as_str()];
                full.extend_from_slice(args);
                sh(&full)
            };
            exec(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])?;
            exec(&["sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"])?;
            for tables in ["iptables", "ip6tables"] {
                exec(&[tables, "-w", "-t", "nat", "-A", "POSTROUTING", "-o", "eth0", "-j", "MASQUERADE"])?;
                // No port forwards: from the segment, only replies get in.
                exec(&[
                    tables,
                    "-w",
                    "-A",
                    "FORWARD",
                    "-i",
                    "eth0",
                    "-m",
                    "conntrack",
                    "--ctstate",
                    "ESTABLISHED,RELATED",
                    "-j",
                    "ACCEPT",
                ])?;
                exec(&[tables, "-w", "-A", "FORWARD", "-i", "eth0", "-j", "DROP"])?;
            }
            lab.private.push(PrivateHost { host, router, wan_ip, ip6: lan6(2), wan_ip6 });
        }
        let hosts = lab.hosts_file();
        for netns in lab.namespaces.clone() {
            let dir = Path::new(NETNS_ETC).join(&netns);
            let io = |source| LabError::State { path: dir.clone(), source };
            std::fs::create_dir_all(&dir).map_err(io)?;
            std::fs::write(dir.join("hosts"), &hosts).map_err(io)?;
            // Names the hosts file lacks are asked of a resolver on the
            // namespace's own loopback (none listens): the lab never asks a
            // real DNS server.
            std::fs::write(dir.join("resolv.conf"), "nameserver 127.0.0.1\n").map_err(io)?;
        }
        info!(run = %lab.run, public = public.len(), private = private.len(), "NAT lab up");
        Ok(lab)
    }

    /// Makes private host `index`'s router forward everything that reaches
    /// its segment address to the host (a 1:1 NAT, as a cloud VM with a
    /// public IP has): the host is reachable at `wan_ip`, an address it does
    /// not see on its own interface (IPv4 only).
    pub fn forward_all(&self, index: usize) -> Result<(), LabError> {
        let private = self.private.get(index).ok_or(LabError::NatSize { public: 0, private: index })?;
        let host = private.host.ip.to_string();
        let router = private.router.as_str();
        sh(&[
            "ip",
            "netns",
            "exec",
            router,
            "iptables",
            "-w",
            "-t",
            "nat",
            "-A",
            "PREROUTING",
            "-i",
            "eth0",
            "-j",
            "DNAT",
            "--to-destination",
            &host,
        ])?;
        sh(&[
            "ip", "netns", "exec", router, "iptables", "-w", "-I", "FORWARD", "1", "-i", "eth0", "-d", &host, "-j",
            "ACCEPT",
        ])?;
        Ok(())
    }

    /// Address `host` of the lab's segment.
    fn wan(&self, host: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 213, self.block * 16, 0)) + host)
    }

    /// Address `host` of the lab's IPv6 segment.
    fn wan6(&self, host: u16) -> Ipv6Addr {
        Ipv6Addr::new(0xfd13, 0x213, u16::from(self.block), 0, 0, 0, 0, host)
    }

    fn namespace(&mut self, netns: &str) -> Result<(), LabError> {
        self.namespaces.push(netns.to_owned());
        sh(&["ip", "netns", "add", netns])?;
        sh(&["ip", "-n", netns, "link", "set", "lo", "up"]).map(drop)
    }

    /// A namespace on the lab's segment: `veth` on the bridge, `eth0` inside
    /// with `ip`/20 and `ip6`/64.
    fn wire(&mut self, netns: &str, veth: &str, ip: Ipv4Addr, ip6: Ipv6Addr) -> Result<(), LabError> {
        self.namespace(netns)?;
        self.links.push(veth.to_owned());
        sh(&["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns])?;
        sh(&["ip", "link", "set", veth, "master", &self.bridge, "up"])?;
        let batch = format!("addr add {ip}/20 dev eth0\naddr add {ip6}/64 dev eth0 nodad\nlink set eth0 up\n");
        sh_in(&["ip", "-n", netns, "-batch", "-"], &batch).map(drop)
    }

    /// `/etc/hosts` inside the lab: localhost and every public host's name.
    fn hosts_file(&self) -> String {
        let mut hosts = String::from("127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n");
        for ((name, host), ip6) in self.names.iter().zip(&self.public).zip(&self.public6) {
            hosts += &format!("{} {name}.lab\n{ip6} {name}.lab\n", host.ip);
        }
        hosts
    }

    /// The run's prefix, `mfsXXXX`.
    pub fn run_id(&self) -> &str {
        &self.run
    }

    /// The public hosts, in the order named.
    pub fn public(&self) -> &[LabNode] {
        &self.public
    }

    /// The public hosts' IPv6 addresses, in the order named.
    pub fn public6(&self) -> &[Ipv6Addr] {
        &self.public6
    }

    /// The private hosts, in the order named.
    pub fn private(&self) -> &[PrivateHost] {
        &self.private
    }

    fn tear_down(&mut self) {
        let made: Vec<&String> =
            self.namespaces.iter().filter(|ns| Path::new("/run/netns").join(ns.as_str()).exists()).collect();
        let killed: usize = made.iter().map(|ns| kill_inside(ns)).sum();
        let mut batch = String::new();
        for link in self.links.iter().rev().filter(|l| link_exists(l)) {
            batch += &format!("link del {link}\n");
        }
        for netns in &made {
            batch += &format!("netns del {netns}\n");
        }
        if !batch.is_empty()
            && let Err(error) = sh_in(&["ip", "-force", "-batch", "-"], &batch)
        {
            warn!(%error, "cannot remove every namespace and link of the NAT lab");
        }
        for netns in &self.namespaces {
            let _ = std::fs::remove_dir_all(Path::new(NETNS_ETC).join(netns));
        }
        let _ = std::fs::remove_file(&self.claim);
        info!(run = %self.run, killed, "NAT lab removed");
    }
}

impl Drop for NatLab {
    fn drop(&mut self) {
        self.tear_down();
    }
}
