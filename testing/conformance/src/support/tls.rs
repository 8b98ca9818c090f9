//! The suite over TLS: [`OverTls`] starts any harness's server with TLS
//! (certificates made at run time) and registers its endpoint, so that the
//! scenarios' [`TestClient`](super::TestClient)s connecting to it speak
//! TLS, unchanged.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use adapter_common::{ClientTls, ServerTls};
use harness::pki::{CLIENT_NAME, GUEST_NAME, SERVER_NAME, TestPki};
use protocol::{AckResult, Request, RequestKind};
use rustls::pki_types::ServerName;

use crate::support::TestClient;
use crate::{App, Endpoint, Harness, RunningServer, ServerSpec};

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

    /// Mutual TLS over the adapter's real sockets: the handler gets, with
    /// every request, the identity of the certificate its client proved,
    /// and can authorise by it. Two clients of the same CA: the one the
    /// application knows is served (Conn and Submit acked 0), the other is
    /// refused by the handler (acked 1, connection kept), and the handler
    /// saw exactly their names.
    pub fn mutual_tls_hands_the_handler_each_clients_verified_identity(&self) {
        let pki = TestPki::new().unwrap_or_else(|e| panic!("{e}"));
        let tls = ServerTls::from_pem_files(&pki.server_cert(), &pki.server_key(), Some(&pki.ca()))
            .unwrap_or_else(|e| panic!("the mTLS server's TLS: {e}"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let handler = App::new(move |req: &Request| {
            let who = req.identity.as_ref().map(|i| i.as_str().to_owned());
            let ok = who.as_deref() == Some(CLIENT_NAME);
            log.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((req.kind, who));
            if ok { AckResult::OK } else { AckResult::ERROR }
        });
        let spec = ServerSpec {
            tls: Some(tls),
            handler,
            ..ServerSpec::default()
        };
        let running = self.inner.start(spec);
        let endpoint = running.endpoint();
        let server = Registered {
            inner: Some(running),
            endpoint: endpoint.clone(),
        };
        let client_as = |cert: &std::path::Path, key: &std::path::Path, name: &str| {
            let tls = ClientTls::from_pem_files(&pki.ca(), SERVER_NAME, Some((cert, key)))
                .unwrap_or_else(|e| panic!("the {name} client's TLS: {e}"));
            servers().retain(|(e, _)| e != &endpoint);
            let config = Arc::clone(tls.config());
            servers().push((endpoint.clone(), Arc::new(ClientSide { config })));
            TestClient::connect(&endpoint, format!("{} {name}", self.name))
        };
        let mut known = client_as(&pki.client_cert(), &pki.client_key(), "known");
        let conn = known.conn(b"token");
        known.expect_ack(RequestKind::Conn, conn, AckResult::OK);
        let submit = known.submit(b"payload");
        known.expect_ack(RequestKind::Submit, submit, AckResult::OK);
        let mut guest = client_as(&pki.guest_cert(), &pki.guest_key(), "guest");
        let refused = guest.submit(b"payload");
        guest.expect_ack(RequestKind::Submit, refused, AckResult::ERROR);
        // Refused by the application, not cut: the guest is still served.
        let again = guest.submit(b"payload");
        guest.expect_ack(RequestKind::Submit, again, AckResult::ERROR);
        let known_after = known.submit(b"payload");
        known.expect_ack(RequestKind::Submit, known_after, AckResult::OK);
        let seen = seen.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let (k, g) = (Some(CLIENT_NAME.to_owned()), Some(GUEST_NAME.to_owned()));
        assert_eq!(
            seen,
            vec![
                (RequestKind::Conn, k.clone()),
                (RequestKind::Submit, k.clone()),
                (RequestKind::Submit, g.clone()),
                (RequestKind::Submit, g),
                (RequestKind::Submit, k),
            ],
            "{}: the identities the handler saw, request by request",
            self.name
        );
        drop((known, guest));
        Box::new(server).shutdown();
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
