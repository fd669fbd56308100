//! Whether a provider pipes a stream to the node asking for it, or sends the
//! asker to the stream's relays (policy only: the caller reads the load from
//! the media engine and the relays from the stream).
//!
//! Over its watermark a provider spreads the stream: it answers busy, naming
//! the peers it pipes the stream to, and the asker pipes from one of them. A
//! stream it pipes to nobody has no one to spread to, and a busy answer would
//! leave it unreachable from the rest of the swarm while this node still has
//! room below its full capacity: that first pipe is served, and the relay it
//! makes takes the newcomers after it. A draining node, or one at full
//! capacity, serves none.

/// The node's state as a pipe request finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Load {
    /// Every worker is over the watermark (`MediaEngine::is_saturated`).
    pub(crate) saturated: bool,
    /// Every worker is at its full capacity (`MediaEngine::is_full`).
    pub(crate) full: bool,
    /// The node is draining: its streams move elsewhere.
    pub(crate) draining: bool,
}

/// What a provider answers a pipe request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Pipe the stream to the asker.
    Serve,
    /// Answer busy, naming these peers (the stream's relays) to ask instead.
    Busy(Vec<String>),
}

/// The answer to a pipe request for a stream this node pipes to `relays`
/// (the asker left out), under `load`.
pub(crate) fn admit(load: Load, relays: Vec<String>) -> Admission {
    let serve = !load.draining && (!load.saturated || (relays.is_empty() && !load.full));
    if serve { Admission::Serve } else { Admission::Busy(relays) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Load = Load { saturated: false, full: false, draining: false };
    const OVER_WATERMARK: Load = Load { saturated: true, full: false, draining: false };
    const FULL: Load = Load { saturated: true, full: true, draining: false };

    fn relays() -> Vec<String> {
        vec!["relay".to_owned()]
    }

    #[test]
    fn under_the_watermark_every_pipe_is_served() {
        assert_eq!(admit(IDLE, Vec::new()), Admission::Serve);
        assert_eq!(admit(IDLE, relays()), Admission::Serve);
    }

    #[test]
    fn over_the_watermark_newcomers_go_to_the_relays_and_a_stream_without_any_gets_its_first() {
        assert_eq!(admit(OVER_WATERMARK, relays()), Admission::Busy(relays()));
        assert_eq!(admit(OVER_WATERMARK, Vec::new()), Admission::Serve, "the first relay is made here");
    }

    #[test]
    fn a_full_or_draining_node_serves_none() {
        assert_eq!(admit(FULL, Vec::new()), Admission::Busy(Vec::new()));
        assert_eq!(admit(FULL, relays()), Admission::Busy(relays()));
        let draining = Load { draining: true, ..IDLE };
        assert_eq!(admit(draining, Vec::new()), Admission::Busy(Vec::new()), "its streams move elsewhere");
        assert_eq!(admit(draining, relays()), Admission::Busy(relays()));
    }
}
