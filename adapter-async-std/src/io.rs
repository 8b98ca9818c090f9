//! The data path, shared by the server and the client drivers: reads and
//! writes over `futures-io`, and the one timer armed from `poll_timeout`.
//!
//! # No read buffer while idle
//!
//! A connection waits for input in [`Stream::poll_readable`], which needs
//! no buffer, and reads into a buffer it does not own: a per-thread scratch
//! buffer, borrowed only for the duration of one `poll_read` call. The
//! bytes are handed to the core at once (`handle_input`, one copy into the
//! core's receive buffer, which the core sizes and gives back when it
//! empties). So an idle connection holds no read buffer.
//!
//! Reading straight into the core's `input_buffer()` would save that copy
//! but not its cost in safe Rust: a `futures-io` read needs an initialised
//! slice, so the core's spare capacity would have to be zeroed first.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_io::{AsyncRead, AsyncWrite};

use crate::runtime::{Runtime, Stream, Timer};

/// The scratch buffer each thread reads into.
const SCRATCH_LEN: usize = 64 * 1024;
/// The fallback when the scratch buffer is unavailable (re-entrant use, or
/// a thread being torn down).
const FALLBACK_LEN: usize = 4 * 1024;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_LEN].into_boxed_slice());
}

/// Reads from a stream with its readiness in front, so that a wake costs
/// one read.
///
/// A `futures-io` read on async-io's `Async<T>` that finds the socket
/// empty asks the reactor whether an event came since it last looked
/// before it waits, and an event that woke the task and was then read
/// through counts as new: after each request the driver paid two reads
/// that found nothing, and only then registered interest. Measured at
/// 50 connections x pipeline 1: 3.0 reads per request (tokio: 1.0).
///
/// So, the way tokio does it: a read that did not fill the buffer is taken
/// to have emptied the socket, and the next read waits for
/// [`Stream::poll_readable`] first. Nothing is missed: the reactor's
/// registration is level-triggered, so input that came meanwhile makes it
/// ready at once.
#[derive(Debug)]
pub(crate) struct Reader {
    /// A read may find input without waiting for readiness first.
    ready: bool,
}

impl Reader {
    pub(crate) fn new() -> Self {
        // A new connection's first read is tried at once: input may be there.
        Self { ready: true }
    }

    /// Reads once into a per-thread scratch buffer and hands what came to
    /// `sink` before returning. `Ready(Ok(0))` is end of stream. Holds no
    /// buffer across a `Pending`.
    pub(crate) fn poll_read<S, F>(
        &mut self,
        cx: &mut Context<'_>,
        stream: &mut S,
        sink: F,
    ) -> Poll<io::Result<usize>>
    where
        S: Stream,
        F: FnMut(&[u8]),
    {
        if !self.ready {
            match stream.poll_readable(cx) {
                Poll::Ready(Ok(())) => self.ready = true,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        match poll_read_with(cx, stream, sink) {
            Poll::Ready(Ok((n, room))) => {
                if n < room {
                    self.ready = false;
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                // The read registered interest; the wake that comes is
                // taken through `poll_readable`, which consumes it.
                self.ready = false;
                Poll::Pending
            }
        }
    }
}

/// Reads once from `stream` and hands what came to `sink` before returning:
/// the bytes read and the room the read had.
fn poll_read_with<S, F>(
    cx: &mut Context<'_>,
    stream: &mut S,
    mut sink: F,
) -> Poll<io::Result<(usize, usize)>>
where
    S: AsyncRead + Unpin,
    F: FnMut(&[u8]),
{
    let mut read = |buf: &mut [u8]| -> Poll<io::Result<(usize, usize)>> {
        loop {
            match Pin::new(&mut *stream).poll_read(cx, buf) {
                Poll::Ready(Ok(n)) => {
                    if let Some(data) = buf.get(..n)
                        && n > 0
                    {
                        sink(data);
                    }
                    return Poll::Ready(Ok((n, buf.len())));
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    };
    let mut via_scratch = None;
    let _ = SCRATCH.try_with(|cell| {
        if let Ok(mut buf) = cell.try_borrow_mut() {
            via_scratch = Some(read(&mut buf));
        }
    });
    match via_scratch {
        Some(result) => result,
        None => read(&mut [0u8; FALLBACK_LEN]),
    }
}

/// What a write pass did.
pub(crate) enum Wrote {
    /// Everything pending was written (or nothing was pending).
    All,
    /// The stream would block with output still pending.
    Blocked,
}

/// Writes what the core holds (`pending()`), reporting each write with
/// `written(n)`, until it is empty or the stream would block.
pub(crate) fn poll_write_from<S, C>(
    cx: &mut Context<'_>,
    stream: &mut S,
    core: &mut C,
    pending: impl Fn(&C) -> &[u8],
    mut written: impl FnMut(&mut C, usize),
) -> io::Result<Wrote>
where
    S: AsyncWrite + Unpin,
{
    loop {
        let buf = pending(core);
        if buf.is_empty() {
            return Ok(Wrote::All);
        }
        match Pin::new(&mut *stream).poll_write(cx, buf) {
            Poll::Ready(Ok(0)) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "the socket accepted no bytes of pending output",
                ));
            }
            Poll::Ready(Ok(n)) => written(core, n),
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => return Ok(Wrote::Blocked),
        }
    }
}

/// The one timer of a connection, armed from the core's `poll_timeout`.
///
/// Arming is lazy: a later deadline keeps the earlier timer (it fires
/// early, `handle_timeout` is then a no-op, and the timer is re-armed at
/// the new deadline), so a deadline that moves on every request costs no
/// timer operation per request.
pub(crate) struct Deadline<T> {
    timer: Option<T>,
    at: Option<Instant>,
}

impl<T: Timer> Deadline<T> {
    pub(crate) fn new() -> Self {
        Self {
            timer: None,
            at: None,
        }
    }

    /// Arms for `want` and reports whether the armed instant has passed
    /// (the caller then calls the core's `handle_timeout`).
    pub(crate) fn poll<R: Runtime<Timer = T>>(
        &mut self,
        cx: &mut Context<'_>,
        rt: &R,
        want: Option<Instant>,
        now: Instant,
    ) -> Poll<()> {
        let Some(want) = want else {
            // Nothing to wait for: give the timer back.
            self.timer = None;
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
