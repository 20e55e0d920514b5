//! The socket reactor over real loopback sockets: accepting, reading, writing past a full
//! send buffer, EOF, deregistration, hand-over between executors.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use shardmq_shards::handoff::SocketInTransit;
use shardmq_shards::listen::bind_reuseport;
use shardmq_shards::sockio::Reactor;

mod common;
use common::read_exact;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Runs the future `make` builds on a fresh glommio executor thread and returns its result;
/// panics if it takes longer than 30 s.
fn on_executor<T: Send + 'static, F: std::future::Future<Output = T> + 'static>(
    make: impl FnOnce() -> F + Send + 'static,
) -> T {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move {
            let timeout = async {
                glommio::timer::sleep(Duration::from_secs(30)).await;
                panic!("the executor's work took more than 30 s");
            };
            futures_lite::future::or(make(), timeout).await
        })
        .expect("executor")
        .join()
        .expect("executor thread")
}

#[test]
fn echoes_bytes_and_sees_the_peers_eof() {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let client = std::thread::spawn(move || {
        let addr: SocketAddr = addr_rx.recv().unwrap();
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        for round in 0..100u32 {
            let msg = format!("ping {round}");
            c.write_all(msg.as_bytes()).unwrap();
            let mut back = vec![0u8; msg.len()];
            c.read_exact(&mut back).unwrap();
            assert_eq!(back, msg.as_bytes());
        }
        c.shutdown(Shutdown::Write).unwrap();
        // The server closes after EOF: we read EOF too.
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    });
    let echoed = on_executor(move || async move {
        let listener = bind_reuseport(loopback(), 16, 0).unwrap();
        addr_tx.send(listener.local_addr().unwrap()).unwrap();
        let mut s = listener.accept().await.unwrap().register().unwrap();
        let reactor = Reactor::current().unwrap();
        assert_eq!(reactor.registered(), 2, "the listener and the connection");
        let mut total = 0;
        let mut buf = [0u8; 64];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            total += n;
            s.write_all(&buf[..n]).await.unwrap();
        }
        drop(s);
        assert_eq!(
            reactor.registered(),
            1,
            "a dropped socket leaves the reactor"
        );
        total
    });
    client.join().unwrap();
    assert_eq!(echoed, (0..100).map(|r| format!("ping {r}").len()).sum());
}

/// Many more sockets become readable at once than one `epoll_wait` returns (batches of 16
/// here): the rest must still be taken, in later batches or after the executor sleeps.
#[test]
fn readiness_beyond_one_batch_is_not_lost() {
    const CLIENTS: usize = 300;
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let clients = std::thread::spawn(move || {
        let addr: SocketAddr = addr_rx.recv().unwrap();
        let mut conns: Vec<TcpStream> = (0..CLIENTS)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        go_rx.recv().unwrap(); // the server accepted them all
        for (i, c) in conns.iter_mut().enumerate() {
            c.write_all(&(i as u32).to_be_bytes()).unwrap();
        }
        for (i, c) in conns.iter_mut().enumerate() {
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut back = [0u8; 4];
            c.read_exact(&mut back).unwrap();
            assert_eq!(u32::from_be_bytes(back), i as u32);
        }
    });
    let served = on_executor(move || async move {
        let reactor = Reactor::current_with_batch(16).unwrap();
        let listener = bind_reuseport(loopback(), 1024, 0).unwrap();
        addr_tx.send(listener.local_addr().unwrap()).unwrap();
        let mut sockets = Vec::new();
        while sockets.len() < CLIENTS {
            sockets.push(listener.accept().await.unwrap().register().unwrap());
        }
        go_tx.send(()).unwrap();
        let tasks: Vec<_> = sockets
            .into_iter()
            .map(|mut s| {
                glommio::spawn_local(async move {
                    let mut buf = [0u8; 4];
                    read_exact(&mut s, &mut buf).await;
                    s.write_all(&buf).await.unwrap();
                    s // kept open until every one has answered
                })
            })
            .collect();
        let mut kept = Vec::new();
        for t in tasks {
            kept.push(t.await);
        }
        assert_eq!(reactor.registered(), 1 + CLIENTS);
        drop(kept);
        assert_eq!(reactor.registered(), 1, "every served socket was dropped");
        CLIENTS
    });
    clients.join().unwrap();
    assert_eq!(served, CLIENTS);
}

