//! Giving freed heap memory back to the operating system.
//!
//! Owns: a node-wide count of memory the shards freed (one atomic, added to by each shard's
//! housekeeping tick, never per message) and the one call into the C allocator that returns
//! free pages (glibc's `malloc_trim`).
//! Runs on: the shards note what they freed; the management thread gives it back, so that no
//! shard stops for the trim. Must never: trim per message or from a shard.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes the shards freed since the last trim (an estimate).
static FREED: AtomicUsize = AtomicUsize::new(0);

/// A shard freed about `bytes` (its tick adds up what it freed since the last one).
pub fn note_freed(bytes: usize) {
    if bytes > 0 {
        FREED.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// When at least `threshold` bytes were noted freed since the last time: gives the free pages
/// of every malloc arena back to the system and returns (the bytes noted, whether anything
/// was given back). For one thread (the management thread).
pub fn return_if_freed(threshold: usize) -> Option<(usize, bool)> {
    if FREED.load(Ordering::Relaxed) < threshold {
        return None;
    }
    let freed = FREED.swap(0, Ordering::Relaxed);
    Some((freed, return_free_memory()))
}

/// Returns the free pages of every malloc arena to the system (glibc), so that memory a
/// burst used and the broker freed stops counting in its RSS. Returns whether anything was
/// given back; a no-op elsewhere than glibc.
fn return_free_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `malloc_trim` takes no pointers and is thread-safe (it locks each arena).
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
