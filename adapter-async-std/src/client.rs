//! The client: one connection, one driver task that is its only reader and
//! writer, and any number of tasks submitting over it at once.

pub use adapter_common::ClientError;
use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io;
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use adapter_common::{Endpoint, SocketOptions};
use protocol::{
    Ack, ClientConfig, ClientConnection, CloseReason, MessageId, RequestKind, SubmitError,
};

use crate::io::{Deadline, Reader, Wrote, poll_write_from};
use crate::runtime::{Runtime, Stream};

/// Reads in a row before the driver yields to the other tasks.
const READ_BUDGET: u32 = 32;

/// One connection to a server, shared by any number of tasks (clone it).
/// Requests leave in the order they were queued; each gets its own ack.
///
/// Dropping the last clone closes the connection gracefully (requests
/// already queued are still sent, their acks read).
#[derive(Clone)]
pub struct Client {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.handle.shared.lock();
        f.debug_struct("Client")
            .field("in_flight", &st.core.in_flight())
            .field("closed", &st.core.is_closed())
            .finish()
    }
}

/// Closes the connection when the last [`Client`] goes.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.core.close(Instant::now());
        st.wake_driver();
    }
}

struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a consistent core (every
        // call into it completes or does nothing): go on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct State {
    core: ClientConnection,
    /// One per request in flight, in request order (acks come in that order).
    waiters: VecDeque<Arc<Waiter>>,
    driver: Option<Waker>,
    /// Tasks waiting for room under `max_in_flight`.
    room: Vec<Waker>,
    /// Set when the driver ended: how.
    ended: Option<Result<(), ClientError>>,
    /// Tasks waiting in [`Client::close`].
    closers: Vec<Waker>,
}

impl State {
    fn wake_driver(&mut self) {
        if let Some(w) = self.driver.take() {
            w.wake();
        }
    }

    fn wake_room(&mut self) {
        for w in self.room.drain(..) {
            w.wake();
        }
    }
}

/// The ack of one request, or why it will not come.
type AckOutcome = Result<Ack, ClientError>;

#[derive(Default)]
struct Waiter {
    /// The outcome once known, and the task awaiting it.
    slot: Mutex<(Option<AckOutcome>, Option<Waker>)>,
}

