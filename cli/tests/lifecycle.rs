//! `mafalda-node` processes leaving a swarm, as operators and crashes make
//! them leave: a relay drained with SIGTERM under a live stream, and
//! downstream processes killed with SIGKILL over and over. Real processes,
//! real HTTP to their APIs on 127.0.0.1, real RTP from and to UDP sockets.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod common;

use common::NodeProcess;
use mafalda_tests::rtp::{RtpPacket, test_packets, test_payload_index};

/// `mafalda-node run`'s default `--drain-timeout`.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// The issue's bound for the pipes of a killed downstream peer to close.
const RELEASE_WITHIN: Duration = Duration::from_secs(2);
const SSRC: u32 = 0x5eed_0077;
const PAYLOAD_TYPE: u8 = 111;
const TRACK: &str = r#"{"tracks":[{"kind":"audio","codec":"opus","payloadType":111,"ssrc":1592590455}]}"#;

/// A running `mafalda-node run` ([`NodeProcess`]) and what these tests ask of its API.
struct Process(NodeProcess);

impl std::ops::Deref for Process {
    type Target = NodeProcess;
    fn deref(&self) -> &NodeProcess {
        &self.0
    }
}

impl std::ops::DerefMut for Process {
    fn deref_mut(&mut self) -> &mut NodeProcess {
        &mut self.0
    }
}

impl Process {
    /// Starts `mafalda-node run` on loopback, one worker, with `args`.
    fn start(args: &[&str]) -> Self {
        let defaults = ["--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0", "--workers", "1"];
        Self(NodeProcess::start(&[&defaults[..], args].concat()))
    }

    /// Its first listen address.
    fn addr(&self) -> &str {
        &self.0.addrs[0]
    }

    fn api(&self) -> SocketAddr {
        self.0.api_addr()
    }

    fn kill(self) {
        self.0.kill();
    }

    fn stop(self) {
        self.0.stop();
    }

    fn status(&self) -> serde_json::Value {
        let (code, body) = http(self.api(), "GET", "/v1/status", None).expect("GET /v1/status");
        assert_eq!(code, 200, "{body}");
        body
    }

    /// `POST /v1/streams/{stream}/rtp-egress` to `to`: the answer (status, body).
    fn consume(&self, stream: &str, to: SocketAddr) -> (u16, serde_json::Value) {
        let body = format!(r#"{{"ip":"{}","port":{}}}"#, to.ip(), to.port());
        http(self.api(), "POST", &format!("/v1/streams/{stream}/rtp-egress"), Some(&body)).expect("POST rtp-egress")
    }

    /// `PUT /v1/streams/{stream}/rtp-ingest` with one Opus track: where to send RTP.
    fn publish(&self, stream: &str) -> SocketAddr {
        let (code, body) =
            http(self.api(), "PUT", &format!("/v1/streams/{stream}/rtp-ingest"), Some(TRACK)).expect("PUT rtp-ingest");
        assert_eq!(code, 201, "publish: {body}");
        let ip = body["ip"].as_str().expect("ip");
        format!("{ip}:{}", body["port"]).parse().expect("ingest address")
    }

    /// Waits (up to 10 s) until `peer` is among the connected peers.
    fn wait_connected(&self, peer: &str) {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            let status = self.status();
            let peers = status["connectedPeers"].as_array().cloned().unwrap_or_default();
            if peers.iter().any(|p| p == peer) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} never connected to {peer}", self.peer_id);
    }
}

/// One HTTP/1.1 request to the API on `addr` (no token); the status and JSON body.
fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> std::io::Result<(u16, serde_json::Value)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let code = response.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let json = response.split_once("\r\n\r\n").and_then(|(_, b)| serde_json::from_str(b).ok());
    Ok((code, json.unwrap_or(serde_json::Value::Null)))
}

