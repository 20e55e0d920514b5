//! The topic trie: topic filters → one value per filter, matched against topic names.
//!
//! Owns: storage of (filter, value) pairs keyed by level, and the fast "which stored filters
//! match this topic" walk (`+`, `#`, empty levels, the `$`-topic rule). It must never do
//! I/O, know what its values mean (subscribers, route counts, ...), parse shared prefixes,
//! allocate per match, or recurse on trie depth (filters are client-controlled, so a deep
//! one must not be able to blow the stack: walks, pruning and drops are iterative).

use crate::fastmap::FastMap;

/// Frames kept on the stack by [`TopicTrie::for_each_match`] before it spills to the heap.
const INLINE_FRAMES: usize = 16;

/// A map from topic filters to values, with fast matching of topic names.
///
/// Filters should be valid ([`super::valid_topic_filter`]) and non-shared; invalid ones are
/// stored without panicking (a `#` that is not the last level is then an ordinary level).
/// Removing a filter prunes the nodes only it used, so memory follows the live filters.
pub struct TopicTrie<V> {
    root: Node<V>,
    len: usize,
}

struct Node<V> {
    /// The full filter and its value, if a filter ends at this node.
    value: Option<(Box<str>, V)>,
    /// Children by literal level (including the empty level).
    levels: FastMap<Box<str>, Node<V>>,
    /// The `+` child.
    plus: Option<Box<Node<V>>>,
    /// The `#` child; `#` is always the last level, so this node only ever holds a value.
    hash: Option<Box<Node<V>>>,
}

/// Which child of a node a filter level leads to.
#[derive(Clone, Copy)]
enum Step<'a> {
    Level(&'a str),
    Plus,
    Hash,
}

/// The steps of a filter, level by level.
fn steps(filter: &str) -> impl Iterator<Item = Step<'_>> {
    let mut levels = filter.split('/').peekable();
    std::iter::from_fn(move || {
        let level = levels.next()?;
        Some(match level {
            "+" => Step::Plus,
            "#" if levels.peek().is_none() => Step::Hash,
            _ => Step::Level(level),
        })
    })
}

impl<V> Node<V> {
    fn new() -> Self {
        Self {
            value: None,
            levels: FastMap::default(),
            plus: None,
            hash: None,
        }
    }

    fn child(&self, step: Step<'_>) -> Option<&Node<V>> {
        match step {
            Step::Level(l) => self.levels.get(l),
            Step::Plus => self.plus.as_deref(),
            Step::Hash => self.hash.as_deref(),
        }
    }

    fn child_mut(&mut self, step: Step<'_>) -> Option<&mut Node<V>> {
        match step {
            Step::Level(l) => self.levels.get_mut(l),
            Step::Plus => self.plus.as_deref_mut(),
            Step::Hash => self.hash.as_deref_mut(),
        }
    }

    fn child_or_insert(&mut self, step: Step<'_>) -> &mut Node<V> {
        match step {
            Step::Level(l) => {
                // Look up first so an existing level costs no allocation.
                if !self.levels.contains_key(l) {
                    self.levels.insert(l.into(), Node::new());
                }
                self.levels.get_mut(l).expect("just inserted")
            }
            Step::Plus => self.plus.get_or_insert_with(|| Box::new(Node::new())),
            Step::Hash => self.hash.get_or_insert_with(|| Box::new(Node::new())),
        }
    }

    fn remove_child(&mut self, step: Step<'_>) {
        match step {
            Step::Level(l) => drop(self.levels.remove(l)),
            Step::Plus => self.plus = None,
            Step::Hash => self.hash = None,
        }
    }

    fn child_count(&self) -> usize {
        self.levels.len() + usize::from(self.plus.is_some()) + usize::from(self.hash.is_some())
    }

    /// Whether this node only exists for the path through its (at most one) child: it holds
    /// no value and has no other child.
    fn only_carries_path(&self) -> bool {
        self.value.is_none() && self.child_count() <= 1
    }

