//! A shard's side of administration: swapping in a new admin [`Policy`] (and kicking the
//! live clients a new ban matches) and `emqx_delayed_publish`'s timers.
//!
//! Runs on the shard. Must never: change the policy it was given (it is shared, read-only),
//! hold a borrow across a call that can re-enter the shard, or add work per message beyond
//! the `$delayed/` prefix check in `Shard::publish_tracked`.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use shardmq_shards::rt::{self, spawn_local};

use super::shard::{unix_secs, Shard};
use crate::admin::policy::Policy;
use crate::codec::Str;
use crate::metrics::DropReason;
use crate::session::{CloseReason, Message};

/// Topics of delayed messages: `$delayed/<seconds>/<topic>`.
pub const DELAYED_PREFIX: &str = "$delayed/";

/// The longest delay EMQ X accepts (seconds).
pub const MAX_DELAY_SECS: u64 = 4_294_967;

/// `$delayed/<seconds>/<topic>` → (delay, topic); `None` when malformed.
pub fn parse_delayed(topic: &str) -> Option<(Duration, &str)> {
    let rest = topic.strip_prefix(DELAYED_PREFIX)?;
    let (secs, real) = rest.split_once('/')?;
    let secs: u64 = secs.parse().ok()?;
    if secs > MAX_DELAY_SECS || real.is_empty() || !crate::topic::valid_topic_name(real) {
        return None;
    }
    Some((Duration::from_secs(secs), real))
}

impl Shard {
    /// Puts `policy` in force: new CONNECTs and new sessions follow it from now on; live
    /// clients a ban now matches are kicked.
    pub fn apply_policy(self: &Rc<Self>, policy: Arc<Policy>) {
        let now = unix_secs();
        self.rule_engine.retain_rules(&policy.rules);
        if let Some(tls) = &policy.tls {
            *self.tls.borrow_mut() = tls.clone();
        }
        let kicked: Vec<_> = self
            .clients
            .borrow()
            .iter()
            .filter_map(|(id, c)| {
                let link = c.link.as_ref()?;
                policy
                    .banned(id, c.username.as_deref(), c.peer.map(|p| p.ip()), now)
                    .then(|| link.clone())
            })
            .collect();
        // An unloaded retainer keeps its messages (loading it again serves them); while it is
        // unloaded nothing is stored or served (`store_retained`, `retained_matching`).
        *self.policy.borrow_mut() = policy;
        for link in kicked {
            link.close(CloseReason::Kicked);
        }
    }

    /// Holds a `$delayed/<seconds>/<topic>` message on this shard and publishes it to
    /// `<topic>` when due. A malformed one is dropped (and counted).
    pub(super) fn delay_publish(self: &Rc<Self>, mut msg: Message) {
        let Some((delay, topic)) = parse_delayed(&msg.topic) else {
            self.metrics.borrow_mut().count_drop(DropReason::Invalid);
            return;
        };
        msg.topic = Str::from(topic);
        let me = self.clone();
        spawn_local(async move {
            rt::sleep(delay).await;
            if !me.shutdown.is_set() {
                me.publish(msg);
            }
        })
        .detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delayed_topics_parse_and_bad_ones_are_refused() {
        assert_eq!(
            parse_delayed("$delayed/10/a/b"),
            Some((Duration::from_secs(10), "a/b"))
        );
        assert_eq!(parse_delayed("$delayed/0/x"), Some((Duration::ZERO, "x")));
        assert_eq!(parse_delayed("$delayed/x/a"), None);
        assert_eq!(parse_delayed("$delayed/10"), None);
        assert_eq!(parse_delayed("$delayed/10/"), None);
        assert_eq!(parse_delayed("$delayed/4294968/a"), None);
        assert_eq!(parse_delayed("$delayed/1/a/+"), None);
        assert_eq!(parse_delayed("delayed/1/a"), None);
    }
}
