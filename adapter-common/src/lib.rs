//! What the adapters share that is not protocol: where to listen, how the
//! sockets are set up, how accept errors are survived, the command-line
//! surface of the binaries, their log lines and their totals.
//!
//! Nothing here frames, orders, limits or times out the protocol: that is
//! the `protocol` crate's job.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
mod client_error;
pub mod handler;
mod net;
mod totals;

pub use client_error::ClientError;
pub use net::{
    AcceptBackoff, Endpoint, SocketOptions, StdListener, StdStream, bind, configure_tcp,
    is_transient_accept_error, remove_unix_socket,
};
pub use totals::{OpenConnection, RateLimiter, ServerTotals, conn_closed_line};
