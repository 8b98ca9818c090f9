//! The shared behaviour suite (the seed's socket behaviours 1-9,
//! pipelining, graceful shutdown, limits, hostile input) run against the
//! std server.

use adapter_std::Served as _;

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

impl Harness for StdHarness {
    fn name(&self) -> &'static str {
        "adapter-std"
    }

    fn start(&self, spec: ServerSpec) -> Box<dyn RunningServer> {
        let endpoint = spec.endpoint();
        let server = Server::bind(&endpoint, spec.options(), spec.handler)
            .unwrap_or_else(|e| panic!("cannot bind the std server on {endpoint}: {e}"));
        let handle = server
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the std server thread: {e}"));
        Box::new(Running(handle))
    }
}

conformance::behaviour_suite!(StdHarness);

/// The suite over TLS (the same server, `ServerOptions::tls` set).
mod over_tls {
    use conformance::OverTls;

    conformance::tls_behaviour_suite!(OverTls::new(super::StdHarness, "adapter-std over TLS"));
}