/// The test payload's index, if `datagram` is one of the test packets (any SSRC:
/// an SFU re-stamps them; padding and RTCP are skipped).
fn payload_index(datagram: &[u8]) -> Option<u32> {
    RtpPacket::parse(datagram).ok().and_then(|packet| test_payload_index(&packet.payload))
}

/// Sends packet 0, 1, 2, ... to `target` at 50 packets/s until `stop`; returns how many.
fn send_rtp(target: SocketAddr, stop: Arc<AtomicBool>) -> JoinHandle<u32> {
    std::thread::spawn(move || {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the sender");
        let start = Instant::now();
        let mut index = 0u32;
        let mut packets = test_packets(SSRC, PAYLOAD_TYPE);
        while !stop.load(Ordering::Acquire) {
            let packet = packets.next().expect("packets enough for any test");
            socket.send_to(&packet.encode(), target).expect("send RTP");
            index += 1;
            let next = start + Duration::from_millis(20) * index;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        index
    })
}

/// Receives test packets on `socket` until `stop`: each index once, with the
/// arrival time of its first copy, in arrival order.
fn receive_rtp(socket: UdpSocket, stop: Arc<AtomicBool>) -> JoinHandle<Vec<(u32, Instant)>> {
    std::thread::spawn(move || {
        socket.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
        let mut seen = std::collections::HashSet::new();
        let mut arrivals = Vec::new();
        let mut buffer = [0u8; 2048];
        while !stop.load(Ordering::Acquire) {
            if let Ok(len) = socket.recv(&mut buffer)
                && let Some(index) = payload_index(&buffer[..len])
                && seen.insert(index)
            {
                arrivals.push((index, Instant::now()));
            }
        }
        arrivals
    })
}

fn path_of(egress: &serde_json::Value) -> Vec<String> {
    egress["path"].as_array().into_iter().flatten().filter_map(|p| p.as_str().map(str::to_owned)).collect()
}

/// What `/readyz` answered a poll, or that nothing answered.
#[derive(Debug)]
enum Probe {
    Answer(u16, serde_json::Value),
    /// Connection refused (or reset) while the process was still running.
    RefusedWhileRunning(std::io::Error),
    /// The connection closed with no status line while the process was still running.
    NoAnswerWhileRunning,
}

#[test]
fn a_relay_drained_with_sigterm_loses_no_packet_and_exits_zero() {
    // A publishes; B relays (it consumes first, so it holds the stream); C
    // joins through B only and consumes: its path must go through B.
    let a = Process::start(&[]);
    let mut b = Process::start(&["--bootstrap", a.addr()]);
    b.wait_connected(&a.peer_id);
    let ingest = a.publish("talk");
    let stop_sending = Arc::new(AtomicBool::new(false));
    let sender = send_rtp(ingest, Arc::clone(&stop_sending));
    let b_sink = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let (code, egress) = b.consume("talk", b_sink.local_addr().expect("addr"));
    assert_eq!(code, 201, "B consumes: {egress}");
    assert_eq!(path_of(&egress), [a.peer_id.clone(), b.peer_id.clone()], "B pulls from A");

    // Every RTT on one machine is the same: tell C that A is far, as it would be.
    let far_a = format!("{}=80", a.peer_id);
    let c = Process::start(&["--bootstrap", b.addr(), "--link-delay", &far_a]);
    c.wait_connected(&b.peer_id);
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let to = receiver.local_addr().expect("addr");
    let stop_receiving = Arc::new(AtomicBool::new(false));
    let receiving = receive_rtp(receiver, Arc::clone(&stop_receiving));
    let (code, egress) = c.consume("talk", to);
    assert_eq!(code, 201, "C consumes: {egress}");
    let path = path_of(&egress);
    println!("C's egress path: {path:?} (A {}, B {}, C {})", a.peer_id, b.peer_id, c.peer_id);
    assert_eq!(
        path,
        [a.peer_id.clone(), b.peer_id.clone(), c.peer_id.clone()],
        "C (bootstrapped from B only, B holding the stream) must pull through B; it picked {}",
        if path.get(1) == Some(&c.peer_id) { "A directly" } else { "another path" }
    );

    // Two seconds of steady stream, then SIGTERM to B; /readyz polled from the signal on.
    std::thread::sleep(Duration::from_secs(2));
    b.signal("TERM");
    let signalled = Instant::now();
    let mut probes: Vec<(Duration, Probe)> = Vec::new();
    let exit = loop {
        if let Some(status) = b.try_wait() {
            break status;
        }
        match http(b.api(), "GET", "/readyz", None) {
            // Code 0: no status line, the connection closed before an answer.
            Ok((code, body)) if code != 0 => probes.push((signalled.elapsed(), Probe::Answer(code, body))),
            failed => {
                // Refused, reset or closed unanswered is fine only because the
                // process was exiting (a request in flight when it exits gets
                // no answer); check it has.
                std::thread::sleep(Duration::from_millis(20));
                if let Some(status) = b.try_wait() {
                    break status;
                }
                let probe = match failed {
                    Err(error) => Probe::RefusedWhileRunning(error),
                    Ok(_) => Probe::NoAnswerWhileRunning,
                };
                probes.push((signalled.elapsed(), probe));
            }
        }
        assert!(signalled.elapsed() < DRAIN_TIMEOUT + Duration::from_secs(10), "B still runs after SIGTERM");
        // Polled often: a drain that only moves one consumer is over in about 20 ms
        // (a fresh clone's CI once polled before the signal, then after the exit).
        std::thread::sleep(Duration::from_millis(2));
    };
    let exited_after = signalled.elapsed();
    // One more second of stream from A through wherever C now pulls from.
    std::thread::sleep(Duration::from_secs(1));
    stop_sending.store(true, Ordering::Release);
    let sent = sender.join().expect("sender");
    std::thread::sleep(Duration::from_millis(500));
    stop_receiving.store(true, Ordering::Release);
    let arrivals = receiving.join().expect("receiver");

    let c_status = c.status();
    let c_stream = c_status["streams"].as_array().and_then(|s| s.first()).cloned().unwrap_or_default();
    let first = arrivals.iter().map(|(index, _)| *index).min().expect("packets reached C's egress");
    let lost: Vec<u32> = (first..sent).filter(|i| !arrivals.iter().any(|(index, _)| index == i)).collect();
    let (gap, gap_at) =
        arrivals.windows(2).map(|w| (w[1].1 - w[0].1, w[1].0)).max().expect("more than one packet arrived");
    let answers: Vec<String> = probes
        .iter()
        .map(|(at, probe)| match probe {
            Probe::Answer(code, body) => format!("{:>5} ms {code} {}", at.as_millis(), body["reason"]),
            Probe::RefusedWhileRunning(error) => format!("{:>5} ms refused while running: {error}", at.as_millis()),
            Probe::NoAnswerWhileRunning => format!("{:>5} ms closed unanswered while running", at.as_millis()),
        })
        .collect();
    println!(
        "sent {sent} packets (C's egress from index {first}): {} of {} arrived, lost {}: {lost:?}; \
         largest gap {gap:?} (before index {gap_at})",
        arrivals.len(),
        sent - first,
        lost.len()
    );
    println!("B: SIGTERM -> exit {exit} after {exited_after:?}; {} /readyz polls:", probes.len());
    for line in answers.iter().take(3).chain(answers.iter().skip(3).rev().take(3).rev()) {
        println!("  {line}");
    }
    println!("C's stream after the drain: upstream {}, path {}", c_stream["upstream"], c_stream["path"]);

    // A signal is delivered asynchronously: a poll sent within a few
    // milliseconds of `kill` may still reach a node that has not handled it.
    // From the node's first "draining" on, every answer must be 503.
    let first_draining =
        probes.iter().position(|(_, probe)| matches!(probe, Probe::Answer(503, body) if body["reason"] == "draining"));
    let first_draining = first_draining.unwrap_or_else(|| panic!("/readyz never said draining: {answers:?}"));
    let (said_at, _) = probes[first_draining];
    assert!(said_at <= Duration::from_millis(50), "/readyz said draining only {said_at:?} after SIGTERM: {answers:?}");
    let wrong: Vec<&String> = probes
        .iter()
        .zip(&answers)
        .skip(first_draining)
        .filter(|((_, probe), _)| !matches!(probe, Probe::Answer(503, body) if body["ready"] == false))
        .map(|(_, line)| line)
        .collect();
    assert!(wrong.is_empty(), "/readyz must answer 503 from the drain on until B has exited: {wrong:?}");
    assert!(lost.is_empty(), "packets lost while B drained: {lost:?}");
    assert!(gap <= Duration::from_millis(100), "largest gap {gap:?} before index {gap_at}");
    assert_eq!(exit.code(), Some(0), "B's exit after SIGTERM: {exit}");
    assert!(exited_after <= DRAIN_TIMEOUT, "B exited {exited_after:?} after SIGTERM");
    assert_eq!(c_stream["upstream"], a.peer_id.as_str(), "C pulls from A after B left: {c_stream}");
    for process in [c, a] {
        process.stop();
    }
}

/// The highest `cpuPercent` of the workers in a status answer.
fn cpu_percent(status: &serde_json::Value) -> f64 {
    status["workers"].as_array().into_iter().flatten().filter_map(|w| w["cpuPercent"].as_f64()).fold(0.0, f64::max)
}

/// A's pipes and the downstream peers of its stream.
fn pipes_and_downstream(status: &serde_json::Value) -> (u64, Vec<String>) {
    let downstream = status["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["downstream"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect();
    (status["pipes"].as_u64().expect("pipes in the status"), downstream)
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn killed_downstream_processes_leave_no_pipes_and_no_false_busy() {
    // 300 downstream processes, killed in rounds of PARALLEL (a full process
    // takes about 0.8 s per start-consume-kill-release cycle on this machine;
    // rounds keep the whole test well inside nextest's 5-minute limit).
    let cycles = env_or("MAFALDA_KILL_CYCLES", 300);
    let parallel = env_or("MAFALDA_KILL_PARALLEL", 4).max(1);
    let a = Process::start(&[]);
    let ingest = a.publish("cam");
    let stop_sending = Arc::new(AtomicBool::new(false));
    let sender = send_rtp(ingest, Arc::clone(&stop_sending));
    let (base_pipes, base_downstream) = pipes_and_downstream(&a.status());
    println!("A's baseline: {base_pipes} pipes, downstream {base_downstream:?}");
    let sink = UdpSocket::bind("127.0.0.1:0").expect("bind a sink");
    let sink_addr = sink.local_addr().expect("addr");

    let started = Instant::now();
    let mut rounds: Vec<Duration> = Vec::new();
    let mut slowest_release = Duration::ZERO;
    // The highest worker CPU A's status showed while the test polled it.
    let mut cpu_seen = 0.0f64;
    let mut relayed = 0usize;
    let mut done = 0;
    while done < cycles {
        let round_started = Instant::now();
        let count = parallel.min(cycles - done);
        // Start and consume in parallel: each downstream process pulls from A.
        let spawned: Vec<JoinHandle<(Process, u16, serde_json::Value)>> = (0..count)
            .map(|_| {
                let bootstrap = a.addr().to_owned();
                let a_id = a.peer_id.clone();
                std::thread::spawn(move || {
                    let d = Process::start(&["--bootstrap", &bootstrap]);
                    d.wait_connected(&a_id);
                    let (code, egress) = d.consume("cam", sink_addr);
                    (d, code, egress)
                })
            })
            .collect();
        let downstream: Vec<Process> = spawned
            .into_iter()
            .map(|handle| {
                let (d, code, egress) = handle.join().expect("a downstream process");
                if code != 201 {
                    let status = a.status();
                    panic!(
                        "cycle {done}: a downstream consume was refused ({code}): {egress}; A then had {} pipes, \
                         downstream {:?}, workers {} (highest cpuPercent seen so far {cpu_seen})",
                        status["pipes"],
                        pipes_and_downstream(&status).1,
                        status["workers"]
                    );
                }
                // Usually straight from A; a process of the same round that already
                // relays is a fair choice too (cost ranking), never a refusal.
                let path = path_of(&egress);
                assert!(
                    path.first() == Some(&a.peer_id) && path.last() == Some(&d.peer_id),
                    "cycle {done}: the stream comes from A to the process: {path:?}"
                );
                if path.len() > 2 {
                    relayed += 1;
                }
                d
            })
            .collect();
        let (pipes, listed) = pipes_and_downstream(&a.status());
        let ids: Vec<String> = downstream.iter().map(|d| d.peer_id.clone()).collect();
        assert!(
            pipes > base_pipes && pipes <= base_pipes + count as u64,
            "cycle {done}: A pipes to the downstream processes (or some of them, which feed the others): {pipes}"
        );
        assert!(
            listed.iter().filter(|id| !base_downstream.contains(*id)).all(|id| ids.contains(id)),
            "cycle {done}: A lists {listed:?}, expected among {ids:?}"
        );

        for d in downstream {
            d.kill();
        }
        let killed = Instant::now();
        let released = loop {
            let status = a.status();
            cpu_seen = cpu_seen.max(cpu_percent(&status));
            let now = pipes_and_downstream(&status);
            if now == (base_pipes, base_downstream.clone()) {
                break None;
            }
            if killed.elapsed() > RELEASE_WITHIN {
                break Some(now);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let took = killed.elapsed();
        assert!(
            released.is_none(),
            "cycle {done}: {RELEASE_WITHIN:?} after SIGKILL A still has (pipes, downstream) {released:?}, \
             baseline ({base_pipes}, {base_downstream:?})"
        );
        slowest_release = slowest_release.max(took);
        done += count;
        rounds.push(round_started.elapsed());
    }
    let total = started.elapsed();
    println!("{relayed} of {done} downstream processes pulled through another process of their round");
    let mut sorted = rounds.clone();
    sorted.sort();
    println!(
        "{done} downstream processes started, consumed, SIGKILLed in {} rounds of up to {parallel}: total {total:?}, \
         per round min {:?} median {:?} max {:?}; slowest return to baseline {slowest_release:?}; \
         highest worker cpuPercent in A's status {cpu_seen}",
        rounds.len(),
        sorted[0],
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1]
    );

    // An honest consumer is still served by A (not told busy) and gets real RTP.
    let e = Process::start(&["--bootstrap", a.addr()]);
    e.wait_connected(&a.peer_id);
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let to = receiver.local_addr().expect("addr");
    let (code, egress) = e.consume("cam", to);
    println!("honest consumer after the kills: {code}, path {:?}", path_of(&egress));
    assert_eq!(code, 201, "the honest consumer is served: {egress}");
    assert_eq!(path_of(&egress), [a.peer_id.clone(), e.peer_id.clone()], "from A");
    receiver.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let mut indexes = Vec::new();
    let mut buffer = [0u8; 2048];
    while indexes.len() < 50 {
        let Ok(len) = receiver.recv(&mut buffer) else { break };
        indexes.extend(payload_index(&buffer[..len]));
    }
    println!(
        "honest consumer received {} test packets (indexes {:?}..{:?})",
        indexes.len(),
        indexes.first(),
        indexes.last()
    );
    assert_eq!(indexes.len(), 50, "real RTP reaches the honest consumer");
    let (pipes, listed) = pipes_and_downstream(&a.status());
    assert_eq!((pipes, listed), (base_pipes + 1, vec![e.peer_id.clone()]), "A pipes to the honest consumer only");
    stop_sending.store(true, Ordering::Release);
    let _ = sender.join();
    drop(sink);
    for process in [e, a] {
        process.stop();
    }
}
