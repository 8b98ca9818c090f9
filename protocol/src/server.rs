//! The server side of one connection.

use core::net::SocketAddr;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::buffers::{Buffers, ConnectionStats, deadline, earliest};
use crate::codec::{Packet, encode_ack};
use crate::config::ServerConfig;
use crate::error::{CloseReason, RespondError};
use crate::proxy::{ProxyHeader, decode_proxy_header};
use crate::wire::{AckResult, MessageId, RequestHandle, RequestKind, Side};

/// What a [`ServerConnection`] has for its driver, from
/// [`ServerConnection::poll_event`]: in this order over a connection's
/// life, at most one `Proxied` (with `proxy_protocol`), requests, then at
/// most one `ShutdownWrite`, then one `Closed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// The connection's PROXY protocol header
    /// ([`ServerConfig::proxy_protocol`]): who the client behind the proxy
    /// is. Log and count the connection under `source` from now on.
    Proxied(ProxyHeader),
    /// A request for the application: answer it with
    /// [`ServerConnection::respond`], now or later.
    Request(Request),
    /// Every ack is written and the peer may still be sending: shut the
    /// socket's write side down now (FIN after the last ack) and go on
    /// reading while [`ServerConnection::wants_input`]; the connection
    /// discards what comes and closes once the peer closes, is quiet for
    /// `linger_quiet`, or `linger` (or the shutdown deadline) passes. This
    /// is the lingering close: a socket closed while its peer is still
    /// sending answers with a reset, and the reset destroys acks the peer
    /// has not read yet.
    ShutdownWrite,
    /// The connection is over, for this reason: close the socket (nothing
    /// of the conversation is left to write). No event follows.
    Closed(CloseReason),
}

/// A request for the application. Answer it with
/// [`ServerConnection::respond`], passing `handle` back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Names this request in [`ServerConnection::respond`].
    pub handle: RequestHandle,
    /// `Conn` or `Submit`.
    pub kind: RequestKind,
    /// The id the ack will echo.
    pub id: MessageId,
    /// The request's payload: a slice of the receive buffer.
    pub payload: Bytes,
    /// Who the peer proved to be in the connection's handshake (the subject
    /// of a verified TLS client certificate), if it did: see
    /// [`ServerConnection::handshake_done`]. `None` on a plain connection.
    pub identity: Option<PeerIdentity>,
    /// The client's address from the connection's PROXY protocol header
    /// ([`ServerConfig::proxy_protocol`]), when it carried one: the real
    /// client behind the load balancer. `None` without the header (the
    /// socket's peer is then the client, and the driver knows it). Shared
    /// by every request of the connection (an `Arc`: the request stays
    /// small, and it is moved through the event queue on the hot path).
    pub source: Option<Arc<SocketAddr>>,
}

/// A peer's proven identity, as the handshake layer names it (for a TLS
/// client certificate: its first DNS name, else its subject). Cheap to
/// clone: every request of the connection shares it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerIdentity(std::sync::Arc<str>);

