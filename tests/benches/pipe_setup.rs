//! What each step of making a pipe costs at a mediasoup worker, as a node makes
//! it: open an end, connect it, consume a track into it (the provider), make
//! the producer from it (the asker), and the asker's connect and producer sent
//! together (`pipes::produce_offered`).
//!
//! `cargo bench -p mafalda-tests --bench pipe_setup` makes 100 pipes on one
//! worker, each closed before the next, so every first connect comes with no
//! other SRTP session open in the process (NSS stays loaded only because the
//! engine holds it: `mafalda_nss_link::hold_nss_open`). It prints medians with
//! the worker kept busy (steps back to back) and with 20 ms of idle before
//! each step, as between a node's calls: waking an idle worker thread and
//! the task that awaits it costs more than most steps.

use std::time::{Duration, Instant};

use mafalda_media::mediasoup::prelude::*;
use mafalda_media::pipe;
use mafalda_media::transports::plain_ingest;
use mafalda_media::{MediaConfig, MediaEngine};
use mafalda_tests::media::{LOOPBACK, opus_producer_parameters, opus_router_options};

const PIPES: usize = 100;

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Times `step` after `idle`.
async fn timed<T>(idle: Duration, into: &mut Vec<Duration>, step: impl std::future::Future<Output = T>) -> T {
    if !idle.is_zero() {
        tokio::time::sleep(idle).await;
    }
    let started = Instant::now();
    let done = step.await;
    into.push(started.elapsed());
    done
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    runtime.block_on(async {
        let mut config = MediaConfig::default();
        config.workers = 1;
        let engine = MediaEngine::start(config).await.expect("engine");
        let router = engine.create_router(opus_router_options()).await.expect("router");
        let (ingest, _) = plain_ingest(&router, LOOPBACK, None).await.expect("ingest");
        let producer = ingest
            .produce(ProducerOptions::new(MediaKind::Audio, opus_producer_parameters(7)))
            .await
            .expect("produce");
        println!("one worker, {PIPES} pipes each closed before the next; medians:");
        for idle in [Duration::ZERO, Duration::from_millis(20)] {
            let (mut open, mut first_connect, mut connect, mut send, mut receive, mut asker) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for _ in 0..PIPES {
                let (a, a_end) = timed(idle, &mut open, pipe::open_pipe(&router, LOOPBACK, None)).await.expect("open");
                let (b, b_end) = pipe::open_pipe(&router, LOOPBACK, None).await.expect("open");
                timed(idle, &mut first_connect, pipe::connect_pipe(&a, &b_end)).await.expect("connect");
                timed(idle, &mut connect, pipe::connect_pipe(&b, &a_end)).await.expect("connect");
                let (consumer, track) = timed(idle, &mut send, pipe::send_track(&a, producer.id())).await.expect("send");
                drop(timed(idle, &mut receive, pipe::receive_track(&b, &track)).await.expect("receive"));
                let (c, _) = pipe::open_pipe(&router, LOOPBACK, None).await.expect("open");
                let together = async { tokio::join!(pipe::connect_pipe(&c, &a_end), pipe::receive_track(&c, &track)) };
                let (connected, received) = timed(idle, &mut asker, together).await;
                connected.expect("connect");
                drop(received.expect("receive"));
                drop((a, b, c, consumer));
            }
            println!(
                "{:>2} ms idle before each: open {:.0?}, first connect {:.0?}, connect {:.0?}, send a track {:.0?}, receive it {:.0?}, asker's connect + receive {:.0?}",
                idle.as_millis(),
                median(&mut open),
                median(&mut first_connect),
                median(&mut connect),
                median(&mut send),
                median(&mut receive),
                median(&mut asker),
            );
        }
        drop((producer, ingest, router));
        engine.close().await;
    });
}
