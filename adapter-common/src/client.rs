//! The client, written once: [`ClientCore`] (the core plus the waiters of
//! its requests in in-flight order, and how its end reaches them), the
//! [`PendingAck`] a caller waits on (blocking or async), and the async
//! [`Client`] over any [`Runtime`]. adapter-std's blocking client uses the
//! same core and the same pending acks.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use protocol::{
    Ack, ClientConfig, ClientConnection, ClientEvent, CloseReason, MessageId, RequestKind,
    SubmitError,
};

use protocol_tls::ClientTls;

use crate::client_error::ClientError;
use crate::net::{Endpoint, SocketOptions};
use crate::runtime::{Deadline, READ_BUDGET, Runtime, Socket, poll_read_step, poll_write_step};
use crate::session::ClientSession;

/// Where one request's ack (or the reason it got none) is handed over.
#[derive(Debug, Default)]
struct Slot {
    value: Mutex<Option<Result<Ack, ClientError>>>,
    ready: Condvar,
    waker: AtomicWaker,
}

impl Slot {
    fn complete(&self, r: Result<Ack, ClientError>) {
        *self.value.lock().unwrap_or_else(PoisonError::into_inner) = Some(r);
        self.ready.notify_all();
        self.waker.wake();
    }
}

/// The ack of one request, to wait for (blocking with [`wait`](Self::wait)
/// or [`wait_timeout`](Self::wait_timeout), or by awaiting it).
#[derive(Debug)]
#[must_use = "the ack is only seen by waiting for it"]
pub struct PendingAck {
    id: MessageId,
    slot: Arc<Slot>,
}

impl PendingAck {
    /// The request's id.
    pub fn id(&self) -> MessageId {
        self.id
    }

    /// Blocks until the ack arrives or the connection ends (the core's
    /// response timeout bounds the wait when it is set).
    pub fn wait(self) -> Result<Ack, ClientError> {
        let mut v = self
            .slot
            .value
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(r) = v.take() {
                return r;
            }
            v = self
                .slot
                .ready
                .wait(v)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Like [`wait`](Self::wait), giving up after `timeout`: `None` when
    /// the ack has not come yet (it may still come; wait again).
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Result<Ack, ClientError>> {
        let v = self
            .slot
            .value
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (mut v, _) = self
            .slot
            .ready
            .wait_timeout_while(v, timeout, |v| v.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        v.take()
    }
}

impl Future for PendingAck {
    type Output = Result<Ack, ClientError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.slot.waker.register(cx.waker());
        let mut v = self
            .slot
            .value
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        v.take().map_or(Poll::Pending, Poll::Ready)
    }
}

/// A client connection's core and the waiters of its requests, in the
/// core's in-flight order; every adapter's client drives one.
#[derive(Debug)]
pub struct ClientCore {
    conn: ClientSession,
    waiters: VecDeque<Arc<Slot>>,
    /// How the connection ended, once it has.
    ended: Option<ClientError>,
}

impl ClientCore {
    /// A core with `config` (validated: an error names the setting).
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        Self::with_tls(config, None)
    }

    /// A core with `config`, under TLS with `tls` when given (its
    /// ClientHello is the first thing to write).
    pub fn with_tls(config: ClientConfig, tls: Option<&ClientTls>) -> Result<Self, ClientError> {
        config.validate()?;
        let core = ClientConnection::new(config);
        let conn = match tls {
            None => ClientSession::Plain(core),
            Some(tls) => ClientSession::Tls(Box::new(tls.connect(core).map_err(|e| {
                ClientError::Tls {
                    error: e.to_string(),
                }
            })?)),
        };
        Ok(Self {
            conn,
            waiters: VecDeque::new(),
            ended: None,
        })
    }

    /// The session, for the driver's IO (`transmit`, input, timers).
    pub fn conn(&mut self) -> &mut ClientSession {
        &mut self.conn
    }

    /// Requests waiting for their acks.
    pub fn in_flight(&self) -> usize {
        self.conn.core().in_flight()
    }

    /// Queues a request in the core; its ack will reach the returned
    /// [`PendingAck`]. `TooManyInFlight` is returned as is (the caller may
    /// wait for room); after the end, the end's error.
    pub fn request(
        &mut self,
        kind: RequestKind,
        payload: &[u8],
        now: Instant,
    ) -> Result<PendingAck, ClientError> {
        if let Some(e) = &self.ended {
            return Err(e.clone());
        }
        let id = self.conn.request(kind, payload, now).map_err(|e| match e {
            SubmitError::Closed(reason) => ClientError::Closed(reason),
            e => ClientError::Submit(e),
        })?;
        let slot = Arc::new(Slot::default());
        self.waiters.push_back(Arc::clone(&slot));
        Ok(PendingAck { id, slot })
    }

