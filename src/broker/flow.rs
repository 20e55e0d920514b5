//! Flow control on one shard: publishers slow down while subscribers they feed cannot keep up.
//!
//! Owns: which online sessions are *backlogged* (their queue, behind a full inflight window,
//! holds at least [`HIGH`] messages, or their connection has at least [`HIGH`] KiB not yet
//! written, until both drain to [`LOW`], and they still make progress), each backlog's *episode* ([`FlowKey`], a number its shard never reuses), the
//! episodes publishers here may be paused on (local ones, and remote ones announced by
//! `SlowDown` until their `FlowRelease`), and which remote publishers each local episode
//! asked to slow down.
//! A publisher whose message was queued for a backlogged subscriber gets its `Link`
//! throttled on that subscriber's episode: before reading more input its connection waits
//! until every episode it was throttled on has ended (that session drained, stalled or went
//! offline). Another subscriber draining does not end the pause. So a QoS 1/2 fan-in or many
//! pairs run at the subscribers' pace instead of overflowing their queues, however many
//! publishers on however many shards feed them. A subscriber that stops reading holds its
//! publishers for at most [`STALL`] (plus one housekeeping tick): then its episode ends, its
//! queue overflows and drops, counted, as in EMQ X. While a session holds publishers back,
//! its queue keeps every QoS 1/2 message past `max_mqueue` (what they sent before the hold
//! landed was acknowledged already; `Session::hold_publishers`).
//! Must never: count offline or stalled sessions (they cannot drain), throttle a publisher
//! that feeds no backlogged subscriber, end a pause on another session's account, or let an
//! episode that ended before a publisher started waiting go unnoticed (a paused connection
//! re-checks its episodes after every end it could have missed: `epoch`).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::future::poll_fn;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use crate::codec::Str;

/// Queue length at which an online session counts as backlogged.
pub const HIGH: usize = 256;
/// A subscriber's unwritten bytes (QoS 0 included, which never queues in the session) count
/// as one queued message per this many: 256 KiB not yet written makes it backlogged like 256
/// queued messages, 64 KiB or less lets it drain.
pub const BYTES_PER_MESSAGE: usize = 1024;
/// Queue length at which a backlogged session counts as drained again.
pub const LOW: usize = 64;
/// A backlogged session whose queue has not shrunk for this long counts as stalled: it no
/// longer holds publishers back (the shard's tick notices it within a tick).
pub const STALL: Duration = Duration::from_secs(1);
/// The longest a throttled publisher waits for a release, a safety net only: every
/// backlogged session is released when it drains, stalls or goes offline.
pub const MAX_PAUSE: Duration = Duration::from_secs(2);
/// A remote publisher is asked to slow down at most once per this interval while the same
/// backlog lasts (its pause, once it takes effect, lasts until the release).
const RESIGNAL: Duration = Duration::from_millis(2);

/// One session's progress as flow control watches it (kept with the session's client on its
/// shard): the queue length last seen, and when a long queue (over [`LOW`]) last shrank or
/// became long.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    queued_seen: usize,
    drained_at: Instant,
}

impl Progress {
    /// A session that has queued nothing yet.
    pub fn new(now: Instant) -> Progress {
        Progress {
            queued_seen: 0,
            drained_at: now,
        }
    }

    /// Forgets what was seen (the session came back online): its stall clock starts afresh.
    pub fn restart(&mut self) {
        self.queued_seen = 0;
    }

    /// Whether the queue is long enough to be watched: every ack must then be observed, or a
    /// subscriber that acks more slowly than it is fed would look stalled.
    pub fn watched(&self) -> bool {
        self.queued_seen > LOW
    }

    /// Records the queue length now; returns whether the session has stalled (a long queue
    /// that has not shrunk for [`STALL`]). Only a long queue reads the clock (`now`).
    pub fn observe(&mut self, queued: usize, now: impl FnOnce() -> Instant) -> bool {
        let mut stalled = false;
        if queued > LOW {
            let now = now();
            if self.queued_seen <= LOW || queued < self.queued_seen {
                self.drained_at = now;
            } else {
                stalled = now.duration_since(self.drained_at) >= STALL;
            }
        }
        self.queued_seen = queued;
        stalled
    }
}

