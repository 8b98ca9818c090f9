//! A client over one or several servers that reconnects, written once:
//! [`PoolCore`] decides which connection a request goes to (power of two
//! choices on requests in flight, [`protocol::pick_two`]) and when a lost
//! or refused server is tried again (exponential backoff with jitter,
//! [`protocol::Backoff`]); the async [`Pool`] (any [`Runtime`]) and
//! adapter-std's blocking pool drive it.
//!
//! A request is sent once. When its connection is lost before the ack, its
//! [`PendingAck`] fails with the connection's end (e.g. "peer closed the
//! connection with 3 request(s) unanswered"): the pool never resends it,
//! because the server may have acted on it. Only requests not yet sent
//! go to the connections that are left, or wait for a reconnection.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use protocol::{Ack, Backoff, BackoffConfig, ClientConfig, RequestKind, pick_two};
use protocol_tls::ClientTls;

use crate::client::{Client, PendingAck};
use crate::client_error::ClientError;
use crate::net::{Endpoint, SocketOptions};
use crate::runtime::{Runtime, sleep_until};

/// How long a caller waits while every server is being connected to by
/// another caller, before it looks again.
const CONNECTING_POLL: Duration = Duration::from_millis(5);

/// What [`PoolCore`] needs of one connection.
pub trait Member {
    /// Requests waiting for their acks.
    fn in_flight(&self) -> usize;
    /// How the connection ended, once it has.
    fn ended(&self) -> Option<ClientError>;
}

impl Member for Client {
    fn in_flight(&self) -> usize {
        Client::in_flight(self)
    }
    fn ended(&self) -> Option<ClientError> {
        Client::ended(self)
    }
}

#[derive(Debug)]
enum State<C> {
    /// Not tried yet: due at once.
    New,
    Up(C),
    /// A caller is connecting it.
    Connecting,
    Down {
        retry_at: Instant,
    },
    /// `max_attempts` failures in a row.
    Failed,
}

#[derive(Debug)]
struct Slot<C> {
    endpoint: Endpoint,
    state: State<C>,
    backoff: Backoff,
    last_error: Option<ClientError>,
}

/// What a caller does next for its request.
#[derive(Debug)]
pub enum Next<C> {
    /// Send it on this connection (member `usize`).
    Use(usize, C),
    /// Connect member `usize` to this endpoint, then report with
    /// [`PoolCore::connected`] or [`PoolCore::connect_failed`], and ask again.
    Connect(usize, Endpoint),
    /// No connection now: wait until then and ask again.
    Wait(Instant),
    /// Every server failed `max_attempts` times in a row.
    Unavailable(ClientError),
}

/// The pool's rules, without IO or a clock: members, their state, and
/// counts of what happened.
#[derive(Debug)]
pub struct PoolCore<C> {
    slots: Vec<Slot<C>>,
    lost: u64,
    reconnected: u64,
}

impl<C: Member + Clone> PoolCore<C> {
    /// One member per endpoint, none connected yet (the first
    /// [`next`](Self::next) connects them). The configuration is checked.
    pub fn new(endpoints: Vec<Endpoint>, backoff: BackoffConfig) -> Result<Self, ClientError> {
        backoff.validate()?;
        if endpoints.is_empty() {
            return Err(ClientError::Unavailable {
                servers: 0,
                last: "no server address given".to_owned(),
            });
        }
        let slots = endpoints
            .into_iter()
            .map(|endpoint| Slot {
                endpoint,
                state: State::New,
                backoff: Backoff::new(backoff),
                last_error: None,
            })
            .collect();
        Ok(Self {
            slots,
            lost: 0,
            reconnected: 0,
        })
    }

    /// Connections lost while up (their requests in flight failed).
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Connections made again after one was lost or refused.
    pub fn reconnected(&self) -> u64 {
        self.reconnected
    }

    /// [`lost`](Self::lost) and [`reconnected`](Self::reconnected) together.
    pub fn lost_and_reconnected(&self) -> (u64, u64) {
        (self.lost, self.reconnected)
    }

