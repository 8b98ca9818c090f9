//! `faults`: faults, hostile peers and scale against the adapters' release
//! binaries, one case per subcommand, and `all` of them; each prints a
//! table of case, adapter, outcome and figures (stdout), with progress on
//! stderr.
//!
//! Every process it starts (servers, the bench client, cargo) is tracked
//! by PID and stopped on success, error and Ctrl-C (see the `harness` crate).
//! Traffic goes to 127.0.0.1 only. The quick cases of the same kind run in
//! `cargo test` (the conformance suite); these are the long or
//! process-level ones.

mod cases;
mod client;
mod report;
mod servers;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::cases::fd_exhaustion::FdArgs;
use crate::cases::fuzz::FuzzArgs;
use crate::cases::hostile::HostileArgs;
use crate::cases::scale::ScaleArgs;
use crate::cases::shutdown::ShutdownArgs;
use crate::cases::slowloris::SlowlorisArgs;
use crate::cases::soak::SoakArgs;
use crate::report::{Outcome, Row, print_table};
use crate::servers::Adapter;

/// Faults, hostile peers and scale against every adapter's server (the
/// release binaries): prints a table of case, adapter, outcome and figures.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Cmd,
}

/// Flags every subcommand takes.
#[derive(Debug, Args)]
struct Common {
    /// Servers to run against, comma-separated: tokio, std, async-std,
    /// smol [default: all four].
    #[arg(long, global = true, value_delimiter = ',', value_name = "LIST")]
    adapters: Vec<Adapter>,
    /// Do not run `cargo build --release` for the adapters first.
    #[arg(long, global = true)]
    no_build: bool,
    /// Where the adapter binaries are [default: $CARGO_TARGET_DIR/release,
    /// else the workspace's target/release]; implies --no-build.
    #[arg(long, global = true, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Malformed input, each on its own connection after two Submits: the
    /// acks, then a close whose logged reason names it; then 200 huge
    /// declared lengths with the server's own memory measured.
    Hostile(HostileArgs),
    /// Run the server with a low RLIMIT_NOFILE and open more connections
    /// than it allows: it logs the failing accepts, keeps running, and
    /// serves the waiting connections as soon as descriptors free up.
    FdExhaustion(FdArgs),
    /// SIGTERM the server while 50 clients pipeline: every request it read
    /// gets its ack, in order, before the connection closes (counted per
    /// connection, client side against the server's log).
    ShutdownUnderLoad(ShutdownArgs),
    /// 1000 connections each send part of a frame and stall: all are
    /// closed at the frame timeout, a normal client's round trips stay
    /// normal meanwhile.
    Slowloris(SlowlorisArgs),
    /// As many connections as the descriptor limit allows (about 19,000),
    /// each doing a Submit every second: all served; server memory per
    /// connection reported. std up to its configured maximum.
    Scale(ScaleArgs),
    /// `adapter-tokio bench` at 50x16 for minutes per server, its resident
    /// memory sampled every 10 s: zero errors, memory flat.
    Soak(SoakArgs),
    /// Every fuzz target for N executions (cargo +nightly fuzz); reports
    /// executions and any crash artifact by path.
    Fuzz(FuzzArgs),
    /// Every case above, one after another, bounded in time.
    All(AllArgs),
}

/// `all` flags.
#[derive(Debug, Args)]
struct AllArgs {
    /// Shrink each case to minutes in all: scale 2000 connections for
    /// 10 s, soak 30 s per server, fuzz 100,000 runs per target.
    #[arg(long)]
    quick: bool,
    /// Leave the fuzz targets out.
    #[arg(long)]
    no_fuzz: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(rows) => {
            print_table(&rows);
            if rows.iter().any(|r| matches!(r.outcome, Outcome::Fail(_))) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("faults: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<Vec<Row>, String> {
    harness::install_signal_handler("faults", harness::DEFAULT_GRACE)?;
    // Thousands of client sockets in this process, and the servers
    // inherit the limit.
    let nofile = harness::raise_nofile_to_hard()?;
    let adapters: Vec<Adapter> = if cli.common.adapters.is_empty() {
        Adapter::ALL.to_vec()
    } else {
        cli.common.adapters.clone()
    };
    let needs_servers = !matches!(cli.command, Cmd::Fuzz(_));
    let bins = match (&cli.common.bin_dir, needs_servers) {
        (_, false) => PathBuf::new(),
        (Some(d), true) => d.clone(),
        (None, true) if cli.common.no_build => servers::release_dir(),
        (None, true) => servers::build_release()?,
    };
    if needs_servers {
        for a in &adapters {
            let b = bins.join(a.binary());
            if !b.is_file() {
                return Err(format!(
                    "{} not found (build it: cargo build --release -p {})",
                    b.display(),
                    a.binary()
                ));
            }
        }
    }
    let rows = match cli.command {
        Cmd::Hostile(a) => cases::hostile::run(&bins, &adapters, &a),
        Cmd::FdExhaustion(a) => cases::fd_exhaustion::run(&bins, &adapters, &a),
        Cmd::ShutdownUnderLoad(a) => cases::shutdown::run(&bins, &adapters, &a),
        Cmd::Slowloris(a) => cases::slowloris::run(&bins, &adapters, &a),
        Cmd::Scale(a) => cases::scale::run(&bins, &adapters, &a, nofile),
        Cmd::Soak(a) => cases::soak::run(&bins, &adapters, &a),
        Cmd::Fuzz(a) => cases::fuzz::run(&a),
        Cmd::All(all) => {
            let mut rows = Vec::new();
            rows.extend(cases::hostile::run(
                &bins,
                &adapters,
                &HostileArgs { huge: 200 },
            ));
            rows.extend(cases::fd_exhaustion::run(
                &bins,
                &adapters,
                &FdArgs {
                    limit: 64,
                    extra: 40,
                },
            ));
            rows.extend(cases::shutdown::run(
                &bins,
                &adapters,
                &ShutdownArgs {
                    clients: 50,
                    load_ms: 1000,
                    shutdown_timeout: 10,
                },
            ));
            rows.extend(cases::slowloris::run(
                &bins,
                &adapters,
                &SlowlorisArgs { conns: 1000 },
            ));
            rows.extend(cases::scale::run(
                &bins,
                &adapters,
                &ScaleArgs {
                    conns: all.quick.then_some(2000),
                    std_conns: 1000,
                    seconds: if all.quick { 10 } else { 30 },
                },
                nofile,
            ));
            rows.extend(cases::soak::run(
                &bins,
                &adapters,
                &SoakArgs {
                    minutes: if all.quick { 0.5 } else { 10.0 },
                    conns: 50,
                    pipeline: 16,
                    leak_kib: 4096,
                },
            ));
            if !all.no_fuzz {
                rows.extend(cases::fuzz::run(&FuzzArgs {
                    runs: if all.quick { 100_000 } else { 10_000_000 },
                    max_seconds: if all.quick { 300 } else { 3600 },
                    targets: Vec::new(),
                }));
            }
            rows
        }
    };
    Ok(rows)
}
