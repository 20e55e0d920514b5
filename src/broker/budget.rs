//! The broker's budget for input held in packets not yet complete: a client that announces a
//! large packet and trickles it (or never finishes it) holds its read buffer meanwhile, and
//! many such clients could hold the whole machine's memory. Each shard keeps an equal share of
//! `mqtt.input_budget`; when the bytes its connections hold go over that share, the connection
//! holding the most is cut (and counted), so the cost falls on the largest holders first.
//!
//! Owns: [`InputBudget`], a pure table of the connections holding at least [`COUNTED_FROM`]
//! bytes (smaller buffers are not tracked: they are bounded by the connection cap, and
//! tracking them would cost every read), and the decision of whom to cut. Runs on one shard;
//! the connection loop reports what it holds after each read and each dispatch.
//! Must never: cut a connection while the total is within the share, or cut any other than
//! the largest holder.

use std::collections::HashMap;

/// A connection's buffer counts against the budget from this many bytes.
pub const COUNTED_FROM: usize = 64 * 1024;

/// The bytes held by the connections of one shard that hold [`COUNTED_FROM`] or more.
#[derive(Debug)]
pub struct InputBudget<T> {
    limit: usize,
    total: usize,
    /// Connection id → (bytes held, the handle used to cut it).
    holders: HashMap<u64, (usize, T)>,
}

impl<T: Clone> InputBudget<T> {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> InputBudget<T> {
        InputBudget {
            limit,
            total: 0,
            holders: HashMap::new(),
        }
    }

    /// Whether a connection holding `held` bytes, `counted` of which are on the books, must
    /// report: the caller's fast check, so that small buffers cost one comparison.
    pub fn must_report(held: usize, counted: usize) -> bool {
        held >= COUNTED_FROM || counted > 0
    }

    /// Records that connection `id` holds `held` bytes now. Returns the bytes now counted for
    /// it, and the handle of the largest holder when the total is over the limit (that
    /// holder is taken off the books: the caller cuts it).
    pub fn hold(&mut self, id: u64, held: usize, handle: &T) -> (usize, Option<T>) {
        let counted = if held >= COUNTED_FROM { held } else { 0 };
        let before = match counted {
            0 => self.holders.remove(&id).map_or(0, |(b, _)| b),
            n => self
                .holders
                .insert(id, (n, handle.clone()))
                .map_or(0, |(b, _)| b),
        };
        self.total = self.total + counted - before;
        if self.total <= self.limit {
            return (counted, None);
        }
        let largest = self
            .holders
            .iter()
            .max_by_key(|(_, (bytes, _))| *bytes)
            .map(|(id, _)| *id);
        let cut = largest
            .and_then(|id| self.holders.remove(&id))
            .map(|(bytes, h)| {
                self.total -= bytes;
                h
            });
        let counted = self.holders.get(&id).map_or(0, |(b, _)| *b);
        (counted, cut)
    }

    /// Takes connection `id` off the books (it closed).
    pub fn release(&mut self, id: u64) {
        if let Some((bytes, _)) = self.holders.remove(&id) {
            self.total -= bytes;
        }
    }

    /// Bytes counted now.
    pub fn total(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: usize = 1024;

    #[test]
    fn small_buffers_are_not_counted_and_cut_nobody() {
        let mut b = InputBudget::new(100 * K);
        for id in 0..1000 {
            assert_eq!(b.hold(id, COUNTED_FROM - 1, &id), (0, None));
        }
        assert_eq!(b.total(), 0);
        assert!(!InputBudget::<u64>::must_report(COUNTED_FROM - 1, 0));
        assert!(InputBudget::<u64>::must_report(10, 1));
    }

    #[test]
    fn over_the_limit_the_largest_holder_is_cut_and_leaves_the_books() {
        let mut b = InputBudget::new(300 * K);
        assert_eq!(b.hold(1, 100 * K, &1), (100 * K, None));
        assert_eq!(b.hold(2, 150 * K, &2), (150 * K, None));
        // 100 + 150 + 80 = 330 > 300: the largest (2) is cut, not the newcomer.
        assert_eq!(b.hold(3, 80 * K, &3), (80 * K, Some(2)));
        assert_eq!(b.total(), 180 * K);
        // The reporter itself may be the largest: it is cut and counts nothing.
        assert_eq!(b.hold(1, 250 * K, &1), (0, Some(1)));
        assert_eq!(b.total(), 80 * K);
    }

    #[test]
    fn a_buffer_that_shrinks_or_a_connection_that_closes_gives_its_bytes_back() {
        let mut b = InputBudget::new(1000 * K);
        b.hold(1, 200 * K, &1);
        b.hold(2, 300 * K, &2);
        assert_eq!(
            b.hold(1, 10, &1),
            (0, None),
            "below the threshold: off the books"
        );
        assert_eq!(b.total(), 300 * K);
        b.release(2);
        b.release(2);
        assert_eq!(b.total(), 0);
    }
}