/// One backlog episode: a session on `shard` was backlogged, under a number that shard
/// never gives again. A publisher is throttled on the episodes it fed and pauses until every
/// one of them ended (the session drained, stalled or went offline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub shard: usize,
    pub episode: u64,
}

/// The remote publishers one local episode asked to slow down (with when), and their shards.
#[derive(Default)]
struct Signaled {
    publishers: HashMap<Str, Instant>,
    shards: u128,
}

/// One shard's flow-control state.
#[derive(Default)]
pub struct Flow {
    backlogged: Cell<usize>,
    last_episode: Cell<u64>,
    /// Bumped by every end of an episode this shard knows of; paused publishers re-check
    /// their own episodes then.
    epoch: Cell<u64>,
    waiters: RefCell<Vec<Waker>>,
    /// Episodes in force that publishers here may wait on: this shard's own, and those of
    /// other shards announced by `SlowDown` until their `FlowRelease`.
    active: RefCell<HashSet<FlowKey>>,
    /// Per episode of this shard: the remote publishers it asked to slow down.
    signaled: RefCell<HashMap<u64, Signaled>>,
}

impl Flow {
    /// The new backlog state of a session, given its previous state, its queue length,
    /// whether it is online and whether it stalled ([`STALL`]); returns
    /// `(now_backlogged, released)` where `released` is true when this session just drained
    /// or stalled (the caller then ends its episode with [`Flow::end`]).
    pub fn observe(&self, was: bool, queued: usize, online: bool, stalled: bool) -> (bool, bool) {
        let now = online && !stalled && (queued >= HIGH || (was && queued > LOW));
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

    /// A session of shard `me` became backlogged: starts its episode.
    pub fn begin(&self, me: usize) -> FlowKey {
        let episode = self.last_episode.get() + 1;
        self.last_episode.set(episode);
        let key = FlowKey { shard: me, episode };
        self.active.borrow_mut().insert(key);
        key
    }

    /// Ends an episode of this shard: wakes the publishers paused here so they re-check, and
    /// returns the shards whose publishers it asked to slow down (to be told with
    /// `FlowRelease`).
    pub fn end(&self, key: FlowKey) -> u128 {
        let shards = self
            .signaled
            .borrow_mut()
            .remove(&key.episode)
            .map_or(0, |s| s.shards);
        self.forget(key);
        shards
    }

    /// Another shard asked a publisher here to slow down on `key`.
    pub fn hold_remote(&self, key: FlowKey) {
        self.active.borrow_mut().insert(key);
    }

    /// Another shard's episode ended (its `FlowRelease`), or ours did ([`Flow::end`]).
    pub fn forget(&self, key: FlowKey) {
        self.active.borrow_mut().remove(&key);
        self.epoch.set(self.epoch.get() + 1);
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Whether the episode still holds publishers back.
    pub fn holds(&self, key: FlowKey) -> bool {
        self.active.borrow().contains(&key)
    }

    /// Records that `publisher` on `shard` is asked to slow down on the local episode `key`
    /// at `now`; false if it was asked less than `RESIGNAL` ago (the request is still on
    /// its way).
    pub fn signal_remote(&self, key: FlowKey, publisher: &Str, shard: usize, now: Instant) -> bool {
        let mut all = self.signaled.borrow_mut();
        let signaled = all.entry(key.episode).or_default();
        match signaled.publishers.get_mut(publisher) {
            Some(at) if now.duration_since(*at) < RESIGNAL => return false,
            Some(at) => *at = now,
            None => {
                signaled.publishers.insert(publisher.clone(), now);
            }
        }
        signaled.shards |= 1 << shard;
        true
    }

    /// The current release epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch.get()
    }

    /// Completes at the first end of an episode after `epoch`.
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
        assert_eq!(flow.observe(false, HIGH - 1, true, false), (false, false));
        assert_eq!(flow.observe(false, HIGH, true, false), (true, false));
        assert_eq!(flow.backlogged(), 1);
        assert_eq!(
            flow.observe(true, LOW + 1, true, false),
            (true, false),
            "still above LOW"
        );
        assert_eq!(
            flow.observe(true, LOW, true, false),
            (false, true),
            "drained"
        );
        assert_eq!(flow.backlogged(), 0);
        assert_eq!(
            flow.observe(false, 10 * HIGH, false, false),
            (false, false),
            "offline"
        );
        assert_eq!(
            flow.observe(true, 10 * HIGH, false, false),
            (false, true),
            "went offline"
        );
    }

