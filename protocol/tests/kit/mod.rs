//! The dev-only test kit: a client core and a server core wired together
//! in memory, with simulated time and configurable chunking, no sockets.
//!
//! Every event either side hands out is recorded with the simulated instant
//! it came out at, and checked against the event contract on the way: on
//! the server, requests, then at most one `ShutdownWrite`, then exactly one
//! `Closed`, nothing after it, and `is_closed()` exactly once `Closed` came
//! out; on the client, acks, then one `Closed`, nothing after. Every
//! `handle_timeout(now)` the kit makes is checked to leave no timer at or
//! before `now` (no busy loop).
//!
//! The sockets' ends are modelled too (each can be turned off): the FIN a
//! server sends on `ShutdownWrite` (or the close on `Closed`) reaches the
//! client as `handle_eof` once everything written before it was read, and a
//! client's `Closed` (its socket shut down) reaches the server as
//! `handle_eof` once the server reads again.
//!
//! Time moves only when a test says so: [`Pair::advance`] by a hand-picked
//! amount, or [`Pair::run_until`] / [`Pair::settle`], which jump `now` to
//! the earliest `poll_timeout` of the two sides, exactly the instant the
//! core named, fire it, and drive again.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use protocol::{
    Ack, AckResult, ClientConfig, ClientConnection, ClientEvent, CloseReason, Request,
    ServerConfig, ServerConnection, ServerEvent,
};

/// One event with the simulated instant it was polled at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged<E> {
    /// Since [`Pair::start`].
    pub at: Duration,
    pub event: E,
}

/// The in-memory pair.
pub struct Pair {
    pub client: ClientConnection,
    pub server: ServerConnection,
    /// The simulated instant the pair was made at.
    pub start: Instant,
    /// The simulated present.
    pub now: Instant,
    /// Most bytes moved per hop (`usize::MAX`: everything at once).
    pub chunk: usize,
    /// Answer every request at once with OK.
    pub auto_respond: bool,
    /// Let the client read what the server wrote.
    pub client_reads: bool,
    /// The server's FIN (on `ShutdownWrite`) or close (on `Closed`) reaches
    /// the client as `handle_eof` once it read everything before it.
    pub fin_to_client: bool,
    /// The client's close (on its `Closed`) reaches the server as
    /// `handle_eof` the next time the server reads.
    pub fin_to_server: bool,
    /// Every request the server handed out, in order.
    pub requests: Vec<Request>,
    /// Every ack the client handed out, in order.
    pub acks: Vec<Ack>,
    /// Every server event, in order, with its instant.
    pub server_log: Vec<Logged<ServerEvent>>,
    /// Every client event, in order, with its instant.
    pub client_log: Vec<Logged<ClientEvent>>,
    /// The instants `run_until`/`settle` fired timers at.
    pub fired: Vec<Duration>,
    server_fin: bool,
    client_fin: bool,
    client_got_eof: bool,
    server_got_eof: bool,
}

impl Pair {
    pub fn new(server: ServerConfig, client: ClientConfig) -> Self {
        let now = Instant::now();
        Self {
            client: ClientConnection::new(client),
            server: ServerConnection::new(server, now),
            start: now,
            now,
            chunk: usize::MAX,
            auto_respond: true,
            client_reads: true,
            fin_to_client: true,
            fin_to_server: true,
            requests: Vec::new(),
            acks: Vec::new(),
            server_log: Vec::new(),
            client_log: Vec::new(),
            fired: Vec::new(),
            server_fin: false,
            client_fin: false,
            client_got_eof: false,
            server_got_eof: false,
        }
    }

    /// The simulated instant `d` after the start.
    pub fn at(&self, d: Duration) -> Instant {
        self.start + d
    }

