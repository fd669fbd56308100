//! Remote Mediasoup: mediasoup's whole object model over ROPE.
//!
//! An app connection (a ROPE [`Server`](mafalda_rope::Server) per
//! connection) gets a [`Session`]: through it the app creates workers,
//! routers, transports, producers, consumers, data producers and consumers,
//! RTP observers and WebRTC servers with mediasoup's own method and option
//! names, each a ROPE object of that connection, with mediasoup's events
//! carried as ROPE events and mediasoup's error classes in the errors
//! ([`ApiError`]). Everything a session made closes when it does. The wire
//! contract is `PROTOCOL.md` next to this crate.
//!
//! | module | owns |
//! |---|---|
//! | `session` | the per-connection object tree, caps, closing |
//! | `worker` | workers, WebRTC servers, the root calls |
//! | `router` | routers, `pipeToRouter`, `canConsume`, dumps |
//! | `transport` | WebRTC, plain, pipe and direct transports |
//! | `producer` | producers |
//! | `consumer` | consumers |
//! | `data` | data producers |
//! | `data_consumer` | data consumers |
//! | `observer` | audio level and active speaker observers |
//! | `room` | rooms spanning nodes: the room object, its transports' placement (the node implements [`RoomNode`]) |
//! | `rtp` | Node's RTP shapes against the crate's, errors as Node's classes |

mod consumer;
mod data;
mod data_consumer;
mod error;
mod host;
mod observer;
mod options;
mod producer;
mod room;
mod router;
mod rtp;
mod session;
mod transport;
mod wire;
mod worker;

pub use error::{ApiError, FORBIDDEN, INVALID_STATE, LIMIT_REACHED, MEDIASOUP_ERROR, UNSUPPORTED};
pub use host::{Host, HostConfig, Limits};
pub use room::{MAX_ROOMS_PER_CONNECTION, RoomMembership, RoomNode, RoomPlace, RoomProducer, RoomView, room_object_id};
pub use session::{Grants, Session};
pub use worker::WORKER_VERSION;
