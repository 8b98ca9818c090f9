//! The client side of the scenarios: blocking std sockets with a timeout on
//! every read, the `protocol` codec, and assertions that say what was
//! expected and what came instead.
//!
//! Every helper that waits takes (or uses) a bound, so a scenario never
//! hangs: a server that does not answer fails the scenario with a message
//! naming the client, the wait, and what the socket did.

use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use protocol::{
    ACK_FRAME_LEN, AckResult, CommandId, DEFAULT_MAX_FRAME_LEN, IdGenerator, MessageId, Packet,
    REQUEST_OVERHEAD, RequestKind, decode, encode_ack, encode_request,
};
use socket2::{Domain, SockAddr, SockRef, Socket, Type};

use crate::{Endpoint, Harness, RunningServer, ServerSpec};

/// How long an answer the server owes at once may take to arrive. Generous:
/// the machine running the suite may be busy; a server that does not answer
/// at all still fails in bounded time.
pub const PROMPT: Duration = Duration::from_secs(3);

/// Bound on a blocking write of the client (the server is expected to read).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// A server started for a scenario: shut down when the scenario ends, and
/// in the background if the scenario panics (so a failing scenario neither
/// hangs nor leaves a server behind for long). A Unix server's socket file
/// is removed if the server leaves it behind: after a graceful shutdown
/// that fails the scenario, after one in the background silently.
pub struct Server {
    inner: Option<Box<dyn RunningServer>>,
    endpoint: Endpoint,
    harness: &'static str,
    shutdown_limit: Duration,
}

/// Removes the socket file of a Unix `endpoint` if it is still there;
/// true if it was.
fn remove_left_socket(endpoint: &Endpoint) -> bool {
    match endpoint {
        Endpoint::Unix(path) => std::fs::remove_file(path).is_ok(),
        Endpoint::Tcp(_) => false,
    }
}

impl Server {
    /// Starts a server of the harness' adapter.
    pub fn start(h: &dyn Harness, spec: ServerSpec) -> Self {
        let shutdown_limit = spec.shutdown_timeout + Duration::from_secs(5);
        let inner = h.start(spec);
        let endpoint = inner.endpoint();
        Self {
            inner: Some(inner),
            endpoint,
            harness: h.name(),
            shutdown_limit,
        }
    }

    /// Where it listens.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The TCP address it listens on (panics, saying so, on a Unix server).
    pub fn tcp_addr(&self) -> SocketAddr {
        match &self.endpoint {
            Endpoint::Tcp(a) => *a,
            Endpoint::Unix(p) => panic!(
                "{}: a TCP server was asked for, the harness started one on unix:{}",
                self.harness,
                p.display()
            ),
        }
    }

    /// Graceful shutdown; panics if [`RunningServer::shutdown`] does not
    /// return within the spec's `shutdown_timeout` plus 5 s, or returns
    /// with a Unix server's socket file still there. Returns how long it
    /// took.
    pub fn shutdown(mut self) -> Duration {
        let Some(inner) = self.inner.take() else {
            return Duration::ZERO;
        };
        let started = Instant::now();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            inner.shutdown();
            let _ = tx.send(());
        });
        match rx.recv_timeout(self.shutdown_limit) {
            Ok(()) => {
                let took = started.elapsed();
                assert!(
                    !remove_left_socket(&self.endpoint),
                    "{}: after shutdown the socket file of {} must be removed (the suite removed it)",
                    self.harness,
                    self.endpoint
                );
                took
            }
            Err(e) => {
                remove_left_socket(&self.endpoint);
                match e {
                    mpsc::RecvTimeoutError::Timeout => panic!(
                        "{}: RunningServer::shutdown on {} did not return within {:?}",
                        self.harness, self.endpoint, self.shutdown_limit
                    ),
                    mpsc::RecvTimeoutError::Disconnected => panic!(
                        "{}: RunningServer::shutdown on {} panicked",
                        self.harness, self.endpoint
                    ),
                }
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            // Not waited for: the scenario is failing (or forgot to shut
            // down) and must not hang on a server that does not stop.
            let endpoint = self.endpoint.clone();
            thread::spawn(move || {
                // A panic in it has said what it is already.
                let _ = panic::catch_unwind(AssertUnwindSafe(|| inner.shutdown()));
                remove_left_socket(&endpoint);
            });
        }
    }
}

