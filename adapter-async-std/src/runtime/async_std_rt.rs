//! The async-std runtime: its global executor, its timers and its sockets.
//!
//! async-std is discontinued upstream (the crate is deprecated in favour of
//! smol); this implementation stays because users asked for it, and it is
//! as thin as the seam allows.
//!
//! Sockets are async-io's `Async<T>`, the type async-std's own `TcpStream`
//! and `UnixStream` wrap (same reactor, same registration): the wrappers
//! hide `poll_readable`, which the driver needs (see [`Stream::poll_readable`](super::Stream::poll_readable)).
//!
//! Tasks are async-std tasks, but not on async-std's global work-sharing
//! executor: each worker thread sits in `async_std::task::block_on` and
//! runs the tasks placed on it with `task::spawn_local` (async-std's
//! `unstable` feature), so a task stays on one thread (see the
//! [`runtime`](super) docs on task placement).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use adapter_common::{Endpoint, StdListener};
use async_channel::Sender;

use super::workers::{Workers, shared_scheduling, thread_count};
use super::{
    AsyncIoListener, AsyncIoStream, Runtime, Timer, async_io_accept, async_io_connect,
    async_io_listener,
};

/// The async-std runtime: `ASYNC_STD_THREAD_COUNT` worker threads
/// (async-std's own variable; default one per core), process-wide and
/// started on first use, each running the tasks placed on it. With 0
/// workers, with `ADAPTER_SCHEDULING=shared`, or if no worker could be
/// started, tasks go to async-std's global (work-stealing) executor.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStd;

/// A task on its way to a worker.
type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The worker threads: a queue of tasks to start each.
fn workers() -> &'static Workers<Sender<Job>> {
    static WORKERS: OnceLock<Workers<Sender<Job>>> = OnceLock::new();
    WORKERS.get_or_init(|| {
        // ADAPTER_SCHEDULING=shared: no workers, async-std's own executor.
        let wanted = if shared_scheduling() {
            0
        } else {
            thread_count("ASYNC_STD_THREAD_COUNT")
        };
        let mut queues = Vec::with_capacity(wanted);
        for i in 0..wanted {
            let (tx, rx) = async_channel::unbounded::<Job>();
            let started = std::thread::Builder::new()
                .name(format!("async-std-{i}"))
                .spawn(move || {
                    // The queue's senders live as long as the process.
                    async_std::task::block_on(async move {
                        while let Ok(job) = rx.recv().await {
                            // A panic in the task is caught by the
                            // executor: it does not end this loop.
                            drop(async_std::task::spawn_local(job));
                        }
                    })
                });
            match started {
                Ok(_) => queues.push(tx),
                Err(e) => {
                    tracing::error!("cannot start async-std worker thread {i}: {e}");
                    break;
                }
            }
        }
        Workers::new(queues)
    })
}

impl AsyncStd {
    /// Live tasks on each worker thread, in worker order (empty without
    /// workers).
    pub fn tasks_per_worker(&self) -> Vec<usize> {
        workers().live()
    }
}

/// A timer on async-std: `async_std::task::sleep`, boxed, rebuilt on reset.
pub struct AsyncStdTimer {
    sleep: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl AsyncStdTimer {
    fn new(at: Instant) -> Self {
        let wait = at.saturating_duration_since(Instant::now());
        Self {
            sleep: Some(Box::pin(async_std::task::sleep(wait))),
        }
    }
}

impl std::fmt::Debug for AsyncStdTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncStdTimer")
            .field("armed", &self.sleep.is_some())
            .finish()
    }
}

impl Timer for AsyncStdTimer {
    fn poll_fire(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(sleep) = self.sleep.as_mut() else {
            return Poll::Pending;
        };
        let fired = sleep.as_mut().poll(cx);
        if fired.is_ready() {
            // A finished async fn must not be polled again.
            self.sleep = None;
        }
        fired
    }

    fn reset(&mut self, at: Instant) {
        *self = Self::new(at);
    }
}

impl Runtime for AsyncStd {
    type Stream = AsyncIoStream;
    type Listener = AsyncIoListener;
    type Timer = AsyncStdTimer;

    fn name(&self) -> &'static str {
        "async-std"
    }

    fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        // Dropping a handle detaches its task.
        match workers().place(fut) {
            Ok((queue, fut)) => {
                if let Err(e) = queue.try_send(Box::pin(fut)) {
                    // The worker is gone (its thread ended): run the task
                    // on the global executor instead.
                    drop(async_std::task::spawn(e.into_inner()));
                }
            }
            // No workers: async-std's global executor, unboxed.
            Err(fut) => drop(async_std::task::spawn(fut)),
        }
    }

    fn timer_at(&self, at: Instant) -> Self::Timer {
        AsyncStdTimer::new(at)
    }

    fn listener(&self, listener: StdListener) -> io::Result<Self::Listener> {
        async_io_listener(listener)
    }

    async fn accept<'a>(
        &'a self,
        listener: &'a Self::Listener,
    ) -> io::Result<(Self::Stream, Option<SocketAddr>)> {
        async_io_accept(listener).await
    }

    async fn connect<'a>(&'a self, endpoint: &'a Endpoint) -> io::Result<Self::Stream> {
        async_io_connect(endpoint).await
    }

    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        async_std::task::block_on(fut)
    }
}
