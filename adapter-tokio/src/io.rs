//! The two socket kinds behind one small trait, and the helpers the
//! connection loops share.
//!
//! The loops never hold a read buffer while they wait: they wait for
//! readiness ([`Socket::poll_read_ready`]), and only then ask the core for
//! its buffer and read into it.

use std::future::Future as _;
use std::io;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{BufMut, BytesMut};
use socket2::SockRef;
use tokio::io::AsyncRead;
use tokio::net::{TcpStream, UnixStream};

/// A connected stream socket (TCP or Unix) as the connection loops use it.
pub(crate) trait Socket: AsyncRead + AsFd + Sized + Unpin + Send + 'static {
    /// Readiness to read, without a buffer.
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Readiness to write.
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// One non-blocking write.
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
    /// Sends FIN after what was written (errors ignored: the peer may be gone).
    fn shutdown_write(&self) {
        let _ = SockRef::from(self).shutdown(Shutdown::Write);
    }
}

impl Socket for TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_write_ready(self, cx)
    }
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        TcpStream::try_write(self, buf)
    }
}

impl Socket for UnixStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        UnixStream::poll_read_ready(self, cx)
    }
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        UnixStream::poll_write_ready(self, cx)
    }
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        UnixStream::try_write(self, buf)
    }
}

/// What one read attempt gave.
pub(crate) enum ReadOutcome {
    /// `n` bytes appended to the buffer (0: end of stream).
    Data(usize),
    /// Nothing to read after all (readiness was stale and is now cleared).
    NotReady,
    /// The socket failed.
    Failed(io::Error),
}

/// Reads into `buf` (the core's input buffer, asked for by the caller only
/// after [`Socket::poll_read_ready`] said ready). A short read clears the
/// socket's readiness, so the next wait does not start with a read that
/// ends in `WouldBlock`. `NotReady`: the readiness was stale, nothing was
/// read, and the task's waker is registered.
pub(crate) fn poll_read_now<S: Socket>(
    socket: &mut S,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> ReadOutcome {
    loop {
        let mut room = BufMut::limit(&mut *buf, READ_LIMIT);
        match tokio_util::io::poll_read_buf(Pin::new(&mut *socket), cx, &mut room) {
            Poll::Ready(Ok(n)) => return ReadOutcome::Data(n),
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Poll::Ready(Err(e)) => return ReadOutcome::Failed(e),
            Poll::Pending => return ReadOutcome::NotReady,
        }
    }
}

/// The most one read takes from a socket. Small reads keep the kernel's
/// receive-buffer autotuning modest: a server that reads in large chunks
/// makes the kernel grow the socket's receive buffer, and a peer that
/// stops reading its acks can then push that much more before it stalls
/// (the write-stall scenario of the behaviour suite measures exactly
/// that). 8 KiB is the core's own read step.
const READ_LIMIT: usize = 8 * 1024;

/// The outcome of one non-blocking write of everything pending.
pub(crate) enum WriteOutcome {
    /// `n` bytes reached the socket.
    Wrote(usize),
    /// The socket buffer is full: wait for writability.
    Full,
    /// The socket failed.
    Failed(io::Error),
}

/// One `write` of all of `buf`.
pub(crate) fn write_now<S: Socket>(socket: &S, buf: &[u8]) -> WriteOutcome {
    loop {
        match socket.try_write(buf) {
            Ok(n) => return WriteOutcome::Wrote(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return WriteOutcome::Full,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return WriteOutcome::Failed(e),
        }
    }
}

/// A timer armed at the earliest instant asked for; pushed back lazily
/// (it is only moved earlier, and a firing that comes too soon is a no-op
/// for the core), so a deadline that keeps moving forward costs no timer
/// operation per request. Allocated only once first armed: an idle
/// connection with no timer holds none.
#[derive(Default)]
pub(crate) struct Timer {
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    armed: Option<Instant>,
}

impl Timer {
    /// Makes sure the timer fires at `at` or earlier.
    pub(crate) fn arm(&mut self, at: Option<Instant>) {
        let Some(at) = at else { return };
        if self.armed.is_some_and(|a| a <= at) {
            return;
        }
        let deadline = tokio::time::Instant::from_std(at);
        match &mut self.sleep {
            Some(s) => s.as_mut().reset(deadline),
            None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        self.armed = Some(at);
    }

    /// Ready once the armed instant passed (then disarmed).
    pub(crate) fn poll_fired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match (&mut self.sleep, self.armed) {
            (Some(s), Some(_)) => {
                std::task::ready!(s.as_mut().poll(cx));
                self.armed = None;
                Poll::Ready(())
            }
            _ => Poll::Pending,
        }
    }
}
