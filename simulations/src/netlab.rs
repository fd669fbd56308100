//! A network lab on this machine: one Linux network namespace per node, each
//! joined to a bridge in the root namespace by a veth pair, one IPv4 address
//! per node, so nodes run as separate processes that talk over real
//! interfaces (no loopback shortcut) and the kernel counts each one's traffic.
//!
//! Addresses come from 10.213.0.0/16, split into 16 blocks of /20 so that
//! several labs (a test and a long run) can exist at once: the bridge takes
//! the block's `.1` (the runner reaches the nodes' APIs through it), node `i`
//! the block's address `i + 2`. The nodes get no default route: nothing in the
//! lab reaches any other network.
//!
//! Neighbours are static: every namespace gets a permanent neighbour entry
//! for every other node and the bridge, and the root namespace one for every
//! node, with MAC addresses the lab chooses. The kernel's neighbour table is
//! shared by all namespaces and its `gc_thresh3` (1024 by default) would
//! overflow from about 32 fully meshed nodes on ("neighbor table overflow",
//! packets dropped); permanent entries do not count against it, and no ARP
//! is sent.
//!
//! Everything a lab creates carries its run's prefix `mfs<4 hex digits>`:
//! the bridge `mfsXXXXbr`, namespaces `mfsXXXX-<i>`, host-side veths
//! `mfsXXXXv<i>` (the namespace side is `eth0`). A claim file in
//! [`STATE_DIR`] holds the block, the owning process's id and its start time. [`Lab`] removes
//! everything on drop (also when setup fails half-way); [`cleanup_stale`]
//! removes what runs that are no longer alive left behind (a killed runner),
//! killing processes still inside their namespaces. Every command that fails
//! is reported with its command line and stderr ([`LabError::Command`]).

pub mod accounting;
/// Public hosts and hosts each behind its own NAT router (issue 19's lab).
pub mod nat;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

/// Where labs keep their claim files (one per address block in use).
pub const STATE_DIR: &str = "/run/mafalda-netlab";

/// Most nodes in one lab (a /20 block, minus the bridge and broadcast).
pub const MAX_LAB_NODES: usize = 4000;

/// Address blocks (/20) in 10.213.0.0/16.
const BLOCKS: u8 = 16;

/// Why the lab could not be set up or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    /// Not running as root.
    #[error(
        "the network lab needs root (it creates network namespaces, veth pairs, a bridge and iptables rules); \
         run it as root, e.g. with sudo"
    )]
    NotRoot,
    /// A command could not be started.
    #[error("cannot run `{command}`: {source} (scripts/setup.sh installs iproute2 and iptables)")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// A command exited with an error.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// Every address block is taken.
    #[error(
        "all {BLOCKS} address blocks of 10.213.0.0/16 are in use by other labs; `mafalda-sim --cleanup` removes those of dead runs"
    )]
    NoFreeBlock,
    /// Too many or too few nodes.
    #[error("a lab holds 1-{MAX_LAB_NODES} nodes, not {0}")]
    Size(usize),
    /// A NAT lab of no host, or of more than [`nat::MAX_HOSTS`] of a kind.
    #[error(
        "a NAT lab holds 1-{} public and 0-{} private hosts (at least one host), not {public} and {private}",
        nat::MAX_HOSTS,
        nat::MAX_HOSTS
    )]
    NatSize {
        /// Public hosts asked for.
        public: usize,
        /// Private hosts asked for.
        private: usize,
    },
    /// A host name a NAT lab cannot use (1-8 lowercase letters or digits, each once).
    #[error("lab host name {0:?}: 1-8 lowercase letters or digits, each name once")]
    Name(String),
    /// The claim file could not be written or read.
    #[error("{path}: {source}")]
    State {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// One node's place in the lab.
#[derive(Debug, Clone)]
pub struct LabNode {
    /// Index in the lab.
    pub index: usize,
    /// Its network namespace.
    pub netns: String,
    /// Its address (on `eth0` inside the namespace).
    pub ip: Ipv4Addr,
}

impl LabNode {
    /// A command that runs `program` inside the node's namespace.
    pub fn command(&self, program: &Path) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.netns]).arg(program);
        command
    }

    /// Runs `args` in the node's namespace and returns its stdout.
    pub fn output(&self, args: &[&str]) -> Result<String, LabError> {
        let mut full = vec!["ip", "netns", "exec", self.netns.as_str()];
        full.extend_from_slice(args);
        sh(&full)
    }
}

