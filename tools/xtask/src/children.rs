//! Every process the report starts is registered here by PID and stopped
//! by PID: when its guard is dropped (success, error or panic), and by the
//! SIGINT/SIGTERM handler, which kills whatever is still registered,
//! removes the temp dir and exits.
//!
//! Children also get `PR_SET_PDEATHSIG = SIGKILL`, so a SIGKILLed xtask
//! (which runs no handler) takes no server with it into the background.
//! All children are spawned from the main thread, which lives as long as
//! the process (the death signal follows the spawning thread).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::Result;

struct Registry {
    /// pid -> what it is, for the messages.
    live: BTreeMap<u32, String>,
    /// Directories to remove on the way out.
    temp_dirs: Vec<PathBuf>,
    /// Set by the signal handler: nothing new may start.
    shutting_down: bool,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    live: BTreeMap::new(),
    temp_dirs: Vec::new(),
    shutting_down: false,
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    // A panic while holding the lock leaves the map usable: recover it.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Installs the SIGINT/SIGTERM handler: kill every registered child
/// (SIGTERM, then SIGKILL after `grace`), remove the temp dirs, exit 130.
pub fn install_signal_handler(grace: Duration) -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| format!("installing the SIGINT/SIGTERM handler: {e}"))?;
    thread::Builder::new()
        .name("xtask-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                eprintln!("\nxtask: got signal {sig}: stopping every child process");
                let (pids, dirs) = {
                    let mut r = registry();
                    r.shutting_down = true;
                    (
                        r.live.clone().into_iter().collect::<Vec<_>>(),
                        std::mem::take(&mut r.temp_dirs),
                    )
                };
                kill_all(&pids, grace);
                for d in dirs {
                    let _ = std::fs::remove_dir_all(d);
                }
                std::process::exit(130);
            }
        })
        .map_err(|e| format!("spawning the signal thread: {e}"))?;
    Ok(())
}

fn kill_all(pids: &[(u32, String)], grace: Duration) {
    for (pid, name) in pids {
        eprintln!("xtask: SIGTERM to {name} (pid {pid})");
        send(*pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && pids.iter().any(|(p, _)| alive(*p)) {
        thread::sleep(Duration::from_millis(20));
    }
    for (pid, name) in pids {
        if alive(*pid) {
            eprintln!("xtask: SIGKILL to {name} (pid {pid})");
            send(*pid, libc::SIGKILL);
        }
    }
}

fn send(pid: u32, sig: libc::c_int) {
    if let Ok(p) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) on a pid we started; an already reaped pid only
        // makes it fail with ESRCH.
        unsafe {
            libc::kill(p, sig);
        }
    }
}

/// Whether `pid` still runs (a zombie counts as gone).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rfind(')')
            .and_then(|i| s[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// After SIGINT/SIGTERM the signal thread is stopping the children and
/// will exit the process: the calling thread must not start anything or
/// write a partial report meanwhile, so it waits here for the exit.
pub fn halt_if_interrupted() {
    if registry().shutting_down {
        loop {
            thread::park();
        }
    }
}

/// Registers a directory the signal handler removes on the way out.
pub fn register_temp_dir(dir: PathBuf) {
    registry().temp_dirs.push(dir);
}

/// Forgets a directory (the caller removed it).
pub fn unregister_temp_dir(dir: &PathBuf) {
    registry().temp_dirs.retain(|d| d != dir);
}

/// A running child: stopped (SIGTERM, then SIGKILL after the grace
/// period) and reaped when dropped, unless it already exited.
pub struct Tracked {
    child: Child,
    pub name: String,
    pub pid: u32,
    grace: Duration,
    output: Option<JoinHandle<Vec<u8>>>,
    status: Option<ExitStatus>,
}

/// Where a child's stdout and stderr go.
pub enum Output {
    /// Both appended to this file (servers: read back on failure).
    File(PathBuf),
    /// stdout captured (read with [`Tracked::wait_output`]); stderr to
    /// this file, or to ours if `None`.
    Capture(Option<PathBuf>),
    /// Both inherited (cargo build).
    Inherit,
}

/// Spawns `cmd` and registers it. Refuses once a signal started the
/// shutdown.
pub fn spawn(mut cmd: Command, name: &str, output: Output, grace: Duration) -> Result<Tracked> {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe system calls (prctl, getppid).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died between fork and prctl: go no further.
            if libc::getppid() != parent {
                return Err(std::io::Error::other("parent exited"));
            }
            Ok(())
        });
    }
    cmd.stdin(Stdio::null());
    match &output {
        Output::File(path) => {
            let f = File::options()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("opening log file {}: {e}", path.display()))?;
            let f2 = f
                .try_clone()
                .map_err(|e| format!("duplicating log file {}: {e}", path.display()))?;
            cmd.stdout(f).stderr(f2);
        }
        Output::Capture(stderr) => {
            cmd.stdout(Stdio::piped());
            match stderr {
                Some(path) => {
                    let f = File::options()
                        .create(true)
                        .append(true)
                        .open(path)
                        .map_err(|e| format!("opening log file {}: {e}", path.display()))?;
                    cmd.stderr(f);
                }
                None => {
                    cmd.stderr(Stdio::inherit());
                }
            }
        }
        Output::Inherit => {
            cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit());
        }
    }
    halt_if_interrupted();
    let mut r = registry();
    if r.shutting_down {
        // The signal came between the check above and the lock.
        drop(r);
        halt_if_interrupted();
        return Err("interrupted".into());
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("starting {name} ({:?}): {e}", cmd.get_program()))?;
    let pid = child.id();
    r.live.insert(pid, name.to_string());
    drop(r);
    let output = match child.stdout.take() {
        Some(mut out) => Some(
            thread::Builder::new()
                .name(format!("stdout-{pid}"))
                .spawn(move || {
                    let mut buf = Vec::new();
                    let _ = out.read_to_end(&mut buf);
                    buf
                })
                .map_err(|e| format!("spawning the reader of {name}'s output: {e}"))?,
        ),
        None => None,
    };
    Ok(Tracked {
        child,
        name: name.to_string(),
        pid,
        grace,
        output,
        status: None,
    })
}

