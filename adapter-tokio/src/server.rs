//! The server: an accept loop, one task per connection driving a
//! [`ServerConnection`], and graceful shutdown.

use std::collections::HashMap;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::{Duration, Instant};

use adapter_common::cli::ServeArgs;
use adapter_common::{
    AcceptBackoff, Endpoint, OpenConnection, RateLimiter, ServerTotals, SocketOptions, StdListener,
    configure_tcp, conn_closed_line, is_transient_accept_error, remove_unix_socket,
};
use bytes::BytesMut;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use protocol::{AckResult, CloseMode, CloseReason, ServerConfig, ServerConnection};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{Notify, oneshot, watch};

use crate::io::{ReadOutcome, Socket, Timer, WriteOutcome, poll_read_now, write_now};
use adapter_common::handler::{Handler, Reply};

/// The default of [`ServerOptions::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// How a [`Server`] runs: the core's limits, and what the adapter owns.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The core's limits and timeouts, per connection.
    pub config: ServerConfig,
    /// Connections served at once; one more is accepted and closed at once
    /// (with a rate-limited warning). Default 10000.
    pub max_connections: usize,
    /// Listener and connection socket options (SO_REUSEADDR, backlog,
    /// TCP_NODELAY, keepalive).
    pub socket: SocketOptions,
    /// How long a graceful shutdown may take; connections still open then
    /// are cut. Default 10 s.
    pub shutdown_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            config: ServerConfig::default(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            socket: SocketOptions::default(),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

impl ServerOptions {
    /// The options the `serve` flags describe.
    pub fn from_serve_args(args: &ServeArgs) -> Self {
        Self {
            config: args.server_config(),
            max_connections: args.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
            socket: args.socket_options(),
            shutdown_timeout: args.shutdown_timeout(),
        }
    }
}

/// The connections open, each with the sender that starts its graceful close.
#[derive(Default)]
struct Registry {
    next_id: u64,
    conns: HashMap<u64, Option<oneshot::Sender<Instant>>>,
    closing: bool,
}

struct Shared {
    totals: Arc<ServerTotals>,
    registry: Mutex<Registry>,
    /// Signalled when the last connection ends during shutdown.
    drained: Notify,
    stop: watch::Sender<bool>,
    refusals: RateLimiter,
}

impl Shared {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Starts the graceful shutdown of a [`Server`] from anywhere (a signal
/// handler, a test). Cheap to clone.
#[derive(Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
}

impl ShutdownHandle {
    /// Stop accepting, answer every request received, flush, close every
    /// connection (cut after the shutdown timeout). [`Server::run`] returns
    /// once all are closed. Calling it again does nothing more.
    pub fn shutdown(&self) {
        self.shared.stop.send_replace(true);
    }

    /// True once [`shutdown`](Self::shutdown) was called.
    pub fn is_shutting_down(&self) -> bool {
        *self.shared.stop.borrow()
    }
}

impl std::fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("shutting_down", &self.is_shutting_down())
            .finish()
    }
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

enum Accepted {
    Tcp(TcpStream, std::net::SocketAddr),
    Unix(UnixStream),
}

impl Listener {
    async fn accept(&self) -> io::Result<Accepted> {
        match self {
            Self::Tcp(l) => l.accept().await.map(|(s, a)| Accepted::Tcp(s, a)),
            Self::Unix(l) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
        }
    }
}

/// A bound server, ready to [`run`](Self::run).
///
/// ```no_run
/// use adapter_tokio::{AckAll, Server, ServerOptions};
/// use adapter_common::Endpoint;
///
/// # async fn example() -> std::io::Result<()> {
/// let endpoint: Endpoint = "127.0.0.1:8888".parse().expect("an address");
/// let server = Server::bind(&endpoint, ServerOptions::default(), AckAll)?;
/// let shutdown = server.shutdown_handle();
/// tokio::spawn(async move {
///     let _ = tokio::signal::ctrl_c().await;
///     shutdown.shutdown();
/// });
/// server.run().await
/// # }
/// ```
pub struct Server<H> {
    listener: Listener,
    endpoint: Endpoint,
    options: ServerOptions,
    handler: Arc<H>,
    shared: Arc<Shared>,
}

impl<H> std::fmt::Debug for Server<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("endpoint", &self.endpoint)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<H: Handler> Server<H> {
    /// Binds and listens on `endpoint` (TCP, or a Unix socket path whose
    /// stale socket file is replaced). Call it inside a tokio runtime.
    pub fn bind(endpoint: &Endpoint, options: ServerOptions, handler: H) -> io::Result<Self> {
        let std_listener = adapter_common::bind(endpoint, &options.socket)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {endpoint}: {e}")))?;
        std_listener.set_nonblocking(true)?;
        let endpoint = std_listener.local_endpoint()?;
        let listener = match std_listener {
            StdListener::Tcp(l) => Listener::Tcp(TcpListener::from_std(l)?),
            StdListener::Unix(l) => Listener::Unix(UnixListener::from_std(l)?),
        };
        let (stop, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            totals: Arc::new(ServerTotals::default()),
            registry: Mutex::new(Registry::default()),
            drained: Notify::new(),
            stop,
            refusals: RateLimiter::new(Duration::from_secs(1)),
        });
        Ok(Self {
            listener,
            endpoint,
            options,
            handler: Arc::new(handler),
            shared,
        })
    }

    /// Where the server listens (the real port when port 0 was asked).
    pub fn local_endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// A handle that starts the graceful shutdown.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The server's counters (its `Display` is the shutdown summary line).
    pub fn totals(&self) -> Arc<ServerTotals> {
        Arc::clone(&self.shared.totals)
    }

    /// Accepts and serves until the [`ShutdownHandle`] is used, then shuts
    /// down gracefully: stops accepting (the listener is closed), tells
    /// every connection to close (each answers what it received, flushes
    /// and closes), cuts those still open after the shutdown timeout,
    /// removes the Unix socket file, and returns.
    ///
    /// Accept errors never end it: they are logged and retried with backoff.
    pub async fn run(self) -> io::Result<()> {
        let Self {
            listener,
            endpoint,
            options,
            handler,
            shared,
        } = self;
        let mut stop = shared.stop.subscribe();
        let mut backoff = AcceptBackoff::new();
        loop {
            let accepted = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => break,
                r = listener.accept() => r,
            };
            match accepted {
                Ok(accepted) => {
                    backoff.reset();
                    admit(accepted, &options, &handler, &shared);
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    if is_transient_accept_error(&e) {
                        tracing::warn!("accept on {endpoint} failed: {e}; retrying in {delay:?}");
                    } else {
                        tracing::error!("accept on {endpoint} failed: {e}; retrying in {delay:?}");
                    }
                    tokio::select! {
                        biased;
                        _ = stop.wait_for(|s| *s) => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        drop(listener);
        remove_unix_socket(&endpoint);
        drain(&shared, options.shutdown_timeout).await;
        Ok(())
    }
}

/// Tells every connection to close by `now + timeout`, then waits for them.
async fn drain(shared: &Shared, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let open = {
        let mut reg = shared.registry();
        reg.closing = true;
        for tx in reg.conns.values_mut() {
            if let Some(tx) = tx.take() {
                let _ = tx.send(deadline);
            }
        }
        reg.conns.len()
    };
    tracing::info!("shutting down: closing {open} connection(s) within {timeout:?}");
    // The connections cut themselves at the deadline; the margin covers
    // their last log line.
    let give_up = tokio::time::Instant::from_std(deadline) + Duration::from_secs(1);
    loop {
        let drained = shared.drained.notified();
        let left = shared.registry().conns.len();
        if left == 0 {
            break;
        }
        tokio::select! {
            () = drained => {}
            () = tokio::time::sleep_until(give_up) => {
                tracing::warn!("{left} connection(s) still open after the shutdown deadline");
                break;
            }
        }
    }
}

fn admit<H: Handler>(
    accepted: Accepted,
    options: &ServerOptions,
    handler: &Arc<H>,
    shared: &Arc<Shared>,
) {
    let (tx, rx) = oneshot::channel();
    let id = {
        let mut reg = shared.registry();
        if reg.conns.len() >= options.max_connections {
            drop(reg);
            refuse(accepted, options.max_connections, shared);
            return;
        }
        let id = reg.next_id;
        reg.next_id += 1;
        reg.conns.insert(id, Some(tx));
        id
    };
    let open = OpenConnection::open(&shared.totals);
    let guard = ConnGuard {
        id,
        shared: Arc::clone(shared),
    };
    let config = options.config.clone();
    let handler = Arc::clone(handler);
    match accepted {
        Accepted::Tcp(stream, peer) => {
            if let Err(e) = configure_tcp(&stream, &options.socket) {
                tracing::debug!(%peer, "socket options not applied: {e}");
            }
            let peer = peer.to_string();
            tokio::spawn(serve_connection(
                stream, peer, config, handler, rx, guard, open,
            ));
        }
        Accepted::Unix(stream) => {
            let peer = format!("unix#{id}");
            tokio::spawn(serve_connection(
                stream, peer, config, handler, rx, guard, open,
            ));
        }
    }
}

/// Over `max_connections`: accepted, and closed at once.
fn refuse(accepted: Accepted, max: usize, shared: &Shared) {
    shared
        .totals
        .refused
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let peer = match &accepted {
        Accepted::Tcp(_, peer) => peer.to_string(),
        Accepted::Unix(_) => "unix".to_owned(),
    };
    drop(accepted);
    if let Some(held_back) = shared.refusals.check(Instant::now()) {
        tracing::warn!(
            "connection from {peer} refused: over max-connections ({max}); \
             {held_back} more refused since the last such line"
        );
    }
}

/// Takes a connection out of the registry when its task ends, however it ends.
struct ConnGuard {
    id: u64,
    shared: Arc<Shared>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut reg = self.shared.registry();
        reg.conns.remove(&self.id);
        if reg.closing && reg.conns.is_empty() {
            self.shared.drained.notify_one();
        }
    }
}

async fn serve_connection<S: Socket, H: Handler>(
    mut socket: S,
    peer: String,
    config: ServerConfig,
    handler: Arc<H>,
    shutdown: oneshot::Receiver<Instant>,
    guard: ConnGuard,
    open: OpenConnection,
) {
    let opened = Instant::now();
    let mut conn = ServerConnection::new(config, opened);
    let mut deadline = None;
    let end = drive(
        &mut socket,
        &mut conn,
        &*handler,
        shutdown,
        &mut deadline,
        &peer,
    )
    .await;
    let stats = conn.stats();
    match &end {
        Ok(()) => open.close(&stats, conn.close_reason()),
        Err(_) => open.close(&stats, None),
    }
    tracing::info!(
        "{}",
        conn_closed_line(
            &peer,
            opened.elapsed(),
            &stats,
            conn.close_reason(),
            end.as_ref().err()
        )
    );
    // The core says whether the peer may still be sending, and so whether
    // closing now could let a reset destroy acks it has not read.
    match conn.close_mode() {
        CloseMode::Linger { max, quiet } if end.is_ok() => {
            let until = Instant::now() + max;
            let until = deadline.map_or(until, |d| d.min(until));
            linger(&mut socket, until, quiet).await;
        }
        _ if end.is_ok() => socket.shutdown_write(),
        _ => {}
    }
    drop(socket);
    drop(guard);
}

/// Closes without losing the last acks. A socket closed while its peer
/// is still sending answers the peer's next bytes with RST, and the reset
/// makes the kernel drop what it still had to send: acks not yet taken by
/// a slow reader are lost. So: send FIN after the acks (the peer reads
/// every ack, then EOF), then read and discard while the peer keeps
/// sending, until it closes too, falls quiet for `quiet` (a quiet peer
/// sends nothing that could trigger the reset), or `until` passes. The
/// core decides when and how long ([`ServerConnection::close_mode`]).
/// No buffer is held while waiting.
async fn linger<S: Socket>(socket: &mut S, until: Instant, quiet: Duration) {
    socket.shutdown_write();
    let until = tokio::time::Instant::from_std(until);
    loop {
        let quiet = (tokio::time::Instant::now() + quiet).min(until);
        let ready = tokio::time::timeout_at(quiet, poll_fn(|cx| socket.poll_read_ready(cx))).await;
        if !matches!(ready, Ok(Ok(()))) {
            return;
        }
        let mut sink = BytesMut::with_capacity(4096);
        match poll_fn(|cx| Poll::Ready(poll_read_now(socket, cx, &mut sink))).await {
            ReadOutcome::Data(0) | ReadOutcome::Failed(_) => return,
            ReadOutcome::Data(_) | ReadOutcome::NotReady => {}
        }
    }
}

/// What woke a connection task up.
enum Wake {
    /// Async handlers answered (already passed to the core).
    Answered,
    /// `n` bytes were read into the core's buffer (0: end of stream).
    Read(usize),
    /// The socket can take more output.
    Writable,
    /// The socket failed.
    Failed(io::Error),
    /// The timer fired.
    Timer,
    /// Graceful shutdown, to be complete by this instant.
    Shutdown(Instant),
}

/// The run loop of one connection: drain the core (answer requests,
/// write everything pending in one write), then wait for whichever comes
/// first: an async answer, the shutdown signal, the timer, input (only
/// while the core wants it), or room to write (only while output is
/// pending). `Ok` once the core is closed; `Err` when the socket failed or
/// the shutdown deadline (set in `deadline` once the signal came) passed.
async fn drive<S: Socket, H: Handler>(
    socket: &mut S,
    conn: &mut ServerConnection,
    handler: &H,
    shutdown: oneshot::Receiver<Instant>,
    deadline: &mut Option<Instant>,
    peer: &str,
) -> io::Result<()> {
    // Created on the first async answer: a connection whose handler always
    // answers at once never allocates it.
    let mut answers = None;
    let mut shutdown = Some(shutdown);
    let mut timer = Timer::default();
    loop {
        let now = Instant::now();
        while let Some(request) = conn.poll_event() {
            tracing::debug!(
                peer,
                kind = ?request.kind,
                id = %request.id,
                len = request.payload.len(),
                "request"
            );
            let handle = request.handle;
            match handler.handle(request) {
                Reply::Now(result) => respond(conn, handle, result, now),
                Reply::Later(answer) => answers
                    .get_or_insert_with(FuturesUnordered::new)
                    .push(async move { (handle, answer.await) }),
            }
        }
        if !conn.transmit_buf().is_empty() {
            match write_now(socket, conn.transmit_buf()) {
                WriteOutcome::Wrote(n) if n > 0 => {
                    // Progress may have reopened input: drain again.
                    conn.handle_written(n, now);
                    continue;
                }
                WriteOutcome::Wrote(_) | WriteOutcome::Full => {}
                WriteOutcome::Failed(e) => return Err(e),
            }
        }
        if conn.is_closed() {
            return Ok(());
        }
        if let Some(at) = *deadline
            && now >= at
        {
            tracing::warn!(
                peer,
                "cut at the shutdown deadline with {} request(s) unanswered and {} byte(s) unsent",
                conn.pending_requests(),
                conn.pending_output()
            );
            conn.abort(CloseReason::Aborted {
                why: "shutdown deadline passed with the connection still busy",
            });
            return Ok(());
        }
        timer.arm(conn.poll_timeout());
        timer.arm(*deadline);
        let wants_input = conn.wants_input();
        let has_output = !conn.transmit_buf().is_empty();
        let wake = poll_fn(|cx| {
            if let Some(answers) = answers.as_mut().filter(|a| !a.is_empty()) {
                let mut answered = false;
                while let Poll::Ready(Some((handle, result))) = answers.poll_next_unpin(cx) {
                    respond(conn, handle, result, Instant::now());
                    answered = true;
                }
                if answered {
                    return Poll::Ready(Wake::Answered);
                }
            }
            if let Some(rx) = &mut shutdown
                && let Poll::Ready(r) = Pin::new(rx).poll(cx)
            {
                shutdown = None;
                if let Ok(at) = r {
                    return Poll::Ready(Wake::Shutdown(at));
                }
            }
            if timer.poll_fired(cx).is_ready() {
                return Poll::Ready(Wake::Timer);
            }
            if wants_input && let Poll::Ready(ready) = socket.poll_read_ready(cx) {
                if let Err(e) = ready {
                    return Poll::Ready(Wake::Failed(e));
                }
                match poll_read_now(socket, cx, conn.input_buffer()) {
                    ReadOutcome::Data(n) => return Poll::Ready(Wake::Read(n)),
                    ReadOutcome::Failed(e) => return Poll::Ready(Wake::Failed(e)),
                    // Stale readiness: give back the buffer just reserved,
                    // so that a waiting connection holds none.
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
            Wake::Answered | Wake::Writable => {}
            Wake::Read(0) => conn.handle_eof(Instant::now()),
            Wake::Read(n) => conn.handle_input_appended(n, Instant::now()),
            Wake::Failed(e) => return Err(e),
            Wake::Timer => conn.handle_timeout(Instant::now()),
            Wake::Shutdown(at) => {
                *deadline = Some(at);
                conn.close(Instant::now());
            }
        }
    }
}

fn respond(conn: &mut ServerConnection, handle: u64, result: AckResult, now: Instant) {
    if let Err(e) = conn.respond(handle, result, now) {
        // Handles come from this connection and are answered once: a bug.
        tracing::error!("answer lost: {e}");
    }
}