/// A lab: bridge, namespaces, veths and accounting rules, removed on drop.
#[derive(Debug)]
pub struct Lab {
    run: String,
    block: u8,
    bridge: String,
    nodes: Vec<LabNode>,
    claim: PathBuf,
}

impl Lab {
    /// Creates a lab of `nodes` namespaces with `rules` (iptables-restore input,
    /// see [`accounting::rules`]) loaded in each; `parallel` commands at once.
    pub fn create(nodes: usize, rules: &str, parallel: usize) -> Result<Self, LabError> {
        check_root()?;
        if !(1..=MAX_LAB_NODES).contains(&nodes) {
            return Err(LabError::Size(nodes));
        }
        let run = format!("mfs{:04x}", rand::random::<u16>());
        let (block, claim) = claim_block(&run)?;
        let mut lab = Self { bridge: format!("{run}br"), run, block, nodes: Vec::new(), claim };
        // From here on, dropping `lab` removes whatever was made.
        let gateway = lab.gateway();
        sh(&["ip", "link", "add", &lab.bridge, "address", &lab.bridge_mac(), "type", "bridge"])?;
        sh(&["ip", "addr", "add", &format!("{gateway}/20"), "dev", &lab.bridge])?;
        sh(&["ip", "link", "set", &lab.bridge, "up"])?;
        lab.nodes = (0..nodes)
            .map(|index| LabNode { index, netns: format!("{}-{index}", lab.run), ip: lab.address(index) })
            .collect();
        let started = Instant::now();
        // The root namespace's side in one batch: namespaces, veth pairs
        // (the far end moved into the namespace as eth0), bridge ports.
        let mut batch = String::new();
        for node in &lab.nodes {
            let (veth, mac, ns) = (lab.veth(node.index), lab.mac(node.index), &node.netns);
            batch += &format!("netns add {ns}\nlink add {veth} type veth peer name eth0 address {mac} netns {ns}\n");
            batch += &format!("link set {veth} master {} up\n", lab.bridge);
            batch += &format!("neigh add {} lladdr {mac} dev {} nud permanent\n", node.ip, lab.bridge);
        }
        sh_in(&["ip", "-batch", "-"], &batch)?;
        // Each namespace's side: address, links up, neighbours, accounting rules.
        let mut neighbours = format!("neigh add {gateway} lladdr {} dev eth0 nud permanent\n", lab.bridge_mac());
        for node in &lab.nodes {
            neighbours += &format!("neigh add {} lladdr {} dev eth0 nud permanent\n", node.ip, lab.mac(node.index));
        }
        let chunk = nodes.div_ceil(parallel.max(1));
        std::thread::scope(|scope| {
            let handles: Vec<_> = lab
                .nodes
                .chunks(chunk)
                .map(|part| scope.spawn(|| part.iter().try_for_each(|node| set_up(node, &neighbours, rules))))
                .collect();
            handles.into_iter().try_for_each(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(LabError::Command {
                        command: "lab set-up thread".into(),
                        status: "panicked".into(),
                        stderr: String::new(),
                    })
                })
            })
        })?;
        info!(run = %lab.run, nodes, bridge = %lab.bridge, gateway = %gateway, took = ?started.elapsed(), "network lab up");
        Ok(lab)
    }

    fn veth(&self, index: usize) -> String {
        format!("{}v{index}", self.run)
    }

    /// Node `index`'s MAC address (locally administered, unique per block).
    fn mac(&self, index: usize) -> String {
        let [_, a, b, c] = u32::try_from(index).unwrap_or(u32::MAX).to_be_bytes();
        format!("02:13:{:02x}:{a:02x}:{b:02x}:{c:02x}", self.block)
    }

    fn bridge_mac(&self) -> String {
        format!("02:13:{:02x}:ff:ff:ff", self.block)
    }

    /// The run's prefix, `mfsXXXX`.
    pub fn run_id(&self) -> &str {
        &self.run
    }

    /// The bridge's address, through which the root namespace reaches the nodes.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.block * 16, 1)
    }

    fn address(&self, index: usize) -> Ipv4Addr {
        let host = u32::try_from(index + 2).unwrap_or(u32::MAX);
        Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 213, self.block * 16, 0)) + host)
    }

    /// The nodes' places.
    pub fn nodes(&self) -> &[LabNode] {
        &self.nodes
    }

    fn tear_down(&mut self) {
        let started = Instant::now();
        let made: Vec<&LabNode> =
            self.nodes.iter().filter(|n| Path::new("/run/netns").join(&n.netns).exists()).collect();
        let killed: usize = made.iter().map(|n| kill_inside(&n.netns)).sum();
        // Deleting the host end of a veth pair deletes both ends at once;
        // namespace destruction would do it too, but later, in the background.
        let mut batch = String::new();
        for node in &made {
            if link_exists(&self.veth(node.index)) {
                batch += &format!("link del {}\n", self.veth(node.index));
            }
            batch += &format!("netns del {}\n", node.netns);
        }
        if !batch.is_empty()
            && let Err(error) = sh_in(&["ip", "-force", "-batch", "-"], &batch)
        {
            warn!(%error, "cannot remove every namespace and veth of the lab");
        }
        if link_exists(&self.bridge)
            && let Err(error) = sh(&["ip", "link", "del", &self.bridge])
        {
            warn!(%error, "cannot remove the lab's bridge");
        }
        let _ = std::fs::remove_file(&self.claim);
        info!(run = %self.run, killed, took = ?started.elapsed(), "network lab removed");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.tear_down();
    }
}

