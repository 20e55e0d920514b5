//! The routing tables of one shard: its local subscription index and its replica of the
//! broker-wide route table.
//!
//! Owns: `LocalIndex` (filter → this shard's subscribers) and `RouteReplica` (filter → the
//! set of shards with at least one subscriber, plus shared groups per shard), and the routing
//! decisions made from them: which shards a message goes to ([`RouteReplica::plan`]) and
//! which local clients receive it ([`LocalIndex::recipients`], [`SharedGroup::pick`]). Pure
//! data and pure functions, touched only by its shard's thread, unit-tested here.
//! Must never: do I/O or talk to other shards; the shard sends `RouteAdd`/`RouteDel` when
//! these tables say a filter appeared or vanished here.

use std::collections::HashMap;

use crate::codec::{Str, SubOptions};
use crate::config::SharedSubscriptionStrategy;
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

/// Where one message goes, as the route replica decides it (see [`RouteReplica::plan`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RoutePlan {
    /// Shards with ordinary subscribers of the topic.
    pub direct: ShardSet,
    /// One entry per shared group with members anywhere: (the shard picked to serve the
    /// group, filter, group).
    pub shared: Vec<(usize, Str, Str)>,
}

impl RoutePlan {
    /// Every shard that gets a copy.
    pub fn targets(&self) -> ShardSet {
        self.shared
            .iter()
            .fold(self.direct, |set, (s, _, _)| set | (1 << *s))
    }

    /// What `shard` is given: whether its ordinary subscribers get the message, and the
    /// shared groups (filter, group) it serves.
    pub fn for_shard(&self, shard: usize) -> (bool, Vec<(Str, Str)>) {
        let shared = self
            .shared
            .iter()
            .filter(|(s, _, _)| *s == shard)
            .map(|(_, f, g)| (f.clone(), g.clone()))
            .collect();
        (self.direct & (1 << shard) != 0, shared)
    }
}

impl RouteReplica {
    /// The plan for a message on `topic`: the shards whose ordinary subscribers match, and for
    /// each matching shared group the one shard `pick` chooses among those with members.
    pub fn plan(&self, topic: &str, mut pick: impl FnMut(ShardSet) -> Option<usize>) -> RoutePlan {
        let mut plan = RoutePlan::default();
        self.direct
            .for_each_match(topic, |_, set| plan.direct |= *set);
        self.shared.for_each_match(topic, |filter, groups| {
            for (group, set) in groups {
                if let Some(shard) = pick(*set) {
                    plan.shared.push((shard, Str::from(filter), group.clone()));
                }
            }
        });
        plan
    }
}

impl LocalIndex {
    /// This shard's recipients of a message on `topic`, into `out` (emptied first): with
    /// `to_subscribers`, every ordinary subscriber once, at the highest QoS among its matching
    /// subscriptions; then one member of each shared group in `shared` (filter, group),
    /// chosen by `strategy` among the members `online` says are connected (any member when
    /// none is). A shared pick is delivered even to a client that also subscribes ordinarily
    /// [MQTT 5.0 4.8.2], so it is not merged with those.
    #[allow(clippy::too_many_arguments)]
    pub fn recipients(
        &mut self,
        topic: &str,
        publisher: &str,
        to_subscribers: bool,
        shared: &[(Str, Str)],
        strategy: SharedSubscriptionStrategy,
        mut random: impl FnMut() -> u64,
        online: impl Fn(&Str) -> bool,
        out: &mut Vec<(Str, SubOptions)>,
    ) {
        out.clear();
        let mut matched_filters = 0;
        if to_subscribers {
            self.direct.for_each_match(topic, |_, subs| {
                matched_filters += 1;
                out.extend(subs.iter().map(|(c, o)| (c.clone(), *o)));
            });
        }
        // A client appears once per filter: with one matching filter there is nothing to
        // merge (and no client ids to compare per message).
        if matched_filters > 1 {
            out.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.qos.cmp(&a.1.qos)));
            out.dedup_by(|a, b| a.0 == b.0);
        }
        for (filter, group) in shared {
            if let Some(g) = self.shared.get_mut(filter).and_then(|gs| gs.get_mut(group)) {
                out.extend(g.pick(strategy, &mut random, publisher, topic, &online));
            }
        }
    }
}

