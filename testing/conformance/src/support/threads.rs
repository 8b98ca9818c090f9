//! The threads a scenario runs its clients on.

use std::thread;

/// The message of a panic payload (from `JoinHandle::join`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        "(a panic without a message)".to_string()
    }
}

/// Joins the threads and panics with every failure's message if any failed.
pub fn join_all<T>(what: &str, handles: Vec<thread::JoinHandle<T>>) -> Vec<T> {
    let total = handles.len();
    let mut out = Vec::with_capacity(total);
    let mut failures = Vec::new();
    for h in handles {
        match h.join() {
            Ok(v) => out.push(v),
            Err(p) => failures.push(panic_message(p.as_ref())),
        }
    }
    if !failures.is_empty() {
        let shown: Vec<_> = failures.iter().take(5).map(String::as_str).collect();
        panic!(
            "{what}: {} of {total} failed:\n  {}",
            failures.len(),
            shown.join("\n  ")
        );
    }
    out
}
