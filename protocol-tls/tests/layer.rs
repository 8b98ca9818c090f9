//! The TLS layer in memory: a client and a server core over rustls, bytes
//! shuttled between them by hand, time moved by hand.

use std::time::{Duration, Instant};

use harness::pki::{CLIENT_NAME, SERVER_NAME, TestPki};
use protocol::{
    AckResult, ClientConfig, ClientConnection, ClientEvent, CloseReason, Request, RequestKind,
    ServerConfig, ServerConnection, ServerEvent, encode_request,
};
use protocol_tls::{ClientTls, PemRole, ServerTls, TlsClient, TlsConfigError, TlsServer};

fn pki() -> TestPki {
    TestPki::new().unwrap_or_else(|e| panic!("{e}"))
}

fn server_tls(pki: &TestPki, mutual: bool) -> ServerTls {
    let ca = pki.ca();
    ServerTls::from_pem_files(
        &pki.server_cert(),
        &pki.server_key(),
        mutual.then_some(ca.as_path()),
    )
    .unwrap_or_else(|e| panic!("server TLS: {e}"))
}

fn client_tls(
    pki: &TestPki,
    identity: Option<(std::path::PathBuf, std::path::PathBuf)>,
) -> ClientTls {
    let identity = identity.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
    ClientTls::from_pem_files(&pki.ca(), SERVER_NAME, identity)
        .unwrap_or_else(|e| panic!("client TLS: {e}"))
}

/// A server connection accepted now, with no client.
fn lone_server(pki: &TestPki) -> (TlsServer, Instant) {
    let now = Instant::now();
    let server = server_tls(pki, false)
        .accept(ServerConnection::new(ServerConfig::default(), now), now)
        .unwrap_or_else(|e| panic!("{e}"));
    (server, now)
}

struct Pair {
    client: TlsClient,
    server: TlsServer,
    now: Instant,
    requests: Vec<Request>,
    server_closed: Option<CloseReason>,
    acks: Vec<AckResult>,
}

impl Pair {
    fn new(server: &ServerTls, client: &ClientTls) -> Self {
        Self::with(
            server,
            ServerConfig::default(),
            client,
            ClientConfig::default(),
        )
    }

    fn with(server: &ServerTls, sc: ServerConfig, client: &ClientTls, cc: ClientConfig) -> Self {
        let now = Instant::now();
        let core = ServerConnection::new(sc, now);
        let server = server.accept(core, now).unwrap_or_else(|e| panic!("{e}"));
        let client = client
            .connect(ClientConnection::new(cc))
            .unwrap_or_else(|e| panic!("{e}"));
        Self {
            client,
            server,
            now,
            requests: Vec::new(),
            server_closed: None,
            acks: Vec::new(),
        }
    }

