//! `Link`: the shard-side handle of one live client connection.
//!
//! Owns: the connection's outbound byte buffer and its wake-up/close signals. Whoever
//! produces packets for the client (its own read loop, a delivery from another client, a
//! timer) encodes them into the link; the connection task alone writes them to the socket,
//! in batches, once per wake-up.
//! Must never: write to the socket itself or hold a `RefCell` borrow across an await.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

use bytes::BytesMut;

use crate::codec::{self, Packet, Properties, ProtocolVersion, Publish, PublishRef, QoS, Str};
use crate::metrics::Metrics;
use crate::session::CloseReason;
use crate::session::Message;
use crate::topic::{AliasUse, OutgoingAliases};

use super::flow::FlowKey;

/// One live connection, as seen by its shard.
pub struct Link {
    /// Unique on this shard; tells a taken-over connection from its successor.
    pub id: u64,
    /// Protocol of this connection (encoding depends on it).
    pub version: ProtocolVersion,
    out: RefCell<BytesMut>,
    /// Bytes the connection task took from `out` and is writing to the socket now.
    writing: Cell<usize>,
    /// Flow control watches this client (backlogged, or close to it): the connection task
    /// asks for a re-check whenever a write completes.
    flow_watched: Cell<bool>,
    waker: Cell<Option<Waker>>,
    woken: Cell<bool>,
    close: Cell<Option<CloseReason>>,
    /// Per-connection figures for the management API (EMQ X `recv_*` / `send_*`).
    pub counters: LinkCounters,
    /// What only some connections need (flow control's hold, a takeover's wait): boxed
    /// while in use, so that an idle connection does not carry it.
    rare: RefCell<Option<Box<Rare>>>,
    /// A takeover asked the connection task to handle what its socket already holds.
    drain: Cell<Drain>,
    /// 5.0: the client accepts topic aliases (their table is in `rare`).
    aliased: bool,
}

/// The part of a [`Link`] in use only at times.
#[derive(Default)]
struct Rare {
    /// The backlog episodes this client's messages were queued into (see `flow`): its
    /// connection reads no more input until every one of them has ended.
    throttled: Vec<FlowKey>,
    /// The takeover waiting for [`Link::drained`].
    drain_waker: Option<Waker>,
    /// 5.0: the topic aliases bound towards the client (`None`: it accepts none).
    aliases: Option<OutgoingAliases>,
}

impl Rare {
    fn is_empty(&self) -> bool {
        self.throttled.is_empty() && self.drain_waker.is_none() && self.aliases.is_none()
    }

    /// Frees `rare` once nothing is left in it.
    fn trim(rare: &mut Option<Box<Rare>>) {
        if rare.as_ref().is_some_and(|r| r.is_empty()) {
            *rare = None;
        }
    }
}

/// Where a takeover's request to drain the old connection stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Drain {
    NotAsked,
    Asked,
    Done,
}

/// Per-connection traffic figures, as EMQ X reports them per connection.
#[derive(Default)]
pub struct LinkCounters {
    /// Socket reads / bytes / packets / PUBLISH packets received.
    pub recv_cnt: Cell<u64>,
    pub recv_oct: Cell<u64>,
    pub recv_pkt: Cell<u64>,
    pub recv_msg: Cell<u64>,
    /// Socket writes / bytes / packets / PUBLISH packets sent.
    pub send_cnt: Cell<u64>,
    pub send_oct: Cell<u64>,
    pub send_pkt: Cell<u64>,
    pub send_msg: Cell<u64>,
}

fn bump(c: &Cell<u64>, by: u64) {
    c.set(c.get() + by);
}

impl LinkCounters {
    /// A packet was read.
    pub fn received(&self, packet: &Packet) {
        bump(&self.recv_pkt, 1);
        if matches!(packet, Packet::Publish(_)) {
            bump(&self.recv_msg, 1);
        }
    }
    /// `n` bytes were read in one socket read.
    pub fn read(&self, n: usize) {
        bump(&self.recv_cnt, 1);
        bump(&self.recv_oct, n as u64);
    }
    /// A packet other than a PUBLISH was sent (by the accepting shard: the CONNACK of a
    /// connection handed over).
    pub fn sent(&self) {
        bump(&self.send_pkt, 1);
    }
    /// `n` bytes were written in one socket write.
    pub fn wrote(&self, n: usize) {
        bump(&self.send_cnt, 1);
        bump(&self.send_oct, n as u64);
    }
}

