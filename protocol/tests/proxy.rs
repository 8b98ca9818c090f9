//! The PROXY protocol header in front of a conversation
//! (`ServerConfig::proxy_protocol`): decoded first, its client address on
//! every request, the connection closed without a valid one, and a header
//! that stalls closed by the handshake timeout.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use protocol::{
    CloseReason, DecodeError, MessageId, PROXY_V2_SIGNATURE, ProxyError, ProxyHeader, RequestKind,
    ServerConfig, ServerConnection, ServerEvent, encode_request,
};

const V1: &[u8] = b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 8888\r\n";

fn proxied() -> ServerConfig {
    ServerConfig {
        proxy_protocol: true,
        ..ServerConfig::default()
    }
}

fn submit(n: u32) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_request(
        RequestKind::Submit,
        &MessageId::from_counter(n),
        b"x",
        1 << 20,
        &mut out,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    out.to_vec()
}

fn events(server: &mut ServerConnection) -> Vec<ServerEvent> {
    std::iter::from_fn(|| server.poll_event()).collect()
}

fn client() -> SocketAddr {
    "203.0.113.7:56324"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn closed_reason(events: &[ServerEvent]) -> Option<&CloseReason> {
    events.iter().find_map(|e| match e {
        ServerEvent::Closed(r) => Some(r),
        _ => None,
    })
}

#[test]
fn the_header_comes_first_and_its_client_is_on_every_request() {
    let now = Instant::now();
    let mut server = ServerConnection::new(proxied(), now);
    let bytes = [V1, &submit(1), &submit(2)].concat();
    server.handle_input(&bytes, now);
    let got = events(&mut server);
    assert!(
        matches!(&got[0], ServerEvent::Proxied(ProxyHeader::Proxied { source, .. }) if *source == client()),
        "{got:?}"
    );
    let requests: Vec<_> = got
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Request(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(requests.len(), 2, "{got:?}");
    assert!(
        requests
            .iter()
            .all(|r| r.source.as_deref() == Some(&client()))
    );
    assert_eq!(server.source(), Some(client()));
    assert_eq!(
        server.poll_timeout(),
        None,
        "no timer once the header is in"
    );
}

#[test]
fn a_header_split_byte_by_byte_is_the_same_header() {
    let now = Instant::now();
    let mut server = ServerConnection::new(proxied(), now);
    let mut v2 = PROXY_V2_SIGNATURE.to_vec();
    v2.extend([
        0x21, 0x11, 0, 12, 203, 0, 113, 7, 192, 0, 2, 1, 0xdc, 0x04, 0x22, 0xb8,
    ]);
    let bytes = [&v2[..], &submit(1)].concat();
    for b in &bytes {
        server.handle_input(std::slice::from_ref(b), now);
    }
    let got = events(&mut server);
    assert!(
        matches!(&got[..], [ServerEvent::Proxied(_), ServerEvent::Request(r)] if r.source.as_deref() == Some(&client())),
        "{got:?}"
    );
}

#[test]
fn a_v2_local_header_carries_no_client() {
    let now = Instant::now();
    let mut server = ServerConnection::new(proxied(), now);
    let local = [&PROXY_V2_SIGNATURE[..], &[0x20, 0x00, 0, 0]].concat();
    server.handle_input(&[&local[..], &submit(1)].concat(), now);
    let got = events(&mut server);
    assert!(
        matches!(&got[..], [ServerEvent::Proxied(ProxyHeader::Local), ServerEvent::Request(r)] if r.source.is_none()),
        "{got:?}"
    );
}

#[test]
fn a_connection_without_the_header_is_closed_with_no_request() {
    let now = Instant::now();
    let mut server = ServerConnection::new(proxied(), now);
    server.handle_input(&submit(1), now);
    let got = events(&mut server);
    assert!(
        matches!(
            &got[..],
            [ServerEvent::Closed(CloseReason::Proxy {
                error: ProxyError::Missing(_)
            })]
        ),
        "{got:?}"
    );
    assert_eq!(
        closed_reason(&got).map(CloseReason::kind),
        Some("proxy_header")
    );
}

#[test]
fn a_peer_that_closes_inside_the_header_is_closed_for_it() {
    let now = Instant::now();
    let mut server = ServerConnection::new(proxied(), now);
    server.handle_input(&V1[..10], now);
    assert!(events(&mut server).is_empty(), "waiting for the rest");
    server.handle_eof(now);
    let got = events(&mut server);
    assert_eq!(
        closed_reason(&got),
        Some(&CloseReason::Proxy {
            error: ProxyError::Truncated { len: 10 }
        })
    );
}

#[test]
fn a_stalled_header_is_closed_at_the_handshake_timeout() {
    let now = Instant::now();
    let config = ServerConfig {
        handshake_timeout: Some(Duration::from_secs(2)),
        ..proxied()
    };
    let mut server = ServerConnection::new(config, now);
    server.handle_input(&V1[..20], now);
    assert_eq!(server.poll_timeout(), Some(now + Duration::from_secs(2)));
    server.handle_timeout(now + Duration::from_secs(1));
    assert!(events(&mut server).is_empty());
    server.handle_timeout(now + Duration::from_secs(2));
    let got = events(&mut server);
    assert_eq!(
        closed_reason(&got),
        Some(&CloseReason::HandshakeTimeout {
            after: Duration::from_secs(2)
        })
    );
}

#[test]
fn a_local_close_before_the_header_is_a_local_close() {
    let now = Instant::now();
    let mut server = ServerConnection::new(proxied(), now);
    server.close(now, None);
    let got = events(&mut server);
    assert_eq!(closed_reason(&got), Some(&CloseReason::LocalClose));
}

#[test]
fn without_proxy_protocol_a_header_is_a_framing_error() {
    let now = Instant::now();
    let mut server = ServerConnection::new(ServerConfig::default(), now);
    server.handle_input(&[V1, &submit(1)].concat(), now);
    // A framing error: no request, and the lingering close of §7.7.
    assert_eq!(events(&mut server), [ServerEvent::ShutdownWrite]);
    assert!(
        matches!(
            server.close_reason(),
            Some(CloseReason::Decode(DecodeError::FrameTooLong { .. }))
        ),
        "{:?}",
        server.close_reason()
    );
}
