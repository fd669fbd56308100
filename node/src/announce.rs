//! Providing a stream in the DHT, retried in the background when no peer
//! stored the record yet.

use std::sync::Arc;
use std::time::Duration;

use mafalda_swarm::stream_key;
use tracing::{debug, warn};

use crate::inner::{Inner, lock};

impl Inner {
    /// Provides `stream` in the DHT. When no peer stored the record (a busy or
    /// still-forming swarm), tries again in the background after 1, 2, 4, 8
    /// and 16 s while the stream is held, rather than waiting minutes for
    /// Kademlia's next republication.
    pub(crate) async fn announce(self: &Arc<Self>, stream: &str) {
        if matches!(self.swarm.provide(stream_key(stream)).await, Ok(stored) if stored > 0) {
            return;
        }
        // Weak: the retries must not keep a stopped node's state alive.
        let weak = Arc::downgrade(self);
        let stream = stream.to_owned();
        self.spawn("announce retries", async move {
            for delay in [1, 2, 4, 8, 16] {
                tokio::time::sleep(Duration::from_secs(delay)).await;
                let Some(inner) = weak.upgrade() else { return };
                if !lock(&inner.streams).contains_key(&stream) {
                    return;
                }
                match inner.swarm.provide(stream_key(&stream)).await {
                    Ok(stored) if stored > 0 => return debug!(stream, stored, "provider record stored on retry"),
                    Ok(_) => debug!(stream, "no peer stored the provider record yet"),
                    Err(error) => debug!(stream, %error, "provider announcement failed"),
                }
            }
            warn!(stream, "no peer stored the provider record; Kademlia republishes it later");
        });
    }
}
