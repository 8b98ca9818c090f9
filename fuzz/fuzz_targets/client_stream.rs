//! A `ClientConnection` driven by an arbitrary script: requests with
//! arbitrary payloads, server bytes (raw, or the right or a wrong ack),
//! EOF, time passing, partial writes, close, socket errors.
//!
//! A model of the client runs alongside. Asserts: no panic; ids are the
//! seed's counter (8 decimal digits from `first_id`, wrapping); `in_flight`
//! never exceeds `max_in_flight` and refusals say why; what is written is
//! exactly the requests submitted, in order; acks come out in submission
//! order with the submitted ids, the results sent and the right rtt, and a
//! stray ack, a request or bad bytes from the server end the connection with
//! the right reason; the events are acks, then exactly one `Closed` with
//! the connection's reason, nothing after it; `poll_timeout` lies in the
//! future once `handle_timeout(now)` ran; a closed connection stays closed
//! and holds nothing; and a closing client whose requests are all acked and
//! written closes.

#![no_main]

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use protocol::{
    ACK_FRAME_LEN, AckResult, ClientConfig, ClientConnection, ClientEvent, CloseReason,
    EncodeError, IdGenerator, MIN_FRAME_LEN, MessageId, Packet, REQUEST_OVERHEAD, RequestKind,
    Side, SubmitError, decode, encode_ack,
};

const MAX_CHUNK: usize = 64 * 1024;

const IO_ERRORS: [ErrorKind; 5] = [
    ErrorKind::ConnectionReset,
    ErrorKind::BrokenPipe,
    ErrorKind::ConnectionAborted,
    ErrorKind::TimedOut,
    ErrorKind::Other,
];

fn ack_frame(kind: RequestKind, id: &MessageId, result: AckResult) -> BytesMut {
    let mut out = BytesMut::new();
    encode_ack(kind, id, result, &mut out);
    out
}

#[derive(Debug, Arbitrary)]
struct Config {
    /// `max_frame_len` is this, at least 5.
    max_frame_len: u16,
    /// `max_in_flight` is this modulo 16, plus 1.
    max_in_flight: u8,
    response_ms: Option<u16>,
    stall_ms: Option<u16>,
    first_id: u32,
}

#[derive(Debug, Arbitrary)]
enum Step {
    Submit(Vec<u8>),
    Conn(Vec<u8>),
    /// Raw server bytes, copied in with `handle_input`.
    Input(Vec<u8>),
    /// Raw server bytes appended to `input_buffer()`.
    Appended(Vec<u8>),
    /// The right ack for the oldest request in flight, cut in two at `cut`.
    AckOldest(AckResult, u8),
    /// An ack of our choosing (most likely the wrong one).
    Ack(RequestKind, MessageId, AckResult),
    Eof,
    /// Time passes by this many milliseconds, then `handle_timeout`.
    Advance(u16),
    /// Write up to this many bytes of `transmit_buf`.
    Write(u16),
    /// Write all of `transmit_buf` (or half of it) in one `handle_written`.
    Flush(bool),
    Close,
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

struct Sent {
    kind: RequestKind,
    id: MessageId,
    at: Instant,
}

/// What the model expects the client to do with an input.
#[derive(Debug)]
enum Expect {
    Ack(RequestKind, MessageId, AckResult, Duration),
    Closed(CloseReason),
}

struct Harness {
    conn: ClientConnection,
    config: ClientConfig,
    now: Instant,
    ids: IdGenerator,
    in_flight: VecDeque<Sent>,
    /// Requests submitted and not yet seen in the written bytes.
    unwritten: VecDeque<(RequestKind, MessageId, Bytes)>,
    written: BytesMut,
    /// Server bytes the client took, decoded by the model.
    mirror: BytesMut,
    expected: VecDeque<Expect>,
    closing: bool,
    /// The reason of the `Closed` event, once it came out.
    closed: Option<CloseReason>,
}

impl Harness {
    fn new(c: &Config) -> Self {
        let config = ClientConfig {
            max_frame_len: u32::from(c.max_frame_len).max(MIN_FRAME_LEN),
            max_in_flight: usize::from(c.max_in_flight % 16) + 1,
            response_timeout: ms(c.response_ms),
            write_stall_timeout: ms(c.stall_ms),
            first_id: c.first_id,
        };
        let now = base();
        Self {
            conn: ClientConnection::new(config.clone()),
            ids: IdGenerator::starting_at(config.first_id),
            config,
            now,
            in_flight: VecDeque::new(),
            unwritten: VecDeque::new(),
            written: BytesMut::new(),
            mirror: BytesMut::new(),
            expected: VecDeque::new(),
            closing: false,
            closed: None,
        }
    }

