//! A rule's match speeds as EMQ X's rule metrics show them: `speed` (matches per second over
//! the last sampling tick), `speed_max` (the highest since start) and `speed_last5m` (the mean
//! over the last 5 minutes), from samples of the rule's total matches.
//!
//! Pure: the caller passes the time of each sample (the management thread samples every 10 s).
//! Must never: report a speed from fewer than two samples.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How long `speed_last5m` looks back.
const LAST_5M: Duration = Duration::from_secs(300);

/// The speed samples of one rule.
#[derive(Debug, Default)]
struct Speed {
    /// (when, matched so far), the newest last, covering the last 5 minutes.
    samples: VecDeque<(Instant, u64)>,
    /// Matches per second over the last tick.
    speed: f64,
    speed_max: f64,
}

/// The rules' speeds (the management thread keeps one, and samples every 10 s).
#[derive(Debug, Default)]
pub struct RuleSpeeds(HashMap<String, Speed>);

impl RuleSpeeds {
    /// Records that `id` had matched `matched` times by `now`.
    pub fn sample(&mut self, id: &str, matched: u64, now: Instant) {
        let s = self.0.entry(id.to_string()).or_default();
        if let Some(&(at, before)) = s.samples.back() {
            let secs = now.duration_since(at).as_secs_f64();
            if secs > 0.0 {
                s.speed = matched.saturating_sub(before) as f64 / secs;
                s.speed_max = s.speed_max.max(s.speed);
            }
        }
        s.samples.push_back((now, matched));
        while s
            .samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > LAST_5M)
        {
            s.samples.pop_front();
        }
    }

    /// `(speed, speed_max, speed_last5m)` of `id`, rounded to 2 decimals as EMQ X shows them.
    pub fn of(&self, id: &str) -> (f64, f64, f64) {
        let Some(s) = self.0.get(id) else {
            return (0.0, 0.0, 0.0);
        };
        let last5m = match (s.samples.front(), s.samples.back()) {
            (Some((a, ma)), Some((b, mb))) if b > a => {
                mb.saturating_sub(*ma) as f64 / b.duration_since(*a).as_secs_f64()
            }
            _ => 0.0,
        };
        (round2(s.speed), round2(s.speed_max), round2(last5m))
    }

    /// Drops a deleted rule's samples.
    pub fn forget(&mut self, id: &str) {
        self.0.remove(id);
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_come_from_the_last_tick_the_maximum_and_five_minutes() {
        let mut s = RuleSpeeds::default();
        let t0 = Instant::now();
        assert_eq!(s.of("r"), (0.0, 0.0, 0.0));
        s.sample("r", 0, t0);
        assert_eq!(s.of("r"), (0.0, 0.0, 0.0), "one sample: no speed yet");
        s.sample("r", 100, t0 + Duration::from_secs(10));
        s.sample("r", 130, t0 + Duration::from_secs(20));
        assert_eq!(s.of("r"), (3.0, 10.0, 6.5));
        // Samples older than 5 minutes leave the mean.
        s.sample("r", 160, t0 + Duration::from_secs(310));
        assert_eq!(s.of("r"), (0.1, 10.0, 0.2));
        s.forget("r");
        assert_eq!(s.of("r"), (0.0, 0.0, 0.0));
    }
}
