//! Helpers shared by the integration tests in `tests/tests/`: RTP packets built and
//! checked by hand at real UDP sockets, and small mediasoup set-ups.
//!
//! Nothing here mocks mediasoup or libp2p; the helpers only save each test from
//! repeating how a packet is laid out or how a plain transport is opened.

pub mod http;
pub mod media;
pub mod node;
pub mod process;
pub mod room;
pub mod rope;
pub mod rtp;
pub mod swarm;
pub mod tcp_relay;

use mafalda_nss_link as _;