    /// Moves every child out (used by the iterative drop).
    fn take_children(&mut self, out: &mut Vec<Node<V>>) {
        out.extend(self.levels.drain().map(|(_, n)| n));
        out.extend(self.plus.take().map(|n| *n));
        out.extend(self.hash.take().map(|n| *n));
    }

    fn children(&self) -> impl Iterator<Item = &Node<V>> {
        self.levels
            .values()
            .chain(self.plus.as_deref())
            .chain(self.hash.as_deref())
    }
}

impl<V> Drop for Node<V> {
    /// Iterative, so a deep chain of levels cannot overflow the stack.
    fn drop(&mut self) {
        if self.child_count() == 0 {
            return;
        }
        let mut pending = Vec::new();
        self.take_children(&mut pending);
        while let Some(mut node) = pending.pop() {
            node.take_children(&mut pending);
            // `node` drops here with no children: no recursion.
        }
    }
}

impl<V> Default for TopicTrie<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: std::fmt::Debug> std::fmt::Debug for TopicTrie<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<V> TopicTrie<V> {
    /// An empty trie (allocates nothing).
    pub fn new() -> Self {
        Self {
            root: Node::new(),
            len: 0,
        }
    }

    /// Number of filters holding a value.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no filter holds a value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value of `filter`, creating it with `V::default()` if missing.
    pub fn entry(&mut self, filter: &str) -> &mut V
    where
        V: Default,
    {
        self.entry_with(filter, V::default)
    }

    /// The value of `filter`, creating it with `make()` if missing.
    pub fn entry_with(&mut self, filter: &str, make: impl FnOnce() -> V) -> &mut V {
        let mut node = &mut self.root;
        for step in steps(filter) {
            node = node.child_or_insert(step);
        }
        let len = &mut self.len;
        let (_, value) = node.value.get_or_insert_with(|| {
            *len += 1;
            (filter.into(), make())
        });
        value
    }

    fn node(&self, filter: &str) -> Option<&Node<V>> {
        let mut node = &self.root;
        for step in steps(filter) {
            node = node.child(step)?;
        }
        Some(node)
    }

    /// The value stored for exactly `filter` (no wildcard matching).
    pub fn get(&self, filter: &str) -> Option<&V> {
        self.node(filter)?.value.as_ref().map(|(_, v)| v)
    }

    /// The value stored for exactly `filter`, mutably.
    pub fn get_mut(&mut self, filter: &str) -> Option<&mut V> {
        let mut node = &mut self.root;
        for step in steps(filter) {
            node = node.child_mut(step)?;
        }
        node.value.as_mut().map(|(_, v)| v)
    }

    /// Whether `filter` holds a value.
    pub fn contains(&self, filter: &str) -> bool {
        self.get(filter).is_some()
    }

    /// Removes `filter` and returns its value, pruning the nodes no other filter uses.
    pub fn remove(&mut self, filter: &str) -> Option<V> {
        // Pass 1 (shared borrows): check the filter is stored and find the shallowest dead
        // node. The path is root = n0 -> n1 -> ... -> nd (the filter's node). After taking
        // nd's value, nodes n(k+1)..nd are dead if none holds a value or another child and nd
        // has no child; then the edge at step index k (out of nk) is cut.
        let mut node = &self.root;
        let mut cut = 0;
        for (i, step) in steps(filter).enumerate() {
            if i > 0 && !node.only_carries_path() {
                cut = i;
            }
            node = node.child(step)?;
        }
        node.value.as_ref()?;
        let prune = node.child_count() == 0;

        // Pass 2: take the value.
        let mut node = &mut self.root;
        for step in steps(filter) {
            node = node.child_mut(step).expect("walked in pass 1");
        }
        let (_, value) = node.value.take().expect("checked in pass 1");
        self.len -= 1;

        // Pass 3: cut the dead branch (its drop is iterative).
        if prune {
            let mut steps = steps(filter);
            let mut node = &mut self.root;
            for step in steps.by_ref().take(cut) {
                node = node.child_mut(step).expect("walked in pass 1");
            }
            node.remove_child(steps.next().expect("cut is within the path"));
        }
        Some(value)
    }

