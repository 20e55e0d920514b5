//! The generator's one clock: nanoseconds since a process-wide epoch.
//!
//! Owns: the epoch (set on first use). Publishers and subscribers live in the same process, so
//! a timestamp written into a payload by one thread is comparable with `now_ns()` on another.
//! Must never: be used to compare times across processes.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the epoch (monotonic).
pub fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Fixes the epoch now (call once at start-up so the first timestamps are small).
pub fn init() {
    let _ = now_ns();
}
