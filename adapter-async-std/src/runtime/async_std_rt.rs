//! The async-std runtime: its global executor, its timers and its sockets.
//!
//! async-std is discontinued upstream (the crate is deprecated in favour of
//! smol); this implementation stays because users asked for it, and it is
//! as thin as the seam allows.

use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use adapter_common::{Endpoint, SocketOptions, StdListener, configure_tcp};
use async_std::net::{TcpListener, TcpStream};
use async_std::os::unix::net::{UnixListener, UnixStream};

use super::{NetListener, NetStream, Runtime, Stream, Timer};

/// The async-std runtime (its global executor, one worker per core).
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStd;

/// A timer on async-std: `async_std::task::sleep`, boxed, rebuilt on reset.
pub struct AsyncStdTimer {
    sleep: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl AsyncStdTimer {
    fn new(at: Instant) -> Self {
        let wait = at.saturating_duration_since(Instant::now());
        Self {
            sleep: Some(Box::pin(async_std::task::sleep(wait))),
        }
    }
}

impl std::fmt::Debug for AsyncStdTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncStdTimer")
            .field("armed", &self.sleep.is_some())
            .finish()
    }
}

impl Timer for AsyncStdTimer {
    fn poll_fire(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(sleep) = self.sleep.as_mut() else {
            return Poll::Pending;
        };
        let fired = sleep.as_mut().poll(cx);
        if fired.is_ready() {
            // A finished async fn must not be polled again.
            self.sleep = None;
        }
        fired
    }

    fn reset(&mut self, at: Instant) {
        *self = Self::new(at);
    }
}

impl Stream for NetStream<TcpStream, UnixStream> {
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.shutdown(how),
            Self::Unix(s) => s.shutdown(how),
        }
    }

    fn configure(&self, opts: &SocketOptions) -> io::Result<()> {
        match self {
            Self::Tcp(s) => configure_tcp(s, opts),
            Self::Unix(_) => Ok(()),
        }
    }
}

impl Runtime for AsyncStd {
    type Stream = NetStream<TcpStream, UnixStream>;
    type Listener = NetListener<TcpListener, UnixListener>;
    type Timer = AsyncStdTimer;

    fn name(&self) -> &'static str {
        "async-std"
    }

    fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        // Dropping the handle detaches the task.
        drop(async_std::task::spawn(fut));
    }

    fn timer_at(&self, at: Instant) -> Self::Timer {
        AsyncStdTimer::new(at)
    }

    fn listener(&self, listener: StdListener) -> io::Result<Self::Listener> {
        listener.set_nonblocking(true)?;
        Ok(match listener {
            StdListener::Tcp(l) => NetListener::Tcp(TcpListener::from(l)),
            StdListener::Unix(l) => NetListener::Unix(UnixListener::from(l)),
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
            Endpoint::Tcp(addr) => TcpStream::connect(addr).await.map(NetStream::Tcp),
            Endpoint::Unix(path) => UnixStream::connect(path).await.map(NetStream::Unix),
        }
    }

    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        async_std::task::block_on(fut)
    }
}
