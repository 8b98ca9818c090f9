//! Endpoints, binding and accept backoff.

use std::io;
use std::time::Duration;

use adapter_common::{
    AcceptBackoff, Endpoint, SocketOptions, bind, is_transient_accept_error, remove_unix_socket,
};

#[test]
fn endpoint_parses_tcp_and_unix_forms() {
    assert_eq!(
        "127.0.0.1:8888".parse::<Endpoint>(),
        Ok(Endpoint::Tcp("127.0.0.1:8888".parse().unwrap()))
    );
    assert_eq!(
        "unix:/tmp/x.sock".parse::<Endpoint>(),
        Ok(Endpoint::Unix("/tmp/x.sock".into()))
    );
    assert!("nonsense".parse::<Endpoint>().is_err());
}

#[test]
fn accept_backoff_doubles_to_a_cap_and_resets() {
    let mut b = AcceptBackoff::new();
    let first = b.next_delay();
    assert_eq!(b.next_delay(), first * 2);
    for _ in 0..20 {
        b.next_delay();
    }
    assert_eq!(b.next_delay(), Duration::from_secs(1));
    b.reset();
    assert_eq!(b.next_delay(), first);
}

#[test]
fn emfile_is_transient() {
    assert!(is_transient_accept_error(&io::Error::from_raw_os_error(24)));
    assert!(!is_transient_accept_error(&io::Error::from_raw_os_error(9)));
}

#[test]
fn binding_a_live_unix_path_is_refused_and_a_stale_one_is_replaced() {
    // Removed with what it holds, also when an assertion fails.
    let dir = harness::TempDir::new("ac-bind").unwrap();
    let ep = Endpoint::Unix(dir.path().join("s.sock"));
    let opts = SocketOptions::default();
    let live = bind(&ep, &opts).unwrap();
    assert_eq!(
        bind(&ep, &opts).unwrap_err().kind(),
        io::ErrorKind::AddrInUse
    );
    drop(live);
    let again = bind(&ep, &opts).unwrap();
    drop(again);
    remove_unix_socket(&ep);
}
