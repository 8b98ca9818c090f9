//! What a scenario expects of the server, read through a [`TestClient`]:
//! acks, runs of acks, bytes, a close, silence. Each fails with what was
//! expected and what came instead.

use std::io::{ErrorKind, Read};
use std::time::{Duration, Instant};

use bytes::Buf;
use protocol::{ACK_FRAME_LEN, AckResult, IdGenerator, MessageId, RequestKind};

use super::PROMPT;
use super::client::{Answer, ReadEnd, TestClient};
use super::frames::{ack_frame, hex_head, increment_digits};

/// How the server ended a connection, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// A read returned 0: the server sent FIN.
    Eof,
    /// A read failed with a reset (the server closed with unread data, or aborted).
    Reset,
}

impl TestClient {
    /// Reads the next ack and checks its kind, id and result.
    pub fn expect_ack(&mut self, kind: RequestKind, id: MessageId, result: AckResult) {
        let want = Answer { kind, id, result };
        let n = self.acks_read + 1;
        let got = self.read_answer(PROMPT, &want);
        assert_eq!(
            got, want,
            "{}: ack #{n} on this connection: expected {want}, got {got}",
            self.name
        );
    }

    /// Reads one SubmitAck per id, in order, each with `result`.
    pub fn expect_submit_acks(&mut self, ids: &[MessageId], result: AckResult) {
        for id in ids {
            self.expect_ack(RequestKind::Submit, *id, result);
        }
    }

    /// Sends a Submit and waits for its ok ack; returns the round-trip time.
    pub fn round_trip(&mut self, payload: &[u8]) -> Duration {
        let t = Instant::now();
        let id = self.submit(payload);
        self.expect_ack(RequestKind::Submit, id, AckResult::OK);
        t.elapsed()
    }

    /// Like [`round_trip`](Self::round_trip) but returns what went wrong
    /// instead of panicking (for probing a server that may close us).
    pub fn try_round_trip(&mut self, payload: &[u8], within: Duration) -> Result<Duration, String> {
        let t = Instant::now();
        let (id, f) = self.submit_frame(payload);
        self.try_send(&f).map_err(|e| format!("send failed: {e}"))?;
        match self.try_read_answer(t + within) {
            Ok(a) if a.kind == RequestKind::Submit && a.id == id && a.result.is_ok() => {
                Ok(t.elapsed())
            }
            Ok(a) => Err(format!(
                "expected SubmitAck for id {id} with result 0, got {a}"
            )),
            Err(end) => Err(format!("the connection {end}")),
        }
    }

    /// Reads exactly `want.len()` bytes and compares them with `want`.
    pub fn expect_bytes(&mut self, want: &[u8], within: Duration) {
        let deadline = Instant::now() + within;
        while self.recv.len() < want.len() {
            if let Err(end) = self.fill(deadline) {
                panic!(
                    "{}: expected the {} bytes {} within {within:?}, but the connection {end} after {} bytes: {}",
                    self.name,
                    want.len(),
                    hex_head(want),
                    self.recv.len(),
                    hex_head(&self.recv)
                );
            }
        }
        let got = self.recv.split_to(want.len());
        assert_eq!(
            &got[..],
            want,
            "{}: expected the bytes {}, got {}",
            self.name,
            hex_head(want),
            hex_head(&got)
        );
    }

    /// Reads `n` SubmitAcks for the ids `first`, `first + 1`, ... (by the
    /// 8-digit counter), all with result 0, comparing whole frames: the fast
    /// path for long pipelines.
    pub fn expect_submit_ack_run(&mut self, first: u32, n: u64, each_within: Duration) {
        let mut want = ack_frame(
            RequestKind::Submit,
            &MessageId::from_counter(first),
            AckResult::OK,
        );
        for i in 0..n {
            while self.recv.len() < ACK_FRAME_LEN {
                if let Err(end) = self.fill(Instant::now() + each_within) {
                    panic!(
                        "{}: expected {n} SubmitAcks, got {i}, then the connection {end} for {each_within:?}{}",
                        self.name,
                        self.partial_note()
                    );
                }
            }
            self.take_run_ack(&mut want, i + 1);
        }
    }

    /// Takes the whole ack at the head of the buffer, which must be `want`
    /// (the `nth` of a run), and moves `want` on to the next id.
    fn take_run_ack(&mut self, want: &mut [u8; ACK_FRAME_LEN], nth: u64) {
        if self.recv[..ACK_FRAME_LEN] != *want {
            let id = MessageId(want[5..13].try_into().unwrap_or_default());
            // Decode it to say what it is.
            let got = self.read_answer(PROMPT, &"an ack");
            panic!(
                "{}: ack #{nth} of the run: expected SubmitAck for id {id} with result 0 (ok), got {got}",
                self.name
            );
        }
        self.recv.advance(ACK_FRAME_LEN);
        self.acks_read += 1;
        increment_digits(&mut want[5..13]);
    }

