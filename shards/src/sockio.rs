//! Socket I/O for the MQTT connections: readiness from an io_uring ring of the shard's own,
//! reads, writes and accepts as plain non-blocking syscalls made when that ring says so.
//!
//! Owns: one readiness ring per executor thread ([`Reactor`]); one *multishot* `POLLIN`
//! request per socket, armed once when the socket is registered and cancelled when it is
//! dropped (glommio arms and completes a one-shot poll for every wait: a ring submission per
//! socket per message); a one-shot `POLLOUT` only while a send would block; and the pump task
//! that turns completions into wake-ups. The pump sleeps on an eventfd that the ring signals,
//! read through glommio, so the executor parks in glommio's ring as before.
//!
//! The ring is created without task-work flags on purpose. A socket's readiness then runs
//! as task work that signals the shard thread, which ends any sleep at once; the completion
//! it posts signals the eventfd from the shard's own thread. With
//! `IORING_SETUP_DEFER_TASKRUN`, the eventfd signal for work queued by the softirq that
//! received a packet reached the sleeping shard only ~15 ms later (Linux 6.18; traced: the
//! work was queued at once, the eventfd stayed at 0, glommio's ring saw nothing until then,
//! as if the signal waited for an RCU grace period): an idle shard answered every packet
//! ~16 ms late (a lone client's ping took 16 ms, QoS 1 windows of 1 ran at 65 msgs/s). With
//! `COOP_TASKRUN` the work waits for the shard's next kernel entry and never wakes a sleeping
//! shard (sleeps of ~190 ms with input waiting).
//!
//! Must never: be used from another thread than the one that created it (everything here
//! is `!Send`), block, or close a socket's descriptor while the ring still references it
//! under a slot that could be reused (slots carry a generation; a late completion for a
//! freed slot is ignored).

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::task::{Poll, Waker};

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use slab::Slab;

/// Submission-queue entries: registrations, cancellations and `POLLOUT` arms wait here only
/// until the call that pushed them submits.
const SQ_ENTRIES: u32 = 256;
/// Completion-queue entries: every registered socket can have one readiness completion
/// outstanding; more than this many waits in the kernel's overflow list, not lost.
const CQ_ENTRIES: u32 = 32 * 1024;
/// `user_data` of requests whose completion nobody waits for (cancellations).
const IGNORED: u64 = u64::MAX;
/// What a socket's multishot poll listens for: data, the peer's FIN, errors.
const READ_EVENTS: u32 = (libc::POLLIN | libc::POLLRDHUP | libc::POLLERR | libc::POLLHUP) as u32;
const WRITE_EVENTS: u32 = (libc::POLLOUT | libc::POLLERR | libc::POLLHUP) as u32;

/// Which poll request of a slot a completion belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Interest {
    Read = 0,
    Write = 1,
}

/// Packs a slot, its generation and the interest into a request's `user_data`.
fn token(slot: usize, gen: u32, interest: Interest) -> u64 {
    (u64::from(gen) << 32) | ((slot as u64) << 1) | interest as u64
}

fn untoken(data: u64) -> (usize, u32, Interest) {
    let interest = if data & 1 == 0 {
        Interest::Read
    } else {
        Interest::Write
    };
    (
        ((data & 0xffff_ffff) >> 1) as usize,
        (data >> 32) as u32,
        interest,
    )
}

/// What the reactor knows of one registered socket.
#[derive(Default)]
struct Slot {
    gen: u32,
    /// The socket may have input (or an error, or EOF) that no read has seen yet.
    readable: bool,
    /// A `POLLOUT` completed since the last send that would have blocked.
    writable: bool,
    /// The read poll is in the ring.
    read_armed: bool,
    /// A one-shot `POLLOUT` is in the ring.
    write_armed: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

/// The calling executor's readiness ring and the state of every socket registered with it.
pub struct Reactor {
    ring: RefCell<IoUring>,
    slots: RefCell<Slab<Slot>>,
    /// Generation counter for slots, so a completion for a dropped socket cannot wake the
    /// socket that reused its slot.
    next_gen: std::cell::Cell<u32>,
    /// Read polls are multishot (Linux ≥ 5.13); cleared when the kernel refuses one, after
    /// which every wait arms a one-shot poll.
    multishot: std::cell::Cell<bool>,
    /// Requests are in the submission queue that no `io_uring_enter` has passed on yet.
    unsubmitted: std::cell::Cell<bool>,
    /// The flusher task, while it waits for [`Reactor::queue`] to give it something.
    flusher: RefCell<Option<Waker>>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Reactor>>> = const { RefCell::new(None) };
}

impl Reactor {
    /// This executor's reactor, created (with its pump task) on first use.
    pub fn current() -> io::Result<Rc<Reactor>> {
        Self::current_with_queues(SQ_ENTRIES, CQ_ENTRIES)
    }

