//! The server: one accept loop, one thread per connection.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use adapter_common::{
    AcceptBackoff, Endpoint, OpenConnection, RateLimiter, ServerTotals, SocketOptions, StdListener,
    bind, cli::ServeArgs, configure_tcp, conn_closed_line, is_transient_accept_error,
    remove_unix_socket,
};
use protocol::{AckResult, CloseMode, Request, ServerConfig, ServerConnection};
use tracing::{debug, error, info, warn};

use crate::stream::{SocketTimeout, Stream, is_timeout};

/// The application: answers one request with a result (0 ok, 1 error).
/// Called on the connection's own thread, shared by all of them.
pub type Handler = dyn Fn(&Request) -> AckResult + Send + Sync;

/// Bytes read per `read` call, from a buffer on the connection thread's
/// stack: an idle connection holds no heap buffer (the core's receive
/// buffer is only filled when bytes arrived, and given back when it empties).
const READ_CHUNK: usize = 8 * 1024;

/// How often a blocked `accept` looks at the shutdown flag (it is woken
/// by a connection at once otherwise). Set as the listener's SO_RCVTIMEO.
const ACCEPT_POLL: Duration = Duration::from_millis(50);

/// After the shutdown deadline the remaining sockets are shut down; this is
/// how long their threads then get to notice before `run` returns anyway.
const CUT_GRACE: Duration = Duration::from_secs(1);

/// How long a connection that wants no input and has nothing to write
/// sleeps before looking at its timers again. Not reached with a handler
/// that answers at once; a guard against a busy loop.
const STALLED_NAP: Duration = Duration::from_millis(10);

/// How a [`Server`] runs. Every field has a default.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The core's limits and timeouts.
    pub config: ServerConfig,
    /// Listener and connection socket options.
    pub socket: SocketOptions,
    /// Connections served at once; one more is accepted and closed at once,
    /// with a rate-limited warning. Default 1024 (each costs a thread).
    pub max_connections: usize,
    /// Stack size of each connection thread. Default 64 KiB (not the
    /// 8 MiB of a main thread): the connection loop needs well under 16 KiB
    /// plus its 8 KiB read buffer, the rest is for the handler.
    pub stack_size: usize,
    /// How long a graceful shutdown may take before the remaining sockets
    /// are cut. Default 10 s.
    pub shutdown_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            config: ServerConfig::default(),
            socket: SocketOptions::default(),
            max_connections: 1024,
            stack_size: 64 * 1024,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

impl ServerOptions {
    /// The options `adapter-std serve` flags describe.
    pub fn from_serve_args(args: &ServeArgs) -> Self {
        let d = Self::default();
        Self {
            config: args.server_config(),
            socket: args.socket_options(),
            max_connections: args.max_connections.unwrap_or(d.max_connections),
            shutdown_timeout: args.shutdown_timeout(),
            ..d
        }
    }
}

/// A bound server, ready to [`run`](Server::run) on this thread or to be
/// [`spawn`](Server::spawn)ed on its own.
///
/// Each accepted connection gets a thread (a small stack, see
/// [`ServerOptions::stack_size`]) that drives one
/// [`ServerConnection`]: read with a timeout taken from the core's
/// `poll_timeout`, `handle_input`, answer every request with the handler,
/// write everything pending (a write timeout taken from the same timer, so
/// the core's write-stall timeout fires), and read again only while the
/// core wants input. Framing, ordering, limits and timeouts are the core's.
pub struct Server {
    listener: StdListener,
    options: ServerOptions,
    handler: Arc<Handler>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("endpoint", &self.shared.endpoint)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// What the accept loop, the connection threads and the shutdown handles share.
struct Shared {
    endpoint: Endpoint,
    stopping: AtomicBool,
    conns: Mutex<Registry>,
    /// Signalled whenever a connection thread ends.
    conn_ended: Condvar,
    totals: Arc<ServerTotals>,
    refused_log: RateLimiter,
}

/// The open connections, so a shutdown can wake and cut them.
#[derive(Default)]
struct Registry {
    next_id: u64,
    live: HashMap<u64, Arc<Stream>>,
}

impl Shared {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Stops accepting and tells every connection to close gracefully:
    /// `shutdown(Read)` wakes a thread blocked in `read`; it sees the flag
    /// and calls `close(now)` on its core, which answers what was received.
    fn begin_shutdown(&self) {
        let reg = self.registry();
        if self.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        for s in reg.live.values() {
            let _ = s.shutdown(Shutdown::Read);
        }
    }

