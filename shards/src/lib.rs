//! `shardmq-shards`: the per-core runtime of ShardMQ. It knows nothing of MQTT.
//!
//! Owns: starting one pinned glommio executor per configured core ([`runtime`]), the
//! lock-free cross-shard mesh with its back-pressure rules ([`mesh`]), request/reply
//! rendezvous between executors ([`reply`]), handing a live socket from one executor to
//! another ([`handoff`]), socket I/O on an epoll set of each executor's own ([`sockio`]),
//! the doorbell through which peers wake an executor, running, napping or parked ([`doorbell`]),
//! binding the per-shard listeners ([`listen`]) and the start-up
//! pre-flight checks ([`preflight`]).
//! It re-exports the few runtime primitives the broker needs ([`rt`]) so that glommio
//! appears in this crate's manifest only.
//!
//! Must never: block a thread (every wait is an `.await` on the executor, but for the socket
//! reactor's nap, bounded and taken only when nothing else is ready to run), or await a
//! peer's channel from the task that drains our own inbox (see [`mesh`]).

pub mod doorbell;
pub mod handoff;
pub mod listen;
pub mod memory;
pub mod mesh;
pub mod preflight;
pub mod reply;
pub mod runtime;
pub mod sockio;
pub mod spin;

/// Index of a mesh member: shards are `0..shards`, the management executor is `shards`.
pub type ShardId = usize;

/// The runtime primitives the broker uses, re-exported so that only this crate names glommio.
pub mod rt {
    pub use crate::doorbell::{spawn_local, GlommioIo};
    pub use glommio::channels::local_channel;
    pub use glommio::io::{BufferedFile, OpenOptions};
    pub use glommio::net::{TcpListener, TcpStream};
    pub use glommio::timer::{sleep, Timer};
    pub use glommio::{executor, yield_if_needed, Task};
}