    /// [`Reactor::current`], creating it (if this executor has none yet) with queues of the
    /// given sizes; tests use tiny ones to make the completion queue overflow.
    pub fn current_with_queues(sq: u32, cq: u32) -> io::Result<Rc<Reactor>> {
        if let Some(r) = CURRENT.with(|c| c.borrow().clone()) {
            return Ok(r);
        }
        let reactor = Rc::new(Reactor::new(sq, cq)?);
        let efd = reactor.eventfd()?;
        CURRENT.with(|c| *c.borrow_mut() = Some(reactor.clone()));
        glommio::spawn_local(pump(reactor.clone(), efd)).detach();
        glommio::spawn_local(flusher(reactor.clone())).detach();
        Ok(reactor)
    }

    fn new(sq: u32, cq: u32) -> io::Result<Reactor> {
        // No task-work flags: see the module doc for why neither deferred nor cooperative
        // task work will do.
        let ring = IoUring::builder().setup_cqsize(cq).build(sq)?;
        Ok(Reactor {
            ring: RefCell::new(ring),
            slots: RefCell::new(Slab::new()),
            next_gen: std::cell::Cell::new(0),
            multishot: std::cell::Cell::new(true),
            unsubmitted: std::cell::Cell::new(false),
            flusher: RefCell::new(None),
        })
    }

    /// An eventfd the ring signals on every completion, for the pump to sleep on. Blocking
    /// on purpose: io_uring then waits for it with an internal poll instead of failing the
    /// read with `EAGAIN`.
    fn eventfd(&self) -> io::Result<OwnedFd> {
        // SAFETY: eventfd has no memory arguments; a non-negative result is a new descriptor.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        self.ring
            .borrow()
            .submitter()
            .register_eventfd(fd.as_raw_fd())?;
        Ok(fd)
    }

    /// Queues one request; the flusher task submits it, with every other request queued in
    /// the same executor turn, in one `io_uring_enter` before the executor can park (a burst
    /// of accepted or closed connections costs one syscall, not one each). Requests reach the
    /// kernel in the order queued, so a cancel always finds the poll queued before it.
    fn queue(&self, entry: squeue::Entry) -> io::Result<()> {
        let mut ring = self.ring.borrow_mut();
        // SAFETY: poll and cancel requests reference no memory of ours, only a descriptor
        // that stays open until its poll is cancelled (see `deregister`).
        while unsafe { ring.submission().push(&entry) }.is_err() {
            ring.submit()?;
        }
        if !self.unsubmitted.replace(true) {
            if let Some(w) = self.flusher.borrow_mut().take() {
                w.wake();
            }
        }
        Ok(())
    }

    /// Passes every queued request to the kernel.
    fn flush(&self) {
        if self.unsubmitted.replace(false) {
            if let Err(e) = self.ring.borrow_mut().submit() {
                tracing::warn!("socket reactor: submitting requests failed: {e}");
            }
        }
    }

    fn register(&self, fd: RawFd) -> io::Result<(usize, u32)> {
        let gen = self.next_gen.get().wrapping_add(1);
        self.next_gen.set(gen);
        let slot = self.slots.borrow_mut().insert(Slot {
            gen,
            // Input may have arrived before the poll was armed (a hand-over, a CONNECT
            // that came with the SYN's ACK): the first read tries without waiting.
            readable: true,
            ..Slot::default()
        });
        if self.multishot.get() {
            if let Err(e) = self.arm_read(slot, gen, fd) {
                self.slots.borrow_mut().remove(slot);
                return Err(e);
            }
        }
        Ok((slot, gen))
    }

    /// Puts the slot's read poll in the ring (the caller checked that none is there).
    fn arm_read(&self, slot: usize, gen: u32, fd: RawFd) -> io::Result<()> {
        let poll = opcode::PollAdd::new(types::Fd(fd), READ_EVENTS)
            .multi(self.multishot.get())
            .build()
            .user_data(token(slot, gen, Interest::Read));
        self.slots.borrow_mut()[slot].read_armed = true;
        let res = self.queue(poll);
        if res.is_err() {
            self.slots.borrow_mut()[slot].read_armed = false;
        }
        res
    }

