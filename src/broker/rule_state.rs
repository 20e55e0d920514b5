//! A shard's rule engine state: its counters per rule and per action (kept by rule id, so a
//! rule's figures survive another rule's creation) and its web hook sender. The hook sites
//! that feed them are `hooks`.
//!
//! Runs on one shard; the management thread reads the counters through `views::RuleCounts`.
//! Must never: be shared between shards.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::webhook::{WebHooks, WebLimits};
use crate::rules::RuleSet;

/// One action's outcomes on this shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActionCount {
    pub success: u64,
    pub failed: u64,
}

/// One rule's counters on this shard: how often it matched, and its actions' outcomes (in
/// the rule's order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleCount {
    pub matched: u64,
    pub actions: Vec<ActionCount>,
}

/// This shard's rule engine state: counters by rule id (kept across rule-set swaps, so a
/// rule's figures survive another rule's creation) and the web hook sender.
pub struct RuleEngine {
    counts: RefCell<HashMap<String, RuleCount>>,
    pub web: Rc<WebHooks>,
}

impl Default for RuleEngine {
    fn default() -> Self {
        RuleEngine {
            counts: RefCell::new(HashMap::new()),
            web: WebHooks::new(WebLimits::default()),
        }
    }
}

impl RuleEngine {
    /// Every rule's counters on this shard.
    pub fn counts(&self) -> Vec<(String, RuleCount)> {
        self.counts
            .borrow()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub(super) fn count(&self, rule: &str, f: impl FnOnce(&mut RuleCount)) {
        let mut counts = self.counts.borrow_mut();
        match counts.get_mut(rule) {
            Some(c) => f(c),
            None => f(counts.entry(rule.to_string()).or_default()),
        }
    }

    pub(super) fn count_action(&self, rule: &str, action: usize, ok: bool) {
        self.count(rule, |c| {
            if c.actions.len() <= action {
                c.actions.resize(action + 1, ActionCount::default());
            }
            if ok {
                c.actions[action].success += 1;
            } else {
                c.actions[action].failed += 1;
            }
        });
    }

    /// Forgets the counters of rules that no longer exist.
    pub fn retain_rules(&self, rules: &RuleSet) {
        let ids: std::collections::HashSet<&str> =
            rules.rules().iter().map(|r| r.id.as_str()).collect();
        self.counts
            .borrow_mut()
            .retain(|k, _| ids.contains(k.as_str()));
    }
}
