//! The server of the async adapters, written once over [`Runtime`]: an
//! accept loop, the [`Supervisor`], and one task per connection driving a
//! [`ServerConnection`].

use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt as _, StreamExt as _};
use protocol::{
    AckResult, CloseReason, RequestHandle, ServerConfig, ServerConnection, ServerEvent,
};
use protocol_tls::ServerTls;

use crate::handler::{Handler, Reply};
use crate::net::{AcceptBackoff, Endpoint, SocketOptions, bind, remove_unix_socket};
use crate::runtime::{
    Deadline, READ_BUDGET, READ_BYTES_BUDGET, Runtime, Socket, poll_read_step, poll_write_step,
    sleep_until,
};
use crate::session::ServerSession;
use crate::supervisor::{Served, Signal, Supervisor};
use crate::totals::{Meter, earliest};

/// How a server runs: the core's limits (per connection and server-wide)
/// and the socket options. Every field has a default.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// The core's limits and timeouts; `max_connections` and
    /// `shutdown_timeout` are the supervisor's.
    pub config: ServerConfig,
    /// Listener and connection socket options.
    pub socket: SocketOptions,
    /// TLS on every connection (`None`: plain).
    pub tls: Option<ServerTls>,
}

/// Checks the options before anything starts: an error names the setting,
/// its value and the allowed range.
pub fn validate(options: &ServerOptions) -> io::Result<()> {
    options
        .config
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// A bound async server, ready to [`run`](Self::run).
pub struct Server<R: Runtime, H> {
    rt: R,
    listener: R::Listener,
    options: ServerOptions,
    handler: Arc<H>,
    supervisor: Arc<Supervisor<Arc<Signal>>>,
}

impl<R: Runtime, H> std::fmt::Debug for Server<R, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("runtime", &self.rt.name())
            .field("endpoint", self.supervisor.endpoint())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime, H: Handler> Server<R, H> {
    /// Validates the options and binds `endpoint` (TCP, or a Unix path
    /// whose stale socket file is replaced) on runtime `rt`.
    pub fn bind(
        rt: R,
        endpoint: &Endpoint,
        options: ServerOptions,
        handler: H,
    ) -> io::Result<Self> {
        validate(&options)?;
        let std_listener = bind(endpoint, &options.socket)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {endpoint}: {e}")))?;
        std_listener.set_nonblocking(true)?;
        let endpoint = std_listener.local_endpoint()?;
        let listener = rt.listener(std_listener)?;
        Ok(Self {
            supervisor: Supervisor::new(endpoint, &options.config),
            rt,
            listener,
            options,
            handler: Arc::new(handler),
        })
    }

    /// Accepts and serves until the [`ShutdownHandle`] is used, then shuts
    /// down gracefully: stops accepting, tells every connection to close
    /// by the shutdown deadline (each answers what it received, flushes and
    /// closes; the core cuts what is still busy then), waits for them,
    /// removes the Unix socket file, and returns. Accept errors never end
    /// it: they are logged and retried with backoff.
    pub async fn run(self) -> io::Result<()> {
        let Self {
            rt,
            listener,
            options,
            handler,
            supervisor,
        } = self;
        let mut backoff = AcceptBackoff::new();
        let stop = Arc::clone(supervisor.stop());
        loop {
            let accepted = poll_fn(|cx| {
                if stop.poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                rt.poll_accept(&listener, cx).map(Some)
            })
            .await;
            match accepted {
                None => break,
                Some(Ok((socket, peer))) => {
                    backoff.reset();
                    if let Err(e) = socket.configure(&options.socket) {
                        tracing::debug!(peer, "socket options not applied: {e}");
                    }
                    let signal = Arc::new(Signal::default());
                    let Some(admission) = supervisor.admit(peer, Arc::clone(&signal)) else {
                        continue;
                    };
                    let now = Instant::now();
                    let conn = ServerConnection::new(options.config.clone(), now);
                    let meter = admission.meter();
                    let (handler, finish) = (
                        Arc::clone(&handler),
                        move |(stats, reason, source, meter)| {
                            admission.finish(&stats, &reason, source, meter)
                        },
                    );
                    // `map`, not an async block awaiting the task: that holds
                    // the connection's state twice (its resident memory).
                    match &options.tls {
                        None => rt.spawn(
                            serve(rt.clone(), socket, conn, handler, signal, meter).map(finish),
                        ),
                        Some(tls) => match tls.accept(conn, now) {
                            Ok(conn) => rt.spawn(
                                serve(rt.clone(), socket, conn, handler, signal, meter).map(finish),
                            ),
                            Err(e) => tracing::warn!("TLS session not started: {e}"),
                        },
                    }
                }
                Some(Err(e)) => {
                    let delay = supervisor.accept_failed(&e, &mut backoff);
                    let until = Instant::now() + delay;
                    let mut nap = std::pin::pin!(sleep_until(&rt, until));
                    poll_fn(|cx| {
                        if stop.poll(cx).is_ready() {
                            return Poll::Ready(());
                        }
                        nap.as_mut().poll(cx)
                    })
                    .await;
                }
            }
        }
        drop(listener);
        remove_unix_socket(supervisor.endpoint());
        supervisor
            .drain(|d: Duration| sleep_until(&rt, Instant::now() + d))
            .await;
        Ok(())
    }
}

/// Drives one connection until the core is done: the driver loop of every
/// async adapter. Each turn: see the shutdown signal; drain the core's
/// events (answer requests, inline when the handler answers at once, else
/// on this task with the others still coming; send the lingering close's
/// FIN; stop at the end); write what is pending; read while the core wants
/// input (yielding after a budget, so a flooding peer starves no one);
/// arm the one timer (the core's, or the meter's next fold). Returns the
/// connection's counters, why it ended, the client's address from its
/// PROXY header (if any) and the meter.
///
/// An `async` block, not an `async fn`: an `async fn` keeps its arguments
/// (the core among them) twice in its state.
#[allow(clippy::manual_async_fn)]
pub fn serve<R: Runtime, H: Handler, S: ServerSession>(
    rt: R,
    mut socket: R::Socket,
    mut conn: S,
    handler: Arc<H>,
    shutdown: Arc<Signal>,
    mut meter: Meter,
) -> impl Future<
    Output = (
        protocol::ConnectionStats,
        CloseReason,
        Option<SocketAddr>,
        Meter,
    ),
> {
    async move {
        let mut timer = Deadline::default();
        let mut closing = false;
        // Created on the first async answer: a connection whose handler always
        // answers at once never allocates it.
        let mut later = None;
        let reason = poll_fn(|cx| {
            let mut reads = 0;
            let mut read_bytes = 0;
            // Once per poll (a connection that never runs out of input still
            // yields, so it sees it): the waker registered here wakes the
            // task when the shutdown comes later.
            if !closing && let Poll::Ready(deadline) = shutdown.poll(cx) {
                closing = true;
                conn.close(Instant::now(), Some(deadline));
            }
            loop {
                let now = Instant::now();
                // Answers given at once are timed together: one clock read
                // per batch, each counted with the batch's time.
                let mut at_once = 0;
                while let Some(event) = conn.poll_event() {
                    match event {
                        ServerEvent::Request(req) => {
                            tracing::debug!(kind = ?req.kind, id = %req.id, len = req.payload.len(), "request");
                            let handle = req.handle;
                            match handler.handle(req) {
                                Reply::Now(result) => {
                                    at_once += 1;
                                    respond(&mut conn, handle, result, now);
                                }
                                Reply::Later(fut) => later
                                    .get_or_insert_with(FuturesUnordered::new)
                                    .push(async move { (handle, now, fut.await) }),
                            }
                        }
                        ServerEvent::ShutdownWrite => socket.shutdown_write(),
                        ServerEvent::Proxied(header) => tracing::debug!(?header, "PROXY header"),
                        ServerEvent::Closed(reason) => {
                            // One write that does not wait (a TLS alert).
                            let _ = poll_write_step(&mut socket, cx, &mut conn, |c| c.last_words(), |c, n| {
                                c.handle_written(n, now)
                            });
                            return Poll::Ready(reason);
                        }
                    }
                }
                if at_once > 0 && meter.is_on() {
                    meter.answered(at_once, now.elapsed());
                }
                meter.tick(|| conn.stats(), now);
                if let Some(pending) = later.as_mut() {
                    let mut answered = false;
                    while let Poll::Ready(Some((handle, asked, result))) = pending.poll_next_unpin(cx)
                    {
                        meter.answered(1, now.saturating_duration_since(asked));
                        respond(&mut conn, handle, result, now);
                        answered = true;
                    }
                    if pending.is_empty() {
                        later = None;
                    }
                    if answered {
                        continue;
                    }
                }
                match poll_write_step(
                    &mut socket,
                    cx,
                    &mut conn,
                    S::transmit,
                    |c, n| c.handle_written(n, now),
                ) {
                    // Progress may have reopened input: drain again.
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(e) => {
                        conn.handle_io_error(e.kind());
                        continue;
                    }
                }
                if conn.wants_input() {
                    if reads >= READ_BUDGET || read_bytes >= READ_BYTES_BUDGET {
                        // Input never ran out this turn: the timer still counts.
                        if timer.poll(cx, &rt, due(&conn, &meter), now).is_ready() {
                            conn.handle_timeout(now);
                            continue;
                        }
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    match poll_read_step(&mut socket, cx, &mut conn, now) {
                        Poll::Ready(Ok(0)) => conn.handle_eof(now),
                        Poll::Ready(Ok(n)) => {
                            reads += 1;
                            read_bytes += n;
                        }
                        Poll::Ready(Err(e)) => conn.handle_io_error(e.kind()),
                        Poll::Pending => {
                            if timer.poll(cx, &rt, due(&conn, &meter), now).is_ready() {
                                conn.handle_timeout(now);
                                continue;
                            }
                            return Poll::Pending;
                        }
                    }
                    continue;
                }
                if timer.poll(cx, &rt, due(&conn, &meter), now).is_ready() {
                    conn.handle_timeout(now);
                    continue;
                }
                return Poll::Pending;
            }
        })
        .await;
        (conn.stats(), reason, conn.source(), meter)
    }
}

/// The driver's one timer: the core's next timeout or the meter's next fold.
fn due(conn: &impl ServerSession, meter: &Meter) -> Option<Instant> {
    earliest(conn.poll_timeout(), meter.next_fold(|| conn.stats()))
}

fn respond(conn: &mut impl ServerSession, handle: RequestHandle, result: AckResult, now: Instant) {
    if let Err(e) = conn.respond(handle, result, now) {
        // Handles come from this connection and are answered once: a bug.
        tracing::error!("answer lost: {e}");
    }
}

/// Where it listens, how to stop it, its counters: see [`Served`].
impl<R: Runtime, H> Served for Server<R, H> {
    type Control = Arc<Signal>;
    fn supervisor(&self) -> &Supervisor<Arc<Signal>> {
        &self.supervisor
    }
}