    fn request(&mut self, kind: RequestKind, payload: &[u8]) {
        let before = self.conn.pending_output();
        let r = self.conn.request(kind, payload, self.now);
        if self.conn.is_closed() {
            assert!(matches!(r, Err(SubmitError::Closed(_))), "{r:?}");
            return;
        }
        if self.closing {
            assert_eq!(r, Err(SubmitError::Closing));
            return;
        }
        if self.in_flight.len() >= self.config.max_in_flight {
            let limit = self.config.max_in_flight;
            assert_eq!(r, Err(SubmitError::TooManyInFlight { limit }));
            return;
        }
        let limit = self.config.max_frame_len;
        if payload.len() + REQUEST_OVERHEAD > limit as usize {
            let len = payload.len() + REQUEST_OVERHEAD;
            let e = EncodeError::FrameTooLong { len, max: limit };
            assert_eq!(r, Err(SubmitError::Encode(e)));
            assert_eq!(
                self.conn.pending_output(),
                before,
                "a refused request was queued"
            );
            return;
        }
        let id = self.ids.next_id();
        assert_eq!(r, Ok(id), "ids must follow the seed's counter");
        assert_eq!(
            self.conn.pending_output(),
            before + payload.len() + REQUEST_OVERHEAD
        );
        let payload = Bytes::copy_from_slice(payload);
        self.unwritten.push_back((kind, id, payload));
        self.in_flight.push_back(Sent {
            kind,
            id,
            at: self.now,
        });
    }

    fn feed(&mut self, data: &[u8], appended: bool) {
        let data = &data[..data.len().min(MAX_CHUNK)];
        if data.is_empty() {
            return;
        }
        if !self.conn.is_closed() {
            self.mirror.extend_from_slice(data);
            self.run_mirror();
        }
        if appended {
            self.conn.input_buffer().extend_from_slice(data);
            self.conn.handle_input_appended(data.len(), self.now);
        } else {
            self.conn.handle_input(data, self.now);
        }
    }

