//! The async-std runtime: async-std tasks, async-io's reactor and timers.
//!
//! async-std is discontinued upstream (the crate is deprecated in favour of
//! smol); this implementation stays because users asked for it, and it is
//! as thin as the seam allows.
//!
//! Sockets are async-io's `Async<T>`, the type async-std's own `TcpStream`
//! and `UnixStream` wrap (same reactor, same registration): the wrappers
//! hide `poll_readable`, which the driver needs.
//!
//! Tasks are async-std tasks, but not on async-std's global work-sharing
//! executor: each worker thread sits in `async_std::task::block_on` and
//! runs the tasks placed on it with `task::spawn_local` (async-std's
//! `unstable` feature), so a task stays on one thread (see the
//! [`runtime`](super) docs on task placement).

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;

use async_channel::Sender;

use super::workers::{Workers, shared_scheduling, thread_count};

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

    /// Runs `fut` detached on the least-loaded worker, where it stays.
    fn spawn_task<F: Future<Output = ()> + Send + 'static>(&self, fut: F) {
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
}

super::async_io_runtime!(AsyncStd, "async-std");

impl super::BlockOn for AsyncStd {
    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        async_std::task::block_on(fut)
    }
}
