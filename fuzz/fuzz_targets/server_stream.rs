//! A `ServerConnection` driven by an arbitrary script: bytes in (raw or
//! well-formed frames, copied in or appended in place), EOF, time passing,
//! answers in any order, partial writes, close with or without a shutdown
//! deadline, socket errors.
//!
//! A model decodes the same accepted bytes alongside it. Asserts: no panic;
//! requests come out in arrival order with their ids and payloads; acks go
//! out in request order, each with the answer given (or result 1 for a
//! Submit refused for want of a Conn); output and input buffers stay
//! bounded; the events come in order (requests, at most one
//! `ShutdownWrite` with every ack written, exactly one `Closed` last with
//! the connection's reason, nothing after it); `poll_timeout` lies in the
//! future once `handle_timeout(now)` ran, and a `handle_timeout` with
//! nothing due changes nothing; the shutdown deadline cuts only at or after
//! its instant and counts what it dropped; a lingering connection discards
//! what it reads and ends at its quiet or linger deadline, not before; after
//! the peer's EOF nothing lingers; a closed connection stays closed and
//! holds nothing; and once the peer's EOF is answered and flushed the
//! connection closes, having acked every complete request unless it was cut
//! (write stall, shutdown deadline, socket error).

#![no_main]

use std::collections::HashMap;
use std::io::ErrorKind;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use protocol::{
    ACK_FRAME_LEN, AckResult, CloseReason, MIN_FRAME_LEN, MessageId, Packet, RequestHandle,
    RequestKind, ServerConfig, ServerConnection, ServerEvent, decode, encode_request,
};

const HIGH_WATER: usize = 4096;
const LOW_WATER: usize = 1024;
const MAX_PENDING: usize = 16;
/// The most an adapter reads in one go (the core's largest growth step).
const MAX_CHUNK: usize = 64 * 1024;
/// Handles for bogus answers, taken from another connection.
const DONOR_HANDLES: usize = 256;

const IO_ERRORS: [ErrorKind; 5] = [
    ErrorKind::ConnectionReset,
    ErrorKind::BrokenPipe,
    ErrorKind::ConnectionAborted,
    ErrorKind::TimedOut,
    ErrorKind::Other,
];

#[derive(Debug, Arbitrary)]
struct Config {
    /// `max_frame_len` is this, at least 5.
    max_frame_len: u16,
    require_conn: bool,
    /// Timeouts in milliseconds, at least 1 ms.
    idle_ms: Option<u16>,
    frame_ms: Option<u16>,
    stall_ms: Option<u16>,
    /// `linger` in milliseconds (0 turns lingering off, like `None`).
    linger_ms: Option<u16>,
    /// `linger_quiet` in milliseconds, at least 1 ms.
    quiet_ms: u16,
}

#[derive(Debug, Arbitrary)]
enum Step {
    /// Raw bytes, copied in with `handle_input`.
    Input(Vec<u8>),
    /// Raw bytes appended to `input_buffer()`, then `handle_input_appended`.
    Appended(Vec<u8>),
    /// A well-formed request frame, fed in two parts cut at `cut`.
    Request(RequestKind, MessageId, Vec<u8>, u8),
    Eof,
    /// Time passes by this many milliseconds, then `handle_timeout`.
    Advance(u16),
    /// `handle_timeout` at the same instant.
    Timeout,
    RespondOldest(AckResult),
    /// Answer the outstanding request at this index (modulo their number).
    RespondAny(u8, AckResult),
    /// Answer a handle that is not outstanding (one of another
    /// connection's): must be refused.
    RespondBogus(u8),
    /// Write up to this many bytes of `transmit_buf`.
    Write(u16),
    /// Write all of `transmit_buf` (or half of it) in one `handle_written`.
    Flush(bool),
    /// `close(now, None)`.
    Close,
    /// `close(now, Some(now + this many milliseconds))`: server shutdown.
    CloseDeadline(u16),
    /// `handle_io_error` with one of `IO_ERRORS`.
    IoError(u8),
}

#[derive(Debug, Arbitrary)]
struct Script {
    config: Config,
    steps: Vec<Step>,
}

