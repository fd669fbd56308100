//! The NAT lab behaves like the networks it stands for: a host behind its
//! router reaches the public host by name and shows up as the router's
//! address; nothing reaches a host behind a router unless it spoke first;
//! nothing is left behind. Needs root (network namespaces, iptables).

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mafalda_simulations::netlab::nat::{NETNS_ETC, NatLab, PrivateHost};
use mafalda_simulations::netlab::{self, LabNode};
use mafalda_simulations::processes;

/// Python in `netns`: `code` with `sys.argv[1:]` = `args`.
fn python(netns: &str, code: &str, args: &[&str]) -> Command {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", netns, "python3", "-c", code]).args(args);
    command
}

/// Accepts one TCP connection on `ip:port` (IPv4 or IPv6) in `netns` and prints the peer's address.
const ACCEPT_ONE: &str = "import socket,sys\ns=socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET)\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
s.bind((sys.argv[1],int(sys.argv[2])))\ns.listen(1)\ns.settimeout(10)\nc,a=s.accept()\nprint(a[0])";

/// Connects to `host:port` (1 s timeout); prints `ok` or the error's name.
const CONNECT: &str = "import socket,sys\ntry:\n    socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=1).close()\n    print('ok')\n\
except Exception as e:\n    print(type(e).__name__)";

