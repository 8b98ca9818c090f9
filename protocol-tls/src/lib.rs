//! TLS under the protocol core, sans-IO, written once for every adapter.
//!
//! # How the layers compose
//!
//! rustls' connection is itself sans-IO: ciphertext in (`read_tls`),
//! plaintext out (`reader`), plaintext in (`writer`), ciphertext out
//! (`write_tls`). The protocol's [`ServerConnection`](protocol::ServerConnection)
//! and [`ClientConnection`](protocol::ClientConnection) are too. [`Tls`]
//! stacks them and offers the driver the plain core's byte surface
//! (`input_buffer` / `handle_input_appended` / `handle_input` /
//! `handle_eof`, `transmit` / `handle_written`, `wants_input`), so an
//! adapter's driver loop runs unchanged over either: no IO wrapper per
//! runtime (as tokio-rustls and futures-rustls are), and the layering is
//! tested in memory once.
//!
//! The rules stay the core's:
//!
//! - **The handshake timeout** is the core's
//!   ([`ServerConfig::handshake_timeout`](protocol::ServerConfig::handshake_timeout)):
//!   [`ServerTls::accept`] starts it, the layer ends it when rustls
//!   finishes, and the core's `poll_timeout` / `handle_timeout` close a
//!   stalled one ([`CloseReason::HandshakeTimeout`](protocol::CloseReason::HandshakeTimeout)).
//! - **Backpressure** is the core's: plaintext reaches the core only while
//!   it wants input, rustls' plaintext buffer then fills and the layer
//!   stops asking for ciphertext (at most two records wait).
//! - **Output is credited when its records are written**, not when
//!   rustls takes it: the core's unsent output, its high-water mark and
//!   its write-stall timeout see the peer that does not read. At most
//!   64 KiB of ciphertext is queued beyond the core's own buffer.
//! - **The end:** the socket's end of stream reaches the core once every
//!   byte before it did; a close_notify counts as the end too. The
//!   lingering close sends close_notify before its FIN. A TLS failure (a
//!   plaintext peer, a refused certificate) ends the core with
//!   [`CloseReason::Tls`](protocol::CloseReason::Tls).
//! - **Identity:** a verified client certificate's name (see
//!   [`PeerIdentity`](protocol::PeerIdentity)) reaches the core at the end
//!   of the handshake and comes with every request.
//!
//! Memory per connection: rustls' state and its record buffers (about
//! 17 KiB each way while data flows), plus at most two records of
//! ciphertext in and 64 KiB out; idle buffers are given back.

mod config;
mod identity;
mod layer;
mod sides;

pub use config::{ALPN, ClientTls, PemRole, ServerTls, TlsConfigError};
pub use layer::{Core, Tls};
pub use rustls;
pub use sides::{TlsClient, TlsServer};
