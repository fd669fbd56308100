//! The rooms' acceptance with real clients: headless Chromium pages of the
//! room example (`clients/room/example`, using `clients/room/room.js` and
//! mediasoup-client) join one room at different nodes of a 3-node swarm,
//! publish Chromium's fake camera and microphone and play each other; a page
//! leaves, a node dies. Then ffmpeg takes part through plain transports
//! (driven over ROPE by the test, as an app would): its VP8 is played by a
//! page at another node, and a page's video is decoded by ffmpeg at a third. Real nodes, real mediasoup, real libp2p on
//! 127.0.0.1. `tests/browser/drive-room.mjs` drives the pages;
//! `scripts/setup.sh` installs chromium, ffmpeg and the npm packages.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mafalda_node::Node;
use mafalda_tests::browser::PageSite;
use mafalda_tests::process::Children;
use mafalda_tests::room::RoomApp;
use mafalda_tests::swarm::eventually;
use mafalda_tests::tcp_relay::TcpRelay;
use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where the driver serves its pages, and `count`
/// nodes, all joined through the first and connected to each other, whose
/// API lets pages from that origin (and no other) open `/v1/rope`.
async fn swarm_for_pages(count: usize) -> (PageSite, Vec<(Arc<Node>, SocketAddr)>) {
    let (site, mut config) = mafalda_tests::browser::page_site_and_api();
    // Long enough for a page whose WebSocket was cut to come back.
    config.session_grace = Duration::from_secs(5);
    // Pages may reach a node through a TCP relay on 127.0.0.1 (another port).
    config.hosts = vec!["127.0.0.1".parse().expect("a host")];
    (site, mafalda_tests::node::connected_webrtc_nodes(count, config).await)
}

/// `tests/browser/drive-room.mjs`, one command and one answer at a time.
/// Killed and reaped when dropped, so a failed assertion leaves no browser behind.
struct Pages {
    child: Child,
    stdin: ChildStdin,
    answers: mpsc::Receiver<String>,
}

impl Pages {
    fn start(site: PageSite) -> Self {
        let mut child = Command::new("node")
            .arg(repo().join("tests/browser/drive-room.mjs"))
            .args(site.args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node runs tests/browser/drive-room.mjs (scripts/setup.sh installs its packages)");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, answers) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, stdin, answers }
    }

    /// Sends `command`; its answer (within 60 s), whatever it says.
    async fn try_send(&mut self, command: Value) -> Value {
        writeln!(self.stdin, "{command}").expect("write to the driver");
        self.stdin.flush().expect("flush");
        let line = tokio::task::block_in_place(|| self.answers.recv_timeout(Duration::from_secs(60)))
            .unwrap_or_else(|e| panic!("the driver answers {command} ({e})"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("the driver answers JSON ({e}): {line}"))
    }

    /// Sends `command`; its answer, which must say ok.
    async fn send(&mut self, command: Value) -> Value {
        let answer = self.try_send(command.clone()).await;
        assert_eq!(answer["ok"], true, "{command} → {answer}");
        answer
    }

    /// Opens page `name` at the node whose API is `api`, in `room`; answers
    /// its producers' ids by kind (`{"audio": id, "video": id}`).
    async fn open(&mut self, name: &str, api: SocketAddr, room: &str) -> Value {
        let answer =
            self.send(json!({"cmd": "open", "page": name, "node": format!("ws://{api}/v1/rope"), "room": room})).await;
        by_kind(&answer["published"])
    }

    /// Waits until page `name` plays every one of `producers`.
    async fn wait_playing(&mut self, name: &str, producers: &[&Value]) -> u64 {
        let answer =
            self.send(json!({"cmd": "waitPlaying", "page": name, "producers": producers, "timeout": 20000})).await;
        answer["ms"].as_u64().expect("ms")
    }

    /// Waits (at most `timeout`) until page `name` plays none of `producers`.
    async fn wait_gone(&mut self, name: &str, producers: &[&Value], timeout: Duration) -> Value {
        let timeout = u64::try_from(timeout.as_millis()).expect("ms");
        self.try_send(json!({"cmd": "waitGone", "page": name, "producers": producers, "timeout": timeout})).await
    }

    /// Page `name`'s inbound stats, by producer id.
    async fn stats(&mut self, name: &str) -> Value {
        self.send(json!({"cmd": "stats", "page": name})).await["stats"].clone()
    }

    /// Asserts that page `name` started playing each of `producers` once
    /// since it joined and never stopped.
    async fn assert_never_stopped(&mut self, name: &str, producers: &[&Value]) {
        let log = self.send(json!({"cmd": "stats", "page": name})).await["log"].clone();
        let entries: Vec<&str> = log.as_array().expect("log").iter().filter_map(Value::as_str).collect();
        for producer in producers {
            let id = producer.as_str().expect("producer id");
            let started = entries.iter().filter(|entry| **entry == format!("+{id}")).count();
            let stopped = entries.iter().filter(|entry| **entry == format!("-{id}")).count();
            assert_eq!((started, stopped), (1, 0), "{name} played {id} once and never stopped: {log}");
        }
    }

    /// Asserts that page `name` decodes more frames of each of the `videos`
    /// (and receives more bytes of each of the `audios`) now than 3 s ago.
    async fn assert_plays(&mut self, name: &str, videos: &[&Value], audios: &[&Value]) -> Vec<u64> {
        let at = |stats: &Value, id: &Value, field: &str| {
            let id = id.as_str().expect("producer id");
            stats[id][field].as_u64().unwrap_or_else(|| panic!("{name} has stats for {id}: {stats}"))
        };
        let started = |stats: &Value| {
            videos.iter().all(|id| stats[id.as_str().expect("id")]["framesDecoded"].as_u64() > Some(0))
                && audios.iter().all(|id| stats[id.as_str().expect("id")]["bytesReceived"].as_u64() > Some(0))
        };
        // Inbound stats appear with the first packet: wait for it (and a first frame).
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut first = self.stats(name).await;
        while !started(&first) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(250)).await;
            first = self.stats(name).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let second = self.stats(name).await;
        let mut frames = Vec::new();
        for video in videos {
            let (before, after) = (at(&first, video, "framesDecoded"), at(&second, video, "framesDecoded"));
            assert!(before > 0 && after > before, "{name} decodes video {video}: {before} then {after} frames");
            frames.push(after);
        }
        for audio in audios {
            let (before, after) = (at(&first, audio, "bytesReceived"), at(&second, audio, "bytesReceived"));
            assert!(after > before, "{name} receives audio {audio}: {before} then {after} bytes");
        }
        frames
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"cmd": "quit"}));
        let _ = self.stdin.flush();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `{"id": "audio", ...}` turned into `{"audio": "id", ...}`, one of each kind.