    /// Hands every ack the core has to its waiter and, at the end, the
    /// end's error to every waiter left. True once the connection ended.
    pub fn deliver(&mut self) -> bool {
        while let Some(event) = self.conn.poll_event() {
            match event {
                ClientEvent::Ack(ack) => {
                    if let Some(slot) = self.waiters.pop_front() {
                        slot.complete(Ok(ack));
                    }
                }
                ClientEvent::Closed(reason) => {
                    let e = self
                        .ended
                        .get_or_insert(ClientError::Closed(reason))
                        .clone();
                    for slot in self.waiters.drain(..) {
                        slot.complete(Err(e.clone()));
                    }
                }
            }
        }
        self.ended.is_some()
    }

    /// The socket failed: the connection ends with this error.
    pub fn fail(&mut self, e: io::Error) {
        let kind = e.kind();
        if self.ended.is_none() {
            self.ended = Some(ClientError::Io(Arc::new(e)));
        }
        self.conn.handle_io_error(kind);
        self.deliver();
    }

    /// How the connection ended, once it has.
    pub fn ended(&self) -> Option<&ClientError> {
        self.ended.as_ref()
    }

    /// What a graceful close gives its caller: `Ok` when the client itself
    /// closed with nothing lost, else how it ended.
    pub fn close_result(&self) -> Option<Result<(), ClientError>> {
        self.ended.as_ref().map(|e| match e {
            ClientError::Closed(CloseReason::LocalClose) => Ok(()),
            e => Err(e.clone()),
        })
    }

    /// True when the connection ended the way a conversation should (send FIN).
    pub fn ended_cleanly(&self) -> bool {
        matches!(&self.ended, Some(ClientError::Closed(r)) if r.is_clean())
    }
}

struct State {
    core: ClientCore,
    /// The driver task, to wake when there is something to send.
    driver: Option<Waker>,
    /// Callers waiting for an in-flight slot or for the end.
    waiting: Vec<Waker>,
    /// Live `Client` handles; the last one dropped closes the connection.
    handles: usize,
}

impl State {
    fn wake_driver(&mut self) {
        if let Some(w) = self.driver.take() {
            w.wake();
        }
    }
}

struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An async connection to a server, shared by any number of tasks (clone
/// it): their requests are pipelined on the one connection, whose driver
/// task is its only reader and writer. Dropping the last clone closes it
/// gracefully.
pub struct Client {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

impl Clone for Client {
    fn clone(&self) -> Self {
        self.shared.lock().handles += 1;
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.handles -= 1;
        if st.handles == 0 {
            st.core.conn().close(Instant::now());
            st.wake_driver();
        }
    }
}

impl Client {
    /// Connects to `endpoint` on runtime `rt` with the default socket
    /// options (TCP_NODELAY, keepalive) and spawns the driver task.
    pub async fn connect<R: Runtime>(
        rt: &R,
        endpoint: &Endpoint,
        config: ClientConfig,
    ) -> Result<Self, ClientError> {
        Self::connect_with(rt, endpoint, config, &SocketOptions::default()).await
    }

    /// Connects with the given socket options.
    pub async fn connect_with<R: Runtime>(
        rt: &R,
        endpoint: &Endpoint,
        config: ClientConfig,
        opts: &SocketOptions,
    ) -> Result<Self, ClientError> {
        Self::connect_tls(rt, endpoint, config, opts, None).await
    }

    /// Connects with the given socket options, over TLS with `tls` when
    /// given.
    pub async fn connect_tls<R: Runtime>(
        rt: &R,
        endpoint: &Endpoint,
        config: ClientConfig,
        opts: &SocketOptions,
        tls: Option<&ClientTls>,
    ) -> Result<Self, ClientError> {
        let core = ClientCore::with_tls(config, tls)?;
        let socket = rt
            .connect(endpoint, opts)
            .await
            .map_err(|e| ClientError::Connect {
                endpoint: endpoint.clone(),
                source: Arc::new(e),
            })?;
        Ok(Self::over(rt, socket, core))
    }

    /// A client over a connected socket.
    pub fn over<R: Runtime>(rt: &R, socket: R::Socket, core: ClientCore) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                core,
                driver: None,
                waiting: Vec::new(),
                handles: 1,
            }),
        });
        rt.spawn(drive(rt.clone(), socket, Arc::clone(&shared)));
        Self { shared }
    }

    /// Sends a `Submit` and waits for its ack (whose result may be an error
    /// code: check `ack.result`).
    pub async fn submit(&self, payload: impl AsRef<[u8]>) -> Result<Ack, ClientError> {
        self.send(RequestKind::Submit, payload).await?.await
    }

    /// Sends a `Conn` (e.g. a token) and waits for its ack.
    pub async fn conn(&self, payload: impl AsRef<[u8]>) -> Result<Ack, ClientError> {
        self.send(RequestKind::Conn, payload).await?.await
    }

    /// Queues a request (waiting only while `max_in_flight` requests are
    /// waiting for acks) and returns its ack to await: queue many, then
    /// await them, to pipeline from one task. Requests leave in the order
    /// they were queued.
    pub async fn send(
        &self,
        kind: RequestKind,
        payload: impl AsRef<[u8]>,
    ) -> Result<PendingAck, ClientError> {
        let payload = payload.as_ref();
        poll_fn(|cx| {
            let mut st = self.shared.lock();
            match st.core.request(kind, payload, Instant::now()) {
                Ok(pending) => {
                    st.wake_driver();
                    Poll::Ready(Ok(pending))
                }
                Err(ClientError::Submit(SubmitError::TooManyInFlight { .. })) => {
                    st.waiting.push(cx.waker().clone());
                    Poll::Pending
                }
                Err(e) => Poll::Ready(Err(e)),
            }
        })
        .await
    }

    /// How the connection ended, once it has (`None` while it is open).
    pub fn ended(&self) -> Option<ClientError> {
        self.shared.lock().core.ended().cloned()
    }

    /// Requests waiting for their acks.
    pub fn in_flight(&self) -> usize {
        self.shared.lock().core.in_flight()
    }

    /// Closes gracefully: no new requests, every request in flight gets
    /// its ack, then the connection closes. `Ok` when nothing was lost.
    pub async fn close(&self) -> Result<(), ClientError> {
        {
            let mut st = self.shared.lock();
            st.core.conn().close(Instant::now());
            st.wake_driver();
        }
        poll_fn(|cx| {
            let mut st = self.shared.lock();
            match st.core.close_result() {
                Some(r) => Poll::Ready(r),
                None => {
                    st.waiting.push(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }
}

/// The connection's only reader and writer: the client's driver loop.
async fn drive<R: Runtime>(rt: R, mut socket: R::Socket, shared: Arc<Shared>) {
    let mut timer = Deadline::default();
    let mut got_input = false;
    poll_fn(|cx| {
        let mut st = shared.lock();
        let mut reads = 0;
        loop {
            let now = Instant::now();
            let ended = st.core.deliver();
            // In-flight slots free up as input is parsed: wake the callers
            // waiting for one whenever input came (or at the end).
            if ended || std::mem::take(&mut got_input) {
                for w in st.waiting.drain(..) {
                    w.wake();
                }
            }
            if ended {
                // One write that does not wait: a close_notify, a TLS alert.
                let core = st.core.conn();
                let _ =
                    poll_write_step(&mut socket, cx, core, ClientSession::last_words, |c, n| {
                        c.handle_written(n, now)
                    });
                if st.core.ended_cleanly() {
                    socket.shutdown_write();
                }
                return Poll::Ready(());
            }
            let core = st.core.conn();
            match poll_write_step(&mut socket, cx, core, ClientSession::transmit, |c, n| {
                c.handle_written(n, now)
            }) {
                Ok(_) => {}
                Err(e) => {
                    st.core.fail(e);
                    continue;
                }
            }
            if reads < READ_BUDGET {
                let core = st.core.conn();
                match poll_read_step(&mut socket, cx, core, now) {
                    Poll::Ready(Ok(0)) => core.handle_eof(now),
                    Poll::Ready(Ok(_)) => {
                        reads += 1;
                        got_input = true;
                    }
                    Poll::Ready(Err(e)) => st.core.fail(e),
                    Poll::Pending => {
                        let at = core.poll_timeout();
                        if timer.poll(cx, &rt, at, now).is_ready() {
                            st.core.conn().handle_timeout(now);
                            continue;
                        }
                        st.driver = Some(cx.waker().clone());
                        return Poll::Pending;
                    }
                }
                continue;
            }
            // Input never ran out this turn: let others run.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
    })
    .await
}