impl PeerIdentity {
    /// An identity named `name`.
    pub fn new(name: &str) -> Self {
        Self(name.into())
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
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

/// Where the connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Requests and acks flow.
    Conversing,
    /// The conversation is over, FIN sent: reading and discarding until
    /// the peer closes, `quiet_at` (pushed back by every read) or `until`.
    Lingering { until: Instant, quiet_at: Instant },
    /// Done: `Closed` was queued.
    Closed,
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
/// application answers in; the end comes out of it too
/// ([`ServerEvent::Closed`]), with its reason.
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
    events: VecDeque<ServerEvent>,
    /// Output above the high-water mark: input paused until the low-water mark.
    blocked: bool,
    /// A `Conn` is waiting for the application's answer (`require_conn`):
    /// later frames wait in the buffer.
    conn_pending: bool,
    authenticated: bool,
    last_activity: Instant,
    reason: Option<CloseReason>,
    phase: Phase,
    /// A graceful close must be over by then (server shutdown).
    deadline: Option<Instant>,
    /// The peer sent FIN (kept apart from `input`, which an error found in
    /// what was buffered before the FIN overwrites): no lingering then.
    peer_eof: bool,
    /// A handshake is under way and must end by then (`expect_handshake`).
    handshake_until: Option<Instant>,
    identity: Option<PeerIdentity>,
    /// A PROXY header must come first (`proxy_protocol`) and has not yet.
    awaiting_proxy: bool,
    /// A handshake layer runs over this connection (`expect_handshake`):
    /// the PROXY header's end does not end the handshake's timer.
    layered: bool,
    source: Option<Arc<SocketAddr>>,
}

impl ServerConnection {
    /// A new connection, accepted at `now`.
    pub fn new(config: ServerConfig, now: Instant) -> Self {
        let io = Buffers::new(config.max_frame_len);
        let awaiting_proxy = config.proxy_protocol;
        let handshake_until = if awaiting_proxy {
            deadline(Some(now), config.handshake_timeout)
        } else {
            None
        };
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
            phase: Phase::Conversing,
            deadline: None,
            peer_eof: false,
            handshake_until,
            identity: None,
            awaiting_proxy,
            layered: false,
            source: None,
        }
    }

    /// The connection starts with a handshake under the protocol (TLS):
    /// no request comes until [`handshake_done`](Self::handshake_done), and
    /// one that has not finished `handshake_timeout` after `now` is closed
    /// with [`CloseReason::HandshakeTimeout`]. The layer that runs the
    /// handshake calls this once, before any input.
    pub fn expect_handshake(&mut self, now: Instant) {
        if self.phase == Phase::Conversing {
            self.layered = true;
            if self.handshake_until.is_none() {
                self.handshake_until = deadline(Some(now), self.config.handshake_timeout);
            }
        }
    }

    /// With [`ServerConfig::proxy_protocol`], takes the PROXY header off
    /// the front of `buf`, the bytes from the socket (a layer under the
    /// conversation, such as TLS, calls this with its own input before it
    /// reads any; the plain connection does it itself). True once the
    /// header is done (or none is expected) and the rest of `buf` may
    /// flow; false while more bytes are needed, or once the connection
    /// failed on a missing or malformed header (then closed with
    /// [`CloseReason::Proxy`]). `peer_closed`: no more bytes will come.
    pub fn take_proxy_header(
        &mut self,
        buf: &mut BytesMut,
        peer_closed: bool,
        now: Instant,
    ) -> bool {
        if !self.awaiting_proxy {
            return true;
        }
        if self.phase != Phase::Conversing {
            return false;
        }
        match decode_proxy_header(buf) {
            Ok(Some((header, n))) => {
                let _ = buf.split_to(n);
                self.awaiting_proxy = false;
                if let ProxyHeader::Proxied { source, .. } = header {
                    self.source = Some(Arc::new(source));
                }
                self.events.push_back(ServerEvent::Proxied(header));
                if !self.layered {
                    self.handshake_until = None;
                }
                self.last_activity = now;
                true
            }
            Ok(None) if peer_closed => {
                let error = crate::proxy::ProxyError::Truncated { len: buf.len() };
                self.abort(CloseReason::Proxy { error });
                false
            }
            Ok(None) => false,
            Err(error) => {
                self.abort(CloseReason::Proxy { error });
                false
            }
        }
    }

    /// The client's address from the PROXY header, once it came.
    pub fn source(&self) -> Option<SocketAddr> {
        self.source.as_deref().copied()
    }

    /// The handshake finished at `now`; `identity` is who the peer proved
    /// to be (it comes with each [`Request`]). The idle timer starts now.
    pub fn handshake_done(&mut self, identity: Option<PeerIdentity>, now: Instant) {
        self.handshake_until = None;
        self.identity = identity;
        self.last_activity = now;
    }

    /// True between [`expect_handshake`](Self::expect_handshake) and
    /// [`handshake_done`](Self::handshake_done).
    pub fn is_handshaking(&self) -> bool {
        self.handshake_until.is_some()
    }

