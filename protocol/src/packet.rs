//! The packet layer: a command id byte and a body, carried inside one frame.

use core::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::frame::{HEADER_LEN, MAX_FRAME_LEN_LIMIT};

/// Length of a message id on the wire.
pub const ID_LEN: usize = 8;
/// Length of an ack body: the id and the result byte.
pub const ACK_BODY_LEN: usize = ID_LEN + 1;
/// Length of a whole ack frame: header, command id, id, result.
pub const ACK_FRAME_LEN: usize = HEADER_LEN + 1 + ACK_BODY_LEN;
/// Length of a request frame's fixed part: header, command id, id.
pub const REQUEST_OVERHEAD: usize = HEADER_LEN + 1 + ID_LEN;

/// The command id byte that opens every packet.
///
/// A response's command id is its request's with the high bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[repr(u8)]
pub enum CommandId {
    /// `0x01`, client to server: open a session (id + application payload).
    Conn = 0x01,
    /// `0x02`, client to server: a request (id + payload).
    Submit = 0x02,
    /// `0x81`, server to client: the answer to a `Conn` (id + result).
    ConnAck = 0x81,
    /// `0x82`, server to client: the answer to a `Submit` (id + result).
    SubmitAck = 0x82,
}

impl CommandId {
    /// The command id for a wire byte, or `None` for an unknown one.
    pub const fn from_u8(byte: u8) -> Option<Self> {
        match byte {
            0x01 => Some(Self::Conn),
            0x02 => Some(Self::Submit),
            0x81 => Some(Self::ConnAck),
            0x82 => Some(Self::SubmitAck),
            _ => None,
        }
    }

    /// The wire byte.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// True for the server-to-client (ack) commands.
    pub const fn is_response(self) -> bool {
        self.as_u8() & 0x80 != 0
    }

    /// The name used in messages and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Conn => "Conn",
            Self::Submit => "Submit",
            Self::ConnAck => "ConnAck",
            Self::SubmitAck => "SubmitAck",
        }
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:02x})", self.name(), self.as_u8())
    }
}

/// The kind of a request, and so of its ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum RequestKind {
    /// `Conn` / `ConnAck`.
    Conn,
    /// `Submit` / `SubmitAck`.
    Submit,
}

impl RequestKind {
    /// The request's command id.
    pub const fn request_command(self) -> CommandId {
        match self {
            Self::Conn => CommandId::Conn,
            Self::Submit => CommandId::Submit,
        }
    }

    /// The ack's command id.
    pub const fn ack_command(self) -> CommandId {
        match self {
            Self::Conn => CommandId::ConnAck,
            Self::Submit => CommandId::SubmitAck,
        }
    }
}

/// An 8-byte message id, opaque to the server and echoed verbatim in the ack.
///
/// Clients make them with [`IdGenerator`]: 8 ASCII decimal digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct MessageId(pub [u8; ID_LEN]);

impl MessageId {
    /// The id whose 8 ASCII digits spell `n` modulo 10^8, zero-padded.
    pub fn from_counter(n: u32) -> Self {
        let mut n = n % IdGenerator::MODULUS;
        let mut digits = [b'0'; ID_LEN];
        for d in digits.iter_mut().rev() {
            // `n % 10` is below 10, so the cast cannot truncate.
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
        Self(digits)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.0
    }
}

impl fmt::Display for MessageId {
    /// Printable ASCII as it is (the seed's ids are digits), anything else escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in &self.0 {
            if b.is_ascii_graphic() || b == b' ' {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId(\"{self}\")")
    }
}

impl From<[u8; ID_LEN]> for MessageId {
    fn from(bytes: [u8; ID_LEN]) -> Self {
        Self(bytes)
    }
}

/// The client-side id counter: 8 ASCII decimal digits that start at
/// `00000001`, add 1 per request and wrap from `99999999` to `00000000`.
#[derive(Debug, Clone)]
pub struct IdGenerator {
    next: u32,
}

impl IdGenerator {
    /// Ids are taken modulo this (10^8).
    pub const MODULUS: u32 = 100_000_000;

    /// A generator whose first id is `00000001`.
    pub const fn new() -> Self {
        Self { next: 1 }
    }

    /// A generator whose first id spells `first` (modulo 10^8).
    pub const fn starting_at(first: u32) -> Self {
        Self {
            next: first % Self::MODULUS,
        }
    }

