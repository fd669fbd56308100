//! The real `mafalda-node` binary as the CLI tests run it: started with
//! arguments, its identity and addresses read from what it prints, stopped
//! by signal, and killed if a test ends without stopping it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BINARY: &str = env!("CARGO_BIN_EXE_mafalda-node");

/// A running `mafalda-node run`; killed (SIGKILL) if dropped still running.
pub struct NodeProcess {
    child: Option<Child>,
    /// Its peer id.
    pub peer_id: String,
    /// The addresses it listens on (each ending in `/p2p/<peer id>`).
    pub addrs: Vec<String>,
    /// Its API, `HOST:PORT`.
    pub api: String,
}

impl NodeProcess {
    /// Starts `mafalda-node run ARGS` and reads its peer id, listen addresses
    /// and API address from stdout.
    pub fn start(args: &[&str]) -> Self {
        Self::start_with_log(args, Stdio::inherit())
    }

    /// As [`NodeProcess::start`], its log (warnings and errors) written to `log`.
    pub fn start_with_log(args: &[&str], log: impl Into<Stdio>) -> Self {
        let mut child = Command::new(BINARY)
            .arg("run")
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn mafalda-node");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut line = || lines.next().expect("a line on stdout").expect("utf-8");
        let peer_id = line().strip_prefix("peer id: ").expect("first line gives the peer id").to_owned();
        let mut addrs = Vec::new();
        let api = loop {
            let next = line();
            if let Some(api) = next.strip_prefix("api: http://").and_then(|rest| rest.strip_suffix("/v1/status")) {
                break api.to_owned();
            }
            let addr = next.strip_prefix("listening on: ").unwrap_or_else(|| panic!("unexpected line: {next}"));
            addrs.push(addr.to_owned());
        };
        assert!(!addrs.is_empty(), "at least one listen address is printed before the API");
        Self { child: Some(child), peer_id, addrs, api }
    }

    /// The API's socket address.
    pub fn api_addr(&self) -> SocketAddr {
        self.api.parse().expect("the API address")
    }

    fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("still running")
    }

    /// Sends `signal` (e.g. `TERM`).
    pub fn signal(&mut self, signal: &str) {
        let pid = self.child().id().to_string();
        let sent = Command::new("kill").arg(format!("-{signal}")).arg(pid).status().expect("run kill");
        assert!(sent.success(), "kill -{signal}");
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child().try_wait().expect("wait for mafalda-node")
    }

    /// Sends `signal` and waits for the exit (at most `give_up`, then it is
    /// killed and the test fails): the status and how long the exit took.
    pub fn signal_and_wait(mut self, signal: &str, give_up: Duration) -> (ExitStatus, Duration) {
        self.signal(signal);
        let sent = Instant::now();
        loop {
            if let Some(status) = self.try_wait() {
                self.child = None;
                return (status, sent.elapsed());
            }
            assert!(sent.elapsed() < give_up, "mafalda-node still running {:?} after SIG{signal}", sent.elapsed());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL and reap.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGINT (stops at once) and reap; killed after 5 s.
    pub fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-INT").arg(child.id().to_string()).status();
            let end = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `count` nodes on loopback (API and libp2p on free ports), every one after
/// the first joined through the first.
pub fn loopback_swarm(count: usize) -> Vec<NodeProcess> {
    let loopback = ["--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0"];
    let mut nodes = vec![NodeProcess::start(&loopback)];
    for _ in 1..count {
        let seed = nodes[0].addrs[0].clone();
        nodes.push(NodeProcess::start(&[&loopback[..], &["--bootstrap", &seed][..]].concat()));
    }
    nodes
}

/// `curl` with a JSON body (or none); the answer's body. Fails the test on an
/// HTTP error.
pub fn curl_json(method: &str, url: &str, body: Option<&str>) -> String {
    let mut command = Command::new("curl");
    command.args(["-s", "--fail-with-body", "--max-time", "20", "-X", method]);
    if let Some(body) = body {
        command.args(["-H", "content-type: application/json", "-d", body]);
    }
    let output = command.arg(url).output().expect("run curl");
    let answer = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{method} {url}: {answer}");
    answer
}

/// Publishes stream `cam` (one Opus track) by RTP at `publisher` and takes it
/// out at `consumer` to the returned socket (keep it while the egress runs).
pub fn publish_cam_and_take_it_out(publisher: &NodeProcess, consumer: &NodeProcess) -> std::net::UdpSocket {
    let tracks = r#"{"tracks":[{"kind":"audio","codec":"opus","payloadType":111,"ssrc":1234}]}"#;
    curl_json("PUT", &format!("http://{}/v1/streams/cam/rtp-ingest", publisher.api), Some(tracks));
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP port");
    let egress = format!(r#"{{"ip":"127.0.0.1","port":{}}}"#, sink.local_addr().expect("addr").port());
    curl_json("POST", &format!("http://{}/v1/streams/cam/rtp-egress", consumer.api), Some(&egress));
    sink
}
