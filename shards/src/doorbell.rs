//! An executor's doorbell: how peers reach it, through its socket reactor, whether it runs,
//! naps in the reactor's `epoll_pwait2` or sleeps in glommio's ring; the tasks that wait for
//! mesh events; the count of task polls that tells the reactor whether anything else is
//! ready to run; and the mark of tasks awaiting glommio's own I/O, which the reactor must
//! not nap through.
//!
//! Owns: one [`Doorbell`] per mesh member (created with the mesh, shared by `Arc` with every
//! peer): an eventfd in the member's epoll set, an "asleep" flag, and counts of the channel
//! messages sent to the member and taken by it. Per thread: the wakers of the tasks waiting
//! for a mesh event ([`mesh_event`], woken by the reactor with [`wake_mesh_waiters`]), and
//! the poll count of the tasks spawned with [`spawn_local`] ([`task_polls`]), and how many
//! tasks hold a [`GlommioIo`] mark ([`awaiting_glommio_io`]).
//!
//! The handshake between a sender (any thread) and the sleeping owner is Dekker's, with
//! sequentially consistent operations on both sides: the sender counts its message and then
//! reads the flag; the owner sets the flag and then compares the counts. Either the owner
//! sees the message counted (and does not sleep) or the sender sees the flag (and rings).
//! A ring is one 8-byte `write` to the eventfd, only while the owner sleeps (or, for room in
//! a full channel, whenever a receiver made some for a sender that asked).
//!
//! Must never: let the owner sleep with a message counted and not taken.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{
    AtomicBool, AtomicU64,
    Ordering::{Relaxed, SeqCst},
};
use std::sync::Arc;
use std::task::{Context, Poll};

/// A member's doorbell. Shared between threads; see the module doc for the protocol.
#[derive(Debug)]
pub struct Doorbell {
    fd: OwnedFd,
    asleep: AtomicBool,
    /// Channel messages sent to the owner (counted by senders once in the channel).
    sent: AtomicU64,
    /// Channel messages the owner has taken from its inboxes.
    taken: AtomicU64,
    /// Rings that were written (for tests and figures).
    rings: AtomicU64,
    /// Times a receiver made room in a full channel for a sender of this owner's.
    room: AtomicU64,
}

