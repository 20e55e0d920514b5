//! The cross-shard mesh: one bounded lock-free channel (crossbeam-channel's array flavour,
//! used by one sender and one receiver) per ordered pair of executors, with a per-peer
//! outbox for back-pressure, and each executor's [`Doorbell`] for wake-ups.
//!
//! Owns: every channel between executors, their outboxes and their counters. Each
//! executor holds one [`Mesh`] (an `Rc`, used only on that executor's thread).
//!
//! The rules that keep the mesh free of the full-mesh deadlock (DataDog/glommio#555):
//! - [`Mesh::send`] never waits: it `try_send`s, and when the channel is full (or older
//!   messages are already waiting) it appends to that peer's outbox, which a separate
//!   flusher task empties as the peer makes room. Nothing is ever dropped while the peer
//!   lives.
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
//! Wake-ups go through the executors' socket reactors (`sockio`), never through glommio: a
//! message put in a peer's channel is counted on the peer's [`Doorbell`], which rings it if
//! it sleeps; the peer's reactor sees the count (or the ring) and wakes its drain task,
//! which takes what its inboxes hold and counts it. A flusher that finds a channel full marks
//! the pair's lane "wants room" and waits; the receiver, after taking from that inbox, rings
//! the sender's doorbell, whose reactor wakes the flusher. So a message between executors
//! costs no turn of glommio's reactor on either side, and the mesh works the same whether
//! the receiver runs, naps in its epoll set or is parked in glommio's ring.
//!
//! Must never: block the thread, reorder messages between one pair of executors, or drop a
//! message except to a peer that has shut down.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use std::sync::atomic::{fence, AtomicBool, Ordering::SeqCst};

use crate::doorbell::{self, Doorbell};
use crate::ShardId;

/// Outbox length (per peer) above which the mesh reports congestion.
const HIGH_WATER: usize = 4096;
/// Outbox length under which congested producers are woken again.
const LOW_WATER: usize = 1024;
/// Messages the drain takes from one inbox per wake-up before it looks at the next one and
/// lets the executor's other tasks run.
const DRAIN_BATCH: usize = 64;

/// This executor's end of a peer's channel to it, with the pair's lane.
type Inbox<T> = Option<(Receiver<T>, Arc<Lane>)>;

/// One ordered pair's shared state: the sender waits for room in the channel.
#[derive(Debug, Default)]
struct Lane {
    wants_room: AtomicBool,
}

/// One executor's ends of the mesh before it is started: `Send`, so it can be moved into
/// the executor's thread, where [`MeshMember::join`] connects it.
pub struct MeshMember<T: Send + 'static> {
    id: ShardId,
    senders: Vec<Option<(Sender<T>, Arc<Lane>)>>,
    receivers: Vec<Inbox<T>>,
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
                let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
                let lane = Arc::new(Lane::default());
                out[from].senders[to] = Some((tx, lane.clone()));
                out[to].receivers[from] = Some((rx, lane));
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

    /// Takes this member's ends of the mesh on the current executor, whose socket reactor
    /// will watch the member's doorbell (created here if the executor has none yet).
    pub async fn join(self) -> std::io::Result<Rc<Mesh<T>>> {
        crate::sockio::Reactor::current()?.attach_doorbell(self.bells[self.id].clone())?;
        let peers = self
            .senders
            .into_iter()
            .map(|s| {
                s.map(|(tx, lane)| Peer {
                    tx,
                    lane,
                    outbox: RefCell::new(VecDeque::new()),
                    flushing: Cell::new(false),
                    sent: Cell::new(0),
                })
            })
            .collect();
        let rxs = self.receivers;
        Ok(Rc::new(Mesh {
            id: self.id,
            posts: self.posts,
            posted: self.posted,
            peers,
            receivers: RefCell::new(rxs),
            received: Cell::new(0),
            congestion_waiters: RefCell::new(Vec::new()),
            bells: self.bells,
        }))
    }
}

struct Peer<T: Send + 'static> {
    tx: Sender<T>,
    lane: Arc<Lane>,
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
    receivers: RefCell<Vec<Inbox<T>>>,
    received: Cell<u64>,
    congestion_waiters: RefCell<Vec<Waker>>,
    /// Every member's doorbell: a message in a peer's channel is counted on the peer's, and
    /// rings it while the peer sleeps.
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
                Err(TrySendError::Full(m)) => peer.outbox.borrow_mut().push_back(m),
                Err(TrySendError::Disconnected(_)) => return, // the peer is shutting down
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
            let Some(mut msg) = next else { break };
            let mut asked = false;
            loop {
                match peer.tx.try_send(msg) {
                    Ok(()) => break,
                    Err(TrySendError::Disconnected(_)) => {
                        peer.outbox.borrow_mut().clear();
                        peer.flushing.set(false);
                        self.wake_producers();
                        return;
                    }
                    Err(TrySendError::Full(m)) => msg = m,
                }
                if asked {
                    doorbell::mesh_event().await;
                    asked = false;
                } else {
                    // Full: ask the receiver to ring when it takes from this channel, then
                    // try once more (it may have taken before it could see the request).
                    peer.lane.wants_room.store(true, SeqCst);
                    fence(SeqCst);
                    asked = true;
                }
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

    /// Spawns the task that drains this executor's inboxes: it hands every arriving message
    /// to `handler` with the sender's id, in order per sender. The handler is synchronous by
    /// design (see the module rules). The task sleeps until the socket reactor sees messages
    /// counted on the doorbell.
    pub fn spawn_drains(self: &Rc<Self>, handler: impl Fn(ShardId, T) + 'static) {
        let mut inboxes: Vec<_> = self.receivers.borrow_mut().drain(..).collect();
        let me = self.clone();
        doorbell::spawn_local(async move {
            let bell = me.bells[me.id].clone();
            loop {
                for (from, inbox) in inboxes.iter_mut().enumerate() {
                    let Some((rx, lane)) = inbox else { continue };
                    let mut took = 0;
                    let mut gone = false;
                    while took < DRAIN_BATCH {
                        match rx.try_recv() {
                            Ok(msg) => {
                                took += 1;
                                me.received.set(me.received.get() + 1);
                                bell.taken();
                                handler(from, msg);
                            }
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => {
                                gone = true;
                                break;
                            }
                        }
                    }
                    if took > 0 {
                        fence(SeqCst);
                        if lane.wants_room.swap(false, SeqCst) {
                            me.bells[from].made_room();
                        }
                    }
                    if gone {
                        *inbox = None;
                    }
                }
                // Whatever is left, or comes, is counted on the doorbell: the reactor wakes
                // this task for it.
                doorbell::mesh_event().await;
            }
        })
        .detach();
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