    #[test]
    fn a_stalled_session_releases_its_publishers_and_holds_none() {
        let flow = Flow::default();
        assert_eq!(flow.observe(false, HIGH, true, false), (true, false));
        assert_eq!(
            flow.observe(true, 10 * HIGH, true, true),
            (false, true),
            "stalled: released although its queue is long"
        );
        assert_eq!(flow.backlogged(), 0);
        assert_eq!(
            flow.observe(false, 10 * HIGH, true, true),
            (false, false),
            "a stalled session never holds publishers"
        );
        assert_eq!(
            flow.observe(false, 10 * HIGH, true, false),
            (true, false),
            "progress again: backlogged again"
        );
    }

    #[test]
    fn a_long_queue_stalls_only_when_it_stops_shrinking() {
        let t = Instant::now();
        let mut p = Progress::new(t);
        assert!(!p.observe(LOW, || unreachable!("a short queue needs no clock")));
        assert!(!p.observe(HIGH, || t), "just became long: its clock starts");
        assert!(p.watched());
        assert!(!p.observe(HIGH + 1, || t + STALL / 2));
        assert!(!p.observe(HIGH, || t + STALL / 2 * 3), "shrank: progress");
        assert!(!p.observe(HIGH + 5, || t + STALL * 2 - STALL / 4));
        assert!(p.observe(HIGH + 5, || t + STALL * 3), "no shrink for STALL");
        p.restart();
        assert!(
            !p.observe(HIGH + 5, || t + STALL * 4),
            "back online: starts afresh"
        );
    }

    #[test]
    fn remote_publishers_are_signaled_once_per_resignal_interval() {
        let flow = Flow::default();
        let key = flow.begin(0);
        let p = Str::from("p");
        let t = Instant::now();
        assert!(flow.signal_remote(key, &p, 3, t));
        assert!(
            !flow.signal_remote(key, &p, 3, t + RESIGNAL / 4),
            "the request is on its way"
        );
        assert!(
            flow.signal_remote(key, &p, 3, t + RESIGNAL),
            "still backlogged: ask again"
        );
        let e = flow.epoch();
        assert_eq!(flow.end(key), 1 << 3);
        assert_ne!(flow.epoch(), e);
        let next = flow.begin(0);
        assert_ne!(next, key, "an episode number is never given twice");
        assert!(
            flow.signal_remote(next, &p, 3, t + RESIGNAL),
            "a new episode signals again"
        );
    }

    #[test]
    fn an_episode_holds_until_it_ends_whatever_else_ends() {
        let flow = Flow::default();
        let a = flow.begin(1);
        let b = flow.begin(1);
        let remote = FlowKey {
            shard: 2,
            episode: 1,
        };
        flow.hold_remote(remote);
        assert!(flow.holds(a) && flow.holds(b) && flow.holds(remote));
        let e = flow.epoch();
        flow.end(b);
        assert_ne!(flow.epoch(), e, "paused publishers re-check");
        assert!(
            flow.holds(a),
            "another session draining does not end a's episode"
        );
        assert!(flow.holds(remote));
        assert!(!flow.holds(b));
        flow.forget(remote);
        assert!(!flow.holds(remote));
        assert!(flow.holds(a));
    }
}