/// A blocking client stream: TCP or Unix.
#[derive(Debug)]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// Unix domain socket.
    Unix(UnixStream),
}

impl Stream {
    /// Connects to `endpoint` (TCP with TCP_NODELAY), within [`PROMPT`].
    pub fn connect(endpoint: &Endpoint) -> io::Result<Self> {
        match endpoint {
            Endpoint::Tcp(a) => {
                let s = TcpStream::connect_timeout(a, PROMPT)?;
                s.set_nodelay(true)?;
                Ok(Self::Tcp(s))
            }
            Endpoint::Unix(p) => UnixStream::connect(p).map(Self::Unix),
        }
    }

    /// Sets the read timeout (`None` blocks forever: never used here).
    pub fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_read_timeout(d),
            Self::Unix(s) => s.set_read_timeout(d),
        }
    }

    /// Sets the write timeout.
    pub fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_write_timeout(d),
            Self::Unix(s) => s.set_write_timeout(d),
        }
    }

    /// Non-blocking mode on or off.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_nonblocking(on),
            Self::Unix(s) => s.set_nonblocking(on),
        }
    }

    /// `shutdown(2)`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.shutdown(how),
            Self::Unix(s) => s.shutdown(how),
        }
    }

    /// A second handle to the same socket.
    pub fn try_clone(&self) -> io::Result<Self> {
        match self {
            Self::Tcp(s) => s.try_clone().map(Self::Tcp),
            Self::Unix(s) => s.try_clone().map(Self::Unix),
        }
    }

    /// The pending socket error (SO_ERROR), taken.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Self::Tcp(s) => s.take_error(),
            Self::Unix(s) => s.take_error(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.read(buf),
            Self::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.write(buf),
            Self::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// True for the errors that mean "the peer reset the connection".
pub fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}

/// How the server ended a connection, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// A read returned 0: the server sent FIN.
    Eof,
    /// A read failed with a reset (the server closed with unread data, or aborted).
    Reset,
}

/// One ack as the client received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// Conn or Submit.
    pub kind: RequestKind,
    /// The id it echoes.
    pub id: MessageId,
    /// Its result byte.
    pub result: AckResult,
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} for id {} with result {}",
            self.kind.ack_command().name(),
            self.id,
            self.result
        )
    }
}

/// What a read brought, short of data.
enum ReadEnd {
    Eof,
    Reset(io::Error),
    TimedOut,
    Failed(io::Error),
}

impl fmt::Display for ReadEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Eof => f.write_str("was closed by the server (EOF)"),
            Self::Reset(e) => write!(f, "was reset ({e})"),
            Self::TimedOut => f.write_str("stayed silent"),
            Self::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}

/// Hex of the first bytes of `b`, for messages.
pub fn hex_head(b: &[u8]) -> String {
    let mut s: String = b.iter().take(32).map(|x| format!("{x:02x}")).collect();
    if b.len() > 32 {
        s.push_str(&format!("... ({} bytes)", b.len()));
    }
    s
}

/// The 14 bytes of one ack frame.
pub fn ack_frame(kind: RequestKind, id: &MessageId, result: AckResult) -> [u8; ACK_FRAME_LEN] {
    let mut out = BytesMut::with_capacity(ACK_FRAME_LEN);
    encode_ack(kind, id, result, &mut out);
    let mut frame = [0u8; ACK_FRAME_LEN];
    frame.copy_from_slice(&out);
    frame
}

/// One whole request frame.
pub fn request_frame(kind: RequestKind, id: &MessageId, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    if let Err(e) = encode_request(kind, id, payload, DEFAULT_MAX_FRAME_LEN, &mut out) {
        panic!(
            "scenario bug: cannot encode a {kind:?} of {} bytes: {e}",
            payload.len()
        );
    }
    out.to_vec()
}

/// A test client: one connection, its receive buffer and its id counter.
pub struct TestClient {
    name: String,
    stream: Stream,
    recv: BytesMut,
    ids: IdGenerator,
    acks_read: u64,
}

