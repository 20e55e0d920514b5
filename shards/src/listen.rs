//! Binding a shard's listening socket: `SO_REUSEPORT` (every shard binds the same address and
//! the kernel spreads new connections across them), the configured backlog, `TCP_NODELAY`
//! (inherited by every accepted connection) and `TCP_DEFER_ACCEPT`.
//!
//! Must never: be called outside an executor thread (the listener belongs to the executor
//! that binds it); [`reserve_port`] is the exception, for the thread that starts the shards.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::time::Duration;

use crate::sockio::Listener;
use socket2::{Domain, Protocol, Socket, Type};

/// Binds `addr` for the calling executor with `SO_REUSEPORT` and a listen queue of
/// `backlog` (the kernel caps it at `net.core.somaxconn`). With `defer_accept_secs` > 0 the
/// kernel hands a connection over only once its first bytes have arrived (or that many
/// seconds passed): a protocol whose client speaks first (MQTT's CONNECT) then reads its first
/// packet at once, instead of paying a failed read, a poll request and a wake-up for it.
pub fn bind_reuseport(
    addr: SocketAddr,
    backlog: u32,
    defer_accept_secs: u32,
) -> io::Result<Listener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    // Accepted connections inherit it (Linux copies the listener's TCP options), which saves
    // a `setsockopt` per connection: MQTT's small request/response packets must not wait
    // for Nagle's algorithm.
    socket.set_nodelay(true)?;
    // So are receive timestamps: each read notes when the kernel received its input
    // (`Socket::received_at`), which orders a SUBSCRIBE against messages other shards routed
    // while it waited to be read.
    set_int_option(&socket, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)?;
    if defer_accept_secs > 0 {
        let secs = libc::c_int::try_from(defer_accept_secs).unwrap_or(libc::c_int::MAX);
        set_int_option(&socket, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, secs)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    // SAFETY: a bound, listening socket whose ownership passes to the listener.
    Listener::register(unsafe { OwnedFd::from_raw_fd(socket.into_raw_fd()) })
}

/// `setsockopt` of an integer option.
fn set_int_option(
    socket: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: a valid socket and a c_int option value of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Claims `addr` for this process's shards: refuses it when another socket already listens
/// there (another broker: with `SO_REUSEPORT` alone it would silently share the port and
/// split the clients), then keeps it bound with [`reserve_port`] until the shards have bound
/// it too. Port 0 picks a free port. The check binds without `SO_REUSEPORT` (and with
/// `SO_REUSEADDR`, so a restart is not refused for the last run's `TIME_WAIT` connections);
/// only a second broker starting in the same instant could slip past it.
pub fn claim_port(addr: SocketAddr) -> io::Result<(SocketAddr, Socket)> {
    if addr.port() != 0 {
        // Someone answering there is listening: refused whatever the bind below would say
        // (a listener of another process was seen to let that bind through, during a test
        // run with several brokers starting at once).
        if std::net::TcpStream::connect_timeout(&connectable(addr), Duration::from_millis(200))
            .is_ok()
        {
            return Err(in_use(addr));
        }
        let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        probe.set_reuse_address(true)?;
        if let Err(e) = probe.bind(&addr.into()) {
            return Err(if e.kind() == io::ErrorKind::AddrInUse {
                in_use(addr)
            } else {
                e
            });
        }
    }
    reserve_port(addr)
}

fn in_use(addr: SocketAddr) -> io::Error {
    io::Error::new(
        io::ErrorKind::AddrInUse,
        format!("{addr} is already in use (another broker or program listens there)"),
    )
}

/// Where to connect to reach a listener bound to `addr` (the wildcard address: loopback).
fn connectable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// Binds the management listener for the calling executor: no `SO_REUSEPORT` (one process
/// serves the API; a second broker on the same address fails with `AddrInUse` instead of
/// sharing it), `SO_REUSEADDR` for restarts.
pub fn bind_exclusive(addr: SocketAddr, backlog: u32) -> io::Result<crate::rt::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into()).map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{addr} is already in use (another broker or program listens there)"),
            )
        } else {
            e
        }
    })?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    // SAFETY: a bound, listening socket whose ownership passes to the glommio listener.
    Ok(unsafe {
        <crate::rt::TcpListener as std::os::fd::FromRawFd>::from_raw_fd(socket.into_raw_fd())
    })
}

/// Keeps `addr` bound, not listening, with `SO_REUSEPORT` (port 0: a free port, picked now)
/// until the returned socket is dropped: the shards bind the same port
/// meanwhile, and nothing else can be given it. (Picking with a plain socket and dropping it
/// before the shards bind let two brokers started at once get the same port and share it
/// through `SO_REUSEPORT`: one's clients were served by the other.) A bound socket that does
/// not listen takes no connections.
pub fn reserve_port(addr: SocketAddr) -> io::Result<(SocketAddr, Socket)> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    let bound = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("not an IP socket"))?;
    Ok((bound, socket))
}
