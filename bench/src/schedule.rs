//! When each message of one publisher is due.
//!
//! Owns: the open-loop send schedule. At a fixed rate the send time of message `seq` is fixed in
//! advance (`start + (seq + phase) / rate`), whatever the broker does, and latency is measured
//! from that time: a broker that stalls the sender cannot hide the stall (no coordinated
//! omission). Unlimited pacing sends whenever the window and the socket allow.
//! Must never: read the clock (callers pass `now`), so it is testable without waiting.

/// How a publisher paces itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// As fast as the in-flight window and the socket allow.
    Unlimited,
    /// `per_s` messages a second; `phase` in `0..1` spreads publishers over one interval.
    Rate { per_s: f64, phase: f64 },
}

/// One publisher's schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub pace: Pace,
    /// First send time (ns, [`crate::clock`]).
    pub start_ns: u64,
    /// No message is due at or after this time.
    pub end_ns: u64,
    /// At most this many messages.
    pub limit: u64,
}

/// What the publisher should do about message `seq` now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Send it now, stamped with this time (the scheduled time, or `now` when unlimited).
    Send(u64),
    /// Not yet: wake up at this time.
    At(u64),
    /// The schedule is over.
    Done,
}

impl Schedule {
    /// The decision for message `seq` at time `now`.
    pub fn due(&self, seq: u64, now: u64) -> Due {
        if seq >= self.limit {
            return Due::Done;
        }
        match self.pace {
            Pace::Unlimited => {
                if now >= self.end_ns {
                    Due::Done
                } else if now < self.start_ns {
                    Due::At(self.start_ns)
                } else {
                    Due::Send(now)
                }
            }
            Pace::Rate { per_s, phase } => {
                let t = self.start_ns + ((seq as f64 + phase) * 1e9 / per_s) as u64;
                if t >= self.end_ns {
                    Due::Done
                } else if t > now {
                    Due::At(t)
                } else {
                    Due::Send(t)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(per_s: f64, phase: f64) -> Schedule {
        Schedule {
            pace: Pace::Rate { per_s, phase },
            start_ns: 1_000,
            end_ns: 1_000 + 1_000_000_000,
            limit: u64::MAX,
        }
    }

    #[test]
    fn fixed_rate_times_are_fixed_in_advance() {
        let s = rate(1000.0, 0.0);
        assert_eq!(s.due(0, 0), Due::At(1_000));
        assert_eq!(s.due(0, 1_000), Due::Send(1_000));
        assert_eq!(s.due(1, 1_000), Due::At(1_001_000));
        // A sender that is late still stamps the scheduled time, not the time it got to send.
        assert_eq!(s.due(5, 900_000_000), Due::Send(5_001_000));
    }

    #[test]
    fn phase_shifts_within_one_interval() {
        let s = rate(100.0, 0.5);
        assert_eq!(s.due(0, 0), Due::At(1_000 + 5_000_000));
        assert_eq!(s.due(1, 0), Due::At(1_000 + 15_000_000));
    }

    #[test]
    fn schedule_ends_at_the_end_time_or_the_limit() {
        let s = rate(10.0, 0.0);
        assert_eq!(s.due(9, u64::MAX), Due::Send(1_000 + 900_000_000));
        assert_eq!(s.due(10, u64::MAX), Due::Done);
        let mut l = rate(1000.0, 0.0);
        l.limit = 3;
        assert_eq!(l.due(2, u64::MAX), Due::Send(1_000 + 2_000_000));
        assert_eq!(l.due(3, 0), Due::Done);
    }

    #[test]
    fn unlimited_sends_now_between_start_and_end() {
        let s = Schedule {
            pace: Pace::Unlimited,
            start_ns: 100,
            end_ns: 200,
            limit: 5,
        };
        assert_eq!(s.due(0, 50), Due::At(100));
        assert_eq!(s.due(0, 150), Due::Send(150));
        assert_eq!(s.due(0, 200), Due::Done);
        assert_eq!(s.due(5, 150), Due::Done);
    }
}
