//! Handing a live TCP connection from the executor that accepted it to the one that will
//! own it (the client's home shard).
//!
//! Owns: the conversion between an executor-bound [`Socket`] and a `Send`able descriptor.
//! The receiving executor re-registers the socket with its own reactor; no data is lost
//! because the caller passes along whatever bytes it had already read.
//! Must never: let the same fd be used by two executors (the sender's socket gives up its
//! descriptor and its reactor's interest in it before the descriptor travels).

use std::io;
use std::os::fd::OwnedFd;

use crate::sockio::Socket;

/// A connected socket in transit between executors, with the receive timestamp of the
/// input already read from it ([`Socket::received_at`]: what the caller passes along arrived
/// then).
#[derive(Debug)]
pub struct SocketInTransit {
    fd: OwnedFd,
    received_at: u64,
}

impl SocketInTransit {
    /// Detaches `stream` from this executor. Any read or write in flight on it must have
    /// completed (the caller owns the stream, so none can be).
    pub fn detach(socket: Socket) -> SocketInTransit {
        let received_at = socket.received_at();
        SocketInTransit {
            fd: socket.into_fd(),
            received_at,
        }
    }

    /// Binds the socket to the current executor's reactor.
    pub fn attach(self) -> io::Result<Socket> {
        // It left a `Socket`, so it is non-blocking already.
        let mut socket = Socket::register_nonblocking(self.fd)?;
        socket.note_received_at(self.received_at);
        Ok(socket)
    }
}
