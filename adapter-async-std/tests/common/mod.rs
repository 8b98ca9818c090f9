//! What the tests share: a conformance harness for each runtime, and
//! helpers to start servers and bound waits.

#![allow(dead_code)]

use adapter_async_std::Served as _;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use adapter_async_std::runtime::BlockOn;
use adapter_async_std::{Endpoint, Handler, Server, ServerOptions, ShutdownHandle};
use adapter_common::ServerTotals;
use conformance::{Harness, RunningServer, ServerSpec};

/// Starts this adapter's servers on runtime `R` for the behaviour suite.
pub struct RtHarness<R>(pub R);

impl<R: BlockOn> Harness for RtHarness<R> {
    fn name(&self) -> &'static str {
        match self.0.name() {
            "smol" => "adapter-async-std (smol)",
            _ => "adapter-async-std (async-std)",
        }
    }

    fn start(&self, spec: ServerSpec) -> Box<dyn RunningServer> {
        let endpoint = spec.endpoint();
        Box::new(start_server(
            &self.0,
            &endpoint,
            spec.options(),
            spec.handler,
        ))
    }
}

/// A server running on a runtime's task.
pub struct Running {
    pub endpoint: Endpoint,
    pub stop: ShutdownHandle,
    done: mpsc::Receiver<std::io::Result<()>>,
    pub totals: Arc<ServerTotals>,
    wait: Duration,
}

impl Running {
    /// Graceful shutdown; returns once `run` returned (bounded).
    pub fn stop(self) -> std::io::Result<()> {
        self.stop.shutdown();
        self.done
            .recv_timeout(self.wait)
            .unwrap_or_else(|_| panic!("server did not stop within {:?}", self.wait))
    }
}

impl RunningServer for Running {
    fn endpoint(&self) -> Endpoint {
        self.endpoint.clone()
    }

    fn shutdown(self: Box<Self>) {
        let _ = (*self).stop();
    }
}

/// Binds and runs a server on `rt`.
pub fn start_server<R: BlockOn, H: Handler>(
    rt: &R,
    endpoint: &Endpoint,
    opts: ServerOptions,
    handler: H,
) -> Running {
    let wait = opts.config.shutdown_timeout + Duration::from_secs(10);
    let server = Server::bind(rt.clone(), endpoint, opts, handler)
        .unwrap_or_else(|e| panic!("cannot bind {endpoint}: {e}"));
    let endpoint = server.local_endpoint().clone();
    let stop = server.shutdown_handle();
    let totals = server.totals();
    let (tx, done) = mpsc::channel();
    rt.spawn(async move {
        let _ = tx.send(server.run().await);
    });
    Running {
        endpoint,
        stop,
        done,
        totals,
        wait,
    }
}

/// Runs `fut` on `rt`, failing the test if it takes longer than `limit`.
pub fn block_on_within<R: BlockOn, T: Send + 'static>(
    rt: &R,
    limit: Duration,
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    rt.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("did not finish within {limit:?}"))
}
