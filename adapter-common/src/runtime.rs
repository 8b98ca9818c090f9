//! The runtime seam of the async adapters (quinn's model): what the one
//! server driver and the one client driver of this crate need from a
//! runtime, and nothing else. adapter-tokio implements it for tokio,
//! adapter-async-std for async-std and smol.

use std::future::Future;
use std::io;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::BytesMut;

use crate::net::{Endpoint, SocketOptions, StdListener};

/// What the drivers need from a runtime.
pub trait Runtime: Clone + Send + Sync + 'static {
    /// A connected stream, TCP or Unix.
    type Socket: Socket;
    /// A bound listener.
    type Listener: Send + Sync + 'static;
    /// A one-shot timer that can be moved.
    type Timer: Timer;

    /// The runtime's name, for logs.
    fn name(&self) -> &'static str;

    /// Runs `fut` as a task of its own, detached.
    fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static;

    /// A timer that fires at `at`.
    fn timer_at(&self, at: Instant) -> Self::Timer;

    /// Hands a bound std listener to the runtime.
    fn listener(&self, listener: StdListener) -> io::Result<Self::Listener>;

    /// Accepts one connection: the socket and its peer's label for logs.
    fn poll_accept(
        &self,
        listener: &Self::Listener,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(Self::Socket, String)>>;

    /// Connects to `endpoint` (TCP sockets get `opts`).
    fn connect(
        &self,
        endpoint: &Endpoint,
        opts: &SocketOptions,
    ) -> impl Future<Output = io::Result<Self::Socket>> + Send;
}

/// A connection core's receive side, as the read step needs it (both
/// [`protocol::ServerConnection`] and [`protocol::ClientConnection`]).
pub trait Input {
    /// The core's receive buffer, with room to read into.
    fn input_buffer(&mut self) -> &mut BytesMut;
    /// How many bytes the next read should ask for (the core's
    /// `read_size`: what the frame being received still needs, 8 to 64 KiB).
    fn read_size(&self) -> usize {
        8 * 1024
    }
    /// `n` bytes were appended to it (0: give an empty buffer back).
    fn appended(&mut self, n: usize, now: Instant);
    /// Bytes read elsewhere, copied in (exactly them: no read-sized reservation).
    fn input(&mut self, data: &[u8], now: Instant);
}

impl Input for protocol::ServerConnection {
    fn input_buffer(&mut self) -> &mut BytesMut {
        protocol::ServerConnection::input_buffer(self)
    }
    fn read_size(&self) -> usize {
        protocol::ServerConnection::read_size(self)
    }
    fn appended(&mut self, n: usize, now: Instant) {
        self.handle_input_appended(n, now);
    }
    fn input(&mut self, data: &[u8], now: Instant) {
        self.handle_input(data, now);
    }
}

impl Input for protocol::ClientConnection {
    fn input_buffer(&mut self) -> &mut BytesMut {
        protocol::ClientConnection::input_buffer(self)
    }
    fn read_size(&self) -> usize {
        protocol::ClientConnection::read_size(self)
    }
    fn appended(&mut self, n: usize, now: Instant) {
        self.handle_input_appended(n, now);
    }
    fn input(&mut self, data: &[u8], now: Instant) {
        self.handle_input(data, now);
    }
}

/// Input arriving at a core at one instant: what a socket's read hands its
/// bytes to.
#[derive(Debug)]
pub struct Arrival<'a, C> {
    core: &'a mut C,
    now: Instant,
}

impl<'a, C: Input> Arrival<'a, C> {
    /// Bytes for `core`, arriving `now`.
    pub fn new(core: &'a mut C, now: Instant) -> Self {
        Self { core, now }
    }
    /// How many bytes the read should ask for.
    pub fn read_size(&self) -> usize {
        self.core.read_size()
    }
    /// The core's receive buffer, with room to read into.
    pub fn buffer(&mut self) -> &mut BytesMut {
        self.core.input_buffer()
    }
    /// `n` bytes were read into [`buffer`](Self::buffer) (0: give an empty
    /// buffer back).
    pub fn appended(&mut self, n: usize) {
        self.core.appended(n, self.now);
    }
    /// Bytes read elsewhere, copied in (exactly them).
    pub fn copy_in(&mut self, data: &[u8]) {
        self.core.input(data, self.now);
    }
}

