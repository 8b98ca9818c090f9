//! `adapter-tokio`: the protocol's server, client and load generator over tokio.

use std::io::Write as _;
use std::process::ExitCode;

use adapter_common::cli::{ServeArgs, SubmitArgs, ack_line, init_logging};
use adapter_tokio::bench::BenchArgs;
use adapter_tokio::{AckAll, Client, ClientError, Server, ServerOptions, ShutdownHandle};
use clap::{Parser, Subcommand};
use protocol::{ClientConfig, RequestKind};
use tokio::signal::unix::{SignalKind, signal};

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
    /// Run the seed's server: every request is acked with result 0 (with
    /// --require-conn, Submits get 1 until a Conn was acked). One log line
    /// per connection, totals on shutdown; SIGINT/SIGTERM shut down
    /// gracefully (a second one exits at once).
    Serve(ServeArgs),
    /// Send each MESSAGE as a Submit (pipelined on one connection) and
    /// print each ack in order. Exit status: 0 all acks ok, 1 some ack
    /// result was not 0, 2 connection or protocol error, or timeout.
    Submit(SubmitArgs),
    /// Load generator: CONNS connections each keep PIPELINE requests in
    /// flight; every ack is checked (id, order, result). Prints requests,
    /// errors, req/s, MB/s and latency percentiles. Exit status: 0 clean,
    /// 1 any error ack, mismatch or connection error, 2 cannot start.
    Bench(BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Submit(args) => submit(&args),
        Command::Bench(args) => bench(&args),
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

fn serve(args: &ServeArgs) -> ExitCode {
    init_logging(&args.log_level);
    let rt = match runtime(true) {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let endpoint = args.endpoint.endpoint();
        let server = match Server::bind(&endpoint, ServerOptions::from_serve_args(args), AckAll) {
            Ok(server) => server,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        // Signals are caught before "listening" is logged: a supervisor
        // that signals as soon as it sees the line gets a graceful stop.
        if let Err(e) = watch_signals(server.shutdown_handle()) {
            tracing::error!("cannot install the SIGINT/SIGTERM handlers: {e}");
            return ExitCode::FAILURE;
        }
        let totals = server.totals();
        tracing::info!("listening on {}", server.local_endpoint());
        if let Err(e) = server.run().await {
            tracing::error!("server failed: {e}");
            return ExitCode::FAILURE;
        }
        tracing::info!("{totals}");
        ExitCode::SUCCESS
    })
}

/// SIGINT or SIGTERM: graceful shutdown; a second one: exit at once.
fn watch_signals(handle: ShutdownHandle) -> std::io::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        tracing::info!("{name}: shutting down gracefully (signal again to exit at once)");
        handle.shutdown();
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        tracing::warn!("{name} again: exiting without waiting for connections");
        std::process::exit(130);
    });
    Ok(())
}

fn submit(args: &SubmitArgs) -> ExitCode {
    let rt = match runtime(false) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(submit_all(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Ok(true): every ack had result 0.
async fn submit_all(args: &SubmitArgs) -> Result<bool, String> {
    let endpoint = args.endpoint.endpoint();
    let timeout = args.timeout();
    let config = ClientConfig {
        response_timeout: Some(timeout),
        ..ClientConfig::default()
    };
    let client = tokio::time::timeout(timeout, Client::connect(&endpoint, config))
        .await
        .map_err(|_| format!("cannot connect to {endpoint}: timed out after {timeout:?}"))?
        .map_err(|e| e.to_string())?;
    let mut pending = Vec::with_capacity(args.messages.len() + 1);
    let requests = args
        .conn
        .iter()
        .map(|c| (RequestKind::Conn, c))
        .chain(args.messages.iter().map(|m| (RequestKind::Submit, m)));
    for (kind, payload) in requests {
        let ack = client
            .send(kind, bytes::Bytes::copy_from_slice(payload.as_bytes()))
            .await
            .map_err(|e| e.to_string())?;
        pending.push(ack);
    }
    let mut all_ok = true;
    let mut stdout = std::io::stdout().lock();
    for ack in pending {
        let ack = ack.await.map_err(|e: ClientError| e.to_string())?;
        all_ok &= ack.result.is_ok();
        let _ = writeln!(stdout, "{}", ack_line(&ack));
    }
    let _ = stdout.flush();
    client.close().await.map_err(|e| e.to_string())?;
    Ok(all_ok)
}

fn bench(args: &BenchArgs) -> ExitCode {
    let rt = match runtime(true) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let report = match rt.block_on(adapter_tokio::bench::run(args)) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    for line in &report.connection_errors {
        eprintln!("error: {line}");
    }
    if args.json {
        println!("{}", report.to_json());
    } else {
        println!("{report}");
    }
    if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
