//! Socket I/O for the MQTT connections: readiness from an epoll set of the shard's own, reads,
//! writes and accepts as plain non-blocking syscalls made when that set says so.
//!
//! Owns: one [`Reactor`] per executor thread: an edge-triggered epoll set holding every
//! registered socket (added once, in and out, when the socket is registered; a closed socket
//! leaves it with its last descriptor, a handed-over one is removed first), the state of each
//! socket, and the pump task that turns readiness into wake-ups.
//!
//! Readiness is collected with `epoll_wait` without waiting, so a socket that becomes ready
//! while the shard is busy costs the shard nothing until it looks: no interrupt, no work
//! queued on its thread. Only when the pump is about to sleep does it put one one-shot
//! `POLLIN` request for the epoll set in an io_uring ring of its own, whose eventfd it reads
//! through glommio, so the executor parks in glommio's ring as before and the first socket
//! that becomes ready wakes it. Why not a multishot poll per socket in an io_uring ring: its
//! completions are task work that interrupts the shard's CPU for nearly every packet that
//! arrives while the shard runs (measured: 2.3 rescheduling interrupts per connection in a
//! connection storm, 0.5 per message with QoS 1 pairs at window 1; Mosquitto's epoll loop
//! and this set: close to none).
//!
//! The ring is created without task-work flags on purpose. The poll's completion then runs
//! as task work that signals the shard thread, which ends any sleep at once; the completion
//! it posts signals the eventfd from the shard's own thread. With
//! `IORING_SETUP_DEFER_TASKRUN`, the eventfd signal for work queued by the softirq that
//! received a packet reached the sleeping shard only ~15 ms later (Linux 6.18; traced: the
//! work was queued at once, the eventfd stayed at 0, glommio's ring saw nothing until then,
//! as if the signal waited for an RCU grace period): an idle shard answered every packet
//! ~16 ms late. With `COOP_TASKRUN` the work waits for the shard's next kernel entry and
//! never wakes a sleeping shard (sleeps of ~190 ms with input waiting).
//!
//! The set also holds the executor's doorbell ([`crate::doorbell`]), which peers ring when
//! they put a message in its channels while it sleeps: the pump wakes the mesh's tasks for
//! it, so messages between executors never wait for a turn of glommio's reactor. When the
//! pump runs out of readiness and nothing else is ready to run, it first polls the set and
//! the doorbell's counts for a short, adaptive window, yielding the CPU between polls
//! ([`crate::spin`]), then naps in the epoll set (`epoll_pwait2`, up to
//! [`Reactor::enable_nap`]'s length) before it parks the executor: a ready socket or the
//! doorbell ends the nap without the cost of glommio's park.
//!
//! Must never: be used from another thread than the one that created it (everything here
//! is `!Send`), block (but for the nap: bounded, and only when nothing else is ready), or
//! hand a descriptor to another executor while it is still in this one's epoll set (slots
//! carry a generation; readiness reported for a freed slot is ignored).

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use io_uring::{opcode, types, IoUring};
use slab::Slab;

use crate::doorbell::{self, Doorbell};
use crate::spin::SpinWindow;

/// A `sched_yield` that takes this long ran another thread for a while (alone it returns in
/// ~0.5 µs; a client that answers and waits again gives the CPU back within a few tens of
/// µs): the CPU has work of its own, and the shard stops polling ([`SpinWindow::cpu_wanted`]).
const CPU_WANTED: Duration = Duration::from_micros(50);
/// Readiness events taken per `epoll_wait` (the pump asks again while batches come full).
const BATCH: usize = 256;
/// What every socket is registered for, edge-triggered: data, the peer's FIN, errors, and
/// room to write (reported once when registered, then after a send found the buffer full).
const EVENTS: u32 = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
const READ_EVENTS: u32 =
    (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLERR | libc::EPOLLHUP) as u32;
