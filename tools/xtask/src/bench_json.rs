//! The one place that knows what `adapter-tokio bench --json` prints
//! (`BenchReport::to_json` in adapter-tokio/src/bench.rs): one object with
//! `requests`, `errors`, `connection_errors`, `elapsed_s`, `req_per_s` and
//! `latency_us.{p50,p90,p99,p99_9,max}`, among others this ignores.

use serde::Deserialize;

use crate::Result;

/// What the report takes from one `adapter-tokio bench --json` run.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchOutput {
    pub requests: u64,
    pub errors: u64,
    /// One line per connection that failed.
    pub connection_errors: Vec<String>,
    pub elapsed_secs: f64,
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

#[derive(Deserialize)]
struct Json {
    requests: u64,
    errors: u64,
    #[serde(default)]
    connection_errors: Vec<String>,
    elapsed_s: f64,
    req_per_s: f64,
    latency_us: Latency,
}

#[derive(Deserialize)]
struct Latency {
    p50: f64,
    p99: f64,
}

/// Parses the last JSON object line of the bench's stdout.
pub fn parse(stdout: &str) -> Result<BenchOutput> {
    let line = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| format!("no JSON object in the bench output: {stdout:?}"))?;
    let j: Json = serde_json::from_str(line)
        .map_err(|e| format!("bench JSON {line:?} is not what xtask expects: {e}"))?;
    Ok(BenchOutput {
        requests: j.requests,
        errors: j.errors,
        connection_errors: j.connection_errors,
        elapsed_secs: j.elapsed_s,
        rps: j.req_per_s,
        p50_us: j.latency_us.p50,
        p99_us: j.latency_us.p99,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_last_json_line() {
        // As adapter-tokio's BenchReport::to_json prints it.
        let out = r#"{"endpoint":"127.0.0.1:8888","conns":50,"pipeline":16,"payload":32,"elapsed_s":2.0,"requests":1000,"ok":1000,"errors":0,"connection_errors":[],"req_per_s":500.0,"mb_per_s":0.05,"latency_us":{"p50":40.0,"p90":60.0,"p99":90.5,"p99_9":120.0,"max":200.0},"clean":true}"#;
        let b = parse(&format!("progress\n{out}\n")).unwrap();
        assert_eq!(
            b,
            BenchOutput {
                requests: 1000,
                errors: 0,
                connection_errors: vec![],
                elapsed_secs: 2.0,
                rps: 500.0,
                p50_us: 40.0,
                p99_us: 90.5
            }
        );
    }

    #[test]
    fn missing_fields_are_named_in_the_error() {
        let e = parse("{\"requests\": 3}").unwrap_err().to_string();
        assert!(e.contains("errors"), "{e}");
        assert!(parse("no json here").is_err());
    }
}
