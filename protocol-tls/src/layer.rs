//! The one TLS layer: a rustls connection under a protocol core, both
//! sans-IO, with the driver surface the plain core has.

use std::collections::VecDeque;
use std::io::{self, BufRead as _, Write as _};
use std::time::Instant;

use bytes::{Buf as _, BytesMut};
use protocol::{CloseReason, PeerIdentity};

use crate::identity::peer_identity;

/// Ciphertext from the peer buffered beyond what rustls took, above which
/// the layer asks for no more input (two records).
const TLS_IN_LIMIT: usize = 2 * 16 * 1024 + 512;
/// Ciphertext waiting for the socket, above which no more of the core's
/// output is encrypted: the core keeps the rest, so its high-water mark
/// and write-stall clock see the peer that does not read.
const TLS_OUT_LIMIT: usize = 64 * 1024;

/// What the layer needs of the protocol core under it (both sides').
pub trait Core {
    /// Plaintext from the peer.
    fn handle_input(&mut self, data: &[u8], now: Instant);
    /// False while the core takes no input (backpressure, or input over).
    fn wants_input(&self) -> bool;
    /// Plaintext for the peer, not yet written.
    fn transmit_buf(&self) -> &[u8];
    /// `n` bytes of [`transmit_buf`](Core::transmit_buf) reached the peer's socket.
    fn handle_written(&mut self, n: usize, now: Instant);
    /// The peer closed its side.
    fn handle_eof(&mut self, now: Instant);
    /// The secure channel failed: end at once.
    fn fail(&mut self, reason: CloseReason);
    /// The handshake finished; `identity` is who the peer proved to be.
    fn handshake_done(&mut self, identity: Option<PeerIdentity>, now: Instant);
    /// Takes what comes before TLS off the front of the socket's bytes
    /// (the server's PROXY protocol header); true once TLS may read.
    /// `eof`: no more bytes will come.
    fn take_preamble(&mut self, buf: &mut BytesMut, eof: bool, now: Instant) -> bool;
    /// The core is done.
    fn is_closed(&self) -> bool;
    /// The core queues nothing after what its `transmit_buf` holds, and
    /// wants the peer told so (close_notify) once that is encrypted: the
    /// client after `close`. A server's end of stream is its core's
    /// `ShutdownWrite` instead.
    fn ends_its_output(&self) -> bool;
    /// The core's next deadline.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Fires the core's expired timers.
    fn handle_timeout(&mut self, now: Instant);
    /// The socket failed.
    fn handle_io_error(&mut self, kind: io::ErrorKind);
}

/// The `Core` methods that are the cores' own, same-named.
macro_rules! forward_core {
    ($t:ty) => {
        fn handle_input(&mut self, data: &[u8], now: Instant) {
            <$t>::handle_input(self, data, now);
        }
        fn transmit_buf(&self) -> &[u8] {
            <$t>::transmit_buf(self)
        }
        fn handle_written(&mut self, n: usize, now: Instant) {
            <$t>::handle_written(self, n, now);
        }
        fn handle_eof(&mut self, now: Instant) {
            <$t>::handle_eof(self, now);
        }
        fn fail(&mut self, reason: CloseReason) {
            self.abort(reason);
        }
        fn is_closed(&self) -> bool {
            <$t>::is_closed(self)
        }
        fn poll_timeout(&self) -> Option<Instant> {
            <$t>::poll_timeout(self)
        }
        fn handle_timeout(&mut self, now: Instant) {
            <$t>::handle_timeout(self, now);
        }
        fn handle_io_error(&mut self, kind: io::ErrorKind) {
            <$t>::handle_io_error(self, kind);
        }
    };
}

impl Core for protocol::ServerConnection {
    forward_core!(protocol::ServerConnection);
    fn wants_input(&self) -> bool {
        protocol::ServerConnection::wants_input(self)
    }
    fn handshake_done(&mut self, identity: Option<PeerIdentity>, now: Instant) {
        protocol::ServerConnection::handshake_done(self, identity, now);
    }
    fn ends_its_output(&self) -> bool {
        false
    }
    fn take_preamble(&mut self, buf: &mut BytesMut, eof: bool, now: Instant) -> bool {
        self.take_proxy_header(buf, eof, now)
    }
}

