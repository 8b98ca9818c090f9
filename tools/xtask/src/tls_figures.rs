//! `cargo xtask tls-figures`: every adapter over TLS against itself in
//! plain TCP, in one run on this machine. Three figures:
//!
//! - req/s and server CPU per request at 1x1, 50x1 and 50x16 (32 B),
//!   plain and TLS of one adapter back to back in each run, so their
//!   ratio is taken within a run;
//! - new connections per second, each doing one Submit (`bench --churn`:
//!   over TLS a full handshake each), and server CPU per connection;
//! - resident memory per idle connection at 1,000 connections, each
//!   after its handshake and one Submit.
//!
//! The load is `adapter-tokio bench` (with `--tls-ca` for TLS); the
//! certificates are made at run time; every server is started on a free
//! loopback port and stopped by its PID.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use bytes::BytesMut;
use harness::pki::{SERVER_NAME, TestPki};
use protocol::{ACK_FRAME_LEN, MessageId, RequestKind};
use protocol_tls::ClientTls;
use rustls::pki_types::ServerName;

use crate::ab::{self, Side};
use crate::bench_report::{self, Progress};
use crate::model::{Point, Sample, Server, Transport};
use crate::report::{fmt_duration, fmt_rps, fmt_us};
use crate::servers::{self, Endpoint, Tools};
use crate::{FiguresArgs, Result, memory, procfs};

/// Plain TCP, or TLS over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    Tls,
}

impl Mode {
    const BOTH: [Mode; 2] = [Mode::Plain, Mode::Tls];

    fn label(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Tls => "TLS",
        }
    }
}

/// The points of the throughput figure.
const POINTS: [(u32, u32); 3] = [(1, 1), (50, 1), (50, 16)];
/// Connecting tasks of the handshake figure.
const CHURN_TASKS: u32 = 8;
/// Idle connections of the memory figure.
const IDLE: usize = 1000;
/// Connections opened (and used once) before the memory baseline.
const WARM: usize = 10;

/// The TLS files and the arguments that use them.
struct Certs {
    _pki: TestPki,
    serve: Vec<String>,
    bench: Vec<String>,
    client: ClientTls,
}

impl Certs {
    fn new() -> Result<Self> {
        let pki = TestPki::new()?;
        let path = |p: std::path::PathBuf| p.display().to_string();
        let serve = vec![
            "--tls-cert".into(),
            path(pki.server_cert()),
            "--tls-key".into(),
            path(pki.server_key()),
        ];
        let bench = vec![
            "--tls-ca".into(),
            path(pki.ca()),
            "--tls-server-name".into(),
            SERVER_NAME.into(),
        ];
        let client = ClientTls::from_pem_files(&pki.ca(), SERVER_NAME, None)?;
        Ok(Self {
            _pki: pki,
            serve,
            bench,
            client,
        })
    }

    fn serve_args(&self, mode: Mode) -> &[String] {
        if mode == Mode::Tls { &self.serve } else { &[] }
    }

    fn bench_args(&self, mode: Mode) -> &[String] {
        if mode == Mode::Tls { &self.bench } else { &[] }
    }
}

