//! ROPE links between real nodes on loopback, and rogue peers that open link
//! streams by hand: oversized, malformed and flooding requests, too many
//! links, and links that outlive their use.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{Stream, noise, tcp, yamux};
use mafalda_rope::codec::cbor;
use mafalda_rope::{Message, Request, RequestId, Response, Value};
use mafalda_swarm::{
    CallError, InboundCall, Keypair, LINK_GREETING, Multiaddr, PeerId, ProtocolLabel, ROPE_LINK_PROTOCOL, RopeSettings,
    StartedSwarm, SwarmConfig, SwarmEvent, SwarmHandle, start,
};
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(10);

fn config(rope: RopeSettings) -> SwarmConfig {
    let listen: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr");
    SwarmConfig::new(Keypair::generate_ed25519(), vec![listen]).with_rope(rope)
}

struct Node {
    handle: SwarmHandle,
    addr: Multiaddr,
    events: mpsc::Receiver<SwarmEvent>,
    answered: Arc<AtomicUsize>,
}

/// A node answering every call with its params, except calls of method
/// `hold`: those it holds unanswered.
async fn spawn(rope: RopeSettings) -> Node {
    let StartedSwarm { handle, events, mut calls } = start(config(rope)).await.expect("start");
    let answered = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&answered);
    tokio::spawn(async move {
        let mut held: Vec<InboundCall> = Vec::new();
        while let Some(call) = calls.recv().await {
            if call.request.method != "hold" {
                counter.fetch_add(1, Ordering::SeqCst);
                let params = call.request.params.clone();
                let _ = call.respond(Ok(params)).await;
            } else {
                held.push(call);
            }
        }
    });
    let addr = handle.listen_addrs().await.expect("addrs").remove(0).with_p2p(handle.peer_id()).expect("p2p");
    Node { handle, addr, events, answered }
}

