//! async-std and smol behind adapter-common's runtime seam: the socket,
//! listener and timer both share (async-io's, the reactor both run), and
//! each runtime's spawn. The server, the connection driver and the client
//! are adapter-common's.
//!
//! Two runtimes, each behind its cargo feature: [`AsyncStd`] (feature
//! `async-std`, the default) and [`Smol`] (feature `smol`).
//!
//! # Task placement
//!
//! Both run a task on one worker thread for its whole life: each worker
//! thread runs an executor of its own, and `Runtime::spawn` places a new
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
//!
//! # No read buffer while idle, one read per wake
//!
//! A connection waits for input in `poll_read_ready`, which needs no
//! buffer, and reads through a per-thread scratch buffer (64 KiB) borrowed
//! for one read, then copies what came into the core's input buffer
//! (reading into its spare capacity directly would need `unsafe` or
//! zeroing it: a `futures-io` read takes an initialised slice).
//!
//! A read on async-io's `Async<T>` that finds the socket empty asks the
//! reactor whether an event came since it last looked before it waits,
//! and an event that woke the task and was then read through counts as
//! new: each request cost two reads that found nothing (3.0 reads per
//! request at 50 connections x pipeline 1; tokio: 1.0). So, the way tokio
//! does it: a read that did not fill its buffer is taken to have emptied
//! the socket, and the next one waits for `poll_readable` first. Nothing is
//! missed: the registration is level-triggered.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use adapter_common::runtime::{Arrival, Input};
use adapter_common::{Endpoint, Net, SocketOptions, StdListener, StdStream, configure_tcp};
use async_io::Async;
use futures_io::{AsyncRead, AsyncWrite};

#[cfg(feature = "async-std")]
mod async_std_rt;
#[cfg(feature = "smol")]
mod smol_rt;
mod workers;

#[cfg(feature = "async-std")]
pub use async_std_rt::AsyncStd;
#[cfg(feature = "smol")]
pub use smol_rt::Smol;

/// What the binary and the tests need besides `adapter_common::Runtime`.
pub trait BlockOn: adapter_common::Runtime {
    /// Runs `fut` to completion on the current thread (the runtime's
    /// worker threads run the spawned tasks meanwhile).
    fn block_on<F: Future>(&self, fut: F) -> F::Output;
}

/// The socket of both runtimes: a std stream (TCP or Unix) registered
/// with async-io's reactor.
#[derive(Debug)]
pub struct AsyncIoSocket {
    io: Async<StdStream>,
    /// The last read filled its buffer: the next may read without waiting.
    ready: bool,
}

/// The listener of both runtimes.
pub type AsyncIoListener = Async<StdListener>;

/// The timer of both runtimes: async-io's, re-armed in place.
#[derive(Debug)]
pub struct AsyncIoTimer(async_io::Timer);

/// The most one read takes: the size of the scratch buffer each thread
/// reads into.
const READ_LIMIT: usize = 64 * 1024;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_LIMIT].into_boxed_slice());
}

/// Calls `read` with this thread's whole scratch buffer (a buffer of its
/// own when that one is in use or gone). Reads are never sized by the
/// core's spare capacity (often 8 KiB): smaller reads drain a flooding
/// peer more slowly, and the behaviour suite's 100 slow consumers were then
/// not all closed by their write stall in time (2 of 12 runs, 0 of 12 with
/// whole reads; the core's buffer still grows in bounded steps).
fn with_scratch<T>(mut read: impl FnMut(&mut [u8]) -> T) -> T {
    let borrowed = SCRATCH.try_with(|cell| Some(read(&mut cell.try_borrow_mut().ok()?)));
    match borrowed {
        Ok(Some(out)) => out,
        _ => read(&mut vec![0; READ_LIMIT]),
    }
}

impl AsyncIoSocket {
    fn new(stream: StdStream) -> io::Result<Self> {
        // A new connection's first read is tried at once: input may be there.
        Async::new(stream).map(|io| Self { io, ready: true })
    }
}

