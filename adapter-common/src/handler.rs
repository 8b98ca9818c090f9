//! The application side of a server: a request in, a result out. One
//! handler type for every async adapter (tokio, async-std, smol), so an
//! application moves between them unchanged; nothing here names a runtime.

use std::future::{Future, Ready};

use protocol::{AckResult, Request};

/// The answer a [`Handler`] gives: now, or later through a future.
///
/// `Now` is the fast path: the connection task answers inline, with no
/// allocation and no task switch. `Later` futures run on the connection's
/// own task, all at once (a slow one does not hold back the requests after
/// it); the core still sends the acks in request order.
#[derive(Debug)]
pub enum Reply<F> {
    /// The result is known already.
    Now(AckResult),
    /// The result comes when the future completes.
    Later(F),
}

/// Serves requests: a `Conn` or a `Submit` in, a result (0 ok, 1 error) out.
///
/// One handler serves every connection of a server (it is shared, hence
/// `Send + Sync`). Implement it, or pass:
///
/// - a closure `Fn(&Request) -> AckResult` (answered inline: the fast path);
/// - [`AsyncFn`] around a closure `Fn(Request) -> impl Future<Output = AckResult>`
///   (for handlers that wait on something).
///
/// ```
/// use adapter_common::handler::{AsyncFn, Handler};
/// use protocol::{AckResult, Request};
///
/// // Refuse empty payloads, at once.
/// let sync = |req: &Request| if req.payload.is_empty() { AckResult::ERROR } else { AckResult::OK };
///
/// // Wait for something first.
/// let slow = AsyncFn(|req: Request| async move {
///     let _ = std::future::ready(()).await; // wait for something
///     if req.payload.is_empty() { AckResult::ERROR } else { AckResult::OK }
/// });
/// # fn is_handler<H: Handler>(_: &H) {}
/// # is_handler(&sync);
/// # is_handler(&slow);
/// ```
///
/// With `require_conn`, the core answers Submits with 1 until a `Conn` is
/// acked with 0; the handler decides whether a `Conn` (its payload: a
/// token, a client name) is accepted.
pub trait Handler: Send + Sync + 'static {
    /// The future of a [`Reply::Later`] answer.
    type Future: Future<Output = AckResult> + Send + 'static;

    /// Answers one request. The request's payload is a slice of the
    /// connection's receive buffer: keeping it keeps that buffer alive.
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
