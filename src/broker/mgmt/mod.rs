//! The management thread: one more glommio executor (pinned to `management.core`, one more
//! mesh member) that serves the EMQ X v3 REST API and the per-core views over HTTP.
//!
//! Owns: the HTTP listener and its connections, the admin state ([`admin`]: credentials,
//! auth tables, bans, plugins, configs, persisted in `[node] data_dir`), the alarm
//! monitors ([`alarms`]), the node-level stat
//! high-water marks, and the [`Collector`](shardmq_http::Collector) that answers API calls by
//! asking the shards ([`collector`]). It never touches a shard's memory: every question is a
//! `Collect` message with a deadline, so a stuck shard gives a partial answer, not a hung
//! request.
//! Must never: block, or run on the message path (shards never wait for it).

pub mod admin;
pub mod alarms;
pub mod collector;
pub mod monitors;
pub mod rules;
pub mod state;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardmq_http::api::{system_clock, Api};
use shardmq_http::throttle::{AuthThrottle, ThrottleConfig};
use shardmq_http::{serve_connection, ConnEnd, Limits, ServerConfig};
use shardmq_shards::mesh::MeshMember;
use shardmq_shards::reply::Replies;
use shardmq_shards::rt::{self, spawn_local};
use shardmq_shards::runtime::ShutdownFlag;

use super::msg::ShardMsg;
use super::warned::Warned;
use crate::config::Config;
use crate::metrics::StatsWithMax;
use collector::Broker;

/// How often the node-level stats are sampled for their `*/max` values (EMQ X: 1 s).
const STATS_SAMPLE: Duration = Duration::from_secs(1);
/// Memory the shards freed that is worth giving back to the system (see `shards::memory`).
const TRIM_AFTER: usize = 4 << 20;
/// How often free memory is given back at most.
const TRIM_EVERY: Duration = Duration::from_secs(5);
/// How often the shutdown flag is checked.
const SHUTDOWN_POLL: Duration = Duration::from_millis(250);

/// What the management thread knows about the node it manages.
pub struct NodeFacts {
    pub shards: usize,
    pub shard_cores: Vec<usize>,
    pub mqtt_addr: SocketAddr,
    /// Every MQTT listener that is on: its kind, bound address and connection cap.
    pub listeners: Vec<(
        crate::broker::stream::ListenerKind,
        SocketAddr,
        Arc<crate::broker::slots::ConnSlots>,
    )>,
    /// The hand-overs the shards started: a question about clients waits for those started
    /// before it was asked (`handover`).
    pub handovers: Arc<crate::broker::handover::Handovers>,
}