impl Link {
    /// A link with an empty outbound buffer.
    pub fn new(id: u64, version: ProtocolVersion) -> Link {
        Link {
            id,
            version,
            out: RefCell::new(BytesMut::new()),
            writing: Cell::new(0),
            flow_watched: Cell::new(false),
            waker: Cell::new(None),
            woken: Cell::new(false),
            close: Cell::new(None),
            counters: LinkCounters::default(),
            rare: RefCell::new(None),
            drain: Cell::new(Drain::NotAsked),
            aliased: false,
        }
    }

    /// 5.0: the client accepts `max` topic aliases (its Topic Alias Maximum): PUBLISHes to it
    /// bind and use them from now on.
    pub fn use_topic_aliases(&mut self, max: u16) {
        self.aliased = max > 0;
        let rare = self.rare.get_mut();
        if max > 0 {
            rare.get_or_insert_with(Box::default).aliases = Some(OutgoingAliases::new(max));
        } else if let Some(r) = rare.as_mut() {
            r.aliases = None;
        }
    }

    /// With topic aliases in use, `publish` names its topic by alias (see [`AliasUse`]).
    fn alias(&self, publish: &mut Publish) {
        let mut rare = self.rare.borrow_mut();
        if let Some(aliases) = rare.as_mut().and_then(|r| r.aliases.as_mut()) {
            match aliases.name(&publish.topic) {
                AliasUse::Full => {}
                AliasUse::Bind(a) => publish.properties.topic_alias = Some(a),
                AliasUse::Use(a) => {
                    publish.properties.topic_alias = Some(a);
                    publish.topic = Str::default();
                }
            }
        }
    }

    /// Encodes `packet` into the outbound buffer, counts it, and wakes the writer.
    pub fn send(&self, packet: &Packet, metrics: &mut Metrics) {
        if let (Packet::Publish(p), true) = (packet, self.aliased) {
            let mut p = p.clone();
            let topic = p.topic.clone();
            self.alias(&mut p);
            return self.send_publish(&Packet::Publish(p), &topic, metrics);
        }
        let mut out = self.out_buf();
        let before = out.len();
        match codec::encode(packet, self.version, &mut out) {
            Ok(()) => {
                metrics.count_sent(packet, out.len() - before);
                bump(&self.counters.send_pkt, 1);
                if matches!(packet, Packet::Publish(_)) {
                    bump(&self.counters.send_msg, 1);
                }
            }
            Err(e) => {
                out.truncate(before);
                tracing::warn!("dropping a packet that cannot be encoded: {e}");
                return;
            }
        }
        drop(out);
        self.wake();
    }

    /// Encodes `msg` as a PUBLISH (QoS `qos`, `packet_id`, not a duplicate) into the
    /// outbound buffer without copying it into a packet, counts it, and wakes the writer.
    pub fn send_message(
        &self,
        msg: &Message,
        qos: QoS,
        packet_id: Option<u16>,
        retain: bool,
        metrics: &mut Metrics,
    ) {
        if self.aliased {
            let mut p = msg.to_publish(packet_id, false);
            p.qos = qos;
            p.retain = retain;
            self.alias(&mut p);
            return self.send_publish(&Packet::Publish(p), &msg.topic, metrics);
        }
        let empty;
        let properties = match &msg.properties {
            Some(p) => &**p,
            None => {
                empty = Properties::default();
                &empty
            }
        };
        let publish = PublishRef {
            dup: false,
            qos,
            retain,
            topic: &msg.topic,
            packet_id,
            properties,
            payload: &msg.payload,
        };
        let encoded = codec::encode_publish(&publish, self.version, &mut self.out_buf());
        match encoded {
            Ok(bytes) => {
                metrics.count_publish_sent(&msg.topic, bytes);
                bump(&self.counters.send_pkt, 1);
                bump(&self.counters.send_msg, 1);
                self.wake();
            }
            Err(e) => tracing::warn!("dropping a message that cannot be encoded: {e}"),
        }
    }

    /// Encodes a PUBLISH whose topic went by alias (`topic` is the real one, for the
    /// metrics), counts it, and wakes the writer.
    fn send_publish(&self, packet: &Packet, topic: &str, metrics: &mut Metrics) {
        let mut out = self.out_buf();
        let before = out.len();
        match codec::encode(packet, self.version, &mut out) {
            Ok(()) => {
                metrics.count_publish_sent(topic, out.len() - before);
                bump(&self.counters.send_pkt, 1);
                bump(&self.counters.send_msg, 1);
            }
            Err(e) => {
                out.truncate(before);
                tracing::warn!("dropping a message that cannot be encoded: {e}");
                return;
            }
        }
        drop(out);
        self.wake();
    }