fn ms(v: Option<u16>) -> Option<Duration> {
    v.map(|v| Duration::from_millis(u64::from(v.max(1))))
}

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Handles 0..DONOR_HANDLES, handed out by another connection once.
fn donor_handles() -> &'static [RequestHandle] {
    static HANDLES: OnceLock<Vec<RequestHandle>> = OnceLock::new();
    HANDLES.get_or_init(|| {
        let now = base();
        let mut donor = ServerConnection::new(
            ServerConfig {
                max_pending_requests: DONOR_HANDLES,
                ..ServerConfig::default()
            },
            now,
        );
        let mut input = BytesMut::new();
        for i in 0..DONOR_HANDLES {
            let id = MessageId::from_counter(i as u32);
            encode_request(RequestKind::Submit, &id, b"", u32::MAX, &mut input).unwrap();
        }
        donor.handle_input(&input, now);
        let handles: Vec<RequestHandle> = std::iter::from_fn(|| donor.poll_event())
            .map(|e| match e {
                ServerEvent::Request(r) => r.handle,
                other => panic!("donor: {other:?}"),
            })
            .collect();
        assert_eq!(handles.len(), DONOR_HANDLES);
        handles
    })
}

/// Where the connection is, as its events tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Conversing,
    /// `ShutdownWrite` came out at this instant.
    Lingering {
        since: Instant,
    },
    Closed,
}

struct Harness {
    conn: ServerConnection,
    config: ServerConfig,
    now: Instant,
    /// Accepted input, decoded by the model.
    mirror: BytesMut,
    mirror_dead: bool,
    /// Every complete request the server was given, in order: index = handle.
    requests: Vec<(RequestKind, MessageId, Bytes)>,
    /// Handles delivered and not answered, in delivery order.
    outstanding: Vec<RequestHandle>,
    /// Handles delivered, with the answer once given.
    answers: HashMap<u64, Option<AckResult>>,
    last_handle: Option<u64>,
    /// Everything the server wrote, and how many acks were checked.
    written: BytesMut,
    acks: usize,
    seen: Seen,
    /// While lingering: the last instant bytes were read (quiet timer).
    last_read: Option<Instant>,
    /// `close` was called.
    closing: bool,
    /// The earliest shutdown deadline given.
    deadline: Option<Instant>,
    /// The peer's EOF arrived while input was open: nothing may linger.
    peer_eof: bool,
    /// The connection was cut (write stall, shutdown deadline, socket
    /// error): acks may have been dropped, whatever the reason says (it
    /// keeps the first one).
    cut: bool,
}

impl Harness {
    fn new(c: &Config) -> Self {
        let config = ServerConfig {
            max_frame_len: u32::from(c.max_frame_len).max(MIN_FRAME_LEN),
            high_water: HIGH_WATER,
            low_water: LOW_WATER,
            max_pending_requests: MAX_PENDING,
            idle_timeout: ms(c.idle_ms),
            frame_timeout: ms(c.frame_ms),
            write_stall_timeout: ms(c.stall_ms),
            require_conn: c.require_conn,
            linger: c.linger_ms.map(|v| Duration::from_millis(u64::from(v))),
            linger_quiet: Duration::from_millis(u64::from(c.quiet_ms.max(1))),
            ..ServerConfig::default()
        };
        let now = base();
        Self {
            conn: ServerConnection::new(config.clone(), now),
            config,
            now,
            mirror: BytesMut::new(),
            mirror_dead: false,
            requests: Vec::new(),
            outstanding: Vec::new(),
            answers: HashMap::new(),
            last_handle: None,
            written: BytesMut::new(),
            acks: 0,
            seen: Seen::Conversing,
            last_read: None,
            closing: false,
            deadline: None,
            peer_eof: false,
            cut: false,
        }
    }

    fn linger_on(&self) -> bool {
        self.config.linger.is_some_and(|d| !d.is_zero())
    }

    /// Feeds bytes the way an adapter does: only while the server wants them.
    fn feed(&mut self, data: &[u8], appended: bool) {
        let data = &data[..data.len().min(MAX_CHUNK)];
        if data.is_empty() || !self.conn.wants_input() {
            return;
        }
        let lingering = matches!(self.seen, Seen::Lingering { .. }) && !self.conn.is_closed();
        if lingering {
            self.last_read = Some(self.now);
        } else {
            self.mirror.extend_from_slice(data);
            self.run_mirror();
        }
        let before = self.conn.stats();
        if appended {
            let buf = self.conn.input_buffer();
            let len = buf.len();
            buf.extend_from_slice(data);
            assert_eq!(buf.len(), len + data.len());
            self.conn.handle_input_appended(data.len(), self.now);
        } else {
            self.conn.handle_input(data, self.now);
        }
        let after = self.conn.stats();
        assert_eq!(after.bytes_in, before.bytes_in + data.len() as u64);
        if lingering {
            // Read, counted, discarded: nothing parsed, nothing held.
            assert_eq!(after.frames_in, before.frames_in);
            assert_eq!(self.conn.buffered_input(), 0);
            assert!(self.conn.transmit_buf().is_empty());
        }
    }

