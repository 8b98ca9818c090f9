//! Errors, split by who is at fault.

use core::time::Duration;

use crate::wire::{CommandId, MessageId, RequestHandle, RequestKind, Side};

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
        /// The side that received it.
        to: Side,
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
    /// A graceful close did not finish by its deadline (server shutdown):
    /// the connection was cut with work left.
    #[error(
        "cut at the shutdown deadline with {unanswered} request(s) unanswered and {unsent} byte(s) unsent"
    )]
    ShutdownDeadline {
        /// Requests received and not yet acked.
        unanswered: usize,
        /// Bytes queued and not yet written.
        unsent: usize,
    },
    /// The connection's handshake (TLS) did not finish in time.
    #[error("handshake timeout: not finished within {after:?}")]
    HandshakeTimeout {
        /// The configured timeout.
        after: Duration,
    },
    /// The secure channel under the conversation failed: a bad handshake,
    /// a certificate refused, a record that does not decrypt, a peer that
    /// does not speak TLS (reported by the TLS layer).
    #[error("tls: {error}")]
    Tls {
        /// What the TLS layer found.
        error: String,
    },
    /// The PROXY protocol header the server expects
    /// ([`ServerConfig::proxy_protocol`](crate::ServerConfig::proxy_protocol))
    /// is missing or malformed.
    #[error("{error}")]
    Proxy {
        /// What is wrong with it.
        error: crate::proxy::ProxyError,
    },
    /// The socket failed (reported by the adapter).
    #[error("io error: {kind}")]
    Io {
        /// The kind of the socket's error.
        kind: std::io::ErrorKind,
    },
    /// The local side ended the connection at once
    /// ([`crate::ServerConnection::abort`], [`crate::ClientConnection::abort`]).
    #[error("aborted locally")]
    Aborted,
}

impl CloseReason {
    /// True when the peer broke the framing: a frame that does not decode,
    /// a packet the other side must not send, a frame cut by the end of
    /// the stream (a server's `frame_errors` counter).
    pub fn is_frame_error(&self) -> bool {
        matches!(
            self,
            Self::Decode(_) | Self::UnexpectedPacket { .. } | Self::TruncatedFrame { .. }
        )
    }

    /// A short stable name for counters and logs, e.g. `"frame_too_long"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::PeerClosed => "peer_closed",
            Self::LocalClose => "local_close",
            Self::Decode(DecodeError::FrameTooShort { .. }) => "frame_too_short",
            Self::Decode(DecodeError::FrameTooLong { .. }) => "frame_too_long",
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
            Self::ShutdownDeadline { .. } => "shutdown_deadline",
            Self::HandshakeTimeout { .. } => "handshake_timeout",
            Self::Tls { .. } => "tls_error",
            Self::Proxy { .. } => "proxy_header",
            Self::Io { .. } => "io_error",
            Self::Aborted => "aborted",
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
        "request {0} is not waiting for an answer (answered already, or from another connection)"
    )]
    UnknownRequest(RequestHandle),
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

/// A configuration value outside what the protocol can work with: found by
/// `validate` before anything starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A number outside its allowed range.
    #[error("{setting} {value} is out of range {min}..={max}{}", .setting.unit())]
    OutOfRange {
        /// Which setting.
        setting: Setting,
        /// Its value (durations in milliseconds).
        value: u64,
        /// The smallest allowed.
        min: u64,
        /// The largest allowed.
        max: u64,
    },
}

impl ConfigError {
    /// The setting at fault.
    pub fn setting(&self) -> Setting {
        match self {
            Self::OutOfRange { setting, .. } => *setting,
        }
    }
}

/// A configuration setting, named as in [`crate::ServerConfig`] and
/// [`crate::ClientConfig`] (a command line's flag is the name with dashes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Setting {
    /// `max_frame_len`.
    MaxFrameLen,
    /// `high_water`.
    HighWater,
    /// `low_water`.
    LowWater,
    /// `max_pending_requests`.
    MaxPendingRequests,
    /// `idle_timeout`.
    IdleTimeout,
    /// `frame_timeout`.
    FrameTimeout,
    /// `write_stall_timeout`.
    WriteStallTimeout,
    /// `linger_quiet`.
    LingerQuiet,
    /// `max_connections`.
    MaxConnections,
    /// `handshake_timeout`.
    HandshakeTimeout,
    /// `max_in_flight`.
    MaxInFlight,
    /// `response_timeout`.
    ResponseTimeout,
    /// [`crate::BackoffConfig`]'s `initial`.
    BackoffInitial,
    /// [`crate::BackoffConfig`]'s `max`.
    BackoffMax,
    /// [`crate::BackoffConfig`]'s `max_attempts`.
    BackoffMaxAttempts,
}

impl Setting {
    /// The field's name, e.g. `"max_frame_len"`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::MaxFrameLen => "max_frame_len",
            Self::HighWater => "high_water",
            Self::LowWater => "low_water",
            Self::MaxPendingRequests => "max_pending_requests",
            Self::IdleTimeout => "idle_timeout",
            Self::FrameTimeout => "frame_timeout",
            Self::WriteStallTimeout => "write_stall_timeout",
            Self::LingerQuiet => "linger_quiet",
            Self::MaxConnections => "max_connections",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::MaxInFlight => "max_in_flight",
            Self::ResponseTimeout => "response_timeout",
            Self::BackoffInitial => "backoff_initial",
            Self::BackoffMax => "backoff_max",
            Self::BackoffMaxAttempts => "backoff_max_attempts",
        }
    }

    /// The unit its values are given in, for messages (`" bytes"`, `" ms"`, or none).
    pub const fn unit(self) -> &'static str {
        match self {
            Self::MaxFrameLen | Self::HighWater | Self::LowWater => " bytes",
            Self::IdleTimeout
            | Self::FrameTimeout
            | Self::WriteStallTimeout
            | Self::LingerQuiet
            | Self::HandshakeTimeout
            | Self::ResponseTimeout
            | Self::BackoffInitial
            | Self::BackoffMax => " ms",
            Self::MaxPendingRequests
            | Self::MaxConnections
            | Self::MaxInFlight
            | Self::BackoffMaxAttempts => "",
        }
    }
}

impl core::fmt::Display for Setting {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}
