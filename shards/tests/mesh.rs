//! The mesh under the load that deadlocks naive full meshes (DataDog/glommio#555): every
//! executor sends many messages to every other through tiny channels while draining its own
//! inboxes. All messages must arrive, in order per pair, and nothing may hang.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::mpsc;

use shardmq_shards::mesh::full_mesh;
use shardmq_shards::runtime::{spawn_pinned, Scheduling};

#[test]
fn full_mesh_with_tiny_channels_delivers_everything_in_order() {
    const MEMBERS: usize = 3;
    const PER_PEER: u64 = 20_000;
    let cores = shardmq_shards::preflight::available_cores();
    let (done_tx, done_rx) = mpsc::channel();
    let mut threads = Vec::new();
    for member in full_mesh::<(usize, u64)>(MEMBERS, 2).unwrap() {
        let done_tx = done_tx.clone();
        let core = cores[member.id() % cores.len()];
        threads.push(
            spawn_pinned("mesh-test", core, Scheduling::Batch, move || async move {
                let mesh = member.join().await.unwrap();
                let me = mesh.id();
                // Expected next sequence number from each peer.
                let next = Rc::new(RefCell::new(vec![0u64; MEMBERS]));
                let finished = Rc::new(RefCell::new(false));
                let (n2, f2) = (next.clone(), finished.clone());
                mesh.spawn_drains(move |from, (sender, seq)| {
                    assert_eq!(from, sender);
                    let mut next = n2.borrow_mut();
                    assert_eq!(next[from], seq, "in order from {from}");
                    next[from] += 1;
                    if next
                        .iter()
                        .enumerate()
                        .all(|(i, n)| i == me || *n == PER_PEER)
                    {
                        *f2.borrow_mut() = true;
                    }
                });
                for seq in 0..PER_PEER {
                    for to in (0..MEMBERS).filter(|&t| t != me) {
                        mesh.send(to, (me, seq));
                    }
                    if mesh.congested() {
                        mesh.wait_uncongested().await;
                    }
                }
                while !*finished.borrow() {
                    glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
                }
                // Stay alive until our outboxes are flushed to the others.
                while mesh.stats().outbox_depth > 0 {
                    glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
                }
                done_tx.send(me).unwrap();
                // Keep the channels open until every member is done.
                glommio::timer::sleep(std::time::Duration::from_millis(200)).await;
            })
            .unwrap(),
        );
    }
    for _ in 0..MEMBERS {
        done_rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("mesh made progress");
    }
    for t in threads {
        t.join().unwrap();
    }
}

/// A message posted before a sender's later action is there for a receiver that learns of
/// that action: member 0 posts a run of numbers to member 1, then sends it an ordinary
/// message; member 1, on that message, takes every posted number, in order.
#[test]
fn posted_messages_are_there_for_whoever_learns_of_a_later_send() {
    const ROUNDS: u64 = 200;
    const PER_ROUND: u64 = 50;
    let cores = shardmq_shards::preflight::available_cores();
    let (done_tx, done_rx) = mpsc::channel();
    let mut threads = Vec::new();
    for member in full_mesh::<u64>(2, 4).unwrap() {
        let done_tx = done_tx.clone();
        let core = cores[member.id() % cores.len()];
        threads.push(
            spawn_pinned("post-test", core, Scheduling::Batch, move || async move {
                let mesh = member.join().await.unwrap();
                if mesh.id() == 0 {
                    for round in 0..ROUNDS {
                        for i in 0..PER_ROUND {
                            mesh.post(1, round * PER_ROUND + i);
                        }
                        // The ordinary message the receiver acts on: the round's end.
                        mesh.send(1, round);
                        // Pace the rounds so that the receiver sees most of them apart.
                        glommio::timer::sleep(std::time::Duration::from_micros(100)).await;
                    }
                    while mesh.stats().outbox_depth > 0 {
                        glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
                    }
                    done_tx.send(None).unwrap();
                } else {
                    let taken = Rc::new(RefCell::new(0u64));
                    let (t2, m2, tx2) = (taken.clone(), mesh.clone(), done_tx.clone());
                    mesh.spawn_drains(move |from, round| {
                        assert_eq!(from, 0);
                        let mut next = t2.borrow_mut();
                        while let Some((from, n)) = m2.take_posted() {
                            assert_eq!((from, n), (0, *next), "in order");
                            *next += 1;
                        }
                        assert!(
                            *next >= (round + 1) * PER_ROUND,
                            "round {round}'s posts were all there before its message"
                        );
                        if round + 1 == ROUNDS {
                            tx2.send(Some(*next)).unwrap();
                        }
                    });
                    while *taken.borrow() < ROUNDS * PER_ROUND {
                        glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
                    }
                }
                glommio::timer::sleep(std::time::Duration::from_millis(200)).await;
            })
            .unwrap(),
        );
    }
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(
            done_rx
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("the mesh made progress"),
        );
    }
    assert!(seen.contains(&Some(ROUNDS * PER_ROUND)), "{seen:?}");
    for t in threads {
        t.join().unwrap();
    }
}
