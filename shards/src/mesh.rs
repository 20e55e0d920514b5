//! The cross-shard mesh: one bounded lock-free SPSC channel (glommio `shared_channel`) per
//! ordered pair of executors, with a per-peer outbox for back-pressure.
//!
//! Owns: every channel between executors, their outboxes and their counters. Each
//! executor holds one [`Mesh`] (an `Rc`, used only on that executor's thread).
//!
//! The rules that keep the mesh free of the full-mesh deadlock (DataDog/glommio#555):
//! - [`Mesh::send`] never waits: it `try_send`s, and when the channel is full (or older
//!   messages are already waiting) it appends to that peer's outbox, which a separate
//!   flusher task drains with an awaiting send. Nothing is ever dropped while the peer lives.
//! - The tasks that drain our own inboxes ([`Mesh::spawn_drains`]) run a synchronous
//!   handler: they never await a peer, so every executor keeps draining whatever happens.
//! - Producers that can slow down (connection read loops) check [`Mesh::congested`] and
//!   await [`Mesh::wait_uncongested`] before reading more input; that is the back-pressure.
//!
//! Posted messages ([`Mesh::post`], [`Mesh::take_posted`]) take a second path: one unbounded
//! lock-free queue per receiver (crossbeam-channel), which wakes nobody. The receiver takes
//! them itself, before anything they must precede: a message posted before an action of the
//! sender that the receiver learns of by any path is in the queue when it looks, so the
//! sender need neither wait for an answer nor wake a receiver that has nothing to do.
//!
//! Every message put in a peer's channel is counted on the peer's [`Doorbell`], which rings
//! it if it is napping in its socket reactor (`sockio`); the drains count what they take.
//!
//! Must never: block the thread, reorder messages between one pair of executors, or drop a
//! message except to a peer that has shut down.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};

use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};

use crate::doorbell::{self, Doorbell};
use crate::ShardId;

/// Outbox length (per peer) above which the mesh reports congestion.
const HIGH_WATER: usize = 4096;
/// Outbox length under which congested producers are woken again.
const LOW_WATER: usize = 1024;

/// One executor's ends of the mesh before it is started: `Send`, so it can be moved into
/// the executor's thread, where [`MeshMember::join`] connects it.
pub struct MeshMember<T: Send + 'static> {
    id: ShardId,
    senders: Vec<Option<SharedSender<T>>>,
    receivers: Vec<Option<SharedReceiver<T>>>,
    posts: Vec<crossbeam_channel::Sender<(ShardId, T)>>,
    posted: crossbeam_channel::Receiver<(ShardId, T)>,
    /// Every member's doorbell, this one's included.
    bells: Vec<Arc<Doorbell>>,
}

/// Builds a full mesh of `members` executors with `capacity` slots per ordered pair.
/// Element `i` of the result belongs to executor `i`.
/// Fails only when an eventfd cannot be created (out of descriptors).
pub fn full_mesh<T: Send + 'static>(
    members: usize,
    capacity: usize,
) -> std::io::Result<Vec<MeshMember<T>>> {
    let (posts, posted): (Vec<_>, Vec<_>) =
        (0..members).map(|_| crossbeam_channel::unbounded()).unzip();
    let bells = (0..members)
        .map(|_| Doorbell::new())
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut out: Vec<MeshMember<T>> = posted
        .into_iter()
        .enumerate()
        .map(|(id, posted)| MeshMember {
            id,
            senders: (0..members).map(|_| None).collect(),
            receivers: (0..members).map(|_| None).collect(),
            posts: posts.clone(),
            posted,
            bells: bells.clone(),
        })
        .collect();
    for from in 0..members {
        for to in 0..members {
            if from != to {
                let (tx, rx) = shared_channel::new_bounded(capacity);
                out[from].senders[to] = Some(tx);
                out[to].receivers[from] = Some(rx);
            }
        }
    }
    Ok(out)
}

