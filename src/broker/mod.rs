//! The broker: the pure MQTT core running on the per-core runtime of `shardmq-shards`.
//!
//! Owns: start-up and shutdown of the shard executors ([`start`]), and the glue modules:
//! [`shard`] (one core's state and logic), [`enforce`] (the admin policy on a shard),
//! [`conn`] (sockets), [`link`] (a connection's
//! outbound side), [`route`] (routing tables), [`msg`] (the cross-shard protocol) and
//! [`sys`] (`$SYS` topics).
//! Must never: share mutable state between shards except through the mesh, or the two
//! node-wide tables touched once per connection at most and never per packet: the
//! connection cap ([`slots`]) and the failed-authentication table ([`auth_throttle`]).

pub mod ask;
pub mod auth_throttle;
pub mod budget;
pub mod bufpool;
pub mod clients;
pub mod conn;
pub mod directory;
pub mod enforce;
pub mod flow;
pub mod handover;
pub mod hooks;
pub mod journal;
pub mod link;
pub mod mgmt;
pub mod msg;
pub mod persist;
pub mod publish;
pub mod race;
pub mod recent;
pub mod retained_overlap;
pub mod route;
pub mod rule_state;
pub mod shard;
pub mod slots;
pub mod stream;
pub mod subscribe;
pub mod sys;
pub mod views;
pub mod warned;
pub mod webhook;

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::{Config, TcpListenerConfig};
use shardmq_shards::mesh::full_mesh;
use shardmq_shards::rt::{self, spawn_local};
use shardmq_shards::runtime::{spawn_pinned, Scheduling, ShutdownFlag};
use shardmq_shards::sockio::Listener;

use msg::ShardMsg;
use shard::Shard;
use stream::ListenerKind;

/// How often each shard runs its housekeeping (keepalive, expiry, shutdown check).
const TICK: Duration = Duration::from_millis(250);

/// A running broker.
pub struct Broker {
    /// The MQTT TCP listener's address (with the real port when 0 was asked).
    pub mqtt_addr: SocketAddr,
    /// The management (REST API) listener's address.
    pub http_addr: SocketAddr,
    shutdown: ShutdownFlag,
    threads: Vec<JoinHandle<()>>,
    /// The `data_dir` lock, released when the broker is dropped (after its threads ended).
    _data_lock: std::fs::File,
}

impl Broker {
    /// Asks every shard to stop and waits until they have.
    pub fn stop(self) {
        self.shutdown.trigger();
        self.join();
    }

