//! A blocking client socket, TCP or Unix.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::PROMPT;
use crate::Endpoint;

/// TLS over TCP with rustls' own blocking stream (an IO stack apart from
/// the servers' sans-IO layer).
pub type TlsTcp = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A blocking client stream: TCP, Unix, or TLS over TCP.
#[derive(Debug)]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// Unix domain socket.
    Unix(UnixStream),
    /// TLS over TCP, to a server started by [`OverTls`](crate::OverTls).
    Tls(Box<TlsTcp>),
}

impl Stream {
    /// Connects to `endpoint` (TCP with TCP_NODELAY), within [`PROMPT`];
    /// over TLS when the endpoint is a TLS test server's.
    pub fn connect(endpoint: &Endpoint) -> io::Result<Self> {
        match endpoint {
            Endpoint::Tcp(a) => {
                let s = TcpStream::connect_timeout(a, PROMPT)?;
                s.set_nodelay(true)?;
                match super::tls::client_for(endpoint) {
                    None => Ok(Self::Tcp(s)),
                    Some(tls) => {
                        let conn = tls.connect()?;
                        Ok(Self::Tls(Box::new(rustls::StreamOwned::new(conn, s))))
                    }
                }
            }
            Endpoint::Unix(p) => UnixStream::connect(p).map(Self::Unix),
        }
    }

    /// The TCP socket under a TCP or TLS stream.
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Self::Tcp(s) => Some(s),
            Self::Tls(s) => Some(s.get_ref()),
            Self::Unix(_) => None,
        }
    }

    /// Sets the read timeout (`None` blocks forever: never used here).
    pub fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_read_timeout(d),
            Self::Unix(s) => s.set_read_timeout(d),
            Self::Tls(t) => {
                let s = t.get_ref();
                s.set_read_timeout(d)
            }
        }
    }

    /// Sets the write timeout.
    pub fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_write_timeout(d),
            Self::Unix(s) => s.set_write_timeout(d),
            Self::Tls(t) => {
                let s = t.get_ref();
                s.set_write_timeout(d)
            }
        }
    }

    /// Non-blocking mode on or off.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_nonblocking(on),
            Self::Unix(s) => s.set_nonblocking(on),
            Self::Tls(t) => {
                let s = t.get_ref();
                s.set_nonblocking(on)
            }
        }
    }

    /// `shutdown(2)`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.shutdown(how),
            Self::Unix(s) => s.shutdown(how),
            // The TLS end of stream (close_notify) has to be written
            // first: see `shutdown_write` on the test client.
            Self::Tls(t) => t.get_ref().shutdown(how),
        }
    }

    /// A second handle to the same socket.
    pub fn try_clone(&self) -> io::Result<Self> {
        match self {
            Self::Tcp(s) => s.try_clone().map(Self::Tcp),
            Self::Unix(s) => s.try_clone().map(Self::Unix),
            Self::Tls(_) => Err(io::Error::new(
                ErrorKind::Unsupported,
                "a TLS stream has one owner: no second handle",
            )),
        }
    }

    /// The pending socket error (SO_ERROR), taken.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Self::Tcp(s) => s.take_error(),
            Self::Unix(s) => s.take_error(),
            Self::Tls(t) => {
                let s = t.get_ref();
                s.take_error()
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.read(buf),
            Self::Unix(s) => s.read(buf),
            // A server's close without close_notify is its end of stream
            // here: the framing tells a cut frame.
            Self::Tls(t) => match t.read(buf) {
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.write(buf),
            Self::Unix(s) => s.write(buf),
            Self::Tls(t) => t.write(buf).and_then(|n| t.flush().map(|()| n)),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Tls(t) => t.flush(),
            _ => Ok(()),
        }
    }
}

/// True for the errors that mean "the peer reset the connection".
pub fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}
