//! The runtime seam: the four things the driver needs from a runtime
//! (spawn a task, a timer at an instant, a listener that accepts, a
//! connect), and nothing else. The data path never sees a runtime type: it
//! is written against `futures-io`'s `AsyncRead` + `AsyncWrite`.
//!
//! Two implementations, each behind its cargo feature: [`AsyncStd`]
//! (feature `async-std`, the default) and [`Smol`] (feature `smol`).
//!
//! # Task placement
//!
//! Both run a task on one worker thread for its whole life: each worker
//! thread runs an executor of its own, and [`Runtime::spawn`] places a new
//! task on the worker with the fewest live tasks. A shared work-stealing
//! executor (async-std's global one, or one smol `Executor` run by every
//! thread) wakes a second thread for every scheduled task, which on a
//! request/response connection means every request: measured at one
//! connection with one request in flight, 3 context switches and about
//! twice the CPU per request of adapter-tokio, and 0.62x its requests per
//! second. Placed tasks bring that to 1 context switch per request, as on
//! tokio. The trade-off is the thread-per-core one: no work stealing, so
//! two busy connections placed on one worker share its core, and with
//! many connections on cores shared with other busy processes the tail
//! grows: at 50 connections on 2 cores shared with the load generator,
//! p99 4 ms against adapter-tokio's 0.3 ms (throughput 0.86-0.93x).
//!
//! `ADAPTER_SCHEDULING=shared` (or [`Smol::shared`]) gives the shared
//! work-stealing executor back: p99 0.3-0.4 ms there, but about half of
//! adapter-tokio's throughput on a lone connection.

use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};

use adapter_common::{Endpoint, SocketOptions, StdListener, configure_tcp};
use async_io::Async;
use futures_io::{AsyncRead, AsyncWrite};

#[cfg(feature = "async-std")]
mod async_std_rt;
#[cfg(feature = "smol")]
mod smol_rt;
mod workers;

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

    /// Runs `fut` as a task of its own, detached, on the least-loaded
    /// worker thread, where it stays (see [Task placement](self#task-placement)).
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

/// A connected stream: `futures-io` reads and writes, plus the socket
/// calls `futures-io` has no words for.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Ready once the stream may have input, an end of stream or an error,
    /// without reading; while pending, the task is woken when that changes.
    /// The driver reads only after this said ready, or after a read that
    /// filled its buffer, so that a wake costs one read (see `io::Reader`).
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
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

/// A stream of either kind: TCP and Unix streams behind one type.
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

/// The stream of both runtimes: async-io's `Async<T>` over std's sockets,
/// registered with the reactor both runtimes run.
pub type AsyncIoStream = NetStream<Async<TcpStream>, Async<UnixStream>>;

/// The listener of both runtimes.
pub type AsyncIoListener = NetListener<Async<TcpListener>, Async<UnixListener>>;

impl Stream for AsyncIoStream {
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::Tcp(s) => s.poll_readable(cx),
            Self::Unix(s) => s.poll_readable(cx),
        }
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.get_ref().shutdown(how),
            Self::Unix(s) => s.get_ref().shutdown(how),
        }
    }

    fn configure(&self, opts: &SocketOptions) -> io::Result<()> {
        match self {
            Self::Tcp(s) => configure_tcp(s.get_ref(), opts),
            Self::Unix(_) => Ok(()),
        }
    }
}

/// Registers a bound std listener with the reactor.
fn async_io_listener(listener: StdListener) -> io::Result<AsyncIoListener> {
    Ok(match listener {
        StdListener::Tcp(l) => NetListener::Tcp(Async::new(l)?),
        StdListener::Unix(l) => NetListener::Unix(Async::new(l)?),
    })
}

/// Accepts one connection: the stream and, for TCP, the peer's address.
async fn async_io_accept(
    listener: &AsyncIoListener,
) -> io::Result<(AsyncIoStream, Option<SocketAddr>)> {
    match listener {
        NetListener::Tcp(l) => {
            let (s, addr) = l.accept().await?;
            Ok((NetStream::Tcp(s), Some(addr)))
        }
        NetListener::Unix(l) => {
            let (s, _) = l.accept().await?;
            Ok((NetStream::Unix(s), None))
        }
    }
}

/// Connects to `endpoint`.
async fn async_io_connect(endpoint: &Endpoint) -> io::Result<AsyncIoStream> {
    match endpoint {
        Endpoint::Tcp(addr) => Async::<TcpStream>::connect(*addr).await.map(NetStream::Tcp),
        Endpoint::Unix(path) => Async::<UnixStream>::connect(path)
            .await
            .map(NetStream::Unix),
    }
}
