//! The server supervisor every adapter runs: admits connections up to
//! `max_connections` (refusing the rest with a rate-limited log line),
//! keeps them in a registry, fans a graceful shutdown out to them with
//! its deadline, waits for them to drain, and counts everything in the
//! server's totals. It is synchronous and runtime-free: what "tell a
//! connection to close" means is the adapter's [`Control`].

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use protocol::{CloseReason, ConnectionStats, ServerConfig};

use crate::net::{AcceptBackoff, Endpoint, is_transient_accept_error};
use crate::totals::{Meter, RateLimiter, ServerTotals, conn_closed_line};

/// After the shutdown deadline, how long the supervisor still waits for
/// connections to notice before it cuts them and gives up.
pub const CUT_GRACE: Duration = Duration::from_secs(1);

/// How a connection is told to close, by the supervisor.
pub trait Control: Send + Sync + 'static {
    /// Close gracefully by `deadline`: answer what was received, flush,
    /// end (the core's `close(now, Some(deadline))`).
    fn close(&self, deadline: Instant);
    /// The deadline passed long ago and the connection is still there
    /// (e.g. blocked in a handler): cut its socket, if the adapter can.
    fn cut(&self) {}
}

/// A one-shot signal with a deadline, for async tasks: set once, seen on
/// every poll (an atomic load), wakes the task that waits on it.
#[derive(Debug, Default)]
pub struct Signal {
    deadline: OnceLock<Instant>,
    waker: AtomicWaker,
}

impl Signal {
    /// Sets the signal (the first deadline wins) and wakes the waiter.
    pub fn set(&self, deadline: Instant) {
        let _ = self.deadline.set(deadline);
        self.waker.wake();
    }

    /// True once set.
    pub fn is_set(&self) -> bool {
        self.deadline.get().is_some()
    }

    /// `Ready(deadline)` once set; else registers the task to be woken.
    pub fn poll(&self, cx: &mut Context<'_>) -> Poll<Instant> {
        if let Some(d) = self.deadline.get() {
            return Poll::Ready(*d);
        }
        self.waker.register(cx.waker());
        self.deadline
            .get()
            .map_or(Poll::Pending, |d| Poll::Ready(*d))
    }
}

impl Control for Arc<Signal> {
    fn close(&self, deadline: Instant) {
        self.set(deadline);
    }
}

struct Registry<C> {
    next_id: u64,
    live: HashMap<u64, C>,
    /// Set by the shutdown: the deadline every connection must meet.
    deadline: Option<Instant>,
}

/// The supervisor of one server (see the module docs).
pub struct Supervisor<C> {
    endpoint: Endpoint,
    max_connections: usize,
    shutdown_timeout: Duration,
    registry: Mutex<Registry<C>>,
    totals: Arc<ServerTotals>,
    refusals: RateLimiter,
    /// The server's own stop: set by [`ShutdownHandle::shutdown`].
    stop: Arc<Signal>,
}

impl<C> std::fmt::Debug for Supervisor<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("endpoint", &self.endpoint)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

impl<C: Control> Supervisor<C> {
    /// A supervisor for a server on `endpoint` with `config`'s server-wide
    /// limits (`max_connections`, `shutdown_timeout`).
    pub fn new(endpoint: Endpoint, config: &ServerConfig) -> Arc<Self> {
        Arc::new(Self {
            endpoint,
            max_connections: config.max_connections,
            shutdown_timeout: config.shutdown_timeout,
            registry: Mutex::new(Registry {
                next_id: 0,
                live: HashMap::new(),
                deadline: None,
            }),
            totals: Arc::new(ServerTotals::default()),
            refusals: RateLimiter::new(Duration::from_secs(1)),
            stop: Arc::new(Signal::default()),
        })
    }

    fn registry(&self) -> MutexGuard<'_, Registry<C>> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where the server listens.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The server's counters.
    pub fn totals(&self) -> &Arc<ServerTotals> {
        &self.totals
    }

    /// The server's stop signal (set by a [`ShutdownHandle`]).
    pub fn stop(&self) -> &Arc<Signal> {
        &self.stop
    }

