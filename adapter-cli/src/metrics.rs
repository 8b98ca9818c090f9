//! `serve --metrics-addr`: `GET /metrics` over HTTP/1.1 (tiny_http), on a
//! thread of its own, the same for every adapter whatever its runtime.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use adapter_common::ServerTotals;
use adapter_common::metrics::{CONTENT_TYPE, encode};
use tiny_http::{Header, Method, Response};

/// The metrics endpoint of a running server; [`stop`](Self::stop) ends it.
pub struct MetricsEndpoint {
    http: Arc<tiny_http::Server>,
    thread: JoinHandle<()>,
    addr: SocketAddr,
}

impl MetricsEndpoint {
    /// Listens on `addr` (HOST:PORT; port 0 picks one) and answers
    /// `GET /metrics` with the scrape of `totals`; any other path is 404,
    /// any other method 405. Makes `totals` live (see `ServerTotals::set_live`).
    pub fn start(addr: &str, totals: Arc<ServerTotals>) -> io::Result<Self> {
        let http = tiny_http::Server::http(addr)
            .map_err(|e| io::Error::other(format!("cannot serve metrics on {addr}: {e}")))?;
        let addr = http.server_addr().to_ip().ok_or_else(|| {
            io::Error::other(format!("cannot serve metrics on {addr}: not an IP address"))
        })?;
        totals.set_live();
        let http = Arc::new(http);
        let serving = Arc::clone(&http);
        let thread = thread::Builder::new()
            .name("metrics-http".to_owned())
            .spawn(move || {
                for request in serving.incoming_requests() {
                    let answer = answer(request.method(), request.url(), &totals);
                    if let Err(e) = request.respond(answer) {
                        tracing::debug!("metrics: answer not sent: {e}");
                    }
                }
            })?;
        Ok(Self { http, thread, addr })
    }

    /// Where it listens (the real port when port 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops answering and waits for its thread.
    pub fn stop(self) {
        self.http.unblock();
        let _ = self.thread.join();
    }
}

type Answer = Response<io::Cursor<Vec<u8>>>;

fn answer(method: &Method, url: &str, totals: &Arc<ServerTotals>) -> Answer {
    let path = url.split('?').next().unwrap_or_default();
    let text = |code: u16, body: &str| {
        with(
            Response::from_string(body).with_status_code(code),
            "Content-Type",
            "text/plain",
        )
    };
    match (method, path) {
        (Method::Get, "/metrics") => with(
            Response::from_string(encode(totals)),
            "Content-Type",
            CONTENT_TYPE,
        ),
        (_, "/metrics") => with(text(405, "only GET /metrics\n"), "Allow", "GET"),
        _ => text(404, "not found: the metrics are at /metrics\n"),
    }
}

/// Adds a header (fixed ASCII names and values: always valid).
fn with(response: Answer, name: &str, value: &str) -> Answer {
    match Header::from_bytes(name, value) {
        Ok(h) => response.with_header(h),
        Err(()) => response,
    }
}
