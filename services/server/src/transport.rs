//! What the server does at the transport level, below the handlers: the
//! connections it accepts (no-delay, a limit on how many, an idle timeout,
//! TLS when configured, who the peer is),
//! and the status codes of requests that never reach a handler.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use tonic::transport::server::Connected;

use crate::tls::Tls;
use tonic::{Code, Status};

/// How the accepted connections are bounded.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Most connections open at once; more are closed as they come (and
    /// the log says so).
    pub max_connections: usize,
    /// A connection with no byte read or written for this long is closed.
    pub idle_timeout: Duration,
}

/// Who is at the other end of a connection: what the handlers can see
/// (tonic puts it in every request's extensions).
#[derive(Debug, Clone, Default)]
pub struct PeerInfo {
    /// The client's address.
    pub remote_addr: Option<SocketAddr>,
    /// Whether the listener binds city tokens to client certificates
    /// (mutual TLS, `crate::tls`).
    pub mutual_tls: bool,
    /// The city the client certificate names, if one was presented and
    /// names exactly one.
    pub client_city: Option<String>,
}

/// The connections accepted on `listener`: `TCP_NODELAY` set, at most
/// `max_connections` open, each closed after `idle_timeout` without
/// traffic, and with `tls`, TLS (each handshake on its own task, bounded by
/// [`HANDSHAKE_TIMEOUT`], so a slow handshake holds up no other handshake,
/// and holds its connection slot 10 s at most).
///
/// Why no-delay: a unary gRPC answer leaves in two writes (headers and
/// message, then the trailers). With Nagle's algorithm on, the second small
/// write waited for the client's delayed ACK: every call that did real work
/// took 44 ms. Why the limit and the timeout: idle connections were never
/// closed, and 1,100 of them used every file descriptor of a 1,024 limit,
/// locking everyone else out without a word in the log. Every listener this
/// server opens goes through here.
pub fn incoming(
    listener: TcpListener,
    limits: ConnectionLimits,
    tls: Option<Arc<Tls>>,
) -> impl Stream<Item = io::Result<Conn>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<Conn>(64);
    tokio::spawn(accept_loop(listener, limits, tls, tx));
    tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok)
}