    /// A handle that starts the graceful shutdown.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            stop: Arc::clone(&self.stop),
        }
    }

    /// The shutdown deadline, once a shutdown began.
    pub fn deadline(&self) -> Option<Instant> {
        self.registry().deadline
    }

    /// Admits an accepted connection, or refuses it when `max_connections`
    /// are open (counted, and logged at most once a second with the number
    /// held back): the caller then drops the socket. `control` is how a
    /// shutdown reaches it; a connection admitted during a shutdown is
    /// told to close at once.
    pub fn admit(self: &Arc<Self>, peer: String, control: C) -> Option<Admission<C>> {
        let mut reg = self.registry();
        if reg.live.len() >= self.max_connections {
            drop(reg);
            self.totals.refused.fetch_add(1, Ordering::Relaxed);
            if let Some(held) = self.refusals.check(Instant::now()) {
                tracing::warn!(
                    "connection from {peer} refused: over max-connections ({}); {held} more refused since the last such line",
                    self.max_connections
                );
            }
            return None;
        }
        let id = reg.next_id;
        reg.next_id += 1;
        if let Some(deadline) = reg.deadline {
            control.close(deadline);
        }
        reg.live.insert(id, control);
        drop(reg);
        self.totals.connection_opened();
        Some(Admission {
            id,
            peer,
            started: Instant::now(),
            supervisor: Arc::clone(self),
            counted: false,
        })
    }

    /// Logs a failed accept (a warning when it is transient, such as
    /// EMFILE, an error otherwise) and says how long to back off.
    pub fn accept_failed(&self, e: &io::Error, backoff: &mut AcceptBackoff) -> Duration {
        let delay = backoff.next_delay();
        if is_transient_accept_error(e) {
            tracing::warn!(
                "accept on {} failed: {e}; retrying in {delay:?}",
                self.endpoint
            );
        } else {
            tracing::error!(
                "accept on {} failed: {e}; retrying in {delay:?}",
                self.endpoint
            );
        }
        delay
    }

    /// Starts the graceful shutdown of every connection: each is told to
    /// close by now + `shutdown_timeout`. Returns that deadline; calling it
    /// again returns the first one.
    pub fn begin_shutdown(&self) -> Instant {
        let mut reg = self.registry();
        if let Some(d) = reg.deadline {
            return d;
        }
        let deadline = Instant::now() + self.shutdown_timeout;
        reg.deadline = Some(deadline);
        for c in reg.live.values() {
            c.close(deadline);
        }
        tracing::info!(
            "shutting down: closing {} connection(s) within {:?}",
            reg.live.len(),
            self.shutdown_timeout
        );
        deadline
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.registry().live.len()
    }

    /// Shuts down and waits until every connection ended. Past the
    /// deadline plus [`CUT_GRACE`] the ones left are cut ([`Control::cut`])
    /// and it returns anyway. `sleep` waits the way the caller's runtime
    /// does (a blocking caller passes a sleep that blocks and is ready).
    pub async fn drain<F: Future<Output = ()>>(&self, mut sleep: impl FnMut(Duration) -> F) {
        let deadline = self.begin_shutdown();
        let give_up = deadline + CUT_GRACE;
        loop {
            let left = self.open();
            if left == 0 {
                return;
            }
            let now = Instant::now();
            if now >= give_up {
                let reg = self.registry();
                tracing::warn!(
                    "{} connection(s) still open after the shutdown deadline: cut",
                    reg.live.len()
                );
                for c in reg.live.values() {
                    c.cut();
                }
                return;
            }
            sleep((give_up - now).min(DRAIN_POLL)).await;
        }
    }
}