    /// Cancels the socket's polls and frees its slot. The caller closes (or hands over) the
    /// descriptor afterwards; the kernel keeps its own reference until the cancel lands.
    /// A `POLL_REMOVE`, not an `ASYNC_CANCEL`: the latter first searches the io-wq workers
    /// for the request (a poll is never there). In a connection storm the difference is
    /// within the run-to-run spread (`shardmq-bench conn`, 5 alternating runs each: 72 µs of
    /// broker CPU per connection either way).
    fn deregister(&self, slot: usize, gen: u32) {
        let (read_armed, write_armed) = {
            let mut slots = self.slots.borrow_mut();
            match slots.get(slot) {
                Some(s) if s.gen == gen => {
                    let s = slots.remove(slot);
                    (s.read_armed, s.write_armed)
                }
                _ => return,
            }
        };
        let cancel = |interest| {
            let entry = opcode::PollRemove::new(token(slot, gen, interest))
                .build()
                .user_data(IGNORED);
            if let Err(e) = self.queue(entry) {
                tracing::warn!("cancelling a socket poll failed: {e}");
            }
        };
        if read_armed {
            cancel(Interest::Read);
        }
        if write_armed {
            cancel(Interest::Write);
        }
    }

    /// Moves every completion into its slot and wakes whoever waits. Returns how many there
    /// were.
    fn reap(&self) -> usize {
        let mut wake: Vec<Waker> = Vec::new();
        let mut seen = 0;
        {
            let mut ring = self.ring.borrow_mut();
            let mut slots = self.slots.borrow_mut();
            loop {
                for cqe in ring.completion() {
                    seen += 1;
                    if cqe.user_data() == IGNORED {
                        continue;
                    }
                    let (idx, gen, interest) = untoken(cqe.user_data());
                    let Some(slot) = slots.get_mut(idx) else {
                        continue;
                    };
                    if slot.gen != gen {
                        continue; // a late completion for a socket that is gone
                    }
                    let res = cqe.result();
                    match interest {
                        Interest::Read => {
                            // Any outcome (events, an error) is for the reader to find out with
                            // its next syscall.
                            slot.readable = true;
                            wake.extend(slot.reader.take());
                            if res > 0 && res as u32 & (libc::POLLERR | libc::POLLHUP) as u32 != 0 {
                                slot.writable = true;
                                wake.extend(slot.writer.take());
                            }
                            if !cqueue::more(cqe.flags()) {
                                // A one-shot poll, or the kernel ended the multishot request (an
                                // error, a full completion queue): the next wait arms it again.
                                slot.read_armed = false;
                                if res == -libc::EINVAL && self.multishot.get() {
                                    tracing::info!("socket reactor: no multishot poll here (Linux < 5.13); using one-shot polls");
                                    self.multishot.set(false);
                                }
                            }
                        }
                        Interest::Write => {
                            slot.write_armed = false;
                            slot.writable = true;
                            wake.extend(slot.writer.take());
                        }
                    }
                }
                // Completions that found the queue full leave the kernel's overflow list only
                // in an io_uring_enter with GETEVENTS (the crate's submit asks for that when
                // the flag is up).
                let more = ring.submission().cq_overflow();
                if !more {
                    break;
                }
                if let Err(e) = ring.submit() {
                    tracing::warn!("socket reactor: collecting completions failed: {e}");
                    break;
                }
            }
        }
        for w in wake {
            w.wake();
        }
        seen
    }

    /// Ready once the socket may have input; otherwise registers `waker` (and arms the read
    /// poll if none is in the ring).
    fn poll_readable(
        &self,
        slot: usize,
        gen: u32,
        fd: RawFd,
        waker: &Waker,
    ) -> Poll<io::Result<()>> {
        let arm = {
            let mut slots = self.slots.borrow_mut();
            let s = &mut slots[slot];
            if s.readable {
                return Poll::Ready(Ok(()));
            }
            if !s.reader.as_ref().is_some_and(|w| w.will_wake(waker)) {
                s.reader = Some(waker.clone());
            }
            !s.read_armed
        };
        if arm {
            if let Err(e) = self.arm_read(slot, gen, fd) {
                return Poll::Ready(Err(e));
            }
        }
        Poll::Pending
    }

