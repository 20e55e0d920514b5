//! `Broker`: the management thread's [`Collector`] — it answers each API call by sending
//! `Collect` to the shards that hold the answer (all of them for lists, the home shard for a
//! client id), waiting with a deadline, and merging.
//!
//! Runs on the management executor. Must never: wait without a deadline, or assume every
//! shard answered (the `Coverage` says how many did).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardmq_http::api::topics_of;
use shardmq_http::collector::{
    ApiAnswer, ApiCall, Collector, Coverage, LocalBoxFuture, Page, Reply,
};
use shardmq_http::model::{
    ActionFigures, BrokerInfo, ListenerInfo, Memory, NamedValues, NodeInfo, RouteInfo, RuleFigures,
    ShardView, ShutdownCount,
};
use shardmq_http::{ApiError, ErrorCode, Paging};
use shardmq_shards::mesh::Mesh;
use shardmq_shards::reply::Replies;

use super::NodeFacts;
use crate::broker::ask::{answers, question, Rows, ShardQuery};
use crate::broker::msg::{ReplyData, ShardFigures, ShardMsg};
use crate::broker::race::{either, Either};
use crate::broker::sys::{datetime_now, uptime_string, SYSDESCR, VERSION};
use crate::broker::views::{
    CleanSession, ClientFilter, ConnectionRows, Counters, Figures, Kick, Locate, Publish, Routes,
    SessionRows, SubscribeClient, SubscriptionRows, UnsubscribeClient,
};
use crate::codec::{QoS, Str};
use crate::config::{CleanSessionPlacement, Config};
use crate::home_shard;
use crate::metrics::{Metrics, Stats, StatsWithMax};
use crate::session::Message;

/// How long the API waits for shards before answering with what it has.
const COLLECT_DEADLINE: Duration = Duration::from_secs(3);

/// The broker as the REST API sees it.
pub struct Broker {
    pub cfg: Arc<Config>,
    pub node: String,
    pub facts: NodeFacts,
    pub http_addr: SocketAddr,
    pub mesh: Rc<Mesh<ShardMsg>>,
    pub replies: Rc<Replies<ReplyData>>,
    pub started: Instant,
    pub stats: RefCell<StatsWithMax>,
    pub http_conns: Cell<u64>,
    pub http_shutdowns: RefCell<BTreeMap<String, u64>>,
    /// Apps, users, auth tables, bans, plugins, configs and alarms (`admin.rs`).
    pub admin: super::state::Admin,
    /// The rules' match speeds, sampled every 10 s (`rules.rs`).
    pub rule_speeds: RefCell<crate::rules::speed::RuleSpeeds>,
}

impl Collector for Broker {
    fn call(&self, call: ApiCall) -> LocalBoxFuture<'_, Reply> {
        Box::pin(self.answer(call))
    }

    fn plugin_active(&self, name: &str) -> bool {
        self.admin.state.borrow().plugin_active(name)
    }
}

pub(super) fn all_shards(n: usize) -> Vec<usize> {
    (0..n).collect()
}

fn failed(code: ErrorCode, message: &str) -> ApiAnswer {
    ApiAnswer::Failed(ApiError::new(code, message))
}

impl Broker {
    /// Sends `query()` to each shard in `to` and waits (with the deadline) for their
    /// answers: one per shard that answered in time.
    pub(super) async fn ask<Q: ShardQuery>(
        &self,
        to: &[usize],
        query: impl Fn() -> Q,
    ) -> (Vec<Q::Reply>, Coverage) {
        let (req, waiter) = self.replies.register(to.len());
        for &shard in to {
            self.mesh.send(
                shard,
                ShardMsg::Collect {
                    req,
                    question: question(query()),
                    after: self.facts.handovers.mark(shard),
                },
            );
        }
        let (replies, coverage) = self.wait(waiter, to.len()).await;
        (answers::<Q>(replies), coverage)
    }

    /// Waits (with the deadline) for the replies of `total` shards.
    pub(super) async fn wait(
        &self,
        mut waiter: shardmq_shards::reply::AwaitReplies<ReplyData>,
        total: usize,
    ) -> (Vec<ReplyData>, Coverage) {
        let replies = match either(&mut waiter, shardmq_shards::rt::sleep(COLLECT_DEADLINE)).await {
            Either::Left(r) => r,
            Either::Right(()) => waiter.take_partial(),
        };
        let coverage = Coverage {
            responded: replies.len() as u32,
            total: total as u32,
        };
        (replies, coverage)
    }

