//! The protocol over blocking `std::net` and `std::os::unix::net` sockets:
//! a thread per connection, no async runtime, no poller.
//!
//! It is for programs that have no runtime, and it is the honest baseline
//! of the Go original's "thread per connection" model. Like every adapter it is
//! thin: framing, ordering, limits and timeouts are decided by the
//! [`protocol`] core; this crate owns the sockets, the threads, the accept
//! loop, graceful shutdown and the binary.
//!
//! # Server
//!
//! [`Server::bind`] a TCP address or a Unix path with a handler (a plain
//! `Fn(&Request) -> AckResult`, shared by every connection thread), then
//! [`Server::run`] it or [`Server::spawn`] it. Each connection thread runs
//! the core's loop over its blocking socket:
//!
//! 1. answer every request the core hands out (`poll_event`, `respond`);
//! 2. fire the core's timer if it is due (`poll_timeout`, `handle_timeout`);
//! 3. write what is pending (`transmit_buf`, `handle_written`) with a
//!    socket write timeout taken from the core's timer, so its write-stall
//!    timeout ends a connection whose peer does not read;
//! 4. only while the core `wants_input`, read with a read timeout taken
//!    from the same timer (`None` blocks), then `handle_input` /
//!    `handle_eof` / `handle_timeout`;
//! 5. close the socket once the core `is_closed`.
//!
//! Output is written before anything more is read, so a peer that does
//! not read stops being read from (its memory stays bounded), and the
//! other connections, on their own threads, go on.
//!
//! Shutdown ([`ShutdownHandle::shutdown`], or SIGINT/SIGTERM in the
//! binary): the accept loop stops; every connection thread is woken
//! (`shutdown(Read)` on its socket) and calls the core's `close(now)`, which
//! answers every request received, flushes and ends; after
//! [`ServerOptions::shutdown_timeout`] the remaining sockets are cut.
//!
//! ```no_run
//! use adapter_std::{Server, ServerOptions};
//! use protocol::AckResult;
//!
//! let endpoint = "127.0.0.1:8888".parse().unwrap();
//! let server = Server::bind(&endpoint, ServerOptions::default(), |_req| AckResult::OK)?;
//! let stop = server.shutdown_handle(); // e.g. for a signal thread
//! # stop.shutdown();
//! server.run()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # What a connection costs
//!
//! A thread: 64 KiB of stack reserved ([`ServerOptions::stack_size`]), of
//! which about 18 KiB end up resident per idle connection (measured with
//! 1000 idle connections; the 8 KiB read buffer lives on that stack, so the
//! heap holds nothing for an idle connection), plus the kernel's own
//! per-thread memory. Under load, 1000 connections mean 1000 threads taking
//! turns on the CPUs: the throughput the multiplexed adapters keep at that
//! scale is the argument for them (`docs/PROTOCOL.md`, section 10), and
//! this adapter measures it.
//!
//! # Client
//!
//! [`Client`]: `submit` (send and wait), `send` / `send_all` (pipelined:
//! send many, take the acks in order later), usable from many threads over
//! one connection: one writer lock keeps frames whole and in order, one
//! reader thread hands each ack to its waiter (see [`client`] for the design).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
mod server;
mod stream;

pub use client::{Client, ClientError, ClientOptions, PendingAck};
pub use server::{Handler, Server, ServerHandle, ServerOptions, ShutdownHandle};