    fn set_readable(&self, slot: usize, readable: bool) {
        self.slots.borrow_mut()[slot].readable = readable;
    }

    fn poll_writable(
        &self,
        slot: usize,
        gen: u32,
        fd: RawFd,
        waker: &Waker,
    ) -> Poll<io::Result<()>> {
        let arm = {
            let mut slots = self.slots.borrow_mut();
            let s = &mut slots[slot];
            if s.writable {
                return Poll::Ready(Ok(()));
            }
            if !s.writer.as_ref().is_some_and(|w| w.will_wake(waker)) {
                s.writer = Some(waker.clone());
            }
            let arm = !s.write_armed;
            s.write_armed = true;
            arm
        };
        if arm {
            let poll = opcode::PollAdd::new(types::Fd(fd), WRITE_EVENTS)
                .build()
                .user_data(token(slot, gen, Interest::Write));
            if let Err(e) = self.queue(poll) {
                self.slots.borrow_mut()[slot].write_armed = false;
                return Poll::Ready(Err(e));
            }
        }
        Poll::Pending
    }

    fn set_writable(&self, slot: usize, writable: bool) {
        self.slots.borrow_mut()[slot].writable = writable;
    }

    /// Makes sockets registered from now on wait with one-shot polls, as on kernels without
    /// multishot poll (for tests of that path).
    pub fn use_oneshot_polls(&self) {
        self.multishot.set(false);
    }

    /// Sockets registered now (for tests and figures).
    pub fn registered(&self) -> usize {
        self.slots.borrow().len()
    }
}

/// How many times in a row the pump looks at the ring again after the tasks it woke have
/// run, before it leaves the rest to the eventfd (and glommio's reactor gets its turn: the
/// mesh's channels and the timers are only seen there).
const AWAKE_ROUNDS: u32 = 8;

/// Turns the ring's completions into wake-ups, then sleeps on the eventfd until the ring has
/// more. Runs as a task of the executor for the executor's whole life.
///
/// While it finds completions it stays awake: it lets the tasks it woke run, then looks at
/// the ring again. Their `recv`/`send` calls return through the task work that posts new
/// readiness, so a client's next packet that arrived meanwhile is taken in the same
/// executor turn; going through the eventfd would cost a turn of glommio's loop (three
/// `io_uring_enter`s re-arming its preemption timers, and a park) per packet.
async fn pump(reactor: Rc<Reactor>, efd: OwnedFd) {
    // SAFETY: the eventfd is ours; glommio's file takes ownership and closes it.
    let file =
        unsafe { glommio::io::BufferedFile::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(efd)) };
    loop {
        let mut rounds = 0;
        while reactor.reap() > 0 && rounds < AWAKE_ROUNDS {
            rounds += 1;
            yield_now().await;
        }
        // Every completion signals the eventfd (also those reaped above: the read then ends
        // at once, costing one turn per awake spell, not one per completion), so one posted
        // after the last reap ends the read.
        if let Err(e) = file.read_at(0, 8).await {
            tracing::error!("socket reactor: reading its eventfd failed: {e}");
            glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
}

/// Pending once: the task runs again after every task that is ready now.
async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
}

/// Submits what [`Reactor::queue`] queued, once per executor turn in which anything was: a
/// task woken by `queue` runs before the executor parks. Runs for the executor's whole life.
async fn flusher(reactor: Rc<Reactor>) {
    poll_fn(|cx| {
        reactor.flush();
        *reactor.flusher.borrow_mut() = Some(cx.waker().clone());
        Poll::<()>::Pending
    })
    .await;
}

/// A connected, non-blocking TCP socket registered with the executor's [`Reactor`].
pub struct Socket {
    fd: OwnedFd,
    slot: u32,
    gen: u32,
    /// The socket belongs to its thread's [`Reactor`] (found through the thread-local, not a
    /// handle: every idle connection holds a `Socket`, 12 bytes this way).
    _thread_bound: std::marker::PhantomData<Rc<()>>,
}

/// Runs `f` with this thread's reactor; `None` once the thread is tearing down (the ring is
/// gone with it).
fn with_reactor<R>(f: impl FnOnce(&Reactor) -> R) -> Option<R> {
    let reactor = CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()?;
    Some(f(&reactor))
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket").field("fd", &self.fd).finish()
    }
}