impl SharedGroup {
    /// The member a message goes to: `strategy` names a starting member (`random` is asked
    /// only by the random strategy), and the first connected one from there is chosen (the
    /// starting one when none is connected: its session queues the message).
    pub fn pick(
        &mut self,
        strategy: SharedSubscriptionStrategy,
        random: impl FnOnce() -> u64,
        publisher: &str,
        topic: &str,
        online: impl Fn(&Str) -> bool,
    ) -> Option<(Str, SubOptions)> {
        let n = self.members.len();
        if n == 0 {
            return None;
        }
        let start = match strategy {
            SharedSubscriptionStrategy::RoundRobin => {
                self.next = (self.next + 1) % n;
                self.next
            }
            SharedSubscriptionStrategy::Random => (random() % n as u64) as usize,
            SharedSubscriptionStrategy::HashClientid => crate::home_shard(publisher, n),
            SharedSubscriptionStrategy::HashTopic => crate::home_shard(topic, n),
        };
        let chosen = (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| online(&self.members[i].0))
            .unwrap_or(start);
        Some(self.members[chosen].clone())
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

    #[test]
    fn a_plan_names_every_shard_with_subscribers_and_one_shard_per_shared_group() {
        let mut routes = RouteReplica::default();
        routes.add(0, "a/+", None);
        routes.add(2, "a/#", None);
        routes.add(3, "b/#", None);
        routes.add(1, "a/b", Some("g"));
        routes.add(3, "a/b", Some("g"));
        routes.add(2, "a/b", Some("h"));
        // The picker is given each group's shards and chooses the highest here.
        let plan = routes.plan("a/b", |set| {
            (0..MAX_SHARDS).rev().find(|s| set & (1 << s) != 0)
        });
        assert_eq!(plan.direct, 0b101);
        let mut shared = plan.shared.clone();
        shared.sort();
        assert_eq!(
            shared,
            vec![
                (2, Str::from("a/b"), Str::from("h")),
                (3, Str::from("a/b"), Str::from("g"))
            ]
        );
        assert_eq!(plan.targets(), 0b1101);
        assert_eq!(plan.for_shard(0), (true, vec![]));
        assert_eq!(
            plan.for_shard(3),
            (false, vec![(Str::from("a/b"), Str::from("g"))])
        );
        assert_eq!(plan.for_shard(1), (false, vec![]), "not picked");
        assert_eq!(routes.plan("c", |_| Some(0)), RoutePlan::default());
    }

    #[test]
    fn recipients_get_one_copy_at_their_highest_qos_and_each_group_one_online_member() {
        let mut index = LocalIndex::default();
        let (a, b, c) = (Str::from("a"), Str::from("b"), Str::from("c"));
        index.add(&a, "t/+", None, opts(0));
        index.add(&a, "t/#", None, opts(2));
        index.add(&b, "t/x", None, opts(1));
        index.add(&a, "t/x", Some("g"), opts(1));
        index.add(&c, "t/x", Some("g"), opts(0));
        let group = [(Str::from("t/x"), Str::from("g"))];
        let mut out = Vec::new();
        let strategy = SharedSubscriptionStrategy::RoundRobin;
        // c is offline: the group's copy goes to a, even though a also subscribes ordinarily.
        let online = |id: &Str| id.as_str() != "c";
        index.recipients("t/x", "p", true, &group, strategy, || 0, online, &mut out);
        let mut ordinary: Vec<_> = out[..2]
            .iter()
            .map(|(c, o)| (c.clone(), o.qos as u8))
            .collect();
        ordinary.sort();
        assert_eq!(ordinary, vec![(a.clone(), 2), (b.clone(), 1)]);
        assert_eq!(
            out[2].0, a,
            "the group's pick, kept apart from the ordinary copy"
        );
        assert_eq!(out.len(), 3);
        // Without ordinary delivery (another shard serves those), only the group's member.
        index.recipients(
            "t/x",
            "p",
            false,
            &group,
            strategy,
            || 0,
            |_| true,
            &mut out,
        );
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn shared_picks_follow_the_strategy_and_skip_offline_members() {
        let mut g = SharedGroup {
            members: ["m0", "m1", "m2"]
                .iter()
                .map(|m| (Str::from(*m), opts(1)))
                .collect(),
            next: 0,
        };
        let all = |_: &Str| true;
        let pick = |g: &mut SharedGroup, s, r: u64, online: &dyn Fn(&Str) -> bool| {
            g.pick(s, || r, "pub", "top", online).unwrap().0.to_string()
        };
        use SharedSubscriptionStrategy::*;
        let rr: Vec<_> = (0..4).map(|_| pick(&mut g, RoundRobin, 0, &all)).collect();
        assert_eq!(rr, ["m1", "m2", "m0", "m1"]);
        assert_eq!(pick(&mut g, Random, 5, &all), "m2");
        let by_pub = pick(&mut g, HashClientid, 0, &all);
        assert_eq!(
            by_pub,
            pick(&mut g, HashClientid, 9, &all),
            "stable per publisher"
        );
        // The starting member offline: the next online one after it.
        assert_eq!(pick(&mut g, Random, 1, &|m: &Str| m.as_str() != "m1"), "m2");
        // Nobody online: the starting member (its session queues the message).
        assert_eq!(pick(&mut g, Random, 1, &|_: &Str| false), "m1");
        assert!(SharedGroup::default()
            .pick(Random, || 0, "p", "t", all)
            .is_none());
    }
}
