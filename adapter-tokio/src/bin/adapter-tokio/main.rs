//! `adapter-tokio`: the protocol's server, client and load generator over tokio.

mod bench;

use std::io::Write as _;
use std::process::ExitCode;

use adapter_cli::{self as cli, serve_main, submit_main};
use adapter_tokio::{AckAll, Server, Tokio};
use bench::BenchArgs;
use clap::{Parser, Subcommand};

/// The length-prefixed request/ack protocol over tokio: a server, a
/// one-shot client and a load generator.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Common(cli::Command),
    /// Load generator: CONNS connections each keep PIPELINE requests in
    /// flight; every ack is checked (id, order, result). Prints requests,
    /// errors, req/s, MB/s and latency percentiles. Exit status: 0 clean,
    /// 1 any error ack, mismatch or connection error, 2 cannot start.
    Bench(BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, Command::Common(cli::Command::Serve(_)));
    let rt = match runtime(serving || matches!(cli.command, Command::Bench(_))) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Common(cli::Command::Serve(args)) => {
            let _inside = rt.enter();
            serve_main(
                &args,
                protocol::ServerConfig::default().max_connections,
                |endpoint, options| Server::bind(Tokio, endpoint, options, AckAll),
                |server| rt.block_on(server.run()),
            )
        }
        Command::Common(cli::Command::Submit(args)) => rt.block_on(submit_main(&Tokio, &args)),
        Command::Bench(args) => bench(&rt, &args),
    }
}

fn runtime(multi_thread: bool) -> std::io::Result<tokio::runtime::Runtime> {
    if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
}

fn bench(rt: &tokio::runtime::Runtime, args: &BenchArgs) -> ExitCode {
    let report = match rt.block_on(bench::run(args)) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    for line in &report.connection_errors {
        eprintln!("error: {line}");
    }
    let printed = if args.json {
        writeln!(std::io::stdout(), "{}", report.to_json())
    } else {
        writeln!(std::io::stdout(), "{report}")
    };
    // A closed stdout (`bench | head`) is the reader's choice, not a panic.
    if let Err(e) = printed
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("error: cannot print the report: {e}");
        return ExitCode::FAILURE;
    }
    if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
