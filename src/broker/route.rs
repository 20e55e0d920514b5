//! One shard's route table: for every filter with a subscriber anywhere, the shards that
//! have ordinary subscribers, the shared groups with members anywhere (and their shards),
//! and this shard's own subscribers and group members. One trie, one entry per filter: the
//! broker-wide replica and the local index are the same table.
//!
//! Owns: the table and the routing decisions made from it: which shards a message goes to
//! ([`RouteTable::plan`]) and which local clients receive it ([`RouteTable::recipients`],
//! [`SharedGroup::pick`]). Pure data and pure functions, touched only by its shard's thread,
//! unit-tested here.
//! Must never: do I/O or talk to other shards; the shard sends `RouteAdd`/`RouteDel` when a
//! change here says a filter appeared or vanished on it ([`RouteChange`]).

use std::collections::HashMap;

use crate::codec::{Str, SubOptions};
use crate::config::SharedSubscriptionStrategy;
use crate::topic::TopicTrie;

/// A set of shards as a bitset; the broker caps the shard count at 128.
pub type ShardSet = u128;

/// The most shards a broker may run.
pub const MAX_SHARDS: usize = 128;

/// Everything known of one filter.
#[derive(Default)]
pub struct FilterRoutes {
    /// Shards with ordinary subscribers of the filter (this one when `local` is not empty).
    pub shards: ShardSet,
    /// This shard's ordinary subscribers: client id → options.
    pub local: HashMap<Str, SubOptions>,
    /// Shared groups with members anywhere, by share name.
    pub groups: HashMap<Str, SharedGroup>,
}

impl FilterRoutes {
    fn is_empty(&self) -> bool {
        self.shards == 0 && self.local.is_empty() && self.groups.is_empty()
    }
}

/// One shared-subscription group of one filter.
#[derive(Default)]
pub struct SharedGroup {
    /// Shards with members (this one when `members` is not empty).
    pub shards: ShardSet,
    /// This shard's members (client id, options) in join order.
    pub members: Vec<(Str, SubOptions)>,
    /// Round-robin cursor.
    pub next: usize,
}

/// What a change to this shard's subscribers means for the other shards.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteChange {
    /// The first local subscriber of this filter/group appeared: announce it.
    Added,
    /// The last one left: withdraw it.
    Removed,
    /// Nothing to tell.
    Unchanged,
}

/// The route table of shard `me`.
pub struct RouteTable {
    me: usize,
    filters: TopicTrie<FilterRoutes>,
}

impl RouteTable {
    /// An empty table for shard `me`.
    pub fn new(me: usize) -> RouteTable {
        RouteTable {
            me,
            filters: TopicTrie::default(),
        }
    }

    /// Whether `client` has an ordinary subscription to exactly `filter` here.
    pub fn subscribed(&self, client: &str, filter: &str) -> bool {
        self.filters
            .get(filter)
            .is_some_and(|f| f.local.contains_key(client))
    }

    /// Whether one of `client`'s ordinary subscriptions here other than `except` matches
    /// `topic`.
    pub fn matches_other<T>(&self, client: &str, topic: &str, except: &[(Str, T)]) -> bool {
        let mut found = false;
        self.filters.for_each_match(topic, |filter, routes| {
            found |=
                routes.local.contains_key(client) && !except.iter().any(|(f, _)| &**f == filter);
        });
        found
    }

    /// Adds or updates `client`'s subscription here.
    pub fn subscribe(
        &mut self,
        client: &Str,
        filter: &str,
        group: Option<&str>,
        opts: SubOptions,
    ) -> RouteChange {
        let bit: ShardSet = 1 << self.me;
        let entry = self.filters.entry(filter);
        let (members_were_empty, set) = match group {
            None => {
                let was = entry.local.is_empty();
                entry.local.insert(client.clone(), opts);
                (was, &mut entry.shards)
            }
            Some(group) => {
                let g = entry.groups.entry(Str::from(group)).or_default();
                let was = g.members.is_empty();
                match g.members.iter_mut().find(|(c, _)| c == client) {
                    Some(m) => m.1 = opts,
                    None => g.members.push((client.clone(), opts)),
                }
                (was, &mut g.shards)
            }
        };
        *set |= bit;
        if members_were_empty {
            RouteChange::Added
        } else {
            RouteChange::Unchanged
        }
    }

