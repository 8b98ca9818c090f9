//! `asynchronous-codec`'s `Decoder` / `Encoder` for the protocol's packets,
//! delegating to the core's frame and packet layers: for users who want a
//! `Framed` stream of [`Packet`]s over any `futures-io` stream rather than
//! the connection state machines.

use std::io;

use bytes::BytesMut;
use protocol::{DecodeError, EncodeError, FrameDecoder, Packet};

/// What can go wrong reading or writing packets through the codec.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The peer sent bytes that are not the protocol (fatal for the stream).
    #[error("protocol error: {0}")]
    Decode(#[from] DecodeError),
    /// The packet cannot be put on the wire.
    #[error("cannot encode packet: {0}")]
    Encode(#[from] EncodeError),
    /// The stream failed.
    #[error("io error: {0}")]
    Io(#[from] io::Error),
}

/// Frames and parses [`Packet`]s. `decode` returns `Ok(None)` until a whole
/// frame is buffered; a length outside `5..=max_frame_len` is refused from
/// its 4 header bytes alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct PacketCodec {
    frames: FrameDecoder,
}

impl PacketCodec {
    /// A codec that accepts frames up to `max_frame_len` bytes (header included).
    pub fn new(max_frame_len: u32) -> Self {
        Self {
            frames: FrameDecoder::new(max_frame_len),
        }
    }

    /// The limit on a frame's `total_length`.
    pub fn max_frame_len(&self) -> u32 {
        self.frames.max_frame_len()
    }
}

impl asynchronous_codec::Decoder for PacketCodec {
    type Item = Packet;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, CodecError> {
        Ok(self.frames.decode_packet(src)?)
    }
}

impl asynchronous_codec::Encoder for PacketCodec {
    type Item<'a> = Packet;
    type Error = CodecError;

    fn encode(&mut self, item: Packet, dst: &mut BytesMut) -> Result<(), CodecError> {
        let len = item.frame_len();
        if u32::try_from(len).map_or(true, |len| len > self.frames.max_frame_len()) {
            return Err(EncodeError::FrameTooLong {
                len,
                max: self.frames.max_frame_len(),
            }
            .into());
        }
        Ok(item.encode(dst)?)
    }
}
