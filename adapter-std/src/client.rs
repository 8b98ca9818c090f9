//! The client: one connection, usable from many threads at once.
//!
//! # Design: one writer lock, one reader thread
//!
//! A [`Client`] wraps one [`ClientConnection`] (the core) behind a mutex
//! that is only ever held for bookkeeping, never across a blocking call.
//! Around it:
//!
//! - **The writer lock** is held by a sender from the moment it queues its
//!   request(s) in the core (which gives each its id and remembers it in
//!   flight) until their bytes are written to the socket. Frames therefore
//!   reach the socket whole and in the order the core issued their ids,
//!   which is the order the server answers in. A batch ([`Client::send_all`])
//!   is written with one `write` per 64 KiB.
//! - **One reader thread** (started by [`Client::connect`], 128 KiB stack)
//!   is the only one that reads. It feeds the core, takes the acks out in
//!   request order and hands each to the [`PendingAck`] of its request. Its
//!   read timeout is the core's `poll_timeout` (the response timeout of the
//!   oldest request), so a silent server fails the waiters in time.
//!
//! So callers never read: [`PendingAck::wait`] blocks on its own channel.
//! Because the reader always reads, acks never pile up in the socket while
//! a sender is blocked writing, whatever the callers do.
//!
//! When the core refuses a request because `max_in_flight` are waiting,
//! the sender flushes what it queued and waits for acks to free a slot.
//! A socket write that makes no progress for the core's
//! `write_stall_timeout` (SO_SNDTIMEO) ends the connection with
//! [`CloseReason::WriteStall`]: the writer moves bytes out with
//! `poll_transmit`, so the core cannot time that write itself.

pub use adapter_common::ClientError;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use adapter_common::{Endpoint, SocketOptions, configure_tcp};
use bytes::{Buf, BytesMut};
use protocol::{
    Ack, ClientConfig, ClientConnection, CloseReason, MessageId, RequestKind, SubmitError,
};

use crate::stream::{SocketTimeout, Stream, is_timeout};

/// Bytes read per `read` call by the reader thread (a stack buffer).
const READ_CHUNK: usize = 8 * 1024;
/// A batch is written whenever this much is queued.
const FLUSH_AT: usize = 64 * 1024;
/// Stack of the reader thread.
const READER_STACK: usize = 128 * 1024;
/// How often a sender waiting for a free in-flight slot looks again.
const SLOT_RECHECK: Duration = Duration::from_millis(100);

/// How a [`Client`] connects. Every field has a default.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// The core's limits and timeouts (max in flight, response timeout,
    /// write-stall timeout).
    pub config: ClientConfig,
    /// TCP_NODELAY and keepalive for TCP connections.
    pub socket: SocketOptions,
    /// Give up connecting (TCP) after this long. Default `None`: the OS's.
    pub connect_timeout: Option<Duration>,
}

type AckSender = SyncSender<Result<Ack, ClientError>>;

struct State {
    core: ClientConnection,
    /// One per request in flight, in request order (the core's order).
    waiters: VecDeque<AckSender>,
    /// Set once the connection is over; every later call gets it.
    failed: Option<ClientError>,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when acks arrive or the connection ends.
    acked: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn failure(&self) -> ClientError {
        self.lock()
            .failed
            .clone()
            .unwrap_or(ClientError::Closed(CloseReason::PeerClosed))
    }
}

impl State {
    /// Ends the connection for every caller: each waiter gets `err`.
    fn fail(&mut self, err: ClientError) {
        let err = self.failed.get_or_insert(err).clone();
        for tx in self.waiters.drain(..) {
            let _ = tx.send(Err(err.clone()));
        }
    }

    fn deliver_acks(&mut self) -> bool {
        let mut any = false;
        while let Some(ack) = self.core.poll_event() {
            any = true;
            if let Some(tx) = self.waiters.pop_front() {
                let _ = tx.send(Ok(ack));
            }
        }
        any
    }
}

/// The ack of a request sent with [`Client::send`], to wait for.
#[derive(Debug)]
#[must_use = "the ack is only seen by waiting for it"]
pub struct PendingAck {
    id: MessageId,
    rx: Receiver<Result<Ack, ClientError>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

impl PendingAck {
    /// The request's id.
    pub fn id(&self) -> MessageId {
        self.id
    }