fn cvt(rc: isize) -> io::Result<usize> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

impl Socket {
    fn deregister(&self) {
        with_reactor(|r| r.deregister(self.slot as usize, self.gen));
    }

    fn poll_ready(&self, cx: &mut std::task::Context<'_>, write: bool) -> Poll<io::Result<()>> {
        let (slot, gen, fd) = (self.slot as usize, self.gen, self.fd.as_raw_fd());
        with_reactor(|r| {
            if write {
                r.poll_writable(slot, gen, fd, cx.waker())
            } else {
                r.poll_readable(slot, gen, fd, cx.waker())
            }
        })
        .unwrap_or_else(|| Poll::Ready(Err(io::ErrorKind::NotConnected.into())))
    }

    fn set_ready(&self, write: bool, ready: bool) {
        let slot = self.slot as usize;
        with_reactor(|r| {
            if write {
                r.set_writable(slot, ready)
            } else {
                r.set_readable(slot, ready)
            }
        });
    }

    /// Registers a connected TCP socket with this executor (making it non-blocking).
    pub fn register(fd: OwnedFd) -> io::Result<Socket> {
        set_nonblocking(fd.as_raw_fd())?;
        Socket::register_nonblocking(fd)
    }

    /// [`Socket::register`] for a descriptor already in non-blocking mode (accepted with
    /// `SOCK_NONBLOCK`, or handed over from another executor's `Socket`): no `fcntl`.
    pub(crate) fn register_nonblocking(fd: OwnedFd) -> io::Result<Socket> {
        let reactor = Reactor::current()?;
        let (slot, gen) = reactor.register(fd.as_raw_fd())?;
        let Ok(slot) = u32::try_from(slot) else {
            reactor.deregister(slot, gen);
            return Err(io::Error::other("too many sockets"));
        };
        Ok(Socket {
            fd,
            slot,
            gen,
            _thread_bound: std::marker::PhantomData,
        })
    }

    /// Unregisters the socket and gives its descriptor back, e.g. to hand it to another
    /// executor. Input the kernel holds stays there; the descriptor stays non-blocking.
    pub fn into_fd(self) -> OwnedFd {
        let this = std::mem::ManuallyDrop::new(self);
        this.deregister();
        // SAFETY: `this` is never dropped or used again, so its descriptor is moved out once,
        // to the caller (the other fields own nothing).
        unsafe { std::ptr::read(&this.fd) }
    }