    fn run_mirror(&mut self) {
        while !self.mirror_dead {
            match decode(&mut self.mirror, self.config.max_frame_len) {
                Ok(Some(Packet::Conn { id, payload })) => {
                    self.requests.push((RequestKind::Conn, id, payload))
                }
                Ok(Some(Packet::Submit { id, payload })) => {
                    self.requests.push((RequestKind::Submit, id, payload))
                }
                Ok(Some(_)) | Err(_) => self.mirror_dead = true,
                Ok(None) => break,
            }
        }
    }

    fn respond(&mut self, index: usize, result: AckResult) {
        if self.outstanding.is_empty() {
            return;
        }
        let handle = self.outstanding.remove(index % self.outstanding.len());
        let closed = self.conn.is_closed();
        let r = self.conn.respond(handle, result, self.now);
        if closed {
            assert!(r.is_err(), "a closed connection took an answer");
        } else {
            assert_eq!(r, Ok(()), "an outstanding request was refused an answer");
            self.answers.insert(handle.index(), Some(result));
        }
        let again = self.conn.respond(handle, result, self.now);
        assert!(again.is_err(), "request {handle} was answered twice");
    }

    fn write(&mut self, n: usize) {
        let n = n.min(self.conn.transmit_buf().len());
        self.written
            .extend_from_slice(&self.conn.transmit_buf()[..n]);
        let before = self.conn.stats().bytes_out;
        self.conn.handle_written(n, self.now);
        assert_eq!(self.conn.stats().bytes_out, before + n as u64);
    }

    fn handle_timeout(&mut self) {
        let now = self.now;
        let due = self.conn.poll_timeout();
        let closed = self.conn.is_closed();
        let lingering = matches!(self.seen, Seen::Lingering { .. }) && !closed;
        let pending = self.conn.pending_output();
        let unanswered = self.conn.pending_requests();
        let buffered = self.conn.buffered_input();
        self.conn.handle_timeout(now);
        if let Some(next) = self.conn.poll_timeout() {
            assert!(
                next > now,
                "poll_timeout {:?} is not after the handled now {:?}: busy loop",
                next - base(),
                now - base()
            );
        }
        if due.is_none_or(|t| t > now) {
            // Nothing was due: a no-op.
            assert_eq!(self.conn.is_closed(), closed);
            assert_eq!(self.conn.poll_timeout(), due);
        }
        if let Seen::Lingering { since } = self.seen
            && lingering
        {
            // The model of the lingering close's two timers.
            let linger = self.config.linger.expect("lingering with linger on");
            let until = self.deadline.map_or(since + linger, |d| d.min(since + linger));
            let quiet_at = self.last_read.unwrap_or(since).max(since) + self.config.linger_quiet;
            let over = now >= until || now >= quiet_at;
            assert_eq!(
                self.conn.is_closed(),
                over,
                "lingering since {:?}: until {:?}, quiet at {:?}, now {:?}",
                since - base(),
                until - base(),
                quiet_at - base(),
                now - base()
            );
        }
        if !closed && !lingering && self.conn.is_closed() {
            // Cut in the middle of the conversation by a timer.
            match self.conn.close_reason() {
                Some(CloseReason::ShutdownDeadline {
                    unanswered: u,
                    unsent,
                }) => {
                    let d = self.deadline.expect("a deadline was given");
                    assert!(d <= now, "cut before the deadline");
                    assert_eq!((*u, *unsent), (unanswered, pending));
                }
                Some(CloseReason::WriteStall { after, pending: p }) => {
                    assert_eq!(Some(*after), self.config.write_stall_timeout);
                    assert_eq!(*p, pending);
                    assert!(pending > 0);
                }
                _ => {}
            }
            // Closed straight from the conversation with work left: acks
            // were dropped (a graceful end has nothing left, and lingers
            // unless lingering is off).
            if pending > 0 || unanswered > 0 || buffered > 0 {
                self.cut = true;
            }
        }
    }

