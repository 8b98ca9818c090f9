//! A `ServerConnection` driven by an arbitrary script: bytes in (raw or
//! well-formed frames, copied in or appended in place), EOF, time passing,
//! answers in any order, partial writes, close.
//!
//! A model decodes the same accepted bytes alongside it. Asserts: no panic;
//! requests come out in arrival order with their ids and payloads; acks go
//! out in request order, each with the answer given (or result 1 for a
//! Submit refused for want of a Conn); output and input buffers stay
//! bounded; `poll_timeout` lies in the future once `handle_timeout(now)`
//! ran, and a `handle_timeout` with nothing due changes nothing; a closed
//! connection stays closed and holds nothing; and once the peer's EOF is
//! answered and flushed the connection closes, having acked every complete
//! request unless a write stall aborted it.

#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use protocol::{
    ACK_FRAME_LEN, AckResult, CloseReason, MIN_FRAME_LEN, MessageId, Packet, RequestKind,
    ServerConfig, ServerConnection, decode_frame, encode_request,
};

const HIGH_WATER: usize = 4096;
const LOW_WATER: usize = 1024;
const MAX_PENDING: usize = 16;
/// The most an adapter reads in one go (the core's largest growth step).
const MAX_CHUNK: usize = 64 * 1024;

#[derive(Debug, Arbitrary)]
struct Config {
    /// `max_frame_len` is this, at least 5.
    max_frame_len: u16,
    require_conn: bool,
    /// Timeouts in milliseconds, at least 1 ms.
    idle_ms: Option<u16>,
    frame_ms: Option<u16>,
    stall_ms: Option<u16>,
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
    /// Answer a request that is not outstanding: must be refused.
    RespondBogus(u64),
    /// Write up to this many bytes of `transmit_buf`.
    Write(u16),
    /// `poll_transmit` into an empty or a non-empty buffer.
    PollTransmit(bool),
    Close,
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
    outstanding: Vec<u64>,
    /// Handles delivered, with the answer once given.
    answers: HashMap<u64, Option<AckResult>>,
    last_handle: Option<u64>,
    /// Everything the server wrote, and how many acks were checked.
    written: BytesMut,
    acks: usize,
    was_closed: bool,
    /// A timeout closed the connection with output unsent (a write stall):
    /// acks were dropped, whatever `close_reason` says (it keeps the first).
    dropped_output: bool,
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
            was_closed: false,
            dropped_output: false,
        }
    }

    /// Feeds bytes the way an adapter does: only while the server wants them.
    fn feed(&mut self, data: &[u8], appended: bool) {
        let data = &data[..data.len().min(MAX_CHUNK)];
        if data.is_empty() || !self.conn.wants_input() {
            return;
        }
        self.mirror.extend_from_slice(data);
        self.run_mirror();
        if appended {
            let buf = self.conn.input_buffer();
            let before = buf.len();
            buf.extend_from_slice(data);
            assert_eq!(buf.len(), before + data.len());
            self.conn.handle_input_appended(data.len(), self.now);
        } else {
            self.conn.handle_input(data, self.now);
        }
    }

    fn run_mirror(&mut self) {
        while !self.mirror_dead {
            match decode_frame(&mut self.mirror, self.config.max_frame_len) {
                Ok(Some(frame)) => match frame.decode_packet() {
                    Ok(Packet::Conn { id, payload }) => {
                        self.requests.push((RequestKind::Conn, id, payload))
                    }
                    Ok(Packet::Submit { id, payload }) => {
                        self.requests.push((RequestKind::Submit, id, payload))
                    }
                    Ok(_) | Err(_) => self.mirror_dead = true,
                },
                Ok(None) => break,
                Err(_) => self.mirror_dead = true,
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
            self.answers.insert(handle, Some(result));
        }
        let again = self.conn.respond(handle, result, self.now);
        assert!(again.is_err(), "request {handle} was answered twice");
    }

    fn write(&mut self, n: usize) {
        let n = n.min(self.conn.transmit_buf().len());
        self.written
            .extend_from_slice(&self.conn.transmit_buf()[..n]);
        self.conn.handle_written(n, self.now);
    }

    fn poll_transmit(&mut self, prefilled: bool) {
        let mut out = BytesMut::new();
        if prefilled {
            out.extend_from_slice(b"xyz");
        }
        let pending = self.conn.pending_output();
        let expected = self.conn.transmit_buf().to_vec();
        let n = self.conn.poll_transmit(&mut out, self.now);
        assert_eq!(n, pending);
        let start = if prefilled { 3 } else { 0 };
        assert_eq!(&out[start..], &expected[..]);
        self.written.extend_from_slice(&out[start..]);
    }

    fn handle_timeout(&mut self) {
        let now = self.now;
        let due = self.conn.poll_timeout();
        let closed = self.conn.is_closed();
        let pending = self.conn.pending_output();
        self.conn.handle_timeout(now);
        if !closed && self.conn.is_closed() && pending > 0 {
            self.dropped_output = true;
        }
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
    }

    fn step(&mut self, step: Step) {
        match step {
            Step::Input(data) => self.feed(&data, false),
            Step::Appended(data) => self.feed(&data, true),
            Step::Request(kind, id, payload, cut) => {
                let mut frame = BytesMut::new();
                if encode_request(kind, &id, &payload, &mut frame, u32::MAX).is_ok() {
                    let cut = usize::from(cut).min(frame.len());
                    self.feed(&frame[..cut], false);
                    self.feed(&frame[cut..], true);
                }
            }
            Step::Eof => self.conn.handle_eof(self.now),
            Step::Advance(d) => {
                self.now += Duration::from_millis(u64::from(d));
                self.handle_timeout();
            }
            Step::Timeout => self.handle_timeout(),
            Step::RespondOldest(result) => self.respond(0, result),
            Step::RespondAny(i, result) => self.respond(usize::from(i), result),
            Step::RespondBogus(handle) => {
                if !self.outstanding.contains(&handle) {
                    let r = self.conn.respond(handle, AckResult::OK, self.now);
                    assert!(r.is_err(), "answer to unknown request {handle} taken");
                }
            }
            Step::Write(n) => self.write(usize::from(n)),
            Step::PollTransmit(prefilled) => self.poll_transmit(prefilled),
            Step::Close => self.conn.close(self.now),
        }
        self.drain_events();
        self.check();
    }

    fn drain_events(&mut self) {
        while let Some(req) = self.conn.poll_event() {
            assert!(
                !self.conn.is_closed(),
                "a closed connection handed out a request"
            );
            assert!(
                self.last_handle.is_none_or(|h| req.handle > h),
                "handles out of order"
            );
            if !self.config.require_conn {
                assert_eq!(req.handle, self.last_handle.map_or(0, |h| h + 1));
            }
            self.last_handle = Some(req.handle);
            let index = usize::try_from(req.handle).expect("small handle");
            let (kind, id, payload) = self
                .requests
                .get(index)
                .unwrap_or_else(|| panic!("request {} was never sent", req.handle));
            assert_eq!((req.kind, req.id, &req.payload), (*kind, *id, payload));
            self.outstanding.push(req.handle);
            self.answers.insert(req.handle, None);
        }
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
        if self.was_closed {
            assert!(c.is_closed(), "a closed connection reopened");
        }
        if c.is_closed() {
            self.was_closed = true;
            self.outstanding.clear();
            assert!(c.close_reason().is_some());
            assert!(c.transmit_buf().is_empty());
            assert!(c.poll_timeout().is_none());
            assert!(!c.wants_input());
            assert_eq!(c.buffered_input(), 0);
        }
        self.check_acks();
    }

    /// Every ack written matches the request of the same rank.
    fn check_acks(&mut self) {
        while let Some(frame) = decode_frame(&mut self.written, u32::MAX).expect("acks frame") {
            assert_eq!(frame.wire_len(), ACK_FRAME_LEN);
            let packet = frame.decode_packet().expect("an ack decodes");
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

    /// The peer closes: answer and flush everything; the connection must end.
    fn finish(&mut self) {
        self.conn.handle_eof(self.now);
        self.drain_events();
        self.check();
        for _ in 0..100_000 {
            if self.conn.is_closed() {
                break;
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
        if matches!(reason, CloseReason::WriteStall { .. }) {
            assert!(self.dropped_output, "a write stall without output pending");
        } else if !self.dropped_output {
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