    /// Moves bytes both ways (the server answering every request with
    /// `answer`, when given) until nothing moves.
    fn run(&mut self, answer: Option<AckResult>) {
        for _ in 0..10_000 {
            let mut moved = false;
            let c = self.client.transmit().to_vec();
            if !c.is_empty() && self.server.wants_input() {
                self.server.handle_input(&c, self.now);
                self.client.handle_written(c.len(), self.now);
                moved = true;
            }
            let s = self.server.transmit().to_vec();
            if !s.is_empty() {
                self.client.handle_input(&s, self.now);
                self.server.handle_written(s.len(), self.now);
                moved = true;
            }
            while let Some(event) = self.server.poll_event() {
                moved = true;
                match event {
                    ServerEvent::Request(req) => {
                        if let Some(result) = answer {
                            self.server
                                .respond(req.handle, result, self.now)
                                .unwrap_or_else(|e| panic!("{e}"));
                        }
                        self.requests.push(req);
                    }
                    ServerEvent::ShutdownWrite => self.client.handle_eof(self.now),
                    ServerEvent::Closed(reason) => self.server_closed = Some(reason),
                    ServerEvent::Proxied(_) => {}
                }
            }
            while let Some(event) = self.client.poll_event() {
                if let ClientEvent::Ack(ack) = event {
                    self.acks.push(ack.result);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the pair never settled");
    }
}

#[test]
fn a_request_over_tls_is_answered_and_the_handshake_timer_stops() {
    let pki = pki();
    let mut pair = Pair::new(&server_tls(&pki, false), &client_tls(&pki, None));
    assert!(
        pair.server.poll_timeout().is_some(),
        "the handshake timer runs from the accept"
    );
    pair.client
        .request(RequestKind::Submit, b"over tls", pair.now)
        .unwrap_or_else(|e| panic!("{e}"));
    pair.run(Some(AckResult::OK));
    assert!(!pair.server.is_handshaking() && !pair.client.is_handshaking());
    assert_eq!(pair.requests.len(), 1);
    assert_eq!(&pair.requests[0].payload[..], b"over tls");
    assert_eq!(
        pair.requests[0].identity, None,
        "no client certificate, no identity"
    );
    assert_eq!(pair.acks, vec![AckResult::OK]);
    assert_eq!(
        pair.server.poll_timeout(),
        None,
        "after the handshake no timer is armed by default"
    );
    assert_eq!(
        pair.server.tls().alpn_protocol(),
        Some(protocol_tls::ALPN),
        "both sides agree on ALPN lenproto/1"
    );
}

#[test]
fn a_verified_client_certificate_names_every_request() {
    let pki = pki();
    let mut pair = Pair::new(
        &server_tls(&pki, true),
        &client_tls(&pki, Some((pki.client_cert(), pki.client_key()))),
    );
    for payload in [&b"one"[..], b"two"] {
        pair.client
            .request(RequestKind::Submit, payload, pair.now)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    pair.run(Some(AckResult::OK));
    assert_eq!(pair.requests.len(), 2);
    for req in &pair.requests {
        assert_eq!(req.identity.as_ref().map(|i| i.as_str()), Some(CLIENT_NAME));
    }
    assert_eq!(pair.acks, vec![AckResult::OK, AckResult::OK]);
}

#[test]
fn a_client_certificate_from_another_ca_is_refused_under_mutual_tls() {
    let pki = pki();
    let mut pair = Pair::new(
        &server_tls(&pki, true),
        &client_tls(&pki, Some((pki.stranger_cert(), pki.stranger_key()))),
    );
    pair.client
        .request(RequestKind::Submit, b"let me in", pair.now)
        .unwrap_or_else(|e| panic!("{e}"));
    pair.run(Some(AckResult::OK));
    assert!(
        pair.requests.is_empty(),
        "no request from an unverified client"
    );
    match &pair.server_closed {
        Some(CloseReason::Tls { error }) => assert!(error.contains("certificate"), "{error}"),
        other => panic!("expected a TLS close, got {other:?}"),
    }
    // The server's alert reached the client: it learns why, not just EOF.
    match pair.client.core().close_reason() {
        Some(CloseReason::Tls { error }) => assert!(error.contains("alert"), "{error}"),
        other => panic!("expected the client to end on the server's alert, got {other:?}"),
    }
}

#[test]
fn a_closing_client_sends_close_notify_and_still_gets_every_ack() {
    let pki = pki();
    let mut pair = Pair::new(&server_tls(&pki, false), &client_tls(&pki, None));
    for payload in [&b"one"[..], b"two", b"three"] {
        pair.client
            .request(RequestKind::Submit, payload, pair.now)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    pair.client.close(pair.now);
    pair.run(Some(AckResult::OK));
    assert_eq!(
        pair.acks,
        vec![AckResult::OK; 3],
        "every ack after the close"
    );
    // The pair never passes a socket EOF to the server: its core ended
    // cleanly on the client's close_notify alone.
    match &pair.server_closed {
        Some(reason) => assert!(reason.is_clean(), "{reason:?}"),
        None => panic!("the server did not see the client's close_notify"),
    }
    assert!(
        pair.client
            .core()
            .close_reason()
            .is_some_and(CloseReason::is_clean),
        "{:?}",
        pair.client.core().close_reason()
    );
}

#[test]
fn a_client_without_a_certificate_is_refused_under_mutual_tls() {
    let pki = pki();
    let mut pair = Pair::new(&server_tls(&pki, true), &client_tls(&pki, None));
    pair.client
        .request(RequestKind::Submit, b"anonymous", pair.now)
        .unwrap_or_else(|e| panic!("{e}"));
    pair.run(Some(AckResult::OK));
    assert!(pair.requests.is_empty());
    assert!(
        matches!(pair.server_closed, Some(CloseReason::Tls { .. })),
        "{:?}",
        pair.server_closed
    );
}

#[test]
fn a_stalled_handshake_is_closed_at_the_handshake_timeout() {
    let pki = pki();
    let (mut server, now) = lone_server(&pki);
    // Half a ClientHello, then silence.
    server.handle_input(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01], now);
    let at = server
        .poll_timeout()
        .unwrap_or_else(|| panic!("no handshake timer"));
    assert_eq!(
        at,
        now + Duration::from_secs(10),
        "the default handshake timeout is 10 s"
    );
    server.handle_timeout(at - Duration::from_millis(1));
    assert_eq!(server.poll_event(), None, "not before the timeout");
    server.handle_timeout(at);
    assert_eq!(
        server.poll_event(),
        Some(ServerEvent::Closed(CloseReason::HandshakeTimeout {
            after: Duration::from_secs(10)
        }))
    );
}

#[test]
fn a_plaintext_client_on_a_tls_port_is_closed_with_a_tls_reason() {
    let pki = pki();
    let (mut server, now) = lone_server(&pki);
    let mut frame = bytes::BytesMut::new();
    encode_request(
        RequestKind::Submit,
        &protocol::MessageId::from_counter(1),
        b"plain",
        1 << 20,
        &mut frame,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    server.handle_input(&frame, now);
    match server.poll_event() {
        Some(ServerEvent::Closed(CloseReason::Tls { error })) => assert!(!error.is_empty()),
        other => panic!("expected a TLS close, got {other:?}"),
    }
    // A TLS alert record (content type 21) for one write before the close.
    assert_eq!(
        server.last_words().first(),
        Some(&21),
        "{:?}",
        server.last_words()
    );
}

#[test]
fn a_peer_that_closes_during_the_handshake_ends_the_connection() {
    let pki = pki();
    let (mut server, now) = lone_server(&pki);
    server.handle_eof(now);
    assert!(matches!(
        server.poll_event(),
        Some(ServerEvent::Closed(CloseReason::Tls { .. }))
    ));
}

#[test]
fn a_server_that_does_not_write_stops_taking_tls_input_and_loses_nothing() {
    let pki = pki();
    let server = ServerConfig {
        high_water: 64 * 1024,
        low_water: 16 * 1024,
        ..ServerConfig::default()
    };
    let client = ClientConfig {
        max_in_flight: 1 << 20,
        ..ClientConfig::default()
    };
    let mut pair = Pair::with(
        &server_tls(&pki, false),
        server,
        &client_tls(&pki, None),
        client,
    );
    pair.run(None);
    // 200,000 Submits (about 3 MB); the server does not write its acks.
    let mut sent = 0;
    let mut taken = 0usize;
    for _ in 0..200_000 {
        if pair
            .client
            .request(RequestKind::Submit, b"", pair.now)
            .is_ok()
        {
            sent += 1;
        }
        if pair.client.core().pending_output() > 64 * 1024 {
            let c = pair.client.transmit().to_vec();
            if !c.is_empty() && pair.server.wants_input() {
                pair.server.handle_input(&c, pair.now);
                pair.client.handle_written(c.len(), pair.now);
                taken += c.len();
            }
            while let Some(ServerEvent::Request(req)) = pair.server.poll_event() {
                pair.server
                    .respond(req.handle, AckResult::OK, pair.now)
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
    assert!(
        !pair.server.wants_input(),
        "the server must stop taking input"
    );
    assert!(
        pair.server.transmit_buf().len() <= 64 * 1024 + 17 * 1024,
        "ciphertext queued beyond the core's buffer is bounded: {}",
        pair.server.transmit_buf().len()
    );
    assert!(taken < 3_000_000, "it stopped early: {taken} bytes taken");
    // Now the server writes: everything is answered, in order, once.
    pair.run(Some(AckResult::OK));
    assert_eq!(pair.acks.len(), sent, "every request gets its ack");
    assert!(pair.acks.iter().all(|r| *r == AckResult::OK));
}

#[test]
fn an_expired_certificate_loads_with_a_warning_that_names_it() {
    let pki = pki();
    let tls = ServerTls::from_pem_files(&pki.expired_cert(), &pki.expired_key(), None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tls.warnings().len(), 1, "{:?}", tls.warnings());
    assert!(
        tls.warnings()[0].contains("expired.pem"),
        "{:?}",
        tls.warnings()
    );
    assert!(
        tls.warnings()[0].contains("not valid now"),
        "{:?}",
        tls.warnings()
    );
    let fresh = server_tls(&pki, false);
    assert!(fresh.warnings().is_empty(), "{:?}", fresh.warnings());
}

#[test]
fn tls_settings_that_cannot_work_are_named() {
    let pki = pki();
    let missing = pki.dir().join("missing.pem");
    let err = ServerTls::from_pem_files(&missing, &pki.server_key(), None).unwrap_err();
    assert!(
        matches!(
            err,
            TlsConfigError::Unreadable {
                role: PemRole::Certificate,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("missing.pem"), "{err}");

    // A key file where the certificate should be: no certificate in it.
    let err = ServerTls::from_pem_files(&pki.server_key(), &pki.server_key(), None).unwrap_err();
    assert!(matches!(err, TlsConfigError::NoCertificate { .. }), "{err}");

    let err = ServerTls::from_pem_files(&pki.server_cert(), &pki.server_cert(), None).unwrap_err();
    assert!(matches!(err, TlsConfigError::NoKey { .. }), "{err}");

    let err = ServerTls::from_pem_files(&pki.server_cert(), &pki.client_key(), None).unwrap_err();
    assert!(matches!(err, TlsConfigError::KeyMismatch { .. }), "{err}");

    let err = ClientTls::from_pem_files(&pki.ca(), "not a name!", None).unwrap_err();
    assert!(matches!(err, TlsConfigError::BadServerName { .. }), "{err}");
}

/// A pair whose server expects a PROXY header first.
fn proxied_pair(pki: &TestPki) -> Pair {
    let config = ServerConfig {
        proxy_protocol: true,
        ..ServerConfig::default()
    };
    Pair::with(
        &server_tls(pki, false),
        config,
        &client_tls(pki, None),
        ClientConfig::default(),
    )
}

#[test]
fn a_proxy_header_before_the_client_hello_names_the_client_of_every_request() {
    let mut pair = proxied_pair(&pki());
    // What the load balancer writes first, then the client's bytes.
    pair.server
        .handle_input(b"PROXY TCP6 2001:db8::7 ::1 40000 8888\r\n", pair.now);
    pair.client
        .request(RequestKind::Submit, b"behind a proxy", pair.now)
        .unwrap_or_else(|e| panic!("{e}"));
    pair.run(Some(AckResult::OK));
    assert_eq!(pair.acks, vec![AckResult::OK]);
    let want: std::net::SocketAddr = "[2001:db8::7]:40000"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pair.requests[0].source.as_deref(), Some(&want));
    assert_eq!(pair.server.source(), Some(want));
}

#[test]
fn a_tls_connection_without_its_proxy_header_is_closed_for_it() {
    let mut pair = proxied_pair(&pki());
    pair.run(None);
    assert!(
        matches!(&pair.server_closed, Some(CloseReason::Proxy { .. })),
        "{:?}",
        pair.server_closed
    );
}
