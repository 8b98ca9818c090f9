//! async-std and smol behind adapter-common's runtime seam, plus an
//! asynchronous-codec codec. The server, the connection driver and the
//! client are adapter-common's, written once for every async runtime;
//! this crate says how async-std and smol spawn, and how async-io (the
//! reactor both run) accepts, reads, writes and sleeps:
//!
//! - `async-std` (default): [`AsyncStd`]. async-std is discontinued
//!   upstream (the crate is deprecated in favour of smol); it stays
//!   because users asked for it.
//! - `smol`: [`Smol`], the maintained runtime built on the same parts
//!   (async-io, async-executor).
//!
//! Both features can be on at once: the binary then picks with the
//! `ADAPTER_RUNTIME` environment variable, and the tests run on both. The
//! [`runtime`] module says where tasks run and how a read is done.
//!
//! # The codec
//!
//! For users who want a `Framed` stream of packets over any `futures-io`
//! stream rather than the state machines: [`PacketCodec`] is
//! adapter-common's [`FrameCodec`] with asynchronous-codec's
//! `Decoder`/`Encoder` (the core's decoder and encoders, one limit, the
//! same errors), e.g. the acks a server sends:
//!
//! ```no_run
//! # async fn acks(stream: async_io::Async<std::net::TcpStream>) -> Result<(), adapter_async_std::CodecError> {
//! use futures_lite::StreamExt as _;
//! let mut packets = asynchronous_codec::FramedRead::new(stream, adapter_async_std::PacketCodec::default());
//! while let Some(packet) = packets.next().await {
//!     println!("{:?}", packet?);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Example
//!
//! ```no_run
//! # #[cfg(feature = "async-std")] {
//! use adapter_async_std::runtime::BlockOn as _;
//! use adapter_async_std::{AsyncStd, Client, Endpoint, Served as _, Server, ServerOptions};
//! use adapter_common::Runtime as _;
//! use protocol::{AckResult, ClientConfig, Request};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rt = AsyncStd; // or Smol::global()
//! let endpoint: Endpoint = "127.0.0.1:0".parse()?;
//! let handler = |req: &Request| if req.payload.is_empty() { AckResult::ERROR } else { AckResult::OK };
//! let server = Server::bind(rt, &endpoint, ServerOptions::default(), handler)?;
//! let endpoint = server.local_endpoint().clone();
//! let shutdown = server.shutdown_handle();
//! rt.spawn(async move { let _ = server.run().await; });
//! rt.block_on(async {
//!     let client = Client::connect(&rt, &endpoint, ClientConfig::default()).await?;
//!     let ack = client.submit("hello").await?;
//!     assert!(ack.result.is_ok());
//!     client.close().await
//! })?;
//! shutdown.shutdown();
//! # Ok(())
//! # }
//! # }
//! ```

#![warn(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(not(any(feature = "async-std", feature = "smol")))]
compile_error!("adapter-async-std needs a runtime: enable feature `async-std` or `smol` (or both)");

pub mod runtime;

/// Packets to and from frames for `asynchronous_codec::Framed` (see [the
/// codec](crate#the-codec)).
pub use adapter_common::codec::FrameCodec as PacketCodec;
pub use adapter_common::codec::{CodecError, FrameCodec};
pub use adapter_common::{
    AckAll, AsyncFn, Client, ClientError, Endpoint, Handler, PendingAck, Pool, PoolOptions, Reply,
    Served, Server, ServerOptions, ShutdownHandle, SocketOptions,
};
pub use protocol::BackoffConfig;
#[cfg(feature = "async-std")]
pub use runtime::AsyncStd;
#[cfg(feature = "smol")]
pub use runtime::Smol;
