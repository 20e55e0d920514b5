//! Throttling of failed logins per source address: after `limit` failed authentications from
//! one IP address within `window`, every further attempt from it is refused for `backoff`,
//! whatever credentials it carries. Used by the REST API (Basic auth and `POST /auth`, on the
//! management thread) and by the broker for MQTT CONNECT (one table shared by the shards).
//!
//! Owns: [`AuthThrottle`] (the table, its bound and its eviction, the decision, the counters
//! and the pacing of warnings) and [`Presence`] (a lock-free hint of which addresses the table
//! may hold, so the broker can skip its lock for an address it does not track).
//!
//! Pure: never reads the clock (callers pass `now`), never logs (it says when to), does no
//! I/O. Runs on whichever thread owns the table.
//!
//! Rules, in order of the questions a caller asks:
//! * [`AuthThrottle::check`] before looking at the credentials: an address whose back-off is
//!   in force is refused (even with the right password: that is the point); an expired one
//!   is forgotten.
//! * [`AuthThrottle::failure`] after wrong credentials: failures are counted in a window
//!   that starts at the first one; the `limit`-th within the window starts the back-off.
//!   The back-off is fixed: attempts refused during it neither extend it nor count.
//! * [`AuthThrottle::success`] after right credentials: the address's failures are forgotten
//!   (a success never lifts a back-off in force, but `check` refused that attempt anyway).
//! * Addresses are keyed on the whole IP (an IPv4-mapped IPv6 address is its IPv4 address):
//!   127.0.0.1 and 127.0.0.2 are different clients.
//! * The table holds at most `max_tracked` addresses; a new one beyond that evicts the one
//!   that entered first, so an attacker with many addresses cannot grow memory without limit
//!   (at worst it flushes older entries, which a guesser with that many addresses could
//!   bypass anyway by spreading its guesses).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Default bound on the addresses one table tracks (about 100 bytes each).
pub const MAX_TRACKED: usize = 16_384;

/// A warning about newly throttled addresses is due at most this often per table.
pub const WARN_EVERY: Duration = Duration::from_secs(1);

/// Slots of the [`Presence`] hint (4 bytes each).
const PRESENCE_SLOTS: usize = 4096;

/// The throttle's settings. Any of `limit`, `window`, `backoff` or `max_tracked` at 0 turns
/// it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failed authentications from one address within `window` that start its back-off.
    pub limit: u32,
    /// How long failures are counted together, from the first one.
    pub window: Duration,
    /// How long an address is refused once it reached `limit`.
    pub backoff: Duration,
    /// Most addresses tracked at once.
    pub max_tracked: usize,
}

impl ThrottleConfig {
    /// `limit` failures within `window_secs` start a back-off of `backoff_secs`; the
    /// default bound on the table.
    pub fn from_secs(limit: u32, window_secs: u64, backoff_secs: u64) -> ThrottleConfig {
        ThrottleConfig {
            limit,
            window: Duration::from_secs(window_secs),
            backoff: Duration::from_secs(backoff_secs),
            max_tracked: MAX_TRACKED,
        }
    }

    /// Never throttles.
    pub fn off() -> ThrottleConfig {
        ThrottleConfig::from_secs(0, 0, 0)
    }

    /// Whether it can ever refuse anything.
    pub fn enabled(&self) -> bool {
        self.limit > 0 && !self.window.is_zero() && !self.backoff.is_zero() && self.max_tracked > 0
    }
}

/// What a failed authentication did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Counted (or the throttle is off): the address may try again.
    Counted,
    /// This failure reached the limit: the address is refused from now on for the back-off.
    Throttled {
        /// `Some(n)` when a warning is due now (at most one per [`WARN_EVERY`]): `n` other
        /// addresses were throttled since the last warning without one of their own.
        /// `None`: stay quiet, this one is counted for the next warning.
        warn: Option<u64>,
    },
}

/// Totals since the table was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThrottleCounts {
    /// Failed authentications reported ([`AuthThrottle::failure`]).
    pub failures: u64,
    /// Times an address started a back-off.
    pub throttled: u64,
    /// Attempts refused because their address was in back-off ([`AuthThrottle::check`]).
    pub refused: u64,
}

/// One tracked address.
#[derive(Debug, Clone, Copy)]
struct Tracked {
    /// When it entered the table (its place in the eviction order).
    seq: u64,
    /// Failures in the current window.
    failures: u32,
    /// Start of the current window (the first failure of it).
    since: Instant,
    /// End of the back-off in force, if any.
    until: Option<Instant>,
}