impl TestClient {
    /// Connects, or panics saying who could not connect where.
    pub fn connect(endpoint: &Endpoint, name: impl Into<String>) -> Self {
        let name = name.into();
        match Stream::connect(endpoint) {
            Ok(stream) => Self::from_stream(stream, name),
            Err(e) => panic!("{name}: cannot connect to {endpoint}: {e}"),
        }
    }

    /// Connects, or returns the error.
    pub fn try_connect(endpoint: &Endpoint, name: impl Into<String>) -> io::Result<Self> {
        Stream::connect(endpoint).map(|s| Self::from_stream(s, name.into()))
    }

    /// Connects over TCP with small socket buffers (SO_RCVBUF / SO_SNDBUF
    /// set before connecting, so the kernel holds little on the client's
    /// side and a server that keeps writing to it soon has to wait).
    pub fn connect_small_buffers(addr: SocketAddr, name: impl Into<String>, size: usize) -> Self {
        let name = name.into();
        let connect = || -> io::Result<TcpStream> {
            let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
            sock.set_recv_buffer_size(size)?;
            sock.set_send_buffer_size(size)?;
            sock.set_tcp_nodelay(true)?;
            sock.connect_timeout(&SockAddr::from(addr), PROMPT)?;
            Ok(sock.into())
        };
        match connect() {
            Ok(s) => Self::from_stream(Stream::Tcp(s), name),
            Err(e) => panic!("{name}: cannot connect to {addr} with {size}-byte buffers: {e}"),
        }
    }

    /// Connects to a Unix socket with a small SO_SNDBUF (set before
    /// connecting). On a Unix stream socket the sender's buffer bounds what
    /// waits unread on the receiving side too, so a server that stops
    /// reading from this client soon makes its writes wait.
    pub fn connect_unix_small_buffer(
        path: &std::path::Path,
        name: impl Into<String>,
        size: usize,
    ) -> Self {
        let name = name.into();
        let connect = || -> io::Result<UnixStream> {
            let sock = Socket::new(Domain::UNIX, Type::STREAM, None)?;
            sock.set_send_buffer_size(size)?;
            sock.connect(&SockAddr::unix(path)?)?;
            Ok(sock.into())
        };
        match connect() {
            Ok(s) => Self::from_stream(Stream::Unix(s), name),
            Err(e) => panic!(
                "{name}: cannot connect to unix:{} with a {size}-byte send buffer: {e}",
                path.display()
            ),
        }
    }

    fn from_stream(stream: Stream, name: String) -> Self {
        Self {
            name,
            stream,
            recv: BytesMut::new(),
            ids: IdGenerator::new(),
            acks_read: 0,
        }
    }

    /// The client's name in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The socket.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// The socket, to write to it directly (non-blocking drivers).
    pub fn stream_mut(&mut self) -> &mut Stream {
        &mut self.stream
    }

    /// The next id of this client's counter (00000001, 00000002, ...).
    pub fn next_id(&mut self) -> MessageId {
        self.ids.next_id()
    }

    /// A Submit frame with the next id.
    pub fn submit_frame(&mut self, payload: &[u8]) -> (MessageId, Vec<u8>) {
        let id = self.next_id();
        (id, request_frame(RequestKind::Submit, &id, payload))
    }

    /// A Conn frame with the next id.
    pub fn conn_frame(&mut self, payload: &[u8]) -> (MessageId, Vec<u8>) {
        let id = self.next_id();
        (id, request_frame(RequestKind::Conn, &id, payload))
    }

    /// `n` Submit frames with the next ids, concatenated; payload `i` is
    /// `payload(i)`.
    pub fn submit_frames(
        &mut self,
        n: usize,
        payload: impl Fn(usize) -> Vec<u8>,
    ) -> (Vec<MessageId>, Vec<u8>) {
        let mut ids = Vec::with_capacity(n);
        let mut bytes = Vec::new();
        for i in 0..n {
            let (id, f) = self.submit_frame(&payload(i));
            ids.push(id);
            bytes.extend_from_slice(&f);
        }
        (ids, bytes)
    }

    /// Writes all of `bytes` (bounded by a write timeout), or panics saying so.
    pub fn send(&mut self, bytes: &[u8]) {
        if let Err(e) = self.try_send(bytes) {
            panic!("{}: sending {} bytes failed: {e}", self.name, bytes.len());
        }
    }

