//! Keepalive: the deadline by which the client must have sent another packet.
//!
//! Owns: the keepalive interval, its multiplier and the time of the last received packet.
//! Pure: never does I/O and never calls `Instant::now()`; every time is passed in.

use std::time::{Duration, Instant};

/// Keepalive of one connection ([MQTT-3.1.2-24]: the server closes after 1.5x without a packet).
#[derive(Debug, Clone, Copy)]
pub struct Keepalive {
    /// In milliseconds (0: keepalive 0, disabled): every session holds one.
    timeout_ms: u32,
    last_received: Instant,
}

impl Keepalive {
    /// Keepalive of `secs` seconds (0 disables it), enforced at `secs * multiplier`.
    pub fn new(secs: u16, multiplier: f32, now: Instant) -> Keepalive {
        let ms = f64::from(secs) * f64::from(multiplier.max(1.0)) * 1000.0;
        Keepalive {
            // A float-to-int `as` saturates: u32::MAX ms is 49 days.
            timeout_ms: ms.round() as u32,
            last_received: now,
        }
    }

    /// A packet arrived.
    pub fn received(&mut self, now: Instant) {
        self.last_received = now;
    }

    /// When the connection expires if nothing else arrives; `None` when disabled.
    pub fn deadline(&self) -> Option<Instant> {
        (self.timeout_ms > 0)
            .then(|| self.last_received + Duration::from_millis(u64::from(self.timeout_ms)))
    }

    /// True when the deadline has passed.
    pub fn expired(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| now >= d)
    }
}