/// A node's side: address, links up, permanent neighbours (all but itself:
/// `neighbours` lists every node), accounting rules.
fn set_up(node: &LabNode, neighbours: &str, rules: &str) -> Result<(), LabError> {
    let own = format!(" {} lladdr", node.ip);
    let mut batch = format!("addr add {}/20 dev eth0\nlink set eth0 up\nlink set lo up\n", node.ip);
    batch.extend(neighbours.lines().filter(|l| !l.contains(&own)).map(|l| format!("{l}\n")));
    sh_in(&["ip", "-n", &node.netns, "-batch", "-"], &batch)?;
    sh_in(&["ip", "netns", "exec", &node.netns, "iptables-restore", "-w"], rules)?;
    Ok(())
}

/// Fails with [`LabError::NotRoot`] unless the effective user is root.
pub fn check_root() -> Result<(), LabError> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|id| id.parse::<u32>().ok());
    if euid == Some(0) { Ok(()) } else { Err(LabError::NotRoot) }
}

/// Claims a free address block with a claim file (created exclusively, so two
/// labs starting at once never share a block).
fn claim_block(run: &str) -> Result<(u8, PathBuf), LabError> {
    let state = |path: &Path, source| LabError::State { path: path.to_owned(), source };
    std::fs::create_dir_all(STATE_DIR).map_err(|e| state(Path::new(STATE_DIR), e))?;
    for block in 0..BLOCKS {
        let path = Path::new(STATE_DIR).join(format!("block-{block}"));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut file) => {
                let pid = std::process::id();
                let started = process_start(pid).unwrap_or_default();
                writeln!(file, "{run} {pid} {started}").map_err(|e| state(&path, e))?;
                return Ok((block, path));
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(state(&path, error)),
        }
    }
    Err(LabError::NoFreeBlock)
}

/// What [`cleanup_stale`] removed.
#[derive(Debug, Default)]
pub struct Cleaned {
    /// Runs whose leftovers were removed.
    pub runs: Vec<String>,
    /// Namespaces removed.
    pub namespaces: usize,
    /// Links removed (bridges and veths).
    pub links: usize,
    /// Processes killed inside those namespaces.
    pub processes: usize,
}

/// Removes what earlier labs left behind: namespaces and links of runs whose
/// owner is gone (processes inside them are killed first), and their claim
/// files. Labs of live runs (the pid and start time in their claim file are a
/// running process's) are left alone.
pub fn cleanup_stale() -> Result<Cleaned, LabError> {
    check_root()?;
    let mut live = BTreeSet::new();
    let mut cleaned = Cleaned::default();
    let claims = std::fs::read_dir(STATE_DIR).into_iter().flatten().flatten();
    for claim in claims {
        let text = std::fs::read_to_string(claim.path()).unwrap_or_default();
        let mut words = text.split_whitespace();
        let (run, pid, started) = (words.next().unwrap_or(""), words.next(), words.next());
        let alive = pid.and_then(|p| p.parse::<u32>().ok()).and_then(process_start);
        if alive.is_some() && alive.as_deref() == started {
            live.insert(run.to_owned());
        } else {
            let _ = std::fs::remove_file(claim.path());
        }
    }
    let mut stale = BTreeSet::new();
    for netns in lab_namespaces()? {
        let run = netns.split('-').next().unwrap_or("").to_owned();
        if live.contains(&run) {
            continue;
        }
        cleaned.processes += kill_inside(&netns);
        let _ = std::fs::remove_dir_all(Path::new(nat::NETNS_ETC).join(&netns));
        match sh(&["ip", "netns", "del", &netns]) {
            Ok(_) => cleaned.namespaces += 1,
            Err(error) => warn!(%error, "cannot remove a stale lab namespace"),
        }
        stale.insert(run);
    }
    for link in lab_links()? {
        let run = link[..7.min(link.len())].to_owned();
        if live.contains(&run) {
            continue;
        }
        if sh(&["ip", "link", "del", &link]).is_ok() {
            cleaned.links += 1;
        }
        stale.insert(run);
    }
    cleaned.runs = stale.into_iter().collect();
    Ok(cleaned)
}

