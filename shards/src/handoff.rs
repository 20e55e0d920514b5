//! Handing a live TCP connection from the executor that accepted it to the one that will
//! own it (the client's home shard).
//!
//! Owns: the conversion between an executor-bound `TcpStream` and a `Send`able socket.
//! The receiving executor re-registers the socket with its own reactor; no data is lost
//! because the caller passes along whatever bytes it had already read.
//! Must never: let the same fd be used by two executors (the sender's stream is dropped
//! after the descriptor is duplicated).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, IntoRawFd, OwnedFd};
use std::os::unix::io::FromRawFd;

use glommio::net::TcpStream;

/// A connected socket in transit between executors.
#[derive(Debug)]
pub struct SocketInTransit(OwnedFd);

impl SocketInTransit {
    /// Detaches `stream` from this executor. Any read or write in flight on it must have
    /// completed (the caller owns the stream, so none can be).
    pub fn detach(stream: TcpStream) -> io::Result<SocketInTransit> {
        // SAFETY: the raw fd is valid for as long as `stream` lives, and we duplicate it
        // before dropping `stream`.
        let fd = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) }.try_clone_to_owned()?;
        drop(stream);
        Ok(SocketInTransit(fd))
    }

    /// Binds the socket to the current executor.
    pub fn attach(self) -> TcpStream {
        // SAFETY: we own the descriptor and give up ownership to the stream.
        unsafe { TcpStream::from_raw_fd(self.0.into_raw_fd()) }
    }
}