    /// The configuration in force.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Feeds bytes read from the peer: appends exactly them to the receive
    /// buffer (no read-sized reservation: a small read costs a small copy)
    /// and calls [`handle_input_appended`](Self::handle_input_appended).
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        self.io.recv.extend_from_slice(data);
        self.handle_input_appended(data.len(), now);
    }

    /// The receive buffer, with room to read into: the zero-copy way in.
    /// Append to it only (e.g. `read_buf`), then call
    /// [`handle_input_appended`](Self::handle_input_appended) with the count.
    /// It grows in bounded steps and holds no memory while the connection is idle.
    pub fn input_buffer(&mut self) -> &mut BytesMut {
        self.io.input_buffer()
    }

    /// How many bytes the next read should ask for: 8 KiB, or up to 64 KiB
    /// while a large frame's body is still to come ([`input_buffer`](Self::input_buffer)
    /// reserves that much room).
    pub fn read_size(&self) -> usize {
        self.io.read_size()
    }

    /// Processes `n` bytes just appended to [`input_buffer`](Self::input_buffer).
    /// `n` may be 0 (a read that found nothing): the buffer is then given
    /// back if it holds nothing, so an idle connection keeps no memory.
    pub fn handle_input_appended(&mut self, n: usize, now: Instant) {
        if let Phase::Lingering { quiet_at, .. } = &mut self.phase {
            self.io.count_input(n);
            self.io.discard_input();
            if n > 0 {
                *quiet_at = now + self.config.linger_quiet;
            }
            return;
        }
        if self.input != Input::Open || self.phase == Phase::Closed {
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
        if matches!(self.phase, Phase::Lingering { .. }) {
            self.end();
            return;
        }
        if self.input == Input::Open {
            self.input = Input::Eof;
            self.peer_eof = true;
            self.process(now);
        }
    }

    /// Closes gracefully: reads nothing more, answers every complete
    /// request already received, flushes, then ends. With a `deadline`
    /// (server shutdown), a connection still busy then is cut
    /// ([`CloseReason::ShutdownDeadline`]) and a lingering one closed.
    pub fn close(&mut self, now: Instant, deadline: Option<Instant>) {
        if let Some(at) = deadline {
            self.deadline = Some(self.deadline.map_or(at, |d| d.min(at)));
            if let Phase::Lingering { until, .. } = &mut self.phase {
                *until = (*until).min(at);
            }
        }
        if self.input == Input::Open {
            self.input = Input::Closing;
        }
        self.process(now);
    }

    /// Ends the connection at once: nothing more is read, answered or
    /// written; [`ServerEvent::Closed`] with `reason` comes next.
    pub fn abort(&mut self, reason: CloseReason) {
        if self.phase == Phase::Closed {
            return;
        }
        if self.phase == Phase::Conversing {
            self.set_reason(reason);
        }
        self.input = Input::Stopped;
        self.slots.clear();
        self.events
            .retain(|e| !matches!(e, ServerEvent::Request(_)));
        self.end();
    }

    /// The socket failed: the connection ends at once (a socket error
    /// after the conversation ended, while lingering, keeps its reason).
    pub fn handle_io_error(&mut self, kind: std::io::ErrorKind) {
        self.abort(CloseReason::Io { kind });
    }

    /// Fires every timer that expired at `now`. A no-op when none did.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.phase {
            Phase::Closed => return,
            Phase::Lingering { until, quiet_at } => {
                if now >= until || now >= quiet_at {
                    self.end();
                }
                return;
            }
            Phase::Conversing => {}
        }
        if self.deadline.is_some_and(|at| now >= at) {
            let unanswered = self.pending_requests();
            let unsent = self.io.send.len();
            self.abort(CloseReason::ShutdownDeadline { unanswered, unsent });
            return;
        }
        if self.handshake_until.is_some_and(|at| now >= at)
            && let Some(after) = self.config.handshake_timeout
        {
            self.abort(CloseReason::HandshakeTimeout { after });
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

    /// The next event: a request for the application (in arrival order),
    /// the lingering close's FIN, or the end.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// Answers the request `handle` with `result` (0 ok, 1 error). Acks are
    /// queued strictly in request order: an answer given early waits for
    /// the ones before it.
    pub fn respond(
        &mut self,
        handle: RequestHandle,
        result: AckResult,
        now: Instant,
    ) -> Result<(), RespondError> {
        let slot = handle
            .0
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

    /// The next instant [`handle_timeout`](Self::handle_timeout) must be
    /// called at, if any timer is armed. It moves forward once handled.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Closed => None,
            Phase::Lingering { until, quiet_at } => Some(until.min(quiet_at)),
            Phase::Conversing => {
                let t = earliest(
                    self.io.write_deadline(self.config.write_stall_timeout),
                    self.io.frame_deadline(self.config.frame_timeout),
                );
                let t = earliest(t, self.handshake_until);
                earliest(earliest(t, self.idle_deadline()), self.deadline)
            }
        }
    }

    /// False while the connection does not want bytes from the peer:
    /// output above the high-water mark, too many requests unanswered, a
    /// `Conn` awaiting its answer, or input over. Stop reading until it is
    /// true. (While lingering it is true: what comes is discarded.)
    pub fn wants_input(&self) -> bool {
        match self.phase {
            Phase::Conversing => self.input == Input::Open && !self.gated(),
            Phase::Lingering { .. } => true,
            Phase::Closed => false,
        }
    }

    /// True once the connection is done ([`ServerEvent::Closed`] was queued).
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
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
        self.io.stats.refused_out
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

    /// The conversation is over: linger if the peer may still be sending,
    /// else close.
    fn finish(&mut self, now: Instant) {
        self.io.discard_input();
        self.io.discard_output();
        let peer_done = self.peer_eof
            || matches!(
                self.reason,
                Some(CloseReason::PeerClosed | CloseReason::TruncatedFrame { .. })
            );
        match self.config.linger {
            Some(max) if !peer_done && !max.is_zero() => {
                let until = now + max;
                let until = self.deadline.map_or(until, |d| d.min(until));
                let quiet_at = now + self.config.linger_quiet;
                self.phase = Phase::Lingering { until, quiet_at };
                self.events.push_back(ServerEvent::ShutdownWrite);
            }
            _ => self.end(),
        }
    }

    /// Done: queue the end.
    fn end(&mut self) {
        self.io.discard_input();
        self.io.discard_output();
        self.phase = Phase::Closed;
        let reason = self.reason.clone().unwrap_or(CloseReason::Aborted);
        self.events.push_back(ServerEvent::Closed(reason));
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
        if self.phase != Phase::Conversing {
            return;
        }
        if self.awaiting_proxy {
            if self.input == Input::Closing {
                // Closed locally (server shutdown) before the header came.
                self.abort(CloseReason::LocalClose);
                return;
            }
            let closed = self.input != Input::Open;
            let mut recv = std::mem::take(&mut self.io.recv);
            let done = self.take_proxy_header(&mut recv, closed, now);
            self.io.recv = recv;
            if !done {
                return;
            }
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
            self.finish(now);
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
            let packet = match self.io.next_packet() {
                Ok(Some(packet)) => packet,
                Ok(None) => return Stop::NeedMore,
                Err(e) => {
                    self.stop(e.into());
                    return Stop::Error;
                }
            };
            self.last_activity = now;
            let (kind, id, payload) = match packet {
                Packet::Submit { id, payload } => (RequestKind::Submit, id, payload),
                Packet::Conn { id, payload } => (RequestKind::Conn, id, payload),
                ack => {
                    self.stop(CloseReason::UnexpectedPacket {
                        command: ack.command(),
                        to: Side::Server,
                    });
                    return Stop::Error;
                }
            };
            let handle = RequestHandle(self.base + self.slots.len() as u64);
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
                self.io.stats.conns_in += 1;
            }
            self.slots.push_back(Slot {
                kind,
                id,
                result: None,
            });
            self.events.push_back(ServerEvent::Request(Request {
                handle,
                kind,
                id,
                payload,
                identity: self.identity.clone(),
                source: self.source.clone(),
            }));
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
                self.io.stats.refused_out += 1;
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