    /// Removes `client`'s subscription here, if it has one.
    pub fn unsubscribe(&mut self, client: &Str, filter: &str, group: Option<&str>) -> RouteChange {
        let bit: ShardSet = 1 << self.me;
        let Some(entry) = self.filters.get_mut(filter) else {
            return RouteChange::Unchanged;
        };
        let change = match group {
            None => {
                if entry.local.remove(client).is_none() {
                    return RouteChange::Unchanged;
                }
                if entry.local.is_empty() {
                    entry.shards &= !bit;
                    RouteChange::Removed
                } else {
                    RouteChange::Unchanged
                }
            }
            Some(group) => {
                let Some(g) = entry.groups.get_mut(group) else {
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
                g.shards &= !bit;
                if g.shards == 0 {
                    entry.groups.remove(group);
                }
                RouteChange::Removed
            }
        };
        if entry.is_empty() {
            self.filters.remove(filter);
        }
        change
    }

    /// Shard `shard` announced a subscriber for `filter` (in `group`).
    pub fn add_route(&mut self, shard: usize, filter: &str, group: Option<&str>) {
        let bit: ShardSet = 1 << shard;
        let entry = self.filters.entry(filter);
        match group {
            None => entry.shards |= bit,
            Some(g) => entry.groups.entry(Str::from(g)).or_default().shards |= bit,
        }
    }

    /// Shard `shard` has no subscriber left for `filter` (in `group`).
    pub fn remove_route(&mut self, shard: usize, filter: &str, group: Option<&str>) {
        let bit: ShardSet = 1 << shard;
        let Some(entry) = self.filters.get_mut(filter) else {
            return;
        };
        match group {
            None => entry.shards &= !bit,
            Some(g) => {
                if let Some(grp) = entry.groups.get_mut(g) {
                    grp.shards &= !bit;
                    if grp.shards == 0 && grp.members.is_empty() {
                        entry.groups.remove(g);
                    }
                }
            }
        }
        if entry.is_empty() {
            self.filters.remove(filter);
        }
    }

    /// Number of distinct routes (filters with a subscriber somewhere), EMQ X `routes/count`.
    pub fn route_count(&self) -> usize {
        self.filters.len()
    }

    /// Every route, as EMQ X lists them: a filter with ordinary subscribers somewhere, and
    /// `$share/group/filter` for each shared group.
    pub fn route_filters(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (filter, e) in self.filters.iter() {
            if e.shards != 0 {
                out.push(filter.to_string());
            }
            for g in e.groups.keys() {
                out.push(format!("$share/{g}/{filter}"));
            }
        }
        out
    }

    /// True when some shard has a subscriber whose filter matches `topic`.
    pub fn has_match(&self, topic: &str) -> bool {
        self.filters.has_match(topic)
    }

    /// Number of ordinary subscriptions (filter, client) on this shard.
    pub fn local_count(&self) -> usize {
        self.filters.iter().map(|(_, e)| e.local.len()).sum()
    }

    /// Number of shared-group memberships on this shard.
    pub fn local_shared_count(&self) -> usize {
        self.filters
            .iter()
            .map(|(_, e)| e.groups.values().map(|g| g.members.len()).sum::<usize>())
            .sum()
    }
}

/// Where one message goes, as the route table decides it (see [`RouteTable::plan`]).
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

impl RouteTable {
    /// The plan for a message on `topic`: the shards whose ordinary subscribers match, and for
    /// each matching shared group the one shard `pick` chooses among those with members.
    pub fn plan(&self, topic: &str, mut pick: impl FnMut(ShardSet) -> Option<usize>) -> RoutePlan {
        let mut plan = RoutePlan::default();
        self.filters.for_each_match(topic, |filter, e| {
            plan.direct |= e.shards;
            for (group, g) in &e.groups {
                if let Some(shard) = pick(g.shards) {
                    plan.shared.push((shard, Str::from(filter), group.clone()));
                }
            }
        });
        plan
    }

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
            self.filters.for_each_match(topic, |_, e| {
                if !e.local.is_empty() {
                    matched_filters += 1;
                    out.extend(e.local.iter().map(|(c, o)| (c.clone(), *o)));
                }
            });
        }
        // A client appears once per filter: with one matching filter there is nothing to
        // merge (and no client ids to compare per message).
        if matched_filters > 1 {
            out.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.qos.cmp(&a.1.qos)));
            out.dedup_by(|a, b| a.0 == b.0);
        }
        for (filter, group) in shared {
            let entry = self.filters.get_mut(filter);
            if let Some(g) = entry.and_then(|e| e.groups.get_mut(group)) {
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
        let mut table = RouteTable::new(1);
        let (a, b) = (Str::from("a"), Str::from("b"));
        assert_eq!(
            table.subscribe(&a, "t/#", None, opts(0)),
            RouteChange::Added
        );
        assert_eq!(
            table.subscribe(&b, "t/#", None, opts(1)),
            RouteChange::Unchanged
        );
        assert_eq!(
            table.subscribe(&a, "t/#", None, opts(2)),
            RouteChange::Unchanged,
            "re-subscribe updates"
        );
        assert_eq!(table.local_count(), 2);
        assert_eq!(
            table.plan("t/x", |_| None).direct,
            0b10,
            "this shard routes it"
        );
        assert_eq!(table.unsubscribe(&a, "t/#", None), RouteChange::Unchanged);
        assert_eq!(
            table.unsubscribe(&a, "t/#", None),
            RouteChange::Unchanged,
            "not subscribed any more"
        );
        assert_eq!(table.unsubscribe(&b, "t/#", None), RouteChange::Removed);
        assert_eq!(table.route_count(), 0, "nothing left of the filter");
    }

    #[test]
    fn shared_groups_are_counted_per_filter_and_group() {
        let mut table = RouteTable::new(0);
        let (a, b) = (Str::from("a"), Str::from("b"));
        assert_eq!(
            table.subscribe(&a, "t", Some("g1"), opts(1)),
            RouteChange::Added
        );
        assert_eq!(
            table.subscribe(&b, "t", Some("g2"), opts(1)),
            RouteChange::Added
        );
        assert_eq!(
            table.subscribe(&b, "t", Some("g1"), opts(1)),
            RouteChange::Unchanged
        );
        assert_eq!(table.local_shared_count(), 3);
        assert_eq!(
            table.unsubscribe(&a, "t", Some("g1")),
            RouteChange::Unchanged
        );
        assert_eq!(table.unsubscribe(&b, "t", Some("g1")), RouteChange::Removed);
        assert_eq!(table.unsubscribe(&b, "t", Some("g2")), RouteChange::Removed);
        assert_eq!(table.route_count(), 0);
    }

    #[test]
    fn local_subscribers_and_peers_routes_share_one_entry_per_filter() {
        let mut table = RouteTable::new(0);
        let a = Str::from("a");
        table.subscribe(&a, "a/+", None, opts(1));
        table.add_route(3, "a/+", None);
        table.add_route(1, "a/b", Some("g"));
        assert_eq!(table.route_count(), 2);
        let mut routes = table.route_filters();
        routes.sort();
        assert_eq!(routes, vec!["$share/g/a/b".to_string(), "a/+".to_string()]);
        assert!(table.has_match("a/b") && !table.has_match("b"));
        // The last local subscriber leaves: the peer's route keeps the entry.
        assert_eq!(table.unsubscribe(&a, "a/+", None), RouteChange::Removed);
        assert_eq!(table.plan("a/x", |_| None).direct, 0b1000);
        table.remove_route(3, "a/+", None);
        table.remove_route(1, "a/b", Some("g"));
        assert_eq!(table.route_count(), 0);
        assert!(!table.has_match("a/b"));
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
    fn a_plan_names_every_shard_with_subscribers_and_one_shard_per_shared_group() {
        let mut routes = RouteTable::new(0);
        routes.subscribe(&Str::from("c"), "a/+", None, opts(0));
        routes.add_route(2, "a/#", None);
        routes.add_route(3, "b/#", None);
        routes.add_route(1, "a/b", Some("g"));
        routes.add_route(3, "a/b", Some("g"));
        routes.add_route(2, "a/b", Some("h"));
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
        let mut index = RouteTable::new(0);
        let (a, b, c) = (Str::from("a"), Str::from("b"), Str::from("c"));
        index.subscribe(&a, "t/+", None, opts(0));
        index.subscribe(&a, "t/#", None, opts(2));
        index.subscribe(&b, "t/x", None, opts(1));
        index.subscribe(&a, "t/x", Some("g"), opts(1));
        index.subscribe(&c, "t/x", Some("g"), opts(0));
        // A peer's route adds no local recipient.
        index.add_route(1, "t/y", None);
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
            shards: 1,
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