fn listen_once(netns: &str, ip: impl Into<IpAddr>, port: u16) -> Child {
    let child = python(netns, ACCEPT_ONE, &[&ip.into().to_string(), &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start a listener");
    std::thread::sleep(Duration::from_millis(300));
    child
}

fn connect(netns: &str, host: &str, port: u16) -> String {
    let out = python(netns, CONNECT, &[host, &port.to_string()]).output().expect("run a connect");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn hosts_behind_nat_reach_the_public_host_by_name_and_nothing_reaches_them() {
    let _ = netlab::cleanup_stale();
    let lab = NatLab::create(&["p"], &["a", "c"]).expect("a NAT lab (needs root)");
    let run = lab.run_id().to_owned();
    let p = lab.public()[0].clone();
    let (a, c) = (lab.private()[0].clone(), lab.private()[1].clone());
    assert_ne!(a.wan_ip, c.wan_ip);

    // Names: p.lab is P, from behind a NAT too.
    let resolved = Command::new("ip")
        .args(["netns", "exec", &a.host.netns, "getent", "ahostsv4", "p.lab"])
        .output()
        .expect("getent");
    let resolved = String::from_utf8_lossy(&resolved.stdout).to_string();
    assert!(resolved.starts_with(&format!("{} ", p.ip)), "p.lab resolves to P ({}) inside A: {resolved:?}", p.ip);

    // A reaches P, which sees A's router, not A.
    let listener = listen_once(&p.netns, p.ip, 5000);
    assert_eq!(connect(&a.host.netns, "p.lab", 5000), "ok", "A reaches P by name");
    let seen = listener.wait_with_output().expect("listener");
    let seen: Ipv4Addr = String::from_utf8_lossy(&seen.stdout).trim().parse().expect("the peer's address");
    assert_eq!(seen, a.wan_ip, "P sees A's connection come from A's router");

    // Nothing reaches A first: not P at A's router, nor P at A itself, nor C.
    let mut listener = listen_once(&a.host.netns, a.host.ip, 6000);
    assert_ne!(connect(&p.netns, &a.wan_ip.to_string(), 6000), "ok", "no port forward at A's router");
    assert_ne!(connect(&p.netns, &a.host.ip.to_string(), 6000), "ok", "A's LAN is not routed from outside");
    assert_ne!(connect(&c.host.netns, &a.wan_ip.to_string(), 6000), "ok", "C cannot reach A either");
    assert_eq!(connect(&a.host.netns, &a.host.ip.to_string(), 6000), "ok", "the listener was there all along");
    let _ = listener.kill();
    let _ = listener.wait();

    // The same over IPv6: p.lab names P's IPv6 address too; the routers
    // MASQUERADE IPv6 (NAT66) and forward nothing in.
    let p6 = lab.public6()[0];
    let resolved = Command::new("ip")
        .args(["netns", "exec", &a.host.netns, "getent", "ahostsv6", "p.lab"])
        .output()
        .expect("getent");
    let resolved = String::from_utf8_lossy(&resolved.stdout).to_string();
    assert!(resolved.starts_with(&format!("{p6} ")), "p.lab resolves to P's IPv6 {p6} inside A: {resolved:?}");
    let listener = listen_once(&p.netns, p6, 5001);
    assert_eq!(connect(&a.host.netns, &p6.to_string(), 5001), "ok", "A reaches P over IPv6");
    let seen = listener.wait_with_output().expect("listener");
    let seen: std::net::Ipv6Addr = String::from_utf8_lossy(&seen.stdout).trim().parse().expect("the peer's address");
    assert_eq!(seen, a.wan_ip6, "P sees A's IPv6 connection come from A's router");
    let mut listener = listen_once(&a.host.netns, a.ip6, 6001);
    assert_ne!(connect(&p.netns, &a.wan_ip6.to_string(), 6001), "ok", "no IPv6 port forward at A's router");
    assert_ne!(connect(&p.netns, &a.ip6.to_string(), 6001), "ok", "A's IPv6 LAN is not routed from outside");
    assert_ne!(connect(&c.host.netns, &a.wan_ip6.to_string(), 6001), "ok", "C cannot reach A over IPv6 either");
    assert_eq!(connect(&a.host.netns, &a.ip6.to_string(), 6001), "ok", "the IPv6 listener was there all along");
    let _ = listener.kill();
    let _ = listener.wait();

    drop(lab);
    let left: Vec<String> = netlab::leftovers().expect("list").into_iter().filter(|n| n.starts_with(&run)).collect();
    assert!(left.is_empty(), "the lab left {left:?}");
    let etc = std::fs::read_dir(NETNS_ETC)
        .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().starts_with(&run)).count())
        .unwrap_or(0);
    assert_eq!(etc, 0, "no {NETNS_ETC}/{run}-* left");
    assert!(!Path::new(&format!("/run/netns/{run}-p")).exists());
}

#[test]
fn bad_lab_shapes_are_refused_and_make_nothing() {
    assert!(matches!(NatLab::create(&[], &[]), Err(netlab::LabError::NatSize { .. })));
    assert!(matches!(NatLab::create(&["p"], &["P"]), Err(netlab::LabError::Name(_))));
    assert!(matches!(NatLab::create(&["p"], &["p"]), Err(netlab::LabError::Name(_))));
    assert!(matches!(NatLab::create(&["toolongname"], &[]), Err(netlab::LabError::Name(_))));
}

/// The API token of the nodes in the lab.
const TOKEN: &str = "nat-lab-token";

/// `mafalda-node run` in `netns`, listening on `ips` (libp2p and media:
/// one IPv4 and one IPv6 address make a dual-stack node), its API on
/// 127.0.0.1 there; returns it with its peer id.
fn start_node(binary: &Path, dir: &Path, netns: &str, ips: &[IpAddr], bootstrap: Option<&str>) -> (Child, String) {
    let identity = dir.join(format!("{netns}.key"));
    let keypair = mafalda_swarm::identity::load_or_create(&identity).expect("identity");
    let log = std::fs::File::create(dir.join(format!("{netns}.log"))).expect("log file");
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", netns])
        .arg(binary)
        .arg("run")
        .args(ips.iter().map(|ip| match ip {
            IpAddr::V4(ip) => format!("--listen=/ip4/{ip}/tcp/4001"),
            IpAddr::V6(ip) => format!("--listen=/ip6/{ip}/tcp/4001"),
        }))
        .arg("--api=127.0.0.1:7700")
        .args(ips.iter().map(|ip| format!("--media-ip={ip}")))
        .arg("--workers=1")
        .arg(format!("--identity={}", identity.display()))
        .args(bootstrap.map(|b| format!("--bootstrap={b}")))
        .env("MAFALDA_API_TOKEN", TOKEN)
        .env("RUST_LOG", "info")
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    (command.spawn().expect("start mafalda-node"), keypair.public().to_peer_id().to_string())
}

/// `method path` (with a JSON `body`) on the API of the node in `netns`,
/// through curl there: the answer's JSON when it is a success.
fn api(netns: &str, method: &str, path: &str, body: Option<&serde_json::Value>) -> Option<serde_json::Value> {
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", netns, "curl", "-sf", "--max-time", "5", "-X", method, "-H"])
        .arg(format!("Authorization: Bearer {TOKEN}"));
    if let Some(body) = body {
        command.args(["-H", "Content-Type: application/json", "--data"]).arg(body.to_string());
    }
    let out = command.arg(format!("http://127.0.0.1:7700{path}")).output().ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

/// The IP families a node in the lab uses (for libp2p and media alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stack {
    V4,
    V6,
    Dual,
}

impl Stack {
    /// The addresses of a host with `v4` and `v6` that the stack uses.
    fn ips(self, v4: impl Into<IpAddr>, v6: impl Into<IpAddr>) -> Vec<IpAddr> {
        match self {
            Self::V4 => vec![v4.into()],
            Self::V6 => vec![v6.into()],
            Self::Dual => vec![v4.into(), v6.into()],
        }
    }

    /// The seed address, by name, of P (peer `p_id`) for a node of this stack.
    fn seed(self, p_id: &str) -> String {
        let dns = if self == Self::V6 { "dns6" } else { "dns4" };
        format!("/{dns}/p.lab/tcp/4001/p2p/{p_id}")
    }
}

/// A NAT lab with `mafalda-node` running in it: P on the public host, and
/// one node on each private host, joined through `/dns4/p.lab/…`. Dropping
/// it kills the nodes before the lab goes, so a failed assertion leaves no
/// process behind in a namespace.
struct LabSwarm {
    nodes: Vec<Child>,
    p: LabNode,
    /// P's addresses, as its node uses them.
    p_ips: Vec<IpAddr>,
    p_id: String,
    private: Vec<PrivateHost>,
    /// Each private node's addresses, in `private`'s order.
    private_ips: Vec<Vec<IpAddr>>,
    /// The private nodes' peer ids, in `private`'s order.
    ids: Vec<String>,
    /// When the private nodes were started.
    private_started: std::time::Instant,
    /// Where the nodes' logs are.
    dir: std::path::PathBuf,
    _lab: NatLab,
}

/// Builds a lab with private hosts `private` (`shape` may change it before
/// any node starts), its logs under `target/<out>`, and starts the nodes.
fn lab_swarm(out: &str, private: &[&str], shape: impl FnOnce(&NatLab)) -> LabSwarm {
    lab_swarm_stacked(out, Stack::V4, &vec![Stack::V4; private.len()], private, shape)
}

/// [`lab_swarm`] with P on `p_stack` and private host `j` on `stacks[j]`;
/// each private node joins through P's name in its family (`/dns6/…` for
/// IPv6 only).
fn lab_swarm_stacked(
    out: &str,
    p_stack: Stack,
    stacks: &[Stack],
    private: &[&str],
    shape: impl FnOnce(&NatLab),
) -> LabSwarm {
    assert_eq!(stacks.len(), private.len());
    let binary = processes::node_binary(!cfg!(debug_assertions)).expect("build mafalda-node");
    let _ = netlab::cleanup_stale();
    let lab = NatLab::create(&["p"], private).expect("a NAT lab (needs root)");
    shape(&lab);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target").join(out);
    std::fs::create_dir_all(&dir).expect("dir");
    let p = lab.public()[0].clone();
    let p_ips = p_stack.ips(p.ip, lab.public6()[0]);
    let (p_node, p_id) = start_node(&binary, &dir, &p.netns, &p_ips, None);
    let mut nodes = vec![p_node];
    status_until(&p.netns, |_| true);
    let private_started = std::time::Instant::now();
    let (mut ids, mut private_ips) = (Vec::new(), Vec::new());
    for (host, stack) in lab.private().iter().zip(stacks) {
        let ips = stack.ips(host.host.ip, host.ip6);
        let (node, id) = start_node(&binary, &dir, &host.host.netns, &ips, Some(&stack.seed(&p_id)));
        nodes.push(node);
        ids.push(id);
        private_ips.push(ips);
    }
    LabSwarm {
        nodes,
        p,
        p_ips,
        p_id,
        private: lab.private().to_vec(),
        private_ips,
        ids,
        private_started,
        dir,
        _lab: lab,
    }
}

impl LabSwarm {
    /// The log of the node in `netns`.
    fn log_of(&self, netns: &str) -> std::path::PathBuf {
        self.dir.join(format!("{netns}.log"))
    }
}

impl Drop for LabSwarm {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.kill();
            let _ = node.wait();
        }
    }
}