    /// Blocks until the ack arrives or the connection ends (the core's
    /// response timeout bounds the wait when it is set).
    pub fn wait(self) -> Result<Ack, ClientError> {
        self.rx
            .recv()
            .unwrap_or_else(|_| Err(self.shared.failure()))
    }

    /// Like [`wait`](Self::wait), giving up after `timeout`: `None` when
    /// the ack has not come yet (it may still come; wait again).
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Result<Ack, ClientError>> {
        match self.rx.recv_timeout(timeout) {
            Ok(r) => Some(r),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(Err(self.shared.failure())),
        }
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
pub struct Client {
    stream: Arc<Stream>,
    shared: Arc<Shared>,
    /// The writer lock; the buffer the core's output is moved into.
    writer: Mutex<BytesMut>,
    reader: Option<JoinHandle<()>>,
    write_stall: Option<Duration>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("stream", &self.stream)
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to `endpoint` (TCP or Unix) and starts the reader thread.
    pub fn connect(endpoint: &Endpoint, options: ClientOptions) -> Result<Self, ClientError> {
        let connect_err = |e: io::Error| ClientError::Connect {
            endpoint: endpoint.clone(),
            source: Arc::new(e),
        };
        let stream = match endpoint {
            Endpoint::Tcp(addr) => {
                let s = match options.connect_timeout.filter(|t| !t.is_zero()) {
                    Some(t) => TcpStream::connect_timeout(addr, t),
                    None => TcpStream::connect(addr),
                }
                .map_err(connect_err)?;
                configure_tcp(&s, &options.socket)?;
                Stream::Tcp(s)
            }
            Endpoint::Unix(path) => Stream::Unix(UnixStream::connect(path).map_err(connect_err)?),
        };
        let write_stall = options.config.write_stall_timeout.filter(|t| !t.is_zero());
        stream.set_write_timeout(write_stall)?;
        let recheck = options.config.response_timeout.filter(|t| !t.is_zero());
        let stream = Arc::new(stream);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                core: ClientConnection::new(options.config, Instant::now()),
                waiters: VecDeque::new(),
                failed: None,
            }),
            acked: Condvar::new(),
        });
        let reader = {
            let stream = Arc::clone(&stream);
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("adapter-std-client-reader".to_owned())
                .stack_size(READER_STACK)
                .spawn(move || read_loop(&stream, &shared, recheck))?
        };
        Ok(Self {
            stream,
            shared,
            writer: Mutex::new(BytesMut::new()),
            reader: Some(reader),
            write_stall,
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
        let payloads: Vec<I::Item> = payloads.into_iter().collect();
        let mut out = Vec::with_capacity(payloads.len());
        self.send_with(
            payloads.iter().map(|p| (RequestKind::Submit, p.as_ref())),
            |p| out.push(p),
        )?;
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
        self.shared.lock().core.in_flight()
    }

    /// Closes gracefully: sends nothing more, waits for the ack of every
    /// request in flight (they still reach their [`PendingAck`]s), then
    /// closes the socket. `Err` when the connection did not end cleanly.
    pub fn close(mut self) -> Result<(), ClientError> {
        let done = {
            let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let mut st = self.shared.lock();
            st.core.close(Instant::now());
            st.core.is_closed() || st.failed.is_some()
        };
        // Nothing in flight: wake the reader at once. Otherwise a FIN tells
        // the server we are done; the reader ends after the last ack.
        let _ = self.stream.shutdown(if done {
            Shutdown::Both
        } else {
            Shutdown::Write
        });
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let mut st = self.shared.lock();
        let reason = st.core.close_reason().cloned();
        match (st.failed.take(), reason) {
            (Some(ClientError::Closed(r)), _) | (None, Some(r)) if r.is_clean() => Ok(()),
            (None, None) => Ok(()),
            (Some(e), _) => Err(e),
            (None, Some(r)) => Err(ClientError::Closed(r)),
        }
    }

    /// Queues each request in the core and writes them, holding the writer
    /// lock throughout so frames leave whole and in id order.
    fn send_with<'p>(
        &self,
        requests: impl Iterator<Item = (RequestKind, &'p [u8])>,
        mut on_sent: impl FnMut(PendingAck),
    ) -> Result<(), ClientError> {
        let mut out = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        for (kind, payload) in requests {
            loop {
                let mut st = self.shared.lock();
                if let Some(e) = &st.failed {
                    return Err(e.clone());
                }
                match st.core.request(kind, payload, Instant::now()) {
                    Ok(id) => {
                        let (tx, rx) = sync_channel(1);
                        st.waiters.push_back(tx);
                        let full = st.core.pending_output() >= FLUSH_AT;
                        drop(st);
                        on_sent(PendingAck {
                            id,
                            rx,
                            shared: Arc::clone(&self.shared),
                        });
                        if full {
                            self.flush(&mut out)?;
                        }
                        break;
                    }
                    Err(SubmitError::TooManyInFlight { .. }) => {
                        if st.core.pending_output() > 0 {
                            drop(st);
                            self.flush(&mut out)?;
                        } else {
                            drop(
                                self.shared
                                    .acked
                                    .wait_timeout(st, SLOT_RECHECK)
                                    .unwrap_or_else(PoisonError::into_inner),
                            );
                        }
                    }
                    Err(SubmitError::Closed(reason)) => return Err(ClientError::Closed(reason)),
                    Err(e) => {
                        drop(st);
                        self.flush(&mut out)?;
                        return Err(ClientError::Submit(e));
                    }
                }
            }
        }
        self.flush(&mut out)
    }

    /// Moves the core's output out and writes all of it (writer lock held).
    fn flush(&self, out: &mut BytesMut) -> Result<(), ClientError> {
        self.shared.lock().core.poll_transmit(out, Instant::now());
        let mut w = &*self.stream;
        while !out.is_empty() {
            let err = match w.write(out) {
                Ok(0) => io::Error::from(io::ErrorKind::WriteZero).into(),
                Ok(n) => {
                    out.advance(n);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => match self.write_stall {
                    Some(after) => ClientError::Closed(CloseReason::WriteStall {
                        after,
                        pending: out.len(),
                    }),
                    None => e.into(),
                },
                Err(e) => e.into(),
            };
            out.clear();
            self.shared.lock().fail(err.clone());
            self.shared.acked.notify_all();
            let _ = self.stream.shutdown(Shutdown::Both);
            return Err(err);
        }
        Ok(())
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

/// The reader thread: the only reader of the socket.
fn read_loop(stream: &Stream, shared: &Shared, recheck: Option<Duration>) {
    let mut buf = [0u8; READ_CHUNK];
    let mut timeout = SocketTimeout::default();
    let mut reader = stream;
    loop {
        let wait = {
            let st = shared.lock();
            if st.core.is_closed() || st.failed.is_some() {
                break;
            }
            // With no timer armed, wake after the response timeout anyway:
            // a request sent meanwhile has a later deadline than that.
            SocketTimeout::wait_for(st.core.poll_timeout(), Instant::now()).or(recheck)
        };
        if let Err(e) = timeout.apply(wait, |d| stream.set_read_timeout(d)) {
            shared.lock().fail(e.into());
            break;
        }
        let res = reader.read(&mut buf);
        let now = Instant::now();
        let mut st = shared.lock();
        match res {
            Ok(0) => st.core.handle_eof(now),
            Ok(n) => st.core.handle_input(buf.get(..n).unwrap_or_default(), now),
            Err(e) if is_timeout(&e) => st.core.handle_timeout(now),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                st.fail(e.into());
                break;
            }
        }
        let acked = st.deliver_acks();
        if st.core.is_closed() {
            let reason = st
                .core
                .close_reason()
                .cloned()
                .unwrap_or(CloseReason::PeerClosed);
            st.fail(ClientError::Closed(reason));
        }
        if acked || st.failed.is_some() {
            shared.acked.notify_all();
        }
    }
    shared.acked.notify_all();
    // Over: wake a sender blocked writing to a server that stopped reading.
    let _ = stream.shutdown(Shutdown::Both);
}
