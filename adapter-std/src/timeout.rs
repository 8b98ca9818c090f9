//! The core's one timer as socket timeouts (SO_RCVTIMEO / SO_SNDTIMEO):
//! the std-only glue the connection loops and the client's reader share.

use std::io;
use std::time::{Duration, Instant};

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
        let ms = deadline?.saturating_duration_since(now).as_millis();
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
    fn waits_round_down_never_ask_for_zero_and_are_set_only_when_changed() {
        let now = Instant::now();
        let ms = |n| Some(Duration::from_millis(n));
        let w = |d: Option<Duration>| SocketTimeout::wait_for(d.map(|d| now + d), now);
        assert_eq!([w(ms(0)), w(ms(7))], [ms(1), ms(7)]);
        assert_eq!([w(ms(29_999)), w(None)], [ms(29_990), None]);
        let mut t = SocketTimeout::default();
        let fail = |_| Err(io::ErrorKind::Other.into());
        t.apply(ms(1000), |_| Ok(())).unwrap();
        t.apply(ms(1000), fail).expect("unchanged: not set again");
        t.apply(None, fail).expect_err("changed: set");
    }
}
