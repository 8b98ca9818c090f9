//! The client side of one connection.

use core::time::Duration;
use std::collections::VecDeque;
use std::time::Instant;

use bytes::BytesMut;

use crate::buffers::{Buffers, ConnectionStats, deadline, earliest};
use crate::codec::{Packet, encode_request};
use crate::config::ClientConfig;
use crate::error::{CloseReason, SubmitError};
use crate::wire::{ACK_FRAME_LEN, AckResult, IdGenerator, MessageId, RequestKind, Side};

/// What a [`ClientConnection`] has for its driver, from
/// [`ClientConnection::poll_event`]: acks in request order, then one `Closed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The ack of the oldest request in flight.
    Ack(Ack),
    /// The connection is over, for this reason: close the socket (after a
    /// clean end, [`CloseReason::is_clean`], with a FIN). Requests still in
    /// flight got no ack. No event follows.
    Closed(CloseReason),
}

/// An ack, matched to its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// `Conn` or `Submit`.
    pub kind: RequestKind,
    /// The request's id (the ack echoed it).
    pub id: MessageId,
    /// 0 = ok, 1 = error, others kept as they came.
    pub result: AckResult,
    /// From the `now` of the submit to the `now` of the input that held the ack.
    pub rtt: Duration,
}

#[derive(Debug)]
struct InFlight {
    kind: RequestKind,
    id: MessageId,
    sent_at: Instant,
}

/// The sans-IO client side of one connection.
///
/// [`submit`](Self::submit) queues a request and gives its id; acks come out
/// of [`poll_event`](Self::poll_event) in request order. Acks must arrive in
/// the order of the requests: anything else is a protocol error that ends
/// the connection.
#[derive(Debug)]
pub struct ClientConnection {
    config: ClientConfig,
    io: Buffers,
    ids: IdGenerator,
    in_flight: VecDeque<InFlight>,
    events: VecDeque<ClientEvent>,
    closing: bool,
    reason: Option<CloseReason>,
    closed: bool,
}

impl ClientConnection {
    /// A new client connection (its timers start with its first request).
    pub fn new(config: ClientConfig) -> Self {
        Self {
            // Acks are 14 bytes whatever limit requests are held to.
            io: Buffers::new(config.max_frame_len.max(ACK_FRAME_LEN as u32)),
            ids: IdGenerator::starting_at(config.first_id),
            config,
            in_flight: VecDeque::new(),
            events: VecDeque::new(),
            closing: false,
            reason: None,
            closed: false,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Queues a `Submit` with the next id and returns the id.
    pub fn submit(&mut self, payload: &[u8], now: Instant) -> Result<MessageId, SubmitError> {
        self.request(RequestKind::Submit, payload, now)
    }

    /// Queues a `Conn` with the next id and returns the id.
    pub fn conn(&mut self, payload: &[u8], now: Instant) -> Result<MessageId, SubmitError> {
        self.request(RequestKind::Conn, payload, now)
    }

    /// Queues a request of either kind with the next id and returns the id.
    pub fn request(
        &mut self,
        kind: RequestKind,
        payload: &[u8],
        now: Instant,
    ) -> Result<MessageId, SubmitError> {
        if let Some(reason) = self.reason.as_ref().filter(|_| self.closed) {
            return Err(SubmitError::Closed(reason.clone()));
        }
        if self.closing {
            return Err(SubmitError::Closing);
        }
        if self.in_flight.len() >= self.config.max_in_flight {
            return Err(SubmitError::TooManyInFlight {
                limit: self.config.max_in_flight,
            });
        }
        let id = self.ids.peek();
        encode_request(
            kind,
            &id,
            payload,
            self.config.max_frame_len,
            &mut self.io.send,
        )?;
        let _ = self.ids.next_id();
        self.io.queued_output(1, now);
        self.in_flight.push_back(InFlight {
            kind,
            id,
            sent_at: now,
        });
        Ok(id)
    }

    /// Feeds bytes read from the server: appends exactly them to the
    /// receive buffer and calls
    /// [`handle_input_appended`](Self::handle_input_appended).
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        self.io.recv.extend_from_slice(data);
        self.handle_input_appended(data.len(), now);
    }

    /// The receive buffer, with room to read into: append only, then call
    /// [`handle_input_appended`](Self::handle_input_appended).
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
    pub fn handle_input_appended(&mut self, n: usize, now: Instant) {
        if self.closed {
            self.io.discard_input();
            return;
        }
        self.io.count_input(n);
        self.process(now);
    }

    /// The server closed its side. Requests still in flight are lost:
    /// the reason says how many.
    pub fn handle_eof(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        self.process(now);
        if self.closed {
            return;
        }
        let reason = if !self.io.recv.is_empty() {
            CloseReason::TruncatedFrame {
                buffered: self.io.recv.len(),
            }
        } else if !self.in_flight.is_empty() {
            CloseReason::PeerClosedInFlight {
                in_flight: self.in_flight.len(),
            }
        } else {
            CloseReason::PeerClosed
        };
        self.terminate(reason);
    }

    /// Fires every timer that expired at `now`. A no-op when none did.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if let Some(at) = self.io.write_deadline(self.config.write_stall_timeout)
            && now >= at
            && let Some(after) = self.config.write_stall_timeout
        {
            let pending = self.io.send.len();
            self.terminate(CloseReason::WriteStall { after, pending });
            return;
        }
        if let Some(at) = self.response_deadline()
            && now >= at
            && let (Some(after), Some(oldest)) =
                (self.config.response_timeout, self.in_flight.front())
        {
            let id = oldest.id;
            self.terminate(CloseReason::ResponseTimeout { id, after });
        }
    }

