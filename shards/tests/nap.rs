//! An executor napping in its socket set (`Reactor::enable_nap`) is woken at once by what it
//! serves: a socket's input, and a peer's message through its doorbell. Each test naps for
//! seconds, so an event that failed to end the nap would show as a round trip of seconds.
//! One that polls before napping finds a busy client's next packet while polling, and stops
//! polling when the client goes quiet.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use shardmq_shards::doorbell::Doorbell;
use shardmq_shards::listen::bind_reuseport;
use shardmq_shards::mesh::full_mesh;
use shardmq_shards::runtime::{spawn_pinned, Scheduling};
use shardmq_shards::sockio::{Reactor, Socket};

mod common;
use common::read_exact;

/// Longer than any round trip may take: a nap this long that nothing ended fails the test.
const LONG_NAP: Duration = Duration::from_secs(2);
const ROUNDS: usize = 20;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Serves one connection from an executor of its own that naps up to [`LONG_NAP`] and polls
/// up to `spin`: every byte read is answered with `answer(reactor, byte)`. Returns the
/// connected client and the server thread, which ends with the reactor's nap counts once
/// the client closes.
fn one_byte_server(
    bell: Arc<Doorbell>,
    spin: Duration,
    answer: impl Fn(&Reactor, u8) -> u8 + Send + 'static,
) -> (TcpStream, std::thread::JoinHandle<(u64, u64, u64)>) {
    let (addr_tx, addr_rx) = mpsc::channel::<SocketAddr>();
    let server = std::thread::spawn(move || {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .spawn(move || async move {
                let reactor = Reactor::current().unwrap();
                reactor.enable_nap(bell, LONG_NAP, spin).unwrap();
                let listener = bind_reuseport("127.0.0.1:0".parse().unwrap(), 16, 0).unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let mut s = listener.accept().await.unwrap().register().unwrap();
                let mut b = [0u8; 1];
                while s.read(&mut b).await.unwrap() > 0 {
                    s.write_all(&[answer(&reactor, b[0])]).await.unwrap();
                }
                reactor.naps()
            })
            .unwrap()
            .join()
            .unwrap()
    });
    let c = TcpStream::connect(addr_rx.recv().unwrap()).unwrap();
    c.set_nodelay(true).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (c, server)
}

/// A client pings an echo served by a napping executor, one byte at a time: each ping
/// arrives while the executor naps (it has nothing else to do) and must end the nap.
#[test]
fn socket_input_ends_a_nap_at_once() {
    let bell = Doorbell::new().unwrap();
    let napping = bell.clone();
    let (mut c, server) = one_byte_server(bell, Duration::ZERO, |_, b| b);
    let mut took = Vec::new();
    for i in 0..ROUNDS * 2 {
        // Ping once the executor naps: it has nothing else to do after its last answer, but
        // after a nap that something else ended it may have parked instead (then the ping
        // is not measured).
        let deadline = Instant::now() + Duration::from_millis(100);
        while !napping.asleep() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(200));
        }
        let during_nap = napping.asleep();
        let t = Instant::now();
        c.write_all(&[i as u8]).unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
        if during_nap {
            took.push(t.elapsed());
        }
        assert_eq!(b[0], i as u8);
    }
    assert!(
        took.len() >= ROUNDS / 2,
        "only {} of {} pings found the executor napping",
        took.len(),
        ROUNDS * 2
    );
    drop(c);
    let (naps, woken, _) = server.join().unwrap();
    let m = median(took);
    assert!(
        m < Duration::from_millis(50),
        "median round trip {m:?} against a {LONG_NAP:?} nap"
    );
    assert!(
        woken > 0 && naps >= woken,
        "input ended {woken} of {naps} naps"
    );
}

