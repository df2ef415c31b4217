//! A TCP proxy between a server and its Postgres, which a test can cut and
//! restore: the database "goes away" for one server only, while every other
//! test keeps using the shared Postgres.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

/// A running proxy.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    cut: broadcast::Sender<()>,
    sends: Arc<AtomicU64>,
}

impl Proxy {
    /// Forwards connections on a new local port to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = broadcast::channel(4);
        let sends = Arc::new(AtomicU64::new(0));
        let (up2, cut2, sends2) = (up.clone(), cut.clone(), sends.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut stop = cut2.subscribe();
                let sends = sends2.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    // Forwarded as they come, like a direct connection.
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    tokio::select! {
                        _ = forward_counting(&mut cr, &mut sw, &sends) => {}
                        _ = tokio::io::copy(&mut sr, &mut cw) => {}
                        _ = stop.recv() => {}
                    }
                });
            }
        });
        Proxy {
            addr,
            up,
            cut,
            sends,
        }
    }

    /// How many times a client has sent something through it so far: each
    /// send is one read of whatever the client had written, so a request
    /// and its answer make one, and a client that waits for an answer
    /// before it sends again makes one per round trip.
    pub fn client_sends(&self) -> u64 {
        self.sends.load(Ordering::SeqCst)
    }

    /// Closes every connection through it and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        let _ = self.cut.send(());
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` until either ends, counting each read in `sends`.
async fn forward_counting(
    from: &mut (impl AsyncReadExt + Unpin),
    to: &mut (impl AsyncWriteExt + Unpin),
    sends: &AtomicU64,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        sends.fetch_add(1, Ordering::SeqCst);
        to.write_all(&buf[..n]).await?;
    }
}
