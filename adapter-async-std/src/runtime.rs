//! The runtime seam: the four things the driver needs from a runtime
//! (spawn a task, a timer at an instant, a listener that accepts, a
//! connect), and nothing else. The data path never sees a runtime type: it
//! is written against `futures-io`'s `AsyncRead` + `AsyncWrite`.
//!
//! Two implementations, each behind its cargo feature: [`AsyncStd`]
//! (feature `async-std`, the default) and [`Smol`] (feature `smol`).

use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use adapter_common::{Endpoint, SocketOptions, StdListener};
use futures_io::{AsyncRead, AsyncWrite};

#[cfg(feature = "async-std")]
mod async_std_rt;
#[cfg(feature = "smol")]
mod smol_rt;

#[cfg(feature = "async-std")]
pub use async_std_rt::{AsyncStd, AsyncStdTimer};
#[cfg(feature = "smol")]
pub use smol_rt::{Smol, SmolTimer};

/// What the driver needs from a runtime.
pub trait Runtime: Clone + Send + Sync + 'static {
    /// A connected stream (TCP or Unix): `futures-io` on the data path.
    type Stream: Stream;
    /// A bound listener.
    type Listener: Send + Sync + 'static;
    /// A one-shot timer that can be moved.
    type Timer: Timer;

    /// The runtime's name, for logs: `"async-std"` or `"smol"`.
    fn name(&self) -> &'static str;

    /// Runs `fut` as a task of its own, detached.
    fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static;

    /// A timer that fires at `at`.
    fn timer_at(&self, at: Instant) -> Self::Timer;

    /// Hands a bound std listener (see [`adapter_common::bind`]) to the runtime.
    fn listener(&self, listener: StdListener) -> io::Result<Self::Listener>;

    /// Accepts one connection: the stream and, for TCP, the peer's address.
    fn accept<'a>(
        &'a self,
        listener: &'a Self::Listener,
    ) -> impl Future<Output = io::Result<(Self::Stream, Option<SocketAddr>)>> + Send + 'a;

    /// Connects to `endpoint`.
    fn connect<'a>(
        &'a self,
        endpoint: &'a Endpoint,
    ) -> impl Future<Output = io::Result<Self::Stream>> + Send + 'a;

    /// Runs `fut` to completion on the current thread (the runtime's
    /// worker threads run the spawned tasks meanwhile).
    fn block_on<F: Future>(&self, fut: F) -> F::Output;
}

/// A connected stream: `futures-io` reads and writes, plus the two socket
/// calls `futures-io` has no words for.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Shuts down one or both directions (`AsyncWrite::poll_close` only
    /// flushes on these runtimes: it does not send a FIN).
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;
    /// Applies TCP_NODELAY and keepalive to a TCP stream; a no-op on Unix sockets.
    fn configure(&self, opts: &SocketOptions) -> io::Result<()>;
}

/// A one-shot timer. Once it fired it stays pending until [`reset`](Timer::reset).
pub trait Timer: Send + Unpin + 'static {
    /// Ready once the instant passed.
    fn poll_fire(&mut self, cx: &mut Context<'_>) -> Poll<()>;
    /// Re-arms for `at`.
    fn reset(&mut self, at: Instant);
}

/// Sleeps until `at` on runtime `rt`.
pub async fn sleep_until<R: Runtime>(rt: &R, at: Instant) {
    let mut t = rt.timer_at(at);
    std::future::poll_fn(|cx| t.poll_fire(cx)).await
}

/// A stream of either kind: each runtime's TCP and Unix streams behind one type.
#[derive(Debug)]
pub enum NetStream<T, U> {
    /// TCP.
    Tcp(T),
    /// Unix domain socket.
    Unix(U),
}

/// A listener of either kind.
#[derive(Debug)]
pub enum NetListener<T, U> {
    /// TCP.
    Tcp(T),
    /// Unix domain socket.
    Unix(U),
}

impl<T, U> AsyncRead for NetStream<T, U>
where
    T: AsyncRead + Unpin,
    U: AsyncRead + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl<T, U> AsyncWrite for NetStream<T, U>
where
    T: AsyncWrite + Unpin,
    U: AsyncWrite + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_close(cx),
            Self::Unix(s) => Pin::new(s).poll_close(cx),
        }
    }
}