/// When process `pid` started (field 22 of `/proc/<pid>/stat`), if it is
/// running (not a zombie): with the pid, it tells a lab's runner from a later
/// process that got the same pid.
fn process_start(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    (!matches!(fields.first(), Some(&"Z") | Some(&"X"))).then(|| fields.get(19).map(|s| (*s).to_owned()))?
}

/// Every namespace and link with a lab prefix (`mfs` + 4 hex digits), for
/// checking that nothing was left behind.
pub fn leftovers() -> Result<Vec<String>, LabError> {
    let mut all = lab_namespaces()?;
    all.extend(lab_links()?);
    Ok(all)
}

fn is_lab_name(name: &str) -> bool {
    name.len() > 7
        && name.starts_with("mfs")
        && name[3..7].bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn lab_namespaces() -> Result<Vec<String>, LabError> {
    let list = sh(&["ip", "netns", "list"])?;
    Ok(list.lines().filter_map(|l| l.split_whitespace().next()).filter(|n| is_lab_name(n)).map(Into::into).collect())
}

fn lab_links() -> Result<Vec<String>, LabError> {
    let list = sh(&["ip", "-o", "link", "show"])?;
    Ok(list
        .lines()
        .filter_map(|line| line.split(':').nth(1))
        .map(|name| name.trim().split('@').next().unwrap_or("").to_owned())
        .filter(|name| is_lab_name(name))
        .collect())
}

/// Kills every process left in `netns` (by pid; only lab processes run
/// there) and waits up to 5 s for them to go. Returns how many it killed.
fn kill_inside(netns: &str) -> usize {
    let pids = |ns: &str| -> Vec<String> {
        sh(&["ip", "netns", "pids", ns]).map(|out| out.split_whitespace().map(Into::into).collect()).unwrap_or_default()
    };
    let found = pids(netns);
    if !found.is_empty() {
        debug!(netns, ?found, "killing processes left in the namespace");
        let mut kill = vec!["kill", "-KILL"];
        kill.extend(found.iter().map(String::as_str));
        let _ = sh(&kill);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !pids(netns).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    found.len()
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Runs a command and returns its stdout, or a [`LabError`] naming it.
pub(crate) fn sh(args: &[&str]) -> Result<String, LabError> {
    run(args, None)
}

fn sh_in(args: &[&str], stdin: &str) -> Result<String, LabError> {
    run(args, Some(stdin))
}

fn run(args: &[&str], stdin: Option<&str>) -> Result<String, LabError> {
    let command = args.join(" ");
    let (program, rest) = args
        .split_first()
        .ok_or_else(|| LabError::Spawn { command: String::new(), source: std::io::Error::other("empty command") })?;
    let spawn = |source| LabError::Spawn { command: command.clone(), source };
    let mut child = Command::new(program)
        .args(rest)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn)?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).map_err(spawn)?;
    }
    let output = child.wait_with_output().map_err(spawn)?;
    if !output.status.success() {
        return Err(LabError::Command {
            command,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_names_are_recognised_and_others_are_not() {
        for name in ["mfs1a2b-0", "mfs00ffbr", "mfsabcdv12"] {
            assert!(is_lab_name(name), "{name}");
        }
        for name in ["mfs", "eth0", "mfsXYZW-1", "mfs1A2B-1", "docker0", "mfs12"] {
            assert!(!is_lab_name(name), "{name}");
        }
    }

    #[test]
    fn a_running_process_has_a_start_time_and_a_gone_one_has_none() {
        let mine = process_start(std::process::id()).expect("running");
        assert!(mine.parse::<u64>().is_ok(), "{mine}");
        assert!(process_start(u32::MAX - 1).is_none());
    }

    #[test]
    fn a_failing_command_is_named_with_its_stderr() {
        let error = sh(&["ls", "/no/such/dir/here"]).expect_err("fails").to_string();
        assert!(error.contains("`ls /no/such/dir/here` failed") && error.contains("No such file"), "{error}");
        let error = sh(&["no-such-program-xyz"]).expect_err("cannot start").to_string();
        assert!(error.contains("cannot run `no-such-program-xyz`"), "{error}");
    }
}
