//! The server: an accept loop and a task per connection, each driving one
//! [`ServerConnection`].

use std::future::{Future, poll_fn};
use std::io;
use std::net::Shutdown;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use adapter_common::{
    AcceptBackoff, Endpoint, OpenConnection, RateLimiter, ServerTotals, SocketOptions, bind,
    conn_closed_line, is_transient_accept_error, remove_unix_socket,
};
use async_channel::{Receiver, Sender};
use futures_lite::future;
use futures_util::stream::{FuturesUnordered, StreamExt};
use protocol::{CloseMode, CloseReason, ServerConfig, ServerConnection};
use tracing::{debug, error, info, warn};

use crate::handler::Answer;
use crate::io::{Deadline, Reader, Wrote, poll_write_from};
use crate::runtime::{Runtime, Stream, Timer as _, sleep_until};
use adapter_common::handler::{Handler, Reply};
use futures_io::AsyncRead as _;

/// Default connections served at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Reads in a row before a connection yields to the other tasks...
const READ_BUDGET: u32 = 16;
/// ...or bytes read in a row: a flooding client gets at most this much
/// work done per turn, so the other connections on the thread get theirs.
const READ_BYTES_BUDGET: usize = 64 * 1024;

/// How a server runs.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The core's limits and timeouts.
    pub config: ServerConfig,
    /// Listener and connection socket options.
    pub socket: SocketOptions,
    /// Connections served at once; one more is accepted and closed at once.
    /// Default 10000.
    pub max_connections: usize,
    /// How long a graceful shutdown may take before the connections still
    /// open are cut. Default 10 s.
    pub shutdown_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            config: ServerConfig::default(),
            socket: SocketOptions::default(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// Asks a running [`Server`] to stop. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    graceful: Sender<()>,
    abort: Sender<()>,
}

impl ShutdownHandle {
    /// Graceful shutdown: stop accepting, every connection answers what it
    /// received, flushes and closes; connections still open after the
    /// shutdown timeout are cut.
    pub fn shutdown(&self) {
        self.graceful.close();
    }

    /// Cuts every connection now (e.g. a second SIGINT).
    pub fn abort(&self) {
        self.graceful.close();
        self.abort.close();
    }
}

/// A bound server on runtime `R` with handler `H`. [`Server::run`]
/// accepts until shut down.
pub struct Server<R: Runtime, H> {
    rt: R,
    listener: R::Listener,
    endpoint: Endpoint,
    opts: ServerOptions,
    handler: Arc<H>,
    totals: Arc<ServerTotals>,
    graceful: Receiver<()>,
    abort: Receiver<()>,
    handle: ShutdownHandle,
}

