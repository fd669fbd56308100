//! Helpers shared by the integration tests in `tests/tests/`: RTP packets built and
//! checked by hand at real UDP sockets, and small mediasoup set-ups.
//!
//! Nothing here mocks mediasoup or libp2p; the helpers only save each test from
//! repeating how a packet is laid out or how a plain transport is opened.

pub mod browser;
pub mod http;
pub mod media;
pub mod node;
pub mod ports;
pub mod process;
pub mod room;
pub mod rope;
pub mod rtp;
pub mod sdp;
pub mod swarm;
pub mod tcp_relay;

use mafalda_nss_link as _;

/// Logs to the test's output when `RUST_LOG` is set (`RUST_LOG=mafalda_swarm=debug
/// cargo nextest run … --no-capture`): what a failure under load needs to be read.
pub fn log_if_asked() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        }
    });
}
