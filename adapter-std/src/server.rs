//! The server: one accept loop, a thread per connection, and the common
//! [`Supervisor`] for admission, the shutdown fan-out, the drain and the
//! totals. Each connection thread runs the run loop of the `protocol`
//! crate docs over its blocking socket.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use adapter_common::server::validate;
use adapter_common::{
    AcceptBackoff, Admission, Control, Endpoint, Handler, Meter, Net, Reply, Served, ServerOptions,
    ServerSession, Signal, StdListener, StdStream, Supervisor, bind, block_on, configure_tcp,
    earliest, is_timeout, remove_unix_socket,
};
use bytes::BytesMut;
use protocol::{CloseReason, ServerConnection, ServerEvent};
use tracing::{debug, warn};

use crate::timeout::SocketTimeout;

/// The stack of each connection thread unless [`Server::stack_size`] says
/// otherwise: 64 KiB, not the 2 MiB of a spawned thread. The loop needs
/// well under 16 KiB plus its 8 KiB read buffer; the rest is the handler's.
pub const DEFAULT_STACK_SIZE: usize = 64 * 1024;

/// The least stack of a connection thread that runs a TLS handshake (its
/// key exchange and signature run on it).
const TLS_STACK_SIZE: usize = 256 * 1024;

/// Bytes read per `read`, into a buffer on the connection thread's stack:
/// an idle connection holds no heap buffer. While a larger frame's body is
/// coming the core asks for more (`read_size`), read into its own buffer.
const READ_CHUNK: usize = 8 * 1024;

/// How often a blocked `accept` looks at the stop signal: the listener's
/// SO_RCVTIMEO (it applies to accept(2)).
const ACCEPT_POLL: Duration = Duration::from_millis(50);

/// The longest nap of a connection that neither writes nor reads (the
/// run loop's third branch), so it looks at its timers again.
const NAP: Duration = Duration::from_millis(10);

/// How the supervisor reaches a connection thread: through its socket.
pub struct Wake(Arc<StdStream>);

impl Control for Wake {
    /// `shutdown(Read)` wakes the thread if it is blocked in `read`; it
    /// then sees the stop signal and calls the core's `close` with the
    /// deadline of its [`Admission`].
    fn close(&self, _deadline: Instant) {
        let _ = self.0.shutdown(Shutdown::Read);
    }

    fn cut(&self) {
        let _ = self.0.shutdown(Shutdown::Both);
    }
}

/// A bound server, ready to [`run`](Server::run) on this thread or to be
/// [`spawn`](Server::spawn)ed on its own.
///
/// It takes the same [`ServerOptions`] and the same [`Handler`] as the
/// async adapters' servers. A handler's [`Reply::Now`] is answered inline;
/// a [`Reply::Later`] future is run to completion on the connection's
/// own thread ([`block_on`]), so that connection reads nothing meanwhile
/// (the others, on their own threads, go on).
///
/// Every connection costs a thread: mind `config.max_connections` (the
/// binary's default is 1024).
pub struct Server<H> {
    listener: StdListener,
    options: ServerOptions,
    stack_size: usize,
    handler: Arc<H>,
    supervisor: Arc<Supervisor<Wake>>,
}

impl<H: Handler> Server<H> {
    /// Validates the options and binds `endpoint` (TCP, or a Unix path
    /// whose stale socket file is replaced; see [`adapter_common::bind`]).
    pub fn bind(endpoint: &Endpoint, options: ServerOptions, handler: H) -> io::Result<Self> {
        validate(&options)?;
        let listener = bind(endpoint, &options.socket)?;
        socket2::SockRef::from(&listener).set_read_timeout(Some(ACCEPT_POLL))?;
        Ok(Self {
            supervisor: Supervisor::new(listener.local_endpoint()?, &options.config),
            listener,
            options,
            stack_size: DEFAULT_STACK_SIZE,
            handler: Arc::new(handler),
        })
    }

