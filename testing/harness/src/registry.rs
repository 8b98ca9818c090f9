//! The PID registry: every child started by [`Spawn`](crate::Spawn) is
//! entered here while it runs, with the temporary paths to remove on the
//! way out, and the SIGINT/SIGTERM thread that stops them all.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

struct Entry {
    name: String,
    /// Leads a process group of its own: signalled as a whole.
    group: bool,
}

struct Registry {
    /// pid -> what it is, for the messages.
    live: BTreeMap<u32, Entry>,
    /// Temporary directories and sockets the signal handler removes.
    temp_paths: Vec<PathBuf>,
    /// Set by the signal handler: nothing new may start.
    shutting_down: bool,
    /// Who speaks in the messages (`xtask`, `faults`); `harness` if unset.
    label: String,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    live: BTreeMap::new(),
    temp_paths: Vec::new(),
    shutting_down: false,
    label: String::new(),
});

fn registry() -> MutexGuard<'static, Registry> {
    // A panic while holding the lock leaves the registry usable: recover it.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// The prefix of this crate's messages on stderr.
pub(crate) fn label() -> String {
    let r = registry();
    if r.label.is_empty() {
        "harness".to_owned()
    } else {
        r.label.clone()
    }
}

/// Spawns `cmd` and registers the child under the registry's lock (so the
/// signal handler either sees it or refused it). Once a signal started
/// the shutdown, parks the calling thread until the handler exits the
/// process.
pub(crate) fn spawn_registered(cmd: &mut Command, name: &str, group: bool) -> io::Result<Child> {
    let mut r = registry();
    if r.shutting_down {
        drop(r);
        loop {
            thread::park();
        }
    }
    let child = cmd.spawn()?;
    r.live.insert(
        child.id(),
        Entry {
            name: name.to_owned(),
            group,
        },
    );
    Ok(child)
}

/// Forgets a child that exited (and was reaped).
pub(crate) fn unregister(pid: u32) {
    registry().live.remove(&pid);
}

/// Registers a temporary path the signal handler removes on the way out.
pub(crate) fn register_temp_path(path: &Path) {
    registry().temp_paths.push(path.to_owned());
}

/// Forgets a temporary path (its owner removed it, or keeps it).
pub(crate) fn unregister_temp_path(path: &Path) {
    registry().temp_paths.retain(|p| p != path);
}

/// The children still running, by PID, with their names.
pub fn live_children() -> Vec<(u32, String)> {
    registry()
        .live
        .iter()
        .map(|(pid, e)| (*pid, e.name.clone()))
        .collect()
}

/// After SIGINT/SIGTERM the signal thread is stopping the children and
/// will exit the process: the calling thread must not start anything or
/// write a partial report meanwhile, so it waits here for the exit. Does
/// nothing when no signal came.
pub fn halt_if_interrupted() {
    if registry().shutting_down {
        loop {
            thread::park();
        }
    }
}

/// Installs the SIGINT/SIGTERM handler of a tool: on the first signal it
/// says how many children still run, sends each SIGTERM (to its group if
/// it has one), SIGKILLs those still alive after `grace`, removes the
/// registered temporary paths and exits with status 130. `label` prefixes
/// the messages (and this crate's other messages from then on).
pub fn install_signal_handler(label: &str, grace: Duration) -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    registry().label = label.to_owned();
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| format!("installing the SIGINT/SIGTERM handler: {e}"))?;
    let label = label.to_owned();
    thread::Builder::new()
        .name(format!("{label}-signals"))
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let (live, paths) = {
                    let mut r = registry();
                    r.shutting_down = true;
                    let live: Vec<(u32, String, bool)> = r
                        .live
                        .iter()
                        .map(|(p, e)| (*p, e.name.clone(), e.group))
                        .collect();
                    (live, std::mem::take(&mut r.temp_paths))
                };
                eprintln!(
                    "\n{label}: got signal {sig}: stopping {} child process(es)",
                    live.len()
                );
                stop_all(&label, &live, grace);
                for p in paths {
                    remove_path(&p);
                }
                std::process::exit(130);
            }
        })
        .map_err(|e| format!("spawning the signal thread: {e}"))?;
    Ok(())
}

fn stop_all(label: &str, live: &[(u32, String, bool)], grace: Duration) {
    for (pid, name, group) in live {
        eprintln!("{label}: SIGTERM to {name} (pid {pid})");
        send(*pid, *group, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && live.iter().any(|(p, _, _)| alive(*p)) {
        thread::sleep(Duration::from_millis(20));
    }
    for (pid, name, group) in live {
        if alive(*pid) {
            eprintln!("{label}: SIGKILL to {name} (pid {pid})");
            send(*pid, *group, libc::SIGKILL);
        }
    }
}

/// Removes a temporary directory (with what it holds) or file.
pub(crate) fn remove_path(p: &Path) {
    let _ = if p.is_dir() {
        std::fs::remove_dir_all(p)
    } else {
        std::fs::remove_file(p)
    };
}

/// Sends `sig` to `pid` (to the process group it leads when `group`).
pub(crate) fn send(pid: u32, group: bool, sig: libc::c_int) {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return;
    };
    let target = if group { -p } else { p };
    // SAFETY: kill(2) on a pid (or the group it leads) this process
    // started; a reaped pid only makes it fail with ESRCH.
    unsafe {
        libc::kill(target, sig);
    }
}

/// Whether `pid` still runs (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rfind(')')
            .and_then(|i| s.get(i + 1..))
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}
