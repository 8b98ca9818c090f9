//! The command-line surface every adapter binary shares: `serve` and
//! `submit` take exactly these flags and print exactly these lines.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use protocol::{Ack, ClientConfig, ConfigError, DEFAULT_MAX_FRAME_LEN, ServerConfig, Setting};

use crate::net::{Endpoint, SocketOptions};
use crate::server::ServerOptions;

/// `--addr` / `--unix`: where to listen or connect.
#[derive(Debug, Clone, Args)]
pub struct EndpointArgs {
    /// TCP address to listen on or connect to.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8888")]
    pub addr: std::net::SocketAddr,
    /// Use this Unix domain socket path instead of TCP.
    #[arg(long, value_name = "PATH")]
    pub unix: Option<PathBuf>,
}

impl EndpointArgs {
    /// The endpoint the flags name: `--unix` wins over `--addr`.
    pub fn endpoint(&self) -> Endpoint {
        match &self.unix {
            Some(p) => Endpoint::Unix(p.clone()),
            None => Endpoint::Tcp(self.addr),
        }
    }
}

/// `serve`: run the seed's server (every Submit acked with result 0).
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub endpoint: EndpointArgs,
    /// Connections served at once; one more is accepted and closed at once,
    /// with a rate-limited log line. Default: 10000 on tokio and
    /// async-std/smol, 1024 on std (a thread each).
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Largest frame accepted (its total_length, header included); a longer
    /// one closes the connection before anything is allocated for it.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_FRAME_LEN)]
    pub max_frame_len: u32,
    /// Close a connection that sends no request for this many seconds
    /// (0 = never).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub idle_timeout: u64,
    /// Close a connection that starts a frame and does not finish it within
    /// this many seconds (slowloris; 0 = never).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub frame_timeout: u64,
    /// Close a connection whose pending output makes no progress for this
    /// many seconds (a peer that does not read; 0 = never).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub write_stall_timeout: u64,
    /// Answer Submits with result 1 until the client sent a Conn (which is
    /// acked with result 0).
    #[arg(long)]
    pub require_conn: bool,
    /// On SIGINT/SIGTERM: stop accepting, answer what was received, and
    /// close every connection within this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub shutdown_timeout: u64,
    /// Log level: error, warn, info (a line per connection), debug (a line
    /// per request), trace; or a tracing filter such as `adapter_tokio=debug`.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub log_level: String,
}

fn secs(n: u64) -> Option<Duration> {
    (n > 0).then(|| Duration::from_secs(n))
}

impl ServeArgs {
    /// The server's options the flags describe, checked: a value out of
    /// range exits with status 2 and one line naming the flag, the value
    /// and the allowed range. `default_max_connections` is the adapter's.
    pub fn server_options(&self, default_max_connections: usize) -> ServerOptions {
        let config = ServerConfig {
            max_frame_len: self.max_frame_len,
            idle_timeout: secs(self.idle_timeout),
            frame_timeout: secs(self.frame_timeout),
            write_stall_timeout: secs(self.write_stall_timeout),
            require_conn: self.require_conn,
            max_connections: self.max_connections.unwrap_or(default_max_connections),
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout),
            ..ServerConfig::default()
        };
        exit_if_invalid(config.validate());
        ServerOptions {
            config,
            socket: SocketOptions::default(),
        }
    }
}

/// Exits with status 2 and one line on stderr when a configuration from
/// the flags is out of range, e.g.
/// `error: --max-frame-len 0 is out of range 13..=2147483647 (bytes)`.
pub fn exit_if_invalid(checked: Result<(), ConfigError>) {
    if let Err(e) = checked {
        eprintln!("error: {}", flag_message(&e));
        std::process::exit(2);
    }
}

/// The error in the command line's words: the flag, the value as typed
/// (seconds for timeouts), the allowed range.
pub fn flag_message(e: &ConfigError) -> String {
    let ConfigError::OutOfRange {
        setting,
        value,
        min,
        max,
    } = e;
    let flag = setting.name().replace('_', "-");
    let in_secs = setting.unit() == " ms";
    let shown = |v: u64| if in_secs { v / 1000 } else { v };
    let unit = match setting {
        Setting::MaxFrameLen => " (bytes)",
        _ if in_secs => " (seconds)",
        _ => "",
    };
    format!(
        "--{flag} {} is out of range {}..={}{unit}",
        shown(*value),
        shown(*min),
        shown(*max)
    )
}

/// `submit`: send each message as a Submit and print each ack.
#[derive(Debug, Clone, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub endpoint: EndpointArgs,
    /// Send a Conn with this payload (e.g. a token) before the Submits.
    #[arg(long, value_name = "PAYLOAD")]
    pub conn: Option<String>,
    /// Give up on an ack after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub timeout: u64,
    /// The payloads, one Submit each, sent in order.
    #[arg(value_name = "MESSAGE", required = true)]
    pub messages: Vec<String>,
}

impl SubmitArgs {
    /// The response timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout.max(1))
    }

    /// The client's configuration the flags describe.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            response_timeout: Some(self.timeout()),
            ..ClientConfig::default()
        }
    }
}

/// The line `submit` prints for an ack, e.g.
/// `SubmitAck id=00000001 result=0 (ok) rtt=85µs`.
pub fn ack_line(ack: &Ack) -> String {
    format!(
        "{} id={} result={} rtt={:?}",
        ack.kind.ack_command().name(),
        ack.id,
        ack.result,
        ack.rtt
    )
}

/// Starts logging to stderr at `level` (a level name or a tracing filter).
pub fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A closed stderr must not turn a log line into a panic in
        // whatever task logged it (a signal task that dies ignores SIGTERM).
        .log_internal_errors(false)
        .with_writer(std::io::stderr)
        .try_init();
}
