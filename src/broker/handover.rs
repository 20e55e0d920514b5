//! Connections answered before they are handed over. A clean start has no session to present,
//! so the shard that accepted it writes its CONNACK and only then hands the connection to the
//! client id's home shard. The client may act on that CONNACK (ask the API about itself,
//! connect again with its id) before the home shard has the connection; this module keeps the
//! home shard's view causal anyway:
//!
//! - the accepting shard counts each such hand-over before it writes the CONNACK
//!   ([`Handovers::start`]);
//! - whoever acts for a client afterwards (a shard reading a CONNECT, the management thread
//!   asking a question) first takes a [`Mark`] of the counts towards the home shard;
//! - the home shard handles that CONNECT or question only once it has taken over every
//!   hand-over the mark counts ([`Landed::reached`]).
//!
//! A mark never counts a hand-over started after it, and a hand-over's own CONNECT was read
//! before its count started, so no two of them wait for each other. Each accepting shard's
//! hand-overs to one home shard travel in order on one mesh channel and land in that order.
//!
//! Owns: the node's hand-over counts (atomics written by the accepting shards, read by any
//! thread) and one home shard's record of what landed (pure, unit-tested here).
//! Runs on: the shard threads and the management thread. Must never: be touched on the
//! message path, or count a hand-over that is then not sent.

use std::sync::atomic::{AtomicU64, Ordering};

/// Hand-overs started, per (home shard, accepting shard).
#[derive(Debug)]
pub struct Handovers {
    shards: usize,
    /// `[to * shards + from]`: hand-overs `from` started towards `to`.
    started: Box<[AtomicU64]>,
}

impl Handovers {
    pub fn new(shards: usize) -> Handovers {
        Handovers {
            shards,
            started: (0..shards * shards).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Shard `from` is about to answer the CONNACK of a connection it then hands to `to`.
    pub fn start(&self, from: usize, to: usize) {
        self.started[to * self.shards + from].fetch_add(1, Ordering::SeqCst);
    }

    /// The hand-overs to `to` started so far.
    pub fn mark(&self, to: usize) -> Mark {
        let row = &self.started[to * self.shards..(to + 1) * self.shards];
        Mark(row.iter().map(|c| c.load(Ordering::SeqCst)).collect())
    }
}

/// Hand-overs started towards one shard as of some moment, per accepting shard. The empty
/// mark waits for nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mark(Box<[u64]>);

impl Mark {
    /// A mark that waits for nothing (questions with no client behind them).
    pub fn none() -> Mark {
        Mark::default()
    }
}

/// What one home shard has taken over, per accepting shard.
#[derive(Debug)]
pub struct Landed(Vec<u64>);

impl Landed {
    pub fn new(shards: usize) -> Landed {
        Landed(vec![0; shards])
    }

    /// A hand-over from `from` was taken over (served or refused).
    pub fn land(&mut self, from: usize) {
        self.0[from] += 1;
    }

    /// Whether every hand-over `mark` counts has landed.
    pub fn reached(&self, mark: &Mark) -> bool {
        mark.0.iter().zip(&self.0).all(|(want, got)| got >= want)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_waits_for_the_hand_overs_started_before_it_and_no_later_ones() {
        let h = Handovers::new(3);
        let mut landed = Landed::new(3);
        assert!(landed.reached(&h.mark(2)), "nothing started");
        h.start(0, 2);
        h.start(1, 2);
        h.start(0, 1); // towards another shard: not in shard 2's marks
        let mark = h.mark(2);
        h.start(1, 2); // after the mark
        assert!(!landed.reached(&mark));
        landed.land(0);
        assert!(
            !landed.reached(&mark),
            "shard 1's first one is still on its way"
        );
        landed.land(1);
        assert!(
            landed.reached(&mark),
            "the later one from shard 1 is not waited for"
        );
        assert!(!landed.reached(&h.mark(2)), "a new mark counts it");
        landed.land(1);
        assert!(landed.reached(&h.mark(2)));
    }

    #[test]
    fn a_hand_over_waits_only_for_those_of_its_shard_started_before_it() {
        // Shard 0 reads a CONNECT, marks, counts it, answers it and hands it to shard 1:
        // its mark counts what shard 0 started before, not itself.
        let h = Handovers::new(2);
        let mut landed = Landed::new(2);
        let first = h.mark(1);
        h.start(0, 1);
        let second = h.mark(1);
        h.start(0, 1);
        assert!(landed.reached(&first));
        assert!(!landed.reached(&second), "the second lands after the first");
        landed.land(0);
        assert!(landed.reached(&second));
    }

    #[test]
    fn the_empty_mark_waits_for_nothing() {
        let h = Handovers::new(2);
        h.start(1, 0);
        assert!(Landed::new(2).reached(&Mark::none()));
        assert_eq!(Mark::none(), Mark::default());
    }
}