    /// Sets the stack size of the connection threads (default
    /// [`DEFAULT_STACK_SIZE`]); a handler that needs more asks here.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = bytes;
        self
    }

    /// Accepts and serves on this thread until the [`ShutdownHandle`] is
    /// used (seen within 50 ms), then shuts down gracefully: every
    /// connection is told to close by the shutdown deadline, the ones left
    /// after it (plus a grace second) are cut, the Unix socket file is
    /// removed. Accept errors never end it: they are logged and backed
    /// off from (EMFILE included).
    pub fn run(self) -> io::Result<()> {
        self.accept_loop();
        drop(self.listener);
        remove_unix_socket(self.supervisor.endpoint());
        block_on(self.supervisor.drain(|d| {
            thread::sleep(d);
            std::future::ready(())
        }));
        Ok(())
    }

    /// Runs the server on a thread of its own.
    pub fn spawn(self) -> io::Result<ServerHandle> {
        Ok(ServerHandle {
            supervisor: Arc::clone(&self.supervisor),
            thread: thread::Builder::new()
                .name("adapter-std-accept".to_owned())
                .spawn(move || self.run())?,
        })
    }

    fn accept_loop(&self) {
        let stop = self.supervisor.stop();
        let mut backoff = AcceptBackoff::new();
        while !stop.is_set() {
            let delay = match self.listener.accept() {
                Ok((stream, peer)) => match self.start(stream, peer) {
                    Ok(()) => {
                        backoff.reset();
                        continue;
                    }
                    Err(e) => {
                        warn!("cannot start a connection thread: {e}");
                        backoff.next_delay()
                    }
                },
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => self.supervisor.accept_failed(&e, &mut backoff),
            };
            // At most a second (the backoff's cap) before the stop is seen.
            thread::sleep(delay);
        }
    }

    /// Admits the connection and starts its thread (over the limit, the
    /// supervisor refuses it and the socket is dropped). An error means
    /// the thread could not be spawned.
    fn start(&self, stream: StdStream, peer: String) -> io::Result<()> {
        if let Net::Tcp(s) = &stream {
            // Fails only on a socket that died already: its thread finds out.
            let _ = configure_tcp(s, &self.options.socket);
        }
        let stream = Arc::new(stream);
        let Some(admission) = self.supervisor.admit(peer, Wake(Arc::clone(&stream))) else {
            return Ok(());
        };
        let conn = Connection {
            stream,
            admission,
            handler: Arc::clone(&self.handler),
            stop: Arc::clone(self.supervisor.stop()),
        };
        let config = self.options.config.clone();
        let tls = self.options.tls.clone();
        let stack_size = match tls {
            Some(_) => self.stack_size.max(TLS_STACK_SIZE),
            None => self.stack_size,
        };
        thread::Builder::new()
            .name("adapter-std-conn".to_owned())
            .stack_size(stack_size)
            .spawn(move || {
                let now = Instant::now();
                let core = ServerConnection::new(config, now);
                match tls {
                    None => conn.run(core),
                    Some(tls) => match tls.accept(core, now) {
                        Ok(session) => conn.run(session),
                        Err(e) => warn!("TLS session not started: {e}"),
                    },
                }
            })
            .map(drop)
    }
}

/// A server running on its own thread (see [`Server::spawn`]).
#[derive(Debug)]
pub struct ServerHandle {
    supervisor: Arc<Supervisor<Wake>>,
    thread: JoinHandle<io::Result<()>>,
}

impl ServerHandle {
    /// Graceful shutdown: returns once the server has stopped.
    pub fn shutdown(self) -> io::Result<()> {
        self.shutdown_handle().shutdown();
        self.join()
    }

    /// Waits for the server to stop (after a shutdown asked elsewhere).
    pub fn join(self) -> io::Result<()> {
        self.thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the server's accept thread panicked")))
    }
}

/// What a connection thread owns. Its [`Admission`] counts and logs the
/// end, and gives the slot back also when the handler panics.
struct Connection<H> {
    stream: Arc<StdStream>,
    admission: Admission<Wake>,
    handler: Arc<H>,
    stop: Arc<Signal>,
}

/// One read of up to `size` bytes appended to `to` (zero-filled first: a
/// std read takes an initialised slice); `to` keeps exactly what came.
fn read_appending(mut stream: &StdStream, to: &mut BytesMut, size: usize) -> io::Result<usize> {
    let start = to.len();
    to.resize(start + size, 0);
    let read = to.get_mut(start..).map_or(Ok(0), |room| stream.read(room));
    to.truncate(start + *read.as_ref().unwrap_or(&0));
    read
}

/// What one blocking step of a connection did.
enum Io {
    /// Wrote this many bytes.
    Wrote(usize),
    /// Read this many bytes into the stack buffer (0: the end of the stream).
    Read(usize),
    /// Read this many bytes into the core's own buffer (0: the end).
    Appended(usize),
    /// Neither wrote nor read: slept until the next timer.
    Napped,
}

impl<H: Handler> Connection<H> {
    /// Serves the connection, then reports its end.
    fn run<S: ServerSession>(self, mut session: S) {
        let mut meter = self.admission.meter();
        let reason = self.serve(&mut session, &mut meter);
        self.admission
            .finish(&session.stats(), &reason, session.source(), meter);
    }

