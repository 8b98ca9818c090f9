//! What a driver drives: the protocol core, plain or under TLS. Both
//! server drivers (the async one of this crate, adapter-std's) are written
//! once over [`ServerSession`]; a server picks the session per its options.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use protocol::{
    AckResult, ClientConnection, ClientEvent, ConnectionStats, MessageId, RequestHandle,
    RequestKind, RespondError, ServerConnection, ServerEvent, SubmitError,
};
use protocol_tls::{TlsClient, TlsServer};

use crate::runtime::Input;

/// A server connection as its driver sees it: the plain core's API, which
/// [`TlsServer`] offers too (bytes in and out are then ciphertext).
pub trait ServerSession: Input + Send + 'static {
    /// The next event: a request, the lingering close's FIN, the end.
    fn poll_event(&mut self) -> Option<ServerEvent>;
    /// Answers a request.
    fn respond(
        &mut self,
        handle: RequestHandle,
        result: AckResult,
        now: Instant,
    ) -> Result<(), RespondError>;
    /// Bytes for the socket (under TLS, the answers given since the last
    /// call are encrypted now, together).
    fn transmit(&mut self) -> &[u8];
    /// `n` bytes of [`transmit`](Self::transmit) (or of
    /// [`last_words`](Self::last_words)) were written.
    fn handle_written(&mut self, n: usize, now: Instant);
    /// After the end: bytes worth one write that does not wait, before
    /// the socket closes (under TLS, the alert that says why the session
    /// failed). The plain core has none.
    fn last_words(&self) -> &[u8] {
        &[]
    }
    /// False while the session wants no bytes from the socket.
    fn wants_input(&self) -> bool;
    /// The socket's end of stream.
    fn handle_eof(&mut self, now: Instant);
    /// The socket failed.
    fn handle_io_error(&mut self, kind: io::ErrorKind);
    /// The next deadline.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Fires expired timers.
    fn handle_timeout(&mut self, now: Instant);
    /// Closes gracefully, by `deadline` when given (server shutdown).
    fn close(&mut self, now: Instant, deadline: Option<Instant>);
    /// The core's counters.
    fn stats(&self) -> ConnectionStats;
    /// The client's address from the PROXY header, once it came.
    fn source(&self) -> Option<SocketAddr>;
}

/// Both sessions forward to same-named methods of their own (`transmit`
/// is the plain core's `transmit_buf`: it has nothing to seal).
macro_rules! session {
    ($t:ty, $transmit:ident $(, $last_words:ident)?) => {
        impl ServerSession for $t {
            fn poll_event(&mut self) -> Option<ServerEvent> {
                <$t>::poll_event(self)
            }
            fn respond(
                &mut self,
                handle: RequestHandle,
                result: AckResult,
                now: Instant,
            ) -> Result<(), RespondError> {
                <$t>::respond(self, handle, result, now)
            }
            fn transmit(&mut self) -> &[u8] {
                <$t>::$transmit(self)
            }
            fn handle_written(&mut self, n: usize, now: Instant) {
                <$t>::handle_written(self, n, now)
            }
            fn wants_input(&self) -> bool {
                <$t>::wants_input(self)
            }
            fn handle_eof(&mut self, now: Instant) {
                <$t>::handle_eof(self, now)
            }
            fn handle_io_error(&mut self, kind: io::ErrorKind) {
                <$t>::handle_io_error(self, kind)
            }
            fn poll_timeout(&self) -> Option<Instant> {
                <$t>::poll_timeout(self)
            }
            fn handle_timeout(&mut self, now: Instant) {
                <$t>::handle_timeout(self, now)
            }
            fn close(&mut self, now: Instant, deadline: Option<Instant>) {
                <$t>::close(self, now, deadline)
            }
            fn stats(&self) -> ConnectionStats {
                <$t>::stats(self)
            }
            fn source(&self) -> Option<SocketAddr> {
                <$t>::source(self)
            }
            $(fn last_words(&self) -> &[u8] {
                <$t>::$last_words(self)
            })?
        }
    };
}
session!(ServerConnection, transmit_buf);
session!(TlsServer, transmit, last_words);

