//! The protocol over blocking `std::net` and `std::os::unix::net` sockets:
//! a thread per connection, no async runtime, no poller.
//!
//! It is for programs that have no runtime, and it is the honest baseline
//! of the Go original's "thread per connection" model. Like every adapter
//! it is a driver loop plus socket glue: framing, ordering, limits,
//! timeouts, the lingering close and the shutdown deadline are the
//! [`protocol`] core's; admission, the shutdown fan-out, the drain, the
//! totals, the client's waiters, the endpoints and the [`Handler`] are
//! `adapter_common`'s, shared with the async adapters. This crate owns the
//! threads, the blocking socket calls and the binary.
//!
//! # Server
//!
//! [`Server::bind`] a TCP address or a Unix path with [`ServerOptions`] and
//! a [`Handler`] (a plain `|req: &Request| AckResult` closure will do; see
//! [`Server`] for `Reply::Later`), then [`Server::run`] it or
//! [`Server::spawn`] it. Each connection thread runs **the run loop of the
//! `protocol` crate docs** ("the loop below is the one the blocking std
//! adapter runs"), line for line in shape: drain the core's events (answer
//! requests, shut the write side down on `ShutdownWrite`, stop on
//! `Closed`); take the wait from `poll_timeout`; write what is pending,
//! else read while the core `wants_input`, else nap; a socket timeout is
//! `handle_timeout`, any other error `handle_io_error`. What std adds:
//! the socket timeouts are set only when they change, and a shutdown is
//! seen by the loop itself (the supervisor wakes a thread blocked in
//! `read` with `shutdown(Read)`; the thread then calls the core's
//! `close(now, Some(deadline))` once, and ends the lingering close at
//! once: with the read side shut, the kernel no longer reopens the
//! receive window as the loop reads, so a peer still sending would stall
//! until the deadline; the kernel resets it instead).
//!
//! Output is written before anything more is read, so a peer that does
//! not read stops being read from (its memory stays bounded), and the
//! other connections, on their own threads, go on.
//!
//! ```no_run
//! use adapter_std::{Served as _, Server, ServerOptions};
//! use protocol::{AckResult, Request};
//!
//! let endpoint = "127.0.0.1:8888".parse().unwrap();
//! let server = Server::bind(&endpoint, ServerOptions::default(), |_: &Request| AckResult::OK)?;
//! let stop = server.shutdown_handle(); // e.g. for a signal thread
//! # stop.shutdown();
//! server.run()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # What a connection costs
//!
//! A thread: 64 KiB of stack reserved ([`DEFAULT_STACK_SIZE`], see
//! [`Server::stack_size`]), of which about 18 KiB end up resident per idle
//! connection (measured with 1000 idle connections; the 8 KiB read buffer
//! lives on that stack, so the heap holds nothing for an idle connection),
//! plus the kernel's own per-thread memory. Under load, 1000 connections
//! mean 1000 threads taking turns on the CPUs: the throughput the
//! multiplexed adapters keep at that scale is the argument for them
//! (`docs/PROTOCOL.md`, section 10), and this adapter measures it.
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
mod pool;
mod server;
mod timeout;

pub use adapter_common::{Handler, Reply, Served, ServerOptions, ShutdownHandle};
pub use client::{Client, ClientError, ClientOptions, PendingAck};
pub use pool::Pool;
pub use protocol::BackoffConfig;
pub use server::{DEFAULT_STACK_SIZE, Server, ServerHandle};