    /// Decodes what the client was given the way the client must.
    fn run_mirror(&mut self) {
        if matches!(self.expected.back(), Some(Expect::Closed(_))) {
            return;
        }
        loop {
            // The client accepts 14-byte acks whatever its own frame limit.
            let limit = self.config.max_frame_len.max(ACK_FRAME_LEN as u32);
            let (kind, id, result) = match decode(&mut self.mirror, limit) {
                Ok(Some(Packet::ConnAck { id, result })) => (RequestKind::Conn, id, result),
                Ok(Some(Packet::SubmitAck { id, result })) => (RequestKind::Submit, id, result),
                Ok(Some(p)) => {
                    let command = p.command();
                    let reason = CloseReason::UnexpectedPacket {
                        command,
                        to: Side::Client,
                    };
                    return self.expected.push_back(Expect::Closed(reason));
                }
                Ok(None) => return,
                Err(e) => return self.expected.push_back(Expect::Closed(e.into())),
            };
            let reason = match self.in_flight.front() {
                None => CloseReason::UnsolicitedAck { id, kind },
                Some(s) if (s.kind, s.id) != (kind, id) => CloseReason::AckMismatch {
                    expected: s.id,
                    expected_kind: s.kind,
                    got: id,
                    got_kind: kind,
                },
                Some(s) => {
                    let rtt = self.now - s.at;
                    self.expected.push_back(Expect::Ack(kind, id, result, rtt));
                    self.in_flight.pop_front();
                    continue;
                }
            };
            return self.expected.push_back(Expect::Closed(reason));
        }
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
        let was_closed = self.conn.is_closed();
        let due = self.conn.poll_timeout();
        self.conn.handle_timeout(now);
        if let Some(next) = self.conn.poll_timeout() {
            assert!(
                next > now,
                "poll_timeout is not after the handled now: busy loop"
            );
        }
        if due.is_none_or(|t| t > now) {
            // Nothing was due: a no-op.
            assert_eq!(self.conn.is_closed(), was_closed);
            assert_eq!(self.conn.poll_timeout(), due);
        }
        if was_closed || !self.conn.is_closed() {
            return;
        }
        // It just timed out: the model must agree that something was due.
        match self.conn.close_reason() {
            Some(CloseReason::ResponseTimeout { id, after }) => {
                let oldest = self.in_flight.front().expect("a request was in flight");
                assert_eq!(*id, oldest.id);
                assert_eq!(Some(*after), self.config.response_timeout);
                assert!(oldest.at + *after <= now, "response timeout fired early");
            }
            Some(CloseReason::WriteStall { after, pending }) => {
                assert_eq!(Some(*after), self.config.write_stall_timeout);
                assert!(*pending > 0);
            }
            other => panic!("handle_timeout closed with {other:?}"),
        }
    }

    fn step(&mut self, step: Step) {
        match step {
            Step::Submit(payload) => self.request(RequestKind::Submit, &payload),
            Step::Conn(payload) => self.request(RequestKind::Conn, &payload),
            Step::Input(data) => self.feed(&data, false),
            Step::Appended(data) => self.feed(&data, true),
            Step::AckOldest(result, cut) => {
                if let Some(s) = self.in_flight.front() {
                    let frame = ack_frame(s.kind, &s.id, result);
                    let cut = usize::from(cut).min(frame.len());
                    self.feed(&frame[..cut], false);
                    self.feed(&frame[cut..], true);
                }
            }
            Step::Ack(kind, id, result) => self.feed(&ack_frame(kind, &id, result), false),
            Step::Eof => {
                let was_closed = self.conn.is_closed();
                self.conn.handle_eof(self.now);
                assert!(self.conn.is_closed(), "EOF left the client open");
                if !was_closed && self.expected.is_empty() {
                    let reason = if !self.mirror.is_empty() {
                        CloseReason::TruncatedFrame {
                            buffered: self.mirror.len(),
                        }
                    } else if !self.in_flight.is_empty() {
                        CloseReason::PeerClosedInFlight {
                            in_flight: self.in_flight.len(),
                        }
                    } else {
                        CloseReason::PeerClosed
                    };
                    assert_eq!(self.conn.close_reason(), Some(&reason));
                }
            }
            Step::Advance(d) => {
                self.now += Duration::from_millis(u64::from(d));
                self.handle_timeout();
            }
            Step::Write(n) => self.write(usize::from(n)),
            Step::Flush(all) => {
                let n = self.conn.transmit_buf().len();
                self.write(if all { n } else { n / 2 });
            }
            Step::Close => {
                self.conn.close(self.now);
                self.closing = true;
                if !self.conn.is_closed() {
                    assert!(
                        !self.in_flight.is_empty() || !self.conn.transmit_buf().is_empty(),
                        "a closing client with nothing left did not close"
                    );
                } else if self.closed.is_none() && self.expected.is_empty() {
                    assert_eq!(self.conn.close_reason(), Some(&CloseReason::LocalClose));
                }
            }
            Step::IoError(k) => {
                let kind = IO_ERRORS[usize::from(k) % IO_ERRORS.len()];
                let was_closed = self.conn.is_closed();
                self.conn.handle_io_error(kind);
                assert!(self.conn.is_closed());
                if !was_closed {
                    assert_eq!(self.conn.close_reason(), Some(&CloseReason::Io { kind }));
                }
            }
        }
        self.drain_events();
        self.check();
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.conn.poll_event() {
            if let Some(reason) = &self.closed {
                panic!("{event:?} after Closed({reason:?})");
            }
            match event {
                ClientEvent::Ack(ack) => match self.expected.pop_front() {
                    Some(Expect::Ack(kind, id, result, rtt)) => {
                        assert_eq!(
                            (ack.kind, ack.id, ack.result, ack.rtt),
                            (kind, id, result, rtt)
                        );
                    }
                    other => panic!("unexpected ack {ack:?}, the model expected {other:?}"),
                },
                ClientEvent::Closed(reason) => {
                    assert!(self.conn.is_closed(), "Closed but not is_closed");
                    assert_eq!(self.conn.close_reason(), Some(&reason));
                    match self.expected.pop_front() {
                        Some(Expect::Closed(want)) => {
                            assert_eq!(reason, want, "closed for another reason")
                        }
                        Some(Expect::Ack(..)) => {
                            panic!("Closed({reason:?}) before the acks {:?}", self.expected)
                        }
                        // Not a protocol error: EOF, a timer, a close, a socket
                        // error, each checked where it happened.
                        None => {}
                    }
                    self.closed = Some(reason);
                }
            }
        }
        if let Some(e) = self.expected.front() {
            panic!("the client swallowed {e:?} (all expected: {:?})", self.expected);
        }
        if self.closed.is_some() {
            // Whatever the model still expected, nothing more comes out.
            self.expected.clear();
        }
    }