    /// The simulated present, as time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Moves bytes both ways, answers requests, records events and passes
    /// the sockets' ends on, until nothing moves.
    pub fn drive(&mut self) {
        for _ in 0..10_000_000 {
            let mut moved = self.drain_server() | self.drain_client();
            // client -> server, as far as the server wants input
            let out = self.client.transmit_buf();
            if !out.is_empty() && self.server.wants_input() {
                let n = out.len().min(self.chunk);
                let bytes = out[..n].to_vec();
                self.client.handle_written(n, self.now);
                self.server.handle_input(&bytes, self.now);
                moved = true;
            }
            moved |= self.drain_server();
            // server -> client
            let out = self.server.transmit_buf();
            if !out.is_empty() && self.client_reads {
                let n = out.len().min(self.chunk);
                let bytes = out[..n].to_vec();
                self.server.handle_written(n, self.now);
                self.client.handle_input(&bytes, self.now);
                moved = true;
            }
            moved |= self.drain_client();
            // The server's FIN, after the last byte it wrote was read.
            if self.fin_to_client
                && self.server_fin
                && !self.client_got_eof
                && self.client_reads
                && self.server.transmit_buf().is_empty()
            {
                self.client_got_eof = true;
                self.client.handle_eof(self.now);
                moved = true;
            }
            // The client's FIN, the next time the server reads.
            if self.fin_to_server
                && self.client_fin
                && !self.server_got_eof
                && self.client.transmit_buf().is_empty()
                && self.server.wants_input()
            {
                self.server_got_eof = true;
                self.server.handle_eof(self.now);
                moved = true;
            }
            if !moved {
                return;
            }
        }
        panic!("the pair never settled");
    }

    /// Feeds raw bytes to the server as if the client's socket sent them
    /// (bytes the client core would never write), then drives.
    pub fn server_input(&mut self, bytes: &[u8]) {
        assert!(self.server.wants_input(), "the server is not reading");
        self.server.handle_input(bytes, self.now);
        self.drive();
    }

