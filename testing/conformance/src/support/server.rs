//! The server a scenario started.

use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::{Endpoint, Harness, RunningServer, ServerSpec};

/// A server started for a scenario: shut down when the scenario ends, and
/// in the background if the scenario panics (so a failing scenario neither
/// hangs nor leaves a server behind for long). A Unix server's socket file
/// is removed if the server leaves it behind: after a graceful shutdown
/// that fails the scenario, after one in the background silently.
pub struct Server {
    inner: Option<Box<dyn RunningServer>>,
    endpoint: Endpoint,
    harness: &'static str,
    shutdown_limit: Duration,
}

/// Removes the socket file of a Unix `endpoint` if it is still there;
/// true if it was.
fn remove_left_socket(endpoint: &Endpoint) -> bool {
    match endpoint {
        Endpoint::Unix(path) => std::fs::remove_file(path).is_ok(),
        Endpoint::Tcp(_) => false,
    }
}

impl Server {
    /// Starts a server of the harness' adapter.
    pub fn start(h: &dyn Harness, spec: ServerSpec) -> Self {
        let shutdown_limit = spec.shutdown_timeout + Duration::from_secs(5);
        let inner = h.start(spec);
        let endpoint = inner.endpoint();
        Self {
            inner: Some(inner),
            endpoint,
            harness: h.name(),
            shutdown_limit,
        }
    }

    /// Where it listens.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The TCP address it listens on (panics, saying so, on a Unix server).
    pub fn tcp_addr(&self) -> SocketAddr {
        match &self.endpoint {
            Endpoint::Tcp(a) => *a,
            Endpoint::Unix(p) => panic!(
                "{}: a TCP server was asked for, the harness started one on unix:{}",
                self.harness,
                p.display()
            ),
        }
    }

    /// Graceful shutdown; panics if [`RunningServer::shutdown`] does not
    /// return within the spec's `shutdown_timeout` plus 5 s, or returns
    /// with a Unix server's socket file still there. Returns how long it
    /// took.
    pub fn shutdown(mut self) -> Duration {
        let Some(inner) = self.inner.take() else {
            return Duration::ZERO;
        };
        let started = Instant::now();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            inner.shutdown();
            let _ = tx.send(());
        });
        match rx.recv_timeout(self.shutdown_limit) {
            Ok(()) => {
                let took = started.elapsed();
                assert!(
                    !remove_left_socket(&self.endpoint),
                    "{}: after shutdown the socket file of {} must be removed (the suite removed it)",
                    self.harness,
                    self.endpoint
                );
                took
            }
            Err(e) => {
                remove_left_socket(&self.endpoint);
                match e {
                    mpsc::RecvTimeoutError::Timeout => panic!(
                        "{}: RunningServer::shutdown on {} did not return within {:?}",
                        self.harness, self.endpoint, self.shutdown_limit
                    ),
                    mpsc::RecvTimeoutError::Disconnected => panic!(
                        "{}: RunningServer::shutdown on {} panicked",
                        self.harness, self.endpoint
                    ),
                }
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            // Not waited for: the scenario is failing (or forgot to shut
            // down) and must not hang on a server that does not stop.
            let endpoint = self.endpoint.clone();
            thread::spawn(move || {
                // A panic in it has said what it is already.
                let _ = panic::catch_unwind(AssertUnwindSafe(|| inner.shutdown()));
                remove_left_socket(&endpoint);
            });
        }
    }
}
