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
//! The same for the sessions' message queues ([`queue_cuts`]): when they hold more than the
//! shard's share of `mqtt.queue_budget`, the largest queues are shed until the shard is back
//! under 90 % of its share.
//!
//! Must never: cut a connection or shed a queue while the total is within the share, or cut
//! any other than the largest holders.

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

/// After shedding, the queues of a shard hold at most this part of its share (so that a
/// shard at its limit does not shed on every tick).
const QUEUE_REFILL: (usize, usize) = (9, 10);

/// Which queues to shed, and how many bytes each, when `sizes` (a holder and the bytes its
/// queue holds) add up to more than `share`: the largest first, each down to what brings the
/// total under 90 % of `share` (or to nothing, then the next largest). Empty within the share.
pub fn queue_cuts<K: Clone>(share: usize, sizes: &[(K, usize)]) -> Vec<(K, usize)> {
    let total: usize = sizes.iter().map(|(_, b)| b).sum();
    if share == 0 || total <= share {
        return Vec::new();
    }
    let mut excess = total - share / QUEUE_REFILL.1 * QUEUE_REFILL.0;
    let mut by_size: Vec<&(K, usize)> = sizes.iter().filter(|(_, b)| *b > 0).collect();
    by_size.sort_by_key(|e| std::cmp::Reverse(e.1));
    let mut cuts = Vec::new();
    for (who, bytes) in by_size {
        if excess == 0 {
            break;
        }
        let cut = (*bytes).min(excess);
        excess -= cut;
        cuts.push((who.clone(), cut));
    }
    cuts
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

    #[test]
    fn queues_are_shed_largest_first_down_to_ninety_percent_and_not_within_the_share() {
        let sizes = [("a", 300), ("b", 500), ("c", 100), ("d", 0)];
        assert!(
            queue_cuts(900, &sizes).is_empty(),
            "900 is within the share"
        );
        assert!(queue_cuts(0, &sizes).is_empty(), "0: no limit");
        // 900 held, share 800: back to 720 means 180 from the largest (b).
        assert_eq!(queue_cuts(800, &sizes), vec![("b", 180)]);
        // Share 400: back to 360 means 540: all of b (500), then 40 of a.
        assert_eq!(queue_cuts(400, &sizes), vec![("b", 500), ("a", 40)]);
    }
}