    /// The shard that serves `client_id`: its home shard, which with
    /// `shards.clean_sessions = "accepting"` says (itself, or the shard that accepted a
    /// connection whose session ends with it).
    async fn home(&self, client_id: &str) -> Vec<usize> {
        let home = home_shard(client_id, self.facts.shards);
        if self.cfg.shards.clean_sessions == CleanSessionPlacement::Home {
            return vec![home];
        }
        let (at, _) = self.ask(&[home], || Locate(client_id.to_owned())).await;
        vec![at.first().copied().unwrap_or(home)]
    }

    async fn answer(&self, call: ApiCall) -> Reply {
        let shards = all_shards(self.facts.shards);
        let complete = Coverage {
            responded: self.facts.shards as u32,
            total: self.facts.shards as u32,
        };
        let (answer, coverage) = match call {
            ApiCall::Broker => (ApiAnswer::Broker(self.broker_info()), complete),
            ApiCall::Node => {
                let (replies, cov) = self.ask(&shards, || Counters).await;
                let connections = replies.iter().map(|(_, stats)| stats.connections).sum();
                (ApiAnswer::Node(self.node_info(connections)), cov)
            }
            ApiCall::ListConnections { paging } => {
                let (replies, cov) = self
                    .ask(&shards, || {
                        ConnectionRows(ClientFilter::All, window_of(paging))
                    })
                    .await;
                let Rows { mut rows, count } = Rows::merge(replies);
                rows.sort_by(|a, b| a.client_id.cmp(&b.client_id));
                (
                    ApiAnswer::Connections(page_window(rows, count, paging)),
                    cov,
                )
            }
            ApiCall::LookupConnection { client_id } => {
                let to = self.home(&client_id).await;
                let (replies, cov) = self
                    .ask(&to, || {
                        ConnectionRows(ClientFilter::ClientId(client_id.clone()), usize::MAX)
                    })
                    .await;
                (
                    ApiAnswer::Connections(Page::all(Rows::merge(replies).rows)),
                    cov,
                )
            }
            ApiCall::LookupConnectionsByUsername { username } => {
                let (replies, cov) = self
                    .ask(&shards, || {
                        ConnectionRows(ClientFilter::Username(username.clone()), usize::MAX)
                    })
                    .await;
                (
                    ApiAnswer::Connections(Page::all(Rows::merge(replies).rows)),
                    cov,
                )
            }
            ApiCall::Kick { client_id } => {
                let to = self.home(&client_id).await;
                let (replies, cov) = self.ask(&to, || Kick(client_id.clone())).await;
                (done(replies), cov)
            }
            ApiCall::ListSessions { paging } => {
                let (replies, cov) = self
                    .ask(&shards, || {
                        SessionRows(ClientFilter::All, window_of(paging))
                    })
                    .await;
                let Rows { mut rows, count } = Rows::merge(replies);
                rows.sort_by(|a, b| a.client_id.cmp(&b.client_id));
                (ApiAnswer::Sessions(page_window(rows, count, paging)), cov)
            }
            ApiCall::LookupSession { client_id } => {
                let to = self.home(&client_id).await;
                let (replies, cov) = self
                    .ask(&to, || {
                        SessionRows(ClientFilter::ClientId(client_id.clone()), usize::MAX)
                    })
                    .await;
                (
                    ApiAnswer::Sessions(Page::all(Rows::merge(replies).rows)),
                    cov,
                )
            }
            ApiCall::CleanPersistentSession { client_id } => {
                let to = self.home(&client_id).await;
                let (replies, cov) = self.ask(&to, || CleanSession(client_id.clone())).await;
                (done(replies), cov)
            }
            ApiCall::ListSubscriptions { paging } => {
                let (replies, cov) = self
                    .ask(&shards, || {
                        SubscriptionRows(ClientFilter::All, window_of(paging))
                    })
                    .await;
                let Rows { mut rows, count } = Rows::merge(replies);
                rows.sort_by(|a, b| (&a.client_id, &a.topic).cmp(&(&b.client_id, &b.topic)));
                (
                    ApiAnswer::Subscriptions(page_window(rows, count, paging)),
                    cov,
                )
            }
            ApiCall::ClientSubscriptions { client_id } => {
                let to = self.home(&client_id).await;
                let (replies, cov) = self
                    .ask(&to, || {
                        SubscriptionRows(ClientFilter::ClientId(client_id.clone()), usize::MAX)
                    })
                    .await;
                (
                    ApiAnswer::Subscriptions(Page::all(Rows::merge(replies).rows)),
                    cov,
                )
            }
            ApiCall::ListRoutes { paging } => {
                let rows = self.routes(None).await;
                (ApiAnswer::Routes(page(rows.0, paging)), rows.1)
            }
            ApiCall::LookupRoutes { topic } => {
                let rows = self.routes(Some(&topic)).await;
                (ApiAnswer::Routes(Page::all(rows.0)), rows.1)
            }
            ApiCall::Publish(p) => {
                let topics: Vec<String> = topics_of(&p.topic, &p.topics)
                    .into_iter()
                    .filter(|t| crate::topic::valid_topic_name(t))
                    .collect();
                if topics.is_empty() {
                    return Reply {
                        answer: failed(ErrorCode::BadTopic, "bad_topic"),
                        coverage: complete,
                    };
                }
                let qos = QoS::from_u8(p.qos).unwrap_or(QoS::AtMostOnce);
                let mut cov = complete;
                for topic in topics {
                    let mut msg = Message::new(
                        Str::from(topic.as_str()),
                        p.payload.clone().into_bytes(),
                        qos,
                        p.retain,
                    );
                    msg.publisher = Str::from(p.client_id.as_str());
                    // Published from the topic's owner shard: retained storage needs no hop.
                    let to = vec![home_shard(&topic, self.facts.shards)];
                    let msg = Box::new(msg);
                    let (_, c) = self.ask(&to, || Publish(msg.clone())).await;
                    cov = c;
                }
                (ApiAnswer::Done, cov)
            }
            ApiCall::Subscribe(p) => {
                let topics = topics_of(&p.topic, &p.topics);
                let to = self.home(&p.client_id).await;
                let mut last = failed(ErrorCode::BadTopic, "bad_topic");
                let mut cov = complete;
                let mut any_ok = false;
                for t in topics {
                    let (replies, c) = self
                        .ask(&to, || SubscribeClient {
                            client_id: p.client_id.clone(),
                            filter: t.clone(),
                            qos: p.qos,
                        })
                        .await;
                    cov = c;
                    last = done(replies);
                    if matches!(last, ApiAnswer::Done) {
                        any_ok = true;
                    } else if let ApiAnswer::Failed(e) = &last {
                        if e.code == ErrorCode::ClientNotOnline {
                            break;
                        }
                    }
                }
                (if any_ok { ApiAnswer::Done } else { last }, cov)
            }
            ApiCall::Unsubscribe(p) => {
                let to = self.home(&p.client_id).await;
                let (replies, cov) = self
                    .ask(&to, || UnsubscribeClient {
                        client_id: p.client_id.clone(),
                        filter: p.topic.clone(),
                    })
                    .await;
                (done(replies), cov)
            }
            ApiCall::Metrics => {
                let (totals, cov) = self.totals().await;
                let values = NamedValues::from_pairs(totals.0.entries());
                (ApiAnswer::Values(values), cov)
            }
            ApiCall::Stats => {
                let (totals, cov) = self.totals().await;
                let mut stats = self.stats.borrow_mut();
                stats.observe(totals.1);
                let values = NamedValues(stats.entries());
                (ApiAnswer::Values(values), cov)
            }
            ApiCall::Listeners => {
                // Live counts first: a shard counts a connection's end before it frees the
                // slot, so an end that shows in a count read here is in the figures below.
                let live: Vec<u64> = self.facts.listeners.iter().map(|l| l.2.live()).collect();
                let (figures, cov) = self.figures().await;
                (ApiAnswer::Listeners(self.listeners(&live, &figures)), cov)
            }
            ApiCall::ShardViews => {
                let (figures, cov) = self.figures().await;
                (
                    ApiAnswer::Shards(figures.iter().map(shard_view).collect()),
                    cov,
                )
            }
            admin => self.admin_call(admin).await,
        };
        Reply { answer, coverage }
    }

