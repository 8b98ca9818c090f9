//! The `futures-io` driver of the protocol core: a [`Server`] and a
//! [`Client`] written once against `AsyncRead` + `AsyncWrite` and a small
//! [runtime seam](runtime::Runtime) (spawn, a timer at an instant, a
//! listener, a connect), with two runtimes behind cargo features:
//!
//! - `async-std` (default): [`runtime::AsyncStd`]. async-std is
//!   discontinued upstream (the crate is deprecated in favour of smol); it
//!   stays because users asked for it.
//! - `smol`: [`runtime::Smol`], the maintained runtime built on the same
//!   parts (async-io, async-executor).
//!
//! Both features can be on at once: the binary then picks with the
//! `ADAPTER_RUNTIME` environment variable, and the tests run on both.
//!
//! # What this crate does and does not do
//!
//! It is thin: it reads, hands the bytes to the core, drains the core
//! (`poll_event`, `transmit_buf`, `poll_timeout`), writes, arms one timer,
//! and stops reading while the core does not want input. Framing,
//! ordering, limits and timeouts are the `protocol` crate's. It owns the
//! sockets (TCP and Unix, options from `adapter_common`), the accept loop
//! (accept errors back off, over `max_connections` accept-and-close),
//! graceful shutdown with a deadline, and the log lines.
//!
//! An idle connection holds no read buffer: see the `io` module's docs
//! (reads go through a per-thread scratch buffer borrowed for one
//! `poll_read` call; nothing is held while the read is pending).
//!
//! # Example
//!
//! ```no_run
//! # #[cfg(feature = "async-std")] {
//! use adapter_async_std::runtime::{AsyncStd, Runtime};
//! use adapter_async_std::{Client, Endpoint, Server, ServerOptions};
//! use protocol::{AckResult, ClientConfig, Request};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rt = AsyncStd; // or runtime::Smol::global()
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

mod client;
mod codec;
mod handler;
mod io;
pub mod runtime;
mod server;

pub use adapter_common::handler::{AckAll, AsyncFn, Handler, Reply};
pub use client::{Client, ClientError, PendingAck};
pub use codec::{CodecError, PacketCodec};
pub use server::{DEFAULT_MAX_CONNECTIONS, Server, ServerOptions, ShutdownHandle};

#[doc(no_inline)]
pub use adapter_common::{Endpoint, SocketOptions};
