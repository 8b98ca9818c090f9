//! `adapter-async-std serve` and `adapter-async-std submit`, on async-std
//! or smol (chosen with `ADAPTER_RUNTIME`). The commands are
//! adapter-common's (`serve_main`, `submit_main`), the same on every adapter.

use std::process::ExitCode;

use adapter_async_std::runtime::BlockOn;
use adapter_async_std::{AckAll, Server};
use adapter_cli::{self as cli, serve_main, submit_main};
use clap::{CommandFactory, FromArgMatches, Parser};

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

/// Connections served at once unless `--max-connections` says otherwise.
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// The protocol's server and client over futures-io, on async-std or smol.
#[derive(Debug, Parser)]
#[command(version, about, long_about = format!(
    "The protocol's server and client over futures-io, on async-std or smol.\n\n{RUNTIME_HELP}"
))]
struct Cli {
    #[command(subcommand)]
    command: cli::Command,
}

/// The runtime `ADAPTER_RUNTIME` names.
fn choose_runtime() -> Result<&'static str, String> {
    let var = std::env::var("ADAPTER_RUNTIME").unwrap_or_default();
    match var.trim() {
        "" if cfg!(feature = "async-std") => Ok("async-std"),
        "" | "smol" => Ok("smol"),
        "async-std" | "async_std" => Ok("async-std"),
        other => Err(format!(
            "ADAPTER_RUNTIME={other:?} is not a runtime: use async-std or smol"
        )),
    }
}

fn main() -> ExitCode {
    // Each command's --help says how the runtime is chosen, too.
    let command = Cli::command()
        .mut_subcommand("serve", |c| c.after_long_help(RUNTIME_HELP))
        .mut_subcommand("submit", |c| c.after_long_help(RUNTIME_HELP));
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match choose_runtime() {
        #[cfg(feature = "async-std")]
        Ok("async-std") => run(adapter_async_std::AsyncStd, cli.command),
        #[cfg(feature = "smol")]
        Ok("smol") => run(adapter_async_std::Smol::global(), cli.command),
        Ok(name) => {
            eprintln!(
                "error: ADAPTER_RUNTIME={name}: this binary was built without the `{name}` cargo \
                 feature (rebuild with --features {name})"
            );
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run<R: BlockOn>(rt: R, command: cli::Command) -> ExitCode {
    match command {
        cli::Command::Serve(args) => serve_main(
            &args,
            DEFAULT_MAX_CONNECTIONS,
            |endpoint, options| {
                tracing::info!("runtime={}", rt.name());
                Server::bind(rt.clone(), endpoint, options, AckAll)
            },
            |server| rt.block_on(server.run()),
        ),
        cli::Command::Submit(args) => rt.block_on(submit_main(&rt, &args)),
    }
}
