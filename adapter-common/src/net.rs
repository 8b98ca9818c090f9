//! Endpoints, listeners and socket options.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use socket2::{Domain, SockAddr, SockRef, Socket, TcpKeepalive, Type};

/// Where a server listens or a client connects: TCP or a Unix socket path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A TCP address, e.g. `127.0.0.1:8888` or `[::1]:8888`.
    Tcp(SocketAddr),
    /// A Unix domain socket path.
    Unix(PathBuf),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(a) => write!(f, "{a}"),
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl FromStr for Endpoint {
    type Err = String;

    /// `unix:PATH` or a socket address.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:") {
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        s.parse()
            .map(Self::Tcp)
            .map_err(|e| format!("invalid address {s:?}: {e} (want HOST:PORT or unix:PATH)"))
    }
}

/// Socket options set on listeners and connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketOptions {
    /// SO_REUSEADDR on the listener, so a restarted server binds through
    /// TIME_WAIT. Default true.
    pub reuse_addr: bool,
    /// The listen backlog. Default 1024.
    pub backlog: i32,
    /// TCP_NODELAY on connections. Default true (request/response traffic).
    pub nodelay: bool,
    /// TCP keepalive idle time on connections, to find peers that vanished
    /// without a FIN. Default 300 s, like Redis; `None` turns it off.
    pub keepalive: Option<Duration>,
    /// SO_RCVBUF of the TCP listener, which its connections inherit: bounds
    /// what the kernel takes from a peer the server has stopped reading
    /// (and turns receive-buffer autotuning off). Default `None`: the
    /// kernel's autotuning, up to `net.ipv4.tcp_rmem`'s maximum.
    pub recv_buffer: Option<usize>,
    /// SO_REUSEPORT on the TCP listener: several server processes bind
    /// the same port and the kernel spreads new connections over them
    /// (scale-out over processes; a new process started before the old
    /// one stops). Default false. Unix-like systems only.
    pub reuse_port: bool,
}

impl Default for SocketOptions {
    fn default() -> Self {
        Self {
            reuse_addr: true,
            backlog: 1024,
            nodelay: true,
            keepalive: Some(Duration::from_secs(300)),
            recv_buffer: None,
            reuse_port: false,
        }
    }
}

/// TCP or Unix: the one two-kinds type of every adapter, for listeners
/// and streams of any IO model (std's, tokio's, async-io's).
#[derive(Debug)]
pub enum Net<T, U> {
    /// TCP.
    Tcp(T),
    /// Unix domain socket.
    Unix(U),
}

/// A bound, listening std socket, blocking; async adapters set it
/// non-blocking and hand it to their runtime.
pub type StdListener = Net<std::net::TcpListener, UnixListener>;

/// A connected std stream: TCP or Unix.
pub type StdStream = Net<std::net::TcpStream, UnixStream>;

impl StdListener {
    /// The endpoint actually bound (with the real port when 0 was asked).
    pub fn local_endpoint(&self) -> io::Result<Endpoint> {
        match self {
            Self::Tcp(l) => l.local_addr().map(Endpoint::Tcp),
            Self::Unix(l) => {
                let addr = l.local_addr()?;
                let path = addr
                    .as_pathname()
                    .ok_or_else(|| io::Error::other("unix listener has no path"))?;
                Ok(Endpoint::Unix(path.to_path_buf()))
            }
        }
    }

    /// Sets the listener non-blocking (for async runtimes) or blocking.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match self {
            Self::Tcp(l) => l.set_nonblocking(nonblocking),
            Self::Unix(l) => l.set_nonblocking(nonblocking),
        }
    }

    /// Accepts one connection: the stream and its peer's label (see
    /// [`StdStream::peer_label`]).
    pub fn accept(&self) -> io::Result<(StdStream, String)> {
        match self {
            Self::Tcp(l) => l.accept().map(|(s, a)| (Net::Tcp(s), a.to_string())),
            Self::Unix(l) => l.accept().map(|(s, _)| (Net::Unix(s), "unix".to_owned())),
        }
    }
}

impl StdStream {
    /// Connects to `endpoint` (blocking) and applies `opts` to TCP streams.
    pub fn connect(endpoint: &Endpoint, opts: &SocketOptions) -> io::Result<Self> {
        match endpoint {
            Endpoint::Tcp(a) => {
                let s = std::net::TcpStream::connect(a)?;
                configure_tcp(&s, opts)?;
                Ok(Self::Tcp(s))
            }
            Endpoint::Unix(p) => UnixStream::connect(p).map(Self::Unix),
        }
    }

    /// The peer, for log lines: `ip:port`, or `unix`.
    pub fn peer_label(&self) -> String {
        match self {
            Self::Tcp(s) => s
                .peer_addr()
                .map_or_else(|_| "tcp:unknown".to_owned(), |a| a.to_string()),
            Self::Unix(_) => "unix".to_owned(),
        }
    }

