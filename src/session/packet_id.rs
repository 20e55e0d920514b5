//! Packet identifiers for messages the broker sends to the client.
//!
//! Owns: the allocation order (1..=65535, wrapping, skipping ids still in use).
//! Pure: never does I/O and never looks at the clock. Which ids are in use is asked from the
//! caller, so the allocator holds one `u16` and no set.

/// Hands out packet identifiers in increasing order, wrapping after 65535 to 1.
#[derive(Debug, Clone)]
pub struct PacketIds {
    next: u16,
}

impl Default for PacketIds {
    fn default() -> Self {
        PacketIds { next: 1 }
    }
}

impl PacketIds {
    /// The next id for which `in_use` is false; `None` when all 65535 are taken.
    pub fn alloc(&mut self, mut in_use: impl FnMut(u16) -> bool) -> Option<u16> {
        for _ in 0..u16::MAX {
            let id = self.next;
            self.next = if id == u16::MAX { 1 } else { id + 1 };
            if !in_use(id) {
                return Some(id);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_start_at_1_and_wrap_skipping_zero() {
        let mut ids = PacketIds { next: 65534 };
        assert_eq!(ids.alloc(|_| false), Some(65534));
        assert_eq!(ids.alloc(|_| false), Some(65535));
        assert_eq!(ids.alloc(|_| false), Some(1));
        assert_eq!(PacketIds::default().alloc(|_| false), Some(1));
    }

    #[test]
    fn ids_in_use_are_skipped() {
        let mut ids = PacketIds::default();
        assert_eq!(ids.alloc(|id| id <= 3), Some(4));
        assert_eq!(ids.alloc(|_| true), None);
    }
}