async fn connect(from: &Node, to: &Node) {
    from.handle.dial(to.addr.clone()).await.expect("dial");
    let connected = tokio::time::timeout(DEADLINE, async {
        while !from.handle.connected_peers().await.expect("peers").contains(&to.handle.peer_id()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(connected.is_ok(), "connected");
}

fn rope_streams_out(node: &Node) -> u64 {
    streams_out(&node.handle)
}

fn streams_out(handle: &SwarmHandle) -> u64 {
    handle.traffic().into_iter().find(|(label, _)| *label == ProtocolLabel::Rope).map_or(0, |(_, t)| t.streams_out)
}

/// Calls `to` until a call opens no stream of its own: the first goes by
/// request-response and opens the link in the background, the ones after
/// it take the link once it is open.
async fn until_calls_take_the_link(from: &SwarmHandle, to: PeerId) {
    let linked = tokio::time::timeout(DEADLINE, async {
        loop {
            let before = streams_out(from);
            assert_eq!(from.call(to, "echo", None, Value::Null).await, Ok(Value::Null));
            if streams_out(from) == before {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    linked.await.expect("calls take the link");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_a_connected_peer_share_one_link() {
    // Forty calls at once: within the callee's cap of calls in flight per
    // peer (past it, calls are refused as busy, which a test below checks).
    let mut roomy = RopeSettings::default();
    roomy.max_inbound_per_peer = 64;
    let a = spawn(roomy).await;
    let b = spawn(RopeSettings::default()).await;
    connect(&b, &a).await;
    until_calls_take_the_link(&b.handle, a.handle.peer_id()).await;
    let warm_up = a.answered.load(Ordering::SeqCst);
    let before = rope_streams_out(&b);
    let calls = (0..40).map(|i| {
        let handle = b.handle.clone();
        let peer = a.handle.peer_id();
        async move { handle.call(peer, "echo", None, Value::Integer(i.into())).await }
    });
    let answers = futures::future::join_all(calls).await;
    for (i, answer) in answers.into_iter().enumerate() {
        assert_eq!(answer, Ok(Value::Integer(i.into())), "call {i} answered with its own params");
    }
    for i in 0..20 {
        let answer = b.handle.call(a.handle.peer_id(), "echo", None, Value::Integer(i.into())).await;
        assert_eq!(answer, Ok(Value::Integer(i.into())));
    }
    assert_eq!(a.answered.load(Ordering::SeqCst) - warm_up, 60);
    // Request-response would have opened one stream per call.
    assert_eq!(rope_streams_out(&b), before, "sixty calls over the link, no new stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_peer_leaves_fails_at_once_and_the_next_call_opens_a_new_link() {
    let mut rope = RopeSettings::default();
    rope.request_timeout = Duration::from_secs(30);
    let silent = spawn(rope.clone()).await;
    let caller = spawn(rope).await;
    connect(&caller, &silent).await;
    until_calls_take_the_link(&caller.handle, silent.handle.peer_id()).await;
    let before = rope_streams_out(&caller);
    let pending = {
        let (handle, peer) = (caller.handle.clone(), silent.handle.peer_id());
        tokio::spawn(async move { handle.call(peer, "hold", None, Value::Null).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    silent.handle.shutdown().await.expect("shutdown");
    let failed = tokio::time::timeout(DEADLINE, pending).await.expect("well before the 30 s timeout").expect("task");
    assert!(matches!(failed, Err(CallError::Unreachable { .. })), "the link closed mid-call: {failed:?}");
    assert_eq!(rope_streams_out(&caller), before, "the held call went over the link");

    let answering = spawn(RopeSettings::default()).await;
    connect(&caller, &answering).await;
    let answer = caller.handle.call(answering.handle.peer_id(), "echo", None, Value::Bool(true)).await;
    assert_eq!(answer, Ok(Value::Bool(true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_link_closes_and_the_next_call_opens_another() {
    let quick = || {
        let listen: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr");
        let mut rope = RopeSettings::default();
        rope.link_idle = Duration::from_millis(500);
        SwarmConfig::new(Keypair::generate_ed25519(), vec![listen]).with_rope(rope)
    };
    let StartedSwarm { handle: a, calls: mut a_calls, .. } = start(quick()).await.expect("start");
    tokio::spawn(async move {
        while let Some(call) = a_calls.recv().await {
            let _ = call.respond(Ok(Value::Null)).await;
        }
    });
    let StartedSwarm { handle: b, .. } = start(quick()).await.expect("start");
    let a_addr = a.listen_addrs().await.expect("addrs").remove(0).with_p2p(a.peer_id()).expect("p2p");
    b.dial(a_addr).await.expect("dial");
    let connected = tokio::time::timeout(DEADLINE, async {
        while !b.connected_peers().await.expect("peers").contains(&a.peer_id()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    connected.await.expect("connected");
    let links = streams_out;
    until_calls_take_the_link(&b, a.peer_id()).await;
    let linked = links(&b);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The link closed when idle: the next call goes by request-response.
    assert_eq!(b.call(a.peer_id(), "echo", None, Value::Null).await, Ok(Value::Null));
    assert!(links(&b) > linked, "the idle link had closed: the call opened a stream of its own");
    until_calls_take_the_link(&b, a.peer_id()).await;
}

/// The taker of a link refuses an oversized call by its tag and then closes
/// the link (it cannot read past a body it did not read): the caller hears
/// the size error, and the call right after it is served, not sent on the
/// closing link and lost with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_call_after_one_refused_as_too_large_is_served() {
    let mut small = RopeSettings::default();
    small.max_message_bytes = 1024;
    let callee = spawn(small).await;
    let caller = spawn(RopeSettings::default()).await;
    connect(&caller, &callee).await;
    let peer = callee.handle.peer_id();
    let big = Value::Bytes(vec![7; 4096]);
    // Four rounds: a fifth oversized request would get the caller banned.
    for round in 0..4u8 {
        until_calls_take_the_link(&caller.handle, peer).await;
        match caller.handle.call(peer, "echo", None, big.clone()).await {
            Err(CallError::Remote(error)) => assert_eq!(error.code, -32002, "round {round}: too large: {error:?}"),
            other => panic!("round {round}: expected the size error, got {other:?}"),
        }
        let next = caller.handle.call(peer, "echo", None, Value::Integer(round.into())).await;
        assert_eq!(next, Ok(Value::Integer(round.into())), "round {round}: the next call is served");
    }
}

// --- rogue peers -------------------------------------------------------------

/// A bare libp2p peer connected to `target`, opening link streams by hand.
async fn rogue(target: &Node) -> libp2p_stream::Control {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .expect("tcp")
        .with_behaviour(|_| libp2p_stream::Behaviour::new())
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let control = swarm.behaviour().new_control();
    swarm.dial(target.addr.clone()).expect("dial");
    loop {
        if let libp2p::swarm::SwarmEvent::ConnectionEstablished { .. } = swarm.select_next_some().await {
            break;
        }
    }
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    control
}

/// The one peer `node` is connected to (a rogue), once the node sees it.
async fn only_peer_of(node: &Node) -> PeerId {
    tokio::time::timeout(DEADLINE, async {
        loop {
            if let Some(peer) = node.handle.connected_peers().await.expect("peers").first() {
                return *peer;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the rogue is connected")
}

/// A link to `to`, once the node has greeted it.
async fn open(control: &mut libp2p_stream::Control, to: &Node) -> Stream {
    let mut stream = control.open_stream(to.handle.peer_id(), ROPE_LINK_PROTOCOL).await.expect("opened");
    let mut greeting = [0u8; 1];
    tokio::time::timeout(DEADLINE, stream.read_exact(&mut greeting)).await.expect("in time").expect("greeted");
    assert_eq!(greeting[0], LINK_GREETING);
    stream
}

fn request(id: u64, params: Value) -> Vec<u8> {
    call_of("echo", id, params)
}

fn call_of(method: &str, id: u64, params: Value) -> Vec<u8> {
    let request = Request { id: RequestId::Number(id), method: method.into(), target: None, params };
    cbor::encode_with_limit(&Message::Request(request), usize::MAX).expect("encode")
}

/// Writes one frame; false once the node has closed the link or the connection.
async fn try_send(stream: &mut Stream, tag: u64, body: &[u8]) -> bool {
    let mut frame = u32::try_from(body.len()).expect("small").to_be_bytes().to_vec();
    frame.extend_from_slice(&tag.to_be_bytes());
    frame.extend_from_slice(body);
    stream.write_all(&frame).await.is_ok() && stream.flush().await.is_ok()
}

async fn send(stream: &mut Stream, tag: u64, body: &[u8]) {
    assert!(try_send(stream, tag, body).await, "written");
}

/// The next answer on `stream` (tag and response), or `None` once the node
/// closed the link.
async fn answer(stream: &mut Stream) -> Option<(u64, Response)> {
    tokio::time::timeout(DEADLINE, async {
        let mut header = [0u8; 12];
        stream.read_exact(&mut header).await.ok()?;
        let size = u32::from_be_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let tag = u64::from_be_bytes(header[4..].try_into().expect("8 bytes"));
        let mut body = vec![0u8; size];
        stream.read_exact(&mut body).await.ok()?;
        match cbor::decode_with_limit(&body, usize::MAX).expect("a message") {
            Message::Response(response) => Some((tag, response)),
            other => panic!("the node answered with {other:?}"),
        }
    })
    .await
    .expect("an answer or a close before the deadline")
}

async fn still_serves(node: &Node) {
    let honest = spawn(RopeSettings::default()).await;
    connect(&honest, node).await;
    let answer = honest.handle.call(node.handle.peer_id(), "echo", None, Value::Bool(true)).await;
    assert_eq!(answer, Ok(Value::Bool(true)), "an honest peer is still served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rogue_links_oversized_and_malformed_requests_get_errors_and_the_node_goes_on() {
    let mut rope = RopeSettings::default();
    rope.max_message_bytes = 1024;
    let node = spawn(rope).await;
    let mut control = rogue(&node).await;
    let mut link = open(&mut control, &node).await;

    // Answered on the same link, by tag.
    send(&mut link, 1, &request(1, Value::Text("hi".into()))).await;
    let (tag, response) = answer(&mut link).await.expect("answered");
    assert_eq!((tag, response.outcome), (1, Ok(Value::Text("hi".into()))));

    // Garbage that is no CBOR message: an error, and the link goes on.
    send(&mut link, 2, &[0xff, 0x00, 0x13]).await;
    let (tag, response) = answer(&mut link).await.expect("answered");
    assert_eq!(tag, 2);
    assert!(response.outcome.is_err(), "garbage is refused: {:?}", response.outcome);
    send(&mut link, 3, &request(3, Value::Null)).await;
    assert_eq!(answer(&mut link).await.map(|(tag, r)| (tag, r.outcome)), Some((3, Ok(Value::Null))));

    // Announcing 1 MiB against a 1 KiB limit: the size error, by tag, then the link closes.
    let mut header = (1u32 << 20).to_be_bytes().to_vec();
    header.extend_from_slice(&4u64.to_be_bytes());
    link.write_all(&header).await.expect("write");
    link.flush().await.expect("flush");
    let (tag, response) = answer(&mut link).await.expect("answered before the close");
    assert_eq!(tag, 4);
    let error = response.outcome.expect_err("too large");
    assert_eq!(error.code, -32002, "message too large: {error:?}");
    assert!(error.message.contains("limit"), "{}", error.message);
    assert!(answer(&mut link).await.is_none(), "the link is closed");
    still_serves(&node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rogue_flooding_a_link_is_answered_busy_past_the_cap_and_banned() {
    let mut rope = RopeSettings::default();
    rope.max_inbound_per_peer = 4;
    // Calls are held, never answered: each keeps its slot.
    let mut node = spawn(rope).await;
    let mut control = rogue(&node).await;
    let mut link = open(&mut control, &node).await;
    // Four hold the slots; the next eight are refused as busy, in order (not
    // enough to be banned yet).
    for tag in 0..12 {
        send(&mut link, tag, &call_of("hold", tag, Value::Null)).await;
    }
    for expected in 4..12 {
        let (tag, response) = answer(&mut link).await.expect("a refusal");
        assert_eq!(tag, expected, "the calls past the four in flight, in order");
        let error = response.outcome.expect_err("refused");
        assert_eq!(error.code, -32000, "busy: {error:?}");
    }
    // Flooding on gets the peer banned (and cut off mid-flood).
    for tag in 12..60 {
        if !try_send(&mut link, tag, &call_of("hold", tag, Value::Null)).await {
            break;
        }
    }
    let banned = tokio::time::timeout(DEADLINE, async {
        while let Some(event) = node.events.recv().await {
            if matches!(event, SwarmEvent::PeerBanned { .. }) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(banned, Ok(true), "the flooder is banned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rogue_gets_two_links_at_most() {
    let node = spawn(RopeSettings::default()).await;
    let mut control = rogue(&node).await;
    let mut first = open(&mut control, &node).await;
    let mut second = open(&mut control, &node).await;
    let mut third = control.open_stream(node.handle.peer_id(), ROPE_LINK_PROTOCOL).await.expect("opened");
    let mut greeting = [0u8; 1];
    let refused = tokio::time::timeout(DEADLINE, third.read_exact(&mut greeting)).await.expect("in time");
    assert!(refused.is_err(), "a third link is closed ungreeted");
    for (tag, link) in [(1, &mut first), (2, &mut second)] {
        send(link, tag, &request(tag, Value::Null)).await;
        assert_eq!(answer(link).await.map(|(t, r)| (t, r.outcome)), Some((tag, Ok(Value::Null))));
    }
    // Once one closes, another may open.
    first.close().await.expect("close");
    assert!(answer(&mut first).await.is_none(), "the node closes its half too");
    let mut fourth = open(&mut control, &node).await;
    send(&mut fourth, 4, &request(4, Value::Null)).await;
    assert_eq!(answer(&mut fourth).await.map(|(t, r)| (t, r.outcome)), Some((4, Ok(Value::Null))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_sent_on_a_link_closes_it() {
    let node = spawn(RopeSettings::default()).await;
    let mut control = rogue(&node).await;
    let mut link = open(&mut control, &node).await;
    let response = Response { id: Some(RequestId::Number(1)), outcome: Ok(Value::Null) };
    send(&mut link, 1, &cbor::encode_with_limit(&Message::Response(response), usize::MAX).expect("encode")).await;
    assert!(answer(&mut link).await.is_none(), "only requests go this way");
    still_serves(&node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_calls_a_peer_without_links_by_request_response() {
    // The rogue speaks no ROPE at all: the link is refused, and the call
    // fails as it did before links (request-response cannot negotiate ROPE
    // either), rather than being lost on a link or waiting out a timeout.
    let node = spawn(RopeSettings::default()).await;
    let _control = rogue(&node).await;
    let rogue_peer = only_peer_of(&node).await;
    let error = node.handle.call(rogue_peer, "echo", None, Value::Null).await.expect_err("no ROPE there");
    assert!(
        matches!(&error, CallError::UnsupportedProtocol(_))
            || matches!(&error, CallError::Io { reason, .. } if reason.contains("negotiation")),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_left_silent_is_closed_by_the_node() {
    let mut rope = RopeSettings::default();
    rope.link_idle = Duration::from_millis(200);
    let node = spawn(rope).await;
    let mut control = rogue(&node).await;
    let mut link = open(&mut control, &node).await;
    send(&mut link, 1, &request(1, Value::Null)).await;
    assert_eq!(answer(&mut link).await.map(|(t, r)| (t, r.outcome)), Some((1, Ok(Value::Null))));
    // Then nothing: the node closes the link after twice its idle time.
    assert!(answer(&mut link).await.is_none(), "the node closed the silent link");
    still_serves(&node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rogue_that_stops_reading_its_answers_loses_its_link_not_the_node() {
    let mut rope = RopeSettings::default();
    rope.request_timeout = Duration::from_secs(1);
    let node = spawn(rope).await;
    let mut control = rogue(&node).await;
    let mut link = open(&mut control, &node).await;
    // Eight answers of 200 KB each, more than the stream's window holds, and
    // nothing read until the node has had a call's timeout to write them.
    let big = Value::Bytes(vec![7; 200_000]);
    for tag in 0..8 {
        send(&mut link, tag, &request(tag, big.clone())).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut answered = 0;
    while let Some((_, response)) = answer(&mut link).await {
        assert!(response.outcome.is_ok());
        answered += 1;
    }
    assert!(answered < 8, "the node gave up on the link rather than wait for the reader: {answered} answered");
    still_serves(&node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_greeted_with_an_unknown_version_is_dropped_and_never_used() {
    let node = spawn(RopeSettings::default()).await;
    let control = rogue(&node).await;
    let mut incoming = control.clone().accept(ROPE_LINK_PROTOCOL).expect("accept links");
    let rogue_peer = only_peer_of(&node).await;
    // The call goes by request-response (which the rogue does not speak) and
    // opens a link in the background, which the rogue greets wrongly.
    assert!(node.handle.call(rogue_peer, "echo", None, Value::Null).await.is_err());
    let (_, mut link) = tokio::time::timeout(DEADLINE, incoming.next()).await.expect("a link").expect("open");
    link.write_all(&[LINK_GREETING + 6]).await.expect("greet");
    link.flush().await.expect("flush");
    // The node drops it without sending a call on it.
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(DEADLINE, link.read(&mut byte)).await.expect("dropped in time");
    assert!(matches!(read, Ok(0) | Err(_)), "nothing sent on a link greeted wrongly: {read:?}");
    let error = node.handle.call(rogue_peer, "echo", None, Value::Null).await.expect_err("still no ROPE there");
    assert!(!matches!(error, CallError::Timeout(_)), "calls fail as before, not on the link: {error:?}");
}
