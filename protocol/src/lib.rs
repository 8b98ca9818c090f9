//! The sans-IO core of a length-prefixed binary request/response protocol.
//!
//! This crate performs no I/O, spawns nothing and reads no clock: bytes go
//! in, packets and bytes come out, and time is passed in as `now`. Adapters
//! (blocking std sockets, tokio, async-std/smol) drive it; framing,
//! ordering, limits and timeouts are decided here, once.
//!
//! # The wire
//!
//! ```text
//! frame:   +----------------------+-----------------------------------+
//!          | total_length: u32 BE |  packet: total_length - 4 bytes   |
//!          +----------------------+-----------------------------------+
//! packet:  +-----------------+----------------------------------------+
//!          | command_id: u8  | body                                   |
//!          +-----------------+----------------------------------------+
//!
//! 0x01 Conn       client -> server   id (8 B) + payload (0..n B)
//! 0x02 Submit     client -> server   id (8 B) + payload (0..n B)
//! 0x81 ConnAck    server -> client   id (8 B) + result (1 B)
//! 0x82 SubmitAck  server -> client   id (8 B) + result (1 B)
//! ```
//!
//! `total_length` counts its own 4 bytes. A length below 5 or above the
//! configured `max_frame_len` is an error found from the 4 header bytes
//! alone, before anything is reserved for it.
//!
//! # Layers
//!
//! The modules build on each other, bottom first: the wire's vocabulary
//! ([`MessageId`], [`CommandId`], [`AckResult`], the lengths), errors,
//! the codec ([`decode`], the one decoder; [`encode_request`],
//! [`encode_ack`] and [`Packet::encode`]), configuration
//! ([`ServerConfig`], [`ClientConfig`], checked by `validate`), and the
//! state machines of one connection, [`ServerConnection`] and
//! [`ClientConnection`]: pipelining, ack ordering, backpressure, timeouts,
//! the lingering close and the shutdown deadline. The specification is
//! `docs/PROTOCOL.md` in the repository.
//!
//! # The run loop
//!
//! One way in for bytes (`handle_input`, or `input_buffer` then
//! `handle_input_appended` to read in place), one way out
//! ([`ServerConnection::transmit_buf`], then `handle_written`), one timer
//! ([`ServerConnection::poll_timeout`], then `handle_timeout`), and one
//! queue of events ([`ServerConnection::poll_event`]): requests, the
//! lingering close's FIN, and the end with its reason. After every
//! `handle_*` call, drain the events; read only while
//! [`ServerConnection::wants_input`]. The loop below is the one the
//! blocking std adapter runs, a thread per connection:
//!
//! ```no_run
//! use std::io::{ErrorKind, Read, Write};
//! use std::net::{Shutdown, TcpListener};
//! use std::time::{Duration, Instant};
//!
//! use protocol::{AckResult, CloseReason, ServerConfig, ServerConnection, ServerEvent};
//!
//! fn serve(mut stream: std::net::TcpStream) -> std::io::Result<CloseReason> {
//!     let mut conn = ServerConnection::new(ServerConfig::default(), Instant::now());
//!     let mut buf = [0u8; 8 * 1024];
//!     loop {
//!         // 1. Drain the events: answer requests, send the FIN, see the end.
//!         while let Some(event) = conn.poll_event() {
//!             match event {
//!                 ServerEvent::Request(req) => {
//!                     let result = if req.payload.is_empty() { AckResult::ERROR } else { AckResult::OK };
//!                     conn.respond(req.handle, result, Instant::now()).ok();
//!                 }
//!                 ServerEvent::ShutdownWrite => stream.shutdown(Shutdown::Write).unwrap_or_default(),
//!                 // With `proxy_protocol`: the client behind the load balancer.
//!                 ServerEvent::Proxied(header) => eprintln!("proxied: {header:?}"),
//!                 ServerEvent::Closed(reason) => return Ok(reason),
//!             }
//!         }
//!         // 2. Wait no longer than the next timer.
//!         let now = Instant::now();
//!         let wait = conn.poll_timeout().map(|t| t.saturating_duration_since(now).max(Duration::from_millis(1)));
//!         // 3. Write what is pending, else read while the connection wants input.
//!         let io = if !conn.transmit_buf().is_empty() {
//!             stream.set_write_timeout(wait)?;
//!             stream.write(conn.transmit_buf()).map(|n| conn.handle_written(n, Instant::now()))
//!         } else if conn.wants_input() {
//!             stream.set_read_timeout(wait)?;
//!             stream.read(&mut buf).map(|n| match buf.get(..n) {
//!                 Some([]) | None => conn.handle_eof(Instant::now()),
//!                 Some(data) => conn.handle_input(data, Instant::now()),
//!             })
//!         } else {
//!             std::thread::sleep(wait.unwrap_or(Duration::from_millis(10)));
//!             Ok(conn.handle_timeout(Instant::now()))
//!         };
//!         // 4. A socket timeout is the timer firing; any other error ends the connection.
//!         match io {
//!             Ok(()) => {}
//!             Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
//!                 conn.handle_timeout(Instant::now())
//!             }
//!             Err(e) if e.kind() == ErrorKind::Interrupted => {}
//!             Err(e) => conn.handle_io_error(e.kind()),
//!         }
//!     }
//! }
//!
//! fn main() -> std::io::Result<()> {
//!     let listener = TcpListener::bind("127.0.0.1:8888")?;
//!     let (stream, peer) = listener.accept()?;
//!     println!("{peer}: closed: {}", serve(stream)?);
//!     Ok(())
//! }
//! ```
//!
//! A server shutting down calls [`ServerConnection::close`] with its
//! deadline; the same loop then answers what was received, flushes,
//! lingers if it must, and ends by the deadline. The client side,
//! [`ClientConnection`], has the same shape: `submit` queues a request,
//! acks and the end come out of its `poll_event`.
//!
//! # Limits and their defaults
//!
//! | limit | default | where |
//! |---|---|---|
//! | `max_frame_len` | 8 MiB (13 to 2^31-1 on a server, 14 to 2^31-1 on a client) | [`ServerConfig`], [`ClientConfig`], [`decode`] |
//! | `high_water` / `low_water` (unsent output) | 1 MiB / 256 KiB | [`ServerConfig`] |
//! | `max_pending_requests` (unanswered) | 1024 | [`ServerConfig`] |
//! | `idle_timeout` | off | [`ServerConfig`] |
//! | `frame_timeout` (slowloris) | 30 s | [`ServerConfig`] |
//! | `write_stall_timeout` | 30 s | [`ServerConfig`], [`ClientConfig`] |
//! | `require_conn` | false | [`ServerConfig`] |
//! | `linger` / `linger_quiet` (lingering close, see [`ServerEvent::ShutdownWrite`]) | 2 s / 250 ms | [`ServerConfig`] |
//! | `max_connections` (server-wide) | 10,000 | [`ServerConfig`] |
//! | `shutdown_timeout` (server-wide) | 10 s | [`ServerConfig`] |
//! | `max_in_flight` | 4096 | [`ClientConfig`] |
//! | `response_timeout` | 30 s | [`ClientConfig`] |
//!
//! Receive buffers grow in steps of at most 64 KiB whatever a peer declares,
//! are given back when they empty (an idle connection holds none), and send
//! buffers above 64 KiB are given back when they drain.
//!
//! # Errors
//!
//! [`DecodeError`] is the peer's fault (bad bytes); [`EncodeError`],
//! [`RespondError`], [`SubmitError`] and [`ConfigError`] are the caller's.
//! Every connection that ends says why with a [`CloseReason`]. No input
//! makes this crate panic.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod buffers;
mod client;
mod codec;
mod config;
mod error;
mod proxy;
mod reconnect;
mod server;
mod wire;

#[cfg(feature = "proptest")]
pub mod strategy;

/// The README's code blocks, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

pub use buffers::ConnectionStats;
pub use client::{Ack, ClientConnection, ClientEvent};
pub use codec::{Packet, decode, encode_ack, encode_request};
pub use config::{ClientConfig, ServerConfig};
pub use error::{
    CloseReason, ConfigError, DecodeError, EncodeError, RespondError, Setting, SubmitError,
};
pub use proxy::{
    PROXY_V1_MAX_LEN, PROXY_V2_MAX_LEN, PROXY_V2_SIGNATURE, ProxyError, ProxyHeader,
    decode_proxy_header,
};
pub use reconnect::{Backoff, BackoffConfig, pick_two};
pub use server::{PeerIdentity, Request, ServerConnection, ServerEvent};
pub use wire::{
    ACK_FRAME_LEN, AckResult, CommandId, DEFAULT_MAX_FRAME_LEN, HEADER_LEN, ID_LEN, IdGenerator,
    MAX_FRAME_LEN_LIMIT, MIN_FRAME_LEN, MessageId, REQUEST_OVERHEAD, RequestHandle, RequestKind,
    Side,
};
