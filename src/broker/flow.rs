//! Flow control on one shard: publishers slow down while subscribers they feed cannot keep up.
//!
//! Owns: which online sessions are *backlogged* (their queue, behind a full inflight window,
//! holds at least [`HIGH`] messages, until it drains to [`LOW`]), the release epoch that
//! throttled publishers wait on, and which remote publishers were asked to slow down.
//! A publisher whose message was queued for a backlogged subscriber gets its `Link`
//! throttled: before reading more input its connection waits for the next release (some
//! backlogged session on this shard, or on the shard that asked, drained) or [`MAX_PAUSE`],
//! whichever comes first. So a QoS 1/2 fan-in runs at the subscriber's pace instead of
//! overflowing its queue, while a subscriber that stops reading only slows — never stops —
//! the publishers that feed it, and nobody else.
//! Must never: block a connection for longer than [`MAX_PAUSE`] per batch, count offline
//! sessions (they cannot drain), or throttle a publisher that feeds no backlogged subscriber.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::poll_fn;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use crate::codec::Str;

/// Queue length at which an online session counts as backlogged.
pub const HIGH: usize = 256;
/// Queue length at which a backlogged session counts as drained again.
pub const LOW: usize = 64;
/// The longest a throttled publisher waits for a release before reading one more batch.
pub const MAX_PAUSE: Duration = Duration::from_millis(10);

/// One shard's flow-control state.
#[derive(Default)]
pub struct Flow {
    backlogged: Cell<usize>,
    epoch: Cell<u64>,
    waiters: RefCell<Vec<Waker>>,
    /// Remote publishers told to slow down since the last release (with when), and their
    /// shards.
    signaled: RefCell<HashMap<Str, Instant>>,
    signaled_shards: Cell<u128>,
}

impl Flow {
    /// The new backlog state of a session, given its previous state, its queue length and
    /// whether it is online; returns `(now_backlogged, released)` where `released` is true
    /// when this session just drained (the caller then calls [`Flow::release`]).
    pub fn observe(&self, was: bool, queued: usize, online: bool) -> (bool, bool) {
        let now = online && (queued >= HIGH || (was && queued > LOW));
        match (was, now) {
            (false, true) => self.backlogged.set(self.backlogged.get() + 1),
            (true, false) => self.backlogged.set(self.backlogged.get().saturating_sub(1)),
            _ => {}
        }
        (now, was && !now)
    }

    /// Online sessions backlogged right now.
    pub fn backlogged(&self) -> usize {
        self.backlogged.get()
    }

    /// Wakes every throttled publisher of this shard. Returns the shards whose publishers
    /// were asked to slow down since the last release (to be told too), and forgets them.
    pub fn release(&self) -> u128 {
        self.epoch.set(self.epoch.get() + 1);
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
        self.signaled.borrow_mut().clear();
        self.signaled_shards.replace(0)
    }

    /// Records that `publisher` on `shard` is asked to slow down at `now`; false if it was
    /// asked less than half a [`MAX_PAUSE`] ago (its pause is still running). A throttled
    /// publisher pauses at most `MAX_PAUSE` per signal, so a subscriber that stays
    /// backlogged keeps signalling, at most twice per pause.
    pub fn signal_remote(&self, publisher: &Str, shard: usize, now: Instant) -> bool {
        let mut signaled = self.signaled.borrow_mut();
        match signaled.get_mut(publisher) {
            Some(at) if now.duration_since(*at) < MAX_PAUSE / 2 => return false,
            Some(at) => *at = now,
            None => {
                signaled.insert(publisher.clone(), now);
            }
        }
        self.signaled_shards
            .set(self.signaled_shards.get() | (1 << shard));
        true
    }

    /// The current release epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch.get()
    }

    /// Completes at the first release after `epoch`.
    pub async fn released_after(&self, epoch: u64) {
        poll_fn(|cx| {
            if self.epoch.get() != epoch {
                Poll::Ready(())
            } else {
                self.waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backlog_has_hysteresis_and_ignores_offline_sessions() {
        let flow = Flow::default();
        assert_eq!(flow.observe(false, HIGH - 1, true), (false, false));
        assert_eq!(flow.observe(false, HIGH, true), (true, false));
        assert_eq!(flow.backlogged(), 1);
        assert_eq!(
            flow.observe(true, LOW + 1, true),
            (true, false),
            "still above LOW"
        );
        assert_eq!(flow.observe(true, LOW, true), (false, true), "drained");
        assert_eq!(flow.backlogged(), 0);
        assert_eq!(
            flow.observe(false, 10 * HIGH, false),
            (false, false),
            "offline"
        );
        assert_eq!(
            flow.observe(true, 10 * HIGH, false),
            (false, true),
            "went offline"
        );
    }

    #[test]
    fn remote_publishers_are_signaled_once_per_pause() {
        let flow = Flow::default();
        let p = Str::from("p");
        let t = Instant::now();
        assert!(flow.signal_remote(&p, 3, t));
        assert!(
            !flow.signal_remote(&p, 3, t + MAX_PAUSE / 4),
            "its pause is running"
        );
        assert!(
            flow.signal_remote(&p, 3, t + MAX_PAUSE),
            "still backlogged: ask again"
        );
        let e = flow.epoch();
        assert_eq!(flow.release(), 1 << 3);
        assert_ne!(flow.epoch(), e);
        assert!(
            flow.signal_remote(&p, 3, t + MAX_PAUSE),
            "a new episode signals again"
        );
    }
}
