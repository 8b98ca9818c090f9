//! The wire's vocabulary: lengths, command ids, message ids and results.
//! The bottom of the module graph: it depends on nothing else in the crate.

use core::fmt;

/// Length of the frame header (the `total_length` field).
pub const HEADER_LEN: usize = 4;
/// The shortest valid frame: the header and a command id byte.
pub const MIN_FRAME_LEN: u32 = 5;
/// The default limit on `total_length`: 8 MiB.
pub const DEFAULT_MAX_FRAME_LEN: u32 = 8 * 1024 * 1024;
/// The largest limit that can be configured: the seed reads the length as
/// a signed 32-bit integer, so longer frames cannot interoperate.
pub const MAX_FRAME_LEN_LIMIT: u32 = 0x7fff_ffff;

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
// Aligned as a u64: the decoder moves it as one word. At its natural
// alignment of 1 it sat at odd offsets in `Packet` and the decode results,
// and the byte-wise stores then wide loads stalled (store forwarding):
// 8% of the core's time at 64 pipelined requests.
#[repr(align(8))]
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

/// Which end of a connection: the one that sends requests or the one
/// that acks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Accepts connections and sends acks.
    Server,
    /// Connects and sends requests.
    Client,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Server => "server",
            Self::Client => "client",
        })
    }
}

/// Names one request a [`ServerConnection`](crate::ServerConnection)
/// handed out, for [`respond`](crate::ServerConnection::respond). Not on
/// the wire: handles count the connection's requests from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestHandle(pub(crate) u64);

impl RequestHandle {
    /// The request's number on its connection (0 for the first).
    pub const fn index(self) -> u64 {
        self.0
    }
}

impl fmt::Display for RequestHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}
