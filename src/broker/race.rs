//! Racing two futures on one executor: the first to finish wins, the other is dropped.
//!
//! Owns: `either` and `or_timeout`, used for reads that a wake-up may interrupt and for
//! deadlines on cross-shard requests. Must never: poll a finished future again.

use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use shardmq_shards::rt;

/// Which of two raced futures finished.
pub enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Polls both futures; the first to finish wins (the left one on ties).
pub async fn either<A, B>(a: impl Future<Output = A>, b: impl Future<Output = B>) -> Either<A, B> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(v));
        }
        if let Poll::Ready(v) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(v));
        }
        Poll::Pending
    })
    .await
}

/// `fut`'s output, or `None` once `after` has passed.
pub async fn or_timeout<T>(fut: impl Future<Output = T>, after: Duration) -> Option<T> {
    match either(fut, rt::sleep(after)).await {
        Either::Left(v) => Some(v),
        Either::Right(()) => None,
    }
}
