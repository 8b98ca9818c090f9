//! Reading `redis-benchmark --csv` (Redis 6.2+: rps and latencies in ms;
//! older versions print only rps) and its `-q` summary line.

use crate::Result;

/// One test's line of redis-benchmark output.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisOutput {
    pub test: String,
    pub rps: f64,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
}

/// Parses redis-benchmark's output for the test named `test` (e.g.
/// `PING_INLINE`, `SET`): the `--csv` format, with or without its header
/// and latency columns, or the `-q` line `PING_INLINE: 123.45 requests per
/// second, p50=0.143 msec` (progress lines ending in `\r` are skipped).
pub fn parse(output: &str, test: &str) -> Result<RedisOutput> {
    let mut header: Option<Vec<String>> = None;
    for raw in output.split(['\n', '\r']) {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('"') {
            let cells: Vec<String> = line.split(',').map(unquote).collect();
            if cells.first().is_some_and(|c| c == "test") {
                header = Some(cells);
                continue;
            }
            if cells.first().is_some_and(|c| c.eq_ignore_ascii_case(test)) {
                return from_csv(&cells, header.as_deref());
            }
        } else if let Some(rest) = line.strip_prefix(&format!("{test}:"))
            && rest.contains("requests per second")
        {
            return from_quiet(test, rest);
        }
    }
    Err(format!("no {test} result in the redis-benchmark output: {output:?}").into())
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches('"').to_string()
}

fn from_csv(cells: &[String], header: Option<&[String]>) -> Result<RedisOutput> {
    let col = |name: &str, default: usize| -> Option<usize> {
        match header {
            Some(h) => h.iter().position(|c| c == name),
            None => Some(default),
        }
    };
    let get = |i: Option<usize>| -> Option<f64> { cells.get(i?)?.parse::<f64>().ok() };
    let rps = get(col("rps", 1)).ok_or_else(|| format!("no rps in redis CSV line {cells:?}"))?;
    let ms_to_us = |v: f64| v * 1000.0;
    let (p50, p99) = match header {
        Some(_) => (
            get(col("p50_latency_ms", 0)).map(ms_to_us),
            get(col("p99_latency_ms", 0)).map(ms_to_us),
        ),
        None => (None, None),
    };
    Ok(RedisOutput {
        test: cells[0].clone(),
        rps,
        p50_us: p50,
        p99_us: p99,
    })
}

fn from_quiet(test: &str, rest: &str) -> Result<RedisOutput> {
    let rps_text = rest
        .split_whitespace()
        .next()
        .ok_or_else(|| format!("empty redis-benchmark line for {test}"))?;
    let rps = rps_text
        .parse::<f64>()
        .map_err(|e| format!("redis-benchmark rps {rps_text:?}: {e}"))?;
    let p50_us = rest
        .split("p50=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse::<f64>().ok())
        .map(|ms| ms * 1000.0);
    Ok(RedisOutput {
        test: test.to_string(),
        rps,
        p50_us,
        p99_us: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_latency_columns() {
        let out = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
                   \"PING_INLINE\",\"163934.42\",\"0.004\",\"0.000\",\"0.007\",\"0.007\",\"0.011\",\"0.087\"\n";
        let r = parse(out, "PING_INLINE").unwrap();
        assert_eq!(r.test, "PING_INLINE");
        assert_eq!(r.rps, 163934.42);
        assert_eq!(r.p50_us, Some(7.0));
        assert_eq!(r.p99_us, Some(11.0));
    }

    #[test]
    fn old_csv_without_header_has_rps_only() {
        let r = parse("\"PING_INLINE\",\"34129.69\"\n", "PING_INLINE").unwrap();
        assert_eq!((r.rps, r.p50_us, r.p99_us), (34129.69, None, None));
    }

    #[test]
    fn quiet_line_after_progress_carriage_returns() {
        let out = "PING_INLINE: rps=0.0 (overall: 799999.9) avg_msec=0.744 (overall: 0.744)\r                  \
                   PING_INLINE: 1851851.75 requests per second, p50=0.343 msec\n\n";
        let r = parse(out, "PING_INLINE").unwrap();
        assert_eq!(r.rps, 1851851.75);
        assert_eq!(r.p50_us, Some(343.0));
    }

    #[test]
    fn other_tests_are_not_taken() {
        let out = "\"test\",\"rps\"\n\"SET\",\"100.0\"\n";
        assert!(parse(out, "PING_INLINE").is_err());
        assert_eq!(parse(out, "SET").unwrap().rps, 100.0);
    }
}