/// Member 1 of a two-member mesh naps between the pings member 0 sends through its
/// socket; while it naps, member 0 sends it a mesh message, which must ring its doorbell
/// and be answered at once.
#[test]
fn a_peer_message_rings_a_napping_executor_awake() {
    let cores = shardmq_shards::preflight::available_cores();
    let (addr_tx, addr_rx) = mpsc::channel::<SocketAddr>();
    let (bell_tx, bell_rx) = mpsc::channel::<Arc<Doorbell>>();
    let (done_tx, done_rx) = mpsc::channel::<Vec<Duration>>();
    let mut members = full_mesh::<u64>(2, 16).unwrap().into_iter();
    let (m0, m1) = (members.next().unwrap(), members.next().unwrap());

    let napper = spawn_pinned(
        "nap-1",
        cores[1 % cores.len()],
        Scheduling::Normal,
        move || async move {
            let mesh = m1.join().await.unwrap();
            Reactor::current()
                .unwrap()
                .enable_nap(mesh.doorbell(), LONG_NAP, Duration::ZERO)
                .unwrap();
            bell_tx.send(mesh.doorbell()).unwrap();
            let echo = mesh.clone();
            mesh.spawn_drains(move |from, n| echo.send(from, n));
            let listener = bind_reuseport("127.0.0.1:0".parse().unwrap(), 16, 0).unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let mut s = listener.accept().await.unwrap().register().unwrap();
            let mut b = [0u8; 1];
            while s.read(&mut b).await.unwrap() > 0 {
                s.write_all(&b).await.unwrap();
            }
        },
    )
    .unwrap();

    let sender = spawn_pinned("nap-0", cores[0], Scheduling::Normal, move || async move {
        let mesh = m0.join().await.unwrap();
        let (echo_tx, echo_rx) = glommio::channels::local_channel::new_unbounded();
        mesh.spawn_drains(move |_, n| {
            let _ = echo_tx.try_send(n);
        });
        let bell = loop {
            match bell_rx.try_recv() {
                Ok(b) => break b,
                Err(_) => glommio::timer::sleep(Duration::from_millis(1)).await,
            }
        };
        let addr = loop {
            match addr_rx.try_recv() {
                Ok(a) => break a,
                Err(_) => glommio::timer::sleep(Duration::from_millis(1)).await,
            }
        };
        let c = TcpStream::connect(addr).unwrap();
        c.set_nodelay(true).unwrap();
        let mut s = Socket::register(std::os::fd::OwnedFd::from(c)).unwrap();
        let mut took = Vec::new();
        for i in 0..ROUNDS as u64 {
            // Socket traffic for member 1, after which it has nothing to do and naps.
            s.write_all(&[i as u8]).await.unwrap();
            let mut b = [0u8; 1];
            read_exact(&mut s, &mut b).await;
            let deadline = Instant::now() + Duration::from_secs(5);
            while !bell.asleep() {
                assert!(Instant::now() < deadline, "member 1 never napped");
                glommio::timer::sleep(Duration::from_micros(200)).await;
            }
            let t = Instant::now();
            mesh.send(1, i);
            assert_eq!(echo_rx.recv().await, Some(i));
            took.push(t.elapsed());
        }
        assert!(
            bell.rings() >= ROUNDS as u64,
            "every message found member 1 napping"
        );
        done_tx.send(took).unwrap();
    })
    .unwrap();

    let took = done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the rounds finished");
    sender.join().unwrap();
    napper.join().unwrap();
    let m = median(took);
    assert!(
        m < Duration::from_millis(50),
        "median mesh round trip {m:?} against a {LONG_NAP:?} nap"
    );
}

/// A client pings back to back an echo served by an executor that polls before it naps:
/// the polls find its pings (the echo tells the client once one did), and once the client
/// goes quiet the executor stops polling and sleeps.
#[test]
fn polling_finds_a_busy_clients_input_and_stops_when_it_goes_quiet() {
    let bell = Doorbell::new().unwrap();
    let sleeper = bell.clone();
    // 1: a poll has found input so far.
    let (mut c, server) = one_byte_server(bell, Duration::from_millis(1), |reactor, _| {
        u8::from(reactor.naps().2 > 0)
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut pings = 0;
    loop {
        c.write_all(&[0]).unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
        pings += 1;
        if b[0] == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no poll found any of {pings} back-to-back pings"
        );
    }
    // Quiet now: the executor must stop polling and sleep (nap, then park).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sleeper.asleep() {
        assert!(
            Instant::now() < deadline,
            "the executor kept polling after its client went quiet"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(c);
    server.join().unwrap();
}