impl<T: Send + 'static> MeshMember<T> {
    /// This member's id.
    pub fn id(&self) -> ShardId {
        self.id
    }

    /// Connects every channel end on the current executor. Completes once every peer has
    /// joined too (each `connect` waits for its other end), so all members must join.
    pub async fn join(self) -> Rc<Mesh<T>> {
        // Connect all ends concurrently: connecting one end waits for the peer to connect
        // the other, and peers connect in their own order.
        let senders: Vec<_> = self
            .senders
            .into_iter()
            .map(|s| s.map(|s| doorbell::spawn_local(s.connect())))
            .collect();
        let receivers: Vec<_> = self
            .receivers
            .into_iter()
            .map(|r| r.map(|r| doorbell::spawn_local(r.connect())))
            .collect();
        let mut peers = Vec::with_capacity(senders.len());
        for s in senders {
            peers.push(match s {
                Some(task) => Some(Peer {
                    tx: Rc::new(task.await),
                    outbox: RefCell::new(VecDeque::new()),
                    flushing: Cell::new(false),
                    sent: Cell::new(0),
                }),
                None => None,
            });
        }
        let mut rxs = Vec::with_capacity(receivers.len());
        for r in receivers {
            rxs.push(match r {
                Some(task) => Some(task.await),
                None => None,
            });
        }
        Rc::new(Mesh {
            id: self.id,
            posts: self.posts,
            posted: self.posted,
            peers,
            receivers: RefCell::new(rxs),
            received: Cell::new(0),
            congestion_waiters: RefCell::new(Vec::new()),
            bells: self.bells,
        })
    }
}

struct Peer<T: Send + 'static> {
    tx: Rc<ConnectedSender<T>>,
    outbox: RefCell<VecDeque<T>>,
    flushing: Cell<bool>,
    sent: Cell<u64>,
}

/// One executor's view of the mesh. Lives on that executor's thread only.
pub struct Mesh<T: Send + 'static> {
    id: ShardId,
    posts: Vec<crossbeam_channel::Sender<(ShardId, T)>>,
    posted: crossbeam_channel::Receiver<(ShardId, T)>,
    peers: Vec<Option<Peer<T>>>,
    receivers: RefCell<Vec<Option<ConnectedReceiver<T>>>>,
    received: Cell<u64>,
    congestion_waiters: RefCell<Vec<Waker>>,
    /// Every member's doorbell: a message in a peer's channel is counted on the peer's, and
    /// rings it while the peer naps.
    bells: Vec<Arc<Doorbell>>,
}

/// Counters of one executor's mesh traffic, for the per-core views.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MeshStats {
    /// Messages handed to peers (channel or outbox).
    pub sent: u64,
    /// Messages taken from our inboxes.
    pub received: u64,
    /// Messages waiting in our outboxes right now.
    pub outbox_depth: u64,
}

