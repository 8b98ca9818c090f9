//! Errors, split by who is at fault.

use core::time::Duration;

use crate::packet::{CommandId, MessageId, RequestKind};

/// The peer sent bytes that are not the protocol. Fatal for the stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// `total_length` below 5: the frame cannot hold a command id.
    #[error("frame length {len} is below the minimum 5 (4-byte length field + 1-byte command id)")]
    FrameTooShort {
        /// The length field as read.
        len: u32,
    },
    /// `total_length` above the configured limit.
    #[error("frame length {len} exceeds limit {max}")]
    FrameTooLong {
        /// The length field as read.
        len: u32,
        /// The configured `max_frame_len`.
        max: u32,
    },
    /// A packet with no command id byte (only reachable through `Packet::decode`).
    #[error("packet is empty: it has no command id byte")]
    EmptyPacket,
    /// A command id byte that is none of 0x01, 0x02, 0x81, 0x82.
    #[error("unknown command id 0x{0:02x}")]
    UnknownCommand(u8),
    /// A `Conn` or `Submit` whose body cannot hold the 8-byte id.
    #[error("{} body is {len} bytes, needs at least 8", .command.name())]
    BodyTooShort {
        /// The packet's command.
        command: CommandId,
        /// The body length (packet length less the command id byte).
        len: usize,
    },
    /// A `ConnAck` or `SubmitAck` whose body is not id + result.
    #[error("{} body is {len} bytes, must be exactly 9", .command.name())]
    AckBodyLength {
        /// The packet's command.
        command: CommandId,
        /// The body length (packet length less the command id byte).
        len: usize,
    },
}

/// The caller asked the encoder for something the wire cannot carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The frame would exceed the limit.
    #[error("frame length {len} exceeds limit {max}")]
    FrameTooLong {
        /// The frame length it would have had.
        len: usize,
        /// The limit in force.
        max: u32,
    },
    /// A frame must carry at least a command id byte.
    #[error("packet is empty: a frame must carry at least a command id byte")]
    EmptyPacket,
}

/// Why a connection ended. Every connection that closes has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    /// The peer closed its side after everything was answered (or, on a
    /// client, with nothing in flight).
    #[error("peer closed the connection")]
    PeerClosed,
    /// The local side asked to close ([`crate::ServerConnection::close`],
    /// [`crate::ClientConnection::close`]) and everything was flushed.
    #[error("closed locally")]
    LocalClose,
    /// The peer sent bytes that are not the protocol.
    #[error("protocol error: {0}")]
    Decode(#[from] DecodeError),
    /// The peer sent a packet that does not travel in this direction
    /// (an ack to a server, a request to a client).
    #[error("protocol error: {} must not be sent to a {to}", .command.name())]
    UnexpectedPacket {
        /// The packet's command.
        command: CommandId,
        /// `"server"` or `"client"`.
        to: &'static str,
    },
    /// The peer closed in the middle of a frame.
    #[error("peer closed in the middle of a frame ({buffered} bytes of it received)")]
    TruncatedFrame {
        /// Bytes of the incomplete frame that arrived.
        buffered: usize,
    },
    /// The peer closed with requests still waiting for their acks (client).
    #[error("peer closed the connection with {in_flight} request(s) unanswered")]
    PeerClosedInFlight {
        /// Requests that got no ack.
        in_flight: usize,
    },
    /// No complete request for the idle timeout.
    #[error("idle timeout: no request for {after:?}")]
    IdleTimeout {
        /// The configured timeout.
        after: Duration,
    },
    /// A frame was started and not finished in time (slowloris).
    #[error("frame timeout: a frame was started and not finished within {after:?}")]
    FrameTimeout {
        /// The configured timeout.
        after: Duration,
    },
    /// Output was pending and the peer took none of it in time.
    #[error("write stall: {pending} bytes pending and no write progress for {after:?}")]
    WriteStall {
        /// The configured timeout.
        after: Duration,
        /// Bytes still waiting to be written.
        pending: usize,
    },
    /// The oldest request got no ack in time (client).
    #[error("response timeout: request {id} got no ack within {after:?}")]
    ResponseTimeout {
        /// The request's id.
        id: MessageId,
        /// The configured timeout.
        after: Duration,
    },
    /// An ack for a request other than the oldest in flight (client).
    #[error("protocol error: expected {} for id {expected}, got {} for id {got}", .expected_kind.ack_command().name(), .got_kind.ack_command().name())]
    AckMismatch {
        /// The id of the oldest request in flight.
        expected: MessageId,
        /// Its kind.
        expected_kind: RequestKind,
        /// The id the ack carried.
        got: MessageId,
        /// The ack's kind.
        got_kind: RequestKind,
    },
    /// An ack with no request in flight (client).
    #[error("protocol error: unsolicited {} for id {id}: no request in flight", .kind.ack_command().name())]
    UnsolicitedAck {
        /// The id the ack carried.
        id: MessageId,
        /// The ack's kind.
        kind: RequestKind,
    },
    /// The local side cut the connection before it was done: a shutdown
    /// deadline passed, or the socket failed.
    #[error("aborted: {why}")]
    Aborted {
        /// What cut it, e.g. `"shutdown deadline passed with requests unanswered"`.
        why: &'static str,
    },
}

impl CloseReason {
    /// A short stable name for counters and logs, e.g. `"frame_too_long"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::PeerClosed => "peer_closed",
            Self::LocalClose => "local_close",
            Self::Decode(DecodeError::FrameTooShort { .. }) => "frame_too_short",
            Self::Decode(DecodeError::FrameTooLong { .. }) => "frame_too_long",
            Self::Decode(DecodeError::EmptyPacket) => "empty_packet",
            Self::Decode(DecodeError::UnknownCommand(_)) => "unknown_command",
            Self::Decode(DecodeError::BodyTooShort { .. }) => "body_too_short",
            Self::Decode(DecodeError::AckBodyLength { .. }) => "ack_body_length",
            Self::UnexpectedPacket { .. } => "unexpected_packet",
            Self::TruncatedFrame { .. } => "truncated_frame",
            Self::PeerClosedInFlight { .. } => "peer_closed_in_flight",
            Self::IdleTimeout { .. } => "idle_timeout",
            Self::FrameTimeout { .. } => "frame_timeout",
            Self::WriteStall { .. } => "write_stall",
            Self::ResponseTimeout { .. } => "response_timeout",
            Self::AckMismatch { .. } => "ack_mismatch",
            Self::UnsolicitedAck { .. } => "unsolicited_ack",
            Self::Aborted { .. } => "aborted",
        }
    }

    /// True when the connection ended the way a conversation should:
    /// the peer or the local side closed with nothing lost.
    pub fn is_clean(&self) -> bool {
        matches!(self, Self::PeerClosed | Self::LocalClose)
    }
}

/// The application misused a server connection's API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RespondError {
    /// The handle names no request waiting for an answer: answered already,
    /// or from another connection.
    #[error(
        "request handle {0} is not waiting for an answer (answered already, or from another connection)"
    )]
    UnknownRequest(u64),
}

/// A client could not queue a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// `max_in_flight` requests are waiting for acks already.
    #[error("{limit} requests in flight already (max_in_flight); wait for an ack")]
    TooManyInFlight {
        /// The configured limit.
        limit: usize,
    },
    /// The payload makes a frame the limit refuses.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The connection is closing or closed.
    #[error("connection is closed: {0}")]
    Closed(CloseReason),
    /// The connection is closing: no new requests.
    #[error("connection is closing: no new requests")]
    Closing,
}