    /// The outbound buffer to encode into: a spare one from the shard's pool when the
    /// connection holds none (it gives its buffers back when it goes idle).
    fn out_buf(&self) -> std::cell::RefMut<'_, BytesMut> {
        let mut out = self.out.borrow_mut();
        super::bufpool::ready(&mut out);
        out
    }

    /// Bytes waiting to be written.
    pub fn pending(&self) -> usize {
        self.out.borrow().len()
    }

    /// Bytes not yet written to the socket: waiting here, or in the write under way.
    pub fn unwritten(&self) -> usize {
        self.pending() + self.writing.get()
    }

    /// The connection task is writing `n` bytes it took (0: the write completed).
    pub fn set_writing(&self, n: usize) {
        self.writing.set(n);
    }

    /// Flow control watches this client's progress (see `Shard::note_backlog`).
    pub fn set_flow_watched(&self, watched: bool) {
        self.flow_watched.set(watched);
    }

    /// Whether a completed write should make flow control look at this client again.
    pub fn flow_watched(&self) -> bool {
        self.flow_watched.get()
    }

    /// Takes everything waiting to be written (the caller writes it).
    pub fn take_output(&self, into: &mut BytesMut) {
        let mut out = self.out.borrow_mut();
        if into.is_empty() {
            std::mem::swap(into, &mut *out);
        } else {
            into.extend_from_slice(&out);
            out.clear();
        }
    }

    /// Flow control: this client fed a subscriber backlogged in episode `key`.
    pub fn throttle(&self, key: FlowKey) {
        let mut rare = self.rare.borrow_mut();
        let keys = &mut rare.get_or_insert_with(Box::default).throttled;
        if !keys.contains(&key) {
            keys.push(key);
        }
    }

    /// Whether the connection must pause before handling more input.
    pub fn is_throttled(&self) -> bool {
        self.rare
            .borrow()
            .as_ref()
            .is_some_and(|r| !r.throttled.is_empty())
    }

    /// Forgets the episodes that ended (`holds` says which still hold); true while any is
    /// left.
    pub fn still_throttled(&self, holds: impl Fn(FlowKey) -> bool) -> bool {
        let mut rare = self.rare.borrow_mut();
        let Some(r) = rare.as_mut() else {
            return false;
        };
        r.throttled.retain(|k| holds(*k));
        let left = !r.throttled.is_empty();
        Rare::trim(&mut rare);
        left
    }

    /// Ends the pause whatever holds it (the safety net of `flow::MAX_PAUSE`).
    pub fn clear_throttle(&self) {
        let mut rare = self.rare.borrow_mut();
        if let Some(r) = rare.as_mut() {
            r.throttled.clear();
        }
        Rare::trim(&mut rare);
    }

    /// A newer connection of the same client is taking over: asks the connection task to
    /// handle the input its socket holds now (what the client sent before it reconnected:
    /// acks, publishes) while it still owns the session.
    pub fn ask_drain(&self) {
        if self.drain.get() == Drain::NotAsked {
            self.drain.set(Drain::Asked);
            self.wake();
        }
    }

    /// Whether a drain was asked and not done yet.
    pub fn drain_asked(&self) -> bool {
        self.drain.get() == Drain::Asked
    }

    /// The connection task handled its input (or ended): the takeover may go on.
    pub fn drained(&self) {
        self.drain.set(Drain::Done);
        let waker = {
            let mut rare = self.rare.borrow_mut();
            let w = rare.as_mut().and_then(|r| r.drain_waker.take());
            Rare::trim(&mut rare);
            w
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Completes once [`Link::drained`] was called.
    pub async fn wait_drained(&self) {
        poll_fn(|cx| {
            if self.drain.get() == Drain::Done {
                Poll::Ready(())
            } else {
                self.rare
                    .borrow_mut()
                    .get_or_insert_with(Box::default)
                    .drain_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// Asks the connection task to close the socket (after flushing what is queued).
    pub fn close(&self, reason: CloseReason) {
        if self.close.get().is_none() {
            self.close.set(Some(reason));
        }
        self.wake();
    }

    /// The close reason, once closing was asked.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.close.get()
    }

    fn wake(&self) {
        self.woken.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// Completes when there is something to write or a close was asked.
    pub async fn wait(&self) {
        poll_fn(|cx| {
            if self.woken.replace(false) {
                Poll::Ready(())
            } else {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}
