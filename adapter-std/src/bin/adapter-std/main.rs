//! `adapter-std`: the seed's server and a submit client over blocking std
//! sockets (a thread per connection). Same flags and output as every
//! adapter's binary (`serve_main`, `submit_exit`); the load generator is
//! `adapter-tokio bench`.

use std::process::ExitCode;
use std::sync::Arc;

use adapter_common::cli::{ServeArgs, Served, SubmitArgs, serve_main, submit_exit};
use adapter_common::{AckAll, Endpoint, ServerTotals, ShutdownHandle};
use adapter_std::{Client, ClientError, ClientOptions, PendingAck, Server};
use clap::{Parser, Subcommand};

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
        // A thread per connection: 1024 of them unless --max-connections says more.
        Command::Serve(args) => serve_main(
            &args,
            1024,
            |endpoint, options| Server::bind(endpoint, options, AckAll).map(Std),
            |server| server.0.run(),
        ),
        Command::Submit(args) => submit_exit(submit(&args).map_err(|e| e.to_string())),
    }
}

/// The std server as `serve_main` sees it.
struct Std(Server<AckAll>);

impl Served for Std {
    fn local_endpoint(&self) -> &Endpoint {
        self.0.local_endpoint()
    }
    fn shutdown_handle(&self) -> ShutdownHandle {
        self.0.shutdown_handle()
    }
    fn totals(&self) -> Arc<ServerTotals> {
        self.0.totals()
    }
}

/// Connects, sends the Conn (with `--conn`) and every message, and waits
/// for every ack, each bounded by `--timeout`.
fn submit(args: &SubmitArgs) -> Result<Vec<protocol::Ack>, ClientError> {
    let options = ClientOptions {
        config: args.client_config(),
        connect_timeout: Some(args.timeout()),
        ..ClientOptions::default()
    };
    let client = Client::connect(&args.endpoint.endpoint(), options)?;
    let pending = args
        .requests()
        .map(|(kind, payload)| client.send_request(kind, payload.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let acks = pending.into_iter().map(PendingAck::wait).collect();
    // Every ack is in: how the connection then ends changes nothing.
    let _ = client.close();
    acks
}
