//! A log line that repeats at most once a second: for conditions an attacker or an
//! exhausted resource can trigger thousands of times a second (accept failures, refused
//! connections), where one line per event would flood the log and cost more than the event.
//!
//! Owns: the time of the last line and how many were held back since. Used by one task on
//! one executor. Must never: hide the first occurrence, or the count of held-back ones.

use std::time::{Duration, Instant};

/// The shortest interval between two lines.
const EVERY: Duration = Duration::from_secs(1);

/// Remembers when its line was last written.
#[derive(Debug, Default)]
pub struct Warned {
    last: Option<Instant>,
    held_back: u64,
}

impl Warned {
    /// Calls `log` with the number of occurrences held back since the last line, if a second
    /// has passed since then (or this is the first); otherwise counts this one.
    pub fn warn(&mut self, log: impl FnOnce(u64)) {
        self.warn_at(Instant::now(), log);
    }

    fn warn_at(&mut self, now: Instant, log: impl FnOnce(u64)) {
        if self.last.is_none_or(|t| now.duration_since(t) >= EVERY) {
            self.last = Some(now);
            log(std::mem::take(&mut self.held_back));
        } else {
            self.held_back += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_the_first_then_at_most_once_a_second_with_the_count_held_back() {
        let t0 = Instant::now();
        let mut w = Warned::default();
        let mut lines = Vec::new();
        for ms in [0u64, 10, 20, 999, 1000, 1001, 2500] {
            w.warn_at(t0 + Duration::from_millis(ms), |held| {
                lines.push((ms, held))
            });
        }
        assert_eq!(lines, vec![(0, 0), (1000, 3), (2500, 1)]);
    }
}
