//! What the connection task keeps of a handler's `Later` answers (the
//! handler types themselves are `adapter_common::handler`'s).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use protocol::AckResult;

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
