//! `adapter-std`: the seed's server and a submit client over blocking std
//! sockets (a thread per connection). Same flags and output as every
//! adapter's binary (`serve_main`, `submit_exit`); the load generator is
//! `adapter-tokio bench`.

use std::process::ExitCode;

use adapter_cli::{self as cli, SubmitArgs, serve_main, submit_exit};
use adapter_common::AckAll;
use adapter_std::{Client, ClientError, ClientOptions, PendingAck, Server};
use clap::Parser;

/// The length-prefixed request/ack protocol over blocking std sockets (a
/// thread per connection): a server and a one-shot client.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: cli::Command,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        // A thread per connection: 1024 of them unless --max-connections says more.
        cli::Command::Serve(args) => serve_main(
            &args,
            1024,
            |endpoint, options| Server::bind(endpoint, options, AckAll),
            Server::run,
        ),
        cli::Command::Submit(args) => submit_exit(submit(&args).map_err(|e| e.to_string())),
    }
}

/// Connects, sends the Conn (with `--conn`) and every message, and waits
/// for every ack, each bounded by `--timeout`.
fn submit(args: &SubmitArgs) -> Result<Vec<protocol::Ack>, ClientError> {
    let options = ClientOptions {
        config: args.client_config(),
        connect_timeout: Some(args.timeout()),
        tls: args.tls.client_tls(&args.endpoint),
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
