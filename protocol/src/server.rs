//! The server side of one connection.

use core::time::Duration;
use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::buffers::{Buffers, ConnectionStats, deadline, earliest};
use crate::error::{CloseReason, RespondError};
use crate::frame::DEFAULT_MAX_FRAME_LEN;
use crate::packet::{AckResult, MessageId, Packet, RequestKind, encode_ack};

/// Limits and timeouts of a server connection. Every field has a default
/// (see [`ServerConfig::default`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Largest `total_length` accepted. Default 8 MiB ([`DEFAULT_MAX_FRAME_LEN`]).
    pub max_frame_len: u32,
    /// Unsent output above which the connection stops taking input.
    /// Default 1 MiB. Output stays below `high_water` plus one ack
    /// (14 bytes) per request the application may still be answering
    /// (`max_pending_requests`).
    pub high_water: usize,
    /// Unsent output at or below which input resumes. Default 256 KiB.
    pub low_water: usize,
    /// Requests handed to the application and not yet answered, above which
    /// the connection stops taking input. Default 1024.
    pub max_pending_requests: usize,
    /// Close when no request arrives for this long and nothing is pending.
    /// Default `None` (off, like Redis' `timeout 0`).
    pub idle_timeout: Option<Duration>,
    /// Close when a frame has started and is not complete this long after
    /// (slowloris). Default 30 s.
    pub frame_timeout: Option<Duration>,
    /// Close when output is pending and none of it is written for this long.
    /// Default 30 s.
    pub write_stall_timeout: Option<Duration>,
    /// Answer Submits with result 1 until a `Conn` was acked with result 0.
    /// Default `false` (the seed's client never sends `Conn`).
    pub require_conn: bool,
    /// How long a closed connection whose peer may still be sending keeps
    /// reading and discarding after its FIN, so that a reset does not
    /// destroy acks the peer has not read yet (see [`CloseMode`]).
    /// Default 2 s; `None` closes at once.
    pub linger: Option<Duration>,
    /// While lingering, the connection closes once the peer has sent
    /// nothing for this long. Default 250 ms.
    pub linger_quiet: Duration,
}

/// How to close the socket once [`ServerConnection::is_closed`].
///
/// A socket closed while its peer is still sending answers the peer's next
/// bytes with a reset, and the reset makes the peer's kernel drop what it
/// had not delivered yet: acks a slow reader had not taken are lost. So a
/// peer that may still be sending gets a lingering close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseMode {
    /// Shut the socket down and drop it: the peer sent FIN, takes nothing
    /// (write stall), or the connection was aborted.
    Immediate,
    /// Shut down the write side (FIN after the last ack), then read and
    /// discard until the peer closes, sends nothing for `quiet`, or `max`
    /// has passed; then drop the socket. Hold no buffer while waiting.
    Linger {
        /// The longest the whole linger may take.
        max: Duration,
        /// Close once the peer is quiet for this long.
        quiet: Duration,
    },
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            high_water: 1024 * 1024,
            low_water: 256 * 1024,
            max_pending_requests: 1024,
            idle_timeout: None,
            frame_timeout: Some(Duration::from_secs(30)),
            write_stall_timeout: Some(Duration::from_secs(30)),
            require_conn: false,
            linger: Some(Duration::from_secs(2)),
            linger_quiet: Duration::from_millis(250),
        }
    }
}

/// A request for the application. Answer it with
/// [`ServerConnection::respond`], passing `handle` back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Names this request in [`ServerConnection::respond`].
    pub handle: u64,
    /// `Conn` or `Submit`.
    pub kind: RequestKind,
    /// The id the ack will echo.
    pub id: MessageId,
    /// The request's payload: a slice of the receive buffer.
    pub payload: Bytes,
}

#[derive(Debug)]
struct Slot {
    kind: RequestKind,
    id: MessageId,
    result: Option<AckResult>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    /// Reading.
    Open,
    /// The peer sent FIN: what is buffered is still parsed.
    Eof,
    /// Local close: what is buffered is still parsed, nothing more is read.
    Closing,
    /// An error or a timeout: nothing more is parsed.
    Stopped,
}

/// Why a parse pass stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    NeedMore,
    Gated,
    Error,
}