    /// Waits for every connection thread to end; past `timeout`, shuts
    /// their sockets down and waits [`CUT_GRACE`] more.
    fn drain(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut reg = self.wait_empty(self.registry(), deadline);
        if reg.live.is_empty() {
            return;
        }
        warn!(
            "shutdown timeout ({timeout:?}) passed: cutting {} connection(s)",
            reg.live.len()
        );
        for s in reg.live.values() {
            let _ = s.shutdown(Shutdown::Both);
        }
        reg = self.wait_empty(reg, Instant::now() + CUT_GRACE);
        if !reg.live.is_empty() {
            error!(
                "{} connection thread(s) still running after their sockets were cut (a handler that does not return?)",
                reg.live.len()
            );
        }
    }

    fn wait_empty<'a>(
        &'a self,
        mut reg: MutexGuard<'a, Registry>,
        deadline: Instant,
    ) -> MutexGuard<'a, Registry> {
        while !reg.live.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            reg = self
                .conn_ended
                .wait_timeout(reg, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        reg
    }
}

/// Asks a running [`Server`] to shut down gracefully. Cheap to clone;
/// usable from any thread (e.g. a signal-handling one).
#[derive(Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("endpoint", &self.shared.endpoint)
            .finish()
    }
}

impl ShutdownHandle {
    /// Starts a graceful shutdown and returns at once: the accept loop
    /// stops within 50 ms, every connection answers what it received,
    /// flushes and closes; [`Server::run`] returns once all have, or once
    /// the shutdown timeout cut the rest. Calling it again does nothing.
    pub fn shutdown(&self) {
        self.shared.begin_shutdown();
    }

    /// True once a shutdown was asked for.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.stopping()
    }
}

impl Server {
    /// Binds `endpoint` (TCP or a Unix path; see [`adapter_common::bind`])
    /// for a server that answers every request with `handler`.
    pub fn bind<H>(endpoint: &Endpoint, options: ServerOptions, handler: H) -> io::Result<Self>
    where
        H: Fn(&Request) -> AckResult + Send + Sync + 'static,
    {
        let listener = bind(endpoint, &options.socket)?;
        // SO_RCVTIMEO applies to accept(2): the loop looks at the shutdown
        // flag at least this often without a wake-up trick.
        match &listener {
            StdListener::Tcp(l) => socket2::SockRef::from(l).set_read_timeout(Some(ACCEPT_POLL))?,
            StdListener::Unix(l) => {
                socket2::SockRef::from(l).set_read_timeout(Some(ACCEPT_POLL))?
            }
        }
        let endpoint = listener.local_endpoint()?;
        Ok(Self {
            listener,
            options,
            handler: Arc::new(handler),
            shared: Arc::new(Shared {
                endpoint,
                stopping: AtomicBool::new(false),
                conns: Mutex::new(Registry::default()),
                conn_ended: Condvar::new(),
                totals: Arc::new(ServerTotals::default()),
                refused_log: RateLimiter::new(Duration::from_secs(1)),
            }),
        })
    }

    /// Where the server listens (with the real port when 0 was asked).
    pub fn local_endpoint(&self) -> &Endpoint {
        &self.shared.endpoint
    }

    /// A handle that stops the server gracefully.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The server's counters (connections, requests, close reasons).
    pub fn totals(&self) -> Arc<ServerTotals> {
        Arc::clone(&self.shared.totals)
    }

    /// Serves on this thread until a shutdown is asked for, then drains
    /// the connections (see [`ShutdownHandle::shutdown`]) and returns.
    /// Transient accept errors (out of descriptors and the like) are
    /// logged and backed off from; an error that says the listener itself
    /// is broken ends the loop, drains the connections and is returned.
    pub fn run(self) -> io::Result<()> {
        let result = self.accept_loop();
        let Self {
            listener,
            options,
            shared,
            ..
        } = self;
        drop(listener);
        remove_unix_socket(&shared.endpoint);
        shared.begin_shutdown();
        shared.drain(options.shutdown_timeout);
        result
    }

    /// Runs the server on a thread of its own.
    pub fn spawn(self) -> io::Result<ServerHandle> {
        let shutdown = self.shutdown_handle();
        let endpoint = self.local_endpoint().clone();
        let totals = self.totals();
        let thread = thread::Builder::new()
            .name("adapter-std-accept".to_owned())
            .spawn(move || self.run())?;
        Ok(ServerHandle {
            shutdown,
            endpoint,
            totals,
            thread,
        })
    }

