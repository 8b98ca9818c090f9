//! tokio-util [`Decoder`] / [`Encoder`] for users who already use `Framed`.
//!
//! Both delegate to the core's frame and packet layers: the same limits,
//! the same errors, no framing logic here. A `Framed` stream gives packets
//! only; pipelining order, ids and timeouts are then the user's (the
//! [`Server`](crate::Server) and [`Client`](crate::Client) take them from
//! the core's connection state machines instead).

use std::io;

use bytes::BytesMut;
use protocol::{DecodeError, EncodeError, FrameDecoder, Packet};
use tokio_util::codec::{Decoder, Encoder};

/// Errors of a `Framed` stream of [`Packet`]s.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The peer sent bytes that are not the protocol (fatal for the stream).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The packet cannot be sent (a frame over the limit).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The stream ended in the middle of a frame.
    #[error("stream ended in the middle of a frame ({buffered} bytes of it received)")]
    Truncated {
        /// Bytes of the incomplete frame that arrived.
        buffered: usize,
    },
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Frames and parses [`Packet`]s: `Framed::new(stream, PacketCodec::default())`.
///
/// Decoding splits each frame off the read buffer without copying (the
/// payload of a request is a slice of it) and refuses a length outside
/// `5..=max_frame_len` from the 4 header bytes alone, so a hostile header
/// makes nothing reserve memory. Encoding refuses a frame over the same limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacketCodec {
    decoder: FrameDecoder,
}

impl PacketCodec {
    /// A codec with this limit on `total_length` (default 8 MiB).
    pub fn new(max_frame_len: u32) -> Self {
        Self {
            decoder: FrameDecoder::new(max_frame_len),
        }
    }

    /// The limit on `total_length`.
    pub fn max_frame_len(&self) -> u32 {
        self.decoder.max_frame_len()
    }
}

impl Decoder for PacketCodec {
    type Item = Packet;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, CodecError> {
        Ok(self.decoder.decode_packet(src)?)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, CodecError> {
        match self.decode(src)? {
            Some(packet) => Ok(Some(packet)),
            None if src.is_empty() => Ok(None),
            None => Err(CodecError::Truncated {
                buffered: src.len(),
            }),
        }
    }
}

/// One `Encoder` impl only (not also `Encoder<&Packet>`): with two, calls
/// such as `framed.flush()` would need a type annotation. A `Packet` is
/// cheap to clone (its payload is a `Bytes`).
impl Encoder<Packet> for PacketCodec {
    type Error = CodecError;

    fn encode(&mut self, packet: Packet, dst: &mut BytesMut) -> Result<(), CodecError> {
        let len = packet.frame_len();
        let max = self.max_frame_len();
        if u32::try_from(len).map_or(true, |l| l > max) {
            return Err(EncodeError::FrameTooLong { len, max }.into());
        }
        Ok(packet.encode(dst)?)
    }
}
