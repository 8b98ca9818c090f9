//! The client: one connection, usable from many threads at once.
//!
//! # Design: one writer lock, one reader thread
//!
//! A [`Client`] drives one [`ClientCore`] (the core plus the waiters of
//! its requests, in in-flight order) behind a mutex that is never held
//! across a blocking call. Around it:
//!
//! - **The writer lock** is held by a sender from the moment it queues its
//!   request(s) in the core until their bytes are written. It copies the
//!   core's pending output out (the bytes stay in the core), writes the
//!   copy with the mutex released, and reports each write to the core
//!   (`handle_written`): other senders wait for the writer lock, so the
//!   core's pending bytes are exactly the copy's. Frames therefore reach
//!   the socket whole and in id order, and the core's write-stall timer
//!   sees the real progress. A batch ([`Client::send_all`]) is written in
//!   pieces of about 64 KiB.
//! - **One reader thread** (started by [`Client::connect`], 128 KiB stack)
//!   is the only one that reads. It feeds the core, hands each ack to the
//!   [`PendingAck`] of its request, and fires the core's timers: its read
//!   timeout comes from the core's `poll_timeout` (the response timeout of
//!   the oldest request, the write stall), so a silent server or a stuck
//!   write fails the waiters in time. When the connection ends it shuts
//!   the socket down, which also returns a sender blocked in `write`.
//!
//! So callers never read: [`PendingAck::wait`] blocks on its own slot.
//! Because the reader always reads, acks never pile up in the socket while
//! a sender is blocked writing. When `max_in_flight` requests are waiting,
//! a sender flushes what it queued and waits for acks to free a slot.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use adapter_common::{
    ClientCore, Endpoint, Net, SocketOptions, StdStream, configure_tcp, is_timeout,
};
pub use adapter_common::{ClientError, PendingAck};
use protocol::{Ack, ClientConfig, CloseReason, RequestKind, SubmitError};
use protocol_tls::ClientTls;

use crate::timeout::SocketTimeout;

/// Bytes read per `read` call by the reader thread (a stack buffer).
const READ_CHUNK: usize = 8 * 1024;
/// A batch is written whenever this much is queued.
const FLUSH_AT: usize = 64 * 1024;
/// Stack of the reader thread.
const READER_STACK: usize = 128 * 1024;

/// How a [`Client`] connects. Every field has a default.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// The core's limits and timeouts (max in flight, response timeout,
    /// write-stall timeout).
    pub config: ClientConfig,
    /// TCP_NODELAY and keepalive for TCP connections.
    pub socket: SocketOptions,
    /// Give up connecting (TCP) after this long, and on the TLS handshake
    /// after this long too. Default `None`: the OS's (and the response
    /// timeout for the handshake).
    pub connect_timeout: Option<Duration>,
    /// TLS, when given: the handshake is done in [`Client::connect`].
    pub tls: Option<ClientTls>,
}