#[test]
fn a_write_larger_than_the_send_buffer_waits_for_room_and_arrives_whole() {
    const LEN: usize = 16 * 1024 * 1024;
    let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
    let expected = data.clone();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let client = std::thread::spawn(move || {
        let addr: SocketAddr = addr_rx.recv().unwrap();
        let mut c = TcpStream::connect(addr).unwrap();
        // Read slowly at first, so that the server's sends hit a full buffer.
        let mut got = Vec::with_capacity(LEN);
        let mut buf = vec![0u8; 4096];
        while got.len() < LEN {
            let n = c.read(&mut buf).unwrap();
            assert!(n > 0, "EOF after {} bytes", got.len());
            got.extend_from_slice(&buf[..n]);
            if got.len() < 256 * 1024 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        got
    });
    on_executor(move || async move {
        let listener = bind_reuseport(loopback(), 16, 0).unwrap();
        addr_tx.send(listener.local_addr().unwrap()).unwrap();
        let mut s = listener.accept().await.unwrap().register().unwrap();
        s.write_all(&data).await.unwrap();
        s.shutdown_write().unwrap();
    });
    let got = client.join().unwrap();
    assert!(got == expected, "the bytes differ");
}

#[test]
fn a_socket_handed_to_another_executor_keeps_its_unread_input() {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (fd_tx, fd_rx) = std::sync::mpsc::channel::<SocketInTransit>();
    let client = std::thread::spawn(move || {
        let addr: SocketAddr = addr_rx.recv().unwrap();
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"first").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut ack = [0u8; 2];
        c.read_exact(&mut ack).unwrap();
        assert_eq!(&ack, b"ok");
        c.write_all(b"second").unwrap();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        rest
    });
    let first = std::thread::spawn(move || {
        on_executor(move || async move {
            let listener = bind_reuseport(loopback(), 16, 0).unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let mut s = listener.accept().await.unwrap().register().unwrap();
            let mut buf = [0u8; 5];
            let n = s.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"first");
            s.write_all(b"ok").await.unwrap();
            let fd = s.peer_addr().unwrap();
            fd_tx.send(SocketInTransit::detach(s)).unwrap();
            fd
        })
    });
    let got = on_executor(move || async move {
        let mut s = fd_rx.recv().unwrap().attach().unwrap();
        assert!(s.peer_addr().is_ok());
        let mut got = Vec::new();
        let mut buf = [0u8; 16];
        while got.len() < 6 {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        s.write_all(b"bye").await.unwrap();
        s.shutdown_write().unwrap();
        got
    });
    first.join().unwrap();
    assert_eq!(got, b"second");
    assert_eq!(client.join().unwrap(), b"bye");
}

/// A socket handed to another executor leaves the first one's epoll set: what its client
/// sends afterwards reaches only the new owner and never wakes the old one.
#[test]
fn a_handed_over_socket_no_longer_wakes_the_executor_that_gave_it_away() {
    const ROUNDS: usize = 50;
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (fd_tx, fd_rx) = std::sync::mpsc::channel::<SocketInTransit>();
    let client = std::thread::spawn(move || {
        let addr: SocketAddr = addr_rx.recv().unwrap();
        let mut moved = TcpStream::connect(addr).unwrap();
        moved
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        moved.write_all(b"first").unwrap();
        let mut buf = [0u8; 5];
        moved.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"moved");
        for round in 0..ROUNDS {
            moved.write_all(&[round as u8]).unwrap();
            let mut back = [0u8; 1];
            moved.read_exact(&mut back).unwrap();
            assert_eq!(back[0], round as u8);
        }
        // Only now the first executor's next connection: it has been listening all along.
        let mut done = TcpStream::connect(addr).unwrap();
        done.write_all(b"done").unwrap();
    });
    let first = std::thread::spawn(move || {
        on_executor(move || async move {
            let listener = bind_reuseport(loopback(), 16, 0).unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let mut s = listener.accept().await.unwrap().register().unwrap();
            read_exact(&mut s, &mut [0u8; 5]).await;
            fd_tx.send(SocketInTransit::detach(s)).unwrap();
            let mut done = listener.accept().await.unwrap().register().unwrap();
            read_exact(&mut done, &mut [0u8; 4]).await;
            Reactor::current().unwrap().stale_events()
        })
    });
    on_executor(move || async move {
        let mut s = fd_rx.recv().unwrap().attach().unwrap();
        s.write_all(b"moved").await.unwrap();
        for _ in 0..ROUNDS {
            let mut b = [0u8; 1];
            assert_eq!(s.read(&mut b).await.unwrap(), 1);
            s.write_all(&b).await.unwrap();
        }
    });
    client.join().unwrap();
    assert_eq!(
        first.join().unwrap(),
        0,
        "readiness of the handed-over socket"
    );
}