    /// Sends nothing more: once every request in flight has its ack and
    /// the output is flushed, the connection is done (shut down the socket).
    pub fn close(&mut self, now: Instant) {
        self.closing = true;
        self.process(now);
    }

    /// Ends the connection at once: [`ClientEvent::Closed`] with `reason`
    /// comes next.
    pub fn abort(&mut self, reason: CloseReason) {
        self.terminate(reason);
    }

    /// The socket failed: the connection ends at once.
    pub fn handle_io_error(&mut self, kind: std::io::ErrorKind) {
        self.terminate(CloseReason::Io { kind });
    }

    /// The next event: an ack (in request order), or the end.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// The bytes waiting to be written; report progress with
    /// [`handle_written`](Self::handle_written).
    pub fn transmit_buf(&self) -> &[u8] {
        &self.io.send
    }

    /// `n` bytes of [`transmit_buf`](Self::transmit_buf) reached the socket.
    pub fn handle_written(&mut self, n: usize, now: Instant) {
        self.io.written(n, now);
        self.process(now);
    }

    /// The next instant [`handle_timeout`](Self::handle_timeout) must be called at.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        earliest(
            self.io.write_deadline(self.config.write_stall_timeout),
            self.response_deadline(),
        )
    }

    /// Requests waiting for their acks.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The ids waiting for acks, oldest first.
    pub fn in_flight_ids(&self) -> impl Iterator<Item = MessageId> + '_ {
        self.in_flight.iter().map(|r| r.id)
    }

    /// True once the connection is done.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// True once [`close`](Self::close) was called: no request is queued
    /// after what [`transmit_buf`](Self::transmit_buf) holds.
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// Why the connection ended, once it has.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        self.reason.as_ref()
    }

    /// Bytes queued and not yet written.
    pub fn pending_output(&self) -> usize {
        self.io.send.len()
    }

    /// Counters: frames and bytes in and out.
    pub fn stats(&self) -> ConnectionStats {
        self.io.stats
    }

    fn response_deadline(&self) -> Option<Instant> {
        deadline(
            self.in_flight.front().map(|r| r.sent_at),
            self.config.response_timeout,
        )
    }

    fn terminate(&mut self, reason: CloseReason) {
        if self.closed {
            return;
        }
        if self.reason.is_none() {
            self.reason = Some(reason.clone());
        }
        self.events.push_back(ClientEvent::Closed(reason));
        self.closed = true;
        self.io.discard_input();
        self.io.discard_output();
    }

    fn process(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        loop {
            let packet = match self.io.next_packet() {
                Ok(Some(packet)) => packet,
                Ok(None) => break,
                Err(e) => return self.terminate(e.into()),
            };
            let (kind, id, result) = match packet {
                Packet::SubmitAck { id, result } => (RequestKind::Submit, id, result),
                Packet::ConnAck { id, result } => (RequestKind::Conn, id, result),
                request => {
                    return self.terminate(CloseReason::UnexpectedPacket {
                        command: request.command(),
                        to: Side::Client,
                    });
                }
            };
            let Some(oldest) = self.in_flight.front() else {
                return self.terminate(CloseReason::UnsolicitedAck { id, kind });
            };
            if oldest.id != id || oldest.kind != kind {
                let (expected, expected_kind) = (oldest.id, oldest.kind);
                return self.terminate(CloseReason::AckMismatch {
                    expected,
                    expected_kind,
                    got: id,
                    got_kind: kind,
                });
            }
            let rtt = now.saturating_duration_since(oldest.sent_at);
            self.in_flight.pop_front();
            self.events.push_back(ClientEvent::Ack(Ack {
                kind,
                id,
                result,
                rtt,
            }));
        }
        self.io.after_parse(true, now);
        if self.closing && self.in_flight.is_empty() && self.io.send.is_empty() {
            self.terminate(CloseReason::LocalClose);
        }
    }
}
