//! The frame layer: a big-endian `u32` length that counts itself, then the packet.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::packet::Packet;

/// Length of the frame header (the `total_length` field).
pub const HEADER_LEN: usize = 4;
/// The shortest valid frame: the header and a command id byte.
pub const MIN_FRAME_LEN: u32 = 5;
/// The default limit on `total_length`: 8 MiB.
pub const DEFAULT_MAX_FRAME_LEN: u32 = 8 * 1024 * 1024;
/// The largest limit that can be configured: the seed reads the length as
/// a signed 32-bit integer, so longer frames cannot interoperate.
pub const MAX_FRAME_LEN_LIMIT: u32 = i32::MAX as u32;

/// One frame, its length field stripped: the packet bytes.
///
/// The bytes are a slice of the receive buffer they were decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    packet: Bytes,
}

impl Frame {
    /// A frame around the given packet bytes (for encoding).
    pub fn new(packet: Bytes) -> Self {
        Self { packet }
    }

    /// The packet bytes: command id and body.
    pub fn packet(&self) -> &Bytes {
        &self.packet
    }

    /// Takes the packet bytes out.
    pub fn into_packet(self) -> Bytes {
        self.packet
    }

    /// Parses the packet inside.
    pub fn decode_packet(self) -> Result<Packet, DecodeError> {
        Packet::decode(self.packet)
    }

    /// The `total_length` this frame has on the wire (header included).
    pub fn wire_len(&self) -> usize {
        HEADER_LEN + self.packet.len()
    }

    /// Appends the frame (length field and packet) to `out`.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        encode_frame(&self.packet, out)
    }
}

/// Appends a frame that carries `packet` to `out`, with one reservation.
///
/// Fails (and writes nothing) if the frame is shorter than [`MIN_FRAME_LEN`]
/// or longer than [`MAX_FRAME_LEN_LIMIT`].
pub fn encode_frame(packet: &[u8], out: &mut BytesMut) -> Result<(), EncodeError> {
    let total = packet.len().saturating_add(HEADER_LEN);
    let len = match u32::try_from(total) {
        Ok(len) if len > MAX_FRAME_LEN_LIMIT => {
            return Err(EncodeError::FrameTooLong {
                len: total,
                max: MAX_FRAME_LEN_LIMIT,
            });
        }
        Ok(len) if len < MIN_FRAME_LEN => return Err(EncodeError::EmptyPacket),
        Ok(len) => len,
        Err(_) => {
            return Err(EncodeError::FrameTooLong {
                len: total,
                max: MAX_FRAME_LEN_LIMIT,
            });
        }
    };
    out.reserve(total);
    out.put_u32(len);
    out.put_slice(packet);
    Ok(())
}

/// Checks a `total_length` field against the bounds, from the 4 header bytes alone.
#[inline]
pub fn check_frame_len(len: u32, max_frame_len: u32) -> Result<usize, DecodeError> {
    if len < MIN_FRAME_LEN {
        return Err(DecodeError::FrameTooShort { len });
    }
    if len > max_frame_len {
        return Err(DecodeError::FrameTooLong {
            len,
            max: max_frame_len,
        });
    }
    usize::try_from(len).map_err(|_| DecodeError::FrameTooLong {
        len,
        max: max_frame_len,
    })
}

/// The `total_length` of the frame at the start of `buf`, checked against
/// the bounds; `Ok(None)` while fewer than 4 bytes are there.
#[inline]
pub fn peek_frame_len(buf: &[u8], max_frame_len: u32) -> Result<Option<usize>, DecodeError> {
    match buf.first_chunk::<HEADER_LEN>() {
        None => Ok(None),
        Some(head) => check_frame_len(u32::from_be_bytes(*head), max_frame_len).map(Some),
    }
}

/// Splits the first whole frame off `buf`.
///
/// `Ok(None)`: `buf` does not hold a whole frame yet; read more and call
/// again (nothing is consumed). An error is final for the stream: the bytes
/// cannot be resynchronised. A length outside `5..=max_frame_len` is refused
/// from the 4 header bytes alone, before anything is reserved for it.
/// The frame is split off without copying.
#[inline]
pub fn decode_frame(buf: &mut BytesMut, max_frame_len: u32) -> Result<Option<Frame>, DecodeError> {
    let Some(len) = peek_frame_len(buf, max_frame_len)? else {
        return Ok(None);
    };
    if buf.len() < len {
        return Ok(None);
    }
    let mut frame = buf.split_to(len);
    frame.advance(HEADER_LEN);
    Ok(Some(Frame {
        packet: frame.freeze(),
    }))
}

/// A frame decoder with its limit: the configured form of [`decode_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameDecoder {
    max_frame_len: u32,
}

impl FrameDecoder {
    /// A decoder with the given limit on `total_length`, capped at
    /// [`MAX_FRAME_LEN_LIMIT`] and raised to at least [`MIN_FRAME_LEN`].
    pub fn new(max_frame_len: u32) -> Self {
        Self {
            max_frame_len: max_frame_len.clamp(MIN_FRAME_LEN, MAX_FRAME_LEN_LIMIT),
        }
    }

    /// The limit on `total_length`.
    pub fn max_frame_len(&self) -> u32 {
        self.max_frame_len
    }

    /// See [`decode_frame`].
    #[inline]
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        decode_frame(buf, self.max_frame_len)
    }

    /// Splits off and parses the first whole packet of `buf`; see [`decode_frame`].
    #[inline]
    pub fn decode_packet(&self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        match decode_frame(buf, self.max_frame_len)? {
            Some(frame) => frame.decode_packet().map(Some),
            None => Ok(None),
        }
    }
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_LEN)
    }
}
