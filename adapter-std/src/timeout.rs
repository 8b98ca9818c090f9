//! One connected blocking socket, TCP or Unix, shared by reference between
//! the thread that serves it and whoever must wake or cut it.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use adapter_common::StdStream;

/// A connected stream. `&Stream` reads and writes, so one `Arc<Stream>` can
/// be read by one thread while another shuts it down (no `try_clone`, so
/// no second file descriptor per connection).
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl From<StdStream> for Stream {
    fn from(s: StdStream) -> Self {
        match s {
            StdStream::Tcp(s) => Self::Tcp(s),
            StdStream::Unix(s) => Self::Unix(s),
        }
    }
}

impl Stream {
    pub(crate) fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_read_timeout(d),
            Self::Unix(s) => s.set_read_timeout(d),
        }
    }

    pub(crate) fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_write_timeout(d),
            Self::Unix(s) => s.set_write_timeout(d),
        }
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.shutdown(how),
            Self::Unix(s) => s.shutdown(how),
        }
    }

    /// The peer, for log lines: `ip:port`, or `unix` (client sockets on a
    /// Unix path are usually unnamed).
    pub(crate) fn peer_label(&self) -> String {
        match self {
            Self::Tcp(s) => s
                .peer_addr()
                .map_or_else(|_| "tcp:unknown".to_owned(), |a| a.to_string()),
            Self::Unix(s) => match s.peer_addr() {
                Ok(a) => match a.as_pathname() {
                    Some(p) => format!("unix:{}", p.display()),
                    None => "unix".to_owned(),
                },
                Err(_) => "unix".to_owned(),
            },
        }
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match *self {
            Stream::Tcp(s) => (&*s).read(buf),
            Stream::Unix(s) => (&*s).read(buf),
        }
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match *self {
            Stream::Tcp(s) => (&*s).write(buf),
            Stream::Unix(s) => (&*s).write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// True for the errors a socket timeout (SO_RCVTIMEO / SO_SNDTIMEO) gives.
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Turns the core's one timer (`poll_timeout`) into socket timeouts,
/// without a `setsockopt` per read when nothing changed.
///
/// The wait is rounded *down* (to 10 ms above 20 ms), so consecutive
/// computations of the same deadline give the same value and the call is
/// skipped; waking a little early is harmless (`handle_timeout` is a no-op
/// when nothing expired), waking late never happens. A deadline already
/// reached waits 1 ms (a zero timeout means "block forever" to the OS).
#[derive(Debug, Default)]
pub(crate) struct SocketTimeout {
    /// `None` until the first `apply`: what the socket has is unknown (an
    /// accepted socket inherits the listener's SO_RCVTIMEO on Linux), so
    /// the first call always sets it.
    current: Option<Option<Duration>>,
}

impl SocketTimeout {
    /// The wait until `deadline` as a socket timeout (`None` = block).
    pub(crate) fn wait_for(deadline: Option<Instant>, now: Instant) -> Option<Duration> {
        let d = deadline?.saturating_duration_since(now);
        let ms = d.as_millis();
        let ms = if ms > 20 { ms - ms % 10 } else { ms.max(1) };
        Some(Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX)))
    }

    /// Sets `want` with `set` unless it is in force already.
    pub(crate) fn apply(
        &mut self,
        want: Option<Duration>,
        set: impl FnOnce(Option<Duration>) -> io::Result<()>,
    ) -> io::Result<()> {
        if self.current != Some(want) {
            set(want)?;
            self.current = Some(want);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_timeout_rounds_down_and_never_asks_for_zero() {
        let now = Instant::now();
        let w = |ms| SocketTimeout::wait_for(Some(now + Duration::from_millis(ms)), now);
        assert_eq!(SocketTimeout::wait_for(None, now), None);
        assert_eq!(w(0), Some(Duration::from_millis(1)));
        assert_eq!(w(7), Some(Duration::from_millis(7)));
        assert_eq!(w(29_999), Some(Duration::from_millis(29_990)));
        assert_eq!(
            SocketTimeout::wait_for(Some(now), now + Duration::from_secs(1)),
            Some(Duration::from_millis(1))
        );
    }

    #[test]
    fn socket_timeout_skips_the_call_when_unchanged() {
        let mut t = SocketTimeout::default();
        let mut calls = 0;
        for _ in 0..3 {
            t.apply(Some(Duration::from_secs(1)), |_| {
                calls += 1;
                Ok(())
            })
            .unwrap();
        }
        t.apply(None, |_| {
            calls += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(calls, 2);
    }
}
