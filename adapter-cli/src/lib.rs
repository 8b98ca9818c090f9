//! The command-line surface every adapter binary shares: `serve` and
//! `submit` take exactly these flags and print exactly these lines.
//! A binary-only crate: the adapters' libraries do not depend on it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::future::Future as _;
use std::io::{self, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use clap::Args;
use protocol::{
    Ack, ClientConfig, ConfigError, DEFAULT_MAX_FRAME_LEN, RequestKind, ServerConfig, Setting,
};

use adapter_common::runtime::{Runtime, sleep_until};
use adapter_common::{
    Client, ClientError, Endpoint, Served, ServerOptions, ShutdownHandle, SocketOptions,
};
use protocol_tls::{ClientTls, ServerTls};

mod metrics;
pub use metrics::MetricsEndpoint;

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

/// The commands every adapter's binary has, with one help text each (an
/// adapter adds its own next to them with `#[command(flatten)]`).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Run the seed's server: every request is acked with result 0 (with
    /// --require-conn, Submits get 1 until a Conn was acked). One log line
    /// per connection, totals on shutdown; SIGINT/SIGTERM shut it down
    /// gracefully (a second one exits at once, status 130).
    Serve(ServeArgs),
    /// Send each MESSAGE as a Submit (after a Conn with --conn), pipelined
    /// on one connection, and print each ack in order. Exit status: 0 all
    /// acks ok, 1 some ack result was not 0, 2 connection or protocol
    /// error, or timeout.
    Submit(SubmitArgs),
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
    /// Serve TLS (ALPN lenproto/1) with this certificate chain (PEM); needs
    /// --tls-key.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Mutual TLS: require a client certificate that chains to this CA
    /// (PEM); its name (first SAN, else CN) comes with each request.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Close a TLS connection whose handshake (and, with
    /// --proxy-protocol, a connection whose PROXY header) is not done
    /// within this many seconds (0 = never).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub handshake_timeout: u64,
    /// Every connection starts with a PROXY protocol header, v1 or v2 (a
    /// load balancer's: HAProxy send-proxy-v2, Envoy, cloud TCP
    /// balancers): the client address in it is the one logged and handed
    /// to the handler. A connection without a valid header is closed.
    /// Only behind such a proxy: anyone who can connect directly can
    /// claim any address.
    #[arg(long)]
    pub proxy_protocol: bool,
    /// SO_REUSEPORT: several server processes listen on the same --addr
    /// and the kernel spreads new connections over them (start a new one,
    /// then stop the old one with SIGTERM). TCP only.
    #[arg(long, conflicts_with = "unix")]
    pub reuse_port: bool,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics (connections,
    /// requests by kind, acks by result, closes by reason, bytes, handler
    /// latency, in flight). Counters of open connections are at most
    /// 100 ms old.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,
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
            handshake_timeout: secs(self.handshake_timeout),
            proxy_protocol: self.proxy_protocol,
            ..ServerConfig::default()
        };
        exit_if_invalid(config.validate());
        ServerOptions {
            config,
            socket: SocketOptions {
                reuse_port: self.reuse_port,
                ..SocketOptions::default()
            },
            tls: self.server_tls(),
        }
    }

    /// The TLS settings the flags name, loaded: a file that cannot serve
    /// exits with status 2 and one line naming it and what is wrong.
    fn server_tls(&self) -> Option<ServerTls> {
        let (cert, key) = (self.tls_cert.as_ref()?, self.tls_key.as_ref()?);
        match ServerTls::from_pem_files(cert, key, self.tls_client_ca.as_deref()) {
            Ok(tls) => {
                for warning in tls.warnings() {
                    eprintln!("warning: {warning}");
                }
                Some(tls)
            }
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(2);
            }
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
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tls: ClientTlsArgs,
    /// The payloads, one Submit each, sent in order.
    #[arg(value_name = "MESSAGE", required = true)]
    pub messages: Vec<String>,
}

/// A client's TLS flags (`submit`, `bench`).
#[derive(Debug, Clone, Args)]
pub struct ClientTlsArgs {
    /// Speak TLS (ALPN lenproto/1), trusting the CA in this PEM file.
    #[arg(long, value_name = "PEM")]
    pub tls_ca: Option<PathBuf>,
    /// The name the server's certificate must carry. Default: the IP of
    /// --addr (with --unix: localhost).
    #[arg(long, value_name = "NAME", requires = "tls_ca")]
    pub tls_server_name: Option<String>,
    /// Mutual TLS: this client's certificate chain (PEM); needs --tls-key.
    #[arg(long = "tls-cert", value_name = "PEM", requires_all = ["tls_ca", "tls_key"])]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long = "tls-key", value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl ClientTlsArgs {
    /// The TLS settings the flags name, loaded (`None`: plain); a file
    /// that cannot serve exits with status 2 and one line naming it.
    pub fn client_tls(&self, endpoint: &EndpointArgs) -> Option<ClientTls> {
        let ca = self.tls_ca.as_ref()?;
        let name = match (&self.tls_server_name, &endpoint.unix) {
            (Some(name), _) => name.clone(),
            (None, Some(_)) => "localhost".to_owned(),
            (None, None) => endpoint.addr.ip().to_string(),
        };
        let identity = self.tls_cert.as_deref().zip(self.tls_key.as_deref());
        match ClientTls::from_pem_files(ca, &name, identity) {
            Ok(tls) => Some(tls),
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(2);
            }
        }
    }
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

