//! The client: one connection shared by many tasks.
//!
//! Callers hand their request to the connection's task over a channel with
//! a oneshot for the answer. That task is the one writer and the one reader:
//! it queues each request in the core (which gives it the next id), keeps
//! the caller's oneshot in a FIFO aligned with the core's in-flight order,
//! writes everything queued in one write, and hands each ack to the caller
//! at the front of the FIFO. Requests from concurrent tasks are pipelined
//! and never interleave bytes.

pub use adapter_common::ClientError;
use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use adapter_common::{Endpoint, SocketOptions, configure_tcp};
use bytes::Bytes;
use protocol::{Ack, ClientConfig, ClientConnection, CloseReason, RequestKind, SubmitError};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::io::{ReadOutcome, Socket, Timer, WriteOutcome, poll_read_now, write_now};

/// Requests a [`Client`] queues ahead of its connection task before
/// callers wait (the core's `max_in_flight` bounds what is on the wire).
const QUEUE: usize = 1024;

enum Command {
    Request {
        kind: RequestKind,
        payload: Bytes,
        reply: oneshot::Sender<Result<Ack, ClientError>>,
    },
    Close(oneshot::Sender<Result<(), ClientError>>),
}

struct ClientShared {
    /// How the connection ended, once it has.
    ended: OnceLock<ClientError>,
}

impl ClientShared {
    fn end_error(&self) -> ClientError {
        self.ended
            .get()
            .cloned()
            .unwrap_or(ClientError::Submit(SubmitError::Closing))
    }
}

/// A connection to a server, shared by any number of tasks (clone it, or
/// share a reference): their requests are pipelined on the one connection.
///
/// ```no_run
/// use adapter_tokio::Client;
/// use protocol::ClientConfig;
///
/// # async fn example() -> Result<(), adapter_tokio::ClientError> {
/// let endpoint = "127.0.0.1:8888".parse().expect("an address");
/// let client = Client::connect(&endpoint, ClientConfig::default()).await?;
/// let ack = client.submit("hello").await?;
/// println!("{} -> {}", ack.id, ack.result);
/// client.close().await
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    tx: mpsc::Sender<Command>,
    shared: Arc<ClientShared>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("ended", &self.shared.ended.get())
            .finish()
    }
}

impl Client {
    /// Connects with the default socket options (TCP_NODELAY, keepalive).
    /// Call it inside a tokio runtime: the connection's task is spawned on it.
    pub async fn connect(endpoint: &Endpoint, config: ClientConfig) -> Result<Self, ClientError> {
        Self::connect_with(endpoint, config, &SocketOptions::default()).await
    }

    /// Connects with the given socket options.
    pub async fn connect_with(
        endpoint: &Endpoint,
        config: ClientConfig,
        options: &SocketOptions,
    ) -> Result<Self, ClientError> {
        let connect_error = |e: io::Error| ClientError::Connect {
            endpoint: endpoint.clone(),
            source: Arc::new(e),
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let shared = Arc::new(ClientShared {
            ended: OnceLock::new(),
        });
        match endpoint {
            Endpoint::Tcp(addr) => {
                let stream = TcpStream::connect(addr).await.map_err(connect_error)?;
                configure_tcp(&stream, options).map_err(connect_error)?;
                tokio::spawn(run(stream, config, rx, Arc::clone(&shared)));
            }
            Endpoint::Unix(path) => {
                let stream = UnixStream::connect(path).await.map_err(connect_error)?;
                tokio::spawn(run(stream, config, rx, Arc::clone(&shared)));
            }
        }
        Ok(Self { tx, shared })
    }

    /// Sends a `Submit` and waits for its ack (whose result may be an error
    /// code: check `ack.result`).
    pub async fn submit(&self, payload: impl Into<Bytes>) -> Result<Ack, ClientError> {
        self.send(RequestKind::Submit, payload).await?.await
    }

    /// Sends a `Conn` (e.g. a token) and waits for its ack.
    pub async fn conn(&self, payload: impl Into<Bytes>) -> Result<Ack, ClientError> {
        self.send(RequestKind::Conn, payload).await?.await
    }

    /// Queues a request and returns once it is queued, with a future for
    /// its ack. Requests queued one after the other by one task go out in
    /// that order: queue many, then await the acks, to pipeline from a
    /// single task.
    pub async fn send(
        &self,
        kind: RequestKind,
        payload: impl Into<Bytes>,
    ) -> Result<PendingAck, ClientError> {
        let (reply, rx) = oneshot::channel();
        let command = Command::Request {
            kind,
            payload: payload.into(),
            reply,
        };
        if self.tx.send(command).await.is_err() {
            return Err(self.shared.end_error());
        }
        Ok(PendingAck {
            rx,
            shared: Arc::clone(&self.shared),
        })
    }

    /// Closes gracefully: takes no new request, waits for the ack of every
    /// request queued before, then closes the connection. Other clones of
    /// this client see their later requests refused.
    pub async fn close(&self) -> Result<(), ClientError> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Close(reply)).await.is_err() {
            return match self.shared.end_error() {
                ClientError::Closed(CloseReason::LocalClose) => Ok(()),
                e => Err(e),
            };
        }
        rx.await.unwrap_or_else(|_| Err(self.shared.end_error()))
    }

    /// How the connection ended, once it has.
    pub fn ended(&self) -> Option<ClientError> {
        self.shared.ended.get().cloned()
    }
}

