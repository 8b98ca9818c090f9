//! The behaviour suite every adapter's server runs: one scenario per socket
//! behaviour of `docs/PROTOCOL.md` (1-9) plus pipelining, graceful
//! shutdown, max connections, malformed-frame isolation, and hostile peers
//! by the hundred (huge declared lengths, slowloris, slow consumers) with
//! the server's memory measured ([`process`]).
//!
//! The client side of every scenario is plain blocking std sockets and the
//! `protocol` codec, so the suite judges any server the same way. An adapter
//! implements [`Harness`] (start a server from a [`ServerSpec`], stop it)
//! and expands [`behaviour_suite!`] in one of its test files:
//!
//! ```ignore
//! struct Tokio;
//! impl conformance::Harness for Tokio { /* ... */ }
//! conformance::behaviour_suite!(Tokio);
//! ```
//!
//! [`scenarios`] holds the scenarios (one `#[test]` each in the macro);
//! [`support`] the client side they share: [`support::TestClient`] (connect,
//! send frames, expect acks, expect a close, all bounded in time and
//! failing with what was expected and what came) and [`support::Server`]
//! (a started server that is shut down, within a bound, when the scenario
//! ends). A harness must honour every [`ServerSpec`] field, `addr` included.

#![forbid(unsafe_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub use adapter_common::{Endpoint, ServerOptions, ServerTls, SocketOptions};
use adapter_common::{Handler, Reply};
use protocol::{AckResult, Request, ServerConfig};
pub use support::tls::OverTls;

pub mod metrics_cli;
pub mod process;
pub mod proxy_cli;
pub mod scenarios;
pub mod support;
pub mod tls_cli;

/// The application a test server runs: any closure over the request,
/// behind the one [`Handler`] every adapter serves (answered at once).
#[derive(Clone)]
pub struct App(Arc<dyn Fn(&Request) -> AckResult + Send + Sync>);

impl App {
    /// An application from a closure.
    pub fn new(f: impl Fn(&Request) -> AckResult + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }
}

impl Handler for App {
    type Future = std::future::Ready<AckResult>;

    fn handle(&self, request: Request) -> Reply<Self::Future> {
        Reply::Now((self.0)(&request))
    }
}

/// The seed's handler: every request is acked with result 0.
pub fn ack_all() -> App {
    App::new(|_| AckResult::OK)
}

/// What server a scenario wants.
#[derive(Clone)]
pub struct ServerSpec {
    /// The core's limits and timeouts.
    pub config: ServerConfig,
    /// Connections served at once; more are accepted and closed at once.
    pub max_connections: usize,
    /// Listen on a fresh temporary Unix socket instead of 127.0.0.1:0.
    pub unix: bool,
    /// Socket options for the listener and the connections.
    pub socket: SocketOptions,
    /// The application.
    pub handler: App,
    /// How long a graceful shutdown may take before connections are cut.
    pub shutdown_timeout: Duration,
    /// A fixed TCP address to bind instead of 127.0.0.1:0 (ignored when
    /// `unix` is set). Harnesses must honour it: the restart scenario binds
    /// a new server on the port an old one just left. Default `None`.
    pub addr: Option<SocketAddr>,
    /// Serve TLS (set by [`OverTls`], which also makes the scenario's
    /// clients speak it). Default `None`.
    pub tls: Option<ServerTls>,
}

impl Default for ServerSpec {
    fn default() -> Self {
        Self {
            config: ServerConfig::default(),
            max_connections: 1000,
            unix: false,
            socket: SocketOptions::default(),
            handler: ack_all(),
            shutdown_timeout: Duration::from_secs(5),
            addr: None,
            tls: None,
        }
    }
}

impl ServerSpec {
    /// The server options the spec describes (its `max_connections` and
    /// `shutdown_timeout` go into the core's configuration).
    pub fn options(&self) -> ServerOptions {
        ServerOptions {
            config: ServerConfig {
                max_connections: self.max_connections,
                shutdown_timeout: self.shutdown_timeout,
                ..self.config.clone()
            },
            socket: self.socket.clone(),
            tls: self.tls.clone(),
        }
    }

    /// Where the spec's server listens: with `unix`, a fresh path in the
    /// temp dir (from `harness::TempSocket`; the server creates the file
    /// and removes it, and [`support::Server`] checks that it did), else
    /// `addr` or 127.0.0.1:0.
    pub fn endpoint(&self) -> Endpoint {
        if self.unix {
            Endpoint::Unix(harness::TempSocket::new("conformance").keep())
        } else {
            Endpoint::Tcp(
                self.addr
                    .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
            )
        }
    }
}

/// Starts servers of one adapter for the scenarios.
pub trait Harness: Sync {
    /// The adapter's name, for messages.
    fn name(&self) -> &'static str;
    /// Starts a server (bound and accepting when this returns).
    fn start(&self, spec: ServerSpec) -> Box<dyn RunningServer>;
}

/// A server started by a [`Harness`].
pub trait RunningServer: Send {
    /// Where it listens (the real port when 0 was asked).
    fn endpoint(&self) -> Endpoint;
    /// Graceful shutdown, as on SIGTERM: stop accepting, answer every
    /// request received, flush, close; returns once the server has stopped
    /// (and removed its Unix socket file).
    fn shutdown(self: Box<Self>);
}
