//! `cargo xtask`: the project's automation, as a cargo binary (the alias
//! is in `.cargo/config.toml`).
//!
//! `cargo xtask bench-report [--quick] [--out docs] [--runs 3] [--duration SECS]
//! [--baseline DIR]` builds the three adapters in release mode, loads each
//! of them (and `redis-server`, when installed) over a grid of connections
//! x pipeline depth x payload over TCP and Unix sockets, measures resident
//! memory per idle connection, and writes `<out>/benchmarks.md` with SVG
//! charts. With `--baseline DIR` it also runs every adapter from an earlier
//! build's binaries in DIR and reports current / baseline per point.
//!
//! `cargo xtask tls-figures [--runs 3] [--duration SECS] [--no-build]`
//! measures every adapter over TLS against plain TCP (see `tls_figures`).

mod ab;
mod bench_json;
mod bench_report;
mod charts;
mod memory;
mod metrics_figures;
mod model;
mod procfs;
mod redis;
mod report;
mod servers;
mod stats;
mod tls_figures;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Errors carry a message naming what failed.
pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Project automation for lenproto.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Benchmark every adapter (and Redis, when installed) and write
    /// <out>/benchmarks.md with SVG charts next to it.
    BenchReport(BenchReportArgs),
    /// Every adapter over TLS against plain TCP, in one run: req/s and
    /// server CPU per request at 1x1, 50x1 and 50x16, new connections per
    /// second (a handshake each), and memory per idle connection at 1,000.
    /// Prints markdown tables; progress on stderr.
    TlsFigures(FiguresArgs),
    /// What metrics cost: every adapter with `serve --metrics-addr`
    /// against without, back to back in each run, at 1x1, 50x1 and 50x16:
    /// req/s and server CPU per request, and their ratios. Prints a
    /// markdown table; progress on stderr.
    MetricsFigures(FiguresArgs),
}

/// Flags of `cargo xtask tls-figures` and `metrics-figures`.
#[derive(Debug, Clone, clap::Args)]
pub struct FiguresArgs {
    /// Runs of every adapter at every point, both configurations back to
    /// back.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub runs: usize,
    /// Seconds of load per run.
    #[arg(long, value_name = "SECS", default_value_t = 3)]
    pub duration: u64,
    /// Use the adapter binaries already in the target dir instead of
    /// running `cargo build --release` first.
    #[arg(long)]
    pub no_build: bool,
}

/// Flags of `cargo xtask bench-report`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchReportArgs {
    /// A few points (1x1, 50x1, 50x16, 1x64 over TCP, 50x16 over a Unix
    /// socket), 1 run of 3 s each, memory at 1 and 1000 connections only:
    /// about two minutes on a 2-core machine.
    #[arg(long)]
    pub quick: bool,
    /// Directory for benchmarks.md and the SVG charts (relative paths are
    /// relative to the workspace root).
    #[arg(long, value_name = "DIR", default_value = "docs")]
    pub out: PathBuf,
    /// Runs of every server at every point, interleaved (A B C A B C).
    /// Default: 3, or 1 with --quick.
    #[arg(long, value_name = "N")]
    pub runs: Option<usize>,
    /// Seconds of load per run. Default: 5, or 3 with --quick.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
    /// Use the adapter binaries already in the target dir instead of
    /// running `cargo build --release` first.
    #[arg(long)]
    pub no_build: bool,
    /// Leave Redis out even when redis-server is installed.
    #[arg(long)]
    pub no_redis: bool,
    /// Also measure an earlier build: DIR holds its release binaries
    /// (adapter-tokio, adapter-std, and an adapter-async-std built with
    /// `--features async-std,smol`). Every adapter then also runs from DIR
    /// as "<name> (baseline)", interleaved with the others in every run
    /// and loaded by this build's `adapter-tokio bench`; the report adds
    /// "Against the baseline" (current / baseline req/s and server CPU per
    /// request, flagging points more than 5% slower), also printed to
    /// stderr at the end. Build DIR from an older checkout with the same
    /// two `cargo build --release` commands as this one plus `--target-dir`;
    /// e.g. `--baseline ../wt-base/target/release`.
    #[arg(long, value_name = "DIR")]
    pub baseline: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::BenchReport(args) => bench_report::run(&args),
        Command::TlsFigures(args) => tls_figures::run(&args),
        Command::MetricsFigures(args) => metrics_figures::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}