impl Doorbell {
    /// A new doorbell with its non-blocking eventfd.
    pub fn new() -> io::Result<Arc<Doorbell>> {
        // SAFETY: eventfd has no memory arguments; a non-negative result is a new descriptor.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Arc::new(Doorbell {
            // SAFETY: just created, owned by nobody else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            asleep: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            rings: AtomicU64::new(0),
            room: AtomicU64::new(0),
        }))
    }

    /// A sender put one message in a channel to the owner: count it, and ring if the owner
    /// naps.
    pub fn sent(&self) {
        self.sent.fetch_add(1, SeqCst);
        if self.asleep.load(SeqCst) {
            self.ring();
        }
    }

    /// The owner took one message from an inbox. Only the owner writes and reads this
    /// count: a plain load and store, no locked instruction per message.
    pub fn taken(&self) {
        self.taken
            .store(self.taken.load(Relaxed).wrapping_add(1), Relaxed);
    }

    /// A receiver took messages from a full channel of the owner's that the owner's flusher
    /// waits on: count it and ring, whether or not the owner sleeps (its reactor sees the
    /// count at its next look and wakes the tasks waiting for a mesh event).
    pub fn made_room(&self) {
        self.room.fetch_add(1, SeqCst);
        self.ring();
    }

    /// How many times receivers made room (see [`Doorbell::made_room`]).
    pub fn room(&self) -> u64 {
        self.room.load(SeqCst)
    }

    pub(crate) fn ring(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer to our eventfd. A full counter
        // (EAGAIN) already wakes the owner, so the result needs no handling.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), one.as_ptr().cast(), one.len()) };
        self.rings
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The owner is about to sleep (nap or park): true if it may (no message is in its
    /// channels), with the flag set; false (flag cleared) if one is.
    pub(crate) fn begin_sleep(&self) -> bool {
        self.asleep.store(true, SeqCst);
        if self.sent.load(SeqCst) != self.taken.load(Relaxed) {
            self.asleep.store(false, SeqCst);
            return false;
        }
        true
    }

    /// The owner's sleep is over: clears the flag. (The eventfd is emptied by the reactor
    /// when its epoll set reports it: [`Doorbell::empty`].)
    pub(crate) fn end_sleep(&self) {
        self.asleep.store(false, SeqCst);
    }

    /// Empties the eventfd, so that the next ring is a new edge for the epoll set.
    pub(crate) fn empty(&self) {
        let mut buf = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a live buffer; EAGAIN (not rung) is fine.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    }

    /// Messages counted in the owner's channels and not yet taken.
    pub fn pending(&self) -> u64 {
        self.sent
            .load(SeqCst)
            .saturating_sub(self.taken.load(Relaxed))
    }

    /// The owner sleeps now (naps or is parked; for tests).
    pub fn asleep(&self) -> bool {
        self.asleep.load(SeqCst)
    }

    /// How many times a sender rang.
    pub fn rings(&self) -> u64 {
        self.rings.load(Relaxed)
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

thread_local! {
    static TASK_POLLS: Cell<u64> = const { Cell::new(0) };
    static GLOMMIO_IO: Cell<u32> = const { Cell::new(0) };
    static MESH_WAITERS: std::cell::RefCell<Vec<std::task::Waker>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Pending once: completes after the executor's reactor next sees a mesh event (a message
/// counted on this executor's doorbell, or a ring), or a spurious wake-up.
pub async fn mesh_event() {
    let mut waited = false;
    std::future::poll_fn(|cx| {
        if waited {
            return Poll::Ready(());
        }
        waited = true;
        MESH_WAITERS.with(|w| w.borrow_mut().push(cx.waker().clone()));
        Poll::Pending
    })
    .await
}

/// Wakes every task of this thread waiting in [`mesh_event`]; returns how many there were.
pub fn wake_mesh_waiters() -> usize {
    let woken = MESH_WAITERS.with(|w| std::mem::take(&mut *w.borrow_mut()));
    let n = woken.len();
    for w in woken {
        w.wake();
    }
    n
}

/// Held by a task of this thread while it awaits I/O of glommio's own (a file write or
/// sync, a glommio socket): glommio submits that I/O and sees it complete only in its
/// reactor's turn, so while one is held the socket reactor does not nap or poll before it
/// gives glommio that turn (the executor then sleeps in glommio's ring, which the I/O's
/// completion and socket readiness both end).
#[derive(Debug)]
pub struct GlommioIo(());

impl GlommioIo {
    /// Marks this thread as awaiting glommio I/O until the guard is dropped.
    #[must_use = "the mark lasts as long as the guard"]
    pub fn begin() -> GlommioIo {
        GLOMMIO_IO.with(|c| c.set(c.get() + 1));
        GlommioIo(())
    }
}

impl Drop for GlommioIo {
    fn drop(&mut self) {
        GLOMMIO_IO.with(|c| c.set(c.get() - 1));
    }
}

/// Whether a task of this thread awaits glommio I/O ([`GlommioIo`]).
pub fn awaiting_glommio_io() -> bool {
    GLOMMIO_IO.with(Cell::get) > 0
}

/// How many times tasks spawned with [`spawn_local`] on this thread have been polled.
pub fn task_polls() -> u64 {
    TASK_POLLS.with(Cell::get)
}

/// glommio's `spawn_local`, with every poll of the task counted in [`task_polls`]: the
/// socket reactor naps only after a turn in which no other task ran.
pub fn spawn_local<T: 'static>(future: impl Future<Output = T> + 'static) -> glommio::Task<T> {
    glommio::spawn_local(Counted(future))
}

struct Counted<F>(F);

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        TASK_POLLS.with(|c| c.set(c.get() + 1));
        // SAFETY: the inner future is never moved out of the pinned wrapper.
        unsafe { self.map_unchecked_mut(|c| &mut c.0) }.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_counted_before_the_nap_prevents_it() {
        let bell = Doorbell::new().unwrap();
        bell.sent();
        assert!(!bell.begin_sleep());
        bell.taken();
        assert!(bell.begin_sleep());
        bell.end_sleep();
        assert_eq!(bell.rings(), 0);
    }

    #[test]
    fn a_message_sent_during_the_nap_rings_once_and_the_ring_is_emptied() {
        let bell = Doorbell::new().unwrap();
        assert!(bell.begin_sleep());
        bell.sent();
        assert_eq!(bell.rings(), 1);
        let mut buf = [0u8; 8];
        // The eventfd holds the ring until the nap ends.
        let n = unsafe { libc::read(bell.raw_fd(), buf.as_mut_ptr().cast(), 8) };
        assert_eq!(n, 8);
        bell.sent(); // still napping: rings again
        bell.end_sleep();
        bell.empty();
        let n = unsafe { libc::read(bell.raw_fd(), buf.as_mut_ptr().cast(), 8) };
        assert_eq!(n, -1, "empty() empties the eventfd");
        bell.sent(); // not napping: counted, no ring
        assert_eq!(bell.rings(), 2);
        assert_eq!(bell.pending(), 3);
        bell.made_room(); // rings whether or not the owner sleeps
        assert_eq!((bell.rings(), bell.room()), (3, 1));
    }
}