    /// Node-wide metrics and stats: sums, except the replicated route table (one copy).
    pub(super) async fn totals(&self) -> ((Metrics, Stats), Coverage) {
        let (replies, cov) = self.ask(&all_shards(self.facts.shards), || Counters).await;
        (crate::broker::msg::node_counters(replies), cov)
    }

    /// Samples the node stats for their high-water marks (every second, as EMQ X does).
    pub async fn sample_stats(&self) {
        let ((_, stats), cov) = self.totals().await;
        if cov.is_complete() {
            self.stats.borrow_mut().observe(stats);
        }
    }

    async fn figures(&self) -> (Vec<ShardFigures>, Coverage) {
        let (mut figures, cov) = self.ask(&all_shards(self.facts.shards), || Figures).await;
        figures.sort_by_key(|f| f.shard);
        (figures, cov)
    }

    async fn routes(&self, exact: Option<&str>) -> (Vec<RouteInfo>, Coverage) {
        // Every shard holds the same replica: ask one.
        let (replies, cov) = self.ask(&[0], || Routes).await;
        let mut topics: Vec<String> = replies
            .into_iter()
            .flatten()
            .filter(|t| exact.is_none_or(|e| e == t))
            .collect();
        topics.sort();
        topics.dedup();
        let rows = topics
            .into_iter()
            .map(|topic| RouteInfo {
                node: self.node.clone(),
                topic,
            })
            .collect();
        (
            rows,
            Coverage {
                responded: cov.responded * self.facts.shards as u32,
                total: self.facts.shards as u32,
            },
        )
    }