impl Tracked {
    /// The exit status if the child has exited (and reaps it).
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .map_err(|e| format!("waiting for {} (pid {}): {e}", self.name, self.pid))?;
            if self.status.is_some() {
                registry().live.remove(&self.pid);
            }
        }
        Ok(self.status)
    }

    /// Waits for the child to exit on its own within `timeout` (killing it
    /// past that), and returns its status and captured stdout.
    pub fn wait_output(mut self, timeout: Duration) -> Result<(ExitStatus, String)> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(st) = self.try_wait()? {
                break st;
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(format!(
                    "{} (pid {}) did not finish within {:?}: killed",
                    self.name, self.pid, timeout
                )
                .into());
            }
            thread::sleep(Duration::from_millis(10));
        };
        let out = match self.output.take() {
            Some(h) => h
                .join()
                .map_err(|_| format!("the reader of {}'s output panicked", self.name))?,
            None => Vec::new(),
        };
        Ok((status, String::from_utf8_lossy(&out).into_owned()))
    }

    /// SIGTERM, then SIGKILL after the grace period; reaps. Returns true
    /// if SIGKILL was needed.
    pub fn stop(&mut self) -> bool {
        if matches!(self.try_wait(), Ok(Some(_))) {
            return false;
        }
        send(self.pid, libc::SIGTERM);
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            if matches!(self.try_wait(), Ok(Some(_)) | Err(_)) {
                registry().live.remove(&self.pid);
                return false;
            }
            thread::sleep(Duration::from_millis(5));
        }
        eprintln!(
            "xtask: {} (pid {}) ignored SIGTERM for {:?}: SIGKILL",
            self.name, self.pid, self.grace
        );
        let _ = self.child.kill();
        self.status = self.child.wait().ok();
        registry().live.remove(&self.pid);
        true
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.stop();
        if let Some(h) = self.output.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_child_is_stopped_and_unregistered() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let t = spawn(cmd, "sleep", Output::Inherit, Duration::from_secs(2)).unwrap();
        let pid = t.pid;
        assert!(registry().live.contains_key(&pid));
        let start = Instant::now();
        drop(t);
        assert!(start.elapsed() < Duration::from_secs(2));
        assert!(!registry().live.contains_key(&pid));
        assert!(!alive(pid));
    }

    #[test]
    fn captured_stdout_is_returned() {
        let mut cmd = Command::new("echo");
        cmd.arg("hello");
        let t = spawn(cmd, "echo", Output::Capture(None), Duration::from_secs(1)).unwrap();
        let (st, out) = t.wait_output(Duration::from_secs(10)).unwrap();
        assert!(st.success());
        assert_eq!(out, "hello\n");
    }
}
