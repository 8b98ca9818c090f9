//! The client side of the scenarios: blocking std sockets with a timeout on
//! every read, the `protocol` codec, and assertions that say what was
//! expected and what came instead.
//!
//! Every helper that waits takes (or uses) a bound, so a scenario never
//! hangs: a server that does not answer fails the scenario with a message
//! naming the client, the wait, and what the socket did.
//!
//! By what they are:
//!
//! - [`Server`] (`server.rs`): the server a scenario started, shut down
//!   within a bound, its Unix socket file checked and cleaned up.
//! - [`Stream`] (`stream.rs`): a blocking TCP or Unix client socket.
//! - [`TestClient`] (`client.rs`): one connection, its ids and its receive
//!   buffer; connecting, sending, reading one ack, and flooding
//!   ([`TestClient::pipeline_until_stalled`]).
//! - Its expectations (`expect.rs`): acks, runs of acks, bytes, a close,
//!   silence, each failing with what was expected and what came.
//! - Frames (`frames.rs`): whole request and ack frames, runs of empty
//!   Submits, id counters, hex for messages.
//! - Threads (`threads.rs`): joining client threads, panic messages.

use std::time::Duration;

mod client;
mod expect;
mod frames;
mod server;
mod stream;
mod threads;

pub mod tls;

pub use client::{Answer, Stalled, TestClient};
pub use expect::Closed;
pub use frames::{ack_frame, counter_of, empty_submits, hex_head, request_frame};
pub use server::Server;
pub use stream::{Stream, is_reset};
pub use threads::{join_all, panic_message};

/// How long an answer the server owes at once may take to arrive. Generous:
/// the machine running the suite may be busy; a server that does not answer
/// at all still fails in bounded time.
pub const PROMPT: Duration = Duration::from_secs(3);