impl adapter_common::Socket for AsyncIoSocket {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.ready {
            ready!(self.io.poll_readable(cx))?;
            self.ready = true;
        }
        Poll::Ready(Ok(()))
    }

    /// It reads into this thread's scratch buffer and copies what came into
    /// the core: the core's buffer is never reserved for a read that may
    /// find nothing, and holds exactly the bytes that came.
    fn poll_read_into<C: Input>(
        &mut self,
        cx: &mut Context<'_>,
        mut to: Arrival<'_, C>,
    ) -> Poll<io::Result<usize>> {
        let io = &self.io;
        let read = with_scratch(|scratch| {
            loop {
                match Pin::new(&mut &*io).poll_read(cx, scratch) {
                    Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                    Poll::Ready(Ok(n)) => {
                        if let Some(data) = scratch.get(..n).filter(|d| !d.is_empty()) {
                            to.copy_in(data);
                        }
                        return Poll::Ready(Ok((n, scratch.len())));
                    }
                    other => return other.map_ok(|n| (n, n)),
                }
            }
        });
        // Pending registered the task: the wake is taken through `poll_readable`.
        self.ready = matches!(read, Poll::Ready(Ok((n, room))) if n == room);
        read.map_ok(|(n, _)| n)
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut &self.io).poll_write(cx, buf)
    }

    fn shutdown_write(&self) {
        let _ = self.io.get_ref().shutdown(Shutdown::Write);
    }

    fn configure(&self, opts: &SocketOptions) -> io::Result<()> {
        match self.io.get_ref() {
            Net::Tcp(s) => configure_tcp(s, opts),
            Net::Unix(_) => Ok(()),
        }
    }
}

impl adapter_common::Timer for AsyncIoTimer {
    fn poll_fire(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        // A fired one-shot timer stays pending until `set_at`.
        Pin::new(&mut self.0).poll(cx).map(drop)
    }

    fn reset(&mut self, at: Instant) {
        self.0.set_at(at);
    }
}

/// Accepts one connection: non-blocking accepts, `poll_readable` between.
fn poll_accept(
    listener: &AsyncIoListener,
    cx: &mut Context<'_>,
) -> Poll<io::Result<(AsyncIoSocket, String)>> {
    loop {
        match listener.get_ref().accept() {
            Ok((stream, peer)) => {
                return Poll::Ready(AsyncIoSocket::new(stream).map(|s| (s, peer)));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready!(listener.poll_readable(cx))?,
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
}

/// Connects without blocking; TCP streams get `opts`.
async fn connect(endpoint: &Endpoint, opts: &SocketOptions) -> io::Result<AsyncIoSocket> {
    let stream = match endpoint {
        Endpoint::Tcp(addr) => Net::Tcp(
            Async::<std::net::TcpStream>::connect(*addr)
                .await?
                .into_inner()?,
        ),
        Endpoint::Unix(path) => Net::Unix(
            Async::<std::os::unix::net::UnixStream>::connect(path)
                .await?
                .into_inner()?,
        ),
    };
    let socket = AsyncIoSocket::new(stream)?;
    adapter_common::Socket::configure(&socket, opts)?;
    Ok(socket)
}

/// `adapter_common::Runtime` for a runtime of this crate: everything but
/// its name and its `spawn_task` is async-io's, the same for both.
macro_rules! async_io_runtime {
    ($rt:ty, $name:literal) => {
        impl adapter_common::Runtime for $rt {
            type Socket = $crate::runtime::AsyncIoSocket;
            type Listener = $crate::runtime::AsyncIoListener;
            type Timer = $crate::runtime::AsyncIoTimer;

            fn name(&self) -> &'static str {
                $name
            }

            fn spawn<F>(&self, fut: F)
            where
                F: std::future::Future<Output = ()> + Send + 'static,
            {
                self.spawn_task(fut)
            }

            fn timer_at(&self, at: std::time::Instant) -> Self::Timer {
                $crate::runtime::AsyncIoTimer(async_io::Timer::at(at))
            }

            fn listener(
                &self,
                listener: adapter_common::StdListener,
            ) -> std::io::Result<Self::Listener> {
                async_io::Async::new(listener)
            }

            fn poll_accept(
                &self,
                listener: &Self::Listener,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<(Self::Socket, String)>> {
                $crate::runtime::poll_accept(listener, cx)
            }

            async fn connect(
                &self,
                endpoint: &adapter_common::Endpoint,
                opts: &adapter_common::SocketOptions,
            ) -> std::io::Result<Self::Socket> {
                $crate::runtime::connect(endpoint, opts).await
            }
        }
    };
}
use async_io_runtime;
