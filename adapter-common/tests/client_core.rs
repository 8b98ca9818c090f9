//! The client core: acks reach their waiters in request order, and the
//! end reaches every waiter left with the reason.

use std::time::{Duration, Instant};

use adapter_common::{ClientCore, ClientError};
use bytes::BytesMut;
use protocol::{AckResult, ClientConfig, CloseReason, RequestKind, Setting, encode_ack};

fn core() -> ClientCore {
    ClientCore::new(ClientConfig::default()).unwrap()
}

fn ack_bytes(ids: &[protocol::MessageId]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for id in ids {
        encode_ack(RequestKind::Submit, id, AckResult::OK, &mut out);
    }
    out.to_vec()
}

#[test]
fn acks_reach_the_waiters_of_their_requests_in_order() {
    let mut c = core();
    let now = Instant::now();
    let p: Vec<_> = (0..3)
        .map(|i| {
            c.request(RequestKind::Submit, format!("m{i}").as_bytes(), now)
                .unwrap()
        })
        .collect();
    let ids: Vec<_> = p.iter().map(|p| p.id()).collect();
    let written = c.conn().transmit().len();
    c.conn().handle_written(written, now);
    c.conn().handle_input(&ack_bytes(&ids[..2]), now);
    assert!(!c.deliver());
    assert_eq!(
        p[0].wait_timeout(Duration::ZERO).unwrap().unwrap().id,
        ids[0]
    );
    assert_eq!(
        p[1].wait_timeout(Duration::ZERO).unwrap().unwrap().id,
        ids[1]
    );
    assert!(
        p[2].wait_timeout(Duration::ZERO).is_none(),
        "its ack has not come"
    );
    assert_eq!(c.in_flight(), 1);
}

#[test]
fn the_end_fails_every_waiter_left_with_the_reason() {
    let mut c = core();
    let now = Instant::now();
    let a = c.request(RequestKind::Submit, b"a", now).unwrap();
    let b = c.request(RequestKind::Conn, b"token", now).unwrap();
    c.conn().handle_eof(now);
    assert!(c.deliver());
    let want = ClientError::Closed(CloseReason::PeerClosedInFlight { in_flight: 2 });
    for p in [a, b] {
        assert_eq!(p.wait().unwrap_err().to_string(), want.to_string());
    }
    let after = c.request(RequestKind::Submit, b"late", now).unwrap_err();
    assert_eq!(
        after.to_string(),
        want.to_string(),
        "later requests get the end too"
    );
    assert_eq!(
        c.close_result().unwrap().unwrap_err().to_string(),
        want.to_string()
    );
}

#[test]
fn a_socket_error_is_the_end_every_waiter_sees() {
    let mut c = core();
    let a = c
        .request(RequestKind::Submit, b"a", Instant::now())
        .unwrap();
    c.fail(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
    assert!(matches!(a.wait(), Err(ClientError::Io(_))));
    assert!(!c.ended_cleanly());
}

#[test]
fn a_local_close_with_every_ack_in_is_a_clean_end() {
    let mut c = core();
    let now = Instant::now();
    let a = c.request(RequestKind::Submit, b"a", now).unwrap();
    let n = c.conn().transmit().len();
    c.conn().handle_written(n, now);
    c.conn().close(now);
    c.conn().handle_input(&ack_bytes(&[a.id()]), now);
    assert!(c.deliver());
    assert!(a.wait().is_ok());
    assert!(c.ended_cleanly());
    assert!(matches!(c.close_result(), Some(Ok(()))));
}

#[test]
fn an_out_of_range_config_is_refused_naming_the_setting() {
    let e = ClientCore::new(ClientConfig {
        max_frame_len: 13,
        ..ClientConfig::default()
    })
    .unwrap_err();
    match e {
        ClientError::Config(c) => assert_eq!(c.setting(), Setting::MaxFrameLen),
        other => panic!("expected a config error, got {other}"),
    }
}