    /// Calls `f(filter, value)` once for every stored filter that matches `topic`, applying
    /// the `$`-topic rule (no `+`/`#`-first filter matches a topic starting with `$`).
    /// Order is unspecified. Allocates nothing unless the walk is deeper than a few levels.
    pub fn for_each_match<'s>(&'s self, topic: &str, mut f: impl FnMut(&'s str, &'s V)) {
        let mut stack = Stack::new();
        // A frame is a node reached by consuming the topic up to byte `pos`, where the next
        // level starts; `None` when every level has been consumed.
        let dollar = topic.starts_with('$');
        let root = &self.root;
        // The root is special only for the `$` rule: its wildcards do not apply to `$` topics.
        let (first, next) = level_at(topic, 0);
        if !dollar {
            if let Some((flt, v)) = root.hash.as_ref().and_then(|h| h.value.as_ref()) {
                f(flt, v);
            }
            if let Some(p) = root.plus.as_deref() {
                stack.push((p, next));
            }
        }
        if let Some(c) = root.levels.get(first) {
            stack.push((c, next));
        }
        while let Some((node, pos)) = stack.pop() {
            // `#` matches the parent level too, so it fires whether or not levels remain.
            if let Some((flt, v)) = node.hash.as_ref().and_then(|h| h.value.as_ref()) {
                f(flt, v);
            }
            match pos {
                None => {
                    if let Some((flt, v)) = &node.value {
                        f(flt, v);
                    }
                }
                Some(pos) => {
                    let (level, next) = level_at(topic, pos);
                    if let Some(p) = node.plus.as_deref() {
                        stack.push((p, next));
                    }
                    if let Some(c) = node.levels.get(level) {
                        stack.push((c, next));
                    }
                }
            }
        }
    }

    /// All stored filters that match `topic`, collected (convenience over
    /// [`Self::for_each_match`]; allocates).
    pub fn matches<'s>(&'s self, topic: &str) -> Vec<(&'s str, &'s V)> {
        let mut out = Vec::new();
        self.for_each_match(topic, |flt, v| out.push((flt, v)));
        out
    }

    /// Whether any stored filter matches `topic`.
    pub fn has_match(&self, topic: &str) -> bool {
        let mut any = false;
        self.for_each_match(topic, |_, _| any = true);
        any
    }

    /// All stored filters and their values, in unspecified order.
    pub fn iter(&self) -> Iter<'_, V> {
        Iter {
            stack: vec![&self.root],
            left: self.len,
        }
    }

    /// Number of trie nodes, the root included (1 when empty). For tests of pruning.
    #[doc(hidden)]
    pub fn node_count(&self) -> usize {
        let mut stack = vec![&self.root];
        let mut count = 0;
        while let Some(node) = stack.pop() {
            count += 1;
            stack.extend(node.children());
        }
        count
    }
}

/// The level starting at byte `pos` of `topic`, and where the next one starts (`None` if
/// this is the last level).
fn level_at(topic: &str, pos: usize) -> (&str, Option<usize>) {
    let rest = &topic[pos..];
    // A byte search: `str::find('/')` goes through the generic char searcher, which
    // confirmed every candidate with a `memcmp` call and was 9 % of a shard's CPU. '/' is
    // ASCII, so its byte index is always a char boundary.
    match rest.bytes().position(|b| b == b'/') {
        Some(i) => (&rest[..i], Some(pos + i + 1)),
        None => (rest, None),
    }
}

/// A LIFO stack that keeps its first [`INLINE_FRAMES`] entries inline and only then spills
/// to the heap, so shallow walks allocate nothing.
struct Stack<T> {
    inline: [Option<T>; INLINE_FRAMES],
    inline_len: usize,
    spill: Vec<T>,
}

impl<T> Stack<T> {
    fn new() -> Self {
        Self {
            inline: [const { None }; INLINE_FRAMES],
            inline_len: 0,
            spill: Vec::new(),
        }
    }

