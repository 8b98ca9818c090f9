//! The child processes of the workspace's tests and tools, in one place.
//!
//! **Dev-only**: this crate serves the adapters' binary tests, the
//! conformance suite (`testing/conformance`), the long fault runs
//! (`testing/faults`) and `cargo xtask`; it is not published and no
//! library of the project depends on it.
//!
//! What it gives them:
//!
//! - [`Spawn`]: starts a child with `PR_SET_PDEATHSIG = SIGKILL`, so it
//!   dies with its parent even when the parent is SIGKILLed (and runs no
//!   handler), optionally in a process group of its own and with its own
//!   `RLIMIT_NOFILE`. Its stdout and stderr go where each [`Sink`] says:
//!   nowhere, inherited, appended to a file, captured whole, collected line
//!   by line (ANSI stripped) into a log that can be waited on, or piped
//!   for the caller to read.
//! - One PID registry: every child started is registered by PID and
//!   stopped by PID (SIGTERM, then SIGKILL after its grace period) when its
//!   [`Tracked`] guard is dropped, on success, on error and on panic.
//!   [`install_signal_handler`] adds a SIGINT/SIGTERM thread that says how
//!   many children are still running, stops every one of them, removes the
//!   registered temporary paths and exits 130 (for Ctrl-C on a tool).
//! - Bounded waits: for a child's exit ([`Tracked::wait_for`],
//!   [`Tracked::wait_output`], [`run`]), for a line of its log
//!   ([`Tracked::wait_for_line`]), for its endpoint to accept
//!   ([`Tracked::wait_accepting`]).
//! - [`strip_ansi`], [`TempSocket`] (a unique Unix socket path, removed on
//!   drop), [`TempDir`], [`free_tcp_addr`] (a free port on 127.0.0.1) and
//!   [`raise_nofile_to_hard`].
//!
//! The death signal follows the *thread* that spawned the child: a child
//! started from a thread that then ends is killed at once. Start children
//! from a thread that outlives them (a tool's main thread, the test's own
//! thread).
//!
//! ```no_run
//! use std::process::Command;
//! use std::time::Duration;
//! use harness::Spawn;
//!
//! let mut cmd = Command::new("adapter-tokio");
//! cmd.args(["serve", "--addr", "127.0.0.1:0"]);
//! // stdout discarded, stderr its log; returns once it logged the line.
//! let (mut serve, line) =
//!     Spawn::server("adapter-tokio serve").spawn_until(cmd, "listening on", Duration::from_secs(10))?;
//! assert!(serve.log_has("listening on"));
//! serve.signal(harness::SIGTERM);
//! let status = serve.wait_for(Duration::from_secs(10));
//! # let _ = (line, status);
//! # Ok::<(), String>(())
//! ```

mod ansi;
mod child;
mod net;
mod output;
pub mod pki;
mod registry;
mod temp;

pub use ansi::strip_ansi;
pub use child::{DEFAULT_GRACE, Finished, Sink, Spawn, Tracked, raise_nofile_to_hard, run};
pub use libc::{SIGINT, SIGKILL, SIGTERM};
pub use net::{Listening, free_tcp_addr};
pub use registry::{alive, halt_if_interrupted, install_signal_handler, live_children};
pub use temp::{TempDir, TempSocket};
