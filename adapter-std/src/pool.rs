//! The blocking [`Pool`]: adapter-common's [`PoolCore`] (power of two
//! choices over the servers' connections, reconnection with backoff and
//! jitter) driven with blocking [`Client`]s. A request is sent once; when
//! its connection is lost before the ack, its [`PendingAck`] fails saying
//! so, and it is never resent.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use adapter_common::{Endpoint, Member, Next, PoolCore, random_u64};
use protocol::{Ack, BackoffConfig, RequestKind};

use crate::client::{Client, ClientError, ClientOptions, PendingAck};

/// One server's connection in the pool.
#[derive(Debug, Clone)]
struct Conn(Arc<Client>);

impl Member for Conn {
    fn in_flight(&self) -> usize {
        self.0.in_flight()
    }
    fn ended(&self) -> Option<ClientError> {
        self.0.ended()
    }
}

/// A blocking client over one or several servers: one connection to each,
/// requests spread by power of two choices on their requests in flight,
/// lost connections made again with backoff. `&Pool` is enough to send,
/// from any number of threads.
///
/// ```no_run
/// use adapter_std::{ClientOptions, Pool};
///
/// let servers = vec!["127.0.0.1:8888".parse().unwrap(), "127.0.0.1:8889".parse().unwrap()];
/// let pool = Pool::connect(servers, ClientOptions::default(), Default::default())?;
/// let ack = pool.submit(b"hello")?;
/// println!("{} {}", ack.id, ack.result);
/// # Ok::<(), adapter_std::ClientError>(())
/// ```
#[derive(Debug)]
pub struct Pool {
    core: Mutex<PoolCore<Conn>>,
    options: ClientOptions,
}

impl Pool {
    /// Connects to every endpoint once; `Ok` when at least one answered
    /// (the others are tried again with backoff), else the last error.
    pub fn connect(
        endpoints: Vec<Endpoint>,
        options: ClientOptions,
        backoff: BackoffConfig,
    ) -> Result<Self, ClientError> {
        let pool = Self {
            core: Mutex::new(PoolCore::new(endpoints, backoff)?),
            options,
        };
        let mut last = None;
        loop {
            // Bind first: a guard in a `while let` scrutinee would live through
            // the body and `connect_member` would deadlock on the same lock.
            let next = pool.lock().next(Instant::now(), random_u64());
            let Next::Connect(i, endpoint) = next else {
                break;
            };
            if let Err(e) = pool.connect_member(i, &endpoint) {
                last = Some(e);
            }
        }
        match (pool.up(), last) {
            (0, Some(e)) => Err(e),
            _ => Ok(pool),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PoolCore<Conn>> {
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn connect_member(&self, i: usize, endpoint: &Endpoint) -> Result<(), ClientError> {
        let r = Client::connect(endpoint, self.options.clone()).map(|c| Conn(Arc::new(c)));
        self.lock().connect_done(i, r, Instant::now(), random_u64())
    }

    /// Sends a request on one of the connections (connecting first when
    /// none is up, sleeping out the backoff), without waiting for its ack.
    pub fn send_request(
        &self,
        kind: RequestKind,
        payload: &[u8],
    ) -> Result<PendingAck, ClientError> {
        loop {
            let next = self.lock().next(Instant::now(), random_u64());
            match next {
                Next::Use(_, c) => match c.0.send_request(kind, payload) {
                    Ok(p) => return Ok(p),
                    Err(e) if PoolCore::unsent(&e, &c) => {}
                    Err(e) => return Err(e),
                },
                Next::Connect(i, endpoint) => {
                    let _ = self.connect_member(i, &endpoint);
                }
                Next::Wait(at) => {
                    std::thread::sleep(at.saturating_duration_since(Instant::now()));
                }
                Next::Unavailable(e) => return Err(e),
            }
        }
    }

    /// Sends a Submit and waits for its ack.
    pub fn submit(&self, payload: &[u8]) -> Result<Ack, ClientError> {
        self.send_request(RequestKind::Submit, payload)?.wait()
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
    pub fn close(self) -> Result<(), ClientError> {
        let members = self.lock().members();
        drop(self);
        let mut result = Ok(());
        for Conn(c) in members {
            if let Ok(c) = Arc::try_unwrap(c)
                && let Err(e) = c.close()
            {
                result = Err(e);
            }
        }
        result
    }
}