impl<R: Runtime, H> std::fmt::Debug for Server<R, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("runtime", &self.rt.name())
            .field("endpoint", &self.endpoint)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime, H: Handler> Server<R, H> {
    /// Binds `endpoint` (port 0 picks a free port; see
    /// [`local_endpoint`](Self::local_endpoint)). Connections queue in the
    /// backlog from here on; [`run`](Self::run) serves them.
    pub fn bind(rt: R, endpoint: &Endpoint, opts: ServerOptions, handler: H) -> io::Result<Self> {
        let std_listener = bind(endpoint, &opts.socket)?;
        let endpoint = std_listener.local_endpoint()?;
        let listener = rt.listener(std_listener)?;
        let (graceful_tx, graceful) = async_channel::bounded(1);
        let (abort_tx, abort) = async_channel::bounded(1);
        Ok(Self {
            rt,
            listener,
            endpoint,
            opts,
            handler: Arc::new(handler),
            totals: Arc::new(ServerTotals::default()),
            graceful,
            abort,
            handle: ShutdownHandle {
                graceful: graceful_tx,
                abort: abort_tx,
            },
        })
    }

    /// Where the server listens (with the real port).
    pub fn local_endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The server's counters; `Display` is the shutdown summary line.
    pub fn totals(&self) -> Arc<ServerTotals> {
        Arc::clone(&self.totals)
    }

    /// A handle that stops [`run`](Self::run).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// Accepts and serves connections until shut down, then shuts down
    /// gracefully: stops accepting (removes a Unix socket file), lets every
    /// connection answer what it received, and cuts what is still open at
    /// the shutdown timeout. Returns once every connection task ended.
    ///
    /// An accept error that is not transient (see
    /// [`is_transient_accept_error`]) ends the accept loop: the server then
    /// shuts down as above and returns the error.
    pub async fn run(self) -> io::Result<()> {
        let Self {
            rt,
            listener,
            endpoint,
            opts,
            handler,
            totals,
            graceful,
            abort,
            handle: _handle,
        } = self;
        // Every connection task holds a clone of `done_tx`; `done_rx` ends
        // when the last one is dropped.
        let (done_tx, done_rx) = async_channel::bounded::<()>(1);
        let refusals = RateLimiter::new(Duration::from_secs(1));
        let mut backoff = AcceptBackoff::new();
        let seq = AtomicU64::new(0);
        let mut result = Ok(());
        loop {
            let accepted = future::or(async { Some(rt.accept(&listener).await) }, async {
                let _ = graceful.recv().await;
                None
            })
            .await;
            let (stream, addr) = match accepted {
                None => break,
                Some(Ok(conn)) => {
                    backoff.reset();
                    conn
                }
                Some(Err(e)) if is_transient_accept_error(&e) => {
                    let delay = backoff.next_delay();
                    warn!("accept failed on {endpoint}: {e}; retrying in {delay:?}");
                    let wait = sleep_until(&rt, Instant::now() + delay);
                    if future::or(
                        async {
                            wait.await;
                            false
                        },
                        async {
                            let _ = graceful.recv().await;
                            true
                        },
                    )
                    .await
                    {
                        break;
                    }
                    continue;
                }
                Some(Err(e)) => {
                    error!("accept failed on {endpoint}: {e}; stopping the server");
                    result = Err(e);
                    break;
                }
            };
            let n = seq.fetch_add(1, Ordering::Relaxed);
            let peer = match addr {
                Some(a) => a.to_string(),
                None => format!("{endpoint}#{n}"),
            };
            if totals.open_now() >= opts.max_connections as u64 {
                totals.refused.fetch_add(1, Ordering::Relaxed);
                if let Some(held) = refusals.check(Instant::now()) {
                    warn!(
                        "connection refused peer={peer}: over max-connections {} ({held} more refused since the last such line)",
                        opts.max_connections
                    );
                }
                drop(stream);
                continue;
            }
            if let Err(e) = stream.configure(&opts.socket) {
                debug!("cannot set socket options peer={peer}: {e}");
            }
            let open = OpenConnection::open(&totals);
            debug!("connection accepted peer={peer}");
            rt.spawn(serve_connection(
                rt.clone(),
                stream,
                peer,
                opts.config.clone(),
                Arc::clone(&handler),
                open,
                graceful.clone(),
                abort.clone(),
                done_tx.clone(),
            ));
        }
        // Stop accepting; the connections saw the same signal and are
        // closing (a failed accept loop sends it itself).
        drop(listener);
        remove_unix_socket(&endpoint);
        _handle.graceful.close();
        drop(done_tx);
        let open = totals.open_now();
        if open > 0 {
            info!(
                "shutting down: {open} connection(s) finishing, deadline {:?}",
                opts.shutdown_timeout
            );
        }
        let deadline = Instant::now() + opts.shutdown_timeout;
        let finished = future::or(
            async {
                let _ = done_rx.recv().await;
                true
            },
            async {
                sleep_until(&rt, deadline).await;
                false
            },
        )
        .await;
        if !finished {
            warn!(
                "shutdown deadline {:?} passed: cutting {} connection(s)",
                opts.shutdown_timeout,
                totals.open_now()
            );
            _handle.abort.close();
            // Cut connections end at their next poll; a handler stuck in a
            // blocking call is not waited for long.
            let grace = Instant::now() + Duration::from_secs(1);
            future::or(
                async {
                    let _ = done_rx.recv().await;
                },
                sleep_until(&rt, grace),
            )
            .await;
        }
        result
    }
}