/// A bound server, whatever its IO model: where it listens, how to stop
/// it and its counters are its [`Supervisor`]'s. Every adapter's server
/// has these (bring the trait into scope: `use adapter_tokio::Served as _`).
pub trait Served {
    /// How its supervisor reaches a connection.
    type Control: Control;
    /// The server's supervisor.
    fn supervisor(&self) -> &Supervisor<Self::Control>;
    /// Where it listens (with the real port when port 0 was asked).
    fn local_endpoint(&self) -> &Endpoint {
        self.supervisor().endpoint()
    }
    /// A handle that starts the graceful shutdown.
    fn shutdown_handle(&self) -> ShutdownHandle {
        self.supervisor().shutdown_handle()
    }
    /// The server's counters (their `Display` is the shutdown summary line).
    fn totals(&self) -> Arc<ServerTotals> {
        Arc::clone(self.supervisor().totals())
    }
}

/// How often [`Supervisor::drain`] looks at the open count.
const DRAIN_POLL: Duration = Duration::from_millis(5);

/// Starts the graceful shutdown of a server from anywhere (a signal
/// handler, a test). Cheap to clone.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    stop: Arc<Signal>,
}

impl ShutdownHandle {
    /// Stop accepting, answer every request received, flush, close every
    /// connection (cut after the shutdown timeout); the server's `run`
    /// returns once all are closed. Calling it again does nothing more.
    pub fn shutdown(&self) {
        self.stop.set(Instant::now());
    }

    /// True once [`shutdown`](Self::shutdown) was called.
    pub fn is_shutting_down(&self) -> bool {
        self.stop.is_set()
    }
}

/// One admitted connection, from accept to end: [`finish`](Self::finish)
/// counts and logs its end. Dropped without that (a handler panicked and
/// unwound the connection's task or thread, or the task was dropped), it
/// counts the end as `panic` or `dropped` and logs it, so the slot is
/// always given back.
#[must_use = "dropping it counts the connection as ended"]
pub struct Admission<C: Control> {
    id: u64,
    peer: String,
    started: Instant,
    supervisor: Arc<Supervisor<C>>,
    counted: bool,
}

impl<C: Control> std::fmt::Debug for Admission<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("id", &self.id)
            .field("peer", &self.peer)
            .finish()
    }
}

impl<C: Control> Admission<C> {
    /// The peer's label, for logs.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// The shutdown deadline, if the server is shutting down.
    pub fn shutdown_deadline(&self) -> Option<Instant> {
        self.supervisor.deadline()
    }

    /// The connection's [`Meter`], for its driver (on when the server's
    /// totals are live); hand it back to [`finish`](Self::finish).
    pub fn meter(&self) -> Meter {
        Meter::new(&self.supervisor.totals, self.started)
    }

    /// Counts the connection's end (what `meter` has not folded in yet)
    /// and logs its line (peer, duration, counters, reason). `source`: the
    /// client behind the proxy, from the connection's PROXY header; the
    /// line then names it first.
    pub fn finish(
        mut self,
        stats: &ConnectionStats,
        reason: &CloseReason,
        source: Option<SocketAddr>,
        mut meter: Meter,
    ) {
        self.counted = true;
        let client = source
            .or_else(|| self.peer.parse::<SocketAddr>().ok())
            .map(|a| a.ip());
        self.supervisor
            .totals
            .connection_closed_metered(stats, reason, client, &mut meter);
        let peer = match source {
            Some(source) => format!("{source} (via {})", self.peer),
            None => std::mem::take(&mut self.peer),
        };
        tracing::info!(
            "{}",
            conn_closed_line(&peer, self.started.elapsed(), stats, reason)
        );
    }
}

impl<C: Control> Drop for Admission<C> {
    fn drop(&mut self) {
        self.supervisor.registry().live.remove(&self.id);
        if self.counted {
            return;
        }
        let kind = if std::thread::panicking() {
            tracing::error!(
                peer = self.peer,
                "connection task panicked (in the handler?): connection dropped, its unanswered requests lost"
            );
            "panic"
        } else {
            tracing::warn!(
                peer = self.peer,
                "connection task dropped before the connection ended"
            );
            "dropped"
        };
        self.supervisor.totals.connection_abandoned(kind);
    }
}

/// Runs a future whose every await is ready at once (a blocking caller's
/// [`Supervisor::drain`], a handler's answer on a blocking adapter) on the
/// calling thread, parking while it is pending.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}