    /// Members connected now.
    pub fn up(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s.state, State::Up(_)))
            .count()
    }

    /// The connections up now (to close them).
    pub fn members(&self) -> Vec<C> {
        self.slots
            .iter()
            .filter_map(|s| match &s.state {
                State::Up(c) => Some(c.clone()),
                _ => None,
            })
            .collect()
    }

    /// What to do for the next request at `now`; `random` draws the two
    /// choices and the backoff's jitter.
    pub fn next(&mut self, now: Instant, random: u64) -> Next<C> {
        for i in 0..self.slots.len() {
            if let State::Up(c) = &self.slots[i].state
                && let Some(e) = c.ended()
            {
                self.lost += 1;
                self.down(i, e, now, random);
            }
        }
        if let Some(slot) = self
            .slots
            .iter_mut()
            .enumerate()
            .find(|(_, s)| match s.state {
                State::New => true,
                State::Down { retry_at } => retry_at <= now,
                _ => false,
            })
        {
            slot.1.state = State::Connecting;
            return Next::Connect(slot.0, slot.1.endpoint.clone());
        }
        let slots = &self.slots;
        let pick = pick_two(slots.len(), random, |i| match &slots[i].state {
            State::Up(c) => Some(c.in_flight()),
            _ => None,
        });
        if let Some(i) = pick
            && let State::Up(c) = &slots[i].state
        {
            return Next::Use(i, c.clone());
        }
        let retry = slots
            .iter()
            .filter_map(|s| match s.state {
                State::Down { retry_at } => Some(retry_at),
                State::Connecting => Some(now + CONNECTING_POLL),
                _ => None,
            })
            .min();
        match retry {
            Some(at) => Next::Wait(at),
            None => Next::Unavailable(ClientError::Unavailable {
                servers: slots.len(),
                last: slots
                    .iter()
                    .rev()
                    .find_map(|s| {
                        s.last_error
                            .as_ref()
                            .map(|e| format!("{}: {e}", s.endpoint))
                    })
                    .unwrap_or_default(),
            }),
        }
    }

    /// Member `i` is connected.
    pub fn connected(&mut self, i: usize, c: C) {
        if let Some(s) = self.slots.get_mut(i) {
            if s.backoff.failures() > 0 || s.last_error.is_some() {
                self.reconnected += 1;
                tracing::info!("reconnected to {}", s.endpoint);
            }
            s.backoff.succeeded();
            s.state = State::Up(c);
        }
    }

    /// How connecting member `i` (a [`Next::Connect`]) went, at `now`: up
    /// ([`connected`](Self::connected)) or down with backoff
    /// ([`connect_failed`](Self::connect_failed)); the error is handed back.
    pub fn connect_done(
        &mut self,
        i: usize,
        r: Result<C, ClientError>,
        now: Instant,
        random: u64,
    ) -> Result<(), ClientError> {
        match r {
            Ok(c) => {
                self.connected(i, c);
                Ok(())
            }
            Err(e) => {
                self.connect_failed(i, e.clone(), now, random);
                Err(e)
            }
        }
    }

    /// True when sending on `c` failed with `e` because `c` had already
    /// ended: the request never left, so it may go to another member
    /// ([`next`](Self::next) sees the end). Any other error is the caller's.
    pub fn unsent(e: &ClientError, c: &C) -> bool {
        matches!(e, ClientError::Closed(_) | ClientError::Io(_)) && c.ended().is_some()
    }

    /// Connecting member `i` failed with `e`.
    pub fn connect_failed(&mut self, i: usize, e: ClientError, now: Instant, random: u64) {
        self.down(i, e, now, random);
    }

    fn down(&mut self, i: usize, e: ClientError, now: Instant, random: u64) {
        let Some(s) = self.slots.get_mut(i) else {
            return;
        };
        match s.backoff.failed(random) {
            Some(wait) => {
                tracing::warn!(
                    "{}: {e}; connecting again in {wait:.0?} (attempt {})",
                    s.endpoint,
                    s.backoff.failures()
                );
                s.state = State::Down {
                    retry_at: now + wait,
                };
            }
            None => {
                tracing::warn!(
                    "{}: {e}; given up after {} failures in a row",
                    s.endpoint,
                    s.backoff.failures()
                );
                s.state = State::Failed;
            }
        }
        s.last_error = Some(e);
    }
}