#[derive(Debug)]
struct Shared {
    core: Mutex<ClientCore>,
    /// Signalled when acks free in-flight slots or the connection ends.
    room: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ClientCore> {
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A client connection over a blocking socket, shareable between threads
/// (`&Client` is enough to send; see the module docs for the design).
///
/// ```no_run
/// use adapter_std::{Client, ClientOptions};
///
/// let endpoint = "127.0.0.1:8888".parse().unwrap();
/// let client = Client::connect(&endpoint, ClientOptions::default())?;
/// let ack = client.submit(b"hello")?;
/// println!("{} {}", ack.id, ack.result);
/// // Pipelined: send many, then take the acks in order.
/// for pending in client.send_all([&b"a"[..], b"b", b"c"])? {
///     println!("{}", pending.wait()?.result);
/// }
/// client.close()?;
/// # Ok::<(), adapter_std::ClientError>(())
/// ```
#[derive(Debug)]
pub struct Client {
    stream: Arc<StdStream>,
    shared: Arc<Shared>,
    /// The writer lock: held from queueing a request to writing it.
    writer: Mutex<()>,
    reader: Option<JoinHandle<()>>,
}

impl Client {
    /// Connects to `endpoint` (TCP or Unix) and starts the reader thread.
    pub fn connect(endpoint: &Endpoint, options: ClientOptions) -> Result<Self, ClientError> {
        let mut core = ClientCore::with_tls(options.config.clone(), options.tls.as_ref())?;
        let stream = match (endpoint, options.connect_timeout.filter(|t| !t.is_zero())) {
            (Endpoint::Tcp(addr), Some(t)) => TcpStream::connect_timeout(addr, t)
                .and_then(|s| configure_tcp(&s, &options.socket).map(|()| Net::Tcp(s))),
            _ => StdStream::connect(endpoint, &options.socket),
        }
        .map_err(|e| ClientError::Connect {
            endpoint: endpoint.clone(),
            source: Arc::new(e),
        })?;
        // A timer armed while the reader waits is at least this far away.
        let c = &options.config;
        let (rt, ws) = (c.response_timeout, c.write_stall_timeout);
        let recheck = rt.min(ws).or(rt).or(ws);
        if options.tls.is_some() {
            let limit = options.connect_timeout.or(options.config.response_timeout);
            handshake(&stream, &mut core, limit)?;
        }
        let stream = Arc::new(stream);
        let shared = Arc::new(Shared {
            core: Mutex::new(core),
            room: Condvar::new(),
        });
        let (s, sh) = (Arc::clone(&stream), Arc::clone(&shared));
        let reader = thread::Builder::new()
            .name("adapter-std-client-reader".to_owned())
            .stack_size(READER_STACK)
            .spawn(move || read_loop(&s, &sh, recheck))?;
        Ok(Self {
            stream,
            shared,
            writer: Mutex::new(()),
            reader: Some(reader),
        })
    }

    /// Sends a Submit and waits for its ack.
    pub fn submit(&self, payload: &[u8]) -> Result<Ack, ClientError> {
        self.send(payload)?.wait()
    }

    /// Sends a Conn and waits for its ConnAck.
    pub fn conn(&self, payload: &[u8]) -> Result<Ack, ClientError> {
        self.send_request(RequestKind::Conn, payload)?.wait()
    }

    /// Sends a Submit without waiting for its ack.
    pub fn send(&self, payload: &[u8]) -> Result<PendingAck, ClientError> {
        self.send_request(RequestKind::Submit, payload)
    }

    /// Sends a request of either kind without waiting for its ack.
    pub fn send_request(
        &self,
        kind: RequestKind,
        payload: &[u8],
    ) -> Result<PendingAck, ClientError> {
        let mut sent = None;
        self.send_with(std::iter::once((kind, payload)), |p| sent = Some(p))?;
        sent.ok_or(ClientError::Closed(CloseReason::LocalClose))
    }

    /// Sends every payload as a Submit (pipelined: written in as few
    /// `write`s as fit) and returns their pending acks in order.
    ///
    /// On an error, the requests queued before it are still sent and
    /// answered, but their acks are dropped with the returned vector.
    pub fn send_all<I>(&self, payloads: I) -> Result<Vec<PendingAck>, ClientError>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let mut out = Vec::new();
        let requests = payloads.into_iter().map(|p| (RequestKind::Submit, p));
        self.send_with(requests, |p| out.push(p))?;
        Ok(out)
    }

    /// [`send_all`](Self::send_all), then waits for every ack in order.
    pub fn submit_all<I>(&self, payloads: I) -> Result<Vec<Ack>, ClientError>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.send_all(payloads)?
            .into_iter()
            .map(PendingAck::wait)
            .collect()
    }

    /// Requests sent and waiting for their acks.
    pub fn in_flight(&self) -> usize {
        self.shared.lock().in_flight()
    }

    /// How the connection ended, once it has (`None` while it is open).
    pub fn ended(&self) -> Option<ClientError> {
        self.shared.lock().ended().cloned()
    }

    /// Closes gracefully: sends nothing more, waits for the ack of every
    /// request in flight (they still reach their [`PendingAck`]s), then
    /// closes the socket. `Ok` when the client closed with nothing lost,
    /// else how the connection ended.
    pub fn close(mut self) -> Result<(), ClientError> {
        let ended = {
            let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let last = {
                let mut core = self.shared.lock();
                core.conn().close(Instant::now());
                // Under TLS, the close_notify (the plain core has none).
                core.conn().last_words().to_vec()
            };
            if (&*self.stream).write_all(&last).is_ok() {
                self.shared
                    .lock()
                    .conn()
                    .handle_written(last.len(), Instant::now());
            }
            self.shared.lock().deliver()
        };
        // Requests in flight: a FIN tells the server we are done, the
        // reader ends after the last ack.
        if !ended && let Some(reader) = self.reader.take() {
            let _ = self.stream.shutdown(Shutdown::Write);
            let _ = reader.join();
        }
        // Drop wakes the reader (shutdown(Both)) and joins it if it still runs.
        self.shared.lock().close_result().unwrap_or(Ok(()))
    }