impl Core for protocol::ClientConnection {
    forward_core!(protocol::ClientConnection);
    fn wants_input(&self) -> bool {
        !self.is_closed()
    }
    fn handshake_done(&mut self, _identity: Option<PeerIdentity>, _now: Instant) {}
    fn ends_its_output(&self) -> bool {
        self.is_closing()
    }
    fn take_preamble(&mut self, _buf: &mut BytesMut, _eof: bool, _now: Instant) -> bool {
        true
    }
}

/// A protocol core `C` spoken over TLS: bytes from the socket go in
/// through [`input_buffer`](Self::input_buffer) / [`handle_input`](Self::handle_input),
/// bytes for the socket come out of [`transmit_buf`](Self::transmit_buf),
/// exactly as with the plain core; the core's own events, answers and
/// timers are reached through [`core`](Self::core) / [`core_mut`](Self::core_mut)
/// (call [`pump`](Self::pump) after changing it).
///
/// The core's output is credited to it as written only once the records
/// that carry it reached the socket, so its high-water mark, its
/// write-stall timeout and its shutdown deadline see the real peer.
#[derive(Debug)]
pub struct Tls<C> {
    tls: rustls::Connection,
    core: C,
    /// Ciphertext read from the socket that rustls has not taken yet.
    tls_in: BytesMut,
    /// Ciphertext for the socket.
    tls_out: BytesMut,
    /// Bytes at the front of the core's `transmit_buf` already encrypted
    /// into `tls_out` and not yet credited to the core.
    sealed: usize,
    /// Per batch of encrypted core output: where its ciphertext ends (in
    /// bytes ever queued to `tls_out`) and how much plaintext it carries.
    batches: VecDeque<(u64, usize)>,
    cipher_queued: u64,
    cipher_written: u64,
    /// The socket reported the end of stream.
    socket_eof: bool,
    /// The end of the peer's input was passed to the core.
    eof_passed: bool,
    handshaken: bool,
    /// A close_notify was queued.
    notified: bool,
    /// The TLS session failed and rustls queued an alert that says why.
    alert: bool,
    /// The core's `ShutdownWrite`, held until the close_notify before it
    /// is written (server).
    pub(crate) fin_held: bool,
}

impl<C: Core> Tls<C> {
    /// The core `core` spoken over the TLS connection `tls`.
    pub fn new(tls: impl Into<rustls::Connection>, core: C) -> Self {
        let mut this = Self {
            tls: tls.into(),
            core,
            tls_in: BytesMut::new(),
            tls_out: BytesMut::new(),
            sealed: 0,
            batches: VecDeque::new(),
            cipher_queued: 0,
            cipher_written: 0,
            socket_eof: false,
            eof_passed: false,
            handshaken: false,
            notified: false,
            alert: false,
            fin_held: false,
        };
        // A client's ClientHello is ready at once.
        this.flush_tls();
        this
    }

    /// The protocol core.
    pub fn core(&self) -> &C {
        &self.core
    }

    /// The protocol core, to answer, submit, close or poll it: call
    /// [`pump`](Self::pump) after a change that may queue output or reopen
    /// input (all the wrappers of this crate do).
    pub fn core_mut(&mut self) -> &mut C {
        &mut self.core
    }

    /// The rustls connection (negotiated version, ALPN, certificates).
    pub fn tls(&self) -> &rustls::Connection {
        &self.tls
    }

    /// True until the handshake finished.
    pub fn is_handshaking(&self) -> bool {
        !self.handshaken
    }

    /// False while the layer wants no bytes from the socket: the core is
    /// gated or done, or ciphertext is waiting already.
    pub fn wants_input(&self) -> bool {
        !self.socket_eof
            && self.tls_in.len() < TLS_IN_LIMIT
            && (self.core.wants_input() || !self.handshaken)
            && !self.core.is_closed()
    }

