//! A blocking raw client: one TCP connection, Submits with the seed's id
//! counter, acks checked byte for byte.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use conformance::support::ack_frame;
use conformance::support::request_frame;
use protocol::{ACK_FRAME_LEN, AckResult, MessageId, RequestKind};

/// What one wait for an ack saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// The ack expected came.
    Ack,
    /// Nothing (or only part of it) came in time.
    Silent,
    /// The server closed the connection (EOF or reset).
    Closed,
}

/// One connection.
pub struct Conn {
    stream: TcpStream,
    next: u32,
    owed: Vec<u32>,
    buf: Vec<u8>,
}

impl Conn {
    /// Connects (TCP_NODELAY) within `within`.
    pub fn connect(addr: SocketAddr, within: Duration) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, within)?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            next: 1,
            owed: Vec::new(),
            buf: Vec::new(),
        })
    }

    /// Sends one Submit (the next id) with `payload`.
    pub fn send_submit(&mut self, payload: &[u8]) -> io::Result<()> {
        let id = MessageId::from_counter(self.next);
        self.stream
            .set_write_timeout(Some(Duration::from_secs(5)))?;
        self.stream
            .write_all(&request_frame(RequestKind::Submit, &id, payload))?;
        self.owed.push(self.next);
        self.next += 1;
        Ok(())
    }

    /// This end's address (the peer the server's log names).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// Owes the acks of `n` Submits with the next ids, sent by hand (in
    /// [`send_raw`](Self::send_raw) bytes).
    pub fn expect_acks_for(&mut self, n: u32) {
        for _ in 0..n {
            self.owed.push(self.next);
            self.next += 1;
        }
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream
            .set_write_timeout(Some(Duration::from_secs(5)))?;
        self.stream.write_all(bytes)
    }

    /// Waits up to `within` for the oldest ack owed; an ack that is not
    /// the one expected (id, kind, result 0) is an error.
    pub fn wait_ack(&mut self, within: Duration) -> Result<Wait, String> {
        let Some(&counter) = self.owed.first() else {
            return Err("no ack is owed".into());
        };
        let deadline = Instant::now() + within;
        while self.buf.len() < ACK_FRAME_LEN {
            match self.fill(deadline)? {
                Some(0) => return Ok(Wait::Closed),
                Some(_) => {}
                None => return Ok(Wait::Silent),
            }
        }
        let want = ack_frame(
            RequestKind::Submit,
            &MessageId::from_counter(counter),
            AckResult::OK,
        );
        if self.buf[..ACK_FRAME_LEN] != want[..] {
            return Err(format!(
                "expected the SubmitAck of {:08} (result 0), got {:02x?}",
                counter,
                &self.buf[..ACK_FRAME_LEN]
            ));
        }
        self.buf.drain(..ACK_FRAME_LEN);
        self.owed.remove(0);
        Ok(Wait::Ack)
    }

    /// A Submit and its ack within `within`.
    pub fn round_trip(&mut self, within: Duration) -> Result<Duration, String> {
        let t = Instant::now();
        self.send_submit(b"round trip")
            .map_err(|e| format!("send failed: {e}"))?;
        match self.wait_ack(within)? {
            Wait::Ack => Ok(t.elapsed()),
            Wait::Silent => Err(format!("no ack within {within:?}")),
            Wait::Closed => Err("the server closed the connection".into()),
        }
    }

    /// Waits up to `within` for the server to close the connection with
    /// nothing more arriving; `Ok(true)` if it did.
    pub fn wait_closed(&mut self, within: Duration) -> Result<bool, String> {
        let deadline = Instant::now() + within;
        match self.fill(deadline)? {
            Some(0) => Ok(true),
            Some(n) => Err(format!("expected a close, got {n} bytes")),
            None => Ok(false),
        }
    }

    /// One read until `deadline`: `Some(0)` closed (EOF or reset),
    /// `Some(n)` bytes, `None` nothing in time.
    fn fill(&mut self, deadline: Instant) -> Result<Option<usize>, String> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        self.stream
            .set_read_timeout(Some(left))
            .map_err(|e| format!("set_read_timeout: {e}"))?;
        let mut b = [0u8; 4096];
        loop {
            return match self.stream.read(&mut b) {
                Ok(0) => Ok(Some(0)),
                Ok(n) => {
                    self.buf.extend_from_slice(&b[..n]);
                    Ok(Some(n))
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    Ok(None)
                }
                Err(e) if is_reset(&e) => Ok(Some(0)),
                Err(e) => Err(format!("read failed: {e}")),
            };
        }
    }
}

/// True for the errors that mean "the peer reset the connection".
pub fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}

/// Median and maximum of some durations (sorted in place).
pub fn median_max(d: &mut [Duration]) -> (Duration, Duration) {
    d.sort();
    (
        d.get(d.len() / 2).copied().unwrap_or_default(),
        d.last().copied().unwrap_or_default(),
    )
}
