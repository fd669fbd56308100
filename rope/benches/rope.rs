//! ROPE figures: encode+decode of a typical request in both codecs (criterion),
//! and calls per second with p50/p99 latency over a loopback WebSocket.
//!
//! `cargo bench -p mafalda-rope --bench rope`

use std::sync::Arc;
use std::time::Instant;

use criterion::Criterion;
use futures::future::BoxFuture;
use mafalda_rope::codec::{cbor, json};
use mafalda_rope::transport::websocket;
use mafalda_rope::{Client, ClientConfig, Handler, Message, Request, RequestId, RpcError, Server, Value};

fn typical_request() -> Message {
    let text = |s: &str| Value::Text(s.to_owned());
    Message::Request(Request {
        id: RequestId::Number(42),
        method: "router.createPipeTransport".into(),
        target: Some("7f3b2c1e-router".into()),
        params: Value::Map(vec![
            (text("listenIp"), text("127.0.0.1")),
            (text("enableSrtp"), Value::Bool(true)),
            (text("enableRtx"), Value::Bool(true)),
            (text("producerId"), text("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")),
            (text("kind"), text("video")),
            (text("ssrc"), Value::Integer(123_456_789.into())),
        ]),
    })
}

fn codecs(c: &mut Criterion) {
    let message = typical_request();
    c.bench_function("cbor encode+decode typical request", |b| {
        b.iter(|| cbor::decode(&cbor::encode(std::hint::black_box(&message)).expect("encode")).expect("decode"))
    });
    c.bench_function("json encode+decode typical request", |b| {
        b.iter(|| json::decode(&json::encode(std::hint::black_box(&message)).expect("encode")).expect("decode"))
    });
}

struct Echo;

impl Handler for Echo {
    fn call(&self, request: Request) -> BoxFuture<'static, Result<Value, RpcError>> {
        Box::pin(async move { Ok(request.params) })
    }
}

/// Sequential calls over one loopback WebSocket: calls/s and latency percentiles.
fn websocket_round_trip(format: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    runtime.block_on(async {
        let server = Server::new(Arc::new(Echo));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        websocket::serve(listener, server);
        let url = format!("ws://{addr}/v1/rope{format}");
        let (client, _events) = Client::connect(url, ClientConfig::default()).await.expect("connect");
        let Message::Request(request) = typical_request() else { unreachable!() };
        for _ in 0..1000 {
            client.call("echo", None, request.params.clone()).await.expect("warm-up");
        }
        let calls = 20_000;
        let mut latencies = Vec::with_capacity(calls);
        let started = Instant::now();
        for _ in 0..calls {
            let sent = Instant::now();
            client.call("echo", None, request.params.clone()).await.expect("call");
            latencies.push(sent.elapsed());
        }
        let total = started.elapsed();
        latencies.sort();
        let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
        println!(
            "websocket round trip ({}): {calls} sequential calls in {total:.2?}: {:.0} calls/s, p50 {:?}, p99 {:?}",
            if format.is_empty() { "CBOR" } else { "JSON" },
            calls as f64 / total.as_secs_f64(),
            at(0.50),
            at(0.99),
        );
    });
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    codecs(&mut criterion);
    criterion.final_summary();
    websocket_round_trip("");
    websocket_round_trip("?format=json");
}
