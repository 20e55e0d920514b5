//! Topic aliases the broker binds towards one MQTT 5.0 client (spec 3.3.2.3.4): the first
//! PUBLISH of a topic carries the topic and a new alias, later ones an empty topic and the
//! alias, while the client's Topic Alias Maximum leaves room.
//!
//! Owns: one connection's outgoing alias table. Pure; lives as long as the connection
//! [MQTT-3.3.2-7]. Must never: use an alias above the client's maximum or 0, or rebind an
//! alias (a table that is full sends new topics in full).

use std::collections::HashMap;

use crate::codec::Str;

/// How one PUBLISH names its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AliasUse {
    /// The topic in full, no alias (the table is full).
    Full,
    /// The topic in full with this new alias: the client binds it.
    Bind(u16),
    /// An empty topic and this alias, bound before.
    Use(u16),
}

/// The aliases bound on one connection, by topic.
#[derive(Debug, Default)]
pub struct OutgoingAliases {
    max: u16,
    by_topic: HashMap<Str, u16>,
}

impl OutgoingAliases {
    /// A table for a client that accepts `max` aliases (its CONNECT's Topic Alias Maximum).
    pub fn new(max: u16) -> Self {
        OutgoingAliases {
            max,
            by_topic: HashMap::new(),
        }
    }

    /// How the next PUBLISH to `topic` names it (binding a new alias when there is room).
    pub fn name(&mut self, topic: &Str) -> AliasUse {
        if let Some(&alias) = self.by_topic.get(topic) {
            return AliasUse::Use(alias);
        }
        let bound = self.by_topic.len();
        if bound >= usize::from(self.max) {
            return AliasUse::Full;
        }
        let alias = bound as u16 + 1;
        self.by_topic.insert(topic.clone(), alias);
        AliasUse::Bind(alias)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_get_aliases_up_to_the_maximum_then_go_in_full() {
        let mut t = OutgoingAliases::new(2);
        let (a, b, c) = (Str::from("a"), Str::from("b"), Str::from("c"));
        assert_eq!(t.name(&a), AliasUse::Bind(1));
        assert_eq!(t.name(&a), AliasUse::Use(1));
        assert_eq!(t.name(&b), AliasUse::Bind(2));
        assert_eq!(t.name(&c), AliasUse::Full);
        assert_eq!(t.name(&c), AliasUse::Full);
        assert_eq!(t.name(&b), AliasUse::Use(2));
        assert_eq!(OutgoingAliases::new(0).name(&a), AliasUse::Full);
    }
}