/// The ack of a request queued with [`Client::send`].
#[derive(Debug)]
#[must_use = "the ack is only known by awaiting it"]
pub struct PendingAck {
    rx: oneshot::Receiver<Result<Ack, ClientError>>,
    shared: Arc<ClientShared>,
}

impl std::fmt::Debug for ClientShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientShared")
            .field("ended", &self.ended.get())
            .finish()
    }
}

impl Future for PendingAck {
    type Output = Result<Ack, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.rx).poll(cx) {
            Poll::Ready(Ok(r)) => Poll::Ready(r),
            Poll::Ready(Err(_)) => Poll::Ready(Err(self.shared.end_error())),
            Poll::Pending => Poll::Pending,
        }
    }
}

enum Wake {
    Commands,
    /// Every `Client` is gone: close once the acks are in.
    Abandoned,
    Read(usize),
    Writable,
    Failed(io::Error),
    Timer,
}

/// The connection's task: the one writer and the one reader.
async fn run<S: Socket>(
    mut socket: S,
    config: ClientConfig,
    mut rx: mpsc::Receiver<Command>,
    shared: Arc<ClientShared>,
) {
    let max_in_flight = config.max_in_flight.max(1);
    let mut conn = ClientConnection::new(config, Instant::now());
    let mut waiters: VecDeque<oneshot::Sender<Result<Ack, ClientError>>> = VecDeque::new();
    let mut closers: Vec<oneshot::Sender<Result<(), ClientError>>> = Vec::new();
    let mut batch = Vec::new();
    let mut accepting = true;
    let mut timer = Timer::default();
    let failure = loop {
        let now = Instant::now();
        while let Some(ack) = conn.poll_event() {
            if let Some(waiter) = waiters.pop_front() {
                let _ = waiter.send(Ok(ack));
            }
        }
        if !conn.transmit_buf().is_empty() {
            match write_now(&socket, conn.transmit_buf()) {
                WriteOutcome::Wrote(n) if n > 0 => conn.handle_written(n, now),
                WriteOutcome::Wrote(_) | WriteOutcome::Full => {}
                WriteOutcome::Failed(e) => break Some(e),
            }
        }
        if conn.is_closed() {
            break None;
        }
        timer.arm(conn.poll_timeout());
        let take = accepting && conn.in_flight() < max_in_flight;
        let has_output = !conn.transmit_buf().is_empty();
        let wake = poll_fn(|cx| {
            if take {
                let room = max_in_flight - conn.in_flight();
                if let Poll::Ready(n) = rx.poll_recv_many(cx, &mut batch, room) {
                    return Poll::Ready(if n == 0 {
                        Wake::Abandoned
                    } else {
                        Wake::Commands
                    });
                }
            }
            if timer.poll_fired(cx).is_ready() {
                return Poll::Ready(Wake::Timer);
            }
            if let Poll::Ready(ready) = socket.poll_read_ready(cx) {
                if let Err(e) = ready {
                    return Poll::Ready(Wake::Failed(e));
                }
                match poll_read_now(&mut socket, cx, conn.input_buffer()) {
                    ReadOutcome::Data(n) => return Poll::Ready(Wake::Read(n)),
                    ReadOutcome::Failed(e) => return Poll::Ready(Wake::Failed(e)),
                    ReadOutcome::NotReady => conn.handle_input_appended(0, Instant::now()),
                }
            }
            if has_output && let Poll::Ready(ready) = socket.poll_write_ready(cx) {
                return Poll::Ready(match ready {
                    Ok(()) => Wake::Writable,
                    Err(e) => Wake::Failed(e),
                });
            }
            Poll::Pending
        })
        .await;
        match wake {
            Wake::Commands => {
                let now = Instant::now();
                for command in batch.drain(..) {
                    match command {
                        Command::Request {
                            kind,
                            payload,
                            reply,
                        } => match conn.request(kind, &payload, now) {
                            Ok(_) => waiters.push_back(reply),
                            Err(e) => {
                                let _ = reply.send(Err(ClientError::Submit(e)));
                            }
                        },
                        Command::Close(reply) => {
                            accepting = false;
                            closers.push(reply);
                            conn.close(now);
                        }
                    }
                }
            }
            Wake::Abandoned => {
                accepting = false;
                conn.close(Instant::now());
            }
            Wake::Read(0) => conn.handle_eof(Instant::now()),
            Wake::Read(n) => conn.handle_input_appended(n, Instant::now()),
            Wake::Writable => {}
            Wake::Failed(e) => break Some(e),
            Wake::Timer => conn.handle_timeout(Instant::now()),
        }
    };
    // Refuse what is still queued, then tell everyone how it ended.
    rx.close();
    let error = match failure {
        Some(e) => ClientError::Io(Arc::new(e)),
        None => ClientError::Closed(
            conn.close_reason()
                .cloned()
                .unwrap_or(CloseReason::LocalClose),
        ),
    };
    let _ = shared.ended.set(error.clone());
    if failure_is_clean(&error) {
        socket.shutdown_write();
    }
    for waiter in waiters {
        let _ = waiter.send(Err(error.clone()));
    }
    while let Ok(command) = rx.try_recv() {
        match command {
            Command::Request { reply, .. } => {
                let _ = reply.send(Err(error.clone()));
            }
            Command::Close(reply) => closers.push(reply),
        }
    }
    for closer in closers {
        let _ = closer.send(match &error {
            ClientError::Closed(CloseReason::LocalClose) => Ok(()),
            e => Err(e.clone()),
        });
    }
}

fn failure_is_clean(error: &ClientError) -> bool {
    matches!(error, ClientError::Closed(r) if r.is_clean())
}
