//! The data path, shared by the server and the client drivers: reads and
//! writes over `futures-io`, and the one timer armed from `poll_timeout`.
//!
//! # No read buffer while idle
//!
//! A connection waits for input inside `poll_read` on a buffer it does not
//! own: a per-thread scratch buffer, borrowed only for the duration of one
//! `poll_read` call. When the read is pending nothing is held; when it is
//! ready, the bytes are handed to the core at once (`handle_input`, one
//! copy into the core's receive buffer, which the core sizes and gives back
//! when it empties). So an idle connection holds no read buffer on any
//! `futures-io` stream, with no runtime-specific readiness call.
//!
//! async-io's `Async<T>` (under both async-std and smol) could wait for
//! readability without a buffer (`readable()`), then read straight into the
//! core's `input_buffer()`. That was not chosen: async-std's socket types do
//! not expose it, it would tie the data path to async-io, and the copy it
//! saves is paid anyway in safe Rust (a `futures-io` read needs an
//! initialised slice, so reading into the core's spare capacity means
//! zeroing it first, which costs what the copy costs).

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_io::{AsyncRead, AsyncWrite};

use crate::runtime::{Runtime, Timer};

/// The scratch buffer each thread reads into.
const SCRATCH_LEN: usize = 64 * 1024;
/// The fallback when the scratch buffer is unavailable (re-entrant use, or
/// a thread being torn down).
const FALLBACK_LEN: usize = 4 * 1024;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_LEN].into_boxed_slice());
}

/// Reads once from `stream` and hands what came to `sink` before returning.
/// `Ready(Ok(0))` is end of stream. Holds no buffer across a `Pending`.
pub(crate) fn poll_read_with<S, F>(
    cx: &mut Context<'_>,
    stream: &mut S,
    mut sink: F,
) -> Poll<io::Result<usize>>
where
    S: AsyncRead + Unpin,
    F: FnMut(&[u8]),
{
    let mut read = |buf: &mut [u8]| -> Poll<io::Result<usize>> {
        loop {
            match Pin::new(&mut *stream).poll_read(cx, buf) {
                Poll::Ready(Ok(n)) => {
                    if let Some(data) = buf.get(..n)
                        && n > 0
                    {
                        sink(data);
                    }
                    return Poll::Ready(Ok(n));
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
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
