//! The receive and send buffers both connection state machines share,
//! with their byte counters and the two timers that depend on bytes alone
//! (frame started, write progress).

use core::time::Duration;
use std::time::Instant;

use bytes::{Buf, BytesMut};

use crate::codec::{Packet, decode, frame_len};
use crate::error::DecodeError;
use crate::wire::HEADER_LEN;

/// The smallest read buffer handed to an adapter.
pub(crate) const READ_CHUNK: usize = 8 * 1024;
/// The most a buffer grows by in one step, whatever a peer declares.
pub(crate) const MAX_GROW_STEP: usize = 64 * 1024;
/// A buffer larger than this is given back when it empties.
pub(crate) const KEEP_CAPACITY: usize = 64 * 1024;

/// Counters of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Whole frames received.
    pub frames_in: u64,
    /// Whole frames queued for sending.
    pub frames_out: u64,
    /// Bytes received (handed to `handle_input*`).
    pub bytes_in: u64,
    /// Bytes written (reported through `handle_written`).
    pub bytes_out: u64,
    /// Of `frames_in`, the `Conn` requests (a server's count; the rest of
    /// a server's requests are Submits).
    pub conns_in: u64,
    /// Of `frames_out`, the acks with a result other than 0 (a server's
    /// count: refused by the application, or Submits refused for want of
    /// a `Conn`).
    pub refused_out: u64,
}

#[derive(Debug)]
pub(crate) struct Buffers {
    pub(crate) max_frame_len: u32,
    pub(crate) recv: BytesMut,
    pub(crate) send: BytesMut,
    pub(crate) stats: ConnectionStats,
    /// When the incomplete frame at the head of `recv` started arriving.
    pub(crate) partial_since: Option<Instant>,
    /// When output was last seen to move (or to appear).
    pub(crate) write_progress_at: Option<Instant>,
}

impl Buffers {
    pub(crate) fn new(max_frame_len: u32) -> Self {
        Self {
            max_frame_len,
            recv: BytesMut::new(),
            send: BytesMut::new(),
            stats: ConnectionStats::default(),
            partial_since: None,
            write_progress_at: None,
        }
    }

    /// The receive buffer with room to read into, grown in bounded steps:
    /// at least [`READ_CHUNK`] free, at most [`MAX_GROW_STEP`] more than a
    /// whole current frame needs, never what the length field declares at once.
    pub(crate) fn input_buffer(&mut self) -> &mut BytesMut {
        let step = self.read_size();
        if self.recv.capacity() - self.recv.len() < step {
            self.recv.reserve(step);
        }
        &mut self.recv
    }

    /// How much the next read should ask for: what the frame being received
    /// still needs, at least [`READ_CHUNK`] and at most [`MAX_GROW_STEP`]. Small
    /// frames keep reads small (a large read lets the kernel grow the
    /// socket's receive buffer, and a peer that does not read its acks can
    /// then push that much more before it stalls); a large frame's body is
    /// read in a few large reads, not many of 8 KiB.
    pub(crate) fn read_size(&self) -> usize {
        let want = match frame_len(&self.recv, self.max_frame_len) {
            Ok(Some(len)) => len.saturating_sub(self.recv.len()),
            _ => HEADER_LEN,
        };
        want.clamp(READ_CHUNK, MAX_GROW_STEP)
    }

    pub(crate) fn count_input(&mut self, n: usize) {
        self.stats.bytes_in += n as u64;
    }

    pub(crate) fn next_packet(&mut self) -> Result<Option<Packet>, DecodeError> {
        let packet = decode(&mut self.recv, self.max_frame_len)?;
        if packet.is_some() {
            self.stats.frames_in += 1;
            self.partial_since = None;
        }
        Ok(packet)
    }

    /// After a parse pass that stopped for want of bytes: start the frame
    /// timer if an incomplete frame is buffered, and give back a large or
    /// idle receive buffer.
    pub(crate) fn after_parse(&mut self, need_more: bool, now: Instant) {
        if need_more && !self.recv.is_empty() {
            self.partial_since.get_or_insert(now);
        } else {
            self.partial_since = None;
        }
        if self.recv.is_empty() {
            // Idle connections hold no receive buffer; the frames split off
            // it keep its storage alive for as long as the application does.
            self.recv = BytesMut::new();
        }
    }

    pub(crate) fn discard_input(&mut self) {
        self.recv = BytesMut::new();
        self.partial_since = None;
    }

    /// Call after appending to `send`.
    pub(crate) fn queued_output(&mut self, frames: u64, now: Instant) {
        self.stats.frames_out += frames;
        if !self.send.is_empty() {
            self.write_progress_at.get_or_insert(now);
        }
    }

    pub(crate) fn written(&mut self, n: usize, now: Instant) {
        let n = n.min(self.send.len());
        if n == 0 {
            return;
        }
        self.send.advance(n);
        self.stats.bytes_out += n as u64;
        if self.send.is_empty() {
            self.write_progress_at = None;
            if self.send.capacity() > KEEP_CAPACITY {
                self.send = BytesMut::new();
            }
        } else {
            self.write_progress_at = Some(now);
        }
    }

    pub(crate) fn discard_output(&mut self) {
        self.send = BytesMut::new();
        self.write_progress_at = None;
    }

    pub(crate) fn frame_deadline(&self, timeout: Option<Duration>) -> Option<Instant> {
        deadline(self.partial_since, timeout)
    }

    pub(crate) fn write_deadline(&self, timeout: Option<Duration>) -> Option<Instant> {
        deadline(self.write_progress_at, timeout)
    }
}

pub(crate) fn deadline(since: Option<Instant>, timeout: Option<Duration>) -> Option<Instant> {
    since?.checked_add(timeout?)
}

pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}
