//! The smol runtime: one `async_executor::Executor` per worker thread (one
//! thread per core by default), async-io's reactor, timers and `Async<T>`
//! sockets (not async-net's wrappers: those carry two cached readiness
//! futures, 112 bytes more per connection, that the driver never uses).

use std::future::Future;
use std::io;
use std::sync::{Arc, OnceLock};

use smol::Executor;

use super::workers::{Workers, shared_scheduling, thread_count};

/// The smol runtime: worker threads, each running an executor of its own
/// (see the [`runtime`](super) docs on task placement), async-io's
/// reactor and timers, and `Async<T>` sockets. Cheap to clone.
///
/// With no worker threads, tasks run only on threads inside
/// [`BlockOn::block_on`](super::BlockOn::block_on).
#[derive(Clone)]
pub struct Smol {
    inner: Arc<Inner>,
}

struct Inner {
    /// Run by the threads inside `block_on`; tasks are spawned here only
    /// when there are no workers.
    home: Executor<'static>,
    workers: Workers<Arc<Executor<'static>>>,
}

impl std::fmt::Debug for Smol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smol")
            .field("tasks_per_worker", &self.inner.workers.live())
            .finish_non_exhaustive()
    }
}

impl Smol {
    /// A runtime with `threads` worker threads, each running its own
    /// executor. The threads live as long as the process.
    pub fn new(threads: usize) -> io::Result<Self> {
        Self::with_scheduling(threads, false)
    }

    /// A runtime with `threads` worker threads that all run one shared,
    /// work-stealing executor (smol's usual multi-threaded setup): see
    /// [Task placement](super#task-placement) for the trade-off.
    pub fn shared(threads: usize) -> io::Result<Self> {
        Self::with_scheduling(threads, true)
    }

    fn with_scheduling(threads: usize, shared: bool) -> io::Result<Self> {
        let mut workers = Vec::with_capacity(threads);
        let one = Arc::new(Executor::new());
        for i in 0..threads {
            let ex = if shared {
                Arc::clone(&one)
            } else {
                Arc::new(Executor::new())
            };
            let run = Arc::clone(&ex);
            std::thread::Builder::new()
                .name(format!("smol-{i}"))
                // A task's panic is caught by the executor (and reported
                // by the panic hook): it does not end the worker.
                .spawn(move || smol::block_on(run.run(std::future::pending::<()>())))?;
            workers.push(ex);
        }
        Ok(Self::on(workers))
    }

    fn on(workers: Vec<Arc<Executor<'static>>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                home: Executor::new(),
                workers: Workers::new(workers),
            }),
        }
    }

    /// The process-wide runtime: `SMOL_THREADS` worker threads (smol's
    /// own variable; default one per core; 0 runs every task on the
    /// threads inside `block_on`), started on first use; tasks placed on
    /// them, or with `ADAPTER_SCHEDULING=shared` one shared executor (see
    /// [`Smol::shared`]). If no thread could be started, tasks run only
    /// inside `block_on`.
    pub fn global() -> Self {
        static GLOBAL: OnceLock<Smol> = OnceLock::new();
        GLOBAL
            .get_or_init(|| {
                Self::with_scheduling(thread_count("SMOL_THREADS"), shared_scheduling())
                    .unwrap_or_else(|e| {
                        tracing::error!("cannot start smol worker threads: {e}");
                        Self::on(Vec::new())
                    })
            })
            .clone()
    }

    /// Live tasks on each worker thread, in worker order (empty without
    /// workers).
    pub fn tasks_per_worker(&self) -> Vec<usize> {
        self.inner.workers.live()
    }

    /// Runs `fut` detached on the least-loaded worker, where it stays.
    fn spawn_task<F: Future<Output = ()> + Send + 'static>(&self, fut: F) {
        match self.inner.workers.place(fut) {
            Ok((ex, fut)) => ex.spawn(fut).detach(),
            Err(fut) => self.inner.home.spawn(fut).detach(),
        }
    }
}

impl Default for Smol {
    fn default() -> Self {
        Self::global()
    }
}

super::async_io_runtime!(Smol, "smol");

impl super::BlockOn for Smol {
    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        smol::block_on(self.inner.home.run(fut))
    }
}
