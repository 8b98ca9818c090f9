//! TLS through an adapter's binary, the same for every adapter: `serve
//! --tls-cert --tls-key [--tls-client-ca]` against an independent TLS
//! stack (`openssl s_client`, which `.ci/run` installs when missing),
//! hostile handshakes, and the settings that must exit with status 2.
//!
//! An adapter's test file runs them all with [`tls_binary_suite!`](crate::tls_binary_suite).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use harness::pki::{SERVER_NAME, TestPki};
use harness::{Sink, Spawn, Tracked};
use protocol::{AckResult, MessageId, RequestKind};

use crate::support::{ack_frame, request_frame};

pub(crate) const WITHIN: Duration = Duration::from_secs(10);

/// An adapter's binary: its path and the environment it runs with.
#[derive(Debug, Clone, Copy)]
pub struct Binary<'a> {
    /// The executable.
    pub path: &'a str,
    /// Extra environment (e.g. `ADAPTER_RUNTIME=smol`).
    pub env: &'a [(&'a str, &'a str)],
}

/// A running `serve` (over TLS with [`start`](Self::start)) on a free
/// loopback port.
pub(crate) struct Serve {
    child: Tracked,
    pub(crate) addr: SocketAddr,
}

impl Serve {
    /// `serve` over TLS with the test server certificate, plus `extra`.
    pub(crate) fn start(bin: Binary<'_>, pki: &TestPki, extra: &[&str]) -> Self {
        Self::start_with(bin, &pki.server_cert(), &pki.server_key(), extra)
    }

    /// `serve` over TLS with this certificate and key, plus `extra`.
    fn start_with(bin: Binary<'_>, cert: &Path, key: &Path, extra: &[&str]) -> Self {
        let (cert, key) = (cert.to_string_lossy(), key.to_string_lossy());
        let mut args = vec![
            "--addr",
            "127.0.0.1:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ];
        args.extend_from_slice(extra);
        Self::spawn(bin, &args)
    }

    /// `serve ARGS` on TCP, waited for until it listens.
    pub(crate) fn spawn(bin: Binary<'_>, args: &[&str]) -> Self {
        let mut cmd = Command::new(bin.path);
        cmd.envs(bin.env.iter().copied()).arg("serve").args(args);
        let (child, line) = Spawn::server(format!("{} serve {args:?}", bin.path))
            .spawn_until(cmd, "listening on ", WITHIN)
            .unwrap_or_else(|e| panic!("{e}"));
        let at = line.find("listening on ").map_or("", |i| &line[i + 13..]);
        let addr = at.trim().parse().unwrap_or_else(|_| {
            // A Unix socket: clients name its path themselves.
            SocketAddr::from(([127, 0, 0, 1], 0))
        });
        Self { child, addr }
    }

    /// Waits until its log has `needle`.
    pub(crate) fn expect_log(&mut self, needle: &str) {
        if let Err(e) = self.child.wait_for_line(needle, WITHIN) {
            panic!("the server never logged {needle:?}: {e}");
        }
    }

    /// The first line of its log so far with `needle`.
    pub(crate) fn logged(&self, needle: &str) -> Option<String> {
        self.child.log().into_iter().find(|l| l.contains(needle))
    }
}

impl Serve {
    /// SIGTERM (SIGKILL after the grace period); its exit status.
    pub(crate) fn stop(&mut self) -> Option<std::process::ExitStatus> {
        self.child.stop()
    }

    /// SIGKILL, and waits until it is gone: no shutdown, no drain.
    pub(crate) fn kill(&mut self) {
        self.child.signal(harness::SIGKILL);
        if self.child.wait_for(WITHIN).is_none() {
            panic!("{} outlived SIGKILL by {WITHIN:?}", self.child.name());
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.child.stop();
    }
}

fn openssl() -> &'static str {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "openssl is not on PATH: the TLS interop tests need it (.ci/run installs Debian's \
         `openssl` when it is missing: apt-get install openssl)"
    );
    "openssl"
}

