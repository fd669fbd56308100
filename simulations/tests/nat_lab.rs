//! The NAT lab behaves like the networks it stands for: a host behind its
//! router reaches the public host by name and shows up as the router's
//! address; nothing reaches a host behind a router unless it spoke first;
//! nothing is left behind. Needs root (network namespaces, iptables).

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mafalda_simulations::netlab::nat::{NETNS_ETC, NatLab};
use mafalda_simulations::netlab::{self, LabNode};

/// Python in `netns`: `code` with `sys.argv[1:]` = `args`.
fn python(netns: &str, code: &str, args: &[&str]) -> Command {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", netns, "python3", "-c", code]).args(args);
    command
}

/// Accepts one TCP connection on `ip:port` in `netns` and prints the peer's address.
const ACCEPT_ONE: &str = "import socket,sys\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
s.bind((sys.argv[1],int(sys.argv[2])))\ns.listen(1)\ns.settimeout(10)\nc,a=s.accept()\nprint(a[0])";

/// Connects to `host:port` (1 s timeout); prints `ok` or the error's name.
const CONNECT: &str = "import socket,sys\ntry:\n    socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=1).close()\n    print('ok')\n\
except Exception as e:\n    print(type(e).__name__)";

fn listen_once(node: &LabNode, port: u16) -> Child {
    let child = python(&node.netns, ACCEPT_ONE, &[&node.ip.to_string(), &port.to_string()])
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
    let resolved =
        Command::new("ip").args(["netns", "exec", &a.host.netns, "getent", "hosts", "p.lab"]).output().expect("getent");
    let resolved = String::from_utf8_lossy(&resolved.stdout).to_string();
    assert!(resolved.starts_with(&format!("{} ", p.ip)), "p.lab resolves to P ({}) inside A: {resolved:?}", p.ip);

    // A reaches P, which sees A's router, not A.
    let listener = listen_once(&p, 5000);
    assert_eq!(connect(&a.host.netns, "p.lab", 5000), "ok", "A reaches P by name");
    let seen = listener.wait_with_output().expect("listener");
    let seen: Ipv4Addr = String::from_utf8_lossy(&seen.stdout).trim().parse().expect("the peer's address");
    assert_eq!(seen, a.wan_ip, "P sees A's connection come from A's router");

    // Nothing reaches A first: not P at A's router, nor P at A itself, nor C.
    let mut listener = listen_once(&a.host, 6000);
    assert_ne!(connect(&p.netns, &a.wan_ip.to_string(), 6000), "ok", "no port forward at A's router");
    assert_ne!(connect(&p.netns, &a.host.ip.to_string(), 6000), "ok", "A's LAN is not routed from outside");
    assert_ne!(connect(&c.host.netns, &a.wan_ip.to_string(), 6000), "ok", "C cannot reach A either");
    assert_eq!(connect(&a.host.netns, &a.host.ip.to_string(), 6000), "ok", "the listener was there all along");
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
