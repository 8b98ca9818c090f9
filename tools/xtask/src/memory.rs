//! Resident memory of a server holding idle connections: VmRSS after it
//! started, then after 1, 1000 and 10,000 connections that send nothing.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::Result;
use crate::model::{MemoryResult, Server, Transport};
use crate::procfs;
use crate::servers::{self, Endpoint, Tools};

/// Every server runs with this connection limit for the memory test (the
/// std adapter's default is 1024).
pub const MAX_CONNECTIONS: u32 = 11_000;
/// Files the xtask process and the server keep besides the connections.
const FD_HEADROOM: u64 = 128;
/// Connections opened before waiting for the server to accept them.
const BATCH: usize = 250;

/// Whether `n` idle connections fit under the fd limit on both sides.
pub fn fits(n: usize, fd_limit: u64) -> bool {
    n as u64 + FD_HEADROOM <= fd_limit
}

/// Measures `server` at each connection count in `counts` (ascending).
pub fn measure(
    tools: &Tools,
    server: Server,
    counts: &[usize],
    fd_limit: u64,
    seq: usize,
) -> Result<MemoryResult> {
    let running = servers::start(tools, server, Transport::Tcp, Some(MAX_CONNECTIONS), seq)?;
    let pid = running.proc.pid();
    let Endpoint::Tcp(port) = running.endpoint else {
        return Err("the memory test runs over TCP".into());
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    // Let the readiness probe's connection close and the server settle.
    thread::sleep(Duration::from_millis(300));
    let base_fds = procfs::open_fds(pid)?;
    let baseline_kib = procfs::vmrss_kib(pid)?;
    let mut result = MemoryResult {
        server,
        baseline_kib,
        steps: Vec::new(),
        notes: Vec::new(),
    };
    let mut conns: Vec<TcpStream> = Vec::new();
    let mut broken = false;
    for &n in counts {
        if broken {
            result.steps.push((n, None));
            continue;
        }
        if !fits(n, fd_limit) {
            result.notes.push(format!(
                "{n} connections skipped: the open-file limit is {fd_limit} \
                 (raise the hard limit, `ulimit -Hn`, to at least {})",
                n as u64 + FD_HEADROOM
            ));
            result.steps.push((n, None));
            broken = true;
            continue;
        }
        while conns.len() < n {
            let batch = (n - conns.len()).min(BATCH);
            for _ in 0..batch {
                match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
                    Ok(s) => conns.push(s),
                    Err(e) => {
                        result.notes.push(format!(
                            "connection {} of {n} failed: {e}; stopped there",
                            conns.len() + 1
                        ));
                        broken = true;
                        break;
                    }
                }
            }
            if broken {
                break;
            }
            wait_accepted(pid, base_fds + conns.len(), Duration::from_secs(5));
        }
        if broken {
            result.steps.push((n, None));
            continue;
        }
        let open = wait_accepted(pid, base_fds + n, Duration::from_secs(15));
        if open < base_fds + n {
            result.notes.push(format!(
                "only {} of {n} connections were accepted after 15 s",
                open.saturating_sub(base_fds)
            ));
        }
        // Let per-connection setup (a thread, a task, buffers) finish.
        thread::sleep(Duration::from_millis(if n > 1000 { 1000 } else { 300 }));
        result.steps.push((n, Some(procfs::vmrss_kib(pid)?)));
    }
    drop(conns);
    running.stop();
    Ok(result)
}

/// Waits until the server has `want` files open (it accepted the
/// connections) or `timeout` passed; returns how many it has.
fn wait_accepted(pid: u32, want: usize, timeout: Duration) -> usize {
    let start = Instant::now();
    loop {
        let n = procfs::open_fds(pid).unwrap_or(0);
        if n >= want || start.elapsed() > timeout {
            return n;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_thousand_needs_more_than_ten_thousand_fds() {
        assert!(fits(10_000, 20_000));
        assert!(!fits(10_000, 10_000));
        assert!(fits(1000, 4096));
    }
}