/// What `openssl s_client` read back after sending one Submit: the bytes,
/// at most one ack's worth, within the bound.
fn s_client_submit(addr: SocketAddr, pki: &TestPki, extra: &[&str]) -> Vec<u8> {
    let mut cmd = Command::new(openssl());
    cmd.args([
        "s_client",
        "-quiet",
        "-verify_return_error",
        "-alpn",
        "lenproto/1",
    ])
    .args([
        "-connect",
        &addr.to_string(),
        "-servername",
        SERVER_NAME,
        "-CAfile",
    ])
    .arg(pki.ca())
    .args(extra);
    let mut child = Spawn::new("openssl s_client")
        .stdin_pipe()
        .stdout(Sink::Pipe)
        .stderr(Sink::Null)
        .spawn(cmd)
        .unwrap_or_else(|e| panic!("{e}"));
    let frame = request_frame(
        RequestKind::Submit,
        &MessageId::from_counter(1),
        b"over tls",
    );
    let mut stdin = child.child_mut().stdin.take();
    if let Some(w) = stdin.as_mut() {
        // A refused client may be gone already: what it read tells.
        let _ = w.write_all(&frame).and_then(|()| w.flush());
    }
    let Some(mut out) = child.child_mut().stdout.take() else {
        panic!("s_client has no stdout pipe");
    };
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < 14 {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let _ = tx.send(got);
    });
    let got = rx.recv_timeout(WITHIN).unwrap_or_default();
    drop(stdin);
    child.stop();
    got
}

/// Runs `bin submit --addr ADDR --timeout 5 ARGS...` to its end.
fn run_submit(bin: Binary<'_>, addr: SocketAddr, args: &[&str]) -> harness::Finished {
    let mut cmd = Command::new(bin.path);
    cmd.envs(bin.env.iter().copied())
        .args(["submit", "--addr", &addr.to_string(), "--timeout", "5"])
        .args(args);
    harness::run(cmd, "submit", WITHIN).unwrap_or_else(|e| panic!("{e}"))
}

fn seed_ack() -> Vec<u8> {
    ack_frame(
        RequestKind::Submit,
        &MessageId::from_counter(1),
        AckResult::OK,
    )
    .to_vec()
}

fn pki() -> TestPki {
    TestPki::new().unwrap_or_else(|e| panic!("{e}"))
}

/// `openssl s_client` sends a raw Submit frame over TLS (ALPN lenproto/1)
/// and reads the seed's 14-byte SubmitAck.
pub fn openssl_s_client_gets_the_submit_ack(bin: Binary<'_>) {
    let pki = pki();
    let serve = Serve::start(bin, &pki, &[]);
    assert_eq!(
        s_client_submit(serve.addr, &pki, &[]),
        seed_ack(),
        "{}: the SubmitAck over TLS",
        bin.path
    );
}

/// Under `--tls-client-ca`, a client certificate from that CA is served
/// and one from another CA is refused (and logged).
pub fn mutual_tls_serves_the_ca_client_and_refuses_a_stranger(bin: Binary<'_>) {
    let pki = pki();
    let ca = pki.ca();
    let ca = ca.to_string_lossy();
    let mut serve = Serve::start(bin, &pki, &["--tls-client-ca", &ca]);
    let as_client = |cert: std::path::PathBuf, key: std::path::PathBuf| {
        let (cert, key) = (cert.to_string_lossy(), key.to_string_lossy());
        s_client_submit(serve.addr, &pki, &["-cert", &cert, "-key", &key])
    };
    let ok = as_client(pki.client_cert(), pki.client_key());
    assert_eq!(ok, seed_ack(), "{}: a client of the CA is served", bin.path);
    let refused = as_client(pki.stranger_cert(), pki.stranger_key());
    assert!(
        refused.is_empty(),
        "{}: a stranger got {refused:?}",
        bin.path
    );
    serve.expect_log("tls: ");
    let anonymous = s_client_submit(serve.addr, &pki, &[]);
    assert!(
        anonymous.is_empty(),
        "{}: a client without a certificate got {anonymous:?}",
        bin.path
    );
}