/// The task of one connection: drive the core until it is done, close
/// gracefully when the server shuts down, cut at the shutdown deadline.
#[allow(clippy::too_many_arguments)]
async fn serve_connection<R: Runtime, H: Handler>(
    rt: R,
    mut stream: R::Stream,
    peer: String,
    config: ServerConfig,
    handler: Arc<H>,
    open: OpenConnection,
    graceful: Receiver<()>,
    abort: Receiver<()>,
    _done: Sender<()>,
) {
    let started = Instant::now();
    let mut conn = ServerConnection::new(config, started);
    let mut deadline = Deadline::new();
    let mut reader = Reader::new();
    let mut closing = false;
    let mut graceful = pin!(graceful.recv());
    let mut abort = pin!(abort.recv());
    // Answers still coming (`Reply::Later`); created on first use.
    let mut later: Option<FuturesUnordered<Answer<H::Future>>> = None;
    let outcome = poll_fn(|cx| {
        let mut reads = 0;
        let mut read_bytes = 0;
        // A connection that never runs out of input never goes to sleep
        // (it yields after READ_BUDGET reads): look for the shutdown on
        // every poll, not only before sleeping.
        let mut check_signals = true;
        loop {
            // 0. Server shutdown.
            if check_signals {
                check_signals = false;
                if !closing && graceful.as_mut().poll(cx).is_ready() {
                    closing = true;
                    conn.close(Instant::now());
                }
                if closing && abort.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Outcome::Cut);
                }
            }
            let now = Instant::now();
            // 1. Answer every request the core handed out.
            while let Some(req) = conn.poll_event() {
                debug!(
                    "request peer={peer} kind={:?} id={} len={}",
                    req.kind,
                    req.id,
                    req.payload.len()
                );
                let handle = req.handle;
                match handler.handle(req) {
                    // The handle came from this connection and is answered once.
                    Reply::Now(result) => drop(conn.respond(handle, result, now)),
                    Reply::Later(fut) => {
                        later
                            .get_or_insert_with(FuturesUnordered::new)
                            .push(Answer {
                                handle,
                                fut: Box::pin(fut),
                            })
                    }
                }
            }
            if let Some(pending) = later.as_mut() {
                let mut answered = false;
                while let Poll::Ready(Some((handle, result))) = pending.poll_next_unpin(cx) {
                    let _ = conn.respond(handle, result, now);
                    answered = true;
                }
                if pending.is_empty() {
                    // Give its memory back: most connections never need it again.
                    later = None;
                }
                if answered {
                    continue;
                }
            }
            // 2. Write what is pending. Progress can unblock input the
            // core had buffered: drain again before anything else.
            let mut progressed = false;
            let wrote = poll_write_from(
                cx,
                &mut stream,
                &mut conn,
                ServerConnection::transmit_buf,
                |c, n| {
                    progressed = true;
                    c.handle_written(n, now)
                },
            );
            match wrote {
                Err(e) => return Poll::Ready(Outcome::Io(e)),
                Ok(Wrote::All | Wrote::Blocked) => {}
            }
            if conn.is_closed() {
                return Poll::Ready(Outcome::Done);
            }
            if progressed {
                continue;
            }
            // 3. Read while the core wants input.
            if conn.wants_input() {
                if reads >= READ_BUDGET || read_bytes >= READ_BYTES_BUDGET {
                    // Input never ran out this turn: the timer still counts.
                    if deadline.poll(cx, &rt, conn.poll_timeout(), now).is_ready() {
                        conn.handle_timeout(now);
                        continue;
                    }
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                match reader.poll_read(cx, &mut stream, |data| conn.handle_input(data, now)) {
                    Poll::Ready(Ok(0)) => {
                        conn.handle_eof(now);
                        continue;
                    }
                    Poll::Ready(Ok(n)) => {
                        reads += 1;
                        read_bytes += n;
                        continue;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Outcome::Io(e)),
                    Poll::Pending => {}
                }
            }
            // 4. The one timer.
            if deadline.poll(cx, &rt, conn.poll_timeout(), now).is_ready() {
                conn.handle_timeout(now);
                continue;
            }
            // 5. Before sleeping: the shutdown signals must be able to wake us.
            if !closing && graceful.as_mut().poll(cx).is_ready() {
                closing = true;
                conn.close(now);
                continue;
            }
            if closing && abort.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Outcome::Cut);
            }
            return Poll::Pending;
        }
    })
    .await;
    let io_error = match outcome {
        Outcome::Done => None,
        Outcome::Io(e) => Some(e),
        Outcome::Cut => {
            warn!(
                peer,
                "cut at the shutdown deadline with {} request(s) unanswered and {} byte(s) unsent",
                conn.pending_requests(),
                conn.pending_output()
            );
            conn.abort(CloseReason::Aborted {
                why: "shutdown deadline passed with the connection still busy",
            });
            None
        }
    };
    // FIN after the last ack, and a lingering close while the peer may
    // still be sending, as the core decides; dropping the stream closes it.
    match conn.close_mode() {
        CloseMode::Linger { max, quiet } if io_error.is_none() => {
            linger(&rt, &mut stream, max, quiet, abort.as_mut()).await;
        }
        _ => {
            let _ = stream.shutdown(Shutdown::Write);
        }
    }
    drop(stream);
    let stats = conn.stats();
    let reason = conn.close_reason();
    // Count before logging: the log line is the part that can fail.
    open.close(&stats, if io_error.is_some() { None } else { reason });
    info!(
        "{}",
        conn_closed_line(&peer, started.elapsed(), &stats, reason, io_error.as_ref())
    );
}

/// Sends FIN, then reads and discards until the peer closes, is quiet for
/// `quiet`, `max` passes or the server's shutdown deadline cuts it, so that
/// a reset does not destroy acks the peer has not read yet. Yields after a
/// few reads like the connection loop, so a flooding peer starves no one.
async fn linger<R: Runtime, A: Future>(
    rt: &R,
    stream: &mut R::Stream,
    max: Duration,
    quiet: Duration,
    mut abort: Pin<&mut A>,
) {
    let _ = stream.shutdown(Shutdown::Write);
    let until = Instant::now() + max;
    let mut timer = rt.timer_at((Instant::now() + quiet).min(until));
    let mut sink = vec![0u8; 4096];
    poll_fn(|cx| {
        for _ in 0..READ_BUDGET {
            if abort.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            match Pin::new(&mut *stream).poll_read(cx, &mut sink) {
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(_)) => {
                    let now = Instant::now();
                    if now >= until {
                        return Poll::Ready(());
                    }
                    timer.reset((now + quiet).min(until));
                }
                Poll::Pending => {
                    return match timer.poll_fire(cx) {
                        Poll::Ready(()) => Poll::Ready(()),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

enum Outcome {
    /// The core is done.
    Done,
    /// The socket failed.
    Io(io::Error),
    /// Cut at the shutdown deadline.
    Cut,
}
