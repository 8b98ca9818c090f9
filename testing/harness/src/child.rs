//! Starting a child ([`Spawn`]), the guard that stops it ([`Tracked`]),
//! and the bounded waits on it.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::net::Listening;
use crate::output::{Collector, LineWait};
use crate::registry::{label, send, spawn_registered, unregister};

/// How long a child gets between SIGTERM and SIGKILL unless
/// [`Spawn::grace`] says otherwise.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// How long, once a child exited, its captured streams may take to reach
/// their end (a grandchild may hold them open).
const DRAIN: Duration = Duration::from_secs(2);

/// Where one of a child's output streams goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// Discarded (`/dev/null`).
    Null,
    /// This process' own stream.
    Inherit,
    /// Appended to this file (created if missing).
    File(PathBuf),
    /// Read to the end and kept whole: [`Tracked::stdout_text`],
    /// [`Finished`].
    Capture,
    /// Read line by line, ANSI sequences stripped, into the child's log
    /// ([`Tracked::wait_for_line`], [`Tracked::log`]); stdout and stderr
    /// both sent here share one log, interleaved like `2>&1`.
    Lines,
    /// A pipe left for the caller to read ([`Tracked::child_mut`]).
    Pipe,
}

/// How a child is started: its name in messages, where its output goes,
/// how it is stopped and what it may open. Stdin is `/dev/null` unless
/// [`stdin_pipe`](Spawn::stdin_pipe).
#[derive(Debug, Clone)]
pub struct Spawn {
    name: String,
    stdin_pipe: bool,
    stdout: Sink,
    stderr: Sink,
    grace: Duration,
    nofile: Option<u64>,
    own_group: bool,
}

impl Spawn {
    /// A child called `name` in messages; output inherited, stopped with
    /// [`DEFAULT_GRACE`], in this process' group, with its limits.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            stdin_pipe: false,
            stdout: Sink::Inherit,
            stderr: Sink::Inherit,
            grace: DEFAULT_GRACE,
            nofile: None,
            own_group: false,
        }
    }

    /// A server called `name`: stdout discarded, stderr read line by line
    /// into its log ([`Sink::Lines`]).
    pub fn server(name: impl Into<String>) -> Self {
        Self::new(name).stdout(Sink::Null).stderr(Sink::Lines)
    }

    /// Its stdin is a pipe for the caller to write ([`Tracked::child_mut`]).
    pub fn stdin_pipe(mut self) -> Self {
        self.stdin_pipe = true;
        self
    }

    /// Where its stdout goes.
    pub fn stdout(mut self, sink: Sink) -> Self {
        self.stdout = sink;
        self
    }

    /// Where its stderr goes.
    pub fn stderr(mut self, sink: Sink) -> Self {
        self.stderr = sink;
        self
    }

    /// How long it gets between SIGTERM and SIGKILL when stopped.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Its RLIMIT_NOFILE (soft and hard), set before exec.
    pub fn nofile(mut self, limit: Option<u64>) -> Self {
        self.nofile = limit;
        self
    }

    /// Puts it in a process group of its own (whose id is its PID), so a
    /// child that starts children of its own is signalled as a whole, and
    /// what it started is killed when it exits.
    pub fn own_group(mut self) -> Self {
        self.own_group = true;
        self
    }

    /// Starts `cmd` and registers it by PID. Once a signal handler
    /// ([`install_signal_handler`](crate::install_signal_handler)) started
    /// the shutdown, waits for the process to exit instead.
    pub fn spawn(self, mut cmd: Command) -> Result<Tracked, String> {
        let Spawn {
            name,
            stdin_pipe,
            stdout,
            stderr,
            grace,
            nofile,
            own_group,
        } = self;
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the closure runs between fork and exec and only makes
        // async-signal-safe system calls (prctl, getppid, setpgid,
        // setrlimit).
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent died between fork and prctl: go no further.
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
        cmd.stdin(if stdin_pipe {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(stdio(&name, &stdout)?);
        cmd.stderr(stdio(&name, &stderr)?);
        let mut child = spawn_registered(&mut cmd, &name, own_group)
            .map_err(|e| format!("cannot start {name} ({:?}): {e}", cmd.get_program()))?;
        let collected = |sink: &Sink| matches!(sink, Sink::Capture | Sink::Lines);
        let out_pipe = child.stdout.take_if(|_| collected(&stdout));
        let err_pipe = child.stderr.take_if(|_| collected(&stderr));
        let pid = child.id();
        // From here on a failure stops the child (the guard's drop).
        let mut tracked = Tracked {
            child,
            name,
            pid,
            group: own_group,
            grace,
            status: None,
            killed: false,
            stdout: None,
            stderr: None,
            cursor: 0,
        };
        let log = (stdout == Sink::Lines || stderr == Sink::Lines).then(|| Collector::new(true));
        let collector = |sink: &Sink| match (sink, &log) {
            (Sink::Lines, Some(log)) => Arc::clone(log),
            _ => Collector::new(false),
        };
        if let Some(pipe) = out_pipe {
            let c = collector(&stdout);
            c.read(format!("stdout-{pid}"), pipe)
                .map_err(|e| format!("reading {}'s stdout: {e}", tracked.name))?;
            tracked.stdout = Some(c);
        }
        if let Some(pipe) = err_pipe {
            let c = collector(&stderr);
            c.read(format!("stderr-{pid}"), pipe)
                .map_err(|e| format!("reading {}'s stderr: {e}", tracked.name))?;
            tracked.stderr = Some(c);
        }
        Ok(tracked)
    }

    /// [`spawn`](Self::spawn)s `cmd`, then waits up to `within` for a line
    /// of its log containing `ready` ([`Tracked::wait_for_line`]); returns
    /// the guard and that line.
    pub fn spawn_until(
        self,
        cmd: Command,
        ready: &str,
        within: Duration,
    ) -> Result<(Tracked, String), String> {
        let mut child = self.spawn(cmd)?;
        let line = child.wait_for_line(ready, within)?;
        Ok((child, line))
    }
}

fn stdio(name: &str, sink: &Sink) -> Result<Stdio, String> {
    Ok(match sink {
        Sink::Null => Stdio::null(),
        Sink::Inherit => Stdio::inherit(),
        Sink::File(path) => File::options()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("opening {name}'s log file {}: {e}", path.display()))?
            .into(),
        Sink::Capture | Sink::Lines | Sink::Pipe => Stdio::piped(),
    })
}

