//! Racing two futures on one executor: the first to finish wins, the other is dropped.
//!
//! Owns: `either` and `or_timeout`, used for reads that a wake-up may interrupt and for
//! deadlines on cross-shard requests. Must never: poll a finished future again.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use shardmq_shards::rt;

/// Which of two raced futures finished.
pub enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Polls both futures; the first to finish wins (the left one on ties).
pub fn either<A: Future, B: Future>(a: A, b: B) -> Race<A, B> {
    Race { a, b }
}

pin_project_lite::pin_project! {
    /// The future [`either`] returns: the two futures side by side, nothing more (an
    /// `async fn` would hold each of them twice, as its argument and as its pinned local,
    /// and every idle connection waits in one of these).
    pub struct Race<A, B> {
        #[pin]
        a: A,
        #[pin]
        b: B,
    }
}

impl<A: Future, B: Future> Future for Race<A, B> {
    type Output = Either<A::Output, B::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.a.poll(cx) {
            return Poll::Ready(Either::Left(v));
        }
        if let Poll::Ready(v) = this.b.poll(cx) {
            return Poll::Ready(Either::Right(v));
        }
        Poll::Pending
    }
}

/// `fut`'s output, or `None` once `after` has passed.
pub async fn or_timeout<T>(fut: impl Future<Output = T>, after: Duration) -> Option<T> {
    match either(fut, rt::sleep(after)).await {
        Either::Left(v) => Some(v),
        Either::Right(()) => None,
    }
}
