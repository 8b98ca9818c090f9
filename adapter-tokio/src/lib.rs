//! The tokio adapter of the [`protocol`] core: tokio behind
//! [`adapter_common`]'s runtime seam ([`Tokio`]), a tokio-util codec
//! ([`PacketCodec`]), and the `adapter-tokio` binary (`serve`, `submit`,
//! and the load generator `bench`).
//!
//! The server, the connection driver and the client are adapter-common's,
//! written once for every async runtime; this crate only says how tokio
//! accepts, reads, writes, sleeps and spawns. Everything the protocol
//! decides (framing, ack order, limits, timeouts, the lingering close, the
//! shutdown deadline) is decided by the core.
//!
//! # One connection, one task
//!
//! Each server connection is one task running the driver loop
//! ([`adapter_common::server::serve`]): drain the core's events (answer
//! requests inline, or concurrently on the same task when the handler
//! answers later; send the lingering close's FIN; stop at the end), write
//! what is pending, read while the core wants input (waiting for
//! readiness without a buffer, so an idle connection holds none), and arm
//! the one timer from `poll_timeout`.
//!
//! # The codec
//!
//! For users who already use `Framed`: [`PacketCodec`] is adapter-common's
//! [`FrameCodec`](adapter_common::codec::FrameCodec) with tokio-util's
//! `Decoder`/`Encoder` (the core's decoder and encoders, the same limits
//! and errors, no framing logic here):
//!
//! ```
//! use adapter_tokio::PacketCodec;
//! use tokio_util::codec::Decoder;
//! let mut codec = PacketCodec::new(1024);
//! let mut buf = bytes::BytesMut::from(&[0, 0, 0, 4][..]);
//! assert!(codec.decode(&mut buf).is_err()); // a length below 5: refused
//! ```
//!
//! # Example
//!
//! ```no_run
//! use adapter_tokio::{Client, Served as _, Server, ServerOptions, Tokio};
//! use adapter_common::Endpoint;
//! use protocol::{AckResult, ClientConfig, Request};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let endpoint: Endpoint = "127.0.0.1:0".parse()?;
//! let handler = |req: &Request| if req.payload.is_empty() { AckResult::ERROR } else { AckResult::OK };
//! let server = Server::bind(Tokio, &endpoint, ServerOptions::default(), handler)?;
//! let endpoint = server.local_endpoint().clone();
//! let shutdown = server.shutdown_handle();
//! let serving = tokio::spawn(server.run());
//!
//! let client = Client::connect(&Tokio, &endpoint, ClientConfig::default()).await?;
//! let ack = client.submit("hello").await?;
//! assert!(ack.result.is_ok());
//! client.close().await?;
//!
//! shutdown.shutdown();
//! serving.await??;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod runtime;

/// Packets to and from frames for `tokio_util::codec::Framed` (see [the
/// codec](crate#the-codec)).
pub use adapter_common::codec::{CodecError, FrameCodec as PacketCodec};
pub use adapter_common::{
    AckAll, AsyncFn, Client, ClientError, Endpoint, Handler, PendingAck, PoolOptions, Reply,
    Served, ServerOptions, ShutdownHandle, SocketOptions,
};
pub use protocol::BackoffConfig;
pub use runtime::{Tokio, TokioSocket, TokioTimer};

/// The server on tokio: `Server::bind(Tokio, &endpoint, options, handler)`.
pub type Server<H> = adapter_common::Server<Tokio, H>;

/// A client over several servers that reconnects, on tokio:
/// `Pool::connect(&Tokio, endpoints, options)`.
pub type Pool = adapter_common::Pool<Tokio>;
