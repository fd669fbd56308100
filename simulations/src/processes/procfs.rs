//! What `/proc` tells about a node process and its network namespace
//! without running a command: CPU time and memory, the namespace's TCP
//! table and interface counters; and the machine's load and memory.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde::Serialize;

/// CPU time and memory of one process.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ProcStat {
    /// User + system CPU seconds since it started (all threads).
    pub cpu_s: f64,
    /// Resident memory, KiB.
    pub rss_kib: u64,
    /// Proportional set size (shared pages divided among their sharers), KiB.
    pub pss_kib: Option<u64>,
    /// Threads.
    pub threads: u64,
}

impl ProcStat {
    /// Reads `/proc/<pid>`; none if the process is gone.
    pub fn read(pid: u32, ticks_per_s: f64) -> Option<Self> {
        let cpu_s = cpu_s(pid, ticks_per_s)?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |text: &str, name: &str| {
            text.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.split_whitespace().next()?.parse().ok())
        };
        let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        Some(Self {
            cpu_s,
            rss_kib: field(&status, "VmRSS:")?,
            pss_kib: field(&rollup, "Pss:"),
            threads: field(&status, "Threads:").unwrap_or(0),
        })
    }
}

/// User + system CPU seconds of process `pid` since it started (all
/// threads), from `/proc/<pid>/stat` alone; none if the process is gone.
pub fn cpu_s(pid: u32, ticks_per_s: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (in parentheses, maybe with spaces).
    let rest: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let ticks = rest.get(11)?.parse::<f64>().ok()? + rest.get(12)?.parse::<f64>().ok()?;
    Some(ticks / ticks_per_s)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 if unknown).
pub fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Established TCP connections in a process's network namespace with local
/// or remote port `port` (`/proc/<pid>/net/tcp`), and the distinct remote
/// addresses among them; none if unreadable.
pub fn tcp_established(pid: u32, port: u16) -> Option<(usize, usize)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).ok()?;
    Some(parse_tcp_table(&text, port))
}

fn parse_tcp_table(text: &str, port: u16) -> (usize, usize) {
    let endpoint = |field: &str| -> Option<(Ipv4Addr, u16)> {
        let (ip, port) = field.split_once(':')?;
        let ip = u32::from_str_radix(ip, 16).ok()?;
        // The kernel prints the address in host (little-endian) byte order.
        Some((Ipv4Addr::from(ip.swap_bytes()), u16::from_str_radix(port, 16).ok()?))
    };
    let mut connections = 0;
    let mut peers = BTreeSet::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(remote), Some(&"01")) =
            (fields.get(1).and_then(|f| endpoint(f)), fields.get(2).and_then(|f| endpoint(f)), fields.get(3))
        else {
            continue;
        };
        if local.1 == port || remote.1 == port {
            connections += 1;
            peers.insert(remote.0);
        }
    }
    (connections, peers.len())
}

/// Bytes received and sent on `eth0` of a process's network namespace
/// (`/proc/<pid>/net/dev`; all traffic, the API's included).
pub fn eth0_bytes(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    let fields: Vec<u64> = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("eth0:"))?
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    Some((*fields.first()?, *fields.get(8)?))
}

/// The machine's 1-, 5- and 15-minute load averages.
pub fn load_average() -> (f64, f64, f64) {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text.split_whitespace().map(|v| v.parse().unwrap_or(f64::NAN));
    (it.next().unwrap_or(f64::NAN), it.next().unwrap_or(f64::NAN), it.next().unwrap_or(f64::NAN))
}

/// `MemAvailable` of the machine, KiB.
pub fn mem_available_kib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines().find_map(|l| l.strip_prefix("MemAvailable:"))?.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_can_be_read_from_proc() {
        let stat = ProcStat::read(std::process::id(), ticks_per_second()).expect("readable");
        assert!(stat.rss_kib > 0 && stat.threads >= 1, "{stat:?}");
        assert!(ProcStat::read(u32::MAX - 1, 100.0).is_none());
        let cpu = cpu_s(std::process::id(), ticks_per_second()).expect("readable");
        assert!(cpu >= 0.0 && cpu <= ProcStat::read(std::process::id(), ticks_per_second()).expect("readable").cpu_s);
        assert!(cpu_s(u32::MAX - 1, 100.0).is_none());
        assert!(tcp_established(std::process::id(), 4001).is_some());
    }

    #[test]
    fn the_tcp_table_gives_established_connections_on_the_port_and_their_peers() {
        let text = "  sl  local_address rem_address   st tx_queue\n\
            0: 0200D50A:0FA1 00000000:0000 0A 00000000:00000000\n\
            1: 0200D50A:0FA1 0300D50A:0FA1 01 00000000:00000000\n\
            2: 0200D50A:0FA1 0300D50A:A000 01 00000000:00000000\n\
            3: 0200D50A:C000 0400D50A:0FA1 01 00000000:00000000\n\
            4: 0200D50A:1E14 0100D50A:9000 01 00000000:00000000\n";
        assert_eq!(parse_tcp_table(text, 4001), (3, 2));
        assert_eq!(Ipv4Addr::from(0x0200_D50A_u32.swap_bytes()), Ipv4Addr::new(10, 213, 0, 2));
    }
}