/// A running child, registered by PID: stopped (SIGTERM, then SIGKILL
/// after its grace period) and reaped when dropped, unless it already
/// exited.
pub struct Tracked {
    child: Child,
    name: String,
    pid: u32,
    group: bool,
    grace: Duration,
    status: Option<ExitStatus>,
    killed: bool,
    stdout: Option<Arc<Collector>>,
    stderr: Option<Arc<Collector>>,
    /// Where the next [`wait_for_line`](Self::wait_for_line) starts.
    cursor: usize,
}

/// A child that ran to its end: its exit status and what it wrote to the
/// streams that were captured (empty for the others).
#[derive(Debug, Clone)]
pub struct Finished {
    /// How it exited.
    pub status: ExitStatus,
    /// Its stdout, if captured.
    pub stdout: String,
    /// Its stderr, if captured.
    pub stderr: String,
}

impl fmt::Debug for Tracked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracked")
            .field("name", &self.name)
            .field("pid", &self.pid)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// Runs `cmd` to its end with stdout and stderr captured: the child is
/// stopped, and this fails saying so with what it wrote, if it takes
/// longer than `within`.
pub fn run(cmd: Command, name: &str, within: Duration) -> Result<Finished, String> {
    Spawn::new(name)
        .stdout(Sink::Capture)
        .stderr(Sink::Capture)
        .spawn(cmd)?
        .wait_output(within)
}

impl Tracked {
    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its name in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's handle, to take a [`Sink::Pipe`] stream.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Sends `sig` to it (to its group if it has one), unless it exited.
    pub fn signal(&self, sig: libc::c_int) {
        if self.status.is_none() {
            send(self.pid, self.group, sig);
        }
    }

