//! A shard's spare connection buffers: a connection holds a read or write buffer only while
//! bytes are in flight, and gives it back here when it goes idle, so an idle connection
//! holds none and a busy one does not allocate per read.
//!
//! Owns: one free list per thread (each shard's thread has its own; nothing is shared).
//! Runs on: the shard threads (connection tasks). Must never: keep more than [`KEEP`]
//! buffers or a buffer larger than [`MAX_KEPT`] bytes, or hand out a buffer that is not empty.

use std::cell::RefCell;

use bytes::BytesMut;

/// Spare buffers kept per thread at most (the rest are freed).
pub const KEEP: usize = 64;
/// Buffers with more capacity than this are freed rather than kept.
pub const MAX_KEPT: usize = 128 * 1024;

/// A bounded free list of empty buffers.
#[derive(Default)]
pub struct Pool {
    spare: Vec<BytesMut>,
}

impl Pool {
    /// A spare buffer, or a new empty one (no allocation until it is written to).
    pub fn take(&mut self) -> BytesMut {
        self.spare.pop().unwrap_or_default()
    }

    /// Takes `buf`'s allocation when `buf` is empty, leaving it without one; keeps it if there
    /// is room and it is not too large. A buffer holding bytes is left alone.
    pub fn give(&mut self, buf: &mut BytesMut) {
        if !buf.is_empty() || buf.capacity() == 0 {
            return;
        }
        let spare = std::mem::take(buf);
        if spare.capacity() <= MAX_KEPT && self.spare.len() < KEEP {
            self.spare.push(spare);
        }
    }

    /// Buffers kept now.
    pub fn len(&self) -> usize {
        self.spare.len()
    }

    /// Whether no buffer is kept.
    pub fn is_empty(&self) -> bool {
        self.spare.is_empty()
    }
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

/// This thread's [`Pool::take`].
pub fn take() -> BytesMut {
    POOL.with(|p| p.borrow_mut().take())
}

/// This thread's [`Pool::give`].
pub fn give(buf: &mut BytesMut) {
    POOL.with(|p| p.borrow_mut().give(buf))
}

/// Makes sure `buf` has an allocation to write into: a spare one when it has none.
pub fn ready(buf: &mut BytesMut) {
    if buf.capacity() == 0 {
        *buf = take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_buffer_goes_back_and_comes_out_again() {
        let mut pool = Pool::default();
        let mut buf = BytesMut::with_capacity(512);
        pool.give(&mut buf);
        assert_eq!(buf.capacity(), 0, "the connection holds nothing now");
        assert_eq!(pool.len(), 1);
        let again = pool.take();
        assert!(again.capacity() >= 512 && again.is_empty());
        assert!(pool.is_empty());
        assert_eq!(
            pool.take().capacity(),
            0,
            "an empty pool makes a new buffer"
        );
    }

    #[test]
    fn a_buffer_with_bytes_stays_with_its_connection() {
        let mut pool = Pool::default();
        let mut buf = BytesMut::from(&b"half a packet"[..]);
        pool.give(&mut buf);
        assert_eq!(&buf[..], b"half a packet");
        assert!(pool.is_empty());
    }

    #[test]
    fn the_pool_is_bounded_in_count_and_size() {
        let mut pool = Pool::default();
        let mut big = BytesMut::with_capacity(MAX_KEPT + 1);
        pool.give(&mut big);
        assert_eq!(big.capacity(), 0, "taken from the connection");
        assert!(pool.is_empty(), "but freed, not kept");
        for _ in 0..KEEP + 10 {
            let mut b = BytesMut::with_capacity(64);
            pool.give(&mut b);
        }
        assert_eq!(pool.len(), KEEP);
    }

    #[test]
    fn an_unallocated_buffer_is_not_kept() {
        let mut pool = Pool::default();
        pool.give(&mut BytesMut::new());
        assert!(pool.is_empty());
    }
}
