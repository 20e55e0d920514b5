//! The routing tables of one shard: its local subscription index and its replica of the
//! broker-wide route table.
//!
//! Owns: `LocalIndex` (filter → this shard's subscribers) and `RouteReplica` (filter → the
//! set of shards with at least one subscriber, plus shared groups per shard). Pure data,
//! touched only by its shard's thread.
//! Must never: do I/O or talk to other shards; the shard sends `RouteAdd`/`RouteDel` when
//! these tables say a filter appeared or vanished here.

use std::collections::HashMap;

use crate::codec::{Str, SubOptions};
use crate::topic::TopicTrie;

/// A set of shards as a bitset; the broker caps the shard count at 128.
pub type ShardSet = u128;

/// The most shards a broker may run.
pub const MAX_SHARDS: usize = 128;

/// This shard's subscribers.
#[derive(Default)]
pub struct LocalIndex {
    /// Ordinary subscriptions: filter → client id → options.
    pub direct: TopicTrie<HashMap<Str, SubOptions>>,
    /// Shared subscriptions: filter → group → members (client id, options) in join order.
    pub shared: TopicTrie<HashMap<Str, SharedGroup>>,
}

/// The local members of one shared-subscription group for one filter.
#[derive(Default)]
pub struct SharedGroup {
    pub members: Vec<(Str, SubOptions)>,
    /// Round-robin cursor.
    pub next: usize,
}

/// What a local index change means for the other shards.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteChange {
    /// The first local subscriber of this filter/group appeared: announce it.
    Added,
    /// The last one left: withdraw it.
    Removed,
    /// Nothing to tell.
    Unchanged,
}

impl LocalIndex {
    /// Adds or updates `client`'s subscription.
    pub fn add(
        &mut self,
        client: &Str,
        filter: &str,
        group: Option<&str>,
        opts: SubOptions,
    ) -> RouteChange {
        match group {
            None => {
                let subs = self.direct.entry(filter);
                let was_empty = subs.is_empty();
                subs.insert(client.clone(), opts);
                if was_empty {
                    RouteChange::Added
                } else {
                    RouteChange::Unchanged
                }
            }
            Some(group) => {
                let groups = self.shared.entry(filter);
                let g = groups.entry(Str::from(group)).or_default();
                let was_empty = g.members.is_empty();
                match g.members.iter_mut().find(|(c, _)| c == client) {
                    Some(m) => m.1 = opts,
                    None => g.members.push((client.clone(), opts)),
                }
                if was_empty {
                    RouteChange::Added
                } else {
                    RouteChange::Unchanged
                }
            }
        }
    }

    /// Removes `client`'s subscription, if it has one.
    pub fn remove(&mut self, client: &Str, filter: &str, group: Option<&str>) -> RouteChange {
        match group {
            None => {
                let Some(subs) = self.direct.get_mut(filter) else {
                    return RouteChange::Unchanged;
                };
                if subs.remove(client).is_none() {
                    return RouteChange::Unchanged;
                }
                if subs.is_empty() {
                    self.direct.remove(filter);
                    RouteChange::Removed
                } else {
                    RouteChange::Unchanged
                }
            }
            Some(group) => {
                let Some(groups) = self.shared.get_mut(filter) else {
                    return RouteChange::Unchanged;
                };
                let Some(g) = groups.get_mut(group) else {
                    return RouteChange::Unchanged;
                };
                let before = g.members.len();
                g.members.retain(|(c, _)| c != client);
                if g.members.len() == before {
                    return RouteChange::Unchanged;
                }
                if !g.members.is_empty() {
                    return RouteChange::Unchanged;
                }
                groups.remove(group);
                if groups.is_empty() {
                    self.shared.remove(filter);
                }
                RouteChange::Removed
            }
        }
    }

    /// Number of ordinary subscriptions (filter, client) on this shard.
    pub fn direct_count(&self) -> usize {
        self.direct.iter().map(|(_, v)| v.len()).sum()
    }

    /// Number of shared-group memberships on this shard.
    pub fn shared_count(&self) -> usize {
        self.shared
            .iter()
            .map(|(_, g)| g.values().map(|g| g.members.len()).sum::<usize>())
            .sum()
    }
}

/// This shard's copy of where subscribers are, broker-wide (itself included).
#[derive(Default)]
pub struct RouteReplica {
    /// Ordinary routes: filter → shards with subscribers.
    pub direct: TopicTrie<ShardSet>,
    /// Shared routes: filter → group → shards with members.
    pub shared: TopicTrie<HashMap<Str, ShardSet>>,
}

impl RouteReplica {
    /// Records that `shard` has a subscriber for `filter` (in `group`).
    pub fn add(&mut self, shard: usize, filter: &str, group: Option<&str>) {
        let bit: ShardSet = 1 << shard;
        match group {
            None => *self.direct.entry(filter) |= bit,
            Some(g) => *self.shared.entry(filter).entry(Str::from(g)).or_default() |= bit,
        }
    }