/// A random u64 for the two choices and the jitter (std's per-process
/// random hasher keys: no dependency, no shared state but a counter).
pub fn random_u64() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(N.fetch_add(1, Ordering::Relaxed))
}

/// How a [`Pool`] connects. Every field has a default but the endpoints.
#[derive(Debug, Clone, Default)]
pub struct PoolOptions {
    /// The core's limits and timeouts, per connection.
    pub config: ClientConfig,
    /// TCP_NODELAY and keepalive.
    pub socket: SocketOptions,
    /// TLS on every connection, when given.
    pub tls: Option<ClientTls>,
    /// When a lost or refused server is tried again.
    pub backoff: BackoffConfig,
}

/// An async client over one or several servers (any [`Runtime`]): one
/// connection to each, requests spread by power of two choices on their
/// requests in flight, lost connections made again with backoff. Share it
/// (`Arc`) between tasks. See the [module docs](self) for what happens to
/// requests in flight on a lost connection.
pub struct Pool<R: Runtime> {
    rt: R,
    core: Mutex<PoolCore<Client>>,
    options: PoolOptions,
}

impl<R: Runtime> std::fmt::Debug for Pool<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("up", &self.lock().up())
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> Pool<R> {
    /// Connects to every endpoint once; `Ok` when at least one answered
    /// (the others are tried again with backoff), else the last error.
    pub async fn connect(
        rt: &R,
        endpoints: Vec<Endpoint>,
        options: PoolOptions,
    ) -> Result<Arc<Self>, ClientError> {
        let pool = Arc::new(Self {
            rt: rt.clone(),
            core: Mutex::new(PoolCore::new(endpoints, options.backoff)?),
            options,
        });
        let n = pool.lock().slots.len();
        let mut last = None;
        for _ in 0..n {
            let Next::Connect(i, endpoint) = pool.lock().next(Instant::now(), random_u64()) else {
                break;
            };
            if let Err(e) = pool.connect_member(i, &endpoint).await {
                last = Some(e);
            }
        }
        let up = pool.lock().up();
        match (up, last) {
            (0, Some(e)) => Err(e),
            _ => Ok(pool),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PoolCore<Client>> {
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn connect_member(&self, i: usize, endpoint: &Endpoint) -> Result<(), ClientError> {
        let o = &self.options;
        let r = Client::connect_tls(
            &self.rt,
            endpoint,
            o.config.clone(),
            &o.socket,
            o.tls.as_ref(),
        )
        .await;
        self.lock().connect_done(i, r, Instant::now(), random_u64())
    }

    /// Sends a request on one of the connections (connecting first when
    /// none is up, waiting out the backoff) and returns its ack to await.
    pub async fn send(
        &self,
        kind: RequestKind,
        payload: impl AsRef<[u8]>,
    ) -> Result<PendingAck, ClientError> {
        let payload = payload.as_ref();
        loop {
            let next = self.lock().next(Instant::now(), random_u64());
            match next {
                Next::Use(_, c) => match c.send(kind, payload).await {
                    Ok(p) => return Ok(p),
                    Err(e) if PoolCore::unsent(&e, &c) => {}
                    Err(e) => return Err(e),
                },
                Next::Connect(i, endpoint) => {
                    let _ = self.connect_member(i, &endpoint).await;
                }
                Next::Wait(at) => sleep_until(&self.rt, at).await,
                Next::Unavailable(e) => return Err(e),
            }
        }
    }

    /// Sends a Submit and waits for its ack.
    pub async fn submit(&self, payload: impl AsRef<[u8]>) -> Result<Ack, ClientError> {
        self.send(RequestKind::Submit, payload).await?.await
    }

    /// Connections lost while up, and connections made again since.
    pub fn lost_and_reconnected(&self) -> (u64, u64) {
        self.lock().lost_and_reconnected()
    }

    /// Connections up now.
    pub fn up(&self) -> usize {
        self.lock().up()
    }

    /// Closes every connection gracefully (each waits for its acks).
    pub async fn close(&self) -> Result<(), ClientError> {
        let members = self.lock().members();
        let mut result = Ok(());
        for c in members {
            if let Err(e) = c.close().await {
                result = Err(e);
            }
        }
        result
    }
}
