//! A TCP relay a test puts between an app and a node, to cut the app's
//! connection as a network would (both sides see it close) while the app
//! can connect through it again.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::media::LOOPBACK;

/// A relay listening on 127.0.0.1; dropping it stops it.
pub struct TcpRelay {
    addr: SocketAddr,
    cuts: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpRelay {
    /// Relays every connection made to [`TcpRelay::addr`] to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind((LOOPBACK, 0)).await.expect("bind the relay");
        let addr = listener.local_addr().expect("relay addr");
        let (cuts, watching) = watch::channel(0u64);
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut cut = watching.clone();
                cut.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { addr, cuts, task }
    }

    /// Where apps connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every connection relayed now; later ones go through.
    pub fn cut(&self) {
        self.cuts.send_modify(|generation| *generation += 1);
    }
}

impl Drop for TcpRelay {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}
