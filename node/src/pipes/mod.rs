//! Both halves of the pipe handshake between two nodes (`stream.pipe`), the
//! checks each side makes on what the other sends, and the pipes a provider
//! keeps for its downstream peers: the asker's half in `pull`, the
//! provider's in `serve`, what both use here. Streams between two nodes
//! after the first ride a kept pipe pair (`pipe_pairs`).

mod pull;
mod serve;

use std::net::IpAddr;

use mafalda_media::mediasoup::prelude::{PipeTransport, Router};
use mafalda_media::pipe::{self, PipeEndpoint};
use mafalda_swarm::PeerId;

use crate::inner::Inner;

#[cfg(test)]
pub(crate) use pull::check_offer;
pub(crate) use pull::{LocalEnd, open_local_end, pull, pull_into, pull_offered, pull_through, tell_unpipe};
pub use serve::DEFAULT_MAX_PIPES_PER_PEER;

/// A pipe transport on `router`, on this node's media IP for a peer whose
/// connection comes from `peer_ip` (announcing its public IP, if known).
pub(crate) async fn open_pipe_on(
    inner: &Inner,
    router: &Router,
    peer_ip: Option<IpAddr>,
) -> Result<(PipeTransport, PipeEndpoint), mafalda_media::MediaError> {
    let (media_ip, announced) = inner.pipe_ips(peer_ip);
    pipe::open_pipe(router, media_ip, announced).await
}

impl Inner {
    /// The media IP for a pipe with a peer whose connection comes from
    /// `peer_ip` ([`NodeConfig::media_ip_for`](crate::NodeConfig)), and the
    /// address its end announces: the configured one, else the one the swarm
    /// confirmed peers reach this node at in that family when it is not the
    /// media IP (a 1:1 NAT, a forwarded port), else none (the media IP itself).
    pub(crate) fn pipe_ips(&self, peer_ip: Option<IpAddr>) -> (IpAddr, Option<String>) {
        let (media_ip, configured) = self.config.media_ip_for(peer_ip);
        let learned = self.swarm.mapped_ip(media_ip).filter(|ip| *ip != media_ip);
        (media_ip, configured.or(learned).map(|ip| ip.to_string()))
    }

    /// The IP `peer`'s oldest direct connection comes from, if any.
    pub(crate) async fn peer_ip(&self, peer: PeerId) -> Option<IpAddr> {
        self.swarm.peer_ips(peer).await.ok().and_then(|ips| ips.first().copied())
    }
}

/// Polls `requests` once (a mediasoup call sends its request at its first
/// poll), does `work` while the worker answers, then awaits the answers: the
/// CPU of `work` (a signature made or checked) is then off the path.
async fn sent_then<T, W>(requests: impl std::future::Future<Output = T>, work: impl FnOnce() -> W) -> (T, W) {
    let mut requests = std::pin::pin!(requests);
    let early = futures::poll!(requests.as_mut());
    let done = work();
    let answered = match early {
        std::task::Poll::Ready(answered) => answered,
        std::task::Poll::Pending => requests.await,
    };
    (answered, done)
}