    /// Writes all of `bytes` (bounded by a write timeout).
    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        self.stream.write_all(bytes)
    }

    /// Sends one Submit with the next id; returns the id.
    pub fn submit(&mut self, payload: &[u8]) -> MessageId {
        let (id, f) = self.submit_frame(payload);
        self.send(&f);
        id
    }

    /// Sends one Conn with the next id; returns the id.
    pub fn conn(&mut self, payload: &[u8]) -> MessageId {
        let (id, f) = self.conn_frame(payload);
        self.send(&f);
        id
    }

    /// Sends `n` Submits in one write (pipelined); returns their ids.
    pub fn pipeline(&mut self, n: usize, payload: &[u8]) -> Vec<MessageId> {
        let (ids, bytes) = self.submit_frames(n, |_| payload.to_vec());
        self.send(&bytes);
        ids
    }

    /// One read into the receive buffer, waiting until `deadline` at most.
    fn fill(&mut self, deadline: Instant) -> Result<usize, ReadEnd> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadEnd::TimedOut);
        }
        if let Err(e) = self.stream.set_read_timeout(Some(left)) {
            return Err(ReadEnd::Failed(e));
        }
        let mut buf = [0u8; 64 * 1024];
        loop {
            return match self.stream.read(&mut buf) {
                Ok(0) => Err(ReadEnd::Eof),
                Ok(n) => {
                    self.recv.extend_from_slice(&buf[..n]);
                    Ok(n)
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    Err(ReadEnd::TimedOut)
                }
                Err(e) if is_reset(&e) => Err(ReadEnd::Reset(e)),
                Err(e) => Err(ReadEnd::Failed(e)),
            };
        }
    }

    /// The next ack, or why none came by `deadline`.
    fn try_read_answer(&mut self, deadline: Instant) -> Result<Answer, ReadEnd> {
        loop {
            let raw = self.recv.get(4..).unwrap_or_default().to_vec();
            match decode(&mut self.recv, DEFAULT_MAX_FRAME_LEN) {
                Ok(Some(packet)) => {
                    let answer = match packet {
                        Packet::SubmitAck { id, result } => Answer {
                            kind: RequestKind::Submit,
                            id,
                            result,
                        },
                        Packet::ConnAck { id, result } => Answer {
                            kind: RequestKind::Conn,
                            id,
                            result,
                        },
                        other => panic!(
                            "{}: the server sent a {} packet (only acks may come from a server): {}",
                            self.name,
                            other.command(),
                            hex_head(&raw)
                        ),
                    };
                    self.acks_read += 1;
                    return Ok(answer);
                }
                Ok(None) => self.fill(deadline)?,
                Err(e) => panic!(
                    "{}: the server sent a bad frame: {e}: {}",
                    self.name,
                    hex_head(&raw)
                ),
            };
        }
    }

    /// The next ack, within `within`; panics naming what was expected.
    pub fn read_answer(&mut self, within: Duration, expected: &dyn fmt::Display) -> Answer {
        let n = self.acks_read + 1;
        match self.try_read_answer(Instant::now() + within) {
            Ok(a) => a,
            Err(end) => panic!(
                "{}: expected {expected} (ack #{n} on this connection) within {within:?}, but the connection {end}{}",
                self.name,
                self.partial_note()
            ),
        }
    }

    fn partial_note(&self) -> String {
        if self.recv.is_empty() {
            String::new()
        } else {
            format!(
                " ({} bytes of an incomplete frame received: {})",
                self.recv.len(),
                hex_head(&self.recv)
            )
        }
    }

    /// Reads the next ack and checks its kind, id and result.
    pub fn expect_ack(&mut self, kind: RequestKind, id: MessageId, result: AckResult) {
        let want = Answer { kind, id, result };
        let n = self.acks_read + 1;
        let got = self.read_answer(PROMPT, &want);
        assert_eq!(
            got, want,
            "{}: ack #{n} on this connection: expected {want}, got {got}",
            self.name
        );
    }

    /// Reads one SubmitAck per id, in order, each with `result`.
    pub fn expect_submit_acks(&mut self, ids: &[MessageId], result: AckResult) {
        for id in ids {
            self.expect_ack(RequestKind::Submit, *id, result);
        }
    }

    /// Sends a Submit and waits for its ok ack; returns the round-trip time.
    pub fn round_trip(&mut self, payload: &[u8]) -> Duration {
        let t = Instant::now();
        let id = self.submit(payload);
        self.expect_ack(RequestKind::Submit, id, AckResult::OK);
        t.elapsed()
    }

    /// Like [`round_trip`](Self::round_trip) but returns what went wrong
    /// instead of panicking (for probing a server that may close us).
    pub fn try_round_trip(&mut self, payload: &[u8], within: Duration) -> Result<Duration, String> {
        let t = Instant::now();
        let (id, f) = self.submit_frame(payload);
        self.try_send(&f).map_err(|e| format!("send failed: {e}"))?;
        match self.try_read_answer(t + within) {
            Ok(a) if a.kind == RequestKind::Submit && a.id == id && a.result.is_ok() => {
                Ok(t.elapsed())
            }
            Ok(a) => Err(format!(
                "expected SubmitAck for id {id} with result 0, got {a}"
            )),
            Err(end) => Err(format!("the connection {end}")),
        }
    }

    /// Reads exactly `want.len()` bytes and compares them with `want`.
    pub fn expect_bytes(&mut self, want: &[u8], within: Duration) {
        let deadline = Instant::now() + within;
        while self.recv.len() < want.len() {
            if let Err(end) = self.fill(deadline) {
                panic!(
                    "{}: expected the {} bytes {} within {within:?}, but the connection {end} after {} bytes: {}",
                    self.name,
                    want.len(),
                    hex_head(want),
                    self.recv.len(),
                    hex_head(&self.recv)
                );
            }
        }
        let got = self.recv.split_to(want.len());
        assert_eq!(
            &got[..],
            want,
            "{}: expected the bytes {}, got {}",
            self.name,
            hex_head(want),
            hex_head(&got)
        );
    }

    /// Reads `n` SubmitAcks for the ids `first`, `first + 1`, ... (by the
    /// 8-digit counter), all with result 0, comparing whole frames: the fast
    /// path for long pipelines.
    pub fn expect_submit_ack_run(&mut self, first: u32, n: u64, each_within: Duration) {
        let mut want = ack_frame(
            RequestKind::Submit,
            &MessageId::from_counter(first),
            AckResult::OK,
        );
        for i in 0..n {
            while self.recv.len() < ACK_FRAME_LEN {
                if let Err(end) = self.fill(Instant::now() + each_within) {
                    panic!(
                        "{}: expected {n} SubmitAcks, got {i}, then the connection {end} for {each_within:?}{}",
                        self.name,
                        self.partial_note()
                    );
                }
            }
            self.take_run_ack(&mut want, i + 1);
        }
    }

    /// Takes the whole ack at the head of the buffer, which must be `want`
    /// (the `nth` of a run), and moves `want` on to the next id.
    fn take_run_ack(&mut self, want: &mut [u8; ACK_FRAME_LEN], nth: u64) {
        if self.recv[..ACK_FRAME_LEN] != *want {
            let id = MessageId(want[5..13].try_into().unwrap_or_default());
            // Decode it to say what it is.
            let got = self.read_answer(PROMPT, &"an ack");
            panic!(
                "{}: ack #{nth} of the run: expected SubmitAck for id {id} with result 0 (ok), got {got}",
                self.name
            );
        }
        self.recv.advance(ACK_FRAME_LEN);
        self.acks_read += 1;
        increment_digits(&mut want[5..13]);
    }

    /// Reads SubmitAcks for the ids `first`, `first + 1`, ... (each with
    /// result 0) while the load is on: until `done()` is true and `sent()`
    /// acks came. Returns how many came and the longest wait for bytes
    /// while acks were owed; panics if one wait exceeds `each_within`.
    pub fn read_ack_run_while_loaded(
        &mut self,
        first: u32,
        sent: impl Fn() -> u64,
        done: impl Fn() -> bool,
        each_within: Duration,
    ) -> (u64, Duration) {
        let mut want = ack_frame(
            RequestKind::Submit,
            &MessageId::from_counter(first),
            AckResult::OK,
        );
        let mut n = 0u64;
        let mut longest = Duration::ZERO;
        let mut owed_since: Option<Instant> = None;
        loop {
            while self.recv.len() >= ACK_FRAME_LEN {
                n += 1;
                self.take_run_ack(&mut want, n);
            }
            // Read `done` before `sent`: once done, `sent` is final.
            let finished = done();
            let owed = sent().saturating_sub(n);
            if finished && owed == 0 {
                return (n, longest);
            }
            let now = Instant::now();
            if owed == 0 {
                owed_since = None;
            } else {
                let since = *owed_since.get_or_insert(now);
                longest = longest.max(now - since);
                if now - since > each_within {
                    panic!(
                        "{}: {owed} acks owed and no byte for {:?} (after {n} acks)",
                        self.name,
                        now - since
                    );
                }
            }
            match self.fill(now + Duration::from_millis(50)) {
                Ok(_) => owed_since = None,
                Err(ReadEnd::TimedOut) => {}
                Err(end) => panic!(
                    "{}: expected acks while loading the server; after {n} acks the connection {end}",
                    self.name
                ),
            }
        }
    }

    /// Reads SubmitAcks for the ids `first`, `first + 1`, ... (each with
    /// result 0) until the server closes the connection; at most `max` of
    /// them. Returns how many came and how the connection ended. For a
    /// connection the server cuts: what came must be a prefix, in order.
    pub fn read_ack_run_until_closed(
        &mut self,
        first: u32,
        max: u64,
        within: Duration,
    ) -> (u64, Closed) {
        let deadline = Instant::now() + within;
        let mut counter = first;
        let mut n = 0u64;
        loop {
            match self.try_read_answer(deadline) {
                Ok(got) => {
                    let id = MessageId::from_counter(counter);
                    let want = Answer {
                        kind: RequestKind::Submit,
                        id,
                        result: AckResult::OK,
                    };
                    assert!(
                        n < max,
                        "{}: {max} Submits were sent, then came one ack more: {got}",
                        self.name
                    );
                    assert_eq!(
                        got,
                        want,
                        "{}: ack #{} of the run: expected {want}, got {got}",
                        self.name,
                        n + 1
                    );
                    n += 1;
                    counter = (counter + 1) % IdGenerator::MODULUS;
                }
                Err(ReadEnd::Eof) => return (n, Closed::Eof),
                Err(ReadEnd::Reset(_)) => return (n, Closed::Reset),
                Err(ReadEnd::TimedOut) => panic!(
                    "{}: expected acks then the server closing the connection within {within:?}; \
                     it was still open then, after {n} acks{}",
                    self.name,
                    self.partial_note()
                ),
                Err(end) => panic!(
                    "{}: expected acks then the server closing the connection; after {n} acks \
                     the connection {end}{}",
                    self.name,
                    self.partial_note()
                ),
            }
        }
    }

    /// Waits until the server closes the connection, with nothing more
    /// arriving first; panics if data comes or it stays open past `within`.
    pub fn expect_closed(&mut self, within: Duration) -> Closed {
        match self.wait_closed(within) {
            Ok(c) => c,
            Err(msg) => panic!("{msg}"),
        }
    }

    /// [`expect_closed`](Self::expect_closed), returning the failure.
    pub fn wait_closed(&mut self, within: Duration) -> Result<Closed, String> {
        if !self.recv.is_empty() {
            return Err(format!(
                "{}: expected the server to close the connection, but {} more bytes had come: {}",
                self.name,
                self.recv.len(),
                hex_head(&self.recv)
            ));
        }
        match self.fill(Instant::now() + within) {
            Ok(n) => Err(format!(
                "{}: expected the server to close the connection, got {n} more bytes: {}",
                self.name,
                hex_head(&self.recv)
            )),
            Err(ReadEnd::Eof) => Ok(Closed::Eof),
            Err(ReadEnd::Reset(_)) => Ok(Closed::Reset),
            Err(ReadEnd::TimedOut) => Err(format!(
                "{}: expected the server to close the connection within {within:?}, it stayed open",
                self.name
            )),
            Err(ReadEnd::Failed(e)) => Err(format!(
                "{}: expected the server to close the connection, the read failed: {e}",
                self.name
            )),
        }
    }

    /// Checks that nothing arrives and the connection stays open for `d`.
    pub fn expect_silence(&mut self, d: Duration) {
        if !self.recv.is_empty() {
            panic!(
                "{}: expected nothing more from the server, but {} bytes had come: {}",
                self.name,
                self.recv.len(),
                hex_head(&self.recv)
            );
        }
        match self.fill(Instant::now() + d) {
            Err(ReadEnd::TimedOut) => {}
            Ok(n) => panic!(
                "{}: expected nothing from the server for {d:?}, got {n} bytes: {}",
                self.name,
                hex_head(&self.recv)
            ),
            Err(end) => panic!(
                "{}: expected the connection to stay open and silent for {d:?}, but it {end}",
                self.name
            ),
        }
    }

    /// Checks, without waiting, that the connection is open and nothing
    /// has arrived.
    pub fn expect_open_now(&mut self) {
        let result = self.stream.set_nonblocking(true).and_then(|()| {
            let mut b = [0u8; 64];
            let r = self.stream.read(&mut b);
            self.stream.set_nonblocking(false)?;
            Ok(r)
        });
        match result {
            Ok(Err(e)) if e.kind() == ErrorKind::WouldBlock => {}
            Ok(Ok(0)) => panic!(
                "{}: expected the connection still open, it was closed (EOF)",
                self.name
            ),
            Ok(Ok(n)) => panic!(
                "{}: expected nothing from the server yet, got {n} bytes",
                self.name
            ),
            Ok(Err(e)) => panic!(
                "{}: expected the connection still open, the read failed: {e}",
                self.name
            ),
            Err(e) => panic!("{}: cannot probe the socket: {e}", self.name),
        }
    }

    /// `shutdown(Write)`: the client is done sending (FIN).
    pub fn shutdown_write(&self) {
        if let Err(e) = self.stream.shutdown(Shutdown::Write) {
            panic!("{}: shutdown(Write) failed: {e}", self.name);
        }
    }

    /// Closes with SO_LINGER 0 so the kernel sends RST instead of FIN
    /// (TCP; a Unix socket is simply closed).
    pub fn reset(self) {
        if let Stream::Tcp(s) = &self.stream
            && let Err(e) = SockRef::from(s).set_linger(Some(Duration::ZERO))
        {
            panic!("{}: cannot set SO_LINGER 0: {e}", self.name);
        }
        drop(self);
    }

    /// Pipelines empty-payload Submits without reading anything back
    /// until no byte could be written for `stall`
    /// (the server stopped reading from us), or the server reset the
    /// connection (see [`Stalled::reset`]), or `cap` bytes went out (the
    /// server kept reading: panics saying so).
    pub fn pipeline_until_stalled(&mut self, stall: Duration, cap: usize) -> Stalled {
        const CHUNK_FRAMES: usize = 1024;
        // Blocking writes that give up after a short wait: they return as
        // soon as the kernel takes some bytes, and tell when it takes none.
        if let Err(e) = self
            .stream
            .set_write_timeout(Some(Duration::from_millis(20)))
        {
            panic!("{}: cannot set a write timeout: {e}", self.name);
        }
        let first = self.ids.peek();
        let mut chunk: Vec<u8> = Vec::new();
        let mut off = 0;
        let mut frames = 0u64;
        let mut written = 0usize;
        let mut progress_at = Instant::now();
        let mut reset = false;
        loop {
            if off == chunk.len() {
                if written >= cap {
                    panic!(
                        "{}: the server kept reading: {written} bytes ({frames} Submits) went out \
                         while the client read none of their acks; it must stop reading once its \
                         unsent output is over the high-water mark",
                        self.name
                    );
                }
                let first = counter_of(&self.ids.peek());
                chunk = empty_submits(first, CHUNK_FRAMES);
                self.ids = IdGenerator::starting_at(first.wrapping_add(CHUNK_FRAMES as u32));
                off = 0;
                frames += CHUNK_FRAMES as u64;
            }
            match self.stream.write(&chunk[off..]) {
                Ok(n) => {
                    off += n;
                    written += n;
                    progress_at = Instant::now();
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if progress_at.elapsed() >= stall {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if is_reset(&e) => {
                    reset = true;
                    break;
                }
                Err(e) => panic!(
                    "{}: writing the pipeline failed after {written} bytes: {e}",
                    self.name
                ),
            }
        }
        chunk.drain(..off);
        Stalled {
            first_id: first,
            frames,
            written,
            unsent: chunk,
            reset,
        }
    }
}

/// Where [`TestClient::pipeline_until_stalled`] stopped.
#[derive(Debug)]
pub struct Stalled {
    /// The id of the first Submit of the pipeline.
    pub first_id: MessageId,
    /// Submits generated (the last ones may be in `unsent`, whole or in part).
    pub frames: u64,
    /// Bytes written.
    pub written: usize,
    /// The bytes of the generated frames not written yet.
    pub unsent: Vec<u8>,
    /// The server reset the connection while we were writing (so it is
    /// closed, not stalled).
    pub reset: bool,
}

impl Stalled {
    /// The first id as its counter value.
    pub fn first_counter(&self) -> u32 {
        counter_of(&self.first_id)
    }
}

/// The counter value an id of 8 ASCII digits spells.
pub fn counter_of(id: &MessageId) -> u32 {
    id.0.iter().fold(0u32, |n, d| {
        n.wrapping_mul(10)
            .wrapping_add(u32::from(d.wrapping_sub(b'0')))
    })
}

/// Adds 1 to a run of ASCII decimal digits, wrapping from all 9s to all 0s
/// (the id counter's rule).
fn increment_digits(digits: &mut [u8]) {
    for d in digits.iter_mut().rev() {
        if *d == b'9' {
            *d = b'0';
        } else {
            *d += 1;
            return;
        }
    }
}

/// `n` empty-payload Submit frames with the ids `first`, `first + 1`, ...
/// (fast: the suite sends millions of them).
pub fn empty_submits(first: u32, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * REQUEST_OVERHEAD);
    let mut frame = [0u8; REQUEST_OVERHEAD];
    frame[..4].copy_from_slice(&(REQUEST_OVERHEAD as u32).to_be_bytes());
    frame[4] = CommandId::Submit.as_u8();
    frame[5..].copy_from_slice(MessageId::from_counter(first).as_bytes());
    for _ in 0..n {
        out.extend_from_slice(&frame);
        increment_digits(&mut frame[5..]);
    }
    out
}

