//! Where a child listens: a free port to give it, and whether it accepts.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A place a child server listens on: a TCP address or a Unix socket path
/// (the harness depends on no crate of the project, whose endpoint types
/// may change).
pub trait Listening {
    /// Whether a connection is accepted now (TCP within 200 ms); it is
    /// closed at once.
    fn accepts(&self) -> bool;
    /// For messages.
    fn describe(&self) -> String;
}

impl Listening for SocketAddr {
    fn accepts(&self) -> bool {
        TcpStream::connect_timeout(self, Duration::from_millis(200)).is_ok()
    }

    fn describe(&self) -> String {
        self.to_string()
    }
}

impl Listening for Path {
    fn accepts(&self) -> bool {
        UnixStream::connect(self).is_ok()
    }

    fn describe(&self) -> String {
        format!("unix:{}", self.display())
    }
}

impl Listening for PathBuf {
    fn accepts(&self) -> bool {
        self.as_path().accepts()
    }

    fn describe(&self) -> String {
        self.as_path().describe()
    }
}

/// A port on 127.0.0.1 that nobody listens on right now: port 0 bound,
/// read and released. A server binding it next may lose a race for it to
/// another process: callers that can retry should.
pub fn free_tcp_addr() -> Result<SocketAddr, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("cannot find a free port on 127.0.0.1: {e}"))
}