    fn accept_loop(&self) -> io::Result<()> {
        let mut backoff = AcceptBackoff::new();
        while !self.shared.stopping() {
            let stream = match accept(&self.listener) {
                Ok(s) => s,
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_transient_accept_error(&e) => {
                    let delay = backoff.next_delay();
                    warn!("accept failed: {e}; retrying in {delay:?}");
                    self.nap(delay);
                    continue;
                }
                Err(e) => {
                    error!("accept failed, the listener is unusable: {e}");
                    return Err(e);
                }
            };
            backoff.reset();
            if self.shared.stopping() {
                break;
            }
            if let Err(e) = self.start_connection(stream) {
                let delay = backoff.next_delay();
                warn!("cannot start a connection thread: {e}; accepting again in {delay:?}");
                self.nap(delay);
            }
        }
        Ok(())
    }

    /// Sleeps up to `d`, waking early when a shutdown is asked for.
    fn nap(&self, d: Duration) {
        let until = Instant::now() + d;
        while !self.shared.stopping() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            thread::sleep(left.min(ACCEPT_POLL));
        }
    }

    /// Registers the connection and starts its thread; over the limit,
    /// closes it at once. An error means the thread could not be spawned.
    fn start_connection(&self, stream: Stream) -> io::Result<()> {
        let stream = Arc::new(stream);
        let id = {
            let mut reg = self.shared.registry();
            let max = self.options.max_connections;
            if reg.live.len() >= max {
                drop(reg);
                self.shared.totals.refused.fetch_add(1, Ordering::Relaxed);
                if let Some(held) = self.shared.refused_log.check(Instant::now()) {
                    warn!(
                        "connection refused: {max} connections open (max-connections); {held} more refused since the last such line"
                    );
                }
                return Ok(());
            }
            let id = reg.next_id;
            reg.next_id += 1;
            reg.live.insert(id, Arc::clone(&stream));
            id
        };
        let open = OpenConnection::open(&self.shared.totals);
        let ctx = ConnCtx {
            id,
            open,
            shared: Arc::clone(&self.shared),
            handler: Arc::clone(&self.handler),
            config: self.options.config.clone(),
            socket: self.options.socket.clone(),
        };
        let spawned = thread::Builder::new()
            .name("adapter-std-conn".to_owned())
            .stack_size(self.options.stack_size)
            .spawn(move || ctx.run(&stream));
        match spawned {
            Ok(_) => Ok(()),
            Err(e) => {
                // The closure (and its guard-less context) was dropped,
                // which counted the connection as ended: undo the
                // registration by hand.
                self.shared.registry().live.remove(&id);
                self.shared.conn_ended.notify_all();
                Err(e)
            }
        }
    }
}

fn accept(listener: &StdListener) -> io::Result<Stream> {
    match listener {
        StdListener::Tcp(l) => l.accept().map(|(s, _)| Stream::Tcp(s)),
        StdListener::Unix(l) => l.accept().map(|(s, _)| Stream::Unix(s)),
    }
}

/// A server running on its own thread (see [`Server::spawn`]).
#[derive(Debug)]
pub struct ServerHandle {
    shutdown: ShutdownHandle,
    endpoint: Endpoint,
    totals: Arc<ServerTotals>,
    thread: JoinHandle<io::Result<()>>,
}

impl ServerHandle {
    /// Where the server listens.
    pub fn local_endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// A handle that stops the server gracefully.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// The server's counters.
    pub fn totals(&self) -> &Arc<ServerTotals> {
        &self.totals
    }

    /// Graceful shutdown: returns once the server has stopped.
    pub fn shutdown(self) -> io::Result<()> {
        self.shutdown.shutdown();
        self.join()
    }

    /// Waits for the server to stop (after a shutdown asked elsewhere).
    pub fn join(self) -> io::Result<()> {
        self.thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the server's accept thread panicked")))
    }
}

/// Everything a connection thread owns besides its socket.
struct ConnCtx {
    id: u64,
    /// Counts the connection's end, also when the handler panics.
    open: OpenConnection,
    shared: Arc<Shared>,
    handler: Arc<Handler>,
    config: ServerConfig,
    socket: SocketOptions,
}

/// Deregisters a connection when its thread ends, panicking or not (its
/// `OpenConnection` counts and logs a panic).
struct Registered<'a> {
    id: u64,
    shared: &'a Shared,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.shared.registry().live.remove(&self.id);
        self.shared.conn_ended.notify_all();
    }
}