/// A lock-free, conservative hint of the addresses a table holds: counters indexed by a hash
/// of the address, raised when an address enters the table and lowered when it leaves. A zero
/// means "certainly not tracked"; non-zero means "maybe" (another address may share the slot).
/// Written only by the table's owner (under its lock, if shared), read by anyone.
#[derive(Debug)]
pub struct Presence {
    slots: Box<[AtomicU32]>,
}

impl Default for Presence {
    fn default() -> Self {
        Presence {
            slots: (0..PRESENCE_SLOTS).map(|_| AtomicU32::new(0)).collect(),
        }
    }
}

impl Presence {
    /// Whether the table may track `ip` (false: it certainly does not).
    pub fn may_track(&self, ip: IpAddr) -> bool {
        self.slots[slot_of(canonical(ip))].load(Ordering::Relaxed) != 0
    }

    fn add(&self, ip: IpAddr) {
        self.slots[slot_of(ip)].fetch_add(1, Ordering::Relaxed);
    }

    fn remove(&self, ip: IpAddr) {
        self.slots[slot_of(ip)].fetch_sub(1, Ordering::Relaxed);
    }
}

/// FNV-1a over the address's bytes, folded onto the slots. Fixed (no random key): an attacker
/// who picks colliding addresses only makes some other address's check take the slow path.
fn slot_of(ip: IpAddr) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    match ip {
        IpAddr::V4(v4) => v4.octets().into_iter().for_each(&mut eat),
        IpAddr::V6(v6) => v6.octets().into_iter().for_each(&mut eat),
    }
    (h % PRESENCE_SLOTS as u64) as usize
}

/// The address a client is counted under: an IPv4-mapped IPv6 address is its IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The failed-login table of one listener (see the module documentation for the rules).
#[derive(Debug)]
pub struct AuthThrottle {
    cfg: ThrottleConfig,
    tracked: HashMap<IpAddr, Tracked>,
    /// `(seq, address)` in the order addresses entered; an item whose address left or entered
    /// again (another `seq`) is stale and skipped.
    order: VecDeque<(u64, IpAddr)>,
    next_seq: u64,
    presence: Arc<Presence>,
    counts: ThrottleCounts,
    last_warning: Option<Instant>,
    unwarned: u64,
}

impl AuthThrottle {
    pub fn new(cfg: ThrottleConfig) -> AuthThrottle {
        AuthThrottle {
            cfg,
            tracked: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
            presence: Arc::new(Presence::default()),
            counts: ThrottleCounts::default(),
            last_warning: None,
            unwarned: 0,
        }
    }

    pub fn config(&self) -> &ThrottleConfig {
        &self.cfg
    }

    /// The hint of which addresses this table may hold (shared, lock-free to read).
    pub fn presence(&self) -> Arc<Presence> {
        self.presence.clone()
    }

    /// Totals since start.
    pub fn counts(&self) -> ThrottleCounts {
        self.counts
    }

    /// Addresses tracked now (failing or in back-off).
    pub fn len(&self) -> usize {
        self.tracked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracked.is_empty()
    }