pub fn run(args: &FiguresArgs) -> Result<()> {
    let runs = args.runs.max(1);
    let duration = args.duration.max(1);
    let (_tmp, tools) = ab::setup(args.no_build, "xtask-tls")?;
    let fd_limit = harness::raise_nofile_to_hard()?;
    if !memory::fits(IDLE + WARM, fd_limit) {
        return Err(
            format!("{IDLE} idle connections need an open-file limit above {fd_limit}").into(),
        );
    }
    let certs = Certs::new()?;
    let adapters = Server::ADAPTERS;
    let n_load = ab::items(runs, &POINTS) + adapters.len() * 2;
    let load_secs = (duration + 1) as f64;
    let mem_secs = 4.0;
    let mut progress = Progress::new(
        n_load + adapters.len() * 2,
        n_load as f64 * load_secs + (adapters.len() * 2) as f64 * mem_secs,
    );
    eprintln!(
        "xtask: {} adapters x plain/TLS: {runs} run(s) of {} points, handshakes, memory at \
         {IDLE} connections: about {}",
        adapters.len(),
        POINTS.len(),
        fmt_duration(progress.planned_secs() as u64)
    );
    let mut seq = 0;
    let sides = [
        Side {
            label: Mode::Plain.label(),
            serve: certs.serve_args(Mode::Plain),
            bench: certs.bench_args(Mode::Plain),
        },
        Side {
            label: Mode::Tls.label(),
            serve: certs.serve_args(Mode::Tls),
            bench: certs.bench_args(Mode::Tls),
        },
    ];
    let load = ab::measure(
        &tools,
        &POINTS,
        &sides,
        runs,
        duration,
        &mut progress,
        &mut seq,
    );
    let mut churn: Vec<[Option<Sample>; 2]> = vec![[None, None]; adapters.len()];
    let churn_point = Point {
        transport: Transport::Tcp,
        payload: 32,
        conns: CHURN_TASKS,
        pipeline: 1,
    };
    for (ai, &server) in adapters.iter().enumerate() {
        for (mi, mode) in Mode::BOTH.into_iter().enumerate() {
            seq += 1;
            progress.begin(&format!("{server} {} new connections", mode.label()));
            let extra = ["--churn".to_string()];
            let r = measure(
                &tools,
                &certs,
                server,
                mode,
                churn_point,
                duration,
                &extra,
                seq,
            );
            churn[ai][mi] = ab::report(&r, "connections/s");
            progress.end(load_secs);
        }
    }
    let mut idle: Vec<[Option<f64>; 2]> = vec![[None, None]; adapters.len()];
    for (ai, &server) in adapters.iter().enumerate() {
        for (mi, mode) in Mode::BOTH.into_iter().enumerate() {
            seq += 1;
            progress.begin(&format!(
                "{server} {} {IDLE} idle connections",
                mode.label()
            ));
            let r = idle_kib_per_conn(&tools, &certs, server, mode, seq);
            match &r {
                Ok(kib) => eprintln!("{kib:.1} KiB per connection"),
                Err(e) => eprintln!("failed: {e}"),
            }
            idle[ai][mi] = r.ok();
            progress.end(mem_secs);
        }
    }
    println!(
        "# TLS figures\n\n`cargo xtask tls-figures --runs {runs} --duration {duration}` at {} on \
         {} (Linux {}, {} CPUs).",
        bench_report::git_commit(&tools.workspace),
        procfs::cpu_model(),
        procfs::kernel_release(),
        thread::available_parallelism().map_or(0, |n| n.get()),
    );
    print!("{}", render(runs, duration, &sides, &load, &churn, &idle));
    Ok(())
}

/// One load run against a fresh server (bench_report's, with the TLS
/// flags of `mode` and `extra` bench flags): with `--churn` the rate is
/// of connections, one Submit each.
#[allow(clippy::too_many_arguments)]
fn measure(
    tools: &Tools,
    certs: &Certs,
    server: Server,
    mode: Mode,
    point: Point,
    duration: u64,
    extra: &[String],
    seq: usize,
) -> Result<Sample> {
    let bench: Vec<String> = certs
        .bench_args(mode)
        .iter()
        .chain(extra)
        .cloned()
        .collect();
    let serve = certs.serve_args(mode);
    bench_report::measure_adapter_with(tools, point, server, duration, seq, serve, &bench)
}