impl ConnCtx {
    fn run(self, stream: &Stream) {
        let _registered = Registered {
            id: self.id,
            shared: &self.shared,
        };
        let started = Instant::now();
        let peer = stream.peer_label();
        if let Stream::Tcp(s) = stream
            && let Err(e) = configure_tcp(s, &self.socket)
        {
            debug!(peer, "cannot set socket options: {e}");
        }
        let mut conn = ServerConnection::new(self.config.clone(), started);
        let io_error = self.serve(stream, &mut conn, &peer).err();
        // While the server stops, the read side was shut down to wake this
        // thread: reads return 0 once the queue is empty, so lingering
        // cannot tell a quiet peer from a busy one. Close at once then
        // (a slow reader that keeps sending may lose its last acks).
        if io_error.is_none() && !self.shared.stopping.load(Ordering::Acquire) {
            close_gracefully(stream, conn.close_mode());
        }
        let stats = conn.stats();
        let reason = conn.close_reason();
        info!(
            "{}",
            conn_closed_line(&peer, started.elapsed(), &stats, reason, io_error.as_ref())
        );
        let counted = if io_error.is_some() { None } else { reason };
        self.open.close(&stats, counted);
    }

    /// The connection's run loop; `Err` is a socket error (the core then
    /// has nothing more to say: the socket is unusable).
    fn serve(&self, stream: &Stream, conn: &mut ServerConnection, peer: &str) -> io::Result<()> {
        let mut buf = [0u8; READ_CHUNK];
        let mut read_timeout = SocketTimeout::default();
        let mut write_timeout = SocketTimeout::default();
        let stopping = &self.shared.stopping;
        let mut reader = stream;
        let mut writer = stream;
        loop {
            // 1. Answer every request (acks leave in request order).
            while let Some(req) = conn.poll_event() {
                let result = (self.handler)(&req);
                debug!(peer, kind = ?req.kind, id = %req.id, len = req.payload.len(), %result, "request");
                if let Err(e) = conn.respond(req.handle, result, Instant::now()) {
                    debug!(peer, "respond: {e}");
                }
            }
            if conn.is_closed() {
                return Ok(());
            }
            let now = Instant::now();
            // 2. A timer that is due fires first (a write stall aborts).
            if conn.poll_timeout().is_some_and(|t| t <= now) {
                conn.handle_timeout(now);
                continue;
            }
            // 3. Write what is pending, with the core's timer as the limit.
            if !conn.transmit_buf().is_empty() {
                let wait = SocketTimeout::wait_for(conn.poll_timeout(), now);
                write_timeout.apply(wait, |d| stream.set_write_timeout(d))?;
                match writer.write(conn.transmit_buf()) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => conn.handle_written(n, Instant::now()),
                    Err(e) if is_timeout(&e) => conn.handle_timeout(Instant::now()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
                continue;
            }
            // 4. Shutting down: read nothing more, answer what came.
            if stopping.load(Ordering::Acquire) && !conn.is_input_done() {
                conn.close(now);
                continue;
            }
            // 5. Read, while the core wants input.
            if !conn.wants_input() {
                let wait = SocketTimeout::wait_for(conn.poll_timeout(), now);
                thread::sleep(wait.map_or(STALLED_NAP, |w| w.min(STALLED_NAP)));
                conn.handle_timeout(Instant::now());
                continue;
            }
            let wait = SocketTimeout::wait_for(conn.poll_timeout(), now);
            read_timeout.apply(wait, |d| stream.set_read_timeout(d))?;
            match reader.read(&mut buf) {
                Ok(0) if stopping.load(Ordering::Acquire) => conn.close(Instant::now()),
                Ok(0) => conn.handle_eof(Instant::now()),
                Ok(n) => conn.handle_input(buf.get(..n).unwrap_or_default(), Instant::now()),
                Err(e) if is_timeout(&e) => conn.handle_timeout(Instant::now()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Closes the way the core says: FIN after the last ack, and while the
/// peer may still be sending, read and discard until it closes, goes quiet
/// or the linger ends, so that a reset does not destroy acks it has not
/// read yet. The shutdown deadline's `shutdown(Both)` cuts it short.
fn close_gracefully(stream: &Stream, mode: CloseMode) {
    let _ = stream.shutdown(Shutdown::Write);
    let CloseMode::Linger { max, quiet } = mode else {
        return;
    };
    let until = Instant::now() + max;
    let mut sink = [0u8; 4096];
    let mut reader = stream;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        let wait = quiet.min(left).max(Duration::from_millis(1));
        if stream.set_read_timeout(Some(wait)).is_err() {
            return;
        }
        match reader.read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
