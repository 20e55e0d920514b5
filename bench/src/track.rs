//! Loss, duplicate and order accounting for the messages of one publisher seen by one
//! subscriber (a "stream"), and the tallies that merge them.
//!
//! Owns: a bitset of sequence numbers seen per stream. It grows by doubling, so recording is
//! amortised allocation-free; memory is one bit per message of the run.
//! Must never: decide loss on its own (only the publisher knows how many it sent; see
//! [`Tally::lost`]).

use std::collections::HashMap;

/// What one arrival was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// First time this sequence number is seen.
    New,
    /// Seen before.
    Duplicate,
}

/// Counts for one stream or, merged, for one publisher or the whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    /// Distinct messages received.
    pub unique: u64,
    /// Messages received again.
    pub duplicates: u64,
    /// New messages that arrived after a higher sequence number of the same stream.
    pub reordered: u64,
}

impl Tally {
    /// Adds another tally.
    pub fn merge(&mut self, o: &Tally) {
        self.unique += o.unique;
        self.duplicates += o.duplicates;
        self.reordered += o.reordered;
    }

    /// Messages missing when `expected` distinct deliveries were due.
    pub fn lost(&self, expected: u64) -> u64 {
        expected.saturating_sub(self.unique)
    }
}

/// One stream's state.
#[derive(Debug, Default)]
pub struct Stream {
    seen: Vec<u64>,
    highest: Option<u64>,
    tally: Tally,
}

impl Stream {
    /// Records one arrival of `seq`.
    pub fn record(&mut self, seq: u64) -> Arrival {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.seen.len() {
            let len = (word + 1).next_power_of_two().max(16);
            self.seen.resize(len, 0);
        }
        if self.seen[word] & (1 << bit) != 0 {
            self.tally.duplicates += 1;
            return Arrival::Duplicate;
        }
        self.seen[word] |= 1 << bit;
        self.tally.unique += 1;
        match self.highest {
            Some(h) if h > seq => self.tally.reordered += 1,
            _ => self.highest = Some(seq),
        }
        Arrival::New
    }

    /// The counts so far.
    pub fn tally(&self) -> Tally {
        self.tally
    }
}

/// All streams one subscriber connection sees, keyed by publisher id.
#[derive(Debug, Default)]
pub struct Streams {
    by_publisher: HashMap<u32, Stream>,
}

impl Streams {
    /// Records one arrival (allocates only for a publisher's first message).
    pub fn record(&mut self, publisher: u32, seq: u64) -> Arrival {
        self.by_publisher.entry(publisher).or_default().record(seq)
    }

    /// Adds this subscriber's tallies into per-publisher totals.
    pub fn merge_into(&self, totals: &mut HashMap<u32, Tally>) {
        for (p, s) in &self.by_publisher {
            totals.entry(*p).or_default().merge(&s.tally());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream_counts_only_unique() {
        let mut s = Stream::default();
        for seq in 0..1000 {
            assert_eq!(s.record(seq), Arrival::New);
        }
        assert_eq!(
            s.tally(),
            Tally {
                unique: 1000,
                duplicates: 0,
                reordered: 0
            }
        );
        assert_eq!(s.tally().lost(1000), 0);
    }

    #[test]
    fn duplicates_reorders_and_gaps() {
        let mut s = Stream::default();
        for seq in [0, 1, 3, 2, 3, 5, 1, 9] {
            s.record(seq);
        }
        let t = s.tally();
        assert_eq!(t.unique, 6); // 0 1 2 3 5 9
        assert_eq!(t.duplicates, 2); // the second 3 and the second 1
        assert_eq!(t.reordered, 1); // 2 after 3
        assert_eq!(t.lost(10), 4); // 4 6 7 8
    }

    #[test]
    fn sparse_high_sequence_numbers_grow_the_bitset() {
        let mut s = Stream::default();
        assert_eq!(s.record(1_000_000), Arrival::New);
        assert_eq!(s.record(1_000_000), Arrival::Duplicate);
        assert_eq!(s.record(0), Arrival::New);
        assert_eq!(s.tally().reordered, 1);
    }

    #[test]
    fn streams_merge_per_publisher_across_subscribers() {
        let mut a = Streams::default();
        let mut b = Streams::default();
        a.record(0, 0);
        a.record(1, 0);
        b.record(0, 0);
        b.record(0, 0);
        let mut totals = HashMap::new();
        a.merge_into(&mut totals);
        b.merge_into(&mut totals);
        assert_eq!(totals[&0].unique, 2);
        assert_eq!(totals[&0].duplicates, 1);
        assert_eq!(totals[&1].unique, 1);
    }
}