    /// Reads SubmitAcks for the ids `first`, `first + 1`, ... (each with
    /// result 0) while the load is on: until `done()` is true and `sent()`
    /// acks came. Returns how many came and the longest wait for bytes
    /// while acks were owed; panics if one wait exceeds `each_within`.
    pub fn read_ack_run_while_loaded(
        &mut self,
        first: u32,
        sent: impl Fn() -> u64,
        done: impl Fn() -> bool,
        each_within: Duration,
    ) -> (u64, Duration) {
        let mut want = ack_frame(
            RequestKind::Submit,
            &MessageId::from_counter(first),
            AckResult::OK,
        );
        let mut n = 0u64;
        let mut longest = Duration::ZERO;
        let mut owed_since: Option<Instant> = None;
        loop {
            while self.recv.len() >= ACK_FRAME_LEN {
                n += 1;
                self.take_run_ack(&mut want, n);
            }
            // Read `done` before `sent`: once done, `sent` is final.
            let finished = done();
            let owed = sent().saturating_sub(n);
            if finished && owed == 0 {
                return (n, longest);
            }
            let now = Instant::now();
            if owed == 0 {
                owed_since = None;
            } else {
                let since = *owed_since.get_or_insert(now);
                longest = longest.max(now - since);
                if now - since > each_within {
                    panic!(
                        "{}: {owed} acks owed and no byte for {:?} (after {n} acks)",
                        self.name,
                        now - since
                    );
                }
            }
            match self.fill(now + Duration::from_millis(50)) {
                Ok(_) => owed_since = None,
                Err(ReadEnd::TimedOut) => {}
                Err(end) => panic!(
                    "{}: expected acks while loading the server; after {n} acks the connection {end}",
                    self.name
                ),
            }
        }
    }

    /// Reads SubmitAcks for the ids `first`, `first + 1`, ... (each with
    /// result 0) until the server closes the connection; at most `max` of
    /// them. Returns how many came and how the connection ended. For a
    /// connection the server cuts: what came must be a prefix, in order.
    pub fn read_ack_run_until_closed(
        &mut self,
        first: u32,
        max: u64,
        within: Duration,
    ) -> (u64, Closed) {
        let deadline = Instant::now() + within;
        let mut counter = first;
        let mut n = 0u64;
        loop {
            match self.try_read_answer(deadline) {
                Ok(got) => {
                    let id = MessageId::from_counter(counter);
                    let want = Answer {
                        kind: RequestKind::Submit,
                        id,
                        result: AckResult::OK,
                    };
                    assert!(
                        n < max,
                        "{}: {max} Submits were sent, then came one ack more: {got}",
                        self.name
                    );
                    assert_eq!(
                        got,
                        want,
                        "{}: ack #{} of the run: expected {want}, got {got}",
                        self.name,
                        n + 1
                    );
                    n += 1;
                    counter = (counter + 1) % IdGenerator::MODULUS;
                }
                Err(ReadEnd::Eof) => return (n, Closed::Eof),
                Err(ReadEnd::Reset(_)) => return (n, Closed::Reset),
                Err(ReadEnd::TimedOut) => panic!(
                    "{}: expected acks then the server closing the connection within {within:?}; \
                     it was still open then, after {n} acks{}",
                    self.name,
                    self.partial_note()
                ),
                Err(end) => panic!(
                    "{}: expected acks then the server closing the connection; after {n} acks \
                     the connection {end}{}",
                    self.name,
                    self.partial_note()
                ),
            }
        }
    }

    /// Waits until the server closes the connection, with nothing more
    /// arriving first; panics if data comes or it stays open past `within`.
    pub fn expect_closed(&mut self, within: Duration) -> Closed {
        match self.wait_closed(within) {
            Ok(c) => c,
            Err(msg) => panic!("{msg}"),
        }
    }

    /// [`expect_closed`](Self::expect_closed), returning the failure.
    pub fn wait_closed(&mut self, within: Duration) -> Result<Closed, String> {
        if !self.recv.is_empty() {
            return Err(format!(
                "{}: expected the server to close the connection, but {} more bytes had come: {}",
                self.name,
                self.recv.len(),
                hex_head(&self.recv)
            ));
        }
        match self.fill(Instant::now() + within) {
            Ok(n) => Err(format!(
                "{}: expected the server to close the connection, got {n} more bytes: {}",
                self.name,
                hex_head(&self.recv)
            )),
            Err(ReadEnd::Eof) => Ok(Closed::Eof),
            Err(ReadEnd::Reset(_)) => Ok(Closed::Reset),
            Err(ReadEnd::TimedOut) => Err(format!(
                "{}: expected the server to close the connection within {within:?}, it stayed open",
                self.name
            )),
            Err(ReadEnd::Failed(e)) => Err(format!(
                "{}: expected the server to close the connection, the read failed: {e}",
                self.name
            )),
        }
    }

    /// Checks that nothing arrives and the connection stays open for `d`.
    pub fn expect_silence(&mut self, d: Duration) {
        if !self.recv.is_empty() {
            panic!(
                "{}: expected nothing more from the server, but {} bytes had come: {}",
                self.name,
                self.recv.len(),
                hex_head(&self.recv)
            );
        }
        match self.fill(Instant::now() + d) {
            Err(ReadEnd::TimedOut) => {}
            Ok(n) => panic!(
                "{}: expected nothing from the server for {d:?}, got {n} bytes: {}",
                self.name,
                hex_head(&self.recv)
            ),
            Err(end) => panic!(
                "{}: expected the connection to stay open and silent for {d:?}, but it {end}",
                self.name
            ),
        }
    }

    /// Checks, without waiting, that the connection is open and nothing
    /// has arrived.
    pub fn expect_open_now(&mut self) {
        let result = self.stream.set_nonblocking(true).and_then(|()| {
            let mut b = [0u8; 64];
            let r = self.stream.read(&mut b);
            self.stream.set_nonblocking(false)?;
            Ok(r)
        });
        match result {
            Ok(Err(e)) if e.kind() == ErrorKind::WouldBlock => {}
            Ok(Ok(0)) => panic!(
                "{}: expected the connection still open, it was closed (EOF)",
                self.name
            ),
            Ok(Ok(n)) => panic!(
                "{}: expected nothing from the server yet, got {n} bytes",
                self.name
            ),
            Ok(Err(e)) => panic!(
                "{}: expected the connection still open, the read failed: {e}",
                self.name
            ),
            Err(e) => panic!("{}: cannot probe the socket: {e}", self.name),
        }
    }
}