    /// Its exit status if it has exited (reaped and unregistered then,
    /// its captured output read to the end).
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
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM, then SIGKILL after the grace period; returns the exit
    /// status (`None` if it outlived the SIGKILL by the grace period too).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if let Some(s) = self.try_status() {
            return Some(s);
        }
        self.signal(libc::SIGTERM);
        if let Some(s) = self.wait_for(self.grace) {
            return Some(s);
        }
        eprintln!(
            "{}: {} (pid {}) ignored SIGTERM for {:?}: SIGKILL",
            label(),
            self.name,
            self.pid,
            self.grace
        );
        self.killed = true;
        self.signal(libc::SIGKILL);
        self.wait_for(self.grace.max(Duration::from_secs(1)))
    }

    /// True once [`stop`](Self::stop) had to SIGKILL it.
    pub fn killed(&self) -> bool {
        self.killed
    }

    fn exited(&mut self, s: ExitStatus) {
        self.status = Some(s);
        if self.group {
            // Whatever it started is stopped with it.
            send(self.pid, true, libc::SIGKILL);
        }
        unregister(self.pid);
        let deadline = Instant::now() + DRAIN;
        for c in [&self.stdout, &self.stderr].into_iter().flatten() {
            c.wait_closed(deadline.saturating_duration_since(Instant::now()));
        }
    }

    /// Waits up to `within` for it to exit on its own and returns its
    /// status with its captured output; past that, stops it and fails
    /// saying so, with what it wrote.
    pub fn wait_output(mut self, within: Duration) -> Result<Finished, String> {
        match self.wait_for(within) {
            Some(status) => Ok(Finished {
                status,
                stdout: self.stdout_text(),
                stderr: self.stderr_text(),
            }),
            None => {
                self.stop();
                Err(format!(
                    "{} (pid {}) did not finish within {within:?}: stopped{}",
                    self.name,
                    self.pid,
                    self.output_note()
                ))
            }
        }
    }

    /// What it wrote to stdout so far, if captured (its log if stdout
    /// goes there; empty otherwise).
    pub fn stdout_text(&self) -> String {
        self.stdout.as_ref().map(|c| c.text()).unwrap_or_default()
    }

    /// What it wrote to stderr so far, if captured.
    pub fn stderr_text(&self) -> String {
        self.stderr.as_ref().map(|c| c.text()).unwrap_or_default()
    }

    fn log_collector(&self) -> Option<&Arc<Collector>> {
        // Both streams sent to the log share one collector.
        [&self.stderr, &self.stdout]
            .into_iter()
            .flatten()
            .find(|c| c.is_lines())
    }

    /// Runs `f` on the lines of its log so far (empty without
    /// [`Sink::Lines`]).
    pub fn with_log<R>(&self, f: impl FnOnce(&[String]) -> R) -> R {
        match self.log_collector() {
            Some(c) => c.with_lines(f),
            None => f(&[]),
        }
    }

    /// The lines of its log so far.
    pub fn log(&self) -> Vec<String> {
        self.with_log(<[String]>::to_vec)
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> Vec<String> {
        self.with_log(|l| l[l.len().saturating_sub(n)..].to_vec())
    }

    /// Whether a line of its log so far contains `needle`.
    pub fn log_has(&self, needle: &str) -> bool {
        self.with_log(|l| l.iter().any(|x| x.contains(needle)))
    }

    /// The next line of its log containing `needle`, waiting up to
    /// `within`: the first such line after the one the previous call
    /// returned. Fails if the log ends (the child exited) or the time runs
    /// out first, with the log in the message.
    pub fn wait_for_line(&mut self, needle: &str, within: Duration) -> Result<String, String> {
        let Some(log) = self.log_collector().cloned() else {
            return Err(format!(
                "{}: waiting for a line of its log, but neither stream goes to Sink::Lines",
                self.name
            ));
        };
        let why = match log.wait_line(self.cursor, needle, Instant::now() + within) {
            LineWait::Found(i, line) => {
                self.cursor = i + 1;
                return Ok(line);
            }
            LineWait::TimedOut => format!("logged no line with {needle:?} within {within:?}"),
            LineWait::Closed => match self.wait_for(Duration::from_millis(500)) {
                Some(s) => format!("exited ({s}) before logging a line with {needle:?}"),
                None => format!("closed its output before logging a line with {needle:?}"),
            },
        };
        Err(format!(
            "{} (pid {}) {why}; its log:\n  {}",
            self.name,
            self.pid,
            self.log_tail(40).join("\n  ")
        ))
    }

    /// Waits up to `within` until `at` (a [`SocketAddr`](std::net::SocketAddr)
    /// or a Unix socket [`Path`](std::path::Path)) accepts a connection;
    /// fails if the child exits first or the time runs out.
    pub fn wait_accepting<L: Listening + ?Sized>(
        &mut self,
        at: &L,
        within: Duration,
    ) -> Result<(), String> {
        let start = Instant::now();
        loop {
            let why = if let Some(s) = self.try_status() {
                format!("exited ({s}) before accepting on {}", at.describe())
            } else if at.accepts() {
                return Ok(());
            } else if start.elapsed() > within {
                format!("did not accept on {} within {within:?}", at.describe())
            } else {
                thread::sleep(Duration::from_millis(20));
                continue;
            };
            return Err(format!(
                "{} (pid {}) {why}{}",
                self.name,
                self.pid,
                self.output_note()
            ));
        }
    }

    /// What it wrote, for a failure message (nothing if nothing captured).
    fn output_note(&self) -> String {
        let mut note = String::new();
        for (which, text) in [
            ("stdout", self.stdout_text()),
            ("stderr", self.stderr_text()),
        ] {
            if !text.trim().is_empty() {
                note.push_str(&format!("\nits {which}:\n{}", text.trim_end()));
            }
        }
        note
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Raises this process' soft RLIMIT_NOFILE to its hard limit (children
/// inherit it); returns the new soft limit.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{alive, live_children};

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    fn registered(pid: u32) -> bool {
        live_children().iter().any(|(p, _)| *p == pid)
    }

    #[test]
    fn a_dropped_child_is_stopped_and_unregistered() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let t = Spawn::new("sleep").spawn(cmd).unwrap();
        let pid = t.pid();
        assert!(registered(pid));
        let start = Instant::now();
        drop(t);
        assert!(start.elapsed() < Duration::from_secs(2));
        assert!(!registered(pid));
        assert!(!alive(pid));
    }

    #[test]
    fn a_child_ignoring_sigterm_is_killed_after_its_grace() {
        let mut t = Spawn::new("stubborn")
            .stdout(Sink::Lines)
            .grace(Duration::from_millis(300))
            .spawn(sh("trap '' TERM; echo ready; while :; do sleep 0.05; done"))
            .unwrap();
        t.wait_for_line("ready", Duration::from_secs(10)).unwrap();
        let start = Instant::now();
        assert!(t.stop().is_some());
        assert!(t.killed());
        assert!(start.elapsed() >= Duration::from_millis(300));
        assert!(!alive(t.pid()));
    }

    #[test]
    fn run_captures_both_streams_and_the_status_within_its_bound() {
        let within = Duration::from_millis(300);
        let out = run(sh("echo hello; echo oops >&2; exit 3"), "sh", within * 30).unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, "hello\n");
        assert_eq!(out.stderr, "oops\n");
        // Past its bound: stopped, and the error says what it wrote.
        let err = run(sh("echo started; exec sleep 30"), "sleeper", within).unwrap_err();
        assert!(err.contains("sleeper (pid"), "{err}");
        assert!(err.contains("did not finish within 300ms"), "{err}");
        assert!(err.contains("started"), "{err}");
    }

    #[test]
    fn log_lines_are_waited_for_in_order_without_ansi() {
        let mut t = Spawn::new("logger")
            .stdout(Sink::Null)
            .stderr(Sink::Lines)
            .spawn(sh(
                "printf '\\033[32mone\\033[0m\\n' >&2; echo two >&2; echo one again >&2",
            ))
            .unwrap();
        let within = Duration::from_secs(10);
        assert_eq!(t.wait_for_line("one", within).unwrap(), "one");
        assert_eq!(t.wait_for_line("one", within).unwrap(), "one again");
        let err = t.wait_for_line("three", within).unwrap_err();
        assert!(err.contains("exited (exit status: 0)"), "{err}");
        assert_eq!(t.log(), ["one", "two", "one again"]);
        assert!(t.log_has("two"));
        assert_eq!(t.log_tail(1), ["one again"]);
    }

    #[test]
    fn a_group_leader_takes_what_it_started_with_it() {
        let mut t = Spawn::new("parent")
            .stdout(Sink::Lines)
            .own_group()
            .spawn(sh("sleep 30 & echo $!; wait"))
            .unwrap();
        let grandchild: u32 = t
            .wait_for_line("", Duration::from_secs(10))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(alive(grandchild));
        t.stop();
        let start = Instant::now();
        while alive(grandchild) && start.elapsed() < Duration::from_secs(5) {
            thread::sleep(Duration::from_millis(10));
        }
        assert!(!alive(grandchild));
    }

    #[test]
    fn waiting_for_an_endpoint_ends_when_it_accepts_or_the_child_exits() {
        let sock = crate::TempSocket::new("harness-accept");
        let listener = std::os::unix::net::UnixListener::bind(sock.path()).unwrap();
        let mut t = Spawn::new("sleep").spawn(sh("sleep 30")).unwrap();
        t.wait_accepting(sock.path(), Duration::from_secs(5))
            .unwrap();
        drop(listener);
        let mut gone = Spawn::new("quick").spawn(sh("exit 0")).unwrap();
        let addr = crate::free_tcp_addr().unwrap();
        let err = gone
            .wait_accepting(&addr, Duration::from_secs(5))
            .unwrap_err();
        assert!(err.contains("quick (pid"), "{err}");
        assert!(err.contains("exited (exit status: 0)"), "{err}");
    }

    #[test]
    fn a_child_gets_its_own_descriptor_limit() {
        let out = Spawn::new("ulimit")
            .stdout(Sink::Capture)
            .nofile(Some(77))
            .spawn(sh("ulimit -n"))
            .unwrap()
            .wait_output(Duration::from_secs(10))
            .unwrap();
        assert_eq!(out.stdout.trim(), "77");
    }
}
