//! The codec: one decoder from a receive buffer to packets, and the
//! encoders (one for requests, one for acks: the fast path, and
//! [`Packet::encode`] over both).
//!
//! A frame is a big-endian `u32` `total_length` that counts itself, then
//! the packet: a command id byte and a body.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::wire::{
    ACK_BODY_LEN, ACK_FRAME_LEN, AckResult, CommandId, HEADER_LEN, ID_LEN, MAX_FRAME_LEN_LIMIT,
    MIN_FRAME_LEN, MessageId, REQUEST_OVERHEAD, RequestKind,
};

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
    /// Fails (and writes nothing) only if a request's frame would be longer
    /// than [`MAX_FRAME_LEN_LIMIT`].
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        match self {
            Self::Conn { id, payload } => {
                encode_request(RequestKind::Conn, id, payload, MAX_FRAME_LEN_LIMIT, out)
            }
            Self::Submit { id, payload } => {
                encode_request(RequestKind::Submit, id, payload, MAX_FRAME_LEN_LIMIT, out)
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

/// Splits the first whole frame off `buf` and parses its packet.
///
/// `Ok(None)`: `buf` does not hold a whole frame yet; read more and call
/// again (nothing is consumed). An error is final for the stream: the
/// bytes cannot be resynchronised. A `total_length` outside
/// `5..=max_frame_len` is refused from the 4 header bytes alone, before
/// anything is reserved for it. The payload of a request is a slice of
/// `buf`'s storage: no copy.
#[inline]
pub fn decode(buf: &mut BytesMut, max_frame_len: u32) -> Result<Option<Packet>, DecodeError> {
    let Some(len) = frame_len(buf, max_frame_len)? else {
        return Ok(None);
    };
    if buf.len() < len {
        return Ok(None);
    }
    let mut frame = buf.split_to(len);
    frame.advance(HEADER_LEN);
    decode_packet(frame.freeze()).map(Some)
}

/// The `total_length` of the frame at the start of `buf`, checked against
/// the bounds; `Ok(None)` while fewer than 4 bytes are there.
#[inline]
pub(crate) fn frame_len(buf: &[u8], max_frame_len: u32) -> Result<Option<usize>, DecodeError> {
    let Some(head) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(*head);
    if len < MIN_FRAME_LEN {
        return Err(DecodeError::FrameTooShort { len });
    }
    if len > max_frame_len {
        return Err(DecodeError::FrameTooLong {
            len,
            max: max_frame_len,
        });
    }
    usize::try_from(len)
        .map(Some)
        .map_err(|_| DecodeError::FrameTooLong {
            len,
            max: max_frame_len,
        })
}

/// Parses the packet of one frame (everything after the length field,
/// never empty). A request's payload is `packet` itself advanced past the
/// command id and message id: no copy, no reference-count change.
fn decode_packet(mut packet: Bytes) -> Result<Packet, DecodeError> {
    let byte = packet.first().copied().unwrap_or_default();
    let command = CommandId::from_u8(byte).ok_or(DecodeError::UnknownCommand(byte))?;
    let body_len = packet.len().saturating_sub(1);
    let id = read_id(packet.get(1..).unwrap_or_default());
    match command {
        CommandId::Conn | CommandId::Submit => {
            if body_len < ID_LEN {
                return Err(DecodeError::BodyTooShort {
                    command,
                    len: body_len,
                });
            }
            packet.advance(1 + ID_LEN);
            Ok(match command {
                CommandId::Conn => Packet::Conn {
                    id,
                    payload: packet,
                },
                _ => Packet::Submit {
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
            let result = AckResult(packet.get(1 + ID_LEN).copied().unwrap_or_default());
            Ok(match command {
                CommandId::ConnAck => Packet::ConnAck { id, result },
                _ => Packet::SubmitAck { id, result },
            })
        }
    }
}

fn read_id(bytes: &[u8]) -> MessageId {
    MessageId(bytes.first_chunk::<ID_LEN>().copied().unwrap_or_default())
}

/// Appends a request frame (`Conn` or `Submit`) to `out`: one reservation,
/// one copy of the payload. Fails (and writes nothing) if the frame would
/// be longer than `max_frame_len` (or [`MAX_FRAME_LEN_LIMIT`]).
pub fn encode_request(
    kind: RequestKind,
    id: &MessageId,
    payload: &[u8],
    max_frame_len: u32,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let limit = max_frame_len.min(MAX_FRAME_LEN_LIMIT);
    let total = payload
        .len()
        .checked_add(REQUEST_OVERHEAD)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|&n| n <= limit)
        .ok_or(EncodeError::FrameTooLong {
            len: payload.len().saturating_add(REQUEST_OVERHEAD),
            max: limit,
        })?;
    out.reserve(REQUEST_OVERHEAD + payload.len());
    out.put_u32(total);
    out.put_u8(kind.request_command().as_u8());
    out.put_slice(&id.0);
    out.put_slice(payload);
    Ok(())
}

/// Appends an ack frame (always 14 bytes) to `out`: the server's fast path.
#[inline]
pub fn encode_ack(kind: RequestKind, id: &MessageId, result: AckResult, out: &mut BytesMut) {
    let mut f = [0u8; ACK_FRAME_LEN];
    // ACK_FRAME_LEN is 14: the cast is exact.
    f[..4].copy_from_slice(&(ACK_FRAME_LEN as u32).to_be_bytes());
    f[4] = kind.ack_command().as_u8();
    f[5..13].copy_from_slice(&id.0);
    f[13] = result.0;
    out.put_slice(&f);
}