/// Runs the management executor until shutdown. Reports its bound address (or the error)
/// through `ready` once listening.
pub async fn run(
    member: MeshMember<ShardMsg>,
    cfg: Arc<Config>,
    facts: NodeFacts,
    shutdown: ShutdownFlag,
    ready: mpsc::Sender<Result<SocketAddr, String>>,
) {
    let mesh = match member.join().await {
        Ok(mesh) => mesh,
        Err(e) => {
            let _ = ready.send(Err(format!("management: socket reactor: {e}")));
            return;
        }
    };
    let replies: Rc<Replies<super::msg::ReplyData>> = Rc::new(Replies::default());
    let inbox = replies.clone();
    mesh.spawn_drains(move |_, msg| {
        if let ShardMsg::Reply { req, reply } = msg {
            inbox.deliver(req, *reply);
        }
    });
    let listener = match shardmq_shards::listen::bind_exclusive(cfg.management.bind, 1024) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(format!(
                "management: binding {}: {e}",
                cfg.management.bind
            )));
            return;
        }
    };
    let http_addr = listener.local_addr().unwrap_or(cfg.management.bind);
    // The durable admin state: read once here (blocking, before serving anything).
    let admin = match state::Admin::load(cfg.clone()) {
        Ok(a) => a,
        Err(e) => {
            let _ = ready.send(Err(format!(
                "management: loading the admin state from {:?}: {e}",
                cfg.node.data_dir
            )));
            return;
        }
    };
    let credentials = admin.credentials.clone();
    let broker = Broker {
        cfg: cfg.clone(),
        node: cfg.node.name.clone(),
        facts,
        http_addr,
        mesh,
        replies,
        started: Instant::now(),
        stats: RefCell::new(StatsWithMax::default()),
        http_conns: Cell::new(0),
        http_shutdowns: RefCell::new(BTreeMap::new()),
        admin,
        rule_speeds: Default::default(),
    };
    let api = Rc::new(Api {
        collector: broker,
        node: cfg.node.name.clone(),
        credentials,
        clock: system_clock,
        throttle: RefCell::new(AuthThrottle::new(ThrottleConfig::from_secs(
            cfg.management.auth_fail_limit,
            cfg.management.auth_fail_window,
            cfg.management.auth_fail_backoff,
        ))),
    });
    // Every shard enforces the loaded policy before the broker reports ready.
    let cov = api.collector.push_policy().await;
    if !cov.is_complete() {
        tracing::warn!(
            "management: only {}/{} shards took the admin policy",
            cov.responded,
            cov.total
        );
    }
    let _ = ready.send(Ok(http_addr));
    let server_cfg = ServerConfig {
        limits: Limits {
            max_header_bytes: cfg.management.max_header_bytes,
            max_body_bytes: cfg.management.max_body_bytes,
            ..Limits::default()
        },
        request_timeout: Duration::from_secs(cfg.management.request_timeout),
        idle_timeout: Duration::from_secs(cfg.management.idle_timeout),
        ..ServerConfig::default()
    };
    let accept_api = api.clone();
    let max_conns = cfg.management.max_connections;
    let accept = spawn_local(async move {
        let mut warned = Warned::default();
        let mut over_cap = Warned::default();
        loop {
            let mut stream = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    warned.warn(|more| {
                        tracing::warn!(
                            "management: accept failed: {e} ({more} more since the last warning)"
                        )
                    });
                    rt::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let broker = &accept_api.collector;
            if broker.http_conns.get() >= max_conns {
                // Over the cap: closed unread (dropping the stream), counted per listener.
                *broker
                    .http_shutdowns
                    .borrow_mut()
                    .entry("max_connections".to_string())
                    .or_default() += 1;
                over_cap.warn(|more| {
                    tracing::warn!(
                        "management: refusing connections: management.max_connections ({max_conns}) reached ({more} more since the last warning)"
                    )
                });
                continue;
            }
            // Counted here, not in the task: a burst of accepts must see every one before it.
            broker.http_conns.set(broker.http_conns.get() + 1);
            let api = accept_api.clone();
            spawn_local(async move {
                let broker = &api.collector;
                let peer = stream.peer_addr().ok().map(|a| a.ip());
                let end = serve_connection(&mut stream, peer, &*api, &server_cfg, rt::sleep).await;
                broker.http_conns.set(broker.http_conns.get() - 1);
                let reason = match end {
                    Ok(ConnEnd::PeerClosed | ConnEnd::Done) => None,
                    Ok(ConnEnd::IdleTimeout) => Some("idle_timeout"),
                    Ok(ConnEnd::Rejected(_)) => Some("bad_request"),
                    Err(_) => Some("closed"),
                };
                if let Some(r) = reason {
                    *broker
                        .http_shutdowns
                        .borrow_mut()
                        .entry(r.to_string())
                        .or_default() += 1;
                }
            })
            .detach();
        }
    });
    let alarm_interval = Duration::from_millis(cfg.alarms.check_interval_ms);
    let alarm_api = api.clone();
    let alarm_stop = shutdown.clone();
    let monitors = spawn_local(async move {
        while !alarm_stop.is_set() {
            alarm_api.collector.check_alarms().await;
            rt::sleep(alarm_interval).await;
        }
    });
    let mut last_sample = Instant::now();
    let mut last_speeds = Instant::now();
    let mut last_trim = Instant::now();
    let reload = state::reload_flag();
    while !shutdown.is_set() {
        rt::sleep(SHUTDOWN_POLL).await;
        if reload.swap(false, std::sync::atomic::Ordering::AcqRel) {
            api.collector.reload_acl().await;
        }
        if last_sample.elapsed() >= STATS_SAMPLE && !shutdown.is_set() {
            last_sample = Instant::now();
            api.collector.sample_stats().await;
        }
        if last_speeds.elapsed() >= rules::SPEED_TICK && !shutdown.is_set() {
            last_speeds = Instant::now();
            api.collector.sample_rule_speeds().await;
        }
        // Free pages go back to the system here, not on a shard: the trim walks every arena
        // (0.5-5 ms after a burst).
        if last_trim.elapsed() >= TRIM_EVERY {
            let started = Instant::now();
            if let Some((freed, trimmed)) = shardmq_shards::memory::return_if_freed(TRIM_AFTER) {
                last_trim = Instant::now();
                tracing::debug!(
                    freed,
                    trimmed,
                    took_us = started.elapsed().as_micros() as u64,
                    "gave free memory back to the system"
                );
            }
        }
    }
    drop(monitors);
    drop(accept);
}
