//! Whether a shard that ran out of work polls (yielding its CPU between polls) before it
//! sleeps, and for how long: the decision, with no I/O, owned by each executor's socket
//! reactor ([`crate::sockio`]) and taken on its thread.
//!
//! Why poll at all: a sleeping thread is woken by an interrupt, and on a virtual machine a
//! halted vCPU is woken by the host; a sleep and its wake-up cost a shard ~10-15 µs of CPU on
//! the project's 2-vCPU VM, and as much again in latency. A poll that finds the next packet
//! costs a few syscalls and hands the CPU to any other runnable thread (`sched_yield`) in
//! between: a lone client's QoS 2 flow or SUBSCRIBE is answered at once, its next packet
//! taken while the shard still looks.
//! Why not always: a poll that finds nothing is CPU burnt for nothing (a failed poll costs
//! its whole length, a successful one saves one wake-up), so polling pays only where most
//! polls succeed.
//!
//! So the window is either the longest one (`shards.spin_us`) or nothing. Every wait of the
//! shard, polled or slept, is scored: work within the longest window is a success. The
//! score is a moving average over the last ~8 waits; the shard polls while at least
//! [`POLL_SCORE`] of them succeeded. An idle shard's first empty wait lowers the score; a
//! client that sends now and then (gaps longer than the window) never raises it.
//!
//! A yield that gave the CPU away for long ([`SpinWindow::cpu_wanted`]) shuts the window for
//! [`HOLD`]: another thread on that CPU has work of its own (a load generator, another
//! program), and a shard that keeps polling there is counted by the kernel's scheduler as
//! a thread that never sleeps. Its own work then waits behind the other thread's time
//! slices (milliseconds, measured: message latency 1.1 → 2.9 ms with 10,000 clients at 1
//! msg/s and one busy generator thread on the same 2 vCPUs), where a shard that sleeps is
//! woken ahead of it. A short yield (a client that answers and waits again) is what polling
//! is for: the two take turns on the CPU without its halting.
//!
//! Must never: poll longer than the configured window, or at all when that is zero.

use std::time::{Duration, Instant};

/// The score's scale: a shard whose every wait succeeded scores this.
const FULL: u32 = 1024;
/// The share of successful waits, out of [`FULL`], from which a shard polls (3 in 4).
pub const POLL_SCORE: u32 = FULL * 3 / 4;
/// How long a window stays shut after a poll found the CPU wanted by another thread.
pub const HOLD: Duration = Duration::from_millis(50);

/// A shard's poll decision: its longest window (`shards.spin_us`), the score of its recent
/// waits, and whether another thread's work holds the window shut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpinWindow {
    max: Duration,
    score: u32,
    /// Shut until then: another thread wanted the CPU.
    held_until: Option<Instant>,
}

impl SpinWindow {
    /// A window that opens once waits shorter than `max` prevail (zero: never polls).
    pub fn new(max: Duration) -> SpinWindow {
        SpinWindow {
            max,
            score: 0,
            held_until: None,
        }
    }

    /// How long to poll before sleeping, at `at`.
    pub fn now(&self, at: Instant) -> Duration {
        if self.score < POLL_SCORE || self.held_until.is_some_and(|t| at < t) {
            Duration::ZERO
        } else {
            self.max
        }
    }

    /// After a wait (polled or slept): `waited` is the time from its start until work came,
    /// or `None` if none came before the shard gave up sleeping.
    pub fn after_wait(&mut self, waited: Option<Duration>) {
        let success = !self.max.is_zero() && waited.is_some_and(|w| w <= self.max);
        self.score -= self.score / 8;
        if success {
            self.score += FULL / 8;
        }
    }

    /// A poll gave the CPU to another thread that wanted it (at `at`): polling takes that
    /// thread's CPU and, once the scheduler counts the poll as the shard's share, delays the
    /// shard's own work behind the other thread's time slices. The window shuts for [`HOLD`].
    pub fn cpu_wanted(&mut self, at: Instant) {
        self.held_until = Some(at + HOLD);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// A 50 µs window that 40 short waits opened.
    fn opened() -> SpinWindow {
        let mut w = SpinWindow::new(us(50));
        for _ in 0..40 {
            w.after_wait(Some(us(1)));
        }
        w
    }

    #[test]
    fn the_window_opens_once_most_waits_are_short() {
        let t = Instant::now();
        let mut w = SpinWindow::new(us(50));
        assert_eq!(w.now(t), Duration::ZERO);
        let mut opened_after = None;
        for i in 1..=20 {
            w.after_wait(Some(us(20)));
            if w.now(t) == us(50) {
                opened_after = Some(i);
                break;
            }
        }
        // 1 - (7/8)^n >= 3/4 from n = 11.
        assert_eq!(opened_after, Some(11));
    }

    #[test]
    fn long_and_empty_waits_shut_it_and_a_mix_keeps_it_shut() {
        let t = Instant::now();
        let mut w = opened();
        assert_eq!(w.now(t), us(50));
        w.after_wait(Some(us(51)));
        assert_eq!(w.now(t), us(50), "one long wait among short ones");
        w.after_wait(None);
        w.after_wait(Some(us(1000)));
        assert_eq!(w.now(t), Duration::ZERO, "three in a row");
        // Half the waits short: never opens.
        for i in 0..100 {
            w.after_wait(if i % 2 == 0 { Some(us(1)) } else { None });
            assert_eq!(w.now(t), Duration::ZERO);
        }
    }

    #[test]
    fn a_cpu_wanted_by_another_thread_shuts_the_window_for_the_hold() {
        let start = Instant::now();
        let mut w = opened();
        assert_eq!(w.now(start), us(50));
        w.cpu_wanted(start);
        assert_eq!(w.now(start), Duration::ZERO);
        assert_eq!(w.now(start + HOLD / 2), Duration::ZERO, "still held");
        assert_eq!(
            w.now(start + HOLD),
            us(50),
            "open again once the hold is over"
        );
    }

    #[test]
    fn a_zero_longest_window_never_polls() {
        let t = Instant::now();
        let mut w = SpinWindow::new(Duration::ZERO);
        for _ in 0..40 {
            w.after_wait(Some(Duration::ZERO));
        }
        assert_eq!(w.now(t), Duration::ZERO);
    }
}