impl Input for TlsServer {
    fn input_buffer(&mut self) -> &mut BytesMut {
        TlsServer::input_buffer(self)
    }
    fn appended(&mut self, n: usize, now: Instant) {
        self.handle_input_appended(n, now);
    }
    fn input(&mut self, data: &[u8], now: Instant) {
        self.handle_input(data, now);
    }
}

/// A client connection as its driver sees it: the plain core, or the core
/// under TLS (bytes in and out are then ciphertext).
#[derive(Debug)]
// The plain core stays inline (the common case: no extra allocation or
// indirection); the TLS one is boxed, and is several KiB either way.
#[allow(clippy::large_enum_variant)]
pub enum ClientSession {
    /// The plain core.
    Plain(ClientConnection),
    /// The core under TLS (boxed: rustls' state is large).
    Tls(Box<TlsClient>),
}

/// Calls the same-named method on either session.
macro_rules! either {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            ClientSession::Plain($s) => $e,
            ClientSession::Tls($s) => $e,
        }
    };
}

impl ClientSession {
    /// See [`ClientConnection::request`].
    pub fn request(
        &mut self,
        kind: RequestKind,
        payload: &[u8],
        now: Instant,
    ) -> Result<MessageId, SubmitError> {
        either!(self, s => s.request(kind, payload, now))
    }
    /// See [`ClientConnection::poll_event`].
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        either!(self, s => s.poll_event())
    }
    /// Bytes for the socket (under TLS, the requests queued since the
    /// last call are encrypted now, together).
    pub fn transmit(&mut self) -> &[u8] {
        match self {
            Self::Plain(c) => c.transmit_buf(),
            Self::Tls(t) => t.transmit(),
        }
    }
    /// `n` bytes of [`transmit`](Self::transmit) (or of
    /// [`last_words`](Self::last_words)) were written.
    pub fn handle_written(&mut self, n: usize, now: Instant) {
        either!(self, s => s.handle_written(n, now))
    }
    /// After the end: bytes worth one write that does not wait before the
    /// socket closes (under TLS, the close_notify of a clean end or the
    /// alert of a failed session). The plain core has none.
    pub fn last_words(&mut self) -> &[u8] {
        match self {
            Self::Plain(_) => &[],
            Self::Tls(t) => {
                t.transmit();
                t.last_words()
            }
        }
    }
    /// Bytes read from the socket.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        either!(self, s => s.handle_input(data, now))
    }
    /// The socket's end of stream.
    pub fn handle_eof(&mut self, now: Instant) {
        either!(self, s => s.handle_eof(now))
    }
    /// The socket failed.
    pub fn handle_io_error(&mut self, kind: io::ErrorKind) {
        either!(self, s => s.handle_io_error(kind))
    }
    /// The next deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        either!(self, s => s.poll_timeout())
    }
    /// Fires expired timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        either!(self, s => s.handle_timeout(now))
    }
    /// See [`ClientConnection::close`].
    pub fn close(&mut self, now: Instant) {
        either!(self, s => s.close(now))
    }
    /// The protocol core (in flight, pending output, counters).
    pub fn core(&self) -> &ClientConnection {
        match self {
            Self::Plain(c) => c,
            Self::Tls(t) => t.core(),
        }
    }
    /// True while a TLS handshake is under way.
    pub fn is_handshaking(&self) -> bool {
        matches!(self, Self::Tls(t) if t.is_handshaking())
    }
    /// Output of the conversation not yet written (plaintext).
    pub fn pending_output(&self) -> usize {
        self.core().pending_output()
    }
}

impl Input for ClientSession {
    fn input_buffer(&mut self) -> &mut BytesMut {
        either!(self, s => s.input_buffer())
    }
    fn read_size(&self) -> usize {
        match self {
            ClientSession::Plain(c) => c.read_size(),
            // Ciphertext: the TLS layer reads records, not frames.
            _ => 8 * 1024,
        }
    }
    fn appended(&mut self, n: usize, now: Instant) {
        either!(self, s => s.handle_input_appended(n, now))
    }
    fn input(&mut self, data: &[u8], now: Instant) {
        self.handle_input(data, now);
    }
}