    fn step(&mut self, step: Step) {
        match step {
            Step::Input(data) => self.feed(&data, false),
            Step::Appended(data) => self.feed(&data, true),
            Step::Request(kind, id, payload, cut) => {
                let mut frame = BytesMut::new();
                if encode_request(kind, &id, &payload, u32::MAX, &mut frame).is_ok() {
                    let cut = usize::from(cut).min(frame.len());
                    self.feed(&frame[..cut], false);
                    self.feed(&frame[cut..], true);
                }
            }
            Step::Eof => self.eof(),
            Step::Advance(d) => {
                self.now += Duration::from_millis(u64::from(d));
                self.handle_timeout();
            }
            Step::Timeout => self.handle_timeout(),
            Step::RespondOldest(result) => self.respond(0, result),
            Step::RespondAny(i, result) => self.respond(usize::from(i), result),
            Step::RespondBogus(i) => {
                let handle = donor_handles()[usize::from(i) % DONOR_HANDLES];
                if !self.outstanding.contains(&handle) {
                    let r = self.conn.respond(handle, AckResult::OK, self.now);
                    assert!(r.is_err(), "answer to unknown request {handle} taken");
                }
            }
            Step::Write(n) => self.write(usize::from(n)),
            Step::Flush(all) => {
                let n = self.conn.transmit_buf().len();
                self.write(if all { n } else { n / 2 });
            }
            Step::Close => {
                self.closing = true;
                self.conn.close(self.now, None);
            }
            Step::CloseDeadline(d) => {
                let at = self.now + Duration::from_millis(u64::from(d));
                self.deadline = Some(self.deadline.map_or(at, |d| d.min(at)));
                self.closing = true;
                self.conn.close(self.now, Some(at));
                if !self.conn.is_closed() {
                    let t = self.conn.poll_timeout().expect("a deadline is a timer");
                    assert!(t <= self.deadline.unwrap(), "the deadline is not in poll_timeout");
                }
            }
            Step::IoError(k) => {
                let kind = IO_ERRORS[usize::from(k) % IO_ERRORS.len()];
                let was_closed = self.conn.is_closed();
                let conversing = self.seen == Seen::Conversing && self.conn.close_reason().is_none();
                self.conn.handle_io_error(kind);
                assert!(self.conn.is_closed());
                if !was_closed {
                    self.cut = true;
                }
                if conversing && !was_closed {
                    assert_eq!(self.conn.close_reason(), Some(&CloseReason::Io { kind }));
                }
            }
        }
        self.drain_events();
        self.check();
    }

    fn eof(&mut self) {
        // Input is open while nothing ended it: no close, no reason yet.
        let open = !self.closing && self.conn.close_reason().is_none();
        let lingering = matches!(self.seen, Seen::Lingering { .. }) && !self.conn.is_closed();
        self.conn.handle_eof(self.now);
        if open {
            self.peer_eof = true;
        }
        if lingering {
            assert!(self.conn.is_closed(), "EOF did not end the lingering");
        }
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.conn.poll_event() {
            match event {
                ServerEvent::Request(req) => self.request(req),
                ServerEvent::Proxied(h) => panic!("a PROXY header event without proxy_protocol: {h:?}"),
                ServerEvent::ShutdownWrite => {
                    assert_eq!(self.seen, Seen::Conversing, "ShutdownWrite after {:?}", self.seen);
                    assert!(self.linger_on(), "lingering with lingering off");
                    assert!(
                        !self.peer_eof,
                        "lingering after the peer's EOF ({:?})",
                        self.conn.close_reason()
                    );
                    assert!(self.conn.transmit_buf().is_empty(), "FIN before the last ack");
                    assert_eq!(self.conn.pending_requests(), 0);
                    assert!(self.conn.wants_input() || self.conn.is_closed());
                    assert!(self.conn.close_reason().is_some());
                    self.seen = Seen::Lingering { since: self.now };
                }
                ServerEvent::Closed(reason) => {
                    assert_ne!(self.seen, Seen::Closed, "a second Closed");
                    assert!(self.conn.is_closed());
                    assert_eq!(self.conn.close_reason(), Some(&reason));
                    let lingerable = matches!(
                        reason,
                        CloseReason::LocalClose
                            | CloseReason::Decode(_)
                            | CloseReason::UnexpectedPacket { .. }
                            | CloseReason::IdleTimeout { .. }
                            | CloseReason::FrameTimeout { .. }
                    );
                    if self.seen == Seen::Conversing && lingerable && self.linger_on() {
                        // Ended without lingering: only a cut may do that.
                        assert!(self.cut || self.peer_eof, "{reason:?} without lingering");
                    }
                    self.seen = Seen::Closed;
                }
            }
            if self.seen == Seen::Closed {
                assert_eq!(self.conn.poll_event(), None, "an event after Closed");
            }
        }
    }