    /// The id the next call to [`IdGenerator::next_id`] returns.
    pub fn peek(&self) -> MessageId {
        MessageId::from_counter(self.next)
    }

    /// Hands out the next id and advances the counter.
    pub fn next_id(&mut self) -> MessageId {
        let id = MessageId::from_counter(self.next);
        self.next = (self.next + 1) % Self::MODULUS;
        id
    }
}

impl Default for IdGenerator {
    fn default() -> Self {
        Self::new()
    }
}

/// The result byte of an ack: 0 = ok, 1 = error; any other value is kept
/// as it came so that a client can surface it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct AckResult(pub u8);

impl AckResult {
    /// `0`: the request was handled.
    pub const OK: Self = Self(0);
    /// `1`: the request was refused.
    pub const ERROR: Self = Self(1);

    /// True for result 0.
    pub const fn is_ok(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Debug for AckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("AckResult::OK"),
            1 => f.write_str("AckResult::ERROR"),
            n => write!(f, "AckResult({n})"),
        }
    }
}

impl fmt::Display for AckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("0 (ok)"),
            1 => f.write_str("1 (error)"),
            n => write!(f, "{n} (unknown result code)"),
        }
    }
}

/// One decoded packet. Payloads are slices of the receive buffer: no copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// Client to server: open a session.
    Conn {
        /// Echoed in the `ConnAck`.
        id: MessageId,
        /// For the application: a client name, a token, ...
        payload: Bytes,
    },
    /// Client to server: a request.
    Submit {
        /// Echoed in the `SubmitAck`.
        id: MessageId,
        /// The request's data.
        payload: Bytes,
    },
    /// Server to client: the answer to a `Conn`.
    ConnAck {
        /// The `Conn`'s id.
        id: MessageId,
        /// 0 = ok, 1 = error, others kept.
        result: AckResult,
    },
    /// Server to client: the answer to a `Submit`.
    SubmitAck {
        /// The `Submit`'s id.
        id: MessageId,
        /// 0 = ok, 1 = error, others kept.
        result: AckResult,
    },
}

impl Packet {
    /// A request packet of the given kind.
    pub fn request(kind: RequestKind, id: MessageId, payload: Bytes) -> Self {
        match kind {
            RequestKind::Conn => Self::Conn { id, payload },
            RequestKind::Submit => Self::Submit { id, payload },
        }
    }

    /// An ack packet of the given kind.
    pub fn ack(kind: RequestKind, id: MessageId, result: AckResult) -> Self {
        match kind {
            RequestKind::Conn => Self::ConnAck { id, result },
            RequestKind::Submit => Self::SubmitAck { id, result },
        }
    }

    /// The packet's command id.
    pub fn command(&self) -> CommandId {
        match self {
            Self::Conn { .. } => CommandId::Conn,
            Self::Submit { .. } => CommandId::Submit,
            Self::ConnAck { .. } => CommandId::ConnAck,
            Self::SubmitAck { .. } => CommandId::SubmitAck,
        }
    }

    /// The packet's message id.
    pub fn id(&self) -> MessageId {
        match self {
            Self::Conn { id, .. }
            | Self::Submit { id, .. }
            | Self::ConnAck { id, .. }
            | Self::SubmitAck { id, .. } => *id,
        }
    }

    /// Parses the packet bytes of one frame (everything after the length field).
    ///
    /// The payload of a request is `packet` itself advanced past the command
    /// id and message id: no copy and no reference-count change.
    pub fn decode(mut packet: Bytes) -> Result<Self, DecodeError> {
        let Some(&byte) = packet.first() else {
            return Err(DecodeError::EmptyPacket);
        };
        let command = CommandId::from_u8(byte).ok_or(DecodeError::UnknownCommand(byte))?;
        let body_len = packet.len() - 1;
        match command {
            CommandId::Conn | CommandId::Submit => {
                if body_len < ID_LEN {
                    return Err(DecodeError::BodyTooShort {
                        command,
                        len: body_len,
                    });
                }
                let id = read_id(&packet[1..]);
                packet.advance(1 + ID_LEN);
                Ok(match command {
                    CommandId::Conn => Self::Conn {
                        id,
                        payload: packet,
                    },
                    _ => Self::Submit {
                        id,
                        payload: packet,
                    },
                })
            }
            CommandId::ConnAck | CommandId::SubmitAck => {
                if body_len != ACK_BODY_LEN {
                    return Err(DecodeError::AckBodyLength {
                        command,
                        len: body_len,
                    });
                }
                let id = read_id(&packet[1..]);
                let result = AckResult(packet[1 + ID_LEN]);
                Ok(match command {
                    CommandId::ConnAck => Self::ConnAck { id, result },
                    _ => Self::SubmitAck { id, result },
                })
            }
        }
    }

