//! tokio-util [`Decoder`] / [`Encoder`] for users who already use
//! `Framed`, over adapter-common's [`FrameCodec`]: the core's decoder and
//! encoders, the same limits and errors, no framing logic here.

use bytes::BytesMut;
use protocol::Packet;
use tokio_util::codec::{Decoder, Encoder};

pub use adapter_common::codec::{CodecError, FrameCodec};

/// Packets to and from frames for `tokio_util::codec::Framed`.
///
/// ```
/// use adapter_tokio::PacketCodec;
/// use tokio_util::codec::Decoder;
/// let mut codec = PacketCodec::new(1024);
/// let mut buf = bytes::BytesMut::from(&[0, 0, 0, 4][..]);
/// assert!(codec.decode(&mut buf).is_err()); // a length below 5: refused
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacketCodec(pub FrameCodec);

impl PacketCodec {
    /// A codec with this limit on `total_length` (default 8 MiB).
    pub fn new(max_frame_len: u32) -> Self {
        Self(FrameCodec::new(max_frame_len))
    }
}

impl Decoder for PacketCodec {
    type Item = Packet;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, CodecError> {
        self.0.decode(src)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, CodecError> {
        self.0.decode_eof(src)
    }
}

/// One `Encoder` impl only (not also `Encoder<&Packet>`): with two, calls
/// such as `framed.flush()` would need a type annotation. A `Packet` is
/// cheap to clone (its payload is a `Bytes`).
impl Encoder<Packet> for PacketCodec {
    type Error = CodecError;

    fn encode(&mut self, packet: Packet, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.0.encode(&packet, dst)
    }
}