fn by_kind(published: &Value) -> Value {
    let map = published.as_object().expect("published producers");
    assert_eq!(map.len(), 2, "a page publishes audio and video: {published}");
    let mut kinds = serde_json::Map::new();
    for (id, kind) in map {
        kinds.insert(kind.as_str().expect("kind").to_owned(), json!(id));
    }
    assert!(kinds.contains_key("audio") && kinds.contains_key("video"), "{published}");
    Value::Object(kinds)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_pages_at_three_nodes_meet_in_a_room_leave_and_outlive_a_dead_node() {
    let (site, nodes) = swarm_for_pages(3).await;
    let mut pages = Pages::start(site);
    let room = "meeting";
    // p1 at A, p2 at B, p3 at C.
    let p1 = pages.open("p1", nodes[0].1, room).await;
    let p2 = pages.open("p2", nodes[1].1, room).await;
    let mut p3 = pages.open("p3", nodes[2].1, room).await;

    // Each page plays the other two: both inbound videos decode, both audios arrive.
    let started = Instant::now();
    pages.wait_playing("p1", &[&p2["audio"], &p2["video"], &p3["audio"], &p3["video"]]).await;
    pages.wait_playing("p2", &[&p1["audio"], &p1["video"], &p3["audio"], &p3["video"]]).await;
    pages.wait_playing("p3", &[&p1["audio"], &p1["video"], &p2["audio"], &p2["video"]]).await;
    eprintln!("every page plays the other two {:?} after the last one published", started.elapsed());
    let frames = pages.assert_plays("p1", &[&p2["video"], &p3["video"]], &[&p2["audio"], &p3["audio"]]).await;
    eprintln!("p1 decoded {frames:?} frames of p2's and p3's videos");
    pages.assert_plays("p2", &[&p1["video"], &p3["video"]], &[&p1["audio"], &p3["audio"]]).await;
    pages.assert_plays("p3", &[&p1["video"], &p2["video"]], &[&p1["audio"], &p2["audio"]]).await;
    // Longer than a node's relay linger (10 s): a copy consumed only by room
    // consumers must not be let go under them.
    tokio::time::sleep(Duration::from_secs(13).saturating_sub(started.elapsed())).await;
    pages.assert_never_stopped("p1", &[&p2["audio"], &p2["video"], &p3["audio"], &p3["video"]]).await;
    pages.assert_never_stopped("p2", &[&p1["audio"], &p1["video"], &p3["audio"], &p3["video"]]).await;
    pages.assert_never_stopped("p3", &[&p1["audio"], &p1["video"], &p2["audio"], &p2["video"]]).await;
    eprintln!("every page played the other two without a break for {:?}", started.elapsed());

    // p3 leaves: the other pages' consumers of its producers close, and it plays nothing.
    let left = pages.send(json!({"cmd": "leave", "page": "p3"})).await;
    assert_eq!(left["state"], "left", "{left}");
    assert_eq!(left["playing"], json!({}), "a page that left plays nothing: {left}");
    for page in ["p1", "p2"] {
        let gone = pages.wait_gone(page, &[&p3["audio"], &p3["video"]], Duration::from_secs(5)).await;
        assert_eq!(gone["ok"], true, "{page}'s consumers of p3's producers closed: {gone}");
        eprintln!("p3 left; {page} let its producers go after {} ms", gone["ms"]);
    }
    let stats = pages.stats("p1").await;
    assert!(stats.get(p3["video"].as_str().expect("id")).is_none(), "no consumer of p3 left at p1: {stats}");

    // p3 joins again (new producers); everyone plays everyone again.
    let joined = pages.send(json!({"cmd": "join", "page": "p3"})).await;
    p3 = by_kind(&joined["published"]);
    pages.wait_playing("p1", &[&p3["audio"], &p3["video"]]).await;
    pages.wait_playing("p2", &[&p3["audio"], &p3["video"]]).await;
    pages.wait_playing("p3", &[&p1["audio"], &p1["video"], &p2["audio"], &p2["video"]]).await;

    // Node B dies: p2's producers close at p1 and p3 within 2 s.
    let killed = Instant::now();
    nodes[1].0.shutdown().await;
    let shut = killed.elapsed();
    for page in ["p1", "p3"] {
        let gone = pages.wait_gone(page, &[&p2["audio"], &p2["video"]], Duration::from_secs(2)).await;
        assert_eq!(gone["ok"], true, "{page} let p2's producers go within 2 s of B's end: {gone}");
        eprintln!("B shut down in {shut:?}; {page} let p2's producers go {} ms later", gone["ms"]);
    }
    eprintln!("node B's end to its producers gone at both pages: {:?}", killed.elapsed());

    // The other two still play each other. (A copy that came through B is
    // piped again from its origin, and the node closes the consumers of the
    // old one: then the page consumes the producer again.)
    pages.wait_playing("p1", &[&p3["audio"], &p3["video"]]).await;
    pages.wait_playing("p3", &[&p1["audio"], &p1["video"]]).await;
    let frames = pages.assert_plays("p1", &[&p3["video"]], &[&p3["audio"]]).await;
    eprintln!("after B died p1 decoded {frames:?} frames of p3's video");
    let frames = pages.assert_plays("p3", &[&p1["video"]], &[&p1["audio"]]).await;
    eprintln!("after B died p3 decoded {frames:?} frames of p1's video");
    for page in ["p1", "p3"] {
        let log = pages.send(json!({"cmd": "stats", "page": page})).await["log"].clone();
        eprintln!("{page} since it joined (+ played, - stopped): {log}");
    }
    let screenshot = repo().join("target/room-conference.png");
    pages.send(json!({"cmd": "screenshot", "page": "p1", "path": screenshot})).await;
    drop(pages);
    drop(nodes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_whose_websocket_is_cut_comes_back_with_its_session_and_plays_on() {
    let (site, nodes) = swarm_for_pages(2).await;
    // The page at A talks to its node through a relay the test can cut.
    let relay = TcpRelay::start(nodes[0].1).await;
    let mut pages = Pages::start(site);
    let cut = pages.open("cut", relay.addr(), "flaky").await;
    let other = pages.open("other", nodes[1].1, "flaky").await;
    pages.wait_playing("cut", &[&other["audio"], &other["video"]]).await;
    pages.wait_playing("other", &[&cut["audio"], &cut["video"]]).await;
    pages.assert_plays("other", &[&cut["video"]], &[&cut["audio"]]).await;

    // The cut: the page connects again with its session's token; nothing it
    // made closed, here or at the other node, and media never stopped.
    relay.cut();
    let back = pages.send(json!({"cmd": "waitReconnected", "page": "cut", "timeout": 5000})).await;
    eprintln!("the page's session came back {} ms after the cut", back["ms"]);
    assert_eq!(back["state"], "joined", "{back}");
    pages.assert_never_stopped("other", &[&cut["audio"], &cut["video"]]).await;
    pages.assert_never_stopped("cut", &[&other["audio"], &other["video"]]).await;
    let frames = pages.assert_plays("other", &[&cut["video"]], &[&cut["audio"]]).await;
    eprintln!("after the cut the other page decoded {frames:?} frames of the cut page's video");
    pages.assert_plays("cut", &[&other["video"]], &[&other["audio"]]).await;

    // The resumed connection drives the page's objects: it leaves, and the
    // other page's consumers of it close.
    let left = pages.send(json!({"cmd": "leave", "page": "cut"})).await;
    assert_eq!(left["state"], "left", "{left}");
    let gone = pages.wait_gone("other", &[&cut["audio"], &cut["video"]], Duration::from_secs(5)).await;
    assert_eq!(gone["ok"], true, "the other page let the cut page's producers go: {gone}");
    drop(pages);
    drop(relay);
    drop(nodes);
}

/// A free even UDP port on 127.0.0.1 whose next port is free too (ffmpeg
/// takes RTP on the first and RTCP on the second).
fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = socket.local_addr().expect("addr").port();
        if port.is_multiple_of(2) && port < u16::MAX && std::net::UdpSocket::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no free pair of UDP ports on 127.0.0.1");
}

/// What ffmpeg sends: VP8 with this SSRC and payload type.
const FFMPEG_SSRC: u32 = 22_222;
const FFMPEG_PT: u8 = 101;

/// VP8 RTP parameters of ffmpeg's stream, as mediasoup's Node API writes them.
fn vp8_parameters() -> Value {
    json!({
        "codecs": [{ "mimeType": "video/VP8", "payloadType": FFMPEG_PT, "clockRate": 90000,
                     "parameters": {}, "rtcpFeedback": [] }],
        "encodings": [{ "ssrc": FFMPEG_SSRC }],
        "headerExtensions": [],
        "rtcp": { "cname": "ffmpeg", "reducedSize": true }
    })
}

/// Lines of ffmpeg's `framecrc` output for stream 0: one per decoded frame.
fn decoded_frames(framecrc: &str) -> usize {
    framecrc.lines().filter(|line| line.split(',').next().map(str::trim) == Some("0")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_takes_part_in_a_room_through_plain_transports_at_two_nodes() {
    let (site, nodes) = swarm_for_pages(3).await;
    let room = "studio";
    let room_object = format!("room:{room}");
    let mut children = Children(Vec::new());

    // At A, an app publishes ffmpeg's VP8 test pattern in the room: a plain
    // transport that learns ffmpeg's address from its first packet (comedia).
    let a = RoomApp::connect(nodes[0].1).await;
    let joined = a.join(room).await;
    let vp8 = joined["rtpCapabilities"]["codecs"].as_array().is_some_and(|codecs| {
        codecs.iter().any(|codec| codec["mimeType"].as_str().is_some_and(|m| m.eq_ignore_ascii_case("video/VP8")))
    });
    assert!(vp8, "the room's routers take VP8: {joined}");
    let transport = a.ok(Some(&room_object), "createPlainTransport", json!({"comedia": true, "rtcpMux": true})).await;
    let transport_id = transport["id"].as_str().expect("transport id");
    let port = transport["tuple"]["localPort"].as_u64().expect("local port");
    assert_eq!(transport["tuple"]["localIp"], "127.0.0.1", "{transport}");
    let produced = a
        .ok(
            Some(transport_id),
            "produce",
            json!({"kind": "video", "rtpParameters": vp8_parameters(), "appData": {"name": "ffmpeg"}}),
        )
        .await;
    let ffmpeg_producer = json!(produced["id"].as_str().expect("producer id"));
    // ffmpeg's RTCP would come from another port and mislead comedia: RTP only.
    // A key frame a second (-g 15), since ffmpeg ignores PLIs.
    children.spawn(
        "ffmpeg (sender)",
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=15", "-t", "120"])
            .args(["-c:v", "libvpx", "-deadline", "realtime", "-b:v", "300k", "-g", "15"])
            .args(["-ssrc", &FFMPEG_SSRC.to_string(), "-payload_type", &FFMPEG_PT.to_string()])
            .args(["-rtpflags", "skip_rtcp", "-f", "rtp"])
            .arg(format!("rtp://127.0.0.1:{port}?pkt_size=1200"))
            .stdin(Stdio::null())
            .stdout(Stdio::null()),
    );

    // A page at B plays it. (A page asking for a room that cannot be gets a typed error.)
    let mut pages = Pages::start(site);
    let bad = pages
        .try_send(json!({"cmd": "open", "page": "bad", "node": format!("ws://{}/v1/rope", nodes[1].1), "room": "a/b"}))
        .await;
    let error = bad["error"].as_str().unwrap_or_default();
    assert!(
        bad["ok"] == false && error.contains("TypeError: room.join:") && error.contains("(-32602)"),
        "a bad room id is the node's TypeError in the page: {bad}"
    );
    let page = pages.open("b", nodes[1].1, room).await;
    let waited = pages.wait_playing("b", &[&ffmpeg_producer]).await;
    let frames = pages.assert_plays("b", &[&ffmpeg_producer], &[]).await;
    eprintln!("the page at B played ffmpeg's VP8 from A after {waited} ms; {frames:?} frames decoded");

    // At C, an app sends the page's video to ffmpeg through a plain transport.
    let c = RoomApp::connect(nodes[2].1).await;
    c.join(room).await;
    let page_video = page["video"].as_str().expect("video id").to_owned();
    assert!(
        c.sees(room, Duration::from_secs(5), |state| state["producers"]
            .as_array()
            .is_some_and(|producers| producers.iter().any(|p| p["id"] == page_video.as_str())))
            .await,
        "C's app sees the page's video"
    );
    let capabilities = c.room(room).expect("in the room")["rtpCapabilities"].clone();
    let rtp_port = free_port_pair();
    let transport = c.ok(Some(&room_object), "createPlainTransport", json!({"comedia": false, "rtcpMux": false})).await;
    let transport_id = transport["id"].as_str().expect("transport id");
    c.ok(Some(transport_id), "connect", json!({"ip": "127.0.0.1", "port": rtp_port, "rtcpPort": rtp_port + 1})).await;
    let consumer = c
        .ok(
            Some(transport_id),
            "consume",
            json!({"producerId": page_video, "rtpCapabilities": capabilities, "paused": true}),
        )
        .await;
    assert_eq!(consumer["producerId"], page_video.as_str(), "{consumer}");
    let codec = &consumer["rtpParameters"]["codecs"][0];
    let mime = codec["mimeType"].as_str().expect("mime type");
    assert!(mime.eq_ignore_ascii_case("video/VP8"), "the page sends VP8: {consumer}");
    let payload_type = codec["payloadType"].as_u64().expect("payload type");
    let sdp = format!(
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=room\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=video {rtp_port} RTP/AVP {payload_type}\r\na=rtpmap:{payload_type} VP8/90000\r\na=recvonly\r\n"
    );
    let sdp_file = std::env::temp_dir().join(format!("mafalda-room-{rtp_port}.sdp"));
    std::fs::write(&sdp_file, sdp).expect("write the SDP");
    let receiver = children.spawn(
        "ffmpeg (receiver)",
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-protocol_whitelist", "file,udp,rtp"])
            .arg("-i")
            .arg(&sdp_file)
            .args(["-t", "5", "-f", "framecrc", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let (stdout, stderr) = (receiver.stdout.take().expect("stdout"), receiver.stderr.take().expect("stderr"));
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let (stdout, stderr) = (read(Box::new(stdout)), read(Box::new(stderr)));
    // Resumed once ffmpeg listens: the consumer asks the page for a key frame.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let consumer_id = consumer["id"].as_str().expect("consumer id");
    c.ok(Some(consumer_id), "resume", json!(null)).await;
    let started = Instant::now();
    let finished = eventually(Duration::from_secs(30), || {
        let done = matches!(children.0.last_mut().expect("receiver").try_wait(), Ok(Some(_)));
        async move { done }
    })
    .await;
    if !finished {
        let _ = children.0.last_mut().expect("receiver").kill();
    }
    let framecrc = stdout.join().expect("stdout reader");
    let errors = stderr.join().expect("stderr reader");
    let frames = decoded_frames(&framecrc);
    eprintln!("ffmpeg at C decoded {frames} frames of the page's video in {:?}", started.elapsed());
    let _ = std::fs::remove_file(&sdp_file);
    assert!(finished, "ffmpeg decoded 5 s of the page's video within 30 s ({frames} frames): {errors}");
    assert!(frames >= 30, "ffmpeg decoded the page's video: {frames} frames\n{errors}");
    drop(pages);
    drop(children);
    drop(nodes);
}
