//! The server's and the client's wrappers of [`Tls`]: the core's API,
//! each call followed by the layer's input pump (output is sealed by
//! `transmit`).

use std::time::Instant;

use protocol::{
    AckResult, ClientConnection, ClientEvent, CloseReason, ConnectionStats, MessageId,
    RequestHandle, RequestKind, RespondError, ServerConnection, ServerEvent, SubmitError,
};

use crate::layer::Tls;

/// A server connection over TLS.
pub type TlsServer = Tls<ServerConnection>;
/// A client connection over TLS.
pub type TlsClient = Tls<ClientConnection>;

impl Tls<ServerConnection> {
    /// The next event of the core. Its `ShutdownWrite` (the lingering
    /// close) comes once the close_notify queued before it is written.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        if self.fin_held {
            if self.transmit_buf().is_empty() {
                self.fin_held = false;
                return Some(ServerEvent::ShutdownWrite);
            }
            if !self.core().is_closed() {
                return None;
            }
            self.fin_held = false;
        }
        match self.core_mut().poll_event() {
            Some(ServerEvent::ShutdownWrite) => {
                self.send_close_notify();
                if self.transmit_buf().is_empty() {
                    Some(ServerEvent::ShutdownWrite)
                } else {
                    self.fin_held = true;
                    None
                }
            }
            other => other,
        }
    }

    /// See [`ServerConnection::respond`].
    pub fn respond(
        &mut self,
        handle: RequestHandle,
        result: AckResult,
        now: Instant,
    ) -> Result<(), RespondError> {
        let r = self.core_mut().respond(handle, result, now);
        self.pump(now);
        r
    }

    /// See [`ServerConnection::close`].
    pub fn close(&mut self, now: Instant, deadline: Option<Instant>) {
        self.core_mut().close(now, deadline);
        self.pump(now);
    }

    /// The core's counters (plaintext).
    pub fn stats(&self) -> ConnectionStats {
        self.core().stats()
    }

    /// The client's address from the PROXY header (which comes before
    /// TLS), once it came.
    pub fn source(&self) -> Option<std::net::SocketAddr> {
        self.core().source()
    }
}

impl Tls<ClientConnection> {
    /// See [`ClientConnection::request`].
    pub fn request(
        &mut self,
        kind: RequestKind,
        payload: &[u8],
        now: Instant,
    ) -> Result<MessageId, SubmitError> {
        let id = self.core_mut().request(kind, payload, now);
        self.pump(now);
        id
    }

    /// See [`ClientConnection::poll_event`].
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.core_mut().poll_event()
    }

    /// See [`ClientConnection::close`]: once everything is answered the
    /// close_notify goes out.
    pub fn close(&mut self, now: Instant) {
        self.core_mut().close(now);
        self.pump(now);
    }

    /// See [`ClientConnection::abort`].
    pub fn abort(&mut self, reason: CloseReason) {
        self.core_mut().abort(reason);
    }
}
