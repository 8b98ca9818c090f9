//! `adapter-async-std serve` and `adapter-async-std submit`, on async-std
//! or smol (chosen with `ADAPTER_RUNTIME`).

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use adapter_async_std::runtime::Runtime;
use adapter_async_std::{
    AckAll, Client, ClientError, PendingAck, Server, ServerOptions, ShutdownHandle,
};
use adapter_common::ServerTotals;
use adapter_common::cli::{ServeArgs, SubmitArgs, ack_line, init_logging};
use async_signal::{Signal, Signals};
use clap::{Parser, Subcommand};
use futures_lite::{StreamExt, future};
use protocol::{AckResult, ClientConfig, RequestKind};
use tracing::{error, info, warn};

const RUNTIME_HELP: &str = "\
Runtime: set ADAPTER_RUNTIME=async-std or ADAPTER_RUNTIME=smol (default: \
async-std when built with it, else smol). A runtime this binary was built \
without (cargo features `async-std`, `smol`) is refused with exit code 2. \
Worker threads (default: one per core): ASYNC_STD_THREAD_COUNT=N on \
async-std, SMOL_THREADS=N on smol (0: the main thread runs every task). \
Each connection runs on one worker for its whole life, the least loaded \
when it was accepted; ADAPTER_SCHEDULING=shared shares one work-stealing \
executor between the workers instead (better tail latency with many \
connections on busy cores, half the speed on a lone connection).";

/// The protocol's server and client over futures-io, on async-std or smol.
#[derive(Debug, Parser)]
#[command(version, about, long_about = format!(
    "The protocol's server and client over futures-io, on async-std or smol.\n\n{RUNTIME_HELP}"
))]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the seed's server: every request is acked with result 0 (with
    /// --require-conn, Submits are refused until a Conn).
    #[command(long_about = format!(
        "Run the seed's server: every request is acked with result 0 (with --require-conn, \
         Submits are refused until a Conn). SIGINT/SIGTERM shut it down gracefully; a second \
         signal cuts the connections at once.\n\n{RUNTIME_HELP}"
    ))]
    Serve(ServeArgs),
    /// Send each MESSAGE as a Submit and print each ack, in order (exit 1
    /// if any ack is not ok, 2 on a connection or protocol error).
    #[command(long_about = format!(
        "Send each MESSAGE as a Submit (after a Conn with --conn) and print each ack, in \
         order. Exit code 1 if any ack's result is not 0, 2 on a connection or protocol \
         error or a timeout.\n\n{RUNTIME_HELP}"
    ))]
    Submit(SubmitArgs),
}

/// The runtime `ADAPTER_RUNTIME` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    AsyncStd,
    Smol,
}