    /// Reads what the socket has, up to `buf.len()` bytes, waiting until it has something.
    /// `Ok(0)` is the peer's FIN. Cancel-safe: dropping the future loses no input.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| loop {
            match self.poll_ready(cx, false) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            match self.try_read(buf) {
                // Empty after all (the readiness was old): wait for the ring.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => return Poll::Ready(done),
            }
        })
        .await
    }

    /// Whether the socket may have input (then `try_read`; it may still be empty, when the
    /// readiness was old), registering the waker when not. Lets a caller build a read whose
    /// future holds nothing but its arguments, and read into a buffer it holds only for the
    /// synchronous read.
    pub fn poll_readable(&self, cx: &mut std::task::Context<'_>) -> Poll<io::Result<()>> {
        self.poll_ready(cx, false)
    }

    /// Reads what the socket holds right now without waiting: `WouldBlock` when it is empty.
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: `buf` is valid for writes of its length for the whole call.
            let rc = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            match cvt(rc) {
                Ok(n) => {
                    // A TCP receive returns everything queued up to the buffer's size: a
                    // short one emptied the socket, and new input will complete the poll.
                    if n < buf.len() && n > 0 {
                        self.set_ready(false, false);
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.set_ready(false, false);
                    return Err(e);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes all of `buf`, waiting for room in the socket's send buffer when it is full.
    /// The future holds only its arguments and how much is written.
    pub fn write_all<'a>(
        &'a mut self,
        buf: &'a [u8],
    ) -> impl std::future::Future<Output = io::Result<()>> + 'a {
        let mut done = 0;
        poll_fn(move |cx| self.poll_write_all(cx, buf, &mut done))
    }

    /// Writes `buf` from `*done` on, counting in `done` what was written, until all of it is
    /// or the socket is full (then the waker is registered for room).
    pub fn poll_write_all(
        &mut self,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
        done: &mut usize,
    ) -> Poll<io::Result<()>> {
        while *done < buf.len() {
            match self.poll_write(cx, &buf[*done..]) {
                Poll::Ready(Ok(n)) => *done += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Writes what the socket's send buffer takes of `buf` (at least one byte; `WriteZero`
    /// for an empty `buf`), or registers the waker for room when it is full.
    pub fn poll_write(
        &mut self,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.try_write(buf) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.set_ready(true, false);
                    match self.poll_ready(cx, true) {
                        Poll::Ready(Ok(())) => {} // room came meanwhile: try again
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Writes as much of `buf` as the socket's send buffer takes right now, without waiting:
    /// the number of bytes written (0 when it is full; `WriteZero` for a socket that takes
    /// nothing while not full).
    pub fn try_write_all(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.try_write(&buf[done..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Writes what the socket's send buffer takes right now, without waiting: the number of
    /// bytes written (`WouldBlock` when it is full).
    pub fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for reads of its length for the whole call.
        let rc = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        cvt(rc)
    }

    /// Ends the sending direction (the peer reads EOF once it has read what was sent). The
    /// descriptor is closed when the socket is dropped.
    pub fn shutdown_write(&self) -> io::Result<()> {
        // SAFETY: plain syscall on a descriptor we own.
        cvt(unsafe { libc::shutdown(self.fd.as_raw_fd(), libc::SHUT_WR) } as isize).map(drop)
    }

    /// Disables (or enables) Nagle's algorithm.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        socket2::SockRef::from(&self.fd).set_nodelay(on)
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        socket2::SockRef::from(&self.fd)
            .peer_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("not an IP socket"))
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.deregister();
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor the caller owns, no memory arguments.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A connection [`Listener::accept`] took: a non-blocking descriptor that no reactor watches
/// yet, and the peer's address as `accept4` gave it.
#[derive(Debug)]
pub struct Accepted {
    pub fd: OwnedFd,
    /// `None` for a peer that is not an IP socket.
    pub peer: Option<SocketAddr>,
}

impl Accepted {
    /// Registers the connection with the calling executor's reactor.
    pub fn register(self) -> io::Result<Socket> {
        Socket::register_nonblocking(self.fd)
    }
}

/// A listening socket registered with the executor's [`Reactor`]: waits until connections
/// are queued, then takes them all with plain `accept4` calls.
pub struct Listener {
    socket: Socket,
}

impl Listener {
    /// Registers a bound, listening socket with this executor.
    pub fn register(fd: OwnedFd) -> io::Result<Listener> {
        Ok(Listener {
            socket: Socket::register(fd)?,
        })
    }

    /// The next queued connection, non-blocking, not yet registered with any reactor (the
    /// caller decides where it is served).
    pub async fn accept(&self) -> io::Result<Accepted> {
        let s = &self.socket;
        poll_fn(|cx| loop {
            match s.poll_ready(cx, false) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            // SAFETY: `init` passes a zeroed `sockaddr_storage` and its length, valid for
            // the whole call; accept4 writes at most that many bytes of the peer's address.
            let taken = unsafe {
                socket2::SockAddr::init(|addr, len| {
                    let fd = libc::accept4(
                        s.fd.as_raw_fd(),
                        addr.cast(),
                        len,
                        libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                    );
                    if fd < 0 {
                        Err(io::Error::last_os_error())
                    } else {
                        // SAFETY: accept4 returned a new descriptor that nobody else owns.
                        Ok(OwnedFd::from_raw_fd(fd))
                    }
                })
            };
            let e = match taken {
                Ok((fd, addr)) => {
                    return Poll::Ready(Ok(Accepted {
                        fd,
                        peer: addr.as_socket(),
                    }))
                }
                Err(e) => e,
            };
            match e.kind() {
                io::ErrorKind::WouldBlock => s.set_ready(false, false),
                io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted => {}
                _ => return Poll::Ready(Err(e)),
            }
        })
        .await
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        socket2::SockRef::from(&self.socket.fd)
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("not an IP socket"))
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for (slot, gen, interest) in [
            (0, 0, Interest::Read),
            (1, 7, Interest::Write),
            ((1 << 31) - 1, u32::MAX, Interest::Read),
        ] {
            let t = token(slot, gen, interest);
            assert_ne!(t, IGNORED);
            assert_eq!(untoken(t), (slot, gen, interest));
        }
    }
}
