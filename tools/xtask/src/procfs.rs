//! What the report reads from /proc: a process's CPU time, resident memory
//! and open files, and the machine's CPU model and kernel.

use std::fs;
use std::path::Path;

use crate::Result;

/// utime + stime, in clock ticks, from the text of `/proc/PID/stat`.
///
/// The second field (`comm`) is in parentheses and may hold spaces or
/// parentheses itself, so fields are counted from the last `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Result<u64> {
    let close = stat
        .rfind(')')
        .ok_or_else(|| format!("no ')' after the command name in {stat:?}"))?;
    // After ") " comes field 3 (state); utime is field 14, stime field 15.
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let field = |n: usize| -> Result<u64> {
        let s = fields
            .get(n - 3)
            .ok_or_else(|| format!("/proc stat has no field {n}: {stat:?}"))?;
        Ok(s.parse::<u64>()
            .map_err(|e| format!("/proc stat field {n} {s:?} is not a number: {e}"))?)
    };
    Ok(field(14)? + field(15)?)
}

/// VmRSS in KiB from the text of `/proc/PID/status`.
pub fn parse_vmrss_kib(status: &str) -> Result<u64> {
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or("no VmRSS line in /proc status")?;
    let mut parts = line["VmRSS:".len()..].split_whitespace();
    let n = parts.next().ok_or_else(|| format!("empty {line:?}"))?;
    let unit = parts.next().unwrap_or("kB");
    if unit != "kB" {
        return Err(format!("unexpected unit in {line:?}").into());
    }
    Ok(n.parse::<u64>()
        .map_err(|e| format!("VmRSS {n:?} is not a number: {e}"))?)
}

/// The first `model name` in the text of `/proc/cpuinfo`.
pub fn parse_cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == "model name").then(|| v.trim().to_string())
    })
}

/// A process's CPU time (user + system, all threads) in microseconds.
pub fn cpu_time_us(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).map_err(|e| format!("reading {path}: {e}"))?;
    let ticks = parse_stat_cpu_ticks(&text)?;
    Ok(ticks as f64 * 1e6 / clock_ticks_per_sec())
}

/// A process's resident memory in KiB.
pub fn vmrss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = fs::read_to_string(&path).map_err(|e| format!("reading {path}: {e}"))?;
    parse_vmrss_kib(&text)
}

/// How many files a process has open.
pub fn open_fds(pid: u32) -> Result<usize> {
    let path = format!("/proc/{pid}/fd");
    let dir = fs::read_dir(&path).map_err(|e| format!("listing {path}: {e}"))?;
    Ok(dir.count())
}

/// `sysconf(_SC_CLK_TCK)`: the unit of the times in /proc/PID/stat.
pub fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if n > 0 { n as f64 } else { 100.0 }
}

/// The CPU model, or "unknown".
pub fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| parse_cpu_model(&t))
        .unwrap_or_else(|| "unknown".into())
}

/// The kernel release, e.g. `6.1.0-18-amd64`.
pub fn kernel_release() -> String {
    read_trimmed(Path::new("/proc/sys/kernel/osrelease")).unwrap_or_else(|| "unknown".into())
}

fn read_trimmed(p: &Path) -> Option<String> {
    fs::read_to_string(p).ok().map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "12345 (adapter-tokio) S 1 12345 12345 0 -1 4194560 1234 0 0 0 \
                        250 75 0 0 20 0 3 0 9876543 123456789 2048 18446744073709551615 \
                        1 1 0 0 0 0 0 4096 17646 0 0 0 17 1 0 0 0 0 0";

    #[test]
    fn stat_cpu_ticks_are_utime_plus_stime() {
        assert_eq!(parse_stat_cpu_ticks(STAT).unwrap(), 325);
    }

    #[test]
    fn stat_command_name_with_spaces_and_parens_is_skipped() {
        let s = STAT.replace("(adapter-tokio)", "(a) b (c))");
        assert_eq!(parse_stat_cpu_ticks(&s).unwrap(), 325);
    }

    #[test]
    fn stat_truncated_is_an_error_not_a_panic() {
        assert!(parse_stat_cpu_ticks("1 (x) S 1 2 3").is_err());
        assert!(parse_stat_cpu_ticks("garbage").is_err());
    }

    #[test]
    fn vmrss_is_read_in_kib() {
        let status =
            "Name:\tredis-server\nVmPeak:\t  100 kB\nVmRSS:\t    8472 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(parse_vmrss_kib(status).unwrap(), 8472);
    }

    #[test]
    fn vmrss_missing_is_an_error() {
        assert!(parse_vmrss_kib("Name:\tx\n").is_err());
        assert!(parse_vmrss_kib("VmRSS:\t abc kB\n").is_err());
    }

    #[test]
    fn cpu_model_is_first_model_name() {
        let info = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n\nprocessor\t: 1\nmodel name\t: other\n";
        assert_eq!(parse_cpu_model(info).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(parse_cpu_model("processor: 0\n"), None);
    }

    #[test]
    fn own_process_can_be_measured() {
        let pid = std::process::id();
        assert!(cpu_time_us(pid).unwrap() >= 0.0);
        assert!(vmrss_kib(pid).unwrap() > 0);
        assert!(open_fds(pid).unwrap() >= 3);
    }
}