const WRITE_EVENTS: u32 = (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32;

/// Packs a slot and its generation into an epoll event's data.
fn token(slot: usize, gen: u32) -> u64 {
    (u64::from(gen) << 32) | slot as u64
}

/// The epoll data of the executor's doorbell (no socket slot has this token: slots are
/// below `u32::MAX`).
const DOORBELL: u64 = u64::MAX;

fn untoken(data: u64) -> (usize, u32) {
    ((data & 0xffff_ffff) as usize, (data >> 32) as u32)
}

/// What the reactor knows of one registered socket.
#[derive(Default)]
struct Slot {
    gen: u32,
    /// The socket may have input (or an error, or EOF) that no read has seen yet.
    readable: bool,
    /// Room to write may have come since the last send that would have blocked.
    writable: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

/// The calling executor's epoll set and the state of every socket registered with it.
pub struct Reactor {
    /// Holds at most one request: the one-shot poll of the epoll set, while the pump sleeps.
    /// (Declared before the set: dropped first.)
    ring: RefCell<IoUring>,
    epoll: OwnedFd,
    /// That poll is in the ring.
    armed: Cell<bool>,
    /// How many events one `epoll_wait` may return.
    batch: usize,
    /// The `epoll_wait` buffer and the wakers of one reap, kept between reaps.
    events: RefCell<Vec<libc::epoll_event>>,
    woken: RefCell<Vec<Waker>>,
    slots: RefCell<Slab<Slot>>,
    /// Generation counter for slots, so readiness reported for a dropped socket cannot wake
    /// the socket that reused its slot.
    next_gen: Cell<u32>,
    /// Readiness reported for sockets no longer registered here.
    stale: Cell<u64>,
    /// The executor's doorbell, once [`Reactor::attach_doorbell`] was called (by the mesh).
    bell: RefCell<Option<Arc<Doorbell>>>,
    /// How many times receivers had made room for this executor's senders when it last
    /// looked (a change wakes the tasks waiting for a mesh event).
    room_seen: Cell<u64>,
    /// The longest nap ([`Reactor::enable_nap`]); zero: no naps.
    nap: Cell<Duration>,
    /// How long the pump polls, yielding its CPU between polls, before a nap.
    spin: Cell<SpinWindow>,
    /// The doorbell rang since the pump last looked.
    rung: Cell<bool>,
    /// Naps taken, and those that ended with socket readiness (for tests and figures).
    naps: Cell<u64>,
    naps_woken: Cell<u64>,
    /// Polls before a nap that found work (no nap was taken).
    polls_found: Cell<u64>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Reactor>>> = const { RefCell::new(None) };
}

impl Reactor {
    /// This executor's reactor, created (with its pump task) on first use.
    pub fn current() -> io::Result<Rc<Reactor>> {
        Self::current_with_batch(BATCH)
    }

    /// [`Reactor::current`], creating it (if this executor has none yet) with `epoll_wait`
    /// batches of `batch` events; tests use tiny ones.
    pub fn current_with_batch(batch: usize) -> io::Result<Rc<Reactor>> {
        if let Some(r) = CURRENT.with(|c| c.borrow().clone()) {
            return Ok(r);
        }
        let reactor = Rc::new(Reactor::new(batch.max(1))?);
        let efd = reactor.eventfd()?;
        CURRENT.with(|c| *c.borrow_mut() = Some(reactor.clone()));
        glommio::spawn_local(pump(reactor.clone(), efd)).detach();
        Ok(reactor)
    }

    fn new(batch: usize) -> io::Result<Reactor> {
        // SAFETY: epoll_create1 has no memory arguments; a non-negative result is ours.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epfd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: just created, owned by nobody else.
        let epoll = unsafe { OwnedFd::from_raw_fd(epfd) };
        // No task-work flags: see the module doc for why neither deferred nor cooperative
        // task work will do.
        let ring = IoUring::builder().build(4)?;
        Ok(Reactor {
            ring: RefCell::new(ring),
            epoll,
            armed: Cell::new(false),
            batch,
            events: RefCell::new(vec![libc::epoll_event { events: 0, u64: 0 }; batch]),
            woken: RefCell::new(Vec::new()),
            slots: RefCell::new(Slab::new()),
            next_gen: Cell::new(0),
            stale: Cell::new(0),
            bell: RefCell::new(None),
            room_seen: Cell::new(0),
            nap: Cell::new(Duration::ZERO),
            spin: Cell::new(SpinWindow::new(Duration::ZERO)),
            rung: Cell::new(false),
            naps: Cell::new(0),
            naps_woken: Cell::new(0),
            polls_found: Cell::new(0),
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

    fn epoll_ctl(&self, op: libc::c_int, fd: RawFd, data: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: EVENTS,
            u64: data,
        };
        // SAFETY: `ev` is valid for the call; the kernel copies it.
        if unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn register(&self, fd: RawFd) -> io::Result<(usize, u32)> {
        let gen = self.next_gen.get().wrapping_add(1);
        self.next_gen.set(gen);
        let slot = self.slots.borrow_mut().insert(Slot {
            gen,
            // Input may have arrived before the socket joined the set (a hand-over, a
            // CONNECT that came with the SYN's ACK): the first read tries without waiting.
            readable: true,
            writable: true,
            ..Slot::default()
        });
        if let Err(e) = self.epoll_ctl(libc::EPOLL_CTL_ADD, fd, token(slot, gen)) {
            self.slots.borrow_mut().remove(slot);
            return Err(e);
        }
        Ok((slot, gen))
    }

    /// Frees the socket's slot. A socket that is about to be closed needs nothing more (its
    /// last descriptor's close takes it out of the epoll set); one whose descriptor goes on
    /// living elsewhere (`leaving`) is taken out of the set first.
    fn deregister(&self, slot: usize, gen: u32, fd: RawFd, leaving: bool) {
        {
            let mut slots = self.slots.borrow_mut();
            match slots.get(slot) {
                Some(s) if s.gen == gen => drop(slots.remove(slot)),
                _ => return,
            }
        }
        if leaving {
            if let Err(e) = self.epoll_ctl(libc::EPOLL_CTL_DEL, fd, 0) {
                tracing::warn!("taking a socket out of the epoll set failed: {e}");
            }
        }
    }

    /// Takes every readiness the epoll set has, marks the slots and wakes whoever waits.
    /// Returns how many socket events there were (a doorbell's ring is noted in `rung`).
    fn reap(&self) -> usize {
        self.reap_waiting(None)
    }

    /// [`Reactor::reap`], first waiting up to `wait` for readiness if there is none (the
    /// thread sleeps in `epoll_pwait2`).
    fn reap_waiting(&self, mut wait: Option<Duration>) -> usize {
        if self.armed.get() && self.ring.borrow_mut().completion().count() > 0 {
            self.armed.set(false);
        }
        let mut seen = 0;
        let mut woken = self.woken.borrow_mut();
        {
            let mut events = self.events.borrow_mut();
            let mut slots = self.slots.borrow_mut();
            loop {
                let timeout = wait.take().map(|d| libc::timespec {
                    tv_sec: d.as_secs() as libc::time_t,
                    tv_nsec: libc::c_long::from(d.subsec_nanos()),
                });
                // SAFETY: `events` holds `batch` initialised entries the kernel may overwrite;
                // the timeout, when there is one, lives for the whole call.
                let n = unsafe {
                    match &timeout {
                        None => libc::epoll_wait(
                            self.epoll.as_raw_fd(),
                            events.as_mut_ptr(),
                            self.batch as libc::c_int,
                            0,
                        ),
                        Some(ts) => libc::epoll_pwait2(
                            self.epoll.as_raw_fd(),
                            events.as_mut_ptr(),
                            self.batch as libc::c_int,
                            ts,
                            std::ptr::null(),
                        ),
                    }
                };
                if n < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    if timeout.is_some() {
                        // A kernel without `epoll_pwait2` (before 5.11): no naps.
                        tracing::warn!("socket reactor: epoll_pwait2 failed ({e}); not napping");
                        self.nap.set(Duration::ZERO);
                    } else {
                        tracing::warn!("socket reactor: epoll_wait failed: {e}");
                    }
                    break;
                }
                let n = n as usize;
                let mut bell = 0;
                for ev in &events[..n] {
                    let (flags, data) = (ev.events, ev.u64);
                    if data == DOORBELL {
                        if let Some(b) = self.bell.borrow().as_ref() {
                            b.empty();
                        }
                        self.rung.set(true);
                        bell = 1;
                        continue;
                    }
                    let (idx, gen) = untoken(data);
                    let slot = match slots.get_mut(idx) {
                        Some(slot) if slot.gen == gen => slot,
                        _ => {
                            // A socket that is gone (its close or hand-over raced the event).
                            self.stale.set(self.stale.get() + 1);
                            continue;
                        }
                    };
                    // Any outcome (events, an error) is for the reader or writer to find out
                    // with its next syscall.
                    if flags & READ_EVENTS != 0 {
                        slot.readable = true;
                        woken.extend(slot.reader.take());
                    }
                    if flags & WRITE_EVENTS != 0 {
                        slot.writable = true;
                        woken.extend(slot.writer.take());
                    }
                }
                seen += n - bell;
                if n < self.batch {
                    break;
                }
            }
        }
        for w in woken.drain(..) {
            w.wake();
        }
        seen
    }

    /// Puts the executor's doorbell in the epoll set: the pump then wakes the tasks waiting
    /// for a mesh event whenever messages are counted on it, it rings, or receivers made
    /// room, and sleeps only with the doorbell's flag set. Attaching the same doorbell again
    /// does nothing; another one is refused.
    pub fn attach_doorbell(&self, bell: Arc<Doorbell>) -> io::Result<()> {
        if let Some(b) = self.bell.borrow().as_ref() {
            return if Arc::ptr_eq(b, &bell) {
                Ok(())
            } else {
                Err(io::Error::other("this executor has another doorbell"))
            };
        }
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: DOORBELL,
        };
        // SAFETY: `ev` is valid for the call; the doorbell's descriptor lives as long as the
        // `Arc` kept beside it (the epoll set, declared before, is closed first).
        if unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                bell.raw_fd(),
                &mut ev,
            )
        } < 0
        {
            return Err(io::Error::last_os_error());
        }
        self.room_seen.set(bell.room());
        // Wake the pump wherever it waits: it may have gone to sleep without the doorbell's
        // flag, which senders read.
        bell.ring();
        *self.bell.borrow_mut() = Some(bell);
        Ok(())
    }

    /// Lets the pump nap up to `nap` in `epoll_pwait2` before it parks the executor, with
    /// `bell` attached ([`Reactor::attach_doorbell`]), and poll for up to `spin` before a
    /// nap while the gaps between its work are that short ([`crate::spin`]). A zero `nap`
    /// turns napping off (and polling with it); a zero `spin` turns polling off.
    pub fn enable_nap(&self, bell: Arc<Doorbell>, nap: Duration, spin: Duration) -> io::Result<()> {
        self.attach_doorbell(bell)?;
        self.nap.set(nap);
        self.spin.set(SpinWindow::new(spin));
        Ok(())
    }

    fn bell(&self) -> Option<Arc<Doorbell>> {
        self.bell.borrow().clone()
    }

    fn may_nap(&self) -> bool {
        !self.nap.get().is_zero() && self.bell.borrow().is_some()
    }

    /// Something for the tasks waiting for a mesh event: the doorbell rang, messages are
    /// counted and not taken, or receivers made room. Clears the ring.
    fn take_mesh_event(&self) -> bool {
        let rung = self.rung.take();
        let Some(bell) = self.bell.borrow().clone() else {
            return rung;
        };
        let room = bell.room();
        let made_room = room != self.room_seen.get();
        self.room_seen.set(room);
        rung || made_room || bell.pending() > 0
    }

    /// Polls the epoll set and the doorbell's counts for the spin window's length, yielding
    /// the CPU between polls, then sleeps in the epoll set until a socket is ready, the
    /// doorbell rings or the nap's time is up; does not sleep when a peer's message is
    /// already waiting. True if something came (the sockets' tasks are woken; a ring is left
    /// in `rung` for the pump).
    fn nap(&self) -> bool {
        let Some(bell) = self.bell() else {
            return false;
        };
        let started = Instant::now();
        let mut spin = self.spin.get();
        let window = spin.now(started);
        if !window.is_zero() {
            loop {
                if self.reap() > 0 || self.rung.get() || self.mesh_waiting(&bell) {
                    self.polls_found.set(self.polls_found.get() + 1);
                    spin.after_wait(Some(started.elapsed()));
                    self.spin.set(spin);
                    return true;
                }
                if started.elapsed() >= window {
                    break;
                }
                let before = Instant::now();
                // SAFETY: no arguments; gives the CPU to any other runnable thread.
                unsafe { libc::sched_yield() };
                if before.elapsed() >= CPU_WANTED {
                    spin.cpu_wanted(Instant::now());
                    break;
                }
            }
        }
        let came = if bell.begin_sleep() {
            self.naps.set(self.naps.get() + 1);
            let found = self.reap_waiting(Some(self.nap.get()));
            bell.end_sleep();
            if found > 0 {
                self.naps_woken.set(self.naps_woken.get() + 1);
            }
            found > 0 || self.rung.get()
        } else {
            true
        };
        spin.after_wait(came.then(|| started.elapsed()));
        self.spin.set(spin);
        came
    }

    /// Messages counted and not taken, or room made by receivers since the pump last looked
    /// (neither rings the doorbell of an executor that is not asleep).
    fn mesh_waiting(&self, bell: &Doorbell) -> bool {
        bell.pending() > 0 || bell.room() != self.room_seen.get()
    }

    /// Naps taken so far, how many of them socket readiness ended, and how many polls before
    /// a nap found work (so no nap was taken).
    pub fn naps(&self) -> (u64, u64, u64) {
        (
            self.naps.get(),
            self.naps_woken.get(),
            self.polls_found.get(),
        )
    }

    /// Puts the one-shot poll of the epoll set in the ring (unless it is there): readiness
    /// from now on, or already waiting in the set, completes it and signals the eventfd.
    /// False if the kernel refused it: then nothing would end a sleep on the eventfd.
    fn arm(&self) -> bool {
        if self.armed.get() {
            return true;
        }
        let poll = opcode::PollAdd::new(types::Fd(self.epoll.as_raw_fd()), libc::POLLIN as u32)
            .build()
            .user_data(0);
        let mut ring = self.ring.borrow_mut();
        // A poll that an earlier failed submit left queued is submitted now, not doubled.
        // SAFETY: the poll references no memory of ours, only the epoll descriptor, which
        // lives as long as the ring (both are fields of the reactor, the ring dropped first).
        if ring.submission().is_empty() && unsafe { ring.submission().push(&poll) }.is_err() {
            tracing::error!("socket reactor: its ring is full");
            return false;
        }
        match ring.submit() {
            Ok(_) => {
                self.armed.set(true);
                true
            }
            Err(e) => {
                tracing::error!("socket reactor: arming its poll failed: {e}");
                false
            }
        }
    }

    /// Ready once the socket may have input (`write`: room to write); otherwise registers
    /// `waker` for it.
    fn poll_ready(&self, slot: usize, write: bool, waker: &Waker) -> Poll<io::Result<()>> {
        let mut slots = self.slots.borrow_mut();
        let s = &mut slots[slot];
        let (ready, waiter) = if write {
            (s.writable, &mut s.writer)
        } else {
            (s.readable, &mut s.reader)
        };
        if ready {
            return Poll::Ready(Ok(()));
        }
        if !waiter.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *waiter = Some(waker.clone());
        }
        Poll::Pending
    }

    /// Records what a syscall found: input (`write`: room) or none.
    fn set_ready(&self, slot: usize, write: bool, ready: bool) {
        let mut slots = self.slots.borrow_mut();
        let s = &mut slots[slot];
        if write {
            s.writable = ready;
        } else {
            s.readable = ready;
        }
    }

    /// How many readiness events named a socket no longer registered here (for tests: a
    /// socket handed to another executor must not go on waking this one).
    pub fn stale_events(&self) -> u64 {
        self.stale.get()
    }

    /// Sockets registered now (for tests and figures).
    pub fn registered(&self) -> usize {
        self.slots.borrow().len()
    }
}

