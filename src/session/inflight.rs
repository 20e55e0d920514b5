//! The outgoing inflight window: QoS 1/2 messages sent to the client and not yet acknowledged.
//!
//! Owns: the window's entries in send order, their acknowledgement state and send time.
//! Pure: never does I/O and never looks at the clock (times are passed in). Lookups by packet
//! id scan from the front: acknowledgements usually arrive in send order and windows are
//! small (EMQ X default 32), so this beats a map in time and memory per session.

use super::lazy_deque::LazyDeque;
use std::time::Instant;

use super::message::Message;

/// Where an outgoing QoS 1/2 message is in its acknowledgement flow (spec 4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflightState {
    /// QoS 1 PUBLISH sent, waiting for PUBACK.
    WaitAck,
    /// QoS 2 PUBLISH sent, waiting for PUBREC.
    WaitRec,
    /// QoS 2 PUBREL sent, waiting for PUBCOMP.
    WaitComp,
}

/// One message in the window.
#[derive(Debug, Clone)]
pub struct InflightEntry {
    pub packet_id: u16,
    /// The message as delivered (effective QoS and retain flag already applied).
    pub msg: Message,
    pub state: InflightState,
    /// When the PUBLISH or PUBREL was last written (for retries).
    pub sent_at: Instant,
    /// Not yet re-sent on this connection: marked at resume, cleared when re-sent (the client
    /// may allow fewer messages outstanding than the window holds).
    pub resend: bool,
}

/// The window, in send order.
#[derive(Debug, Clone, Default)]
pub struct Inflight {
    entries: LazyDeque<InflightEntry>,
    /// Entries with `resend` set.
    to_resend: usize,
}

impl Inflight {
    /// Number of unacknowledged messages.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Frees the window's storage when it is empty (a burst's high-water mark is not kept
    /// for a client gone quiet).
    /// Returns the bytes freed.
    pub fn release_idle(&mut self) -> usize {
        self.entries.release_if_empty()
    }

    /// True when `packet_id` is in the window.
    pub fn contains(&self, packet_id: u16) -> bool {
        self.position(packet_id).is_some()
    }

    /// Appends a just-sent message.
    pub fn push(&mut self, entry: InflightEntry) {
        self.entries.push_back(entry);
    }

    /// The entry for `packet_id`.
    pub fn get_mut(&mut self, packet_id: u16) -> Option<&mut InflightEntry> {
        let i = self.position(packet_id)?;
        self.entries.get_mut(i)
    }

    /// The entry for `packet_id`, to read.
    pub fn get(&self, packet_id: u16) -> Option<&InflightEntry> {
        self.entries.get(self.position(packet_id)?)
    }

    /// Drops the entry for `packet_id` if it is in `state`, returning its message's sequence
    /// number (see `persist`); `None` when there is no such entry.
    pub fn remove_in_state(&mut self, packet_id: u16, state: InflightState) -> Option<u64> {
        match self.position(packet_id) {
            Some(i) if self.entries[i].state == state => {
                let seq = self.entries[i].msg.seq;
                self.discard(i);
                Some(seq)
            }
            _ => None,
        }
    }

    /// Drops the entry for `packet_id` whatever its state; false when there is none.
    pub fn remove(&mut self, packet_id: u16) -> bool {
        match self.position(packet_id) {
            Some(i) => {
                self.discard(i);
                true
            }
            None => false,
        }
    }

    /// Marks every entry to be re-sent (a resumed session's new connection).
    pub fn mark_all_for_resend(&mut self) {
        for e in self.entries.iter_mut() {
            e.resend = true;
        }
        self.to_resend = self.entries.len();
    }

    /// Entries marked and not yet re-sent.
    pub fn to_resend(&self) -> usize {
        self.to_resend
    }

    /// The oldest marked entry, unmarked (the caller re-sends it); `None` when none is marked.
    pub fn next_to_resend(&mut self) -> Option<&mut InflightEntry> {
        if self.to_resend == 0 {
            return None;
        }
        let e = self.entries.iter_mut().find(|e| e.resend)?;
        e.resend = false;
        self.to_resend -= 1;
        Some(e)
    }

    /// Drops entry `i` where it lies: acknowledgements release the entry, nobody needs it
    /// back, and handing a 136-byte entry out was a copy per acknowledgement.
    fn discard(&mut self, i: usize) {
        if self.entries[i].resend {
            self.to_resend -= 1;
        }
        if i == 0 {
            self.entries.pop_front();
        } else {
            self.entries.remove(i);
        }
    }

    /// Entries in send order.
    pub fn iter(&self) -> impl Iterator<Item = &InflightEntry> {
        self.entries.iter()
    }

    /// Entries in send order, mutable (for redelivery).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut InflightEntry> {
        self.entries.iter_mut()
    }

    /// The earliest `sent_at` (the next retry is due `retry_interval` after it).
    pub fn oldest_sent_at(&self) -> Option<Instant> {
        self.entries.iter().map(|e| e.sent_at).min()
    }

    fn position(&self, packet_id: u16) -> Option<usize> {
        self.entries.iter().position(|e| e.packet_id == packet_id)
    }
}