    /// Length of the packet on the wire, frame header included.
    pub fn frame_len(&self) -> usize {
        match self {
            Self::Conn { payload, .. } | Self::Submit { payload, .. } => {
                REQUEST_OVERHEAD + payload.len()
            }
            Self::ConnAck { .. } | Self::SubmitAck { .. } => ACK_FRAME_LEN,
        }
    }

    /// Appends the whole frame (length field, command id, body) to `out`.
    ///
    /// Fails only if the frame cannot be described by the 32-bit length field.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        match self {
            Self::Conn { id, payload } => {
                encode_request(RequestKind::Conn, id, payload, out, MAX_FRAME_LEN_LIMIT)
            }
            Self::Submit { id, payload } => {
                encode_request(RequestKind::Submit, id, payload, out, MAX_FRAME_LEN_LIMIT)
            }
            Self::ConnAck { id, result } => {
                encode_ack(RequestKind::Conn, id, *result, out);
                Ok(())
            }
            Self::SubmitAck { id, result } => {
                encode_ack(RequestKind::Submit, id, *result, out);
                Ok(())
            }
        }
    }
}

fn read_id(bytes: &[u8]) -> MessageId {
    let mut id = [0u8; ID_LEN];
    if let Some(src) = bytes.get(..ID_LEN) {
        id.copy_from_slice(src);
    }
    MessageId(id)
}

/// The 13 bytes that open a request frame whose payload is `payload_len`
/// bytes long, for writers that send the payload from its own buffer
/// (`write_vectored`). Fails if the frame would exceed `max_frame_len`.
pub fn request_header(
    kind: RequestKind,
    id: &MessageId,
    payload_len: usize,
    max_frame_len: u32,
) -> Result<[u8; REQUEST_OVERHEAD], EncodeError> {
    let total = checked_request_len(payload_len, max_frame_len)?;
    let mut head = [0u8; REQUEST_OVERHEAD];
    head[..4].copy_from_slice(&total.to_be_bytes());
    head[4] = kind.request_command().as_u8();
    head[5..].copy_from_slice(&id.0);
    Ok(head)
}

fn checked_request_len(payload_len: usize, max_frame_len: u32) -> Result<u32, EncodeError> {
    let limit = max_frame_len.min(MAX_FRAME_LEN_LIMIT);
    match payload_len
        .checked_add(REQUEST_OVERHEAD)
        .and_then(|n| u32::try_from(n).ok())
    {
        Some(total) if total <= limit => Ok(total),
        _ => Err(EncodeError::FrameTooLong {
            len: payload_len.saturating_add(REQUEST_OVERHEAD),
            max: limit,
        }),
    }
}

/// Appends a request frame to `out`: one copy of the payload, one reservation.
/// Fails (and writes nothing) if the frame would exceed `max_frame_len`.
pub fn encode_request(
    kind: RequestKind,
    id: &MessageId,
    payload: &[u8],
    out: &mut BytesMut,
    max_frame_len: u32,
) -> Result<(), EncodeError> {
    let head = request_header(kind, id, payload.len(), max_frame_len)?;
    out.reserve(REQUEST_OVERHEAD + payload.len());
    out.put_slice(&head);
    out.put_slice(payload);
    Ok(())
}

/// The 14 bytes of an ack frame.
pub fn ack_frame(kind: RequestKind, id: &MessageId, result: AckResult) -> [u8; ACK_FRAME_LEN] {
    let mut f = [0u8; ACK_FRAME_LEN];
    // ACK_FRAME_LEN is 14: the cast is exact.
    f[..4].copy_from_slice(&(ACK_FRAME_LEN as u32).to_be_bytes());
    f[4] = kind.ack_command().as_u8();
    f[5..13].copy_from_slice(&id.0);
    f[13] = result.0;
    f
}

/// Appends an ack frame (always 14 bytes) to `out`.
pub fn encode_ack(kind: RequestKind, id: &MessageId, result: AckResult, out: &mut BytesMut) {
    out.put_slice(&ack_frame(kind, id, result));
}