    /// Advances simulated time by a hand-picked amount, firing the timers
    /// that are due, then drives.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.fire();
        self.drive();
    }

    /// The earliest instant either side asked `handle_timeout` for.
    pub fn next_timeout(&self) -> Option<Instant> {
        match (self.server.poll_timeout(), self.client.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, None) => a,
            (None, b) => b,
        }
    }

    /// Drives; then, while a timer is armed at or before `limit`, jumps
    /// `now` to the earliest one (exactly the instant the core named),
    /// fires it and drives again. Stops once both sides are closed. `now`
    /// is then `limit`, unless both closed before it (then it is the
    /// instant they did).
    pub fn run_until(&mut self, limit: Instant) {
        self.drive();
        for _ in 0..1_000_000 {
            if self.server.is_closed() && self.client.is_closed() {
                return;
            }
            match self.next_timeout() {
                Some(at) if at <= limit => {
                    assert!(
                        at >= self.now,
                        "a timer at {:?} is in the past (now {:?})",
                        at - self.start,
                        self.elapsed()
                    );
                    self.now = at;
                    self.fired.push(self.elapsed());
                    self.fire();
                    self.drive();
                }
                _ => {
                    self.now = self.now.max(limit);
                    return;
                }
            }
        }
        panic!("timers kept firing");
    }

    /// [`run_until`](Self::run_until) with no limit: until both sides are
    /// closed or no timer is armed. `now` is the last timer's instant.
    pub fn settle(&mut self) {
        self.drive();
        for _ in 0..1_000_000 {
            if self.server.is_closed() && self.client.is_closed() {
                return;
            }
            let Some(at) = self.next_timeout() else {
                return;
            };
            self.run_until(at);
        }
        panic!("timers kept firing");
    }

    /// `handle_timeout(now)` on both sides; neither may be left with a
    /// timer at or before `now`.
    fn fire(&mut self) {
        self.server.handle_timeout(self.now);
        self.client.handle_timeout(self.now);
        for (side, next) in [
            ("server", self.server.poll_timeout()),
            ("client", self.client.poll_timeout()),
        ] {
            if let Some(next) = next {
                assert!(
                    next > self.now,
                    "{side} poll_timeout {:?} is not after the handled now {:?}",
                    next - self.start,
                    self.elapsed()
                );
            }
        }
    }

    /// Records the server's events, checking their order; answers requests
    /// when `auto_respond`.
    fn drain_server(&mut self) -> bool {
        let mut moved = false;
        while let Some(event) = self.server.poll_event() {
            moved = true;
            if let Some(last) = self.server_log.last() {
                assert!(
                    !matches!(last.event, ServerEvent::Closed(_)),
                    "server event {event:?} after Closed"
                );
            }
            match &event {
                ServerEvent::Proxied(_) => assert!(
                    self.server_log.is_empty(),
                    "a PROXY header event after other events"
                ),
                ServerEvent::Request(req) => {
                    assert!(
                        self.server_shutdown_at().is_none(),
                        "request {req:?} after ShutdownWrite"
                    );
                    if self.auto_respond {
                        self.server
                            .respond(req.handle, AckResult::OK, self.now)
                            .unwrap();
                    }
                    self.requests.push(req.clone());
                }
                ServerEvent::ShutdownWrite => {
                    assert!(
                        self.server_shutdown_at().is_none(),
                        "a second ShutdownWrite"
                    );
                    assert!(
                        self.server.transmit_buf().is_empty(),
                        "ShutdownWrite with output unsent"
                    );
                    assert!(
                        self.server.wants_input() || self.server.is_closed(),
                        "lingering without reading"
                    );
                    self.server_fin = true;
                }
                ServerEvent::Closed(reason) => {
                    assert!(
                        self.server.is_closed(),
                        "Closed({reason}) but not is_closed"
                    );
                    assert_eq!(self.server.close_reason(), Some(reason));
                    assert!(self.server.poll_event().is_none(), "an event after Closed");
                    self.server_fin = true;
                }
            }
            let at = self.elapsed();
            self.server_log.push(Logged { at, event });
        }
        if self.server.is_closed() {
            assert!(
                self.server_closed_at().is_some(),
                "is_closed without a Closed event"
            );
        }
        moved
    }

    /// Records the client's events, checking their order.
    fn drain_client(&mut self) -> bool {
        let mut moved = false;
        while let Some(event) = self.client.poll_event() {
            moved = true;
            if let Some(last) = self.client_log.last() {
                assert!(
                    !matches!(last.event, ClientEvent::Closed(_)),
                    "client event {event:?} after Closed"
                );
            }
            match &event {
                ClientEvent::Ack(ack) => self.acks.push(*ack),
                ClientEvent::Closed(reason) => {
                    assert!(
                        self.client.is_closed(),
                        "Closed({reason}) but not is_closed"
                    );
                    assert!(self.client.poll_event().is_none(), "an event after Closed");
                    self.client_fin = true;
                }
            }
            let at = self.elapsed();
            self.client_log.push(Logged { at, event });
        }
        if self.client.is_closed() {
            assert!(
                self.client_closed_at().is_some(),
                "is_closed without a Closed event"
            );
        }
        moved
    }

    /// When the server said `ShutdownWrite`, if it did.
    pub fn server_shutdown_at(&self) -> Option<Duration> {
        self.server_log
            .iter()
            .find(|l| l.event == ServerEvent::ShutdownWrite)
            .map(|l| l.at)
    }

    /// When and why the server closed, if it did.
    pub fn server_closed(&self) -> Option<(Duration, &CloseReason)> {
        self.server_log.iter().find_map(|l| match &l.event {
            ServerEvent::Closed(reason) => Some((l.at, reason)),
            _ => None,
        })
    }

    pub fn server_closed_at(&self) -> Option<Duration> {
        self.server_closed().map(|(at, _)| at)
    }

    /// When and why the client closed, if it did.
    pub fn client_closed(&self) -> Option<(Duration, &CloseReason)> {
        self.client_log.iter().find_map(|l| match &l.event {
            ClientEvent::Closed(reason) => Some((l.at, reason)),
            _ => None,
        })
    }

    pub fn client_closed_at(&self) -> Option<Duration> {
        self.client_closed().map(|(at, _)| at)
    }

    /// The server's events without their instants, requests as their
    /// handles' indices: `[R(0), R(1), ShutdownWrite, Closed(..)]`.
    pub fn server_events(&self) -> Vec<Seen> {
        self.server_log
            .iter()
            .map(|l| match &l.event {
                ServerEvent::Proxied(_) => Seen::Proxied,
                ServerEvent::Request(r) => Seen::Request(r.handle.index()),
                ServerEvent::ShutdownWrite => Seen::ShutdownWrite,
                ServerEvent::Closed(reason) => Seen::Closed(reason.clone()),
            })
            .collect()
    }
}

impl Default for Pair {
    fn default() -> Self {
        Self::new(ServerConfig::default(), ClientConfig::default())
    }
}

/// A server event in short, for comparing whole sequences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Proxied,
    Request(u64),
    ShutdownWrite,
    Closed(CloseReason),
}

/// `n` milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `n` seconds.
pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
