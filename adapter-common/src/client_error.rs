//! Why a client request got no ack: the one error type of every adapter's
//! `Client`, so an application moves between adapters unchanged.

use std::io;
use std::sync::Arc;

use protocol::{CloseReason, ConfigError, SubmitError};

use crate::net::Endpoint;

/// Why a request got no ack.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The connection could not be made.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// Where it tried.
        endpoint: Endpoint,
        /// Why it failed.
        #[source]
        source: Arc<io::Error>,
    },
    /// The core refused the request (a payload over the frame limit, or
    /// the client is closing). The connection goes on.
    #[error("request not sent: {0}")]
    Submit(#[from] SubmitError),
    /// The connection ended before the ack (the core says why: the server
    /// closed, a protocol error, a response timeout, a write stall, or the
    /// client's own close).
    #[error("connection closed: {0}")]
    Closed(CloseReason),
    /// The configuration is out of range (nothing was connected).
    #[error("invalid client configuration: {0}")]
    Config(#[from] ConfigError),
    /// The TLS session could not be started (rustls refused its settings).
    #[error("TLS session not started: {error}")]
    Tls {
        /// rustls' error.
        error: String,
    },
    /// The socket failed.
    #[error("connection failed: {0}")]
    Io(#[source] Arc<io::Error>),
    /// A pool has no server to send to: each failed its backoff's
    /// `max_attempts` in a row (or none was given).
    #[error("no server available of {servers}: {last}")]
    Unavailable {
        /// Servers in the pool.
        servers: usize,
        /// The last failure, with its server.
        last: String,
    },
}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        Self::Io(Arc::new(e))
    }
}