    /// Sets SO_RCVTIMEO (`None`: block).
    pub fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        SockRef::from(self).set_read_timeout(d)
    }

    /// Sets SO_SNDTIMEO (`None`: block).
    pub fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        SockRef::from(self).set_write_timeout(d)
    }

    /// Shuts down one or both directions.
    pub fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        SockRef::from(self).shutdown(how)
    }

    /// Sets the stream non-blocking or blocking.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        SockRef::from(self).set_nonblocking(on)
    }

    /// A second handle on the same socket.
    pub fn try_clone(&self) -> io::Result<Self> {
        match self {
            Self::Tcp(s) => s.try_clone().map(Self::Tcp),
            Self::Unix(s) => s.try_clone().map(Self::Unix),
        }
    }
}

impl<T: AsFd, U: AsFd> AsFd for Net<T, U> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Self::Tcp(s) => s.as_fd(),
            Self::Unix(s) => s.as_fd(),
        }
    }
}

/// `&StdStream` reads and writes, so one shared stream can be read by one
/// thread while another shuts it down (no second descriptor).
impl Read for &StdStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match *self {
            Net::Tcp(s) => (&*s).read(buf),
            Net::Unix(s) => (&*s).read(buf),
        }
    }
}

impl Write for &StdStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match *self {
            Net::Tcp(s) => (&*s).write(buf),
            Net::Unix(s) => (&*s).write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match *self {
            Net::Tcp(s) => (&*s).write_vectored(bufs),
            Net::Unix(s) => (&*s).write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for StdStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for StdStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// True for the errors a socket timeout (SO_RCVTIMEO / SO_SNDTIMEO) or a
/// non-blocking socket gives when nothing could be done.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Binds and listens on `endpoint` with `opts`. For a Unix path, a stale
/// socket file left by a dead server is removed first; a live one is an
/// `AddrInUse` error.
pub fn bind(endpoint: &Endpoint, opts: &SocketOptions) -> io::Result<StdListener> {
    match endpoint {
        Endpoint::Tcp(addr) => {
            let socket = Socket::new(Domain::for_address(*addr), Type::STREAM, None)?;
            if opts.reuse_addr {
                socket.set_reuse_address(true)?;
            }
            if opts.reuse_port {
                set_reuse_port(&socket)?;
            }
            if addr.is_ipv6() {
                socket.set_only_v6(true)?;
            }
            if let Some(size) = opts.recv_buffer {
                socket.set_recv_buffer_size(size)?;
            }
            socket.bind(&SockAddr::from(*addr))?;
            socket.listen(opts.backlog)?;
            Ok(Net::Tcp(socket.into()))
        }
        Endpoint::Unix(path) => {
            remove_stale_unix_socket(path)?;
            let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
            socket.bind(&SockAddr::unix(path)?)?;
            socket.listen(opts.backlog)?;
            Ok(Net::Unix(socket.into()))
        }
    }
}

#[cfg(unix)]
fn set_reuse_port(socket: &Socket) -> io::Result<()> {
    socket.set_reuse_port(true)
}

#[cfg(not(unix))]
fn set_reuse_port(_socket: &Socket) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "SO_REUSEPORT is not available on this system",
    ))
}

fn remove_stale_unix_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{}: a server is listening there already", path.display()),
            )),
            Err(_) => std::fs::remove_file(path),
        },
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{}: exists and is not a socket", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes the socket file of a Unix endpoint (after the server stopped).
pub fn remove_unix_socket(endpoint: &Endpoint) {
    if let Endpoint::Unix(path) = endpoint {
        let _ = std::fs::remove_file(path);
    }
}

/// Applies TCP_NODELAY and keepalive to a connected TCP socket (std,
/// tokio or async-std: anything with a file descriptor).
pub fn configure_tcp<S: std::os::fd::AsFd>(stream: &S, opts: &SocketOptions) -> io::Result<()> {
    let sock = SockRef::from(stream);
    sock.set_tcp_nodelay(opts.nodelay)?;
    match opts.keepalive {
        Some(idle) => {
            sock.set_keepalive(true)?;
            sock.set_tcp_keepalive(&TcpKeepalive::new().with_time(idle))?;
        }
        None => sock.set_keepalive(false)?,
    }
    Ok(())
}

/// True for accept errors that say "not now" rather than "never": out of
/// descriptors or memory, or a connection that died in the backlog. The
/// accept loop logs them, backs off and goes on.
pub fn is_transient_accept_error(e: &io::Error) -> bool {
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    const ENOBUFS: i32 = 105;
    const ENOMEM: i32 = 12;
    const EPROTO: i32 = 71;
    const EPERM: i32 = 1;
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
            | io::ErrorKind::OutOfMemory
    ) || matches!(
        e.raw_os_error(),
        Some(EMFILE | ENFILE | ENOBUFS | ENOMEM | EPROTO | EPERM)
    )
}

/// Exponential backoff for a failing accept loop: 5 ms doubling to 1 s,
/// back to the start after a success.
#[derive(Debug, Clone)]
pub struct AcceptBackoff {
    next: Duration,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    /// A fresh backoff.
    pub fn new() -> Self {
        Self { next: Self::FIRST }
    }

    /// How long to wait after this failure.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        d
    }

    /// An accept succeeded.
    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        Self::new()
    }
}
