//! The tokio driver of the [`protocol`] core: a [`Server`], a [`Client`],
//! and a tokio-util codec ([`PacketCodec`]).
//!
//! Everything the protocol decides (framing, ack order, limits, timeouts)
//! is decided by the core; this crate owns the sockets (TCP and Unix, with
//! their options from [`adapter_common`]), the tasks, the accept loop,
//! graceful shutdown, and logs.
//!
//! # One connection, one task
//!
//! Each server connection is one task running the core's loop:
//!
//! 1. drain: answer every request the core hands out (a [`Handler`] that
//!    answers at once is answered inline; async answers are awaited
//!    concurrently on the same task), then write everything pending in one
//!    `write`;
//! 2. wait for the first of: an async answer, the shutdown signal, the one
//!    timer armed from `poll_timeout`, readability (only while the core
//!    `wants_input`), writability (only while output is pending);
//! 3. feed what happened to the core (`handle_input_appended`, `handle_eof`,
//!    `handle_timeout`, `close`) and go to 1.
//!
//! Once the core is closed, a peer that may still be sending (no EOF seen)
//! gets FIN after its acks and a short linger (input read and discarded
//! until it closes or falls quiet), so that no ack is lost to a reset.
//!
//! The task waits for readability without a buffer and asks the core for
//! its input buffer only when there is something to read, so an idle
//! connection holds no read buffer; the core gives its buffers back when
//! they empty.
//!
//! # Example
//!
//! ```no_run
//! use adapter_tokio::{Client, Server, ServerOptions};
//! use adapter_common::Endpoint;
//! use protocol::{AckResult, ClientConfig, Request};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let endpoint: Endpoint = "127.0.0.1:0".parse()?;
//! let handler = |req: &Request| if req.payload.is_empty() { AckResult::ERROR } else { AckResult::OK };
//! let server = Server::bind(&endpoint, ServerOptions::default(), handler)?;
//! let endpoint = server.local_endpoint().clone();
//! let shutdown = server.shutdown_handle();
//! let serving = tokio::spawn(server.run());
//!
//! let client = Client::connect(&endpoint, ClientConfig::default()).await?;
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

pub mod bench;
mod client;
mod codec;
mod io;
mod server;

pub use adapter_common::handler::{AckAll, AsyncFn, Handler, Reply};
pub use client::{Client, ClientError, PendingAck};
pub use codec::{CodecError, PacketCodec};
pub use server::{DEFAULT_MAX_CONNECTIONS, Server, ServerOptions, ShutdownHandle};

#[doc(no_inline)]
pub use adapter_common::{Endpoint, SocketOptions};