    fn check(&mut self) {
        let c = &self.conn;
        assert!(c.in_flight() <= self.config.max_in_flight);
        assert_eq!(
            c.is_closed(),
            self.closed.is_some(),
            "is_closed and the Closed event disagree"
        );
        if let Some(reason) = &self.closed {
            assert_eq!(c.close_reason(), Some(reason), "the reason changed");
            assert!(c.transmit_buf().is_empty());
            assert!(c.poll_timeout().is_none());
            assert_eq!(c.pending_output(), 0);
            self.unwritten.clear();
            self.written.clear();
            return;
        }
        assert_eq!(c.in_flight(), self.in_flight.len());
        assert!(c.in_flight_ids().eq(self.in_flight.iter().map(|s| s.id)));
        // What was written is exactly the requests submitted, in order.
        while let Some(packet) = decode(&mut self.written, u32::MAX).expect("requests decode") {
            let (kind, id, payload) = self.unwritten.pop_front().expect("a request was written");
            assert_eq!(packet, Packet::request(kind, id, payload));
        }
    }

    /// Close, ack everything, write everything: the connection must end cleanly.
    fn finish(&mut self) {
        if self.conn.is_closed() {
            return;
        }
        // Bytes already buffered (part of a frame) make the acks below
        // unreadable: the end is then a protocol error, not a clean close.
        let clean = self.mirror.is_empty();
        self.conn.close(self.now);
        self.closing = true;
        self.drain_events();
        self.check();
        while !self.conn.is_closed() {
            assert!(
                !self.in_flight.is_empty() || !self.conn.transmit_buf().is_empty(),
                "stuck open: {:?}",
                self.conn
            );
            self.write(usize::MAX);
            if let Some(s) = self.in_flight.front() {
                let frame = ack_frame(s.kind, &s.id, AckResult::OK);
                self.feed(&frame, false);
            }
            self.drain_events();
            self.check();
        }
        if clean {
            assert_eq!(self.conn.close_reason(), Some(&CloseReason::LocalClose));
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