#[test]
fn the_listener_sets_defer_accept_only_when_asked() {
    let values = on_executor(|| async {
        let read = |secs| {
            let l = bind_reuseport(loopback(), 16, secs).unwrap();
            let mut v: libc::c_int = -1;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: getsockopt writes at most `len` bytes into `v`.
            let rc = unsafe {
                libc::getsockopt(
                    l.as_raw_fd(),
                    libc::IPPROTO_TCP,
                    libc::TCP_DEFER_ACCEPT,
                    (&mut v as *mut libc::c_int).cast(),
                    &mut len,
                )
            };
            assert_eq!(rc, 0);
            v
        };
        (read(0), read(5))
    });
    assert_eq!(values.0, 0);
    assert!(values.1 > 0, "TCP_DEFER_ACCEPT not set: {}", values.1);
}

/// The state letter of thread `tid` of this process (`R` running, `S` sleeping, ...).
fn thread_state(tid: i32) -> u8 {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
    // The state follows the command name, which is in parentheses.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.as_bytes()[0]
}

/// Input that arrives while the executor thread sleeps in glommio's ring must wake it at
/// once: each round writes only once the executor thread is asleep, and the median round trip
/// must be far below any timer or grace period (a liveness floor, not a speed target: it
/// takes ~50 µs here; with the ring's work deferred it took 16 ms).
#[test]
fn input_wakes_an_executor_that_has_gone_to_sleep_at_once() {
    const ROUNDS: usize = 30;
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let client = std::thread::spawn(move || {
        let (addr, tid): (SocketAddr, i32) = addr_rx.recv().unwrap();
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_nodelay(true).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut rtts = Vec::with_capacity(ROUNDS);
        for round in 0..ROUNDS {
            let asleep_by = std::time::Instant::now() + Duration::from_secs(5);
            while thread_state(tid) != b'S' {
                assert!(
                    std::time::Instant::now() < asleep_by,
                    "the executor never slept"
                );
                std::thread::yield_now();
            }
            let sent = std::time::Instant::now();
            c.write_all(&[round as u8]).unwrap();
            let mut back = [0u8; 1];
            c.read_exact(&mut back).unwrap();
            rtts.push(sent.elapsed());
            assert_eq!(back[0], round as u8);
        }
        rtts.sort();
        rtts[ROUNDS / 2]
    });
    on_executor(move || async move {
        let listener = bind_reuseport(loopback(), 16, 0).unwrap();
        // SAFETY: gettid has no arguments and cannot fail.
        let tid = unsafe { libc::gettid() };
        addr_tx.send((listener.local_addr().unwrap(), tid)).unwrap();
        let mut s = listener.accept().await.unwrap().register().unwrap();
        for _ in 0..ROUNDS {
            let mut buf = [0u8; 1];
            assert_eq!(s.read(&mut buf).await.unwrap(), 1);
            s.write_all(&buf).await.unwrap();
        }
    });
    let median = client.join().unwrap();
    assert!(
        median < Duration::from_millis(2),
        "a sleeping executor took {median:?} (median) to answer input"
    );
}