/// The message of a panic payload (from `JoinHandle::join`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        "(a panic without a message)".to_string()
    }
}

/// Joins the threads and panics with every failure's message if any failed.
pub fn join_all<T>(what: &str, handles: Vec<thread::JoinHandle<T>>) -> Vec<T> {
    let total = handles.len();
    let mut out = Vec::with_capacity(total);
    let mut failures = Vec::new();
    for h in handles {
        match h.join() {
            Ok(v) => out.push(v),
            Err(p) => failures.push(panic_message(p.as_ref())),
        }
    }
    if !failures.is_empty() {
        let shown: Vec<_> = failures.iter().take(5).map(String::as_str).collect();
        panic!(
            "{what}: {} of {total} failed:\n  {}",
            failures.len(),
            shown.join("\n  ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_submits_match_the_codec_and_wrap_like_the_id_counter() {
        let fast = empty_submits(99_999_998, 3);
        let mut ids = IdGenerator::starting_at(99_999_998);
        let slow: Vec<u8> = (0..3)
            .flat_map(|_| request_frame(RequestKind::Submit, &ids.next_id(), b""))
            .collect();
        assert_eq!(fast, slow);
        assert_eq!(&fast[2 * 13 + 5..3 * 13], b"00000000");
        assert_eq!(counter_of(&MessageId(*b"00012345")), 12345);
    }

    #[test]
    fn the_seed_frames_are_what_the_codec_makes() {
        let f = request_frame(
            RequestKind::Submit,
            &MessageId(*b"00000001"),
            b"helped-lester-8f15",
        );
        assert_eq!(f, crate::scenarios::SEED_SUBMIT);
        assert_eq!(f.len(), 31);
        let ack = ack_frame(RequestKind::Submit, &MessageId(*b"00000001"), AckResult::OK);
        assert_eq!(&ack[..], crate::scenarios::SEED_SUBMIT_ACK);
    }
}