    fn push(&mut self, item: T) {
        if self.inline_len < INLINE_FRAMES {
            self.inline[self.inline_len] = Some(item);
            self.inline_len += 1;
        } else {
            self.spill.push(item);
        }
    }

    fn pop(&mut self) -> Option<T> {
        // The spill only holds entries pushed while the inline part was full: the newest.
        if let Some(item) = self.spill.pop() {
            return Some(item);
        }
        if self.inline_len == 0 {
            return None;
        }
        self.inline_len -= 1;
        self.inline[self.inline_len].take()
    }
}

/// Iterator over all (filter, value) pairs of a [`TopicTrie`].
pub struct Iter<'a, V> {
    stack: Vec<&'a Node<V>>,
    left: usize,
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (&'a str, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        while let Some(node) = self.stack.pop() {
            self.stack.extend(node.children());
            if let Some((flt, v)) = &node.value {
                self.left -= 1;
                return Some((flt, v));
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<V> ExactSizeIterator for Iter<'_, V> {}

impl<'a, V> IntoIterator for &'a TopicTrie<V> {
    type Item = (&'a str, &'a V);
    type IntoIter = Iter<'a, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::TopicTrie;
    use crate::topic::matches;

    const FILTERS: &[&str] = &[
        "#",
        "+",
        "+/+",
        "/+",
        "+/#",
        "/",
        "sport",
        "sport/#",
        "sport/+",
        "sport/tennis/+",
        "sport/tennis/player1",
        "sport/tennis/player1/#",
        "sport/+/player1",
        "+/tennis/#",
        "+/monitor/Clients",
        "$SYS/#",
        "$SYS/monitor/+",
        "$SYS/+/Clients",
        "a//b",
        "a/+/b",
        "a/#/b",
        "a+b",
    ];

    const TOPICS: &[&str] = &[
        "sport",
        "sport/",
        "sports",
        "sport/tennis",
        "sport/tennis/player1",
        "sport/tennis/player1/ranking",
        "sport/tennis/player2",
        "sport//player1",
        "/",
        "/finance",
        "//",
        "a//b",
        "a/b",
        "a/x/b",
        "$SYS",
        "$SYS/monitor/Clients",
        "$SYS/x",
        "$",
        "x/monitor/Clients",
        "",
    ];

    fn trie() -> TopicTrie<usize> {
        let mut t = TopicTrie::new();
        for (i, f) in FILTERS.iter().enumerate() {
            *t.entry(f) = i;
        }
        t
    }

    fn sorted_matches(t: &TopicTrie<usize>, topic: &str) -> Vec<(String, usize)> {
        let mut got = Vec::new();
        t.for_each_match(topic, |f, v| got.push((f.to_owned(), *v)));
        got.sort();
        got
    }

    #[test]
    fn matches_agree_with_oracle() {
        let t = trie();
        for topic in TOPICS {
            let mut want: Vec<(String, usize)> = FILTERS
                .iter()
                .enumerate()
                .filter(|(_, f)| super::super::valid_topic_filter(f) && matches(f, topic))
                .map(|(i, f)| (f.to_string(), i))
                .collect();
            want.sort();
            assert_eq!(sorted_matches(&t, topic), want, "topic {topic:?}");
        }
    }

    #[test]
    fn spec_examples() {
        let t = trie();
        let names = |topic| -> Vec<String> {
            let mut v: Vec<_> = sorted_matches(&t, topic).into_iter().map(|x| x.0).collect();
            v.sort();
            v
        };
        assert_eq!(
            names("$SYS/monitor/Clients"),
            ["$SYS/#", "$SYS/+/Clients", "$SYS/monitor/+"]
        );
        assert_eq!(names("/finance"), ["#", "+/#", "+/+", "/+"]);
        assert_eq!(names("sport"), ["#", "+", "+/#", "sport", "sport/#"]);
    }

    #[test]
    fn entry_get_remove() {
        let mut t: TopicTrie<Vec<u32>> = TopicTrie::new();
        assert!(t.is_empty());
        assert_eq!(t.node_count(), 1);
        t.entry("a/+/c").push(1);
        t.entry("a/+/c").push(2);
        t.entry("a/#").push(3);
        assert_eq!(t.len(), 2);
        assert_eq!(t.get("a/+/c"), Some(&vec![1, 2]));
        assert_eq!(t.get("a/+"), None);
        assert_eq!(t.get("a/b/c"), None);
        assert!(t.contains("a/#"));
        t.get_mut("a/#").unwrap().clear();
        assert_eq!(t.get("a/#"), Some(&vec![]));
        assert_eq!(t.remove("a/+"), None);
        assert_eq!(t.remove("x"), None);
        assert_eq!(t.remove("a/+/c"), Some(vec![1, 2]));
        assert_eq!(t.remove("a/+/c"), None);
        assert_eq!(t.len(), 1);
        // root, `a`, `a/#`
        assert_eq!(t.node_count(), 3);
        assert_eq!(t.remove("a/#"), Some(vec![]));
        assert!(t.is_empty());
        assert_eq!(t.node_count(), 1);
    }

    #[test]
    fn remove_keeps_shared_prefixes_and_descendants() {
        let mut t: TopicTrie<()> = TopicTrie::new();
        t.entry("a");
        t.entry("a/b/c/d");
        t.entry("a/b/x");
        // root, a, b, c, d, x
        assert_eq!(t.node_count(), 6);
        t.remove("a");
        // `a` stays as an inner node.
        assert_eq!(t.node_count(), 6);
        assert!(t.has_match("a/b/x"));
        assert!(!t.has_match("a"));
        t.remove("a/b/c/d");
        // root, a, b, x
        assert_eq!(t.node_count(), 4);
        t.entry("a");
        t.remove("a/b/x");
        assert_eq!(t.node_count(), 2);
        t.remove("a");
        assert_eq!(t.node_count(), 1);
    }

    #[test]
    fn iter_visits_everything_once() {
        let t = trie();
        let mut all: Vec<(&str, usize)> = t.iter().map(|(f, v)| (f, *v)).collect();
        all.sort_by_key(|x| x.1);
        let want: Vec<(&str, usize)> = FILTERS.iter().copied().zip(0..).collect();
        assert_eq!(all, want);
        assert_eq!(t.iter().len(), FILTERS.len());
        assert_eq!(t.len(), FILTERS.len());
    }

    #[test]
    fn filter_string_is_stored_not_rebuilt() {
        let mut t = TopicTrie::new();
        *t.entry("a/+/#") = 1;
        let mut seen = Vec::new();
        t.for_each_match("a/b/c", |f, v| seen.push((f, *v)));
        assert_eq!(seen, [("a/+/#", 1)]);
    }

    #[test]
    fn deep_filters_do_not_overflow() {
        // 40_000 levels: recursion on depth would blow a 2 MiB test thread stack.
        let filter = "+/".repeat(40_000) + "#";
        let topic = "x/".repeat(40_000) + "end";
        let mut t = TopicTrie::new();
        *t.entry(&filter) = 7u8;
        *t.entry("x/#") = 1;
        let mut hits = Vec::new();
        t.for_each_match(&topic, |_, v| hits.push(*v));
        hits.sort();
        assert_eq!(hits, [1, 7]);
        assert_eq!(t.remove(&filter), Some(7));
        assert_eq!(t.node_count(), 3);
        *t.entry(&filter) = 7u8;
        drop(t);
    }

    #[test]
    fn wide_walk_spills_the_inline_stack() {
        // Every level both `+` and literal: the walk keeps one pending frame per level.
        let mut t = TopicTrie::new();
        let mut want = 0;
        for depth in 1..=40 {
            *t.entry(&vec!["+"; depth].join("/")) = depth;
            *t.entry(&vec!["a"; depth].join("/")) = depth;
            want += 2;
        }
        let topic = vec!["a"; 40].join("/");
        let mut n = 0;
        t.for_each_match(&topic, |f, _| {
            assert_eq!(f.split('/').count(), 40);
            n += 1;
        });
        assert_eq!(n, 2);
        assert_eq!(t.len(), want);
    }
}
