//! The adapters' release binaries: where they are, and a server process
//! started from one, with its log captured line by line.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::str::FromStr;
use std::time::{Duration, Instant};

use harness::{Spawn, Tracked};

/// A server to run: an adapter binary, and for adapter-async-std the
/// runtime (`ADAPTER_RUNTIME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    /// `adapter-tokio serve`.
    Tokio,
    /// `adapter-std serve` (a thread per connection).
    Std,
    /// `adapter-async-std serve` on async-std.
    AsyncStd,
    /// `adapter-async-std serve` on smol.
    Smol,
}

impl Adapter {
    /// Every server, in the table's order.
    pub const ALL: [Adapter; 4] = [Self::Tokio, Self::Std, Self::AsyncStd, Self::Smol];

    /// Its name in the table and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tokio => "tokio",
            Self::Std => "std",
            Self::AsyncStd => "async-std",
            Self::Smol => "smol",
        }
    }

    /// The binary.
    pub fn binary(self) -> &'static str {
        match self {
            Self::Tokio => "adapter-tokio",
            Self::Std => "adapter-std",
            Self::AsyncStd | Self::Smol => "adapter-async-std",
        }
    }

    fn runtime_env(self) -> Option<&'static str> {
        match self {
            Self::AsyncStd => Some("async-std"),
            Self::Smol => Some("smol"),
            _ => None,
        }
    }
}

impl fmt::Display for Adapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Adapter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| format!("unknown adapter {s:?}: tokio, std, async-std or smol"))
    }
}

/// The workspace root (two directories above this crate).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .to_path_buf()
}

/// Where the release binaries are: `$CARGO_TARGET_DIR/release`, else
/// `<workspace>/target/release`.
pub fn release_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            let d = if d.is_relative() {
                workspace_root().join(d)
            } else {
                d
            };
            d.join("release")
        }
        None => workspace_root().join("target").join("release"),
    }
}

/// Builds the three adapters' release binaries (`cargo build --release`,
/// same target dir; adapter-async-std with both of its runtimes, in a
/// build of its own: `--features adapter-async-std/smol` beside other
/// `-p`s is not applied) and returns their directory.
pub fn build_release() -> Result<PathBuf, String> {
    let builds: [&[&str]; 2] = [
        &["-p", "adapter-tokio", "-p", "adapter-std"],
        &["-p", "adapter-async-std", "--features", "smol"],
    ];
    for args in builds {
        eprintln!("faults: cargo build --release {}", args.join(" "));
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(workspace_root())
            .arg("build")
            .arg("--release")
            .args(args);
        let mut build = Spawn::new("cargo build").spawn(cmd)?;
        match build.wait_for(Duration::from_secs(3600)) {
            Some(s) if s.success() => {}
            Some(s) => return Err(format!("cargo build --release failed ({s})")),
            None => return Err("cargo build --release took over an hour".into()),
        }
    }
    let dir = release_dir();
    for a in Adapter::ALL {
        let bin = dir.join(a.binary());
        if !bin.is_file() {
            return Err(format!("built, yet {} is missing", bin.display()));
        }
    }
    Ok(dir)
}

/// A server process: `<binary> serve --addr 127.0.0.1:<port> ...`, its
/// stderr (the log) read line by line into memory, ANSI colours stripped.
pub struct ServerProc {
    /// Which server.
    pub adapter: Adapter,
    /// Where it listens.
    pub addr: SocketAddr,
    proc: Tracked,
}

impl ServerProc {
    /// Starts the server and waits (up to 10 s) for its "listening on"
    /// line. `nofile` sets its RLIMIT_NOFILE.
    pub fn start(
        bins: &Path,
        adapter: Adapter,
        args: &[String],
        nofile: Option<u64>,
    ) -> Result<Self, String> {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(bins, adapter, args, nofile) {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn try_start(
        bins: &Path,
        adapter: Adapter,
        args: &[String],
        nofile: Option<u64>,
    ) -> Result<Self, String> {
        // Bound then released: the server binds it next, with
        // SO_REUSEADDR; a lost race is retried by `start`.
        let addr = harness::free_tcp_addr()?;
        let bin = bins.join(adapter.binary());
        let mut cmd = Command::new(&bin);
        cmd.arg("serve")
            .arg("--addr")
            .arg(addr.to_string())
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG");
        if let Some(rt) = adapter.runtime_env() {
            cmd.env("ADAPTER_RUNTIME", rt);
        }
        let name = format!("{adapter} server ({})", bin.display());
        let (proc, _) = Spawn::server(name).nofile(nofile).spawn_until(
            cmd,
            "listening on",
            Duration::from_secs(10),
        )?;
        Ok(Self {
            adapter,
            addr,
            proc,
        })
    }

    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Its resident memory (`VmRSS`) in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid())
    }

    /// Its open descriptors (entries of `/proc/<pid>/fd`).
    pub fn open_fds(&self) -> Option<usize> {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .ok()
            .map(|d| d.count())
    }

    /// Still running?
    pub fn running(&mut self) -> bool {
        self.proc.try_status().is_none()
    }

    /// How many log lines so far satisfy `pred`.
    pub fn count_lines(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.proc.with_log(|l| l.iter().filter(|x| pred(x)).count())
    }

    /// The log lines so far that satisfy `pred`.
    pub fn lines(&self, pred: impl Fn(&str) -> bool) -> Vec<String> {
        self.proc
            .with_log(|l| l.iter().filter(|x| pred(x)).cloned().collect())
    }

    /// The last `n` log lines.
    pub fn log_tail(&self, n: usize) -> Vec<String> {
        self.proc.log_tail(n)
    }

    /// SIGTERM, then waits up to `limit` for it to exit (SIGKILL after
    /// that); returns its exit status and how long it took. The whole log
    /// is read when this returns.
    pub fn terminate(&mut self, limit: Duration) -> (Option<ExitStatus>, Duration) {
        let t = Instant::now();
        self.proc.signal(harness::SIGTERM);
        let status = match self.proc.wait_for(limit) {
            Some(s) => Some(s),
            None => {
                eprintln!(
                    "faults: {} server (pid {}) still running {limit:?} after SIGTERM: killing it",
                    self.adapter,
                    self.pid()
                );
                self.proc.stop();
                None
            }
        };
        (status, t.elapsed())
    }
}

/// `VmRSS` of a process in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapters_parse_from_their_names() {
        for a in Adapter::ALL {
            assert_eq!(a.name().parse::<Adapter>(), Ok(a));
        }
        assert!("go".parse::<Adapter>().is_err());
    }
}