/// The sans-IO server side of one connection.
///
/// Feed it with `handle_*`, drain it with `poll_*` until they are empty (see
/// the crate docs for the loop). Requests come out of [`poll_event`] in
/// arrival order; acks leave in the same order whatever order the
/// application answers in.
///
/// [`poll_event`]: ServerConnection::poll_event
#[derive(Debug)]
pub struct ServerConnection {
    config: ServerConfig,
    io: Buffers,
    input: Input,
    /// Requests delivered and not yet acked; `slots[0]` has handle `base`.
    slots: VecDeque<Slot>,
    base: u64,
    events: VecDeque<Request>,
    /// Output above the high-water mark: input paused until the low-water mark.
    blocked: bool,
    /// A `Conn` is waiting for the application's answer (`require_conn`):
    /// later frames wait in the buffer.
    conn_pending: bool,
    authenticated: bool,
    last_activity: Instant,
    reason: Option<CloseReason>,
    closed: bool,
    refused: u64,
}

impl ServerConnection {
    /// A new connection, accepted at `now`.
    pub fn new(config: ServerConfig, now: Instant) -> Self {
        let io = Buffers::new(config.max_frame_len);
        Self {
            config,
            io,
            input: Input::Open,
            slots: VecDeque::new(),
            base: 0,
            events: VecDeque::new(),
            blocked: false,
            conn_pending: false,
            authenticated: false,
            last_activity: now,
            reason: None,
            closed: false,
            refused: 0,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Feeds bytes read from the peer (copied into the receive buffer).
    /// Ignored once input has ended (EOF, error, close).
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        if self.input != Input::Open || data.is_empty() {
            return;
        }
        self.io.append_input(data);
        self.io.count_input(data.len());
        self.process(now);
    }

    /// The receive buffer, with room to read into: the zero-copy way in.
    /// Append to it only (e.g. `read_buf`), then call
    /// [`handle_input_appended`](Self::handle_input_appended) with the count.
    /// It grows in bounded steps and holds no memory while the connection is idle.
    pub fn input_buffer(&mut self) -> &mut BytesMut {
        self.io.input_buffer()
    }

    /// Processes `n` bytes just appended to [`input_buffer`](Self::input_buffer).
    /// `n` may be 0 (a read that found nothing): the buffer is then given
    /// back if it holds nothing, so an idle connection keeps no memory.
    pub fn handle_input_appended(&mut self, n: usize, now: Instant) {
        if self.input != Input::Open {
            // Input is over: what was appended after it is not part of the
            // conversation (what came before it is still parsed).
            let keep = self.io.recv.len().saturating_sub(n);
            self.io.recv.truncate(keep);
            return;
        }
        self.io.count_input(n);
        self.process(now);
    }

    /// The peer sent FIN: every complete request received is still answered
    /// and flushed, then the connection is done. An incomplete frame is
    /// reported as [`CloseReason::TruncatedFrame`].
    pub fn handle_eof(&mut self, now: Instant) {
        if self.input == Input::Open {
            self.input = Input::Eof;
            self.process(now);
        }
    }

    /// Closes gracefully (server shutdown): reads nothing more, answers
    /// every complete request already received, flushes, then is done.
    pub fn close(&mut self, now: Instant) {
        if self.input == Input::Open {
            self.input = Input::Closing;
            self.process(now);
        }
    }

    /// Ends the connection at once (e.g. the socket failed): nothing more
    /// is read, answered or written.
    pub fn abort(&mut self, reason: CloseReason) {
        self.set_reason(reason);
        self.input = Input::Stopped;
        self.io.discard_input();
        self.io.discard_output();
        self.slots.clear();
        self.events.clear();
        self.closed = true;
    }

    /// Fires every timer that expired at `now`. A no-op when none did.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if let Some(at) = self.io.write_deadline(self.config.write_stall_timeout)
            && now >= at
        {
            let pending = self.io.send.len();
            if let Some(after) = self.config.write_stall_timeout {
                self.abort(CloseReason::WriteStall { after, pending });
            }
            return;
        }
        if let Some(at) = self.io.frame_deadline(self.config.frame_timeout)
            && now >= at
            && let Some(after) = self.config.frame_timeout
        {
            self.stop(CloseReason::FrameTimeout { after });
        }
        if let Some(at) = self.idle_deadline()
            && now >= at
            && let Some(after) = self.config.idle_timeout
        {
            self.stop(CloseReason::IdleTimeout { after });
        }
        self.process(now);
    }

