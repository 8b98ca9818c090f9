//! The stream codec behind the ecosystems' framing traits (tokio-util's
//! `Decoder`/`Encoder` with feature `tokio-codec`, adapter-tokio's
//! `PacketCodec`; asynchronous-codec's with feature `futures-codec`,
//! adapter-async-std's): the core's one decoder and its encoders, with one
//! limit for both directions, written once. A framed stream gives packets
//! only; pipelining order, ids and timeouts are then the user's (the
//! servers and clients take them from the core's state machines instead).

use std::io;

use bytes::BytesMut;
use protocol::{
    DEFAULT_MAX_FRAME_LEN, DecodeError, EncodeError, MAX_FRAME_LEN_LIMIT, MIN_FRAME_LEN, Packet,
};

/// What a framed stream can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The peer sent bytes that are not the protocol (fatal for the stream).
    #[error("protocol error: {0}")]
    Decode(#[from] DecodeError),
    /// A packet to send is over the limit.
    #[error("cannot encode packet: {0}")]
    Encode(#[from] EncodeError),
    /// The stream ended in the middle of a frame.
    #[error("stream ended in the middle of a frame ({buffered} bytes of it received)")]
    Truncated {
        /// Bytes of the incomplete frame that arrived.
        buffered: usize,
    },
    /// The underlying stream failed.
    #[error("io error: {0}")]
    Io(#[from] io::Error),
}

/// Packets to and from frames, with one limit on `total_length` (default
/// 8 MiB) that decoding checks from the 4 header bytes alone and encoding
/// refuses to exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameCodec {
    max_frame_len: u32,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_LEN)
    }
}

impl FrameCodec {
    /// A codec with this limit, kept within 5..=2^31-1.
    pub fn new(max_frame_len: u32) -> Self {
        Self {
            max_frame_len: max_frame_len.clamp(MIN_FRAME_LEN, MAX_FRAME_LEN_LIMIT),
        }
    }

    /// The limit on `total_length`.
    pub fn max_frame_len(&self) -> u32 {
        self.max_frame_len
    }

    /// The next whole packet of `src`, `None` until one is there.
    pub fn decode_packet(&self, src: &mut BytesMut) -> Result<Option<Packet>, CodecError> {
        Ok(protocol::decode(src, self.max_frame_len)?)
    }

    /// At the end of the stream: the last packet, `None` when nothing is
    /// left, an error when part of a frame is.
    pub fn decode_last_packet(&self, src: &mut BytesMut) -> Result<Option<Packet>, CodecError> {
        match self.decode_packet(src)? {
            Some(packet) => Ok(Some(packet)),
            None if src.is_empty() => Ok(None),
            None => Err(CodecError::Truncated {
                buffered: src.len(),
            }),
        }
    }

    /// Appends `packet`'s frame to `dst`, refusing one over the limit.
    pub fn encode_packet(&self, packet: &Packet, dst: &mut BytesMut) -> Result<(), CodecError> {
        let len = packet.frame_len();
        let max = self.max_frame_len;
        if u32::try_from(len).map_or(true, |l| l > max) {
            return Err(EncodeError::FrameTooLong { len, max }.into());
        }
        Ok(packet.encode(dst)?)
    }
}

/// One ecosystem's `Decoder` for [`FrameCodec`]: its `decode_*` methods.
/// (Named apart from the traits' methods, so a caller with a trait in
/// scope gets the trait's.)
#[cfg(any(feature = "tokio-codec", feature = "futures-codec"))]
macro_rules! decoder {
    ($decoder:path) => {
        impl $decoder for FrameCodec {
            type Item = Packet;
            type Error = CodecError;

            fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, CodecError> {
                self.decode_packet(src)
            }

            fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, CodecError> {
                self.decode_last_packet(src)
            }
        }
    };
}

#[cfg(feature = "tokio-codec")]
decoder!(tokio_util::codec::Decoder);

/// One `Encoder` impl only (not also `Encoder<&Packet>`): with two, calls
/// such as `framed.flush()` would need a type annotation. A `Packet` is
/// cheap to clone (its payload is a `Bytes`).
#[cfg(feature = "tokio-codec")]
impl tokio_util::codec::Encoder<Packet> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, packet: Packet, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.encode_packet(&packet, dst)
    }
}

#[cfg(feature = "futures-codec")]
decoder!(asynchronous_codec::Decoder);

#[cfg(feature = "futures-codec")]
impl asynchronous_codec::Encoder for FrameCodec {
    type Item<'a> = Packet;
    type Error = CodecError;

    fn encode(&mut self, packet: Packet, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.encode_packet(&packet, dst)
    }
}