    fn broker_info(&self) -> BrokerInfo {
        BrokerInfo {
            datetime: datetime_now(),
            node: None,
            node_status: "Running".into(),
            otp_release: otp_release(),
            sysdescr: SYSDESCR.into(),
            uptime: uptime_string(self.started.elapsed().as_secs()),
            version: VERSION.into(),
        }
    }

    fn node_info(&self, connections: u64) -> NodeInfo {
        let (vm_size, rss) = super::monitors::process_memory();
        let load = super::monitors::load_average();
        NodeInfo {
            connections,
            load1: load[0].clone(),
            load15: load[2].clone(),
            load5: load[1].clone(),
            max_fds: super::monitors::nofile_limit(),
            memory_total: Memory::Bytes(vm_size),
            memory_used: Memory::Bytes(rss),
            name: self.node.clone(),
            node: None,
            node_status: "Running".into(),
            otp_release: otp_release(),
            process_available: self.cfg.listeners.tcp.max_connections,
            process_used: connections,
            uptime: uptime_string(self.started.elapsed().as_secs()),
            version: VERSION.into(),
        }
    }

    /// `live` holds each listener's connection count, read before `figures` were asked for.
    fn listeners(&self, live: &[u64], figures: &[ShardFigures]) -> Vec<ListenerInfo> {
        let mut shutdowns = NamedValues::default();
        for f in figures {
            shutdowns.merge_sum(&NamedValues(f.shutdowns.clone()));
        }
        let http_shutdowns = NamedValues(
            self.http_shutdowns
                .borrow()
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        );
        let mut list: Vec<ListenerInfo> = self
            .facts
            .listeners
            .iter()
            .zip(live)
            .map(|((kind, addr, slots), live)| ListenerInfo {
                acceptors: self.facts.shards as u64,
                current_conns: *live,
                listen_on: listen_on(*addr),
                max_conns: slots.max(),
                protocol: kind.protocol().into(),
                // Abnormal ends are counted per node, shown on the TCP listener.
                shutdown_count: ShutdownCount(
                    if *kind == crate::broker::stream::ListenerKind::Tcp {
                        shutdowns.clone()
                    } else {
                        NamedValues::default()
                    },
                ),
            })
            .collect();
        list.push(ListenerInfo {
            acceptors: 1,
            current_conns: self.http_conns.get(),
            listen_on: listen_on(self.http_addr),
            max_conns: self.cfg.management.max_connections,
            protocol: "http:management".into(),
            shutdown_count: ShutdownCount(http_shutdowns),
        });
        list
    }
}

/// A listener's address as EMQ X shows it: the port alone for a wildcard bind ("8080"), else
/// "ip:port".
fn listen_on(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        addr.port().to_string()
    } else {
        addr.to_string()
    }
}

pub(super) fn page<T>(mut rows: Vec<T>, paging: Paging) -> Page<T> {
    let count = rows.len() as u64;
    let start = (paging.offset().min(count)) as usize;
    // `_limit` may be any u64: the sum saturates instead of wrapping below `start`.
    let end = (start as u64).saturating_add(paging.limit).min(count) as usize;
    let rows = rows.drain(start..end).collect();
    Page { rows, count }
}

/// The outcome of an action asked of one shard (none: it did not answer in time).
fn done(replies: Vec<Result<(), ApiError>>) -> ApiAnswer {
    match replies.into_iter().next() {
        Some(Ok(())) => ApiAnswer::Done,
        Some(Err(e)) => ApiAnswer::Failed(e),
        None => failed(ErrorCode::Unknown, "timeout"),
    }
}

