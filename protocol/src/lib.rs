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
//! - [`decode_frame`] / [`encode_frame`]: the frame layer over a
//!   [`bytes::BytesMut`]; `Ok(None)` means "need more bytes".
//! - [`Packet`]: the four packets, decoded from a frame without copying the
//!   payload; [`encode_request`] and [`encode_ack`] write whole frames.
//! - [`ServerConnection`] and [`ClientConnection`]: the state machines of one
//!   connection: pipelining, ack ordering, backpressure, timeouts, shutdown.
//!
//! # The run loop
//!
//! After every `handle_*` call, drain the `poll_*` calls until they are
//! empty: [`ServerConnection::poll_event`] until `None` (answer each request
//! with [`ServerConnection::respond`], now or later), write what
//! [`ServerConnection::transmit_buf`] holds and report it with
//! [`ServerConnection::handle_written`] (or move it all out with
//! [`ServerConnection::poll_transmit`]), and arm one timer at
//! [`ServerConnection::poll_timeout`], calling
//! [`ServerConnection::handle_timeout`] when it fires. Read only while
//! [`ServerConnection::wants_input`] is true; close the socket once
//! [`ServerConnection::is_closed`].
//!
//! A complete blocking server connection over a `TcpStream`:
//!
//! ```no_run
//! use std::io::{ErrorKind, Read, Write};
//! use std::net::{Shutdown, TcpListener};
//! use std::time::{Duration, Instant};
//!
//! use protocol::{AckResult, CloseMode, ServerConfig, ServerConnection};
//!
//! fn main() -> std::io::Result<()> {
//!     let listener = TcpListener::bind("127.0.0.1:8888")?;
//!     let (mut stream, peer) = listener.accept()?;
//!     let mut conn = ServerConnection::new(ServerConfig::default(), Instant::now());
//!     let mut buf = [0u8; 16 * 1024];
//!     while !conn.is_closed() {
//!         // 1. Drain: answer every request, write every pending byte.
//!         while let Some(req) = conn.poll_event() {
//!             println!("{peer}: {:?} id={} {} bytes", req.kind, req.id, req.payload.len());
//!             conn.respond(req.handle, AckResult::OK, Instant::now())
//!                 .expect("the handle came from this connection");
//!         }
//!         while !conn.transmit_buf().is_empty() {
//!             let n = stream.write(conn.transmit_buf())?;
//!             conn.handle_written(n, Instant::now());
//!         }
//!         if conn.is_closed() {
//!             break;
//!         }
//!         // 2. Wait for input or for the next timer.
//!         let now = Instant::now();
//!         let wait = conn.poll_timeout().map(|t| t.saturating_duration_since(now));
//!         stream.set_read_timeout(wait.map(|d| d.max(Duration::from_millis(1))))?;
//!         match stream.read(&mut buf) {
//!             Ok(0) => conn.handle_eof(Instant::now()),
//!             Ok(n) => conn.handle_input(&buf[..n], Instant::now()),
//!             Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
//!                 conn.handle_timeout(Instant::now())
//!             }
//!             Err(e) => return Err(e),
//!         }
//!     }
//!     println!("{peer}: closed: {:?}", conn.close_reason());
//!     // 3. Close without letting a reset destroy acks the peer has not read.
//!     if let CloseMode::Linger { max, quiet } = conn.close_mode() {
//!         stream.shutdown(Shutdown::Write).ok();
//!         let until = Instant::now() + max;
//!         stream.set_read_timeout(Some(quiet))?;
//!         while Instant::now() < until && matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
//!     }
//!     stream.shutdown(Shutdown::Both).ok();
//!     Ok(())
//! }
//! ```
//!
//! (The loop above always reads, since it never leaves output unwritten;
//! an adapter that writes without blocking checks
//! [`ServerConnection::wants_input`] before reading.)
//!
//! # Limits and their defaults
//!
//! | limit | default | where |
//! |---|---|---|
//! | `max_frame_len` | 8 MiB | [`ServerConfig`], [`ClientConfig`], [`FrameDecoder`] |
//! | `high_water` / `low_water` (unsent output) | 1 MiB / 256 KiB | [`ServerConfig`] |
//! | `max_pending_requests` (unanswered) | 1024 | [`ServerConfig`] |
//! | `idle_timeout` | off | [`ServerConfig`] |
//! | `frame_timeout` (slowloris) | 30 s | [`ServerConfig`] |
//! | `write_stall_timeout` | 30 s | [`ServerConfig`], [`ClientConfig`] |
//! | `require_conn` | false | [`ServerConfig`] |
//! | `linger` / `linger_quiet` (lingering close, see [`CloseMode`]) | 2 s / 250 ms | [`ServerConfig`] |
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
//! [`RespondError`] and [`SubmitError`] are the caller's. Every connection
//! that ends says why with a [`CloseReason`]. No input makes this crate
//! panic.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod buffers;
mod client;
mod error;
mod frame;
mod packet;
mod server;

#[cfg(feature = "proptest")]
pub mod strategy;

pub use buffers::ConnectionStats;
pub use client::{Ack, ClientConfig, ClientConnection};
pub use error::{CloseReason, DecodeError, EncodeError, RespondError, SubmitError};
pub use frame::{
    DEFAULT_MAX_FRAME_LEN, Frame, FrameDecoder, HEADER_LEN, MAX_FRAME_LEN_LIMIT, MIN_FRAME_LEN,
    check_frame_len, decode_frame, encode_frame, peek_frame_len,
};
pub use packet::{
    ACK_BODY_LEN, ACK_FRAME_LEN, AckResult, CommandId, ID_LEN, IdGenerator, MessageId, Packet,
    REQUEST_OVERHEAD, RequestKind, ack_frame, encode_ack, encode_request, request_header,
};
pub use server::{CloseMode, Request, ServerConfig, ServerConnection};
