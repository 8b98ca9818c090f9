//! Configuration of servers and clients, and its one check.

use core::time::Duration;

use crate::error::{ConfigError, Setting};
use crate::wire::{ACK_FRAME_LEN, DEFAULT_MAX_FRAME_LEN, MAX_FRAME_LEN_LIMIT, REQUEST_OVERHEAD};

/// Limits and timeouts of a server: per connection, and server-wide
/// (`max_connections`, `shutdown_timeout`, which the adapters' supervisor
/// applies). Every field has a default (see [`ServerConfig::default`]);
/// [`validate`](Self::validate) before starting a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Largest `total_length` accepted. Default 8 MiB ([`DEFAULT_MAX_FRAME_LEN`]);
    /// 13 (an empty `Submit`) to [`MAX_FRAME_LEN_LIMIT`].
    pub max_frame_len: u32,
    /// Unsent output above which the connection stops taking input.
    /// Default 1 MiB. Output stays below `high_water` plus one ack
    /// (14 bytes) per request the application may still be answering
    /// (`max_pending_requests`).
    pub high_water: usize,
    /// Unsent output at or below which input resumes (at most
    /// `high_water`). Default 256 KiB.
    pub low_water: usize,
    /// Requests handed to the application and not yet answered, above which
    /// the connection stops taking input. Default 1024.
    pub max_pending_requests: usize,
    /// Close when no request arrives for this long and nothing is pending.
    /// Default `None` (off, like Redis' `timeout 0`).
    pub idle_timeout: Option<Duration>,
    /// Close when a frame has started and is not complete this long after
    /// (slowloris). Default 30 s.
    pub frame_timeout: Option<Duration>,
    /// Close when output is pending and none of it is written for this long.
    /// Default 30 s.
    pub write_stall_timeout: Option<Duration>,
    /// Answer Submits with result 1 until a `Conn` was acked with result 0.
    /// Default `false` (the seed's client never sends `Conn`).
    pub require_conn: bool,
    /// How long a finished connection whose peer may still be sending
    /// keeps reading and discarding after its FIN, so that a reset does not
    /// destroy acks the peer has not read yet (the lingering close, see
    /// [`ServerEvent::ShutdownWrite`](crate::ServerEvent::ShutdownWrite)).
    /// Default 2 s; `None` closes at once.
    pub linger: Option<Duration>,
    /// While lingering, the connection closes once the peer has sent
    /// nothing for this long. Default 250 ms.
    pub linger_quiet: Duration,
    /// Connections served at once by one server; one more is accepted and
    /// closed at once. Default 10,000.
    pub max_connections: usize,
    /// How long a graceful shutdown may take: connections still busy then
    /// are cut ([`CloseReason::ShutdownDeadline`](crate::CloseReason::ShutdownDeadline)).
    /// Default 10 s.
    pub shutdown_timeout: Duration,
    /// How long a connection that starts with a handshake (TLS, see
    /// [`ServerConnection::expect_handshake`](crate::ServerConnection::expect_handshake))
    /// may take to finish it: one that stalls is closed
    /// ([`CloseReason::HandshakeTimeout`](crate::CloseReason::HandshakeTimeout)).
    /// Default 10 s; `None` waits for ever.
    pub handshake_timeout: Option<Duration>,
    /// Every connection starts with a PROXY protocol header (version 1 or
    /// 2, as HAProxy's `send-proxy[-v2]` and cloud TCP load balancers
    /// write it): the client address it carries comes with each
    /// [`Request`](crate::Request) and in
    /// [`ServerEvent::Proxied`](crate::ServerEvent::Proxied). A connection
    /// without a valid one is closed
    /// ([`CloseReason::Proxy`](crate::CloseReason::Proxy)); one whose
    /// header (and TLS handshake) is not done within `handshake_timeout`
    /// too. Default `false`: a PROXY header is then a framing error.
    pub proxy_protocol: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            high_water: 1024 * 1024,
            low_water: 256 * 1024,
            max_pending_requests: 1024,
            idle_timeout: None,
            frame_timeout: Some(Duration::from_secs(30)),
            write_stall_timeout: Some(Duration::from_secs(30)),
            require_conn: false,
            linger: Some(Duration::from_secs(2)),
            linger_quiet: Duration::from_millis(250),
            max_connections: 10_000,
            shutdown_timeout: Duration::from_secs(10),
            handshake_timeout: Some(Duration::from_secs(10)),
            proxy_protocol: false,
        }
    }
}

