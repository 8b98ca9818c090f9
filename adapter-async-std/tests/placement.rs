//! Task placement on both runtimes: a task runs on one worker thread for
//! its whole life, tasks spread over the workers, and a task's panic does
//! not take its worker down (its later tasks still run).

use std::collections::HashSet;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use adapter_async_std::runtime::BlockOn;
use adapter_async_std::{AsyncStd, Smol};
use adapter_common::Runtime as _;
use adapter_common::runtime::sleep_until;

const LIMIT: Duration = Duration::from_secs(30);

/// Yields to the executor once.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

/// Spawns `tasks` tasks that each wake up 50 times (by yielding and by
/// timers, which fire from whichever thread runs the reactor) and report
/// every thread they were polled on. Returns those sets, one per task.
fn threads_seen_per_task<R: BlockOn>(rt: &R, tasks: usize) -> Vec<HashSet<ThreadId>> {
    let (tx, rx) = async_channel::unbounded();
    for _ in 0..tasks {
        let tx = tx.clone();
        let timer_rt = rt.clone();
        rt.spawn(async move {
            let mut seen = HashSet::new();
            for i in 0..50 {
                seen.insert(std::thread::current().id());
                if i % 2 == 0 {
                    yield_now().await;
                } else {
                    sleep_until(&timer_rt, Instant::now() + Duration::from_micros(200)).await;
                }
            }
            seen.insert(std::thread::current().id());
            let _ = tx.send(seen).await;
        });
    }
    drop(tx);
    // On this thread, so that a runtime without workers runs the tasks here.
    let collect = async move {
        let mut all = Vec::new();
        while let Ok(seen) = rx.recv().await {
            all.push(seen);
        }
        Some(all)
    };
    let deadline = sleep_until(rt, Instant::now() + LIMIT);
    rt.block_on(futures_lite::future::or(collect, async {
        deadline.await;
        None
    }))
    .unwrap_or_else(|| panic!("the tasks did not finish within {LIMIT:?}"))
}

fn each_task_stays_on_one_thread_and_tasks_spread<R: BlockOn>(rt: R, workers: usize) {
    const TASKS: usize = 8;
    let seen = threads_seen_per_task(&rt, TASKS);
    assert_eq!(seen.len(), TASKS, "every task reported");
    for (i, threads) in seen.iter().enumerate() {
        assert_eq!(
            threads.len(),
            1,
            "task {i} ran on {} threads: {threads:?}",
            threads.len()
        );
    }
    let used: HashSet<ThreadId> = seen.iter().flatten().copied().collect();
    assert_eq!(
        used.len(),
        workers.min(TASKS),
        "{TASKS} tasks over {workers} workers ran on {} threads",
        used.len()
    );
    assert!(
        !used.contains(&std::thread::current().id()),
        "tasks ran on the thread inside block_on, not on the workers"
    );
}

#[test]
fn smol_each_task_stays_on_one_thread_and_tasks_spread() {
    let rt = Smol::new(3).expect("start 3 smol workers");
    each_task_stays_on_one_thread_and_tasks_spread(rt, 3);
}

#[test]
fn async_std_each_task_stays_on_one_thread_and_tasks_spread() {
    let rt = AsyncStd;
    // The workers are process-wide; start them to count them.
    rt.spawn(async {});
    let workers = rt.tasks_per_worker().len();
    assert!(workers >= 1, "async-std started no worker threads");
    each_task_stays_on_one_thread_and_tasks_spread(rt, workers);
}

fn a_panicking_task_leaves_its_worker_running_the_next_ones<R: BlockOn>(rt: R, workers: usize) {
    // One panicking task per worker: placement fills every worker.
    for i in 0..workers {
        rt.spawn(async move { panic!("task {i} panics on purpose (the test expects this line)") });
    }
    // Then twice as many tasks as workers, so every worker gets some.
    let seen = threads_seen_per_task(&rt, 2 * workers);
    assert_eq!(seen.len(), 2 * workers, "a task after the panics never ran");
    let used: HashSet<ThreadId> = seen.iter().flatten().copied().collect();
    assert_eq!(
        used.len(),
        workers,
        "not every worker ran tasks after the panics"
    );
}

#[test]
fn smol_a_panicking_task_leaves_its_worker_running_the_next_ones() {
    let rt = Smol::new(2).expect("start 2 smol workers");
    a_panicking_task_leaves_its_worker_running_the_next_ones(rt, 2);
}

#[test]
fn async_std_a_panicking_task_leaves_its_worker_running_the_next_ones() {
    let rt = AsyncStd;
    rt.spawn(async {});
    let workers = rt.tasks_per_worker().len();
    a_panicking_task_leaves_its_worker_running_the_next_ones(rt, workers);
}

#[test]
fn smol_without_workers_runs_tasks_inside_block_on() {
    let rt = Smol::new(0).expect("a runtime without workers");
    assert!(rt.tasks_per_worker().is_empty());
    let seen = threads_seen_per_task(&rt, 4);
    let used: HashSet<ThreadId> = seen.iter().flatten().copied().collect();
    assert_eq!(
        used,
        HashSet::from([std::thread::current().id()]),
        "tasks of a runtime without workers ran elsewhere"
    );
}

#[test]
fn smol_shared_runs_every_task_on_its_workers() {
    let rt = Smol::shared(2).expect("start 2 smol workers sharing an executor");
    let seen = threads_seen_per_task(&rt, 8);
    assert_eq!(seen.len(), 8, "every task reported");
    let used: HashSet<ThreadId> = seen.iter().flatten().copied().collect();
    assert!(
        !used.contains(&std::thread::current().id()) && (1..=2).contains(&used.len()),
        "8 tasks on 2 shared workers ran on {} threads (block_on's among them: {})",
        used.len(),
        used.contains(&std::thread::current().id())
    );
}