    /// The run loop of the `protocol` crate docs, plus the std specifics:
    /// the shutdown check, the cached socket timeouts, the FIN.
    fn serve<S: ServerSession>(&self, conn: &mut S, meter: &mut Meter) -> CloseReason {
        let stream = &*self.stream;
        let mut buf = [0u8; READ_CHUNK];
        let (mut read_timeout, mut write_timeout) = <(SocketTimeout, SocketTimeout)>::default();
        let mut closing = false;
        // One clock read per turn: taken when the last IO returned, it times
        // the input, answers the batch it brought, and starts the next wait.
        let mut now = Instant::now();
        loop {
            self.see_shutdown(conn, &mut closing);
            // 1. Drain the events: answer requests, send the FIN, see the end.
            // Answers given at once share the turn's instant (and are timed
            // together); one that waits on `block_on` reads the clock after.
            let mut at_once = 0;
            while let Some(event) = conn.poll_event() {
                match event {
                    ServerEvent::Request(req) => {
                        debug!(kind = ?req.kind, id = %req.id, len = req.payload.len(), "request");
                        let handle = req.handle;
                        let result = match self.handler.handle(req) {
                            Reply::Now(result) => {
                                at_once += 1;
                                result
                            }
                            Reply::Later(answer) => {
                                let asked = meter.is_on().then(Instant::now);
                                let result = block_on(answer);
                                now = Instant::now();
                                if let Some(asked) = asked {
                                    meter.answered(1, now - asked);
                                }
                                result
                            }
                        };
                        // The handle is this connection's, answered once: it cannot fail.
                        conn.respond(handle, result, now).ok();
                    }
                    ServerEvent::Proxied(header) => debug!(?header, "PROXY header"),
                    ServerEvent::ShutdownWrite => {
                        stream.shutdown(Shutdown::Write).unwrap_or_default()
                    }
                    ServerEvent::Closed(reason) => {
                        // One write that does not wait (a TLS alert).
                        let last = conn.last_words();
                        if !last.is_empty() && stream.set_nonblocking(true).is_ok() {
                            let _ = (&*stream).write(last);
                        }
                        return reason;
                    }
                }
            }
            if at_once > 0 && meter.is_on() {
                let answered = Instant::now();
                meter.answered(at_once, answered - now);
                now = answered;
            }
            // 2. Wait no longer than the next timer (the core's, or the meter's fold).
            meter.tick(|| conn.stats(), now);
            let due = earliest(conn.poll_timeout(), meter.next_fold(|| conn.stats()));
            let wait = SocketTimeout::wait_for(due, now);
            // 3. Write what is pending, else read while the connection wants input.
            let io = if !conn.transmit().is_empty() {
                write_timeout
                    .apply(wait, |d| stream.set_write_timeout(d))
                    .and_then(|()| (&*stream).write(conn.transmit()))
                    .map(Io::Wrote)
            } else if conn.wants_input() {
                let size = conn.read_size();
                read_timeout
                    .apply(wait, |d| stream.set_read_timeout(d))
                    .and_then(|()| {
                        if size > READ_CHUNK {
                            // A large frame's body: straight into the core's buffer.
                            read_appending(stream, conn.input_buffer(), size).map(Io::Appended)
                        } else {
                            (&*stream).read(&mut buf).map(Io::Read)
                        }
                    })
            } else {
                thread::sleep(wait.map_or(NAP, |w| w.min(NAP)));
                Ok(Io::Napped)
            };
            now = Instant::now();
            // 4. A socket timeout is the timer firing; any other error ends the connection.
            match io {
                Ok(Io::Wrote(n)) => conn.handle_written(n, now),
                Ok(Io::Read(n)) => match buf.get(..n) {
                    Some(data) if !data.is_empty() => conn.input(data, now),
                    _ => {
                        // The supervisor's wake reads as an EOF: close first.
                        self.see_shutdown(conn, &mut closing);
                        conn.handle_eof(now);
                    }
                },
                Ok(Io::Appended(0)) => {
                    conn.appended(0, now);
                    self.see_shutdown(conn, &mut closing);
                    conn.handle_eof(now);
                }
                Ok(Io::Appended(n)) => conn.appended(n, now),
                Ok(Io::Napped) => conn.handle_timeout(now),
                Err(e) if is_timeout(&e) => conn.handle_timeout(now),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => conn.handle_io_error(e.kind()),
            }
        }
    }

    /// The server is shutting down: close once, by its deadline, and
    /// linger no more. The supervisor's wake shut the read side, and then
    /// the kernel no longer reopens the receive window as the loop reads:
    /// a peer still sending would stall on a zero window until the
    /// deadline. Ending the linger (`handle_eof`; a no-op until it starts)
    /// closes the socket at once, and the kernel resets such a peer.
    fn see_shutdown<S: ServerSession>(&self, conn: &mut S, closing: &mut bool) {
        if !*closing
            && self.stop.is_set()
            && let Some(deadline) = self.admission.shutdown_deadline()
        {
            *closing = true;
            conn.close(Instant::now(), Some(deadline));
        }
        if *closing {
            conn.handle_eof(Instant::now());
        }
    }
}

/// Where it listens, how to stop it, its counters: see [`Served`].
impl<H> Served for Server<H> {
    type Control = Wake;
    fn supervisor(&self) -> &Supervisor<Wake> {
        &self.supervisor
    }
}

/// The same for the server on its own thread.
impl Served for ServerHandle {
    type Control = Wake;
    fn supervisor(&self) -> &Supervisor<Wake> {
        &self.supervisor
    }
}