/// A plaintext client on the TLS port is closed, with a logged reason,
/// and nothing else is affected.
pub fn a_plaintext_client_on_a_tls_port_is_closed_and_logged(bin: Binary<'_>) {
    let pki = pki();
    let mut serve = Serve::start(bin, &pki, &[]);
    let mut plain = TcpStream::connect(serve.addr).unwrap_or_else(|e| panic!("connect: {e}"));
    plain
        .set_read_timeout(Some(WITHIN))
        .unwrap_or_else(|e| panic!("{e}"));
    plain
        .write_all(&request_frame(
            RequestKind::Submit,
            &MessageId::from_counter(1),
            b"plain",
        ))
        .unwrap_or_else(|e| panic!("write: {e}"));
    // What comes back before the close: the fatal TLS alert that says why
    // (a record of content type 21, level 2), never an answer.
    let mut got = Vec::new();
    let started = Instant::now();
    let end = plain.read_to_end(&mut got);
    assert!(
        started.elapsed() < WITHIN,
        "{}: the plaintext client was not closed within {WITHIN:?} ({end:?})",
        bin.path
    );
    assert!(
        got.len() == 7 && got.first() == Some(&21) && got.get(5) == Some(&2),
        "{}: a plaintext client got {got:?}, not one fatal alert",
        bin.path
    );
    serve.expect_log("tls: ");
    assert_eq!(s_client_submit(serve.addr, &pki, &[]), seed_ack());
}

/// 200 handshakes that send half a ClientHello and go silent are all
/// closed at `--handshake-timeout` while a normal client is served.
pub fn stalled_handshakes_are_closed_at_the_timeout_while_others_are_served(bin: Binary<'_>) {
    let pki = pki();
    let mut serve = Serve::start(bin, &pki, &["--handshake-timeout", "1"]);
    let half_hello = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00];
    let stalled: Vec<TcpStream> = (0..200)
        .map(|i| {
            let mut s = TcpStream::connect(serve.addr)
                .unwrap_or_else(|e| panic!("stalled handshake {i}: connect: {e}"));
            s.write_all(&half_hello)
                .unwrap_or_else(|e| panic!("stalled handshake {i}: {e}"));
            s
        })
        .collect();
    let started = Instant::now();
    assert_eq!(
        s_client_submit(serve.addr, &pki, &[]),
        seed_ack(),
        "{}: a normal client is served while 200 handshakes stall",
        bin.path
    );
    for (i, mut s) in stalled.into_iter().enumerate() {
        s.set_read_timeout(Some(WITHIN))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut buf = [0u8; 16];
        match s.read(&mut buf) {
            Ok(0) | Err(_) if started.elapsed() < WITHIN => {}
            other => panic!(
                "{}: stalled handshake {i} was not closed: {other:?}",
                bin.path
            ),
        }
    }
    serve.expect_log("handshake timeout");
}

/// `submit --tls-ca` talks to `serve --tls-cert` (and, with
/// `--tls-cert/--tls-key`, to a mutual-TLS server); without TLS, or with
/// a certificate from another CA, it gets no ack and says why.
pub fn submit_over_tls_gets_every_ack(bin: Binary<'_>) {
    let pki = pki();
    let ca = pki.ca();
    let ca = ca.to_string_lossy().into_owned();
    let submit = |addr: SocketAddr, extra: &[&str]| {
        run_submit(bin, addr, &[extra, &["one", "two"]].concat())
    };
    let plain_tls = Serve::start(bin, &pki, &[]);
    let done = submit(plain_tls.addr, &["--tls-ca", &ca]);
    assert!(
        done.status.success(),
        "{}: submit over TLS: {}",
        bin.path,
        done.stderr
    );
    assert_eq!(
        done.stdout
            .lines()
            .filter(|l| l.starts_with("SubmitAck") && l.contains("result=0"))
            .count(),
        2,
        "{}: {}",
        bin.path,
        done.stdout
    );
    let done = submit(plain_tls.addr, &[]);
    assert!(
        !done.status.success(),
        "{}: a plaintext submit to a TLS port succeeded",
        bin.path
    );
    assert!(
        done.stderr.contains("error:"),
        "{}: {}",
        bin.path,
        done.stderr
    );

    let mutual = Serve::start(bin, &pki, &["--tls-client-ca", &ca]);
    let (cert, key) = (pki.client_cert(), pki.client_key());
    let (cert, key) = (cert.to_string_lossy(), key.to_string_lossy());
    let done = submit(
        mutual.addr,
        &["--tls-ca", &ca, "--tls-cert", &cert, "--tls-key", &key],
    );
    assert!(
        done.status.success(),
        "{}: submit with mutual TLS: {}",
        bin.path,
        done.stderr
    );
    let (cert, key) = (pki.stranger_cert(), pki.stranger_key());
    let (cert, key) = (cert.to_string_lossy(), key.to_string_lossy());
    let done = submit(
        mutual.addr,
        &["--tls-ca", &ca, "--tls-cert", &cert, "--tls-key", &key],
    );
    assert!(
        !done.status.success(),
        "{}: a stranger's submit succeeded",
        bin.path
    );
    // The server's alert reached it: it is told why, not just cut.
    assert!(
        done.stderr.contains("alert"),
        "{}: the stranger was not told why: {}",
        bin.path,
        done.stderr
    );
}

