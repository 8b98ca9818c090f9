//! What a child writes to a captured stream: read to the end by a thread
//! of its own, kept whole ([`Sink::Capture`](crate::Sink::Capture)) or as
//! lines with the ANSI sequences stripped
//! ([`Sink::Lines`](crate::Sink::Lines)), and waited on.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::ansi::strip_ansi;

/// What one or more streams of a child wrote so far.
pub(crate) struct Collector {
    state: Mutex<State>,
    cond: Condvar,
    /// Kept as lines (else as bytes).
    lines: bool,
}

struct State {
    bytes: Vec<u8>,
    lines: Vec<String>,
    /// Streams not at their end yet.
    open: usize,
}

/// How a wait for a line ended.
pub(crate) enum LineWait {
    /// The line at this index holds the needle.
    Found(usize, String),
    /// Every stream reached its end without such a line.
    Closed,
    /// Not by the deadline.
    TimedOut,
}

impl Collector {
    /// A collector for streams kept as lines (or whole, if not `lines`).
    pub(crate) fn new(lines: bool) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                bytes: Vec::new(),
                lines: Vec::new(),
                open: 0,
            }),
            cond: Condvar::new(),
            lines,
        })
    }

    /// Kept as lines (a log)?
    pub(crate) fn is_lines(&self) -> bool {
        self.lines
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads `stream` to its end on a thread of its own into this collector.
    pub(crate) fn read(
        self: &Arc<Self>,
        thread_name: String,
        stream: impl Read + Send + 'static,
    ) -> io::Result<()> {
        self.state().open += 1;
        let me = Arc::clone(self);
        let spawned = thread::Builder::new().name(thread_name).spawn(move || {
            if me.lines {
                me.read_lines(stream);
            } else {
                me.read_bytes(stream);
            }
            me.state().open -= 1;
            me.cond.notify_all();
        });
        if spawned.is_err() {
            self.state().open -= 1;
        }
        spawned.map(|_| ())
    }

    fn read_bytes(&self, mut stream: impl Read) {
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => self.state().bytes.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    fn read_lines(&self, stream: impl Read) {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        buf.pop();
                    }
                    let line = strip_ansi(&String::from_utf8_lossy(&buf));
                    self.state().lines.push(line);
                    self.cond.notify_all();
                }
            }
        }
    }

    /// Everything collected so far: the bytes as text, or the lines, each
    /// ending in a newline.
    pub(crate) fn text(&self) -> String {
        let s = self.state();
        if self.lines {
            s.lines.iter().flat_map(|l| [l.as_str(), "\n"]).collect()
        } else {
            String::from_utf8_lossy(&s.bytes).into_owned()
        }
    }

    /// Runs `f` on the lines collected so far.
    pub(crate) fn with_lines<R>(&self, f: impl FnOnce(&[String]) -> R) -> R {
        f(&self.state().lines)
    }

    /// Waits until every stream reached its end, up to `within`; false if
    /// one is still open then.
    pub(crate) fn wait_closed(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut s = self.state();
        while s.open > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = match self.cond.wait_timeout(s, left) {
                Ok((s, _)) => s,
                Err(e) => e.into_inner().0,
            };
        }
        true
    }

    /// Waits until a line at index `from` or later contains `needle`.
    pub(crate) fn wait_line(&self, from: usize, needle: &str, deadline: Instant) -> LineWait {
        let mut s = self.state();
        let mut next = from;
        loop {
            if let Some((i, line)) = s
                .lines
                .iter()
                .enumerate()
                .skip(next)
                .find(|(_, l)| l.contains(needle))
            {
                return LineWait::Found(i, line.clone());
            }
            next = s.lines.len().max(from);
            if s.open == 0 {
                return LineWait::Closed;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return LineWait::TimedOut;
            }
            s = match self.cond.wait_timeout(s, left) {
                Ok((s, _)) => s,
                Err(e) => e.into_inner().0,
            };
        }
    }
}