    /// Before the credentials are looked at: `Some(time left)` when `ip` is in back-off
    /// (counted as refused), `None` when it may try. Forgets an address whose back-off or
    /// window is over.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let ip = canonical(ip);
        let t = *self.tracked.get(&ip)?;
        match t.until {
            Some(until) if now < until => {
                self.counts.refused += 1;
                Some(until - now)
            }
            Some(_) => {
                self.forget(ip);
                None
            }
            None => {
                if self.window_over(&t, now) {
                    self.forget(ip);
                }
                None
            }
        }
    }

    /// Wrong credentials from `ip`: counts the failure and says whether it started a
    /// back-off (and whether to warn about it now).
    pub fn failure(&mut self, ip: IpAddr, now: Instant) -> Failure {
        self.counts.failures += 1;
        if !self.cfg.enabled() {
            return Failure::Counted;
        }
        let ip = canonical(ip);
        let fresh = |seq| Tracked {
            seq,
            failures: 0,
            since: now,
            until: None,
        };
        let current = self.tracked.get(&ip).copied();
        let mut t = match current {
            // A failure that raced with the one that throttled the address (another shard):
            // already refused for the back-off, nothing more to count.
            Some(t) if t.until.is_some_and(|u| now < u) => return Failure::Counted,
            Some(t) if t.until.is_some() || self.window_over(&t, now) => fresh(t.seq),
            Some(t) => t,
            None => {
                let seq = self.admit(ip);
                fresh(seq)
            }
        };
        t.failures += 1;
        let throttled = t.failures >= self.cfg.limit;
        if throttled {
            t.failures = 0;
            t.until = Some(now + self.cfg.backoff);
        }
        self.tracked.insert(ip, t);
        if !throttled {
            return Failure::Counted;
        }
        self.counts.throttled += 1;
        let due = self
            .last_warning
            .is_none_or(|w| now.saturating_duration_since(w) >= WARN_EVERY);
        if due {
            self.last_warning = Some(now);
            Failure::Throttled {
                warn: Some(std::mem::take(&mut self.unwarned)),
            }
        } else {
            self.unwarned += 1;
            Failure::Throttled { warn: None }
        }
    }

    /// Right credentials from `ip`: its failures are forgotten, unless it is in back-off.
    pub fn success(&mut self, ip: IpAddr, now: Instant) {
        let ip = canonical(ip);
        if let Some(t) = self.tracked.get(&ip) {
            if t.until.is_none_or(|u| now >= u) {
                self.forget(ip);
            }
        }
    }

    fn window_over(&self, t: &Tracked, now: Instant) -> bool {
        now.saturating_duration_since(t.since) >= self.cfg.window
    }

    /// Makes room for a new address (evicting the one that entered first when full) and
    /// gives it its place in the order.
    fn admit(&mut self, ip: IpAddr) -> u64 {
        while self.tracked.len() >= self.cfg.max_tracked {
            let Some((seq, old)) = self.order.pop_front() else {
                break; // cannot happen: every tracked address has its item in the order
            };
            if self.tracked.get(&old).is_some_and(|t| t.seq == seq) {
                self.forget(old);
            }
        }
        // Stale items pile up when addresses leave and come back; sweep them now and then
        // (amortized: only once they outnumber the live ones).
        if self.order.len() >= 2 * self.tracked.len() + 64 {
            let tracked = &self.tracked;
            self.order
                .retain(|(seq, ip)| tracked.get(ip).is_some_and(|t| t.seq == *seq));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.push_back((seq, ip));
        self.presence.add(ip);
        seq
    }

    fn forget(&mut self, ip: IpAddr) {
        if self.tracked.remove(&ip).is_some() {
            self.presence.remove(ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, d))
    }

    fn table(limit: u32, window: u64, backoff: u64) -> AuthThrottle {
        AuthThrottle::new(ThrottleConfig::from_secs(limit, window, backoff))
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn the_limit_th_failure_in_the_window_starts_the_backoff_even_for_right_credentials() {
        let t0 = Instant::now();
        let mut t = table(3, 60, 30);
        let a = v4(1);
        for i in 0..2 {
            assert_eq!(t.check(a, t0 + i * S), None);
            assert_eq!(t.failure(a, t0 + i * S), Failure::Counted);
        }
        assert_eq!(t.check(a, t0 + 2 * S), None);
        assert!(matches!(
            t.failure(a, t0 + 2 * S),
            Failure::Throttled { warn: Some(0) }
        ));
        // Refused for the back-off, whatever it would have sent; a success changes nothing.
        assert_eq!(t.check(a, t0 + 3 * S), Some(29 * S));
        t.success(a, t0 + 3 * S);
        assert_eq!(t.check(a, t0 + 31 * S), Some(S));
        assert_eq!(t.check(a, t0 + 32 * S), None, "the back-off is over");
        assert!(t.is_empty(), "and the address forgotten");
        assert_eq!(
            t.counts(),
            ThrottleCounts {
                failures: 3,
                throttled: 1,
                refused: 2
            }
        );
    }

    #[test]
    fn another_address_is_not_affected() {
        let t0 = Instant::now();
        let mut t = table(2, 60, 60);
        t.failure(v4(1), t0);
        t.failure(v4(1), t0);
        assert!(t.check(v4(1), t0).is_some());
        assert_eq!(t.check(v4(2), t0), None);
        let v6: IpAddr = Ipv6Addr::LOCALHOST.into();
        assert_eq!(t.check(v6, t0), None);
        // An IPv4-mapped IPv6 address is the IPv4 address.
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(t.check(mapped, t0).is_some());
        assert!(t.presence().may_track(mapped));
    }

    #[test]
    fn a_success_before_the_limit_forgets_the_failures() {
        let t0 = Instant::now();
        let mut t = table(3, 60, 60);
        let a = v4(1);
        t.failure(a, t0);
        t.failure(a, t0);
        t.success(a, t0);
        assert!(t.is_empty());
        assert!(!t.presence().may_track(a));
        assert_eq!(t.failure(a, t0), Failure::Counted);
        assert_eq!(t.failure(a, t0), Failure::Counted);
        assert!(matches!(t.failure(a, t0), Failure::Throttled { .. }));
    }

    #[test]
    fn failures_further_apart_than_the_window_do_not_add_up() {
        let t0 = Instant::now();
        let mut t = table(3, 10, 60);
        let a = v4(1);
        t.failure(a, t0);
        t.failure(a, t0 + 9 * S);
        // The window started at the first failure: it is over at t0 + 10 s.
        assert_eq!(t.failure(a, t0 + 10 * S), Failure::Counted);
        assert_eq!(t.failure(a, t0 + 11 * S), Failure::Counted);
        assert!(matches!(
            t.failure(a, t0 + 12 * S),
            Failure::Throttled { .. }
        ));
        // A check after the window forgets a failing (not throttled) address.
        let b = v4(2);
        t.failure(b, t0);
        assert_eq!(t.check(b, t0 + 10 * S), None);
        assert!(!t.presence().may_track(b));
    }

    #[test]
    fn after_the_backoff_the_address_starts_from_zero() {
        let t0 = Instant::now();
        let mut t = table(2, 60, 5);
        let a = v4(1);
        t.failure(a, t0);
        assert!(matches!(t.failure(a, t0), Failure::Throttled { .. }));
        // A failure racing the throttling one (another shard) adds nothing.
        assert_eq!(t.failure(a, t0 + S), Failure::Counted);
        assert_eq!(t.failure(a, t0 + 5 * S), Failure::Counted, "one of two");
        assert!(matches!(
            t.failure(a, t0 + 5 * S),
            Failure::Throttled { .. }
        ));
    }

    #[test]
    fn zero_in_any_setting_turns_it_off() {
        let t0 = Instant::now();
        for cfg in [
            ThrottleConfig::from_secs(0, 60, 60),
            ThrottleConfig::from_secs(1, 0, 60),
            ThrottleConfig::from_secs(1, 60, 0),
            ThrottleConfig::off(),
        ] {
            assert!(!cfg.enabled());
            let mut t = AuthThrottle::new(cfg);
            for _ in 0..100 {
                assert_eq!(t.failure(v4(1), t0), Failure::Counted);
            }
            assert_eq!(t.check(v4(1), t0), None);
            assert!(t.is_empty());
            assert_eq!(t.counts().failures, 100);
        }
    }

    #[test]
    fn warnings_are_paced_and_say_how_many_went_unreported() {
        let t0 = Instant::now();
        let mut t = table(1, 60, 60);
        assert_eq!(t.failure(v4(1), t0), Failure::Throttled { warn: Some(0) });
        let ms = Duration::from_millis(1);
        for d in 2..=4 {
            assert_eq!(
                t.failure(v4(d), t0 + u32::from(d) * ms),
                Failure::Throttled { warn: None }
            );
        }
        assert_eq!(
            t.failure(v4(5), t0 + WARN_EVERY),
            Failure::Throttled { warn: Some(3) }
        );
        assert_eq!(t.counts().throttled, 5);
    }

    #[test]
    fn the_table_is_bounded_and_evicts_the_address_that_entered_first() {
        let t0 = Instant::now();
        let mut t = AuthThrottle::new(ThrottleConfig {
            max_tracked: 3,
            ..ThrottleConfig::from_secs(2, 60, 60)
        });
        for d in 1..=3 {
            t.failure(v4(d), t0);
        }
        t.failure(v4(4), t0);
        assert_eq!(t.len(), 3);
        assert!(!t.presence().may_track(v4(1)), "evicted");
        // 1 starts from zero: one failure does not throttle it; 2 still has its first one.
        assert_eq!(t.failure(v4(1), t0), Failure::Counted);
        assert!(!t.presence().may_track(v4(2)), "evicted in turn");
        assert!(matches!(t.failure(v4(3), t0), Failure::Throttled { .. }));

        // Addresses that come and go leave stale order items; they never pile up.
        for round in 0..10_000u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + round % 7));
            t.failure(ip, t0);
            t.success(ip, t0);
        }
        assert!(t.len() <= 3);
        assert!(t.order.len() <= 2 * 3 + 64, "{}", t.order.len());
    }

    #[test]
    fn presence_follows_the_table_exactly() {
        let t0 = Instant::now();
        let mut t = table(3, 10, 10);
        let p = t.presence();
        let ips: Vec<IpAddr> = (0..=255).map(v4).collect();
        for ip in &ips {
            assert!(!p.may_track(*ip));
            t.failure(*ip, t0);
            assert!(p.may_track(*ip));
        }
        for ip in &ips {
            t.success(*ip, t0);
        }
        assert!(t.is_empty());
        assert!(p.slots.iter().all(|s| s.load(Ordering::Relaxed) == 0));
    }
}