/// How many times in a row the pump looks at the epoll set again after the tasks it woke
/// have run, before it arms the poll and sleeps on the eventfd (glommio's reactor then gets
/// its turn: the mesh's channels, the timers and glommio's own I/O are only seen there).
const AWAKE_ROUNDS: u32 = 8;
/// The longest a pump stays in the executor's queue, napping included, before glommio's
/// reactor gets its turn (its timers and its I/O wait that long at most).
const AWAKE_FOR: Duration = Duration::from_millis(1);

/// Turns readiness into wake-ups, then sleeps on the eventfd until the epoll set has more.
/// Runs as a task of the executor for the executor's whole life.
///
/// While it finds readiness it stays awake: it lets the tasks it woke run, then looks
/// again. A client's next packet that arrived meanwhile is taken in the same executor turn;
/// going through the eventfd would cost a turn of glommio's loop (three `io_uring_enter`s
/// re-arming its preemption timers, and a park) per packet.
///
/// Every round it also looks at the executor's doorbell (if the mesh attached one): messages
/// counted and not taken, a ring, or room made in a peer's channel wake the tasks waiting
/// for a mesh event (the inbox drain, flushers).
///
/// When it finds nothing, and a whole turn of the executor's queue ran no other task, it
/// polls for the spin window's length (while the gaps between its work are short and no
/// other thread wants the CPU, [`crate::spin`]), then
/// naps (if [`Reactor::enable_nap`] was called): it sleeps in `epoll_pwait2` on the epoll
/// set, which also holds the doorbell, for up to the nap's length. A socket that becomes
/// ready or a ring ends the nap as fast as a park would end, without the park's cost
/// (glommio arms and cancels timers and issues an expedited `membarrier`, an interrupt to
/// every other CPU running the broker, each time it parks). When the nap's time is up, or
/// after a millisecond awake, the pump gives glommio's reactor its turn, with the doorbell's
/// "sleeping" flag set: the executor parks unless something is ready.
async fn pump(reactor: Rc<Reactor>, efd: OwnedFd) {
    // SAFETY: the eventfd is ours; glommio's file takes ownership and closes it.
    let file =
        unsafe { glommio::io::BufferedFile::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(efd)) };
    loop {
        let started = Instant::now();
        let mut rounds = 0;
        while rounds < AWAKE_ROUNDS {
            let found = reactor.reap();
            let mesh = reactor.take_mesh_event();
            if mesh {
                doorbell::wake_mesh_waiters();
            }
            if found > 0 || mesh {
                rounds += 1;
                yield_now().await;
                continue;
            }
            if !reactor.may_nap()
                || started.elapsed() >= AWAKE_FOR
                || doorbell::awaiting_glommio_io()
            {
                break;
            }
            // Nap only after a turn of the queue in which no other task ran: then nothing
            // is ready to run but what a socket or a peer will wake.
            let before = doorbell::task_polls();
            yield_now().await;
            if doorbell::task_polls() != before {
                continue;
            }
            if !reactor.nap() {
                break;
            }
        }
        // glommio's turn: its timers, its I/O and the executor's other tasks. The executor
        // parks unless something is ready; with the doorbell's flag set, a peer's message
        // rings the doorbell, whose readiness completes the poll and wakes it.
        let bell = reactor.bell();
        if let Some(b) = &bell {
            if !b.begin_sleep() {
                // A message waits: the turn must not sleep (the ring completes the poll).
                b.ring();
            }
        }
        // The poll completes at once if the set already has readiness, so nothing that
        // arrived after the last reap waits unseen behind the read.
        if !reactor.arm() {
            glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
        } else if let Err(e) = file.read_at(0, 8).await {
            tracing::error!("socket reactor: reading its eventfd failed: {e}");
            glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
        }
        if let Some(b) = &bell {
            b.end_sleep();
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

/// A connected, non-blocking TCP socket registered with the executor's [`Reactor`].
pub struct Socket {
    fd: OwnedFd,
    slot: u32,
    gen: u32,
    /// When the kernel received the input the last read returned (its receive timestamp,
    /// `CLOCK_REALTIME` nanoseconds, of the newest segment read); 0 when unknown.
    received_at: u64,
    /// The socket belongs to its thread's [`Reactor`] (found through the thread-local, not a
    /// handle: every idle connection holds a `Socket`, 24 bytes this way).
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
    fn deregister(&self, leaving: bool) {
        let fd = self.fd.as_raw_fd();
        with_reactor(|r| r.deregister(self.slot as usize, self.gen, fd, leaving));
    }

    fn poll_ready(&self, cx: &mut std::task::Context<'_>, write: bool) -> Poll<io::Result<()>> {
        let slot = self.slot as usize;
        with_reactor(|r| r.poll_ready(slot, write, cx.waker()))
            .unwrap_or_else(|| Poll::Ready(Err(io::ErrorKind::NotConnected.into())))
    }

    fn set_ready(&self, write: bool, ready: bool) {
        let slot = self.slot as usize;
        with_reactor(|r| r.set_ready(slot, write, ready));
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
            reactor.deregister(slot, gen, fd.as_raw_fd(), true);
            return Err(io::Error::other("too many sockets"));
        };
        Ok(Socket {
            fd,
            slot,
            gen,
            received_at: 0,
            _thread_bound: std::marker::PhantomData,
        })
    }

    /// Input read from this socket elsewhere (before a hand-over) arrived at `at`.
    pub(crate) fn note_received_at(&mut self, at: u64) {
        self.received_at = at;
    }

    /// Unregisters the socket and gives its descriptor back, e.g. to hand it to another
    /// executor. Input the kernel holds stays there; the descriptor stays non-blocking.
    pub fn into_fd(self) -> OwnedFd {
        let this = std::mem::ManuallyDrop::new(self);
        this.deregister(true);
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

    /// When the kernel received what the last read returned (`CLOCK_REALTIME` nanoseconds of
    /// the newest segment read; no earlier than any byte of it arrived): 0 when unknown (no
    /// read yet, or a socket not accepted by a [`crate::listen::bind_reuseport`] listener).
    pub fn received_at(&self) -> u64 {
        self.received_at
    }

    /// Reads what the socket holds right now without waiting: `WouldBlock` when it is empty.
    /// Notes the kernel's receive timestamp of what it read ([`Socket::received_at`]).
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            // Room for one SO_TIMESTAMPNS message (a cmsghdr and a timespec), aligned.
            let mut control = [0u64; 8];
            // SAFETY: an all-zero msghdr is valid (no name, no iovecs, no control).
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&control) as _;
            // SAFETY: `msg` points at `iov` (valid for writes of `buf.len()` bytes) and at
            // `control`, all of which outlive the call.
            let rc = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
            match cvt(rc) {
                Ok(n) => {
                    self.received_at = receive_timestamp(&msg);
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
        // The descriptor is closed right after: that takes it out of the epoll set.
        self.deregister(false);
    }
}

/// The `SO_TIMESTAMPNS` control message of a `recvmsg` (TCP adds it to a read that returned
/// data when the socket asked for it), in nanoseconds; 0 when there is none.
fn receive_timestamp(msg: &libc::msghdr) -> u64 {
    // SAFETY: `msg` was filled by a successful recvmsg; the CMSG_* macros walk its control
    // buffer within `msg_controllen`, and the data of an SO_TIMESTAMPNS message is a timespec.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SO_TIMESTAMPNS {
                let ts: libc::timespec =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                return (ts.tv_sec as u64)
                    .saturating_mul(1_000_000_000)
                    .saturating_add(ts.tv_nsec as u64);
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    0
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
        for (slot, gen) in [
            (0, 0),
            (1, 7),
            ((1 << 31) - 1, u32::MAX),
            (u32::MAX as usize, 1),
        ] {
            assert_eq!(untoken(token(slot, gen)), (slot, gen));
        }
    }
}
