//! `adapter-std`: the seed's server and a submit client over blocking std
//! sockets (a thread per connection). Same flags and output as every
//! adapter's binary; the load generator is `adapter-tokio bench`.

use std::io::Write;
use std::process::ExitCode;
use std::thread;

use adapter_common::cli::{ServeArgs, SubmitArgs, ack_line, init_logging};
use adapter_std::{Client, ClientOptions, PendingAck, Server, ServerOptions};
use clap::{Parser, Subcommand};
use protocol::{AckResult, ClientConfig, RequestKind};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing::{error, info, warn};

/// The length-prefixed request/ack protocol over blocking std sockets (a
/// thread per connection): a server and a one-shot client.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the seed's server: every request is acked with result 0 (with
    /// --require-conn, a Conn is acked 0 and unlocks the Submits after it).
    /// One log line per connection, totals on shutdown; SIGINT/SIGTERM shut
    /// it down gracefully (a second one exits at once).
    Serve(ServeArgs),
    /// Connect, send each MESSAGE as a Submit (after a Conn with --conn) and
    /// print each ack in order. Exit 1 if any ack says error, 2 if the
    /// connection failed or an ack did not come.
    Submit(SubmitArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve(args) => serve(&args),
        Command::Submit(args) => submit(&args),
    }
}

fn serve(args: &ServeArgs) -> ExitCode {
    init_logging(&args.log_level);
    let endpoint = args.endpoint.endpoint();
    let options = ServerOptions::from_serve_args(args);
    let server = match Server::bind(&endpoint, options, |_| AckResult::OK) {
        Ok(s) => s,
        Err(e) => {
            error!("cannot listen on {endpoint}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut signals = match Signals::new([SIGINT, SIGTERM]) {
        Ok(s) => s,
        Err(e) => {
            error!("cannot install the SIGINT/SIGTERM handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let signal_handle = signals.handle();
    let stop = server.shutdown_handle();
    let watcher = thread::Builder::new()
        .name("adapter-std-signals".to_owned())
        .stack_size(128 * 1024)
        .spawn(move || {
            for sig in signals.forever() {
                let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                if stop.is_shutting_down() {
                    warn!("{name} again: exiting without waiting for connections");
                    std::process::exit(130);
                }
                info!("{name}: shutting down gracefully (signal again to exit at once)");
                stop.shutdown();
            }
        });
    if let Err(e) = watcher {
        error!("cannot start the signal thread: {e}");
        return ExitCode::FAILURE;
    }
    info!("listening on {}", server.local_endpoint());
    let totals = server.totals();
    let result = server.run();
    signal_handle.close();
    info!("{totals}");
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("server stopped: {e}");
            ExitCode::FAILURE
        }
    }
}

fn submit(args: &SubmitArgs) -> ExitCode {
    let endpoint = args.endpoint.endpoint();
    let options = ClientOptions {
        config: ClientConfig {
            response_timeout: Some(args.timeout()),
            ..ClientConfig::default()
        },
        connect_timeout: Some(args.timeout()),
        ..ClientOptions::default()
    };
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    };
    let client = match Client::connect(&endpoint, options) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let mut pending: Vec<PendingAck> = Vec::with_capacity(args.messages.len() + 1);
    if let Some(token) = &args.conn {
        match client.send_request(RequestKind::Conn, token.as_bytes()) {
            Ok(p) => pending.push(p),
            Err(e) => return fail(&e),
        }
    }
    match client.send_all(&args.messages) {
        Ok(p) => pending.extend(p),
        Err(e) => return fail(&e),
    }
    let mut out = std::io::stdout().lock();
    let mut refused = false;
    for p in pending {
        match p.wait() {
            Ok(ack) => {
                refused |= !ack.result.is_ok();
                let _ = writeln!(out, "{}", ack_line(&ack));
            }
            Err(e) => {
                let _ = out.flush();
                return fail(&e);
            }
        }
    }
    let _ = out.flush();
    // Every ack is in: how the connection then ends changes nothing.
    let _ = client.close();
    if refused {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
