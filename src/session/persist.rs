//! What a durable session asks to be written down: every change to the state a restart must
//! find again (its settings, subscriptions, the QoS 1/2 messages it holds and where each is
//! in its flow, the incoming QoS 2 ids awaiting PUBREL), as [`Persist`] records in order.
//!
//! Owns: the record vocabulary and the sequence numbers that name a session's messages. Pure:
//! the session appends records to its own list; the glue takes them ([`Session::take_persist`])
//! and writes them to the shard's journal. Only persistent sessions record anything, and only
//! QoS 1/2 messages: clean sessions and QoS 0 cost nothing.
//!
//! [`Session::take_persist`]: super::Session::take_persist

use crate::codec::{ProtocolVersion, Str, SubOptions};

use super::Message;

/// One change to a durable session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persist {
    /// The session's settings (on connect, and when a 5.0 DISCONNECT changes the expiry).
    Open {
        protocol: ProtocolVersion,
        expiry_secs: u64,
    },
    /// A subscription was added or replaced (with its 5.0 Subscription Identifier, 0 = none).
    Subscribe {
        filter: Str,
        opts: SubOptions,
        id: u32,
    },
    /// A subscription was removed.
    Unsubscribe { filter: Str },
    /// A QoS 1/2 message entered the session: queued (`packet_id` None) or sent at once.
    Keep {
        seq: u64,
        msg: Message,
        packet_id: Option<u16>,
    },
    /// A queued message went out with this packet id.
    Sent { seq: u64, packet_id: u16 },
    /// A QoS 2 message was PUBREC'd: only its PUBREL/PUBCOMP remain.
    Received { seq: u64 },
    /// A message left the session: acknowledged, refused, dropped or expired.
    Done { seq: u64 },
    /// An incoming QoS 2 message awaits its PUBREL.
    AwaitRel { packet_id: u16 },
    /// Its PUBREL came.
    Released { packet_id: u16 },
}