/// The `serve` command of every binary: logging, the checked options
/// (status 2 on a bad flag), `bind`, SIGINT/SIGTERM (graceful, a second
/// one exits at once), the "listening on" line, `run` until the shutdown
/// ends, the totals line. Exit status 0, or 1 when the server could not
/// start or failed.
pub fn serve_main<S: Served>(
    args: &ServeArgs,
    default_max_connections: usize,
    bind: impl FnOnce(&Endpoint, ServerOptions) -> io::Result<S>,
    run: impl FnOnce(S) -> io::Result<()>,
) -> ExitCode {
    init_logging(&args.log_level);
    let options = args.server_options(default_max_connections);
    let endpoint = args.endpoint.endpoint();
    let server = match bind(&endpoint, options) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot listen on {endpoint}: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Signals are caught before "listening" is logged: a supervisor that
    // signals as soon as it sees the line gets a graceful stop.
    let signals = match watch_signals(server.shutdown_handle()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot install the SIGINT/SIGTERM handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let totals = server.totals();
    let metrics = match args.metrics_addr.as_deref() {
        None => None,
        Some(addr) => match MetricsEndpoint::start(addr, Arc::clone(&totals)) {
            Ok(m) => {
                tracing::info!("metrics on http://{}/metrics", m.local_addr());
                Some(m)
            }
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::FAILURE;
            }
        },
    };
    tracing::info!("listening on {}", server.local_endpoint());
    let result = run(server);
    signals.close();
    if let Some(m) = metrics {
        m.stop();
    }
    tracing::info!("{totals}");
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("server stopped: {e}");
            ExitCode::FAILURE
        }
    }
}

/// SIGINT or SIGTERM on a thread of its own: the first starts the
/// graceful shutdown, a second exits at once (status 130).
pub fn watch_signals(stop: ShutdownHandle) -> io::Result<signal_hook::iterator::Handle> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let handle = signals.handle();
    std::thread::Builder::new()
        .name("signals".to_owned())
        .stack_size(128 * 1024)
        .spawn(move || {
            for sig in signals.forever() {
                let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                if stop.is_shutting_down() {
                    tracing::warn!("{name} again: exiting without waiting for connections");
                    std::process::exit(130);
                }
                tracing::info!("{name}: shutting down gracefully (signal again to exit at once)");
                stop.shutdown();
            }
        })?;
    Ok(handle)
}

/// The `submit` command of the async binaries: connect, send the Conn (if
/// any) and every message pipelined, print each ack in order, close.
/// Exit status 0 when every ack is ok, 1 when some result was not 0, 2 on
/// a connection or protocol error or a timeout.
pub async fn submit_main<R: Runtime>(rt: &R, args: &SubmitArgs) -> ExitCode {
    let run = async {
        let endpoint = args.endpoint.endpoint();
        let tls = args.tls.client_tls(&args.endpoint);
        let client = Client::connect_tls(
            rt,
            &endpoint,
            args.client_config(),
            &SocketOptions::default(),
            tls.as_ref(),
        )
        .await?;
        let mut pending = Vec::with_capacity(args.messages.len() + 1);
        for (kind, payload) in args.requests() {
            pending.push(client.send(kind, payload.as_bytes()).await?);
        }
        let mut acks = Vec::with_capacity(pending.len());
        for p in pending {
            acks.push(p.await?);
        }
        client.close().await?;
        Ok::<_, ClientError>(acks)
    };
    let timeout = args.timeout() * 2;
    let outcome = std::pin::pin!(run);
    let mut nap = std::pin::pin!(sleep_until(rt, std::time::Instant::now() + timeout));
    let mut outcome = outcome;
    let result = std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = outcome.as_mut().poll(cx) {
            return Poll::Ready(r.map_err(|e| e.to_string()));
        }
        nap.as_mut()
            .poll(cx)
            .map(|()| Err(format!("no answer within {timeout:?}")))
    })
    .await;
    submit_exit(result)
}

impl SubmitArgs {
    /// The requests to send, in order: the Conn (with `--conn`), then a
    /// Submit per message.
    pub fn requests(&self) -> impl Iterator<Item = (RequestKind, &str)> {
        self.conn
            .iter()
            .map(|c| (RequestKind::Conn, c.as_str()))
            .chain(
                self.messages
                    .iter()
                    .map(|m| (RequestKind::Submit, m.as_str())),
            )
    }
}

/// Prints each ack of `submit` and gives its exit status (see
/// [`submit_main`]); an error is printed on stderr.
pub fn submit_exit(acks: Result<Vec<Ack>, String>) -> ExitCode {
    match acks {
        Ok(acks) => {
            let mut stdout = std::io::stdout().lock();
            for ack in &acks {
                let _ = writeln!(stdout, "{}", ack_line(ack));
            }
            let _ = stdout.flush();
            if acks.iter().all(|a| a.result.is_ok()) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
