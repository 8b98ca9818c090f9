//! Task placement shared by both runtimes: a set of worker threads, each
//! running its own executor, and a task placed on the least-loaded one for
//! its whole life.
//!
//! # Why not one executor shared by every thread
//!
//! async-executor's multi-threaded `Executor` (smol's, and async-std's
//! global one) wakes another sleeping thread each time a task is
//! scheduled. On a request/response connection that is every request: the
//! thread that read the I/O event wakes the task, a second thread is woken
//! to run it (or to find nothing and sleep again), and the task hops
//! between threads. Measured on the server at 1 connection x pipeline 1:
//! 3.0 context switches and 9-10 us of CPU per request, against 1.0 and
//! 4.3 us for adapter-tokio (whose scheduler runs the woken task on the
//! thread that saw the event). With a task kept on one thread, whose
//! executor only that thread runs, the count is 1.0 here too: the thread
//! that waits on the reactor is the one whose task the event is for.
//!
//! The price is the one every thread-per-core server pays (Netty's event
//! loops, gnet, actix): no work stealing. A connection stays on the
//! worker it was placed on; placement picks the worker with the fewest
//! live tasks, so connections spread evenly, but two busy connections on
//! one worker share its core even while another worker idles.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::FutureExt as _;

/// Workers of type `W` (a handle to the worker's executor) and how many
/// live tasks each has.
pub(crate) struct Workers<W> {
    slots: Box<[Slot<W>]>,
    /// Where the search for the least-loaded worker starts: rotated so that
    /// ties spread instead of all landing on the first worker.
    next: AtomicUsize,
}

struct Slot<W> {
    worker: W,
    live: Arc<AtomicUsize>,
}

impl<W> Workers<W> {
    pub(crate) fn new(workers: Vec<W>) -> Self {
        Self {
            slots: workers
                .into_iter()
                .map(|worker| Slot {
                    worker,
                    live: Arc::default(),
                })
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// Live tasks per worker, in worker order.
    pub(crate) fn live(&self) -> Vec<usize> {
        self.slots
            .iter()
            .map(|s| s.live.load(Ordering::Relaxed))
            .collect()
    }

    /// Picks the worker with the fewest live tasks and counts `fut` as one
    /// of them until it ends (or is dropped unfinished). `Err(fut)` when
    /// there are no workers.
    #[allow(clippy::type_complexity)]
    pub(crate) fn place<F>(
        &self,
        fut: F,
    ) -> Result<(&W, impl Future<Output = F::Output> + use<W, F>), F>
    where
        F: Future,
    {
        let n = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n.max(1);
        let Some(slot) = (0..n)
            .map(|i| &self.slots[(start + i) % n])
            .min_by_key(|s| s.live.load(Ordering::Relaxed))
        else {
            return Err(fut);
        };
        let live = LiveGuard::new(Arc::clone(&slot.live));
        // Not an `async move` block awaiting `fut`: that holds `fut` twice
        // (the captured value and the awaited one), which doubled the
        // resident memory of an idle connection's task.
        Ok((
            &slot.worker,
            fut.map(move |out| {
                drop(live);
                out
            }),
        ))
    }
}

/// One live task on a worker: counted from placement to drop.
struct LiveGuard(Arc<AtomicUsize>);

impl LiveGuard {
    fn new(live: Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::Relaxed);
        Self(live)
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether `ADAPTER_SCHEDULING=shared` asks for one work-stealing executor
/// shared by every worker thread instead of placed tasks (the default,
/// `pinned`). Shared costs a second thread's wake per request on a lone
/// connection (0.5x adapter-tokio at 1x1), but lets an idle worker run a
/// busy one's connections: at 50 connections on 2 cores shared with the
/// load generator, p99 0.3-0.4 ms instead of 4 ms.
pub(crate) fn shared_scheduling() -> bool {
    match std::env::var("ADAPTER_SCHEDULING") {
        Ok(v) if v.trim() == "shared" => true,
        Ok(v) if v.trim() == "pinned" || v.trim().is_empty() => false,
        Ok(v) => {
            tracing::warn!("ADAPTER_SCHEDULING={v:?} is not shared or pinned: using pinned");
            false
        }
        Err(_) => false,
    }
}

/// Worker threads wanted: `var` if it holds a number, else one per core.
pub(crate) fn thread_count(var: &str) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    fn poll_once<F: Future>(fut: F) -> Poll<F::Output> {
        pin!(fut)
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn tasks_go_to_the_least_loaded_worker_and_leave_when_dropped() {
        let workers = Workers::new(vec!['a', 'b', 'c']);
        let mut held = Vec::new();
        for _ in 0..6 {
            let Ok((_, fut)) = workers.place(std::future::pending::<()>()) else {
                panic!("workers");
            };
            held.push(fut);
        }
        assert_eq!(workers.live(), vec![2, 2, 2]);
        // Two ends on worker order positions 0 and 3 (both on the same
        // worker or not): the next placements fill the gaps first.
        drop(held.remove(0));
        drop(held.remove(0));
        let before = workers.live();
        assert_eq!(before.iter().sum::<usize>(), 4);
        let min = *before.iter().min().expect("three workers");
        let Ok((w, fut)) = workers.place(std::future::pending::<()>()) else {
            panic!("workers");
        };
        let idx = ['a', 'b', 'c']
            .iter()
            .position(|c| c == w)
            .expect("known worker");
        assert_eq!(before[idx], min, "placed on {w} with {before:?} live");
        held.push(fut);
        drop(held);
        assert_eq!(workers.live(), vec![0, 0, 0]);
    }

    #[test]
    fn a_finished_task_is_no_longer_counted() {
        let workers = Workers::new(vec![()]);
        let Ok((_, fut)) = workers.place(async { 7 }) else {
            panic!("one worker");
        };
        assert_eq!(workers.live(), vec![1]);
        // The guard lives in the future: finishing and dropping it uncounts.
        assert_eq!(poll_once(fut), Poll::Ready(7));
        assert_eq!(workers.live(), vec![0]);
    }

    #[test]
    fn a_placed_task_is_not_bigger_than_its_future_plus_the_counter() {
        // A future holding 4 KiB across an await, like a connection's state.
        let fut = async {
            let state = [7u8; 4096];
            std::future::ready(()).await;
            state.iter().map(|&b| usize::from(b)).sum::<usize>()
        };
        let alone = std::mem::size_of_val(&fut);
        assert!(alone >= 4096, "the test future is {alone} bytes");
        let workers = Workers::new(vec![()]);
        let Ok((_, placed)) = workers.place(fut) else {
            panic!("one worker");
        };
        let size = std::mem::size_of_val(&placed);
        assert!(
            size <= alone + 32,
            "placed task is {size} bytes for a {alone}-byte future"
        );
    }

    #[test]
    fn no_workers_places_nothing() {
        let workers: Workers<()> = Workers::new(Vec::new());
        assert!(workers.place(async {}).is_err());
        assert!(workers.live().is_empty());
    }
}