    /// The ciphertext buffer, with room to read into: append only, then
    /// call [`handle_input_appended`](Self::handle_input_appended).
    pub fn input_buffer(&mut self) -> &mut BytesMut {
        if self.tls_in.capacity() - self.tls_in.len() < 4096 {
            self.tls_in.reserve(16 * 1024 + 512);
        }
        &mut self.tls_in
    }

    /// `n` bytes were appended to [`input_buffer`](Self::input_buffer).
    pub fn handle_input_appended(&mut self, n: usize, now: Instant) {
        if n == 0 && self.tls_in.is_empty() {
            self.tls_in = BytesMut::new();
        }
        self.pump(now);
    }

    /// Bytes read from the socket, copied in.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        self.tls_in.extend_from_slice(data);
        self.pump(now);
    }

    /// The socket's end of stream: what was received still reaches the
    /// core first.
    pub fn handle_eof(&mut self, now: Instant) {
        self.socket_eof = true;
        self.pump(now);
    }

    /// Ciphertext for the socket, with the core's output not yet
    /// encrypted sealed into records first (as much as fits under the
    /// 64 KiB queue). Drivers write this.
    pub fn transmit(&mut self) -> &[u8] {
        self.seal_output();
        if self.handshaken
            && self.core.ends_its_output()
            && self.sealed == self.core.transmit_buf().len()
        {
            self.send_close_notify();
        }
        &self.tls_out
    }

    /// After the end, what is worth one write that does not wait before
    /// the socket closes: the alert that tells the peer why its TLS
    /// session failed (a bad certificate, garbage instead of records), or
    /// a close_notify not written yet. Empty otherwise.
    pub fn last_words(&self) -> &[u8] {
        if self.alert || self.notified {
            &self.tls_out
        } else {
            &[]
        }
    }

    /// Ciphertext already queued for the socket (what [`transmit`](Self::transmit)
    /// returns without sealing more).
    pub fn transmit_buf(&self) -> &[u8] {
        &self.tls_out
    }

    /// `n` bytes of [`transmit_buf`](Self::transmit_buf) were written.
    pub fn handle_written(&mut self, n: usize, now: Instant) {
        let n = n.min(self.tls_out.len());
        self.tls_out.advance(n);
        if self.tls_out.is_empty() && self.tls_out.capacity() > TLS_OUT_LIMIT {
            self.tls_out = BytesMut::new();
        }
        self.cipher_written += n as u64;
        let mut credit = 0;
        while let Some(&(end, plain)) = self.batches.front() {
            if end > self.cipher_written {
                break;
            }
            credit += plain;
            self.batches.pop_front();
        }
        if credit > 0 {
            self.sealed -= credit;
            self.core.handle_written(credit, now);
        }
        self.pump(now);
    }

    /// The core's next deadline (the server's handshake timeout included).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    /// Fires the core's expired timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now);
        self.pump(now);
    }

    /// The socket failed: the core ends at once.
    pub fn handle_io_error(&mut self, kind: io::ErrorKind) {
        self.core.handle_io_error(kind);
    }

    /// Queues a close_notify alert: the peer learns the stream ended
    /// cleanly once it is written.
    pub fn send_close_notify(&mut self) {
        if !self.notified {
            self.notified = true;
            self.tls.send_close_notify();
            self.flush_tls();
        }
    }

    /// Moves the input that can move: ciphertext into rustls, plaintext
    /// into the core while it wants input, the end of stream once all of
    /// it is in. Call after any change to the core made through
    /// [`core_mut`](Self::core_mut). The core's output is encrypted later,
    /// by [`transmit`](Self::transmit): every ack answered in one turn
    /// then leaves in one record.
    pub fn pump(&mut self, now: Instant) {
        if !self
            .core
            .take_preamble(&mut self.tls_in, self.socket_eof, now)
        {
            if self.core.is_closed() {
                self.tls_in = BytesMut::new();
            }
            return;
        }
        loop {
            if self.core.is_closed() {
                self.tls_in = BytesMut::new();
                return;
            }
            let mut moved = self.take_ciphertext(now);
            moved |= self.deliver_plaintext(now);
            if !moved {
                break;
            }
        }
        if self.socket_eof && !self.eof_passed && self.tls_in.is_empty() && self.drained() {
            self.eof_passed = true;
            if self.handshaken {
                self.core.handle_eof(now);
            } else {
                self.core.fail(CloseReason::Tls {
                    error: "the peer closed the connection during the handshake".to_owned(),
                });
            }
        }
    }

    /// True when rustls holds no plaintext for the core.
    fn drained(&mut self) -> bool {
        !matches!(self.tls.reader().fill_buf(), Ok(buf) if !buf.is_empty())
    }

    /// Feeds buffered ciphertext to rustls; true when any was taken.
    fn take_ciphertext(&mut self, now: Instant) -> bool {
        let mut moved = false;
        while !self.tls_in.is_empty() && self.tls.wants_read() {
            let mut rest = &self.tls_in[..];
            let n = match self.tls.read_tls(&mut rest) {
                Ok(n) => n,
                // The plaintext buffer is full: wait for the core.
                Err(_) => break,
            };
            self.tls_in.advance(n);
            if n == 0 {
                break;
            }
            moved = true;
            if let Err(e) = self.tls.process_new_packets() {
                // The alert rustls queued: see `last_words`.
                self.flush_tls();
                self.alert = true;
                self.core.fail(CloseReason::Tls {
                    error: e.to_string(),
                });
                return true;
            }
            if !self.handshaken && !self.tls.is_handshaking() {
                self.handshaken = true;
                let identity = self.tls.peer_certificates().and_then(peer_identity);
                self.core.handshake_done(identity, now);
            }
            self.flush_tls();
        }
        if self.tls_in.is_empty() && self.tls_in.capacity() > 0 {
            self.tls_in = BytesMut::new();
        }
        moved
    }

    /// Hands rustls' plaintext to the core while it wants input; true when
    /// any moved.
    fn deliver_plaintext(&mut self, now: Instant) -> bool {
        let mut moved = false;
        while self.core.wants_input() {
            let mut reader = self.tls.reader();
            match reader.fill_buf() {
                Ok([]) => {
                    // close_notify: the peer's stream ended cleanly.
                    self.socket_eof = true;
                    break;
                }
                Ok(buf) => {
                    let n = buf.len();
                    self.core.handle_input(buf, now);
                    reader.consume(n);
                    moved = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // UnexpectedEof: the socket's end without close_notify;
                // the framing tells a cut frame from a clean end.
                Err(_) => {
                    self.socket_eof = true;
                    break;
                }
            }
        }
        moved
    }

    /// Encrypts the core's output while the ciphertext queue has room.
    fn seal_output(&mut self) {
        if !self.handshaken || self.notified {
            return;
        }
        while self.tls_out.len() < TLS_OUT_LIMIT {
            let Some(plain) = self.core.transmit_buf().get(self.sealed..) else {
                break;
            };
            if plain.is_empty() {
                break;
            }
            let room = TLS_OUT_LIMIT - self.tls_out.len();
            let plain = plain.get(..room).unwrap_or(plain);
            let n = match self.tls.writer().write(plain) {
                Ok(n) if n > 0 => n,
                _ => break,
            };
            self.sealed += n;
            self.flush_tls();
            self.batches.push_back((self.cipher_queued, n));
        }
    }

    /// Moves rustls' pending records (handshake, alerts, data) to `tls_out`.
    fn flush_tls(&mut self) {
        while self.tls.wants_write() {
            let mut out = BytesWriter(&mut self.tls_out);
            match self.tls.write_tls(&mut out) {
                Ok(0) | Err(_) => break,
                Ok(n) => self.cipher_queued += n as u64,
            }
        }
    }
}

/// Appends to a `BytesMut` (bytes' own `writer()` takes it by value).
struct BytesWriter<'a>(&'a mut BytesMut);

impl io::Write for BytesWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
