//! Accepting connections with bounds, for every server of the process (the JobService's HTTP
//! and gRPC ports, the admission webhook, metrics and health).
//!
//! - At most `max_connections` connections at once; more wait in the kernel's backlog.
//! - Each connection is handled by its own task: a TLS handshake (under `handshake_timeout`)
//!   never delays another connection.
//! - A connection that sends and receives nothing for `idle_timeout` is closed, whether it is
//!   an HTTP/1.1 keep-alive, an HTTP/2 connection without streams or a TCP connection that
//!   never sent a byte.
//! - Request heads are bounded in time (`header_timeout`, HTTP/1.1) and size
//!   (`max_header_bytes`, both protocols); HTTP/2 streams per connection are bounded.
//! - Every request carries the connection's `Peer` (address, verified client certificate) in
//!   its extensions, for authentication.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
    time::{Instant, Sleep},
};
use tower::ServiceExt;

/// Which HTTP versions a server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocols {
    Http1,
    Http2,
    Both,
}

/// The bounds of one server.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub handshake_timeout: Duration,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_streams: u32,
    pub protocols: Protocols,
}

impl Limits {
    /// What the project's servers use unless they say otherwise: 10 s for a TLS handshake
    /// and for a request head, 64 KiB of headers, a connection idle for 60 s is closed.
    pub fn standard(protocols: Protocols) -> Limits {
        Limits {
            max_connections: 512,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 64 << 10,
            max_streams: 32,
            protocols,
        }
    }
}

/// The other end of a connection, in every request's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub addr: SocketAddr,
    /// The TLS client certificate (end entity, DER) when the server verified one.
    pub client_certificate: Option<Vec<u8>>,
}

/// Serves `app` on `listener` (over TLS when `tls` is given), forever.
pub async fn serve(listener: TcpListener, tls: Option<Arc<rustls::ServerConfig>>, limits: Limits, app: axum::Router) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let limits = Arc::new(limits);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return; // never: the semaphore is not closed
        };
        let (tcp, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, or a connection reset before it was accepted: the
                // listener itself is fine, so wait and accept again.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (tls, limits, app) = (tls.clone(), limits.clone(), app.clone());
        tokio::spawn(async move {
            let _slot = slot;
            connection(tcp, addr, tls, &limits, app).await;
        });
    }
}

async fn connection(
    tcp: TcpStream,
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: &Limits,
    app: axum::Router,
) {
    let _ = tcp.set_nodelay(true);
    let io = Idle::new(tcp, limits.idle_timeout);
    match tls {
        None => {
            let peer = Peer {
                addr,
                client_certificate: None,
            };
            http(io, peer, limits, app).await;
        }
        Some(config) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(io)).await {
                Ok(Ok(stream)) => {
                    let client_certificate = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .map(|cert| cert.as_ref().to_vec());
                    let peer = Peer {
                        addr,
                        client_certificate,
                    };
                    http(stream, peer, limits, app).await;
                }
                Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
            }
        }
    }
}

async fn http<IO>(io: IO, peer: Peer, limits: &Limits, app: axum::Router)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = app.map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(peer.clone());
        req
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(100);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(limits.max_streams)
        .max_pending_accept_reset_streams(Some(20))
        .keep_alive_interval(None);
    let builder = match limits.protocols {
        Protocols::Http1 => builder.http1_only(),
        Protocols::Http2 => builder.http2_only(),
        Protocols::Both => builder,
    };
    if let Err(e) = builder
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
        .await
    {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

pin_project_lite::pin_project! {
    /// A stream that fails with `TimedOut` once nothing was read or written for `timeout`.
    pub struct Idle<IO> {
        #[pin]
        io: IO,
        timer: Pin<Box<Sleep>>,
        timeout: Duration,
    }
}

impl<IO> Idle<IO> {
    pub fn new(io: IO, timeout: Duration) -> Self {
        Idle {
            io,
            timer: Box::pin(tokio::time::sleep(timeout)),
            timeout,
        }
    }

    /// Fails once the timer has fired; otherwise registers the waker with it.
    fn check(timer: &mut Pin<Box<Sleep>>, cx: &mut Context<'_>) -> Poll<io::Error> {
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "connection idle"))
    }

    /// A write's outcome: bytes written restart the idle timer; a write that waits fails once
    /// the timer fires.
    fn wrote(
        written: Poll<io::Result<usize>>,
        timer: &mut Pin<Box<Sleep>>,
        timeout: Duration,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    timer.as_mut().reset(Instant::now() + timeout);
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Self::check(timer, cx).map(Err),
        }
    }
}

impl<IO: AsyncRead> AsyncRead for Idle<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let me = self.project();
        let before = buf.filled().len();
        match me.io.poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    me.timer.as_mut().reset(Instant::now() + *me.timeout);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Self::check(me.timer, cx).map(Err),
        }
    }
}

impl<IO: AsyncWrite> AsyncWrite for Idle<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let me = self.project();
        let written = me.io.poll_write(cx, data);
        Self::wrote(written, me.timer, *me.timeout, cx)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let me = self.project();
        let written = me.io.poll_write_vectored(cx, bufs);
        Self::wrote(written, me.timer, *me.timeout, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_idle_stream_times_out_and_traffic_keeps_it_open() {
        let (client, server) = tokio::io::duplex(64);
        let mut idle = Idle::new(server, Duration::from_secs(10));
        let mut client = client;
        let mut buf = [0u8; 4];
        tokio::time::advance(Duration::from_secs(9)).await;
        client.write_all(b"ping").await.unwrap();
        idle.read_exact(&mut buf).await.unwrap();
        tokio::time::advance(Duration::from_secs(9)).await;
        client.write_all(b"pong").await.unwrap();
        idle.read_exact(&mut buf).await.unwrap();
        let err = idle.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