/// A connected non-blocking stream as the drivers use it. Reading is in
/// two steps so that a connection waiting for input holds no buffer: wait
/// for readiness without one, then read into the core's input buffer.
pub trait Socket: Send + Unpin + 'static {
    /// Ready once the socket may have input, an end of stream or an error;
    /// while pending, the task is woken when that changes.
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Reads once and hands what came to the core (in place, into
    /// [`Arrival::buffer`], or as a copy through [`Arrival::copy_in`]):
    /// `Ready(Ok(n))`, `n` bytes handed over; `Ready(Ok(0))`, end of stream
    /// (nothing handed over); `Pending`, the readiness was stale (now
    /// cleared, the task registered) and the core holds no buffer for it.
    fn poll_read_into<C: Input>(
        &mut self,
        cx: &mut Context<'_>,
        to: Arrival<'_, C>,
    ) -> Poll<io::Result<usize>>;
    /// Writes once; `Pending` when the socket buffer is full (the task is
    /// woken when it has room).
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;
    /// Sends FIN after what was written (errors ignored: the peer may be gone).
    fn shutdown_write(&self);
    /// Applies TCP_NODELAY and keepalive; a no-op on Unix sockets.
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

/// The one timer of a connection, armed from the core's `poll_timeout`.
///
/// Arming is lazy: a later deadline keeps the earlier timer (it fires
/// early, `handle_timeout` is then a no-op, and the timer is re-armed at
/// the new deadline), so a deadline that moves on every request costs no
/// timer operation per request. No timer is allocated until one is needed.
pub struct Deadline<T> {
    timer: Option<T>,
    at: Option<Instant>,
}

impl<T: Timer> Default for Deadline<T> {
    fn default() -> Self {
        Self {
            timer: None,
            at: None,
        }
    }
}

impl<T: Timer> Deadline<T> {
    /// Arms for `want` and reports whether the armed instant has passed
    /// (the caller then calls the core's `handle_timeout`).
    pub fn poll<R: Runtime<Timer = T>>(
        &mut self,
        cx: &mut Context<'_>,
        rt: &R,
        want: Option<Instant>,
        now: Instant,
    ) -> Poll<()> {
        let Some(want) = want else {
            self.at = None;
            return Poll::Pending;
        };
        let at = match self.at {
            Some(at) if at <= want => at,
            _ => {
                match self.timer.as_mut() {
                    Some(t) => t.reset(want),
                    None => self.timer = Some(rt.timer_at(want)),
                }
                self.at = Some(want);
                want
            }
        };
        if now >= at {
            self.at = None;
            return Poll::Ready(());
        }
        match self.timer.as_mut().map(|t| t.poll_fire(cx)) {
            Some(Poll::Ready(())) => {
                self.at = None;
                Poll::Ready(())
            }
            _ => Poll::Pending,
        }
    }
}

/// Reads of one turn of a connection task before it yields (fairness:
/// a connection whose input never runs out must let others run).
pub const READ_BUDGET: usize = 16;
/// Bytes read in one turn before the task yields.
pub const READ_BYTES_BUDGET: usize = 64 * 1024;

/// The read step every driver shares: wait for readiness without a
/// buffer, and only then read and hand the bytes to the core (see
/// [`Socket::poll_read_into`]), so a waiting connection holds no buffer and
/// reserves none. `Ready(Ok(0))` is end of stream (the caller tells the
/// core); `Pending`: nothing came.
pub fn poll_read_step<S: Socket, C: Input>(
    socket: &mut S,
    cx: &mut Context<'_>,
    core: &mut C,
    now: Instant,
) -> Poll<io::Result<usize>> {
    match socket.poll_read_ready(cx) {
        Poll::Ready(Ok(())) => socket.poll_read_into(cx, Arrival::new(core, now)),
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        Poll::Pending => Poll::Pending,
    }
}

/// Writes what `pending` holds until it is empty or the socket is full;
/// `written(n)` reports each write. `Ok(true)` when anything was written.
pub fn poll_write_step<S: Socket, C>(
    socket: &mut S,
    cx: &mut Context<'_>,
    core: &mut C,
    mut pending: impl FnMut(&mut C) -> &[u8],
    mut written: impl FnMut(&mut C, usize),
) -> io::Result<bool> {
    let mut any = false;
    loop {
        let buf = pending(core);
        if buf.is_empty() {
            return Ok(any);
        }
        match socket.poll_write(cx, buf) {
            Poll::Ready(Ok(0)) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "the socket accepted no bytes of pending output",
                ));
            }
            Poll::Ready(Ok(n)) => {
                any = true;
                written(core, n);
            }
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => return Ok(any),
        }
    }
}
