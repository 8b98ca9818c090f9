//! tokio behind adapter-common's runtime seam: sockets, listeners, a
//! timer, spawn. Everything else (the server, the connection driver, the
//! client) is adapter-common's, written once for every async runtime.

use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use adapter_common::runtime::{Arrival, Input};
use adapter_common::{Endpoint, Net, SocketOptions, StdListener, configure_tcp};
use bytes::BufMut;
use socket2::SockRef;
use tokio::io::AsyncWrite;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// The tokio runtime (the one the calling task runs on): spawn with
/// `tokio::spawn`, sockets registered with its reactor, its timers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokio;

/// A connected tokio stream, TCP or Unix.
#[derive(Debug)]
pub struct TokioSocket(pub Net<TcpStream, UnixStream>);

impl adapter_common::Socket for TokioSocket {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.0 {
            Net::Tcp(s) => s.poll_read_ready(cx),
            Net::Unix(s) => s.poll_read_ready(cx),
        }
    }

    /// A short read clears the socket's readiness, so the next wait does
    /// not start with a read that ends in `WouldBlock`.
    /// It reads in place, into the core's buffer, and gives that back
    /// after stale readiness.
    fn poll_read_into<C: Input>(
        &mut self,
        cx: &mut Context<'_>,
        mut to: Arrival<'_, C>,
    ) -> Poll<io::Result<usize>> {
        let read = loop {
            // As much as the core asks for: 8 KiB, more for a large frame.
            let size = to.read_size();
            let mut room = BufMut::limit(to.buffer(), size);
            let r = match &mut self.0 {
                Net::Tcp(s) => tokio_util::io::poll_read_buf(Pin::new(s), cx, &mut room),
                Net::Unix(s) => tokio_util::io::poll_read_buf(Pin::new(s), cx, &mut room),
            };
            match r {
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                r => break r,
            }
        };
        match read {
            Poll::Ready(Ok(n)) if n > 0 => to.appended(n),
            Poll::Pending => to.appended(0),
            _ => {}
        }
        read
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.0 {
            Net::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Net::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn shutdown_write(&self) {
        let _ = SockRef::from(&self.0).shutdown(Shutdown::Write);
    }

    fn configure(&self, opts: &SocketOptions) -> io::Result<()> {
        match &self.0 {
            Net::Tcp(s) => configure_tcp(s, opts),
            Net::Unix(_) => Ok(()),
        }
    }
}

/// A tokio timer, allocated once per connection that needs one.
#[derive(Debug)]
pub struct TokioTimer(Pin<Box<tokio::time::Sleep>>);

impl adapter_common::Timer for TokioTimer {
    fn poll_fire(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }

    fn reset(&mut self, at: Instant) {
        self.0.as_mut().reset(tokio::time::Instant::from_std(at));
    }
}

impl adapter_common::Runtime for Tokio {
    type Socket = TokioSocket;
    type Listener = Net<TcpListener, UnixListener>;
    type Timer = TokioTimer;

    fn name(&self) -> &'static str {
        "tokio"
    }

    fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(fut);
    }

    fn timer_at(&self, at: Instant) -> TokioTimer {
        TokioTimer(Box::pin(tokio::time::sleep_until(
            tokio::time::Instant::from_std(at),
        )))
    }

    fn listener(&self, listener: StdListener) -> io::Result<Self::Listener> {
        Ok(match listener {
            Net::Tcp(l) => Net::Tcp(TcpListener::from_std(l)?),
            Net::Unix(l) => Net::Unix(UnixListener::from_std(l)?),
        })
    }

    fn poll_accept(
        &self,
        listener: &Self::Listener,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(TokioSocket, String)>> {
        match listener {
            Net::Tcp(l) => l
                .poll_accept(cx)
                .map_ok(|(s, a)| (TokioSocket(Net::Tcp(s)), a.to_string())),
            Net::Unix(l) => l
                .poll_accept(cx)
                .map_ok(|(s, _)| (TokioSocket(Net::Unix(s)), "unix".to_owned())),
        }
    }

    async fn connect(&self, endpoint: &Endpoint, opts: &SocketOptions) -> io::Result<TokioSocket> {
        Ok(TokioSocket(match endpoint {
            Endpoint::Tcp(addr) => {
                let s = TcpStream::connect(addr).await?;
                configure_tcp(&s, opts)?;
                Net::Tcp(s)
            }
            Endpoint::Unix(path) => Net::Unix(UnixStream::connect(path).await?),
        }))
    }
}