fn choose_runtime() -> Result<Choice, String> {
    let var = std::env::var("ADAPTER_RUNTIME").unwrap_or_default();
    let choice = match var.trim() {
        "" if cfg!(feature = "async-std") => Choice::AsyncStd,
        "" => Choice::Smol,
        "async-std" | "async_std" => Choice::AsyncStd,
        "smol" => Choice::Smol,
        other => {
            return Err(format!(
                "ADAPTER_RUNTIME={other:?} is not a runtime: use async-std or smol"
            ));
        }
    };
    let built = match choice {
        Choice::AsyncStd => cfg!(feature = "async-std"),
        Choice::Smol => cfg!(feature = "smol"),
    };
    if built {
        Ok(choice)
    } else {
        let name = if choice == Choice::Smol {
            "smol"
        } else {
            "async-std"
        };
        Err(format!(
            "ADAPTER_RUNTIME={name}: this binary was built without the `{name}` cargo feature \
             (rebuild with --features {name})"
        ))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let choice = match choose_runtime() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match choice {
        #[cfg(feature = "async-std")]
        Choice::AsyncStd => run(adapter_async_std::runtime::AsyncStd, cli.command),
        #[cfg(feature = "smol")]
        Choice::Smol => run(adapter_async_std::runtime::Smol::global(), cli.command),
        #[allow(unreachable_patterns)]
        _ => ExitCode::from(2),
    }
}

fn run<R: Runtime>(rt: R, command: Command) -> ExitCode {
    match command {
        Command::Serve(args) => serve(rt, args),
        Command::Submit(args) => submit(rt, args),
    }
}

fn serve<R: Runtime>(rt: R, args: ServeArgs) -> ExitCode {
    init_logging(&args.log_level);
    // Signals first: a SIGTERM right after "listening on" must shut down gracefully.
    let signals = match Signals::new([Signal::Term, Signal::Int]) {
        Ok(s) => s,
        Err(e) => {
            error!("cannot install signal handlers: {e}");
            return ExitCode::from(2);
        }
    };
    let endpoint = args.endpoint.endpoint();
    let opts = ServerOptions {
        config: args.server_config(),
        socket: args.socket_options(),
        max_connections: args
            .max_connections
            .unwrap_or(adapter_async_std::DEFAULT_MAX_CONNECTIONS),
        shutdown_timeout: args.shutdown_timeout(),
    };
    let server = match Server::bind(rt.clone(), &endpoint, opts, AckAll) {
        Ok(s) => s,
        Err(e) => {
            error!("cannot listen on {endpoint}: {e}");
            return ExitCode::from(2);
        }
    };
    info!(
        "listening on {} runtime={}",
        server.local_endpoint(),
        rt.name()
    );
    let totals = server.totals();
    let stop = server.shutdown_handle();
    rt.spawn(watch_signals(signals, stop, args.shutdown_timeout));
    let result = rt.block_on(server.run());
    summary(&totals);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("server stopped: {e}");
            ExitCode::from(2)
        }
    }
}

async fn watch_signals(mut signals: Signals, stop: ShutdownHandle, timeout: u64) {
    // Act first, log second: a log line can fail (a closed stderr makes
    // tracing-subscriber's fallback eprintln! panic), the shutdown must not.
    if let Some(Ok(sig)) = signals.next().await {
        stop.shutdown();
        info!("received {sig:?}: shutting down gracefully (deadline {timeout}s)");
    }
    if let Some(Ok(sig)) = signals.next().await {
        stop.abort();
        warn!("received {sig:?} again: cutting every connection now");
    }
}

fn summary(totals: &ServerTotals) {
    info!("{totals}");
}

fn submit<R: Runtime>(rt: R, args: SubmitArgs) -> ExitCode {
    init_logging("warn");
    let endpoint = args.endpoint.endpoint();
    let timeout = args.timeout();
    let config = ClientConfig {
        response_timeout: Some(timeout),
        write_stall_timeout: Some(timeout),
        ..ClientConfig::default()
    };
    let outcome: Result<bool, String> = rt.block_on(async {
        let connect = Client::connect(&rt, &endpoint, config);
        let give_up = async {
            adapter_async_std::runtime::sleep_until(&rt, Instant::now() + timeout).await;
            Err(ClientError::Connect {
                endpoint: endpoint.clone(),
                source: std::sync::Arc::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection within {timeout:?}"),
                )),
            })
        };
        let client = future::or(connect, give_up)
            .await
            .map_err(|e| e.to_string())?;
        let failed = |e: ClientError| format!("{endpoint}: {e}");
        // Pipeline: queue everything, then read the acks in order.
        let mut pending: Vec<PendingAck> = Vec::with_capacity(args.messages.len() + 1);
        if let Some(token) = &args.conn {
            pending.push(
                client
                    .send(RequestKind::Conn, token.as_bytes())
                    .await
                    .map_err(failed)?,
            );
        }
        for msg in &args.messages {
            pending.push(
                client
                    .send(RequestKind::Submit, msg.as_bytes())
                    .await
                    .map_err(failed)?,
            );
        }
        let mut all_ok = true;
        let mut out = std::io::stdout().lock();
        for p in pending {
            let ack = p.await.map_err(failed)?;
            all_ok &= ack.result == AckResult::OK;
            let _ = writeln!(out, "{}", ack_line(&ack));
        }
        let _ = out.flush();
        client.close().await.map_err(failed)?;
        Ok(all_ok)
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
