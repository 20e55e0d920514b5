//! Model test of `TopicTrie` against a naive `Vec<(filter, value)>` that uses `matches`.
//!
//! Owns: random insert/remove/update sequences over a small level alphabet (wildcards,
//! `$SYS`, empty levels), checking matches, lookups, `len`, `iter` and pruning. It must
//! never depend on trie internals beyond the `#[doc(hidden)]` `node_count`.

use proptest::prelude::*;
use shardmq::topic::{matches, valid_topic_filter, TopicTrie};

#[derive(Debug, Clone)]
enum Op {
    /// `*trie.entry(filter) += n`.
    Add(String, u32),
    /// `trie.remove(filter)`.
    Remove(String),
    /// Remove the i-th (modulo) filter the model holds, so removals often hit.
    RemoveExisting(usize),
}

fn filter() -> impl Strategy<Value = String> {
    let level = prop::sample::select(vec!["a", "b", "", "$SYS", "+"]);
    (prop::collection::vec(level, 0..4), any::<bool>()).prop_filter_map(
        "non-empty",
        |(levels, hash)| {
            let mut levels: Vec<&str> = levels;
            if hash {
                levels.push("#");
            }
            if levels.is_empty() {
                return None;
            }
            let f = levels.join("/");
            // "" alone joins to the empty string, which is no filter.
            valid_topic_filter(&f).then_some(f)
        },
    )
}

fn topic() -> impl Strategy<Value = String> {
    let level = prop::sample::select(vec!["a", "b", "", "$SYS", "$x"]);
    prop::collection::vec(level, 1..5).prop_map(|levels| levels.join("/"))
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (filter(), 1..5u32).prop_map(|(f, n)| Op::Add(f, n)),
        1 => filter().prop_map(Op::Remove),
        2 => any::<usize>().prop_map(Op::RemoveExisting),
    ]
}

type Model = Vec<(String, u32)>;

fn check(trie: &TopicTrie<u32>, model: &Model, topics: &[String]) -> Result<(), TestCaseError> {
    prop_assert_eq!(trie.len(), model.len());
    prop_assert_eq!(trie.is_empty(), model.is_empty());

    let mut all: Vec<(String, u32)> = trie.iter().map(|(f, v)| (f.to_owned(), *v)).collect();
    all.sort();
    let mut want = model.clone();
    want.sort();
    prop_assert_eq!(&all, &want);

    for (f, v) in model {
        prop_assert_eq!(trie.get(f), Some(v));
    }

    for topic in topics {
        let mut got = Vec::new();
        trie.for_each_match(topic, |f, v| got.push((f.to_owned(), *v)));
        got.sort();
        let mut want: Vec<(String, u32)> = model
            .iter()
            .filter(|(f, _)| matches(f, topic))
            .cloned()
            .collect();
        want.sort();
        // Sorted equality also proves each filter is visited exactly once.
        prop_assert_eq!(&got, &want, "topic {:?}", topic);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn trie_matches_model(
        ops in prop::collection::vec(op(), 0..40),
        topics in prop::collection::vec(topic(), 1..12),
    ) {
        let mut trie = TopicTrie::<u32>::new();
        let mut model: Model = Vec::new();

        for op in ops {
            match op {
                Op::Add(f, n) => {
                    *trie.entry(&f) += n;
                    match model.iter_mut().find(|(g, _)| *g == f) {
                        Some((_, v)) => *v += n,
                        None => model.push((f, n)),
                    }
                }
                Op::Remove(f) => {
                    let want = model.iter().position(|(g, _)| *g == f).map(|i| model.swap_remove(i).1);
                    prop_assert_eq!(trie.remove(&f), want);
                }
                Op::RemoveExisting(i) => {
                    if !model.is_empty() {
                        let (f, v) = model.swap_remove(i % model.len());
                        prop_assert_eq!(trie.remove(&f), Some(v));
                        prop_assert_eq!(trie.get(&f), None);
                    }
                }
            }
            check(&trie, &model, &topics)?;
        }

        // Removing everything, in whatever order the model holds, leaves a bare root.
        while let Some((f, v)) = model.pop() {
            prop_assert_eq!(trie.remove(&f), Some(v));
        }
        prop_assert_eq!(trie.len(), 0);
        prop_assert!(trie.is_empty());
        prop_assert_eq!(trie.node_count(), 1);
        prop_assert_eq!(trie.iter().count(), 0);
        for topic in &topics {
            prop_assert!(!trie.has_match(topic));
        }
    }

    /// The oracle itself against the spec's `$` rule and `#`-matches-parent rule.
    #[test]
    fn matcher_rules(f in filter(), t in topic()) {
        if t.starts_with('$') && (f.starts_with('+') || f.starts_with('#')) {
            prop_assert!(!matches(&f, &t));
        }
        if let Some(parent) = f.strip_suffix("/#") {
            // `p/#` matches `p` itself.
            if valid_topic_filter(parent) && !parent.contains('+') && !parent.contains('#') {
                prop_assert!(matches(&f, parent));
            }
        }
        // A wildcard-free filter matches exactly the identical topic.
        if !f.contains('+') && !f.contains('#') {
            prop_assert_eq!(matches(&f, &t), f == t);
        }
    }
}
