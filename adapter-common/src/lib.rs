//! What the adapters share, written once: endpoints and the one TCP-or-Unix
//! family ([`Net`]), socket setup, the one [`Handler`] vocabulary, the
//! server [`Supervisor`] (admit, refuse, shutdown fan-out, drain, totals),
//! the client core ([`ClientCore`]: waiters in in-flight order, how the
//! end reaches them), and for the async adapters the [`Runtime`] seam with
//! the one [`Server`] and [`Client`] written over it. The binaries' command
//! line is the `adapter-cli` crate's.
//!
//! Nothing here frames, orders, limits or times out the protocol: that is
//! the `protocol` crate's job. An adapter is a runtime (or, for std, a
//! blocking loop) plus socket glue.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
mod client_error;
pub mod codec;
pub mod handler;
#[cfg(feature = "prometheus")]
pub mod metrics;
mod net;
pub mod pool;
pub mod runtime;
pub mod server;
pub mod session;
pub mod supervisor;
mod totals;

pub use client::{Client, ClientCore, PendingAck};
pub use client_error::ClientError;
pub use handler::{AckAll, AsyncFn, Handler, Reply};
pub use net::{
    AcceptBackoff, Endpoint, Net, SocketOptions, StdListener, StdStream, bind, configure_tcp,
    is_timeout, is_transient_accept_error, remove_unix_socket,
};
pub use pool::{Member, Next, Pool, PoolCore, PoolOptions, random_u64};
pub use protocol_tls::{ClientTls, ServerTls};
pub use runtime::{Runtime, Socket, Timer};
pub use server::{Server, ServerOptions};
pub use session::{ClientSession, ServerSession};
pub use supervisor::{Admission, Control, Served, ShutdownHandle, Signal, Supervisor, block_on};
pub use totals::{
    FOLD_EVERY, LATENCY_BOUNDS, MAX_CLIENTS, Meter, RateLimiter, ServerTotals, conn_closed_line,
    earliest,
};
