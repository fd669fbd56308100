//! `mafalda-node` as a user runs it: the real binary, started and stopped by signal.

use std::process::{Command, Stdio};
use std::time::Duration;

use common::BINARY;
/// The bound for an orderly exit after SIGINT/SIGTERM.
const EXIT_WITHIN: Duration = Duration::from_secs(2);

mod common;

use common::NodeProcess;

/// Starts `mafalda-node run ARGS`, its API on 127.0.0.1:0 unless they give `--api`.
fn start(args: &[&str]) -> NodeProcess {
    let api: &[&str] = if args.contains(&"--api") { &[] } else { &["--api", "127.0.0.1:0"] };
    NodeProcess::start(&[api, args].concat())
}

/// Sends `signal` and returns the exit status and how long the exit took.
fn stop(node: NodeProcess, signal: &str) -> (std::process::ExitStatus, Duration) {
    node.signal_and_wait(signal, EXIT_WITHIN * 3)
}

#[test]
fn run_prints_identity_and_addresses_and_exits_cleanly_on_sigint_and_sigterm() {
    let first = start(&["--listen", "/ip4/127.0.0.1/tcp/0"]);
    assert!(first.peer_id.starts_with("12D3KooW"), "an ed25519 peer id: {}", first.peer_id);
    let addr = &first.addrs[0];
    assert!(addr.starts_with("/ip4/127.0.0.1/tcp/"), "a loopback TCP address: {addr}");
    assert!(addr.ends_with(&format!("/p2p/{}", first.peer_id)), "usable as a bootstrap address: {addr}");

    // A second node joins through the first's printed address.
    let second = start(&["--bootstrap", addr]);
    assert_ne!(second.peer_id, first.peer_id);
    std::thread::sleep(Duration::from_millis(300));

    for (node, signal) in [(second, "INT"), (first, "TERM")] {
        let (status, took) = stop(node, signal);
        assert!(status.success(), "exit status after SIG{signal}: {status}");
        assert!(took < EXIT_WITHIN, "exit after SIG{signal} took {took:?}");
    }
}

