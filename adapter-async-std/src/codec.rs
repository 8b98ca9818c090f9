//! asynchronous-codec's `Decoder` / `Encoder` for the protocol's packets,
//! over adapter-common's [`FrameCodec`] (the core's decoder and encoders,
//! one limit, the same errors): for users who want a `Framed` stream of
//! [`Packet`]s over any `futures-io` stream rather than the state machines.

use bytes::BytesMut;
use protocol::Packet;

pub use adapter_common::codec::{CodecError, FrameCodec};

/// Packets to and from frames for `asynchronous_codec::Framed`, e.g. the
/// acks a server sends, read from any `futures-io` stream:
///
/// ```no_run
/// # async fn acks(stream: async_io::Async<std::net::TcpStream>) -> Result<(), adapter_async_std::CodecError> {
/// use futures_lite::StreamExt as _;
/// let mut packets = asynchronous_codec::FramedRead::new(stream, adapter_async_std::PacketCodec::default());
/// while let Some(packet) = packets.next().await {
///     println!("{:?}", packet?);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacketCodec(pub FrameCodec);

impl PacketCodec {
    /// A codec with this limit on `total_length` (default 8 MiB).
    pub fn new(max_frame_len: u32) -> Self {
        Self(FrameCodec::new(max_frame_len))
    }
}

impl asynchronous_codec::Decoder for PacketCodec {
    type Item = Packet;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, CodecError> {
        self.0.decode(src)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, CodecError> {
        self.0.decode_eof(src)
    }
}

impl asynchronous_codec::Encoder for PacketCodec {
    type Item<'a> = Packet;
    type Error = CodecError;

    fn encode(&mut self, packet: Packet, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.0.encode(&packet, dst)
    }
}