/// `submit` over TLS ends its session with a close_notify before its FIN
/// (so a peer tells a clean end from a truncation by TLS alone). The
/// server here is rustls itself over a blocking socket, not one of ours.
pub fn submit_over_tls_ends_with_close_notify(bin: Binary<'_>) {
    let pki = pki();
    let tls =
        adapter_common::ServerTls::from_pem_files(&pki.server_cert(), &pki.server_key(), None)
            .unwrap_or_else(|e| panic!("{e}"));
    let config = std::sync::Arc::clone(tls.config());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let server = thread::spawn(move || -> Result<(usize, bool), String> {
        let (mut sock, _) = listener.accept().map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(WITHIN))
            .map_err(|e| e.to_string())?;
        let mut tls = rustls::ServerConnection::new(config).map_err(|e| e.to_string())?;
        let (mut plain, mut answered) = (bytes::BytesMut::new(), 0);
        loop {
            while tls.wants_write() {
                tls.write_tls(&mut sock).map_err(|e| e.to_string())?;
            }
            if tls.read_tls(&mut sock).map_err(|e| format!("read: {e}"))? == 0 {
                // The FIN: was the close_notify before it?
                return Ok((answered, false));
            }
            let state = tls.process_new_packets().map_err(|e| e.to_string())?;
            let mut chunk = vec![0; state.plaintext_bytes_to_read()];
            tls.reader()
                .read_exact(&mut chunk)
                .map_err(|e| e.to_string())?;
            plain.extend_from_slice(&chunk);
            // Each Submit gets its SubmitAck (result 0).
            while let Some(packet) =
                protocol::decode(&mut plain, 1 << 20).map_err(|e| e.to_string())?
            {
                let protocol::Packet::Submit { id, .. } = packet else {
                    return Err(format!("not a Submit: {packet:?}"));
                };
                let ack = ack_frame(RequestKind::Submit, &id, AckResult::OK);
                tls.writer().write_all(&ack).map_err(|e| e.to_string())?;
                answered += 1;
            }
            if state.peer_has_closed() {
                while tls.wants_write() {
                    tls.write_tls(&mut sock).map_err(|e| e.to_string())?;
                }
                return Ok((answered, true));
            }
        }
    });
    let ca = pki.ca();
    let ca = ca.to_string_lossy().into_owned();
    let done = run_submit(bin, addr, &["--tls-ca", &ca, "one", "two"]);
    let seen = server
        .join()
        .unwrap_or_else(|_| panic!("the rustls server panicked"));
    assert!(
        done.status.success(),
        "{}: submit: {}",
        bin.path,
        done.stderr
    );
    assert_eq!(
        seen,
        Ok((2, true)),
        "{}: (Submits answered, close_notify before the FIN)",
        bin.path
    );
}

/// A TLS client on a plain port is closed with a logged reason, and
/// plain clients are still served.
pub fn a_tls_client_on_a_plain_port_is_closed_and_logged(bin: Binary<'_>) {
    let pki = pki();
    let mut plain = Serve::spawn(bin, &["--addr", "127.0.0.1:0"]);
    let got = s_client_submit(plain.addr, &pki, &[]);
    assert!(
        got.is_empty(),
        "{}: a TLS client on a plain port got {got:?}",
        bin.path
    );
    plain.expect_log("protocol error");
    let mut client = crate::support::TestClient::connect(
        &crate::Endpoint::Tcp(plain.addr),
        "plain client after a TLS one",
    );
    client.round_trip(b"still served");
}

/// An expired certificate is served, with a warning that names it.
pub fn an_expired_certificate_is_served_with_a_warning(bin: Binary<'_>) {
    let pki = pki();
    let serve = Serve::start_with(bin, &pki.expired_cert(), &pki.expired_key(), &[]);
    assert!(
        serve.child.log_has("warning:") && serve.child.log_has("expired.pem"),
        "{}: no warning about the expired certificate: {:?}",
        bin.path,
        serve.child.log()
    );
}

