//! The blocking test client: one connection, its receive buffer and its
//! id counter; connecting, sending, reading one ack, and flooding.

use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use protocol::{
    AckResult, DEFAULT_MAX_FRAME_LEN, IdGenerator, MessageId, Packet, RequestKind, decode,
};
use socket2::{Domain, SockAddr, SockRef, Socket, Type};

use super::PROMPT;
use super::frames::{counter_of, empty_submits, hex_head, request_frame};
use super::stream::{Stream, is_reset};
use crate::Endpoint;

/// Bound on a blocking write of the client (the server is expected to read).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

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
pub(super) enum ReadEnd {
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

/// A test client: one connection, its receive buffer and its id counter.
pub struct TestClient {
    pub(super) name: String,
    pub(super) stream: Stream,
    pub(super) recv: BytesMut,
    pub(super) ids: IdGenerator,
    pub(super) acks_read: u64,
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
    pub(super) fn fill(&mut self, deadline: Instant) -> Result<usize, ReadEnd> {
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
    pub(super) fn try_read_answer(&mut self, deadline: Instant) -> Result<Answer, ReadEnd> {
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

    pub(super) fn partial_note(&self) -> String {
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

    /// `shutdown(Write)`: the client is done sending (FIN).
    pub fn shutdown_write(&self) {
        if let Err(e) = self.stream.shutdown(Shutdown::Write) {
            panic!("{}: shutdown(Write) failed: {e}", self.name);
        }
    }

    /// Closes with SO_LINGER 0 so the kernel sends RST instead of FIN
    /// (TCP; a Unix socket is simply closed).
    pub fn reset(self) {
        if let Some(s) = self.stream.tcp()
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
