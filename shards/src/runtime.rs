//! Starting executors: one glommio `LocalExecutor` per shard, pinned to its core and
//! scheduled as the configuration says ([`Scheduling`]), plus the management executor. Runs
//! on the main thread only, at start-up and shutdown.
//!
//! Must never: share state between executors other than through [`crate::mesh`] and the
//! [`ShutdownFlag`].

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use glommio::{LocalExecutorBuilder, Placement};

/// Memory registered with io_uring for storage I/O per executor. The broker does no
/// storage I/O on executors, so the glommio default (10 MiB, counted against
/// RLIMIT_MEMLOCK on old kernels) is wasted; glommio's floor is 64 KiB.
const IO_MEMORY: usize = 256 * 1024;

/// Submission-queue depth of each of the executor's io_uring rings (glommio's default is
/// 128). The kernel sizes a ring's cancellation hash table from its completion-queue size:
/// 2^(log2(2 × depth) − 5) buckets, at most 256, reached at depth 4096. Every socket that
/// waits for input through glommio holds a poll request in that table, and glommio cancels
/// and re-arms a timeout on the main ring each time it polls for I/O; the kernel looks for
/// that timeout among the polls of one bucket first. With 8 buckets and 15 k connections that
/// walk took 42 % of a shard's CPU during a connection storm. MQTT sockets wait on the
/// shard's own epoll set ([`crate::sockio`]) instead; the depth stays for whatever
/// still polls through glommio (the management thread's HTTP sockets).
const RING_DEPTH: usize = 4096;

/// How the kernel schedules an executor's thread against the other threads of its core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduling {
    /// `SCHED_BATCH`: a thread that wakes does not preempt the one running on its core; it
    /// runs when that one blocks or has had its time slice. Fairness between the two is
    /// the kernel's usual.
    Batch,
    /// `SCHED_OTHER`, the kernel's default: a thread that wakes may preempt at once.
    Normal,
}

/// Spawns a glommio executor pinned to `core` and scheduled as `scheduling` says, running
/// the future that `make` builds on that thread. The thread ends when the future returns.
pub fn spawn_pinned<G, F>(
    name: &str,
    core: usize,
    scheduling: Scheduling,
    make: G,
) -> io::Result<JoinHandle<()>>
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = ()> + 'static,
{
    let handle = LocalExecutorBuilder::new(Placement::Fixed(core))
        .name(name)
        .io_memory(IO_MEMORY)
        .ring_depth(RING_DEPTH)
        .spawn(move || {
            if scheduling == Scheduling::Batch {
                set_batch_scheduling();
            }
            make()
        })
        .map_err(|e| io::Error::other(format!("starting executor {name} on core {core}: {e}")))?;
    // ExecutorJoinHandle wraps a std JoinHandle; turn it into one the caller can store.
    Ok(std::thread::spawn(move || {
        if let Err(e) = handle.join() {
            tracing::error!("executor ended with an error: {e}");
        }
    }))
}

/// Puts the calling thread under `SCHED_BATCH`. A refusal (a seccomp profile, say) leaves it
/// under the default policy, with a warning: the broker works the same, only its wake-ups
/// preempt.
fn set_batch_scheduling() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; the policy and parameter are valid for it.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if rc != 0 {
        tracing::warn!(
            "could not set SCHED_BATCH on this executor ({}); it keeps the default policy",
            io::Error::last_os_error()
        );
    }
}

/// A process-wide "stop now" flag, set from the signal handler thread and polled by every
/// executor's housekeeping tick.
#[derive(Clone, Debug, Default)]
pub struct ShutdownFlag(Arc<AtomicBool>);

impl ShutdownFlag {
    /// A new, unset flag.
    pub fn new() -> Self {
        Self::default()
    }
    /// Asks everybody to stop.
    pub fn trigger(&self) {
        self.0.store(true, Ordering::Release);
    }
    /// True once stop was asked.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
    /// The shared atomic, for `signal_hook::flag::register`.
    pub fn as_arc(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
}

/// CPU time consumed by the calling thread so far (for an executor's busy ratio).
pub fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_THREAD_CPUTIME_ID is
    // always valid for the calling thread.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