    /// The next request for the application, in arrival order.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Request> {
        self.events.pop_front()
    }

    /// Answers the request `handle` with `result` (0 ok, 1 error). Acks are
    /// queued strictly in request order: an answer given early waits for
    /// the ones before it.
    pub fn respond(
        &mut self,
        handle: u64,
        result: AckResult,
        now: Instant,
    ) -> Result<(), RespondError> {
        let slot = handle
            .checked_sub(self.base)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.slots.get_mut(i))
            .filter(|s| s.result.is_none())
            .ok_or(RespondError::UnknownRequest(handle))?;
        slot.result = Some(result);
        if slot.kind == RequestKind::Conn {
            self.conn_pending = false;
            if result.is_ok() {
                self.authenticated = true;
            }
        }
        self.last_activity = now;
        self.process(now);
        Ok(())
    }

    /// The bytes waiting to be written, oldest first (empty when none).
    /// Write some, then report how many with [`handle_written`](Self::handle_written).
    pub fn transmit_buf(&self) -> &[u8] {
        &self.io.send
    }

    /// `n` bytes of [`transmit_buf`](Self::transmit_buf) reached the socket.
    pub fn handle_written(&mut self, n: usize, now: Instant) {
        self.io.written(n, now);
        self.process(now);
    }

    /// Moves every pending byte into `out` and counts it as written (for
    /// callers that then write all of `out`, e.g. with `write_all`).
    /// Returns how many bytes were moved.
    pub fn poll_transmit(&mut self, out: &mut BytesMut, now: Instant) -> usize {
        let n = self.io.take_output(out);
        if n > 0 {
            self.process(now);
        }
        n
    }

    /// The next instant [`handle_timeout`](Self::handle_timeout) must be
    /// called at, if any timer is armed. It moves forward once handled.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let t = earliest(
            self.io.write_deadline(self.config.write_stall_timeout),
            self.io.frame_deadline(self.config.frame_timeout),
        );
        earliest(t, self.idle_deadline())
    }

    /// False while the connection does not want bytes from the peer: output
    /// above the high-water mark, too many requests unanswered, a `Conn`
    /// awaiting its answer, or input over. Stop reading until it is true.
    pub fn wants_input(&self) -> bool {
        self.input == Input::Open && !self.gated()
    }

    /// True once the connection is done: close the socket.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// True once no more input will be read (EOF, close, error or timeout);
    /// the connection may still have acks to write.
    pub fn is_input_done(&self) -> bool {
        self.input != Input::Open
    }

    /// How to close the socket now that the connection is done (the
    /// answer is only meaningful once [`is_closed`](Self::is_closed)).
    pub fn close_mode(&self) -> CloseMode {
        let peer_done = matches!(
            self.reason,
            None | Some(
                CloseReason::PeerClosed
                    | CloseReason::TruncatedFrame { .. }
                    | CloseReason::WriteStall { .. }
                    | CloseReason::Aborted { .. }
            )
        ) || self.input == Input::Eof;
        match self.config.linger {
            Some(max) if !peer_done && !max.is_zero() => CloseMode::Linger {
                max,
                quiet: self.config.linger_quiet,
            },
            _ => CloseMode::Immediate,
        }
    }

    /// Why the connection ended (or is ending), once known.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        self.reason.as_ref()
    }

    /// Requests handed out and not yet answered.
    pub fn pending_requests(&self) -> usize {
        self.slots.iter().filter(|s| s.result.is_none()).count()
    }

    /// Bytes queued and not yet written.
    pub fn pending_output(&self) -> usize {
        self.io.send.len()
    }

    /// Bytes held in the receive buffer, parsed or not yet.
    pub fn buffered_input(&self) -> usize {
        self.io.recv.len()
    }

    /// Counters: frames and bytes in and out.
    pub fn stats(&self) -> ConnectionStats {
        self.io.stats
    }

    /// Requests answered with a result other than 0 (refused by the
    /// application, or Submits refused for want of a `Conn`).
    pub fn refused(&self) -> u64 {
        self.refused
    }

    fn idle_deadline(&self) -> Option<Instant> {
        let idle = self.input == Input::Open
            && self.slots.is_empty()
            && self.io.send.is_empty()
            && self.io.recv.is_empty();
        if idle {
            deadline(Some(self.last_activity), self.config.idle_timeout)
        } else {
            None
        }
    }

    fn gated(&self) -> bool {
        self.blocked || self.conn_pending || self.slots.len() >= self.config.max_pending_requests
    }

    fn set_reason(&mut self, reason: CloseReason) {
        if self.reason.is_none() {
            self.reason = Some(reason);
        }
    }

    /// Stops input for good: nothing more is parsed; what was delivered is
    /// still answered and flushed.
    fn stop(&mut self, reason: CloseReason) {
        self.set_reason(reason);
        self.input = Input::Stopped;
        self.io.discard_input();
    }

    /// Parses what can be parsed, queues the acks that can be queued,
    /// updates the flow-control state, and notices the end.
    fn process(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        loop {
            self.flush_acks(now);
            self.update_blocked();
            let stop = self.parse(now);
            if stop == Stop::Gated {
                // Answers given while parsing (refused Submits) may free the gate.
                self.flush_acks(now);
                self.update_blocked();
                if !self.gated() {
                    continue;
                }
            }
            self.finish_parse(stop, now);
            break;
        }
        // Acks the parse pass answered itself (refused Submits).
        self.flush_acks(now);
        self.update_blocked();
        if self.input != Input::Open
            && self.slots.is_empty()
            && self.io.send.is_empty()
            && (self.input == Input::Stopped || self.io.recv.is_empty())
        {
            self.set_reason(match self.input {
                Input::Closing => CloseReason::LocalClose,
                _ => CloseReason::PeerClosed,
            });
            self.closed = true;
            self.io.discard_input();
            self.io.discard_output();
        }
    }

    fn parse(&mut self, now: Instant) -> Stop {
        if self.input == Input::Stopped {
            return Stop::Error;
        }
        loop {
            if self.gated() {
                return Stop::Gated;
            }
            let frame = match self.io.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return Stop::NeedMore,
                Err(e) => {
                    self.stop(e.into());
                    return Stop::Error;
                }
            };
            self.last_activity = now;
            let (kind, id, payload) = match frame.decode_packet() {
                Ok(Packet::Submit { id, payload }) => (RequestKind::Submit, id, payload),
                Ok(Packet::Conn { id, payload }) => (RequestKind::Conn, id, payload),
                Ok(ack) => {
                    self.stop(CloseReason::UnexpectedPacket {
                        command: ack.command(),
                        to: "server",
                    });
                    return Stop::Error;
                }
                Err(e) => {
                    self.stop(e.into());
                    return Stop::Error;
                }
            };
            let handle = self.base + self.slots.len() as u64;
            if kind == RequestKind::Submit && self.config.require_conn && !self.authenticated {
                self.slots.push_back(Slot {
                    kind,
                    id,
                    result: Some(AckResult::ERROR),
                });
                continue;
            }
            if kind == RequestKind::Conn {
                self.conn_pending = self.config.require_conn;
            }
            self.slots.push_back(Slot {
                kind,
                id,
                result: None,
            });
            self.events.push_back(Request {
                handle,
                kind,
                id,
                payload,
            });
        }
    }

    fn finish_parse(&mut self, stop: Stop, now: Instant) {
        match stop {
            Stop::NeedMore if self.input == Input::Eof && !self.io.recv.is_empty() => {
                let buffered = self.io.recv.len();
                self.stop(CloseReason::TruncatedFrame { buffered });
            }
            Stop::NeedMore if self.input == Input::Closing => self.io.discard_input(),
            _ => {}
        }
        self.io
            .after_parse(stop == Stop::NeedMore && self.input == Input::Open, now);
    }

    fn flush_acks(&mut self, now: Instant) {
        let mut frames = 0;
        while let Some(Slot {
            kind,
            id,
            result: Some(result),
        }) = self.slots.front()
        {
            encode_ack(*kind, id, *result, &mut self.io.send);
            if !result.is_ok() {
                self.refused += 1;
            }
            self.slots.pop_front();
            self.base += 1;
            frames += 1;
        }
        if frames > 0 {
            self.io.queued_output(frames, now);
        }
    }

    fn update_blocked(&mut self) {
        let pending = self.io.send.len();
        if self.blocked {
            if pending <= self.config.low_water {
                self.blocked = false;
            }
        } else if pending > self.config.high_water {
            self.blocked = true;
        }
    }
}