impl Waiter {
    fn complete(&self, result: AckOutcome) {
        let waker = {
            let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            slot.0 = Some(result);
            slot.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The ack of a queued request, to await.
#[must_use = "a queued request is sent anyway; await this to get its ack"]
pub struct PendingAck {
    id: MessageId,
    waiter: Arc<Waiter>,
}

impl std::fmt::Debug for PendingAck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAck").field("id", &self.id).finish()
    }
}

impl PendingAck {
    /// The id the request was sent with.
    pub fn id(&self) -> MessageId {
        self.id
    }
}

impl Future for PendingAck {
    type Output = Result<Ack, ClientError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.waiter.slot.lock().unwrap_or_else(|e| e.into_inner());
        match slot.0.take() {
            Some(result) => Poll::Ready(result),
            None => {
                slot.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Client {
    /// Connects to `endpoint` on runtime `rt` (default socket options) and
    /// starts the connection's driver task there.
    pub async fn connect<R: Runtime>(
        rt: &R,
        endpoint: &Endpoint,
        config: ClientConfig,
    ) -> Result<Self, ClientError> {
        Self::connect_with(rt, endpoint, config, &SocketOptions::default()).await
    }

    /// Connects with the given socket options (TCP_NODELAY, keepalive).
    pub async fn connect_with<R: Runtime>(
        rt: &R,
        endpoint: &Endpoint,
        config: ClientConfig,
        options: &SocketOptions,
    ) -> Result<Self, ClientError> {
        let connect_error = |e: io::Error| ClientError::Connect {
            endpoint: endpoint.clone(),
            source: Arc::new(e),
        };
        let stream = rt.connect(endpoint).await.map_err(connect_error)?;
        stream.configure(options).map_err(connect_error)?;
        Ok(Self::over(rt, stream, config))
    }

    /// Drives a client connection over a stream connected already.
    pub fn over<R: Runtime>(rt: &R, stream: R::Stream, config: ClientConfig) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                core: ClientConnection::new(config, Instant::now()),
                waiters: VecDeque::new(),
                driver: None,
                room: Vec::new(),
                ended: None,
                closers: Vec::new(),
            }),
        });
        rt.spawn(drive(rt.clone(), stream, Arc::clone(&shared)));
        Self {
            handle: Arc::new(Handle { shared }),
        }
    }

    /// Sends a `Submit` and waits for its ack.
    pub async fn submit(&self, payload: impl AsRef<[u8]>) -> Result<Ack, ClientError> {
        self.send(RequestKind::Submit, payload).await?.await
    }

    /// Sends a `Conn` and waits for its ack.
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
            let mut st = self.handle.shared.lock();
            if let Some(ended) = &st.ended {
                return Poll::Ready(Err(ended_error(ended, &st.core)));
            }
            match st.core.request(kind, payload, Instant::now()) {
                Ok(id) => {
                    let waiter = Arc::new(Waiter::default());
                    st.waiters.push_back(Arc::clone(&waiter));
                    st.wake_driver();
                    Poll::Ready(Ok(PendingAck { id, waiter }))
                }
                Err(SubmitError::TooManyInFlight { .. }) => {
                    st.room.push(cx.waker().clone());
                    Poll::Pending
                }
                Err(SubmitError::Closed(reason)) => Poll::Ready(Err(ClientError::Closed(reason))),
                Err(e) => Poll::Ready(Err(ClientError::Submit(e))),
            }
        })
        .await
    }

    /// How the connection ended, once it has (`None` while it is open).
    pub fn ended(&self) -> Option<ClientError> {
        let st = self.handle.shared.lock();
        st.ended.as_ref().map(|e| ended_error(e, &st.core))
    }

    /// Requests waiting for their acks.
    pub fn in_flight(&self) -> usize {
        self.handle.shared.lock().core.in_flight()
    }

    /// Closes gracefully: no new requests, every request in flight gets
    /// its ack, then the connection closes. `Ok` when nothing was lost.
    pub async fn close(&self) -> Result<(), ClientError> {
        {
            let mut st = self.handle.shared.lock();
            st.core.close(Instant::now());
            st.wake_driver();
        }
        poll_fn(|cx| {
            let mut st = self.handle.shared.lock();
            match &st.ended {
                Some(ended) => Poll::Ready(ended.clone()),
                None => {
                    st.closers.push(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }
}

fn ended_error(ended: &Result<(), ClientError>, core: &ClientConnection) -> ClientError {
    match ended {
        Err(e) => e.clone(),
        Ok(()) => ClientError::Closed(
            core.close_reason()
                .cloned()
                .unwrap_or(CloseReason::LocalClose),
        ),
    }
}

/// The connection's only reader and writer.
async fn drive<R: Runtime>(rt: R, mut stream: R::Stream, shared: Arc<Shared>) {
    let mut deadline = Deadline::new();
    let mut reader = Reader::new();
    let outcome: Result<(), io::Error> = poll_fn(|cx| {
        let mut reads = 0;
        loop {
            let now = Instant::now();
            // Read outside the lock (submitters go on meanwhile), then feed the core.
            let mut input = None;
            let read = reader.poll_read(cx, &mut stream, |data| {
                let mut st = shared.lock();
                st.core.handle_input(data, now);
                input = Some(st);
            });
            let mut st = match input {
                Some(st) => st,
                None => shared.lock(),
            };
            match read {
                Poll::Ready(Ok(0)) => st.core.handle_eof(now),
                Poll::Ready(Ok(_)) => reads += 1,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
            deliver(&mut st);
            match poll_write_from(
                cx,
                &mut stream,
                &mut st.core,
                ClientConnection::transmit_buf,
                |c, n| c.handle_written(n, now),
            ) {
                Ok(Wrote::All | Wrote::Blocked) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            deliver(&mut st);
            if st.core.is_closed() {
                return Poll::Ready(Ok(()));
            }
            if deadline
                .poll(cx, &rt, st.core.poll_timeout(), now)
                .is_ready()
            {
                st.core.handle_timeout(now);
                continue;
            }
            if read.is_ready() {
                if reads >= READ_BUDGET {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                continue;
            }
            if st.driver.as_ref().is_none_or(|w| !w.will_wake(cx.waker())) {
                st.driver = Some(cx.waker().clone());
            }
            return Poll::Pending;
        }
    })
    .await;
    // A clean close sends FIN; dropping the stream closes it.
    let _ = stream.shutdown(Shutdown::Write);
    drop(stream);
    let mut st = shared.lock();
    let ended = match outcome {
        Err(e) => Err(ClientError::Io(Arc::new(e))),
        Ok(()) => match st.core.close_reason() {
            None => Ok(()),
            Some(reason) if reason.is_clean() => Ok(()),
            Some(reason) => Err(ClientError::Closed(reason.clone())),
        },
    };
    let error = ended_error(&ended, &st.core);
    for w in st.waiters.drain(..) {
        w.complete(Err(error.clone()));
    }
    st.ended = Some(ended);
    st.wake_room();
    for w in st.closers.drain(..) {
        w.wake();
    }
}

/// Hands every ack the core produced to its waiter.
fn deliver(st: &mut State) {
    let mut any = false;
    while let Some(ack) = st.core.poll_event() {
        any = true;
        if let Some(w) = st.waiters.pop_front() {
            w.complete(Ok(ack));
        }
    }
    if any {
        st.wake_room();
    }
}
