//! The two floods: HTTP/2 streams without a token whose body never ends,
//! and TCP connections that send nothing at all.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tonic::transport::Endpoint;

/// A codec of raw bytes: the flood puts on the wire what no generated
/// client would.
#[derive(Clone, Default)]
struct Raw;

impl tonic::codec::Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl tonic::codec::Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// A running slow-body flood.
pub struct SlowBodies {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    ended: Arc<AtomicU64>,
    longest_ms: Arc<AtomicU64>,
    /// Streams opened.
    pub opened: Arc<AtomicU64>,
}

impl SlowBodies {
    /// Opens `per_connection` streams on each of `connections` new
    /// connections to every address; each stream that the server ends is
    /// opened again until [`SlowBodies::finish`].
    pub async fn start(
        urls: &[String],
        connections: usize,
        per_connection: usize,
    ) -> anyhow::Result<Self> {
        let flood = Self {
            stop: Arc::new(AtomicBool::new(false)),
            tasks: Vec::new(),
            ended: Arc::new(AtomicU64::new(0)),
            longest_ms: Arc::new(AtomicU64::new(0)),
            opened: Arc::new(AtomicU64::new(0)),
        };
        let mut tasks = Vec::new();
        for url in urls {
            for _ in 0..connections {
                let channel = Endpoint::from_shared(url.clone())?.connect_lazy();
                for _ in 0..per_connection {
                    let channel = channel.clone();
                    let stop = flood.stop.clone();
                    let ended = flood.ended.clone();
                    let longest = flood.longest_ms.clone();
                    let opened = flood.opened.clone();
                    tasks.push(tokio::spawn(async move {
                        while !stop.load(Ordering::Relaxed) {
                            let mut grpc = tonic::client::Grpc::new(channel.clone());
                            if grpc.ready().await.is_err() {
                                tokio::time::sleep(Duration::from_millis(100)).await;
                                continue;
                            }
                            opened.fetch_add(1, Ordering::Relaxed);
                            let t0 = Instant::now();
                            // No token, and a body that never ends.
                            let body = futures::stream::pending::<Vec<u8>>();
                            let _ = grpc
                                .client_streaming(
                                    tonic::Request::new(body),
                                    http::uri::PathAndQuery::from_static(
                                        "/g60.talent.v1.CredentialService/GetCredential",
                                    ),
                                    Raw,
                                )
                                .await;
                            let ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
                            longest.fetch_max(ms, Ordering::Relaxed);
                            ended.fetch_add(1, Ordering::Relaxed);
                        }
                    }));
                }
            }
        }
        Ok(Self { tasks, ..flood })
    }

    /// Stops reopening and drops the open streams. Returns how many the
    /// server ended and the longest any of them stayed open.
    pub async fn finish(self) -> (u64, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
        (
            self.ended.load(Ordering::Relaxed),
            Duration::from_millis(self.longest_ms.load(Ordering::Relaxed)),
        )
    }
}

/// Idle TCP connections: opened, never written to, each watched until the
/// server closes it.
pub struct IdleConnections {
    opened: usize,
    closed: tokio::sync::mpsc::UnboundedReceiver<Duration>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl IdleConnections {
    /// Opens `per_address` connections to each of `addrs` (`host:port`).
    pub async fn open(addrs: &[String], per_address: usize) -> anyhow::Result<Self> {
        let (tx, closed) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for addr in addrs {
            for _ in 0..per_address {
                let mut s = tokio::net::TcpStream::connect(addr).await?;
                let tx = tx.clone();
                let t0 = Instant::now();
                tasks.push(tokio::spawn(async move {
                    let mut buf = [0u8; 256];
                    // The server's HTTP/2 preface may come; then the end.
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                    }
                    let _ = tx.send(t0.elapsed());
                }));
            }
        }
        Ok(Self {
            opened: tasks.len(),
            closed,
            tasks,
        })
    }

    /// How many were opened.
    pub fn opened(&self) -> usize {
        self.opened
    }

    /// Waits until all are closed or `within` passed; returns how many the
    /// server closed and the longest one stayed open. Closes the rest.
    pub async fn wait_closed(mut self, within: Duration) -> (usize, Duration) {
        let deadline = tokio::time::Instant::now() + within;
        let mut n = 0;
        let mut longest = Duration::ZERO;
        while n < self.opened {
            match tokio::time::timeout_at(deadline, self.closed.recv()).await {
                Ok(Some(d)) => {
                    n += 1;
                    longest = longest.max(d);
                }
                _ => break,
            }
        }
        for t in &self.tasks {
            t.abort();
        }
        (n, longest)
    }
}
