//! The mesh under the load that deadlocks naive full meshes (DataDog/glommio#555): every
//! executor sends many messages to every other through tiny channels while draining its own
//! inboxes. All messages must arrive, in order per pair, and nothing may hang.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::mpsc;

use shardmq_shards::mesh::full_mesh;
use shardmq_shards::runtime::spawn_pinned;

#[test]
fn full_mesh_with_tiny_channels_delivers_everything_in_order() {
    const MEMBERS: usize = 3;
    const PER_PEER: u64 = 20_000;
    let cores = shardmq_shards::preflight::available_cores();
    let (done_tx, done_rx) = mpsc::channel();
    let mut threads = Vec::new();
    for member in full_mesh::<(usize, u64)>(MEMBERS, 2) {
        let done_tx = done_tx.clone();
        let core = cores[member.id() % cores.len()];
        threads.push(
            spawn_pinned("mesh-test", core, move || async move {
                let mesh = member.join().await;
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
