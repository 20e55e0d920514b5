//! An MQTT listener's connection cap (`listeners.<kind>.max_connections`), shared by every
//! shard; one per listener.
//!
//! Owns: the number of live connections of one listener of the node (accepted, in their handshake, handed
//! over or served) and of the connections refused over the cap: two atomics, touched once
//! when a connection is accepted and once when it ends, never per packet.
//! Runs on: every shard thread (the accept loops take slots; a slot is given back on whichever
//! shard the connection ends).
//! Must never: let a connection go uncounted (the [`ConnSlot`] travels with the socket through
//! a hand-over and is given back when it is dropped), or be touched on the message path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The node's connection count and cap.
#[derive(Debug)]
pub struct ConnSlots {
    live: AtomicU64,
    refused: AtomicU64,
    max: u64,
}

/// One connection's place under the cap; given back when dropped.
#[derive(Debug)]
pub struct ConnSlot(Arc<ConnSlots>);

impl ConnSlots {
    /// A cap of `max` live connections.
    pub fn new(max: u64) -> Arc<ConnSlots> {
        Arc::new(ConnSlots {
            live: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            max,
        })
    }

    /// A slot for a connection just accepted, or `None` (counted) when the cap is reached.
    pub fn try_take(self: &Arc<Self>) -> Option<ConnSlot> {
        let before = self.live.fetch_add(1, Ordering::AcqRel);
        if before >= self.max {
            self.live.fetch_sub(1, Ordering::AcqRel);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(ConnSlot(self.clone()))
    }

    /// The cap.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Live connections now.
    pub fn live(&self) -> u64 {
        self.live.load(Ordering::Acquire)
    }

    /// Connections refused over the cap since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_holds_and_a_slot_given_back_makes_room() {
        let slots = ConnSlots::new(2);
        let a = slots.try_take().expect("1 of 2");
        let b = slots.try_take().expect("2 of 2");
        assert!(slots.try_take().is_none(), "over the cap");
        assert_eq!((slots.live(), slots.refused()), (2, 1));
        drop(a);
        let c = slots.try_take().expect("room again");
        assert_eq!(slots.live(), 2);
        drop((b, c));
        assert_eq!(slots.live(), 0);
    }
}