    /// Waits until every shard has stopped.
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// [`start_with`], the management executor sharing the last shard's core.
pub fn start(cfg: Config, cores: &[usize]) -> io::Result<Broker> {
    let management_core = cores.last().copied().unwrap_or(0);
    start_with(cfg, cores, management_core)
}

/// Starts one shard per entry of `cores`, each pinned to that core and listening on the
/// MQTT address with `SO_REUSEPORT`, plus the management executor on `management_core`
/// serving the REST API. Returns once everything listens (or one part failed).
pub fn start_with(cfg: Config, cores: &[usize], management_core: usize) -> io::Result<Broker> {
    start_with_shutdown(cfg, cores, management_core, ShutdownFlag::new())
}

/// [`start_with`] on a shutdown flag the caller made: the binary registers its signal
/// handlers on it before anything listens, so a SIGTERM that comes during start-up stops
/// the broker cleanly instead of killing it.
pub fn start_with_shutdown(
    cfg: Config,
    cores: &[usize],
    management_core: usize,
    shutdown: ShutdownFlag,
) -> io::Result<Broker> {
    let shards = cores.len();
    if shards == 0 || shards > route::MAX_SHARDS {
        return Err(io::Error::other(format!(
            "shard count must be 1..={}, not {shards}",
            route::MAX_SHARDS
        )));
    }
    // One broker per data directory and per port: a second one is refused here, before it
    // touches either.
    let data_lock = crate::admin::store::lock_data_dir(std::path::Path::new(&cfg.node.data_dir))?;
    // Every shard must bind the same port, which nobody else may hold: claim it now (port
    // 0: pick a free one) and hold it until they all have bound it.
    let (mqtt_addr, _port_held) = shardmq_shards::listen::claim_port(cfg.listeners.tcp.bind)
        .map_err(|e| io::Error::new(e.kind(), format!("MQTT listener: {e}")))?;
    // The TLS, WebSocket and secure WebSocket listeners that are on: their ports claimed
    // like the MQTT port, their certificates read now (a bad file stops the start).
    let tls = crate::transport::TlsConfigs::load(&cfg).map_err(io::Error::other)?;
    let mut extra = Vec::new();
    for kind in [ListenerKind::Ssl, ListenerKind::Ws, ListenerKind::Wss] {
        let l = listener_config(&cfg, kind);
        if let Some(bind) = l.addr() {
            let (addr, held) = shardmq_shards::listen::claim_port(bind).map_err(|e| {
                io::Error::new(e.kind(), format!("listeners.{} {bind}: {e}", kind.name()))
            })?;
            extra.push((kind, addr, held));
        }
    }
    let tcp_slots = slots::ConnSlots::new(cfg.listeners.tcp.max_connections);
    let listener_slots: Vec<_> = ListenerKind::ALL
        .iter()
        .map(|k| match k {
            ListenerKind::Tcp => tcp_slots.clone(),
            k => slots::ConnSlots::new(listener_config(&cfg, *k).max_connections),
        })
        .collect();
    let listeners: Vec<(ListenerKind, SocketAddr)> =
        std::iter::once((ListenerKind::Tcp, mqtt_addr))
            .chain(extra.iter().map(|(k, a, _)| (*k, *a)))
            .collect();
    let node_shared = shard::NodeShared {
        listener_slots: listener_slots.clone(),
        tls,
        conn_slots: tcp_slots,
        auth_throttle: auth_throttle::MqttAuthThrottle::new(&cfg),
        durable: std::sync::Arc::new((0..shards).map(|_| Default::default()).collect()),
        routed_at: std::sync::Arc::new((0..shards).map(|_| Default::default()).collect()),
        handovers: std::sync::Arc::new(handover::Handovers::new(shards)),
    };
    // Durable sessions and retained messages from the journals, each for its home shard.
    let recovered = if cfg.persistence.enable {
        journal::recover(&cfg.node.data_dir, shards, |key| {
            crate::home_shard(key, shards)
        })
        .map_err(|e| io::Error::new(e.kind(), format!("journal recovery: {e}")))?
    } else {
        (0..shards).map(|_| Default::default()).collect()
    };
    let listeners_facts: Vec<_> = listeners
        .iter()
        .map(|&(k, a)| (k, a, listener_slots[k as usize].clone()))
        .collect();
    let cfg = std::sync::Arc::new(cfg);
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let (mgmt_tx, mgmt_rx) = mpsc::channel::<Result<SocketAddr, String>>();
    let mut threads = Vec::new();
    let scheduling = match cfg.shards.scheduling {
        crate::config::ShardScheduling::Batch => Scheduling::Batch,
        crate::config::ShardScheduling::Normal => Scheduling::Normal,
    };
    // Members 0..shards are the shards; member `shards` is the management executor.
    let mut members = full_mesh::<ShardMsg>(shards + 1, cfg.shards.channel_capacity)
        .map_err(|e| io::Error::new(e.kind(), format!("creating the cross-shard mesh: {e}")))?;
    let mgmt_member = members.pop().expect("the mesh has shards + 1 members");
    for ((member, core), part) in members.into_iter().zip(cores).zip(recovered) {
        let cfg = cfg.clone();
        let shutdown = shutdown.clone();
        let ready = ready_tx.clone();
        let id = member.id();
        let core = *core;
        let node_shared = node_shared.clone();
        let listeners = listeners.clone();
        threads.push(spawn_pinned(
            &format!("shard-{id}"),
            core,
            scheduling,
            move || async move {
                let nap = Duration::from_micros(cfg.shards.nap_us);
                let spin = Duration::from_micros(cfg.shards.spin_us);
                let joined = member.join().await.and_then(|mesh| {
                    shardmq_shards::sockio::Reactor::current()?.enable_nap(
                        mesh.doorbell(),
                        nap,
                        spin,
                    )?;
                    Ok(mesh)
                });
                let mesh = match joined {
                    Ok(mesh) => mesh,
                    Err(e) => {
                        let _ = ready.send(Err(format!("shard {id}: socket reactor: {e}")));
                        return;
                    }
                };
                let shard = Shard::new(
                    id,
                    core,
                    shards,
                    Rc::new((*cfg).clone()),
                    mesh.clone(),
                    shutdown.clone(),
                    node_shared,
                );
                let handler = shard.clone();
                shard.adopter.set(Some(conn::adopt));
                mesh.spawn_drains(move |from, msg| handler.on_peer_msg(from, msg));
                if cfg.persistence.enable {
                    match journal::Journal::open(&cfg.node.data_dir, id, &cfg.persistence).await {
                        Ok(j) => {
                            let _ = shard.journal.set(j);
                        }
                        Err(e) => {
                            let _ = ready.send(Err(format!("shard {id}: journal: {e}")));
                            return;
                        }
                    }
                    shard.restore(part);
                }
                let mut accepts = Vec::new();
                for &(kind, addr) in &listeners {
                    let listener = match bind_listener(addr, &cfg.listeners.tcp) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready.send(Err(format!("shard {id}: binding {addr}: {e}")));
                            return;
                        }
                    };
                    accepts.push(spawn_local(conn::accept_loop(
                        shard.clone(),
                        listener,
                        kind,
                    )));
                }
                let _ = ready.send(Ok(()));
                if id == 0 {
                    spawn_local(sys::run(shard.clone())).detach();
                }
                while !shutdown.is_set() {
                    rt::sleep(TICK).await;
                    shard.tick();
                }
                drop(accepts);
                // What the journal holds goes to the file before the thread ends.
                if let Some(j) = shard.journal.get() {
                    let end = j.end();
                    let _ = race::or_timeout(j.written(end), Duration::from_secs(5)).await;
                }
                tracing::info!(shard = id, "shard stopped");
            },
        )?);
    }
    drop(ready_tx);
    {
        let cfg = cfg.clone();
        let shutdown = shutdown.clone();
        let facts = mgmt::NodeFacts {
            shards,
            shard_cores: cores.to_vec(),
            mqtt_addr,
            listeners: listeners_facts,
            handovers: node_shared.handovers.clone(),
        };
        threads.push(spawn_pinned(
            "management",
            management_core,
            scheduling,
            move || mgmt::run(mgmt_member, cfg, facts, shutdown, mgmt_tx),
        )?);
    }
    let fail = |e: String| {
        shutdown.trigger();
        io::Error::other(e)
    };
    for _ in 0..shards {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(fail(e)),
            Err(_) => return Err(fail("a shard exited during start-up".into())),
        }
    }
    let http_addr = match mgmt_rx.recv() {
        Ok(Ok(addr)) => addr,
        Ok(Err(e)) => return Err(fail(e)),
        Err(_) => return Err(fail("the management thread exited during start-up".into())),
    };
    Ok(Broker {
        mqtt_addr,
        http_addr,
        shutdown,
        threads,
        _data_lock: data_lock,
    })
}

/// Binds one shard's MQTT listener: the same address on every shard (`SO_REUSEPORT`), the
/// configured backlog and `TCP_DEFER_ACCEPT`.
fn bind_listener(addr: SocketAddr, tcp: &TcpListenerConfig) -> io::Result<Listener> {
    shardmq_shards::listen::bind_reuseport(addr, tcp.backlog, tcp.defer_accept)
}

/// The `[listeners.*]` section of a TLS / WebSocket listener kind (`tcp` has its own type).
fn listener_config(cfg: &Config, kind: ListenerKind) -> &crate::config::ListenerConfig {
    match kind {
        ListenerKind::Ssl => &cfg.listeners.ssl,
        ListenerKind::Wss => &cfg.listeners.wss,
        _ => &cfg.listeners.ws,
    }
}