    fn request(&mut self, req: protocol::Request) {
        assert_eq!(self.seen, Seen::Conversing, "a request after {:?}", self.seen);
        assert!(!self.conn.is_closed(), "a closed connection handed out a request");
        let index = req.handle.index();
        assert!(
            self.last_handle.is_none_or(|h| index > h),
            "handles out of order"
        );
        if !self.config.require_conn {
            assert_eq!(index, self.last_handle.map_or(0, |h| h + 1));
        }
        self.last_handle = Some(index);
        let (kind, id, payload) = self
            .requests
            .get(usize::try_from(index).expect("small handle"))
            .unwrap_or_else(|| panic!("request {} was never sent", req.handle));
        assert_eq!((req.kind, req.id, &req.payload), (*kind, *id, payload));
        self.outstanding.push(req.handle);
        self.answers.insert(index, None);
    }

    fn check(&mut self) {
        let c = &self.conn;
        assert!(
            c.pending_output() <= HIGH_WATER + MAX_PENDING * ACK_FRAME_LEN + ACK_FRAME_LEN,
            "pending output {} is unbounded",
            c.pending_output()
        );
        let max_in = usize::try_from(self.config.max_frame_len).expect("u32 fits") + MAX_CHUNK;
        assert!(
            c.buffered_input() <= max_in,
            "buffered input {} > {max_in}",
            c.buffered_input()
        );
        assert!(c.pending_requests() <= MAX_PENDING);
        assert_eq!(
            c.is_closed(),
            self.seen == Seen::Closed,
            "is_closed and the Closed event disagree"
        );
        if c.is_closed() {
            self.outstanding.clear();
            assert!(c.close_reason().is_some());
            assert!(c.transmit_buf().is_empty());
            assert!(c.poll_timeout().is_none());
            assert!(!c.wants_input());
            assert_eq!(c.buffered_input(), 0);
            assert_eq!(c.pending_requests(), 0);
        } else if matches!(self.seen, Seen::Lingering { .. }) {
            assert!(c.wants_input(), "a lingering connection reads");
            assert!(c.transmit_buf().is_empty());
            assert!(c.poll_timeout().is_some(), "lingering without a timer");
        }
        self.check_acks();
    }

    /// Every ack written matches the request of the same rank.
    fn check_acks(&mut self) {
        while let Some(packet) = decode(&mut self.written, u32::MAX).expect("acks frame") {
            assert_eq!(packet.frame_len(), ACK_FRAME_LEN);
            let (kind, id, _) = self
                .requests
                .get(self.acks)
                .unwrap_or_else(|| panic!("ack {} answers no request", self.acks));
            let handle = self.acks as u64;
            let result = match self.answers.get(&handle) {
                Some(Some(result)) => *result,
                Some(None) => panic!("request {handle} was acked before it was answered"),
                None => {
                    assert!(self.config.require_conn, "request {handle} never delivered");
                    assert_eq!(*kind, RequestKind::Submit);
                    AckResult::ERROR
                }
            };
            assert_eq!(packet, Packet::ack(*kind, *id, result), "ack {handle}");
            self.acks += 1;
        }
    }

    /// The peer closes: answer and flush everything, reading while the
    /// connection wants to (a lingering one sees the EOF again); the
    /// connection must end.
    fn finish(&mut self) {
        self.eof();
        self.drain_events();
        self.check();
        for _ in 0..100_000 {
            if self.conn.is_closed() {
                break;
            }
            if matches!(self.seen, Seen::Lingering { .. }) {
                // A driver reading a socket after the peer's FIN gets EOF.
                self.eof();
                self.drain_events();
                self.check();
                continue;
            }
            let progress = !self.outstanding.is_empty() || !self.conn.transmit_buf().is_empty();
            assert!(progress, "stuck open: {:?}", self.conn);
            while !self.outstanding.is_empty() {
                self.respond(0, AckResult::OK);
                self.drain_events();
                self.check();
            }
            self.write(usize::MAX);
            self.drain_events();
            self.check();
        }
        assert!(
            self.conn.is_closed(),
            "did not close after EOF: {:?}",
            self.conn
        );
        let reason = self.conn.close_reason().expect("closed with a reason");
        if !self.cut {
            assert!(
                !matches!(
                    reason,
                    CloseReason::WriteStall { .. }
                        | CloseReason::ShutdownDeadline { .. }
                        | CloseReason::Io { .. }
                ),
                "{reason:?} without a cut"
            );
            assert_eq!(
                self.acks,
                self.requests.len(),
                "complete requests went unanswered ({reason:?})"
            );
        }
    }
}

fuzz_target!(|script: Script| {
    let mut h = Harness::new(&script.config);
    for step in script.steps {
        h.step(step);
    }
    h.finish();
});