/// A TLS handshake must finish within this (or the idle timeout, if
/// shorter): a client that connects and says nothing holds a connection
/// slot this long at most.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts until the server stops taking connections (the receiver drops).
async fn accept_loop(
    listener: TcpListener,
    limits: ConnectionLimits,
    tls: Option<Arc<Tls>>,
    tx: tokio::sync::mpsc::Sender<Conn>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    let mut last_warning: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            () = tx.closed() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors, say: wait a little instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if open.load(Ordering::Acquire) >= limits.max_connections {
            // Rate-limited: one line per 10 s is enough to see it.
            if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                last_warning = Some(Instant::now());
                tracing::warn!(%peer, max = limits.max_connections, "connection limit reached: closing new connections");
            }
            drop(stream);
            continue;
        }
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let slot = OpenSlot::take(open.clone());
        let mut info = PeerInfo {
            remote_addr: Some(peer),
            ..PeerInfo::default()
        };
        let Some(tls) = &tls else {
            let conn = Conn::new(Io::Plain(stream), info, limits.idle_timeout, slot);
            if tx.send(conn).await.is_err() {
                return;
            }
            continue;
        };
        let acceptor = tls.acceptor();
        info.mutual_tls = tls.mutual();
        let tx = tx.clone();
        tokio::spawn(async move {
            let deadline = limits.idle_timeout.min(HANDSHAKE_TIMEOUT);
            match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
                Ok(Ok(s)) => {
                    let (_, session) = s.get_ref();
                    info.client_city = session
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(crate::tls::city_of);
                    let conn = Conn::new(Io::Tls(Box::new(s)), info, limits.idle_timeout, slot);
                    let _ = tx.send(conn).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// One of the `max_connections`, held from accept to close.
struct OpenSlot(Arc<AtomicUsize>);

impl OpenSlot {
    fn take(open: Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::AcqRel);
        Self(open)
    }
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The byte stream under a connection.
enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// An accepted connection that counts itself open and closes when idle.
pub struct Conn {
    inner: Io,
    info: PeerInfo,
    idle_timeout: Duration,
    last_activity: Instant,
    timer: Pin<Box<Sleep>>,
    _slot: OpenSlot,
}

impl Conn {
    fn new(inner: Io, info: PeerInfo, idle_timeout: Duration, slot: OpenSlot) -> Self {
        Self {
            inner,
            info,
            idle_timeout,
            last_activity: Instant::now(),
            timer: Box::pin(tokio::time::sleep(idle_timeout)),
            _slot: slot,
        }
    }

    /// Whether the idle timeout has passed; arms the timer otherwise.
    fn idle(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = tokio::time::Instant::from_std(self.last_activity + self.idle_timeout);
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        self.timer.as_mut().poll(cx).is_ready()
    }
}

impl Connected for Conn {
    type ConnectInfo = PeerInfo;
    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.last_activity = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending if self.idle(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle too long",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.last_activity = Instant::now();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.last_activity = Instant::now();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The soft limit on open file descriptors of this process, from
/// `/proc/self/limits` (Linux); `None` elsewhere.
pub fn descriptor_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Gives the client's own mistakes, caught by tonic before a handler runs,
/// the codes the gRPC status code guide gives them:
/// - a message over the size limit is RESOURCE_EXHAUSTED (tonic says
///   OUT_OF_RANGE);
/// - a body that is not the request message (malformed protobuf, a string
///   field that is not UTF-8, no message at all) is INVALID_ARGUMENT (tonic
///   says INTERNAL, which would blame the server).
///
/// These answers are trailers-only, so the status is in the headers.
pub fn remap_decode_errors<B>(mut res: http::Response<B>) -> http::Response<B> {
    let Some(status) = Status::from_header_map(res.headers()) else {
        return res;
    };
    let message = status.message();
    let code = match status.code() {
        Code::OutOfRange if message.starts_with("Error, decoded message length too large") => {
            Code::ResourceExhausted
        }
        Code::Internal
            if message.starts_with("failed to decode Protobuf message")
                || message == "Missing request message." =>
        {
            Code::InvalidArgument
        }
        _ => return res,
    };
    let fixed = Status::new(code, message.to_owned());
    if fixed.add_header(res.headers_mut()).is_err() {
        tracing::warn!("could not rewrite a decode error's status");
    }
    res
}

/// The server's own request timeout, inside the RPC metrics: a call still
/// unanswered after it gets DEADLINE_EXCEEDED (retry later), where tonic's
/// built-in timeout answers CANCELLED ("Timeout expired"), a code clients
/// rightly do not retry. A client's shorter `grpc-timeout` is still applied
/// by tonic (the client gave up; its own library reports the deadline).
#[derive(Debug, Clone, Copy)]
pub struct DeadlineLayer(pub Duration);

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;
    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline {
            inner,
            after: self.0,
        }
    }
}

/// See [`DeadlineLayer`].
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    after: Duration,
}

impl<S, Req, B> tower::Service<Req> for Deadline<S>
where
    S: tower::Service<Req, Response = http::Response<B>>,
    S::Future: Send + 'static,
    B: Default,
{
    type Response = http::Response<B>;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<http::Response<B>, S::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let call = self.inner.call(req);
        let after = self.after;
        Box::pin(async move {
            match tokio::time::timeout(after, call).await {
                Ok(answer) => answer,
                Err(_) => Ok(Status::deadline_exceeded(format!(
                    "not answered within the server's request timeout ({} ms); retry later",
                    after.as_millis()
                ))
                .into_http()),
            }
        })
    }
}
