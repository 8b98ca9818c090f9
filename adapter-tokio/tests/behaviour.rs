//! The shared behaviour suite (the seed's socket behaviours 1-9,
//! pipelining, graceful shutdown, limits, hostile input) run against the
//! tokio server, each server on its own runtime thread.

use adapter_tokio::Served as _;
use std::sync::mpsc;
use std::thread;

use adapter_tokio::{Server, ShutdownHandle, Tokio};
use conformance::{Endpoint, Harness, RunningServer, ServerSpec};

struct TokioHarness;

struct Running {
    endpoint: Endpoint,
    shutdown: ShutdownHandle,
    thread: thread::JoinHandle<std::io::Result<()>>,
}

impl RunningServer for Running {
    fn endpoint(&self) -> Endpoint {
        self.endpoint.clone()
    }

    fn shutdown(self: Box<Self>) {
        self.shutdown.shutdown();
        match self.thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("tokio server stopped with an error: {e}"),
            Err(_) => panic!("tokio server thread panicked"),
        }
    }
}

impl Harness for TokioHarness {
    fn name(&self) -> &'static str {
        "adapter-tokio"
    }

    fn start(&self, spec: ServerSpec) -> Box<dyn RunningServer> {
        let endpoint = spec.endpoint();
        let options = spec.options();
        let handler = spec.handler;
        let (tx, rx) = mpsc::channel();
        let thread = thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(async {
                let bound = Server::bind(Tokio, &endpoint, options, handler);
                let server = match bound {
                    Ok(server) => server,
                    Err(e) => {
                        let message = e.to_string();
                        let _ = tx.send(Err(message));
                        return Err(e);
                    }
                };
                let _ = tx.send(Ok((
                    server.local_endpoint().clone(),
                    server.shutdown_handle(),
                )));
                server.run().await
            })
        });
        match rx.recv() {
            Ok(Ok((endpoint, shutdown))) => Box::new(Running {
                endpoint,
                shutdown,
                thread,
            }),
            Ok(Err(e)) => panic!("cannot bind the tokio server: {e}"),
            Err(_) => panic!(
                "the tokio server thread ended before binding: {:?}",
                thread.join()
            ),
        }
    }
}

conformance::behaviour_suite!(TokioHarness);

/// The suite over TLS (the same server, `ServerOptions::tls` set).
mod over_tls {
    use conformance::OverTls;

    conformance::tls_behaviour_suite!(OverTls::new(super::TokioHarness, "adapter-tokio over TLS"));
}
