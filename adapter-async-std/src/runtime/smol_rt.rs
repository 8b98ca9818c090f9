//! The smol runtime: an `async_executor::Executor` run by one thread per
//! core, async-io's reactor, timers and `Async<T>` sockets.
//!
//! Sockets are `smol::Async<std::net::TcpStream>` (and `UnixStream`), not
//! async-net's wrappers: the wrappers carry two cached readiness futures
//! (112 bytes more per connection) that this driver never uses.

use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use adapter_common::{Endpoint, SocketOptions, StdListener, configure_tcp};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};

use smol::{Async, Executor, Timer as AsyncIoTimer};

use super::{NetListener, NetStream, Runtime, Stream, Timer};

/// The smol runtime: a multi-threaded executor (smol's own global
/// executor runs on one thread unless `SMOL_THREADS` says otherwise, so
/// this one is explicit about its threads).
#[derive(Clone)]
pub struct Smol {
    ex: Arc<Executor<'static>>,
}

impl std::fmt::Debug for Smol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smol").finish_non_exhaustive()
    }
}

impl Smol {
    /// A runtime with `threads` worker threads (the thread that calls
    /// [`Runtime::block_on`] runs tasks too). The threads live as long as
    /// the process.
    pub fn new(threads: usize) -> io::Result<Self> {
        let ex = Arc::new(Executor::new());
        for i in 0..threads {
            let ex = Arc::clone(&ex);
            std::thread::Builder::new()
                .name(format!("smol-{i}"))
                .spawn(move || smol::block_on(ex.run(std::future::pending::<()>())))?;
        }
        Ok(Self { ex })
    }

    /// The process-wide runtime: `SMOL_THREADS` worker threads (smol's
    /// own variable; default one per core), started on first use. If no thread could be started, tasks run only while a
    /// thread is inside [`Runtime::block_on`].
    pub fn global() -> Self {
        static GLOBAL: OnceLock<Smol> = OnceLock::new();
        GLOBAL
            .get_or_init(|| {
                let threads = std::env::var("SMOL_THREADS")
                    .ok()
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
                Self::new(threads).unwrap_or_else(|e| {
                    tracing::error!("cannot start smol worker threads: {e}");
                    Self {
                        ex: Arc::new(Executor::new()),
                    }
                })
            })
            .clone()
    }
}

impl Default for Smol {
    fn default() -> Self {
        Self::global()
    }
}

/// A timer on smol: async-io's `Timer`, re-armed in place.
#[derive(Debug)]
pub struct SmolTimer(AsyncIoTimer);

impl Timer for SmolTimer {
    fn poll_fire(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        // A fired one-shot `Timer` stays pending until `set_at`.
        std::pin::Pin::new(&mut self.0).poll(cx).map(|_| ())
    }

    fn reset(&mut self, at: Instant) {
        self.0.set_at(at);
    }
}

impl Stream for NetStream<Async<TcpStream>, Async<UnixStream>> {
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

impl Runtime for Smol {
    type Stream = NetStream<Async<TcpStream>, Async<UnixStream>>;
    type Listener = NetListener<Async<TcpListener>, Async<UnixListener>>;
    type Timer = SmolTimer;

    fn name(&self) -> &'static str {
        "smol"
    }

    fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.ex.spawn(fut).detach();
    }

    fn timer_at(&self, at: Instant) -> Self::Timer {
        SmolTimer(AsyncIoTimer::at(at))
    }

    fn listener(&self, listener: StdListener) -> io::Result<Self::Listener> {
        Ok(match listener {
            StdListener::Tcp(l) => NetListener::Tcp(Async::new(l)?),
            StdListener::Unix(l) => NetListener::Unix(Async::new(l)?),
        })
    }

    async fn accept<'a>(
        &'a self,
        listener: &'a Self::Listener,
    ) -> io::Result<(Self::Stream, Option<SocketAddr>)> {
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

    async fn connect<'a>(&'a self, endpoint: &'a Endpoint) -> io::Result<Self::Stream> {
        match endpoint {
            Endpoint::Tcp(addr) => Async::<TcpStream>::connect(*addr).await.map(NetStream::Tcp),
            Endpoint::Unix(path) => Async::<UnixStream>::connect(path)
                .await
                .map(NetStream::Unix),
        }
    }

    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        smol::block_on(self.ex.run(fut))
    }
}