/// Resident memory the server adds per idle connection: RSS after
/// [`WARM`] connections, then after [`IDLE`] more, each after its
/// handshake (under TLS) and one Submit acked.
fn idle_kib_per_conn(
    tools: &Tools,
    certs: &Certs,
    server: Server,
    mode: Mode,
    seq: usize,
) -> Result<f64> {
    let serve = certs.serve_args(mode).to_vec();
    let max = Some(memory::MAX_CONNECTIONS);
    let running = servers::start_with(tools, server, Transport::Tcp, max, seq, &serve)?;
    let pid = running.proc.pid();
    let Endpoint::Tcp(port) = running.endpoint else {
        return Err("the memory figure runs over TCP".into());
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let tls = (mode == Mode::Tls).then(|| Arc::clone(certs.client.config()));
    let mut held = Vec::with_capacity(IDLE + WARM);
    let mut open = |n: usize| -> Result<()> {
        for i in 0..n {
            let c = Idle::open(addr, tls.as_ref(), i as u32 + 1)
                .map_err(|e| format!("connection {} of {n}: {e}", i + 1))?;
            held.push(c);
        }
        Ok(())
    };
    open(WARM)?;
    thread::sleep(Duration::from_millis(500));
    let before = procfs::vmrss_kib(pid)?;
    open(IDLE)?;
    // Let per-connection setup (a thread, a task, buffers) finish.
    thread::sleep(Duration::from_secs(1));
    let after = procfs::vmrss_kib(pid)?;
    drop(held);
    running.stop();
    Ok(after.saturating_sub(before) as f64 / IDLE as f64)
}

/// A client connection kept open, idle after one Submit and its ack.
enum Idle {
    Plain(#[allow(dead_code)] TcpStream),
    Tls(#[allow(dead_code)] Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Idle {
    fn open(
        addr: SocketAddr,
        tls: Option<&Arc<rustls::ClientConfig>>,
        counter: u32,
    ) -> Result<Self> {
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        tcp.set_nodelay(true)?;
        let mut frame = BytesMut::new();
        let id = MessageId::from_counter(counter);
        protocol::encode_request(RequestKind::Submit, &id, b"x", 1 << 20, &mut frame)?;
        let mut ack = [0u8; ACK_FRAME_LEN];
        Ok(match tls {
            None => {
                let mut s = tcp;
                s.write_all(&frame)?;
                s.read_exact(&mut ack)?;
                Idle::Plain(s)
            }
            Some(config) => {
                let name = ServerName::try_from(SERVER_NAME)?;
                let conn = rustls::ClientConnection::new(Arc::clone(config), name)?;
                let mut s = rustls::StreamOwned::new(conn, tcp);
                s.write_all(&frame)?;
                s.flush()?;
                s.read_exact(&mut ack)?;
                Idle::Tls(Box::new(s))
            }
        })
    }
}

/// The figures as markdown tables.
fn render(
    runs: usize,
    duration: u64,
    sides: &[Side<'_>; 2],
    load: &ab::Pairs,
    churn: &[[Option<Sample>; 2]],
    idle: &[[Option<f64>; 2]],
) -> String {
    let mut out = String::new();
    let adapters = Server::ADAPTERS;
    let cell = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("failed".into(), f);
    out += &format!(
        "\n## TLS against plain TCP\n\nMedians of {runs} run(s) of {duration} s, 32 B \
         payloads, loaded by `adapter-tokio bench` on the same machine; TLS / plain is the \
         median of the ratios within each run. CPU is the server's (user + system) per \
         request.\n\n"
    );
    out += &ab::render(&POINTS, sides, load);
    out += &format!(
        "\n## New connections per second\n\n`bench --churn --conns {CHURN_TASKS}`: each \
         connection sends one Submit, waits for its ack and closes; over TLS each is a full \
         handshake. One run of {duration} s.\n\n"
    );
    out += "| adapter | plain conn/s | TLS conn/s | plain CPU/conn | TLS CPU/conn |\n";
    out += "|---|---:|---:|---:|---:|\n";
    for (ai, server) in adapters.iter().enumerate() {
        let [plain, tls] = &churn[ai];
        out += &format!(
            "| {server} | {} | {} | {} | {} |\n",
            cell(plain.as_ref().map(|r| r.rps), &fmt_rps),
            cell(tls.as_ref().map(|r| r.rps), &fmt_rps),
            cell(plain.as_ref().and_then(|r| r.cpu_us_per_req), &fmt_us),
            cell(tls.as_ref().and_then(|r| r.cpu_us_per_req), &fmt_us),
        );
    }
    out += &format!(
        "\n## Memory per idle connection\n\nServer RSS added per connection at {IDLE} \
         connections, each idle after its handshake and one acked Submit.\n\n"
    );
    out += "| adapter | plain KiB/conn | TLS KiB/conn |\n|---|---:|---:|\n";
    for (ai, server) in adapters.iter().enumerate() {
        let [plain, tls] = idle[ai];
        let kib = |k: f64| format!("{k:.1}");
        out += &format!(
            "| {server} | {} | {} |\n",
            cell(plain, &kib),
            cell(tls, &kib)
        );
    }
    out
}
