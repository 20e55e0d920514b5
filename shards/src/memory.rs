//! Giving freed heap memory back to the operating system.
//!
//! Owns: the one call into the C allocator that returns free pages (glibc's `malloc_trim`).
//! Runs on: a shard's thread, from its housekeeping tick, rarely (the caller rate-limits it).
//! Must never: be called per message: it walks every arena's free lists.

/// Returns the free pages of every malloc arena to the system (glibc), so that memory a
/// burst used and the broker freed stops counting in its RSS. Returns whether anything was
/// given back; a no-op elsewhere than glibc.
pub fn return_free_memory() -> bool {
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
