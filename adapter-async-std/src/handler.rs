//! The application side of a server: a request in, a result out. The same
//! shape as adapter-tokio's, so an application moves between them unchanged.

use std::future::{Future, Ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use protocol::{AckResult, Request};

/// The answer a [`Handler`] gives: now, or later through a future.
///
/// `Now` is the fast path: the connection task answers inline, with no
/// allocation. `Later` futures run on the connection's own task, all at
/// once (a slow one does not hold back the requests after it); the core
/// still sends the acks in request order.
#[derive(Debug)]
pub enum Reply<F> {
    /// The result is known already.
    Now(AckResult),
    /// The result comes when the future completes.
    Later(F),
}

/// Serves requests: a `Conn` or a `Submit` in, a result (0 ok, 1 error) out.
///
/// One handler serves every connection of a server (hence `Send + Sync`).
/// Implement it, or pass:
///
/// - a closure `Fn(&Request) -> AckResult` (answered inline: the fast path);
/// - [`AsyncFn`] around a closure `Fn(Request) -> impl Future<Output = AckResult>`
///   (for handlers that wait on something; the future runs on the
///   connection's task, on whichever runtime the server runs).
///
/// With `require_conn`, the core answers Submits with 1 until a `Conn` is
/// acked with 0; the handler decides whether a `Conn` is accepted.
pub trait Handler: Send + Sync + 'static {
    /// The future of a [`Reply::Later`] answer.
    type Future: Future<Output = AckResult> + Send + 'static;

    /// Answers one request. The payload is a slice of the connection's
    /// receive buffer: keeping it keeps that buffer alive.
    fn handle(&self, request: Request) -> Reply<Self::Future>;
}

impl<F> Handler for F
where
    F: Fn(&Request) -> AckResult + Send + Sync + 'static,
{
    type Future = Ready<AckResult>;

    #[inline]
    fn handle(&self, request: Request) -> Reply<Self::Future> {
        Reply::Now(self(&request))
    }
}

/// A handler from an async closure: `AsyncFn(|req: Request| async move { ... })`.
#[derive(Debug, Clone, Copy)]
pub struct AsyncFn<F>(pub F);

impl<F, Fut> Handler for AsyncFn<F>
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = AckResult> + Send + 'static,
{
    type Future = Fut;

    fn handle(&self, request: Request) -> Reply<Self::Future> {
        Reply::Later((self.0)(request))
    }
}

/// The seed's handler: every request is acked with result 0.
#[derive(Debug, Clone, Copy, Default)]
pub struct AckAll;

impl Handler for AckAll {
    type Future = Ready<AckResult>;

    #[inline]
    fn handle(&self, _request: Request) -> Reply<Self::Future> {
        Reply::Now(AckResult::OK)
    }
}

/// A `Later` answer in flight, tagged with the request it answers.
pub(crate) struct Answer<F> {
    pub(crate) handle: u64,
    pub(crate) fut: Pin<Box<F>>,
}

impl<F: Future<Output = AckResult>> Future for Answer<F> {
    type Output = (u64, AckResult);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let handle = self.handle;
        self.fut.as_mut().poll(cx).map(|r| (handle, r))
    }
}