#[test]
fn identity_file_keeps_the_peer_id_across_restarts_and_a_bad_one_is_refused() {
    let dir = std::env::temp_dir().join(format!("mafalda-cli-identity-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let key = dir.join("node.key");
    let key_arg = key.to_str().expect("utf-8 path");
    let first = start(&["--identity", key_arg]);
    let first_peer = first.peer_id.clone();
    let (status, _) = stop(first, "TERM");
    assert!(status.success());
    let second = start(&["--identity", key_arg]);
    assert_eq!(second.peer_id, first_peer, "same identity after a restart");
    let (status, _) = stop(second, "TERM");
    assert!(status.success());

    std::fs::write(&key, b"garbage").expect("corrupt the key");
    let output =
        Command::new(BINARY).args(["run", "--api", "127.0.0.1:0", "--identity", key_arg]).output().expect("run");
    assert_eq!(output.status.code(), Some(1), "refused");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a libp2p ed25519 key"), "names the problem: {stderr}");
    assert_eq!(std::fs::read(&key).expect("read"), b"garbage", "the bad key file is left alone");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_flags_are_refused_with_a_clear_message() {
    for (args, expected) in [
        (&["run", "--listen", "not-a-multiaddr"][..], "--listen"),
        (&["run", "--rtc-ports", "50000-40000"][..], "above MAX"),
        (&["run", "--workers", "0"][..], "--workers"),
        (&["run", "--watermark", "1.5"][..], "fraction"),
        (&["run", "--max-peers", "0"][..], "--max-peers"),
        (&["run", "--target-peers", "0"][..], "--target-peers"),
    ] {
        let output = Command::new(BINARY).args(args).output().expect("run mafalda-node");
        assert_eq!(output.status.code(), Some(2), "usage error exit code for {args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "stderr for {args:?} names the problem: {stderr}");
    }
}

#[test]
fn a_target_above_the_peer_maximum_is_refused_before_anything_starts() {
    let output = Command::new(BINARY)
        .args(["run", "--max-peers", "10", "--target-peers", "11", "--api", "127.0.0.1:0"])
        .output()
        .expect("run mafalda-node");
    assert!(!output.status.success(), "refused: {output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--target-peers (11) must not exceed --max-peers (10)"), "{stderr}");
}

#[test]
fn media_ips_must_be_one_per_family_and_announced_ones_match_them() {
    for (args, expected) in [
        (&["--media-ip", "127.0.0.1", "--media-ip", "127.0.0.2"][..], "are both IPv4"),
        (&["--media-ip", "127.0.0.1,::1,127.0.0.2"][..], "at most twice"),
        (&["--media-ip", "127.0.0.1", "--announced-ip", "2001:db8::1"][..], "is IPv6, and no --media-ip is"),
        (&["--media-ip", "127.0.0.1,::1", "--announced-ip", "192.0.2.1,192.0.2.2"][..], "at most one IPv4"),
    ] {
        let dir = std::env::temp_dir().join(format!("mafalda-cli-media-ips-{}", std::process::id()));
        let identity = dir.join("node.key");
        let output = Command::new(BINARY)
            .args(["run", "--api", "127.0.0.1:0", "--identity"])
            .arg(&identity)
            .args(args)
            .output()
            .expect("run mafalda-node");
        assert!(!output.status.success(), "refused: {args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "stderr for {args:?} names the problem: {stderr}");
        assert!(!identity.exists(), "nothing written before the refusal ({args:?})");
    }
}

/// `--log-format json` (or `MAFALDA_LOG_FORMAT=json`): every line on stderr
/// is one JSON object with a timestamp, level and target, the message and
/// fields at the top; a format that does not exist is refused, naming those
/// that do.
#[test]
fn json_logs_are_one_object_per_line_and_an_unknown_format_is_refused() {
    use std::io::{BufRead, BufReader};
    for (flag, env) in [(&["--log-format", "json"][..], None), (&[][..], Some("json"))] {
        let mut command = Command::new(BINARY);
        command.args(flag).args(["run", "--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0"]);
        if let Some(format) = env {
            command.env("MAFALDA_LOG_FORMAT", format);
        }
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn mafalda-node");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let started = stdout.lines().map_while(Result::ok).any(|line| line.starts_with("listening on:"));
        assert!(started, "the node started ({flag:?}, {env:?})");
        let signalled = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
        assert!(signalled.success(), "SIGINT sent");
        let output = child.wait_with_output().expect("wait for mafalda-node");
        assert!(output.status.success(), "exit status after SIGINT: {}", output.status);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let mut messages = Vec::new();
        for line in stderr.lines() {
            let object: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|error| panic!("a line that is not JSON ({error}): {line}"));
            for key in ["timestamp", "level", "target"] {
                assert!(object.get(key).is_some_and(serde_json::Value::is_string), "{key} in {line}");
            }
            if let Some(message) = object.get("message").and_then(serde_json::Value::as_str) {
                messages.push(message.to_owned());
            }
        }
        assert!(messages.len() >= 2, "the node's start and stop are logged, each with its message: {stderr}");
    }
    let output = Command::new(BINARY)
        .env("MAFALDA_LOG_FORMAT", "xml")
        .args(["run", "--api", "127.0.0.1:0"])
        .output()
        .expect("run mafalda-node");
    assert_eq!(output.status.code(), Some(2), "refused as a bad flag");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("xml") && stderr.contains("text") && stderr.contains("json"),
        "names the formats: {stderr}"
    );
}

#[test]
fn webrtc_ports_inside_the_rtc_range_are_refused() {
    let output = Command::new(BINARY)
        .args(["run", "--api", "127.0.0.1:0", "--webrtc-ports", "40000-40003"])
        .output()
        .expect("run mafalda-node");
    assert!(!output.status.success(), "refused");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("must not overlap --rtc-ports"), "names the problem: {stderr}");
}

#[test]
fn version_and_help_describe_the_binary() {
    let version = Command::new(BINARY).arg("--version").output().expect("run --version");
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("mafalda-node "));
    let help = Command::new(BINARY).args(["run", "--help"]).output().expect("run --help");
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--listen",
        "--bootstrap",
        "--api",
        "--api-token",
        "--api-token-file",
        "--api-admin-token",
        "--api-origins",
        "--api-hosts",
        "--api-insecure",
        "--media-ip",
        "--announced-ip",
        "--watermark",
        "--identity",
        "--config",
        "--workers",
        "--rtc-ports",
        "--worker-log-level",
    ] {
        assert!(help.contains(flag), "run --help explains {flag}");
    }
}