/// `GET /v1/status` of the node in `netns`, if it answers.
fn status(netns: &str) -> Option<serde_json::Value> {
    api(netns, "GET", "/v1/status", None)
}

/// Polls `netns`'s status until `done` holds (up to 60 s); returns the last one.
fn status_until(netns: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..300 {
        if let Some(now) = status(netns) {
            if done(&now) {
                return now;
            }
            last = now;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{netns}: not within 60 s; last status {last}");
}

#[test]
fn a_node_behind_nat_joins_by_name_and_knows_it_is_private_and_the_public_one_that_it_is_public() {
    let swarm = lab_swarm("nat-lab", &["a"], |_| {});
    let (p, p_id, a, a_id) = (&swarm.p, &swarm.p_id, &swarm.private[0], &swarm.ids[0]);
    let seed = format!("/dns4/p.lab/tcp/4001/p2p/{p_id}");

    let peers_of = |s: &serde_json::Value| -> Vec<String> {
        s["connectedPeers"].as_array().into_iter().flatten().filter_map(|p| p.as_str().map(str::to_owned)).collect()
    };
    let a_status = status_until(&a.host.netns, |s| s["reachability"] == "private");
    assert!(peers_of(&a_status).contains(p_id), "A joined P through {seed}: {a_status}");
    assert_eq!(a_status["externalAddrs"], serde_json::json!([]), "nothing of A's was dialed back: {a_status}");
    let p_status = status_until(&p.netns, |s| s["reachability"] == "public");
    assert!(peers_of(&p_status).contains(a_id), "P sees A: {p_status}");
    let p_listen = format!("/ip4/{}/tcp/4001", p.ip);
    assert_eq!(p_status["externalAddrs"], serde_json::json!([p_listen]), "{p_status}");
}

/// Publishes stream `id` (one Opus track, SSRC 4242, payload type 111) at
/// the node in `netns`; returns where to send its RTP.
fn publish(netns: &str, id: &str) -> (String, u16) {
    let tracks = serde_json::json!({"tracks": [{"kind": "audio", "codec": "opus", "payloadType": 111, "ssrc": 4242}]});
    let answer = api(netns, "PUT", &format!("/v1/streams/{id}/rtp-ingest"), Some(&tracks));
    let answer = answer.unwrap_or_else(|| panic!("{netns}: publishing {id} failed"));
    let ip = answer["ip"].as_str().expect("ingest ip").to_owned();
    let port = answer["port"].as_u64().and_then(|p| u16::try_from(p).ok()).expect("ingest port");
    (ip, port)
}

/// Sends `count` RTP packets (SSRC 4242, payload type 111, 20 ms apart) to
/// `ip:port` (IPv4 or IPv6) from `netns`; each payload is `MFLD` and the
/// packet's index.
const SEND_RTP: &str = "import socket,struct,sys,time\n\
s=socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET,socket.SOCK_DGRAM)\n\
for i in range(int(sys.argv[3])):\n    \
s.sendto(struct.pack('!BBHII',0x80,111,i,i*960,4242)+b'MFLD'+struct.pack('!I',i)+bytes(92),(sys.argv[1],int(sys.argv[2])))\n    \
time.sleep(0.02)";

/// Counts the distinct packets [`SEND_RTP`] sent that reach `ip:port` in
/// `netns` (by the index in their payload, past any CSRCs and header
/// extension), until 3 s pass without one after the first, or `argv[3]`
/// seconds in all; prints the count.
const COUNT_RTP: &str = "import socket,struct,sys,time\n\
s=socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET,socket.SOCK_DGRAM)\n\
s.bind((sys.argv[1],int(sys.argv[2])))\n\
end=time.time()+float(sys.argv[3])\n\
seen=set()\n\
first=0\n\
while time.time()<end:\n    \
s.settimeout(3 if seen else max(0.1,end-time.time()))\n    \
try:\n        d=s.recv(2048)\n    \
except socket.timeout:\n        \
if seen: break\n        continue\n    \
if len(d)<12 or d[0]>>6!=2: continue\n    \
o=12+4*(d[0]&15)\n    \
if d[0]&16 and len(d)>=o+4: o+=4+4*struct.unpack('!H',d[o+2:o+4])[0]\n    \
if d[o:o+4]==b'MFLD' and len(d)>=o+8:\n        \
seen.add(struct.unpack('!I',d[o+4:o+8])[0])\n        \
first=first or time.time()\n\
print(len(seen),min(seen) if seen else 0,first if seen else 0)";

/// Starts counting RTP at `ip:port` in `netns` (see [`COUNT_RTP`]).
fn count_rtp(netns: &str, ip: impl Into<IpAddr>, port: u16) -> Child {
    let child = python(netns, COUNT_RTP, &[&ip.into().to_string(), &port.to_string(), "40"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start an RTP counter");
    std::thread::sleep(Duration::from_millis(300));
    child
}

/// What an RTP counter saw: how many packets, the lowest index among them,
/// and when the first arrived (seconds since the epoch).
fn counted_from(child: Child) -> (usize, usize, f64) {
    let out = child.wait_with_output().expect("RTP counter");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let fields: Vec<&str> = text.split_whitespace().collect();
    let count = fields.first().and_then(|f| f.parse().ok()).expect("a count");
    let lowest = fields.get(1).and_then(|f| f.parse().ok()).expect("a lowest index");
    let first = fields.get(2).and_then(|f| f.parse().ok()).expect("a first arrival");
    (count, lowest, first)
}

fn counted(child: Child) -> usize {
    counted_from(child).0
}

/// The sum of `name`'s samples whose labels contain `labels`, in the
/// `/metrics` of the node in `netns`.
fn metric(netns: &str, name: &str, labels: &str) -> f64 {
    let out = Command::new("ip")
        .args(["netns", "exec", netns, "curl", "-sf", "--max-time", "5", "-H"])
        .arg(format!("Authorization: Bearer {TOKEN}"))
        .arg("http://127.0.0.1:7700/metrics")
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| line.starts_with(name) && line.contains(labels))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn epoch_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64()
}

/// Finds stream `id` from the node in `netns` until an answer names
/// `origin` among its providers (up to 30 s); returns how long it took.
fn find_until_named(netns: &str, id: &str, origin: &str) -> Duration {
    let started = std::time::Instant::now();
    let mut last = None;
    while started.elapsed() < Duration::from_secs(30) {
        let found = api(netns, "GET", &format!("/v1/streams/{id}"), None);
        if found.as_ref().is_some_and(|f| f.to_string().contains(origin)) {
            return started.elapsed();
        }
        last = found;
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!("{netns}: {id} not found at {origin} within 30 s; last answer {last:?}");
}

fn relayed_addrs(status: &serde_json::Value) -> Vec<String> {
    status["relayedAddrs"].as_array().into_iter().flatten().filter_map(|a| a.as_str().map(str::to_owned)).collect()
}

/// Packets [`stream_across`] sends.
const SENT: usize = 300;

/// Publishes `stream` at the node in `from`, takes it out at each of `to`
/// (namespace, IP to receive at, the egress path expected), then sends
/// [`SENT`] RTP packets: how many reached each.
fn stream_across(from: &str, stream: &str, to: &[(&str, IpAddr, serde_json::Value)]) -> Vec<usize> {
    let (ingest_ip, ingest_port) = publish(from, stream);
    let mut counters = Vec::new();
    for (netns, ip, path) in to {
        let counter = count_rtp(netns, *ip, 5004);
        let target = serde_json::json!({"ip": ip.to_string(), "port": 5004});
        let egress = api(netns, "POST", &format!("/v1/streams/{stream}/rtp-egress"), Some(&target))
            .unwrap_or_else(|| panic!("{netns}: no egress of {stream}"));
        assert_eq!(&egress["path"], path, "{netns}: the path of {stream}: {egress}");
        counters.push(counter);
    }
    // The pipes are up once each private node's first packet reached its peer.
    std::thread::sleep(Duration::from_secs(1));
    let sent =
        python(from, SEND_RTP, &[&ingest_ip, &ingest_port.to_string(), &SENT.to_string()]).status().expect("send RTP");
    assert!(sent.success());
    let got: Vec<usize> = counters.into_iter().map(counted).collect();
    for ((netns, _, _), got) in to.iter().zip(&got) {
        eprintln!("{stream} at {netns}: {got} of {SENT} RTP packets");
        assert!(got * 100 >= SENT * 99, "{netns}: {got} of {SENT} packets of {stream} arrived (99 % wanted)");
    }
    got
}

#[test]
fn nodes_behind_two_nats_reach_each_other_through_the_public_one_and_find_each_others_streams() {
    let swarm = lab_swarm("nat-lab-relay", &["a", "c"], |_| {});
    let (a, c) = (&swarm.private[0], &swarm.private[1]);
    let (a_id, c_id) = (&swarm.ids[0], &swarm.ids[1]);

    // Each private node holds a slot on P and gives out the circuit through it.
    private_behind_p_and_p_public(&swarm);

    publish(&a.host.netns, "a-cam");
    publish(&c.host.netns, "c-cam");
    let c_found_a = find_until_named(&c.host.netns, "a-cam", a_id);
    let a_found_c = find_until_named(&a.host.netns, "c-cam", c_id);
    eprintln!("C found A's stream in {c_found_a:?}, A found C's in {a_found_c:?}");
    // Whether A and C, reaching each other through P, also punched a hole
    // (DCUtR): a figure, not a requirement (media never needs it).
    std::thread::sleep(Duration::from_secs(2));
    for host in [&a.host, &c.host] {
        let log = std::fs::read_to_string(swarm.log_of(&host.netns)).unwrap_or_default();
        let punched = log.lines().filter(|l| l.contains("hole punched")).count();
        let failed: Vec<&str> = log.lines().filter(|l| l.contains("hole punch failed")).collect();
        eprintln!("figure: {} hole punches succeeded, {} failed: {:?}", punched, failed.len(), failed.first());
    }
}

#[test]
fn a_stream_of_the_public_node_is_consumed_behind_two_nats_the_private_side_sending_first() {
    let swarm = lab_swarm("nat-lab-media", &["a", "c"], |_| {});
    let (p, p_id, a, c) = (&swarm.p, &swarm.p_id, &swarm.private[0], &swarm.private[1]);
    let (a_id, c_id) = (&swarm.ids[0], &swarm.ids[1]);
    for host in [&a.host, &c.host] {
        status_until(&host.netns, |s| s["reachability"] == "private");
    }
    status_until(&p.netns, |s| s["reachability"] == "public");

    // Straight from P: the private side sends first.
    stream_across(
        &p.netns,
        "p-cam",
        &[
            (&a.host.netns, a.host.ip.into(), serde_json::json!([p_id, a_id])),
            (&c.host.netns, c.host.ip.into(), serde_json::json!([p_id, c_id])),
        ],
    );
}

#[test]
fn a_stream_published_behind_one_nat_reaches_a_node_behind_another_through_the_public_one() {
    let swarm = lab_swarm("nat-lab-relayed-media", &["a", "c"], |_| {});
    let (p, p_id, a, c) = (&swarm.p, &swarm.p_id, &swarm.private[0], &swarm.private[1]);
    let (a_id, c_id) = (&swarm.ids[0], &swarm.ids[1]);
    for host in [&a.host, &c.host] {
        status_until(&host.netns, |s| s["reachability"] == "private" && !relayed_addrs(s).is_empty());
    }
    eprintln!(
        "figure: A and C started, joined, found private and reachable through P in {:?}",
        swarm.private_started.elapsed()
    );

    // A to C through P.
    stream_across(&a.host.netns, "a-cam", &[(&c.host.netns, c.host.ip.into(), serde_json::json!([a_id, p_id, c_id]))]);

    // A stream already flowing at A, consumed cold at C: P fetches it and
    // pipes it on; from the first packet on, every packet arrives.
    let (live_ip, live_port) = publish(&a.host.netns, "a-live");
    const LIVE: usize = 500;
    let mut sender = python(&a.host.netns, SEND_RTP, &[&live_ip, &live_port.to_string(), &LIVE.to_string()])
        .spawn()
        .expect("send RTP");
    let counter = count_rtp(&c.host.netns, c.host.ip, 5006);
    std::thread::sleep(Duration::from_millis(500));
    let asked = epoch_now();
    let target = serde_json::json!({"ip": c.host.ip.to_string(), "port": 5006});
    let egress = api(&c.host.netns, "POST", "/v1/streams/a-live/rtp-egress", Some(&target))
        .unwrap_or_else(|| panic!("C: no egress of A's live stream"));
    let answered = epoch_now() - asked;
    assert_eq!(egress["path"], serde_json::json!([a_id, p_id, c_id]), "through P: {egress}");
    assert!(sender.wait().expect("sender").success());
    let (got, lowest, first) = counted_from(counter);
    let after_first = LIVE - lowest;
    eprintln!(
        "figure: cold consume across both NATs: egress answered in {:.0} ms, first packet {:.0} ms after the request; {got} of the {after_first} packets sent from then on",
        answered * 1000.0,
        (first - asked) * 1000.0
    );
    assert!(got * 100 >= after_first * 99, "{got} of {after_first} packets arrived after the first");
    let relayed_in = metric(&p.netns, "mafalda_p2p_bytes_total", "protocol=\"relay\",direction=\"in\"");
    let relayed_out = metric(&p.netns, "mafalda_p2p_bytes_total", "protocol=\"relay\",direction=\"out\"");
    let all_in = metric(&p.netns, "mafalda_p2p_bytes_total", "direction=\"in\"");
    eprintln!(
        "figure: P carried {relayed_in} bytes in and {relayed_out} out on circuits ({all_in} bytes in over libp2p in all); media never crosses a circuit"
    );
}

#[test]
fn a_node_behind_a_one_to_one_nat_learns_the_address_peers_reach_it_at_and_its_media_announces_it() {
    // No --announced-ip: F sees only its LAN address.
    let swarm = lab_swarm("nat-lab-forwarded", &["f"], |lab| lab.forward_all(0).expect("a 1:1 NAT in front of F"));
    let (p, p_id, f, f_id) = (&swarm.p, &swarm.p_id, &swarm.private[0], &swarm.ids[0]);
    let mapped = format!("/ip4/{}/tcp/4001", f.wan_ip);
    let f_status = status_until(&f.host.netns, |s| {
        s["externalAddrs"].as_array().is_some_and(|a| a.iter().any(|x| x.as_str() == Some(mapped.as_str())))
    });
    assert_eq!(f_status["reachability"], "public", "F is reachable at its router's address: {f_status}");

    // Media both ways, straight: F's pipe ends announce the router's address.
    stream_across(&f.host.netns, "f-cam", &[(&p.netns, p.ip.into(), serde_json::json!([f_id, p_id]))]);
    stream_across(&p.netns, "p-cam", &[(&f.host.netns, f.host.ip.into(), serde_json::json!([p_id, f_id]))]);
}

/// Waits until each private node of `swarm` is private, with no address
/// dialed back and reachable through P only, and P is public; returns P's
/// status.
fn private_behind_p_and_p_public(swarm: &LabSwarm) -> serde_json::Value {
    for (host, id) in swarm.private.iter().zip(&swarm.ids) {
        let netns = &host.host.netns;
        let now = status_until(netns, |s| s["reachability"] == "private" && !relayed_addrs(s).is_empty());
        let through_p = format!("/p2p/{}/p2p-circuit", swarm.p_id);
        assert!(relayed_addrs(&now).iter().all(|r| r.contains(&through_p)), "{netns}: through P only: {now}");
        assert_eq!(now["externalAddrs"], serde_json::json!([]), "{id}: nothing dialed back: {now}");
    }
    status_until(&swarm.p.netns, |s| s["reachability"] == "public")
}

/// The acceptance again with every node on IPv6 alone: A and C behind NAT66
/// join through `/dns6/p.lab/…`, find each other's streams, A's stream
/// reaches C through P, and P's reaches both straight.
#[test]
fn on_ipv6_alone_nodes_behind_two_nats_find_each_other_and_media_flows_through_and_from_the_public_one() {
    let swarm = lab_swarm_stacked("nat-lab-ipv6", Stack::V6, &[Stack::V6, Stack::V6], &["a", "c"], |_| {});
    let (p, p_id, a, c) = (&swarm.p, &swarm.p_id, &swarm.private[0], &swarm.private[1]);
    let (a_id, c_id) = (&swarm.ids[0], &swarm.ids[1]);
    let p_status = private_behind_p_and_p_public(&swarm);
    let p_listen = format!("/ip6/{}/tcp/4001", swarm.p_ips[0]);
    assert_eq!(p_status["externalAddrs"], serde_json::json!([p_listen]), "P public over IPv6: {p_status}");
    eprintln!(
        "figure (IPv6): A and C joined, private and reachable through P in {:?}",
        swarm.private_started.elapsed()
    );

    publish(&a.host.netns, "a-cam");
    publish(&c.host.netns, "c-cam");
    let c_found_a = find_until_named(&c.host.netns, "a-cam", a_id);
    let a_found_c = find_until_named(&a.host.netns, "c-cam", c_id);
    eprintln!("IPv6: C found A's stream in {c_found_a:?}, A found C's in {a_found_c:?}");

    stream_across(&a.host.netns, "a-media", &[(&c.host.netns, ip6_of(c), serde_json::json!([a_id, p_id, c_id]))]);
    stream_across(
        &p.netns,
        "p-cam",
        &[
            (&a.host.netns, ip6_of(a), serde_json::json!([p_id, a_id])),
            (&c.host.netns, ip6_of(c), serde_json::json!([p_id, c_id])),
        ],
    );
}

fn ip6_of(host: &PrivateHost) -> IpAddr {
    host.ip6.into()
}

/// A dual-stack P pipes with an IPv6-only A and an IPv4-only C, both behind
/// NAT, each in its own family: A's stream reaches C through P (in over
/// IPv6, out over IPv4) and C's reaches A; P's reaches both straight.
#[test]
fn a_dual_stack_public_node_carries_media_between_an_ipv6_only_and_an_ipv4_only_node_behind_nat() {
    let swarm = lab_swarm_stacked("nat-lab-dual", Stack::Dual, &[Stack::V6, Stack::V4], &["a", "c"], |_| {});
    let (p, p_id, a, c) = (&swarm.p, &swarm.p_id, &swarm.private[0], &swarm.private[1]);
    let (a_id, c_id) = (&swarm.ids[0], &swarm.ids[1]);
    assert_eq!(swarm.private_ips[0], [ip6_of(a)], "A is on IPv6 alone");
    assert_eq!(swarm.private_ips[1], [IpAddr::from(c.host.ip)], "C is on IPv4 alone");
    private_behind_p_and_p_public(&swarm);

    let (a_at, c_at) = (ip6_of(a), IpAddr::from(c.host.ip));
    stream_across(&a.host.netns, "a-cam", &[(&c.host.netns, c_at, serde_json::json!([a_id, p_id, c_id]))]);
    stream_across(&c.host.netns, "c-cam", &[(&a.host.netns, a_at, serde_json::json!([c_id, p_id, a_id]))]);
    stream_across(
        &p.netns,
        "p-cam",
        &[
            (&a.host.netns, a_at, serde_json::json!([p_id, a_id])),
            (&c.host.netns, c_at, serde_json::json!([p_id, c_id])),
        ],
    );
}

#[test]
fn a_seed_whose_name_does_not_resolve_is_retried_and_said_so_and_nothing_breaks() {
    let binary = processes::node_binary(!cfg!(debug_assertions)).expect("build mafalda-node");
    let _ = netlab::cleanup_stale();
    let lab = NatLab::create(&["x"], &[]).expect("a NAT lab (needs root)");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/nat-lab-no-name");
    std::fs::create_dir_all(&dir).expect("dir");
    let x = lab.public()[0].clone();
    let nowhere = format!("/dns4/nowhere.lab/tcp/4001/p2p/{}", mafalda_swarm::PeerId::random());
    let (mut node, _) = start_node(&binary, &dir, &x.netns, &[x.ip.into()], Some(&nowhere));
    // It runs, answers, and has nobody.
    let now = status_until(&x.netns, |s| s["peerId"].is_string());
    assert_eq!(now["connectedPeers"], serde_json::json!([]), "{now}");
    // The resolver gives up on the name (its timeouts), and the log says so.
    let log_path = dir.join(format!("{}.log", x.netns));
    let said = |log: &str| log.lines().any(|l| l.contains("bootstrap peer unreachable") && l.contains("nowhere.lab"));
    let started = std::time::Instant::now();
    let mut log = String::new();
    while started.elapsed() < Duration::from_secs(40) && !said(&log) {
        std::thread::sleep(Duration::from_millis(500));
        log = std::fs::read_to_string(&log_path).unwrap_or_default();
    }
    assert!(node.try_wait().expect("wait").is_none(), "the node keeps running");
    let _ = node.kill();
    let _ = node.wait();
    assert!(said(&log), "the log says which seed cannot be reached and why:\n{log}");
    eprintln!("the unresolvable seed was reported {:?} after start", started.elapsed());
    assert!(!log.contains("panicked"), "{log}");
}