impl<T: Send + 'static> Mesh<T> {
    /// This executor's member id.
    pub fn id(&self) -> ShardId {
        self.id
    }

    /// Number of members, this one included.
    pub fn members(&self) -> usize {
        self.peers.len()
    }

    /// Sends `msg` to member `to` without waiting. Messages to one peer arrive in the order
    /// they were sent. A message to a peer that has shut down is dropped.
    pub fn send(self: &Rc<Self>, to: ShardId, msg: T) {
        let Some(Some(peer)) = self.peers.get(to) else {
            debug_assert!(false, "send to self or to an unknown member {to}");
            return;
        };
        peer.sent.set(peer.sent.get() + 1);
        // Only take the fast path when nothing is queued or in flight in the flusher:
        // otherwise this message would overtake older ones.
        if !peer.flushing.get() && peer.outbox.borrow().is_empty() {
            match peer.tx.try_send(msg) {
                Ok(()) => {
                    self.bells[to].sent();
                    return;
                }
                Err(glommio::GlommioError::WouldBlock(glommio::ResourceType::Channel(m))) => {
                    peer.outbox.borrow_mut().push_back(m)
                }
                Err(_) => return, // closed: the peer is shutting down
            }
        } else {
            peer.outbox.borrow_mut().push_back(msg);
        }
        if !peer.flushing.get() {
            peer.flushing.set(true);
            let me = self.clone();
            doorbell::spawn_local(async move { me.flush(to).await }).detach();
        }
    }

    /// Puts `msg` in member `to`'s queue of posted messages without waking it: `to` takes
    /// it with [`Mesh::take_posted`] when it next needs it. Posted messages from one member
    /// are taken in the order they were posted; they are not ordered with [`Mesh::send`]'s.
    ///
    /// The post is complete when this returns (the queue's slot is written and published
    /// with release ordering), so anything the sender does afterwards (answering a client,
    /// which then acts on another connection: the kernel's socket locks order the two
    /// threads) happens after it, and a receiver that learns of that action and then looks
    /// (an acquire) finds the message.
    pub fn post(&self, to: ShardId, msg: T) {
        let Some(queue) = self.posts.get(to) else {
            debug_assert!(false, "post to an unknown member {to}");
            return;
        };
        // Fails only when the receiver has shut down.
        if queue.send((self.id, msg)).is_ok() {
            if let Some(Some(peer)) = self.peers.get(to) {
                peer.sent.set(peer.sent.get() + 1);
            }
        }
    }

    /// The next message posted to this member, with its sender; `None` when there is none.
    /// Costs two atomic loads when the queue is empty.
    pub fn take_posted(&self) -> Option<(ShardId, T)> {
        let next = self.posted.try_recv().ok();
        if next.is_some() {
            self.received.set(self.received.get() + 1);
        }
        next
    }

    async fn flush(self: Rc<Self>, to: ShardId) {
        let Some(Some(peer)) = self.peers.get(to) else {
            return;
        };
        loop {
            let next = peer.outbox.borrow_mut().pop_front();
            let Some(msg) = next else { break };
            if peer.tx.send(msg).await.is_err() {
                peer.outbox.borrow_mut().clear();
                break;
            }
            self.bells[to].sent();
            if peer.outbox.borrow().len() == LOW_WATER {
                self.wake_producers();
            }
        }
        peer.flushing.set(false);
        self.wake_producers();
    }

    fn wake_producers(&self) {
        if !self.congested() {
            for w in self.congestion_waiters.borrow_mut().drain(..) {
                w.wake();
            }
        }
    }

    /// True when some peer's outbox is above its high-water mark.
    pub fn congested(&self) -> bool {
        self.peers
            .iter()
            .flatten()
            .any(|p| p.outbox.borrow().len() > HIGH_WATER)
    }

    /// Completes once no outbox is above the high-water mark.
    pub async fn wait_uncongested(&self) {
        poll_fn(|cx| {
            if self.congested() {
                self.congestion_waiters
                    .borrow_mut()
                    .push(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await
    }

    /// Spawns one task per inbox that hands every arriving message to `handler` with the
    /// sender's id. The handler is synchronous by design (see the module rules).
    pub fn spawn_drains(self: &Rc<Self>, handler: impl Fn(ShardId, T) + 'static) {
        let handler = Rc::new(handler);
        let receivers: Vec<_> = self.receivers.borrow_mut().drain(..).collect();
        for (from, rx) in receivers.into_iter().enumerate() {
            let Some(rx) = rx else { continue };
            let handler = handler.clone();
            let me = self.clone();
            doorbell::spawn_local(async move {
                while let Some(msg) = rx.recv().await {
                    me.received.set(me.received.get() + 1);
                    me.bells[me.id].taken();
                    handler(from, msg);
                    glommio::yield_if_needed().await;
                }
            })
            .detach();
        }
    }

    /// This executor's doorbell, for its socket reactor ([`crate::sockio::Reactor::enable_nap`]).
    pub fn doorbell(&self) -> Arc<Doorbell> {
        self.bells[self.id].clone()
    }

    /// This executor's mesh counters.
    pub fn stats(&self) -> MeshStats {
        let peers = self.peers.iter().flatten();
        MeshStats {
            sent: peers.clone().map(|p| p.sent.get()).sum(),
            received: self.received.get(),
            outbox_depth: peers.map(|p| p.outbox.borrow().len() as u64).sum(),
        }
    }
}
