//! Every process `faults` starts is registered here by PID and stopped by
//! PID: when its guard is dropped (success, error or panic), and by the
//! SIGINT/SIGTERM handler, which stops whatever is still registered and
//! exits.
//!
//! Children get `PR_SET_PDEATHSIG = SIGKILL` too, so a `faults` killed
//! with SIGKILL (which runs no handler) leaves no server behind. A child
//! that starts children of its own (`cargo fuzz run` starts the fuzzer)
//! is put in a process group of its own, whose id is its PID, and the
//! whole group is signalled. All children are spawned from the main
//! thread, which lives as long as the process (the death signal follows
//! the thread that spawned).

use std::collections::BTreeMap;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// How long a child gets between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

struct Entry {
    name: String,
    group: bool,
}

struct Registry {
    live: BTreeMap<u32, Entry>,
    shutting_down: bool,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    live: BTreeMap::new(),
    shutting_down: false,
});

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Installs the SIGINT/SIGTERM handler: SIGTERM to every registered
/// child, SIGKILL to those still alive after [`GRACE`], then exit 130.
pub fn install_signal_handler() -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| format!("installing the SIGINT/SIGTERM handler: {e}"))?;
    thread::Builder::new()
        .name("faults-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                eprintln!("\nfaults: got signal {sig}: stopping every child process");
                let live: Vec<(u32, String, bool)> = {
                    let mut r = registry();
                    r.shutting_down = true;
                    r.live
                        .iter()
                        .map(|(p, e)| (*p, e.name.clone(), e.group))
                        .collect()
                };
                for (pid, name, group) in &live {
                    eprintln!("faults: SIGTERM to {name} (pid {pid})");
                    send(*pid, *group, libc::SIGTERM);
                }
                let deadline = Instant::now() + GRACE;
                while Instant::now() < deadline && live.iter().any(|(p, _, _)| alive(*p)) {
                    thread::sleep(Duration::from_millis(20));
                }
                for (pid, name, group) in &live {
                    if alive(*pid) {
                        eprintln!("faults: SIGKILL to {name} (pid {pid})");
                        send(*pid, *group, libc::SIGKILL);
                    }
                }
                std::process::exit(130);
            }
        })
        .map_err(|e| format!("spawning the signal thread: {e}"))?;
    Ok(())
}

/// Sends `sig` to `pid` (to its process group when `group`).
fn send(pid: u32, group: bool, sig: libc::c_int) {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return;
    };
    let target = if group { -p } else { p };
    // SAFETY: kill(2) on a pid (or the group it leads) we started; a
    // reaped pid only makes it fail with ESRCH.
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

/// How a child is started.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spawn {
    /// RLIMIT_NOFILE (soft and hard) set in the child before exec.
    pub nofile: Option<u64>,
    /// Put the child in a process group of its own (signalled as a whole).
    pub own_group: bool,
}

/// A running child, stopped (SIGTERM, then SIGKILL after [`GRACE`]) and
/// reaped when dropped unless it already exited.
pub struct Tracked {
    child: Child,
    name: String,
    group: bool,
    status: Option<ExitStatus>,
}

/// Spawns `cmd` and registers it by PID. Refuses once a signal started
/// the shutdown.
pub fn spawn(mut cmd: Command, name: &str, how: Spawn) -> Result<Tracked, String> {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    let Spawn { nofile, own_group } = how;
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe system calls (prctl, getppid, setpgid, setrlimit).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(io::Error::other("the parent exited"));
            }
            if own_group && libc::setpgid(0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some(n) = nofile {
                let lim = libc::rlimit {
                    rlim_cur: n as libc::rlim_t,
                    rlim_max: n as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut r = registry();
    if r.shutting_down {
        return Err(format!("not starting {name}: shutting down"));
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {name}: {e}"))?;
    r.live.insert(
        child.id(),
        Entry {
            name: name.to_owned(),
            group: own_group,
        },
    );
    Ok(Tracked {
        child,
        name: name.to_owned(),
        group: own_group,
        status: None,
    })
}

impl Tracked {
    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's handle (to take its pipes).
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Sends `sig` to it (to its group if it has one).
    pub fn signal(&self, sig: libc::c_int) {
        if self.status.is_none() {
            send(self.pid(), self.group, sig);
        }
    }

    /// Its exit status if it has exited (reaped and unregistered then).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none()
            && let Ok(Some(s)) = self.child.try_wait()
        {
            self.exited(s);
        }
        self.status
    }

    /// Waits up to `limit` for it to exit.
    pub fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.try_status() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then SIGKILL after [`GRACE`]; returns the exit status.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if let Some(s) = self.try_status() {
            return Some(s);
        }
        self.signal(libc::SIGTERM);
        if let Some(s) = self.wait_for(GRACE) {
            return Some(s);
        }
        eprintln!(
            "faults: {} (pid {}) ignored SIGTERM for {GRACE:?}: SIGKILL",
            self.name,
            self.pid()
        );
        self.signal(libc::SIGKILL);
        self.wait_for(GRACE)
    }

    fn exited(&mut self, s: ExitStatus) {
        self.status = Some(s);
        if self.group {
            // Whatever it started is stopped with it.
            send(self.pid(), true, libc::SIGKILL);
        }
        registry().live.remove(&self.child.id());
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Raises this process' soft RLIMIT_NOFILE to its hard limit; returns the
/// new soft limit.
pub fn raise_nofile_to_hard() -> Result<u64, String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write to / read from a valid rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(format!(
                "getrlimit(RLIMIT_NOFILE): {}",
                io::Error::last_os_error()
            ));
        }
        lim.rlim_cur = lim.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            return Err(format!(
                "setrlimit(RLIMIT_NOFILE, {}): {}",
                lim.rlim_max,
                io::Error::last_os_error()
            ));
        }
    }
    Ok(lim.rlim_cur)
}
