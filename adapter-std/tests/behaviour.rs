//! The shared behaviour suite (the seed's socket behaviours 1-9,
//! pipelining, graceful shutdown, limits, hostile input) run against the
//! std server.

use adapter_std::Served as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use adapter_std::{Server, ServerHandle};
use conformance::{Endpoint, Harness, RunningServer, ServerSpec};

struct StdHarness;

struct Running(ServerHandle);

impl RunningServer for Running {
    fn endpoint(&self) -> Endpoint {
        self.0.local_endpoint().clone()
    }

    fn shutdown(self: Box<Self>) {
        if let Err(e) = self.0.shutdown() {
            panic!("std server stopped with an error: {e}");
        }
    }
}

fn temp_unix_path() -> std::path::PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "adapter-std-suite-{}-{}.sock",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

impl Harness for StdHarness {
    fn name(&self) -> &'static str {
        "adapter-std"
    }

    fn start(&self, spec: ServerSpec) -> Box<dyn RunningServer> {
        let endpoint = if spec.unix {
            Endpoint::Unix(temp_unix_path())
        } else {
            Endpoint::Tcp(
                spec.addr
                    .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
            )
        };
        let server = Server::bind(&endpoint, spec.options(), spec.handler)
            .unwrap_or_else(|e| panic!("cannot bind the std server on {endpoint}: {e}"));
        let handle = server
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the std server thread: {e}"));
        Box::new(Running(handle))
    }
}

conformance::behaviour_suite!(StdHarness);