    /// Queues each request in the core and writes them, holding the writer
    /// lock throughout so frames leave whole and in id order.
    fn send_with<P: AsRef<[u8]>>(
        &self,
        requests: impl Iterator<Item = (RequestKind, P)>,
        mut on_sent: impl FnMut(PendingAck),
    ) -> Result<(), ClientError> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        for (kind, payload) in requests {
            let sent = loop {
                let mut core = self.shared.lock();
                match core.request(kind, payload.as_ref(), Instant::now()) {
                    Err(ClientError::Submit(SubmitError::TooManyInFlight { .. })) => {
                        if core.conn().pending_output() == 0 {
                            // Wait for acks to free a slot.
                            drop(self.shared.room.wait(core));
                        } else {
                            drop(core);
                            self.flush()?;
                        }
                    }
                    sent => break sent.map(|p| (p, core.conn().pending_output() >= FLUSH_AT)),
                }
            };
            match sent {
                Ok((pending, full)) => {
                    on_sent(pending);
                    if full {
                        self.flush()?;
                    }
                }
                // What was queued before it still goes out.
                Err(e) => return self.flush().and(Err(e)),
            }
        }
        self.flush()
    }

    /// Writes copies of the session's pending output until there is none
    /// (the writer lock held: the pending bytes are the copy's; over TLS,
    /// each write may let more of the core's output be encrypted),
    /// reporting every write to the session.
    fn flush(&self) -> Result<(), ClientError> {
        loop {
            let out = self.shared.lock().conn().transmit().to_vec();
            if out.is_empty() {
                return Ok(());
            }
            let mut rest = &out[..];
            while !rest.is_empty() {
                match (&*self.stream).write(rest) {
                    Ok(0) => return Err(self.fail(io::ErrorKind::WriteZero.into())),
                    Ok(n) => {
                        self.shared.lock().conn().handle_written(n, Instant::now());
                        rest = rest.get(n..).unwrap_or_default();
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(self.fail(e)),
                }
            }
        }
    }

    /// A write failed: the connection ends (unless it had already, for a
    /// reason of its own such as a write stall), for every caller.
    fn fail(&self, e: io::Error) -> ClientError {
        let mut core = self.shared.lock();
        core.fail(e);
        self.shared.room.notify_all();
        let _ = self.stream.shutdown(Shutdown::Both);
        let ended = core.ended().cloned();
        ended.unwrap_or(ClientError::Closed(CloseReason::Aborted))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(reader) = self.reader.take() {
            let _ = self.stream.shutdown(Shutdown::Both);
            let _ = reader.join();
        }
    }
}

/// Runs the TLS handshake on the blocking socket before the reader thread
/// starts (so that afterwards only requests make output), each read and
/// write bounded by `limit`.
fn handshake(
    stream: &StdStream,
    core: &mut ClientCore,
    limit: Option<Duration>,
) -> Result<(), ClientError> {
    stream.set_read_timeout(limit)?;
    stream.set_write_timeout(limit)?;
    let mut buf = [0u8; READ_CHUNK];
    let result = loop {
        let session = core.conn();
        let out = session.transmit().to_vec();
        if !out.is_empty() {
            (&*stream).write_all(&out)?;
            session.handle_written(out.len(), Instant::now());
            continue;
        }
        if !session.is_handshaking() {
            break Ok(());
        }
        match (&*stream).read(&mut buf) {
            Ok(0) => session.handle_eof(Instant::now()),
            Ok(n) => session.handle_input(buf.get(..n).unwrap_or_default(), Instant::now()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {
                break Err(ClientError::Tls {
                    error: format!("handshake not done within {limit:?}"),
                });
            }
            Err(e) => break Err(e.into()),
        }
        if core.deliver() {
            // The alert that says why, when the socket still takes it.
            let _ = (&*stream).write(core.conn().last_words());
            break Err(core
                .ended()
                .cloned()
                .unwrap_or(ClientError::Closed(CloseReason::Aborted)));
        }
    };
    stream.set_read_timeout(None)?;
    stream.set_write_timeout(None)?;
    result
}

/// The reader thread: the only reader of the socket, and the core's timer.
fn read_loop(stream: &StdStream, shared: &Shared, recheck: Option<Duration>) {
    let mut buf = [0u8; READ_CHUNK];
    let mut timeout = SocketTimeout::default();
    let mut core = shared.lock();
    loop {
        if core.deliver() {
            break;
        }
        // Wake by `recheck` at the latest: a request sent meanwhile may
        // arm a timer earlier than the one this wait is for.
        let wait = SocketTimeout::wait_for(core.conn().poll_timeout(), Instant::now());
        let wait = wait.map_or(recheck, |w| Some(recheck.map_or(w, |r| w.min(r))));
        drop(core);
        let res = timeout
            .apply(wait, |d| stream.set_read_timeout(d))
            .and_then(|()| (&*stream).read(&mut buf));
        let now = Instant::now();
        core = shared.lock();
        let in_flight = core.in_flight();
        match res.map(|n| buf.get(..n)) {
            Ok(Some([]) | None) => core.conn().handle_eof(now),
            Ok(Some(data)) => core.conn().handle_input(data, now),
            Err(e) if is_timeout(&e) => core.conn().handle_timeout(now),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => core.fail(e),
        }
        if core.in_flight() < in_flight {
            // Acks came: senders waiting for a free slot may go on.
            shared.room.notify_all();
        }
    }
    // The end: senders waiting for a slot get the end's error.
    shared.room.notify_all();
    // Over: wake a sender blocked writing to a server that stopped reading.
    let _ = stream.shutdown(Shutdown::Both);
}
