//! The suite over TLS: [`OverTls`] starts any harness's server with TLS
//! (certificates made at run time) and registers its endpoint, so that the
//! scenarios' [`TestClient`](super::TestClient)s connecting to it speak
//! TLS, unchanged.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use adapter_common::{ClientTls, ServerTls};
use harness::pki::{SERVER_NAME, TestPki};
use rustls::pki_types::ServerName;

use crate::{Endpoint, Harness, RunningServer, ServerSpec};

/// How a test client speaks TLS to one registered server.
#[derive(Debug)]
pub struct ClientSide {
    config: Arc<rustls::ClientConfig>,
}

impl ClientSide {
    /// A new client connection (its handshake runs on the first IO).
    pub fn connect(&self) -> io::Result<rustls::ClientConnection> {
        let name = ServerName::try_from(SERVER_NAME).map_err(io::Error::other)?;
        rustls::ClientConnection::new(Arc::clone(&self.config), name).map_err(io::Error::other)
    }
}

/// The endpoints of the TLS test servers running in this process.
static SERVERS: Mutex<Vec<(Endpoint, Arc<ClientSide>)>> = Mutex::new(Vec::new());

fn servers() -> std::sync::MutexGuard<'static, Vec<(Endpoint, Arc<ClientSide>)>> {
    SERVERS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The TLS side for a client of `endpoint`, when a TLS test server runs there.
pub(crate) fn client_for(endpoint: &Endpoint) -> Option<Arc<ClientSide>> {
    servers()
        .iter()
        .find(|(e, _)| e == endpoint)
        .map(|(_, c)| Arc::clone(c))
}

/// Runs `inner`'s servers over TLS: the behaviour suite over TLS is the
/// suite with this harness.
#[derive(Debug)]
pub struct OverTls<H> {
    inner: H,
    name: &'static str,
}

impl<H: Harness> OverTls<H> {
    /// `inner`'s servers over TLS, called `name` in messages.
    pub const fn new(inner: H, name: &'static str) -> Self {
        Self { inner, name }
    }
}

impl<H: Harness> Harness for OverTls<H> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn start(&self, mut spec: ServerSpec) -> Box<dyn RunningServer> {
        let pki = TestPki::new().unwrap_or_else(|e| panic!("{e}"));
        let server = ServerTls::from_pem_files(&pki.server_cert(), &pki.server_key(), None)
            .unwrap_or_else(|e| panic!("the test server's TLS: {e}"));
        let client = ClientTls::from_pem_files(&pki.ca(), SERVER_NAME, None)
            .unwrap_or_else(|e| panic!("the test clients' TLS: {e}"));
        spec.tls = Some(server);
        let running = self.inner.start(spec);
        let endpoint = running.endpoint();
        let side = Arc::new(ClientSide {
            config: Arc::clone(client.config()),
        });
        servers().push((endpoint.clone(), side));
        Box::new(Registered {
            inner: Some(running),
            endpoint,
        })
    }
}

/// A TLS test server, unregistered when it stops.
struct Registered {
    inner: Option<Box<dyn RunningServer>>,
    endpoint: Endpoint,
}

impl RunningServer for Registered {
    fn endpoint(&self) -> Endpoint {
        self.endpoint.clone()
    }

    fn shutdown(mut self: Box<Self>) {
        if let Some(inner) = self.inner.take() {
            inner.shutdown();
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        servers().retain(|(e, _)| e != &self.endpoint);
    }
}