/// The largest count a count setting may take.
const MAX_COUNT: u64 = u32::MAX as u64;

impl ServerConfig {
    /// Checks every setting against what the protocol can work with; the
    /// error names the first one out of range, its value and the range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        frame_limit(self.max_frame_len, REQUEST_OVERHEAD)?;
        range(Setting::HighWater, count(self.high_water), 1, MAX_COUNT)?;
        range(
            Setting::LowWater,
            count(self.low_water),
            0,
            count(self.high_water),
        )?;
        range(
            Setting::MaxPendingRequests,
            count(self.max_pending_requests),
            1,
            MAX_COUNT,
        )?;
        timeout(Setting::IdleTimeout, self.idle_timeout)?;
        timeout(Setting::FrameTimeout, self.frame_timeout)?;
        timeout(Setting::WriteStallTimeout, self.write_stall_timeout)?;
        timeout(Setting::HandshakeTimeout, self.handshake_timeout)?;
        if self.linger.is_some_and(|d| !d.is_zero()) {
            timeout(Setting::LingerQuiet, Some(self.linger_quiet))?;
        }
        range(
            Setting::MaxConnections,
            count(self.max_connections),
            1,
            MAX_COUNT,
        )?;
        Ok(())
    }
}

/// Limits and timeouts of a client connection. Every field has a default
/// (see [`ClientConfig::default`]); [`validate`](Self::validate) before
/// connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Largest frame sent or accepted. Default 8 MiB ([`DEFAULT_MAX_FRAME_LEN`]);
    /// 14 (an ack) to [`MAX_FRAME_LEN_LIMIT`].
    pub max_frame_len: u32,
    /// Requests waiting for acks, above which
    /// [`ClientConnection::submit`](crate::ClientConnection::submit) refuses. Default 4096.
    pub max_in_flight: usize,
    /// Close when the oldest request in flight has no ack this long after
    /// it was submitted. Default 30 s.
    pub response_timeout: Option<Duration>,
    /// Close when output is pending and none of it is written for this long.
    /// Default 30 s.
    pub write_stall_timeout: Option<Duration>,
    /// The first id handed out (as a number; ids are its 8 decimal digits).
    /// Default 1: the first id is `00000001`.
    pub first_id: u32,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            max_in_flight: 4096,
            response_timeout: Some(Duration::from_secs(30)),
            write_stall_timeout: Some(Duration::from_secs(30)),
            first_id: 1,
        }
    }
}

impl ClientConfig {
    /// Checks every setting; the error names the first one out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        frame_limit(self.max_frame_len, ACK_FRAME_LEN)?;
        range(
            Setting::MaxInFlight,
            count(self.max_in_flight),
            1,
            MAX_COUNT,
        )?;
        timeout(Setting::ResponseTimeout, self.response_timeout)?;
        timeout(Setting::WriteStallTimeout, self.write_stall_timeout)?;
        Ok(())
    }
}

/// A frame limit must let the smallest frame the side receives through.
fn frame_limit(max_frame_len: u32, smallest: usize) -> Result<(), ConfigError> {
    let max = MAX_FRAME_LEN_LIMIT.into();
    range(
        Setting::MaxFrameLen,
        max_frame_len.into(),
        count(smallest),
        max,
    )
}

pub(crate) fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

pub(crate) fn range(setting: Setting, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange {
            setting,
            value,
            min,
            max,
        })
    }
}

/// A timeout that is on must be at least 1 ms (0 would fire at once).
/// A duration in whole milliseconds, as settings are checked and named.
pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn timeout(setting: Setting, d: Option<Duration>) -> Result<(), ConfigError> {
    match d {
        Some(d) => range(setting, duration_ms(d), 1, u64::MAX),
        None => Ok(()),
    }
}