/// `GET /v1/status` on 127.0.0.1 at the port of `api` (which may be bound to
/// all addresses: the test only ever talks to loopback); returns the status line.
fn status_line(api: &str, token: Option<&str>) -> String {
    use std::io::{Read, Write};
    let port = api.rsplit(':').next().expect("a port");
    let mut stream = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).expect("connect to the API");
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(stream, "GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Connection: close\r\n\r\n")
        .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response.lines().next().unwrap_or("").to_owned()
}

#[test]
fn a_routable_api_without_a_token_is_refused_unless_insecure() {
    let dir = std::env::temp_dir().join(format!("mafalda-cli-api-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let key = dir.join("node.key");
    let key_arg = key.to_str().expect("utf-8 path");
    let output = Command::new(BINARY)
        .args(["run", "--api", "0.0.0.0:0", "--identity", key_arg])
        .env("RUST_LOG", "warn")
        .env_remove("MAFALDA_API_TOKEN")
        .output()
        .expect("run mafalda-node");
    assert!(!output.status.success(), "refused");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("0.0.0.0:0 is not a loopback address and no API token is set")
            && stderr.contains("--api-token")
            && stderr.contains("--api-insecure"),
        "says what is wrong and how to fix it: {stderr}"
    );
    assert!(output.stdout.is_empty(), "nothing started");
    assert!(!key.exists(), "refused before doing anything");

    // Meant: it starts (the test talks to it on loopback only).
    let insecure = start(&["--api", "0.0.0.0:0", "--api-insecure"]);
    assert!(insecure.api.starts_with("0.0.0.0:"), "{}", insecure.api);
    assert!(status_line(&insecure.api, None).contains(" 200 "));
    let (status, _) = stop(insecure, "TERM");
    assert!(status.success());

    // With a token from a file it starts too, and the token is required.
    let token = dir.join("token");
    std::fs::write(&token, "s3cret\n").expect("write the token");
    let guarded = start(&["--api", "0.0.0.0:0", "--api-token-file", token.to_str().expect("utf-8")]);
    assert!(status_line(&guarded.api, None).contains(" 401 "));
    assert!(status_line(&guarded.api, Some("s3cret")).contains(" 200 "), "the file's first line is the token");
    let (status, _) = stop(guarded, "TERM");
    assert!(status.success());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn demo_carries_a_stream_across_a_local_swarm() {
    let output =
        Command::new(BINARY).args(["demo", "--seconds", "2"]).env("RUST_LOG", "warn").output().expect("run the demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "demo exit status {}: {stdout}", output.status);
    assert!(stdout.contains("the swarm's path: A -> "), "{stdout}");
    let last = stdout.lines().rev().find(|l| l.starts_with("sent ")).expect("a packet count line");
    let numbers: Vec<u64> = last.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert!(numbers.len() == 2 && numbers[1] > 0, "packets came out of C: {last}");
    assert!(numbers[1] * 100 >= numbers[0] * 95, "at least 95 % delivered: {last}");
}

fn client(args: &[&str]) -> std::process::Output {
    Command::new(BINARY).args(args).env("RUST_LOG", "warn").output().expect("run a client subcommand")
}

#[test]
fn client_subcommands_publish_find_and_consume_through_the_api() {
    let first = start(&[]);
    let second = start(&["--bootstrap", &first.addrs[0]]);
    std::thread::sleep(Duration::from_millis(300));

    let published = client(&["publish", "cam", "--track", "audio:opus:111:42", "--api", &first.api]);
    let text = String::from_utf8_lossy(&published.stdout);
    assert!(published.status.success() && text.contains("send RTP to 127.0.0.1:"), "{text}");

    let found = client(&["find", "cam", "--json", "--api", &second.api]);
    let json: serde_json::Value = serde_json::from_slice(&found.stdout).expect("find --json prints JSON");
    assert_eq!(json["providers"][0]["peer"], first.peer_id.as_str());
    assert_eq!(json["providers"][0]["hops"], 0);

    let consumed = client(&["consume", "cam", "--to", "127.0.0.1:5004", "--api", &second.api]);
    let text = String::from_utf8_lossy(&consumed.stdout);
    assert!(consumed.status.success(), "{text}");
    assert!(text.contains(&format!("path: {} -> {}", first.peer_id, second.peer_id)), "{text}");

    let status = client(&["status", "--api", &second.api]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains(&format!("peer id: {}", second.peer_id)) && text.contains("stream cam: hops 1"), "{text}");

    let missing = client(&["find", "nobody", "--api", &second.api]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"), "the API's answer is shown");
    let bad_track = client(&["publish", "x", "--track", "audio-opus", "--api", &first.api]);
    assert_eq!(bad_track.status.code(), Some(2), "a malformed --track is a usage error");

    for node in [second, first] {
        let (status, _) = stop(node, "TERM");
        assert!(status.success());
    }
}

#[test]
fn a_config_file_sets_what_flags_do_not_and_typos_are_refused() {
    let dir = std::env::temp_dir().join(format!("mafalda-cli-config-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let key = dir.join("node.key");
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        format!(
            "identity = {:?}\nworkers = 1\napi = \"127.0.0.1:1\"\nrtc_ports = \"41000-41999\"\n",
            key.display().to_string()
        ),
    )
    .expect("write config");
    let config_arg = config.to_str().expect("utf-8");

    // The file's identity applies; the --api flag (given by start) wins over the file's.
    let node = start(&["--config", config_arg]);
    assert!(key.exists(), "the identity file named in the config was created");
    assert!(!node.api.ends_with(":1"), "the --api flag won over the file: {}", node.api);
    let node_peer = node.peer_id.clone();
    let (status, _) = stop(node, "TERM");
    assert!(status.success());
    let again = start(&["--config", config_arg]);
    assert_eq!(again.peer_id, node_peer, "the identity from the config file is kept across restarts");
    let (status, _) = stop(again, "TERM");
    assert!(status.success());

    std::fs::write(&config, "workerz = 2\n").expect("write typo");
    let output = Command::new(BINARY).args(["run", "--config", config_arg]).output().expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("workerz") && stderr.contains("node.toml"), "names the key and file: {stderr}");

    std::fs::write(&config, "listen = [\"not-a-multiaddr\"]\n").expect("write bad value");
    let output = Command::new(BINARY).args(["run", "--config", config_arg]).output().expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("listen"));
    let _ = std::fs::remove_dir_all(dir);
}

/// A free UDP port on 127.0.0.1 (bound, then released for the receiver).
fn free_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("addr").port()
}

/// An even port P with P and P + 1 free, for a receiver that binds both (RTP
/// and RTCP, as ffmpeg does from an SDP), not `avoid`. Taken from 20000-29999:
/// below the kernel's ephemeral ports and the nodes' media ports (40000-49999),
/// so another test's socket is unlikely to take it before the receiver binds.
fn free_udp_pair(avoid: &[u16]) -> u16 {
    for _ in 0..1000 {
        let port = 20000 + 2 * rand_below(5000);
        if avoid.iter().any(|other| other.abs_diff(port) < 2) {
            continue;
        }
        let bound =
            (std::net::UdpSocket::bind(("127.0.0.1", port)), std::net::UdpSocket::bind(("127.0.0.1", port + 1)));
        if let (Ok(_), Ok(_)) = bound {
            return port;
        }
    }
    panic!("no free pair of UDP ports in 20000-29999")
}

/// A number below `bound`, from the clock and the process id (no rand crate here).
fn rand_below(bound: u16) -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    (hasher.finish() % u64::from(bound)) as u16
}

/// Lines of ffmpeg's `framecrc` output for stream `index`: one per decoded frame.
fn decoded_frames(framecrc: &str, index: usize) -> usize {
    framecrc.lines().filter(|line| line.split(',').next().map(str::trim) == Some(&index.to_string())).count()
}

/// An independent RTP stack at both ends: ffmpeg publishes a VP8 + Opus test
/// pattern into `rtp-ingest` at one node; a second ffmpeg decodes the stream
/// taken out of another node through the SDP `consume --sdp` wrote.
#[test]
fn ffmpeg_publishes_at_one_node_and_ffmpeg_decodes_at_another() {
    let first = start(&[]);
    let second = start(&["--bootstrap", &first.addrs[0]]);
    std::thread::sleep(Duration::from_millis(300));
    let published = client(&[
        "publish",
        "tv",
        "--json",
        "--track",
        "video:vp8:101:1111",
        "--track",
        "audio:opus:100:2222",
        "--api",
        &first.api,
    ]);
    assert!(published.status.success(), "{}", String::from_utf8_lossy(&published.stderr));
    let ingest: serde_json::Value = serde_json::from_slice(&published.stdout).expect("publish --json prints JSON");
    let ingest = format!("{}:{}", ingest["ip"].as_str().expect("ip"), ingest["port"]);

    // Both tracks from one local port (comedia latches on the first source).
    let local = free_udp_port();
    let out = format!("udp://{ingest}?localport={local}&reuse=1&pkt_size=1200");
    let mut sender = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
        .args(["-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=15"])
        .args(["-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", "14"])
        .args(["-map", "0:v", "-c:v", "libvpx", "-deadline", "realtime", "-g", "15", "-b:v", "300k"])
        .args(["-payload_type", "101", "-ssrc", "1111", "-f", "rtp", &out])
        .args(["-map", "1:a", "-c:a", "libopus", "-payload_type", "100", "-ssrc", "2222", "-f", "rtp", &out])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("ffmpeg is installed (scripts/setup.sh installs it)");
    std::thread::sleep(Duration::from_secs(1));

    // The receiving ffmpeg binds each port and the next one (RTCP).
    let video_port = free_udp_pair(&[]);
    let audio_port = free_udp_pair(&[video_port]);
    let sdp = std::env::temp_dir().join(format!("mafalda-ffmpeg-{}.sdp", std::process::id()));
    let sdp_arg = sdp.to_str().expect("utf-8 path");
    let ports = format!("{video_port},{audio_port}");
    let to = format!("127.0.0.1:{video_port}");
    let consumed = client(&["consume", "tv", "--to", &to, "--ports", &ports, "--sdp", sdp_arg, "--api", &second.api]);
    assert!(consumed.status.success(), "{}", String::from_utf8_lossy(&consumed.stderr));
    let text = std::fs::read_to_string(&sdp).expect("the SDP file");
    assert!(text.contains(&format!("m=video {video_port} RTP/AVP")) && text.contains("VP8/90000"), "{text}");
    assert!(text.contains(&format!("m=audio {audio_port} RTP/AVP")) && text.contains("opus/48000/2"), "{text}");

    let receiver = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-protocol_whitelist", "file,udp,rtp"])
        .args(["-i", sdp_arg, "-t", "6", "-f", "framecrc", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("run the receiving ffmpeg");
    let _ = sender.kill();
    let _ = sender.wait();
    let _ = std::fs::remove_file(&sdp);
    let framecrc = String::from_utf8_lossy(&receiver.stdout);
    let (video, audio) = (decoded_frames(&framecrc, 0), decoded_frames(&framecrc, 1));
    eprintln!("ffmpeg decoded {video} video frames and {audio} audio frames from the egress");
    assert!(receiver.status.success(), "receiver failed: {}", String::from_utf8_lossy(&receiver.stderr));
    assert!(video >= 30, "video frames decoded: {video}");
    assert!(audio >= 100, "audio frames decoded: {audio}");
    for node in [second, first] {
        let (status, _) = stop(node, "TERM");
        assert!(status.success());
    }
}

/// A node stopped while an app's session holds a mediasoup worker closes the
/// session (the app's worker with it) and exits 0 within the bound, without
/// falling back to ending the process under a running worker thread
/// (src/process_exit.rs): such a thread races the destructors exit runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_while_an_app_holds_a_worker_closes_it_and_exits_cleanly() {
    let log_path = std::env::temp_dir().join(format!("mafalda-cli-app-worker-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path).expect("a log file");
    let node = NodeProcess::start_with_log(&["--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0"], log);
    let url = format!("ws://{}/v1/rope?format=json", node.api);
    let (app, _events) =
        mafalda_rope::Client::connect(url, mafalda_rope::ClientConfig::default()).await.expect("connect");
    let worker = mafalda_tests::rope::call_json(&app, None, "mediasoup.createWorker", serde_json::json!({}))
        .await
        .expect("an app worker");
    assert!(worker["id"].is_string(), "a worker: {worker}");

    let (status, took) = tokio::task::spawn_blocking(move || stop(node, "INT")).await.expect("stop");
    let log = std::fs::read_to_string(&log_path).expect("read the log");
    let _ = std::fs::remove_file(&log_path);
    assert!(status.success(), "exit status with an app's worker running: {status}\n{log}");
    assert!(took < EXIT_WITHIN, "exit took {took:?}\n{log}");
    assert!(
        !log.contains("exiting without exit handlers") && !log.contains("workers still running"),
        "a worker outlived the node: {log}"
    );
    drop(app);
}