    /// Records that `shard` has no subscriber left for `filter` (in `group`).
    pub fn remove(&mut self, shard: usize, filter: &str, group: Option<&str>) {
        let bit: ShardSet = 1 << shard;
        match group {
            None => {
                if let Some(set) = self.direct.get_mut(filter) {
                    *set &= !bit;
                    if *set == 0 {
                        self.direct.remove(filter);
                    }
                }
            }
            Some(g) => {
                if let Some(groups) = self.shared.get_mut(filter) {
                    if let Some(set) = groups.get_mut(g) {
                        *set &= !bit;
                        if *set == 0 {
                            groups.remove(g);
                        }
                    }
                    if groups.is_empty() {
                        self.shared.remove(filter);
                    }
                }
            }
        }
    }

    /// Number of distinct routes (filters with a subscriber somewhere), EMQ X `routes/count`.
    pub fn route_count(&self) -> usize {
        let shared_only = self
            .shared
            .iter()
            .filter(|(f, _)| self.direct.get(f).is_none())
            .count();
        self.direct.len() + shared_only
    }
}

/// Iterates the members of a shard set, lowest first: one step per member (this runs for
/// every published message; testing all 128 bits was 7 % of a shard's CPU in QoS 1 pairs).
pub fn shards_in(mut set: ShardSet) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if set == 0 {
            return None;
        }
        let shard = set.trailing_zeros() as usize;
        set &= set - 1;
        Some(shard)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(qos: u8) -> SubOptions {
        SubOptions {
            qos: crate::codec::QoS::from_u8(qos).unwrap(),
            ..SubOptions::default()
        }
    }

    #[test]
    fn first_subscriber_announces_and_last_one_withdraws() {
        let mut index = LocalIndex::default();
        let (a, b) = (Str::from("a"), Str::from("b"));
        assert_eq!(index.add(&a, "t/#", None, opts(0)), RouteChange::Added);
        assert_eq!(index.add(&b, "t/#", None, opts(1)), RouteChange::Unchanged);
        assert_eq!(
            index.add(&a, "t/#", None, opts(2)),
            RouteChange::Unchanged,
            "re-subscribe updates"
        );
        assert_eq!(index.direct_count(), 2);
        assert_eq!(index.remove(&a, "t/#", None), RouteChange::Unchanged);
        assert_eq!(
            index.remove(&a, "t/#", None),
            RouteChange::Unchanged,
            "not subscribed any more"
        );
        assert_eq!(index.remove(&b, "t/#", None), RouteChange::Removed);
        assert!(index.direct.is_empty());
    }

    #[test]
    fn shared_groups_are_counted_per_filter_and_group() {
        let mut index = LocalIndex::default();
        let (a, b) = (Str::from("a"), Str::from("b"));
        assert_eq!(index.add(&a, "t", Some("g1"), opts(1)), RouteChange::Added);
        assert_eq!(index.add(&b, "t", Some("g2"), opts(1)), RouteChange::Added);
        assert_eq!(
            index.add(&b, "t", Some("g1"), opts(1)),
            RouteChange::Unchanged
        );
        assert_eq!(index.shared_count(), 3);
        assert_eq!(index.remove(&a, "t", Some("g1")), RouteChange::Unchanged);
        assert_eq!(index.remove(&b, "t", Some("g1")), RouteChange::Removed);
        assert_eq!(index.remove(&b, "t", Some("g2")), RouteChange::Removed);
        assert!(index.shared.is_empty());
    }

    #[test]
    fn shards_in_yields_every_member_in_order_including_the_last_shard() {
        assert_eq!(shards_in(0).count(), 0);
        let set: ShardSet = 1 | 1 << 5 | 1 << 64 | 1 << (MAX_SHARDS - 1);
        assert_eq!(
            shards_in(set).collect::<Vec<_>>(),
            vec![0, 5, 64, MAX_SHARDS - 1]
        );
        assert_eq!(shards_in(ShardSet::MAX).count(), MAX_SHARDS);
    }

    #[test]
    fn replica_keeps_a_shard_set_per_filter() {
        let mut replica = RouteReplica::default();
        replica.add(0, "a/+", None);
        replica.add(3, "a/+", None);
        replica.add(1, "a/b", Some("g"));
        let mut set = 0;
        replica.direct.for_each_match("a/b", |_, s| set |= *s);
        assert_eq!(shards_in(set).collect::<Vec<_>>(), vec![0, 3]);
        assert_eq!(replica.route_count(), 2);
        replica.remove(0, "a/+", None);
        replica.remove(3, "a/+", None);
        replica.remove(1, "a/b", Some("g"));
        assert_eq!(replica.route_count(), 0);
        assert!(replica.direct.is_empty() && replica.shared.is_empty());
    }
}