/// TLS over a Unix socket: `submit --unix --tls-ca` gets its acks.
pub fn submit_over_tls_on_a_unix_socket(bin: Binary<'_>) {
    let pki = pki();
    let socket = harness::TempSocket::new("tls-unix");
    let path = socket.path().to_string_lossy().into_owned();
    let (cert, key) = (pki.server_cert(), pki.server_key());
    let (cert, key) = (cert.to_string_lossy(), key.to_string_lossy());
    let _serve = Serve::spawn(
        bin,
        &["--unix", &path, "--tls-cert", &cert, "--tls-key", &key],
    );
    let ca = pki.ca();
    let mut cmd = Command::new(bin.path);
    cmd.envs(bin.env.iter().copied())
        .args(["submit", "--unix", &path, "--timeout", "5", "--tls-ca"])
        .arg(&ca)
        .arg("over a unix socket");
    let done =
        harness::run(cmd, "submit --unix over TLS", WITHIN).unwrap_or_else(|e| panic!("{e}"));
    assert!(done.status.success(), "{}: {}", bin.path, done.stderr);
    assert!(
        done.stdout.contains("SubmitAck id=00000001 result=0"),
        "{}: {}",
        bin.path,
        done.stdout
    );
}

/// TLS files that cannot serve: status 2 and one line naming the file and
/// what is wrong with it.
pub fn tls_files_that_cannot_serve_exit_2_with_one_line(bin: Binary<'_>) {
    let pki = pki();
    let missing = pki.dir().join("missing.pem");
    let (cert, key, client_key) = (pki.server_cert(), pki.server_key(), pki.client_key());
    let cases: [(&str, Vec<&std::path::Path>, &str); 3] = [
        (
            "a missing certificate",
            vec![&missing, &key],
            "cannot read it",
        ),
        (
            "a key file as the certificate",
            vec![&key, &key],
            "no PEM certificate",
        ),
        (
            "a key that is not the certificate's",
            vec![&cert, &client_key],
            "does not match",
        ),
    ];
    for (what, files, says) in cases {
        let mut cmd = Command::new(bin.path);
        cmd.envs(bin.env.iter().copied())
            .args(["serve", "--addr", "127.0.0.1:0", "--tls-cert"])
            .arg(files[0])
            .arg("--tls-key")
            .arg(files[1]);
        let done = harness::run(cmd, what, WITHIN).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            done.status.code(),
            Some(2),
            "{}: {what}: {}",
            bin.path,
            done.stderr
        );
        let errors: Vec<&str> = done
            .stderr
            .lines()
            .filter(|l| l.contains("error"))
            .collect();
        assert!(
            errors.len() == 1 && errors[0].contains(says),
            "{}: {what}: expected one line saying {says:?}, got {:?}",
            bin.path,
            done.stderr
        );
    }
    let mut cmd = Command::new(bin.path);
    cmd.envs(bin.env.iter().copied())
        .args(["serve", "--addr", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert);
    let done = harness::run(cmd, "--tls-cert alone", WITHIN).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        done.status.code(),
        Some(2),
        "--tls-cert without --tls-key: {}",
        done.stderr
    );
    assert!(done.stderr.contains("--tls-key"), "{}", done.stderr);
}

/// One `#[test]` per TLS binary scenario for the binary `$bin` (with the
/// environment `$env`).
#[macro_export]
macro_rules! tls_binary_suite {
    ($bin:expr, $env:expr) => {
        $crate::tls_binary_suite!(@tests $bin, $env;
            openssl_s_client_gets_the_submit_ack,
            mutual_tls_serves_the_ca_client_and_refuses_a_stranger,
            a_plaintext_client_on_a_tls_port_is_closed_and_logged,
            stalled_handshakes_are_closed_at_the_timeout_while_others_are_served,
            tls_files_that_cannot_serve_exit_2_with_one_line,
            submit_over_tls_gets_every_ack,
            a_tls_client_on_a_plain_port_is_closed_and_logged,
            an_expired_certificate_is_served_with_a_warning,
            submit_over_tls_on_a_unix_socket,
            submit_over_tls_ends_with_close_notify,
        );
    };
    (@tests $bin:expr, $env:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let _turn = $crate::process::shared_turn();
                $crate::tls_cli::$name($crate::tls_cli::Binary { path: $bin, env: $env });
            }
        )*
    };
}
