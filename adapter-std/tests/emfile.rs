//! The accept loop survives running out of file descriptors (EMFILE): it
//! logs, backs off, and accepts the waiting connection once descriptors
//! are free again. Its own test binary: it lowers this process's
//! RLIMIT_NOFILE and fills the table.

#![allow(unsafe_code)]

use adapter_std::Served as _;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use adapter_common::AckAll;
use adapter_std::{Server, ServerOptions};
use conformance::Endpoint;
use conformance::support::{TestClient, ack_frame, request_frame};
use protocol::{ACK_FRAME_LEN, AckResult, MessageId, RequestKind};
use socket2::{Domain, SockAddr, Socket, Type};

fn nofile() -> libc::rlimit {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    assert_eq!(rc, 0, "getrlimit: {}", std::io::Error::last_os_error());
    lim
}

fn set_nofile(lim: &libc::rlimit) {
    // SAFETY: setrlimit reads one rlimit from a struct we own.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, lim) };
    assert_eq!(rc, 0, "setrlimit: {}", std::io::Error::last_os_error());
}

#[test]
fn accept_loop_survives_emfile_and_serves_the_waiting_client_later() {
    let server = Server::bind(
        &Endpoint::Tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
        ServerOptions::default(),
        AckAll,
    )
    .unwrap()
    .spawn()
    .unwrap();
    let endpoint = server.local_endpoint().clone();
    let mut first = TestClient::connect(&endpoint, "before");
    first.round_trip(b"x");

    // Two client sockets exist before the table fills up; connecting
    // needs no new descriptor.
    let Endpoint::Tcp(addr) = endpoint else {
        unreachable!()
    };
    let sockets = [(); 2].map(|()| Socket::new(Domain::IPV4, Type::STREAM, None).unwrap());
    let saved = nofile();
    let open_now = std::fs::read_dir("/proc/self/fd").unwrap().count() as libc::rlim_t;
    set_nofile(&libc::rlimit {
        rlim_cur: open_now + 16,
        rlim_max: saved.rlim_max,
    });
    let mut fillers = Vec::new();
    while let Ok(f) = File::open("/dev/null") {
        fillers.push(f);
    }
    // Linux reserves accept's descriptor when accept(2) is called, so a
    // blocked accept may still take one connection: the second one finds
    // the table full, and waits in the backlog while the loop backs off.
    let mut clients = Vec::new();
    for (n, socket) in (1..).zip(sockets) {
        socket.connect(&SockAddr::from(addr)).unwrap();
        let mut c = TcpStream::from(socket);
        let id = MessageId::from_counter(n);
        c.write_all(&request_frame(RequestKind::Submit, &id, b"hello"))
            .unwrap();
        clients.push((c, id));
        thread::sleep(Duration::from_millis(100));
    }
    let mut ack = [0u8; ACK_FRAME_LEN];
    let (last, _) = &mut clients[1];
    last.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let silent = last.read(&mut ack).unwrap_err();
    assert_eq!(
        silent.kind(),
        ErrorKind::WouldBlock,
        "not accepted yet: {silent}"
    );

    drop(fillers);
    set_nofile(&saved);
    for (c, id) in &mut clients {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.read_exact(&mut ack).unwrap();
        assert_eq!(ack, ack_frame(RequestKind::Submit, id, AckResult::OK));
    }
    first.round_trip(b"still served");
    TestClient::connect(&endpoint, "after").round_trip(b"and new ones");
    drop((first, clients));
    server.shutdown().unwrap();
}