/// How many rows each shard must send for `paging`: every row up to the page's end (the
/// page's rows are among the first that many of the merged order).
fn window_of(paging: Paging) -> usize {
    usize::try_from(paging.offset().saturating_add(paging.limit)).unwrap_or(usize::MAX)
}

/// The page of `rows` (the merged first windows of every shard, sorted) that `paging` asks
/// for, out of `count` rows in all.
pub(super) fn page_window<T>(mut rows: Vec<T>, count: u64, paging: Paging) -> Page<T> {
    let start = usize::try_from(paging.offset())
        .unwrap_or(usize::MAX)
        .min(rows.len());
    let end = start
        .saturating_add(usize::try_from(paging.limit).unwrap_or(usize::MAX))
        .min(rows.len());
    let rows = rows.drain(start..end).collect();
    Page { rows, count }
}

fn shard_view(f: &ShardFigures) -> ShardView {
    let mut stats = StatsWithMax::default();
    stats.observe(f.stats);
    ShardView {
        shard: f.shard as u32,
        core: f.core as u32,
        stats: NamedValues(
            stats
                .entries()
                .into_iter()
                .filter(|(k, _)| k.ends_with("/count"))
                .collect(),
        ),
        metrics: NamedValues::from_pairs(
            f.metrics
                .entries()
                .into_iter()
                .chain(f.metrics.beyond_emqx()),
        ),
        event_loop: NamedValues(vec![
            ("loop/busy_permille".to_string(), f.busy_permille),
            ("mesh/sent".to_string(), f.mesh_sent),
            ("mesh/received".to_string(), f.mesh_received),
            ("mesh/depth".to_string(), f.mesh_outbox_depth),
        ]),
        rules: {
            let mut rules: Vec<RuleFigures> = f
                .rules
                .iter()
                .map(|(id, c)| RuleFigures {
                    rule: id.clone(),
                    matched: c.matched,
                    actions: c
                        .actions
                        .iter()
                        .map(|a| ActionFigures {
                            success: a.success,
                            failed: a.failed,
                        })
                        .collect(),
                })
                .collect();
            rules.sort_by(|a, b| a.rule.cmp(&b.rule));
            rules
        },
    }
}

/// The runtime, honestly named (EMQ X puts the Erlang/OTP release here).
fn otp_release() -> String {
    format!("glommio 0.9/rustc {}", env!("SHARDMQ_RUSTC_VERSION"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_bind_is_shown_as_its_port_alone() {
        assert_eq!(listen_on("0.0.0.0:1883".parse().unwrap()), "1883");
        assert_eq!(listen_on("[::]:8080".parse().unwrap()), "8080");
        assert_eq!(
            listen_on("127.0.0.1:11883".parse().unwrap()),
            "127.0.0.1:11883"
        );
    }

    #[test]
    fn a_page_of_any_size_past_any_offset_never_panics() {
        let rows: Vec<u32> = (0..25).collect();
        let p = |page, limit| page_of(rows.clone(), Paging { page, limit });
        assert_eq!(p(1, 10), (10, 25));
        assert_eq!(p(3, 10), (5, 25));
        assert_eq!(p(4, 10), (0, 25));
        assert_eq!(p(2, u64::MAX), (0, 25), "offset saturates past the end");
        assert_eq!(p(1, u64::MAX), (25, 25), "the end saturates, never wraps");
        assert_eq!(p(u64::MAX, u64::MAX), (0, 25));
    }

    fn page_of(rows: Vec<u32>, paging: Paging) -> (usize, u64) {
        let page = page(rows, paging);
        (page.rows.len(), page.count)
    }

    #[test]
    fn pages_from_every_shards_first_window_equal_pages_of_the_whole_list() {
        // Three shards' rows (each shard's in any order); the whole list is 0..60.
        let shards: Vec<Vec<u32>> = (0..3)
            .map(|s| (0..60).filter(|i| i % 3 == s).rev().collect())
            .collect();
        for (n, limit) in [(1, 10), (2, 7), (6, 10), (7, 10), (1, 100), (3, u64::MAX)] {
            let paging = Paging { page: n, limit };
            let window = window_of(paging);
            let mut rows: Vec<u32> = shards
                .iter()
                .flat_map(|r| crate::broker::views::first_in_order(r.clone(), window))
                .collect();
            rows.sort();
            let got = page_window(rows, 60, paging);
            let want = page((0..60).collect::<Vec<u32>>(), paging);
            assert_eq!(
                (got.rows, got.count),
                (want.rows, want.count),
                "{n}/{limit}"
            );
        }
    }
}
