//! The REST handlers: request → route → throttle → auth → node check → [`ApiCall`]s →
//! [`Response`].
//!
//! Owns: what each route of api-v3.md answers and in which shape (lists per node, arrays for
//! lookups, pages with `meta`), parameter validation (codes 107/108/109/115), the
//! `X-ShardMQ-Shards: responded/total` header, and the failed-login throttle of the API
//! ([`crate::throttle`]: wrong Basic credentials and failed `POST /auth` logins count; an
//! address in back-off gets 429 on every route that checks credentials). Pure over the
//! [`Collector`] seam, so it is tested with a fake broker (the throttle reads the monotonic
//! clock). Runs on the management thread.
//! Must never: panic on any request, answer 5xx for bad input, or talk to shards itself.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use serde_json::Value;

use crate::auth::CredentialStore;
use crate::collector::{ApiAnswer, ApiCall, Collector, LocalBoxFuture, Reply};
use crate::index::API_INDEX;
use crate::model::{
    NodeListeners, NodeMetrics, NodeStats, PublishParams, SubscribeParams, UnsubscribeParams,
};
use crate::parse::Request;
use crate::render::{render_node, render_shards, PROMETHEUS_CONTENT_TYPE};
use crate::response::{ApiError, ErrorCode, Paging, Response};
use crate::route::{route, Route};
use crate::server::Handler;
use crate::throttle::{AuthThrottle, Failure};

/// The REST API of one node.
pub struct Api<C: Collector> {
    /// The broker.
    pub collector: C,
    /// This node's name (`shardmq@host`); any other `:node` is 404.
    pub node: String,
    /// Apps and dashboard users for Basic auth, shared with the broker, which changes them
    /// (the `/apps` and `/users` routes) and persists them.
    pub credentials: Rc<RefCell<CredentialStore>>,
    /// Unix seconds now (for app expiry); a function so tests can fix it.
    pub clock: fn() -> u64,
    /// Failed logins per client address (`management.auth_fail_*`).
    pub throttle: RefCell<AuthThrottle>,
}

/// Unix seconds from the system clock.
pub fn system_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl<C: Collector> Handler for Api<C> {
    fn handle<'a>(&'a self, req: &'a Request) -> LocalBoxFuture<'a, Response> {
        Box::pin(self.dispatch(req))
    }
}

pub(crate) fn failed(err: ApiError) -> Response {
    Response::error(&err)
}

fn param_error(code: ErrorCode, what: &str) -> Response {
    failed(ApiError::new(code, what))
}

impl<C: Collector> Api<C> {
    async fn call(&self, call: ApiCall) -> Reply {
        self.collector.call(call).await
    }

    /// Answers one request.
    pub async fn dispatch(&self, req: &Request) -> Response {
        // A path that is not UTF-8 once percent-decoded names nothing: the request is bad.
        if req
            .path
            .split('/')
            .any(|seg| crate::parse::percent_decode(seg, false).is_none())
        {
            return Response::bad_request("the path is not UTF-8 once percent-decoded");
        }
        let Ok(route) = route(&req.method, &req.path) else {
            return Response::not_found();
        };
        // Every route that checks credentials (Basic auth, or the login of `POST /auth`) is
        // refused while the client's address is in back-off, the right credentials included.
        if route.needs_auth() || matches!(route, Route::AuthUser) {
            if let Some(refused) = self.throttled(req) {
                return refused;
            }
        }
        if route.needs_auth() {
            let header = req.header("authorization");
            let who = self.credentials.borrow().authorize(header, (self.clock)());
            if who.is_none() {
                // No credentials at all is a question (a browser asks first), not a guess.
                if header.is_some() {
                    self.login_failed(req);
                }
                return Response::unauthorized();
            }
            self.login_succeeded(req);
        }
        if let Some(node) = route.node() {
            if node != self.node {
                return Response::not_found();
            }
        }
        // The routes of an unloaded plugin do not exist (EMQ X 3.x).
        if let Some(plugin) = route.plugin() {
            if !self.collector.plugin_active(plugin) {
                return Response::not_found();
            }
        }
        let paging = if route.is_paginated() {
            match Paging::from_request(req) {
                Ok(p) => Some(p),
                Err(e) => return failed(e),
            }
        } else {
            None
        };
        let paging = paging.unwrap_or(Paging {
            page: 1,
            limit: 10_000,
        });
        let node = self.node.clone();
        let (response, coverage) = match route {
            Route::Status => {
                let text = format!("Node {node} is started\nshardmq is running");
                return Response::text("text/plain; charset=utf-8", text);
            }
            Route::ApiIndex => return Response::data(API_INDEX),
            Route::ListBrokers | Route::GetBroker { .. } => {
                let reply = self.call(ApiCall::Broker).await;
                let resp = match reply.answer {
                    ApiAnswer::Broker(mut b) if matches!(route, Route::ListBrokers) => {
                        b.node = Some(node.clone());
                        Response::data(&[b])
                    }
                    ApiAnswer::Broker(b) => Response::data(&b),
                    other => unexpected(other),
                };
                (resp, reply.coverage)
            }
            Route::ListNodes | Route::GetNode { .. } => {
                let reply = self.call(ApiCall::Node).await;
                let resp = match reply.answer {
                    ApiAnswer::Node(n) if matches!(route, Route::ListNodes) => {
                        Response::data(&[n.for_list()])
                    }
                    ApiAnswer::Node(n) => Response::data(&n),
                    other => unexpected(other),
                };
                (resp, reply.coverage)
            }
            Route::ListConnections | Route::ListNodeConnections { .. } => {
                self.paged(ApiCall::ListConnections { paging }, paging)
                    .await
            }
            Route::LookupConnections { clientid }
            | Route::LookupNodeConnections { clientid, .. } => {
                self.rows(ApiCall::LookupConnection {
                    client_id: clientid,
                })
                .await
            }
            Route::LookupConnectionViaUsername { username }
            | Route::LookupNodeConnectionViaUsername { username, .. } => {
                self.rows(ApiCall::LookupConnectionsByUsername { username })
                    .await
            }
            Route::KickoutConnection { clientid } => {
                self.done(ApiCall::Kick {
                    client_id: clientid,
                })
                .await
            }
            Route::ListSessions | Route::ListNodeSessions { .. } => {
                self.paged(ApiCall::ListSessions { paging }, paging).await
            }
            Route::LookupSession { clientid } | Route::LookupNodeSession { clientid, .. } => {
                self.rows(ApiCall::LookupSession {
                    client_id: clientid,
                })
                .await
            }
            Route::CleanPersistentSession { clientid }
            | Route::CleanNodePersistentSession { clientid, .. } => {
                self.done(ApiCall::CleanPersistentSession {
                    client_id: clientid,
                })
                .await
            }
            Route::ListSubscriptions | Route::ListNodeSubscriptions { .. } => {
                self.paged(ApiCall::ListSubscriptions { paging }, paging)
                    .await
            }
            Route::LookupClientSubscriptions { clientid }
            | Route::LookupClientSubscriptionsWithNode { clientid, .. } => {
                self.rows(ApiCall::ClientSubscriptions {
                    client_id: clientid,
                })
                .await
            }
            Route::ListRoutes => self.paged(ApiCall::ListRoutes { paging }, paging).await,
            Route::LookupRoutes { topic } => self.rows(ApiCall::LookupRoutes { topic }).await,
            Route::MqttPublish => match body_json(req).and_then(publish_params) {
                Ok(p) => self.done(ApiCall::Publish(p)).await,
                Err(resp) => return resp,
            },
            Route::MqttSubscribe => match body_json(req).and_then(subscribe_params) {
                Ok(p) => self.done(ApiCall::Subscribe(p)).await,
                Err(resp) => return resp,
            },
            Route::MqttUnsubscribe => match body_json(req).and_then(unsubscribe_params) {
                Ok(p) => self.done(ApiCall::Unsubscribe(p)).await,
                Err(resp) => return resp,
            },
            Route::ListAllMetrics | Route::ListNodeMetrics { .. } => {
                let reply = self.call(ApiCall::Metrics).await;
                let resp = match reply.answer {
                    ApiAnswer::Values(v) if matches!(route, Route::ListAllMetrics) => {
                        Response::data(&[NodeMetrics {
                            node: node.clone(),
                            metrics: v,
                        }])
                    }
                    ApiAnswer::Values(v) => Response::data(&v),
                    other => unexpected(other),
                };
                (resp, reply.coverage)
            }
            Route::ListStats | Route::LookupNodeStats { .. } => {
                let reply = self.call(ApiCall::Stats).await;
                let resp = match reply.answer {
                    ApiAnswer::Values(v) if matches!(route, Route::ListStats) => {
                        Response::data(&[NodeStats {
                            node: node.clone(),
                            stats: v,
                        }])
                    }
                    ApiAnswer::Values(v) => Response::data(&v),
                    other => unexpected(other),
                };
                (resp, reply.coverage)
            }
            Route::ListListeners | Route::ListNodeListeners { .. } => {
                let reply = self.call(ApiCall::Listeners).await;
                let resp = match reply.answer {
                    ApiAnswer::Listeners(l) if matches!(route, Route::ListListeners) => {
                        Response::data(&[NodeListeners {
                            listeners: l,
                            node: node.clone(),
                        }])
                    }
                    ApiAnswer::Listeners(l) => Response::data(&l),
                    other => unexpected(other),
                };
                (resp, reply.coverage)
            }
            Route::ShardStats | Route::ShardMetrics => {
                let reply = self.call(ApiCall::ShardViews).await;
                let resp = match reply.answer {
                    ApiAnswer::Shards(views) if matches!(route, Route::ShardStats) => {
                        Response::text(
                            "application/json",
                            serde_json::to_vec(&views).unwrap_or_default(),
                        )
                    }
                    ApiAnswer::Shards(views) => {
                        let mut text = render_shards(&views);
                        text.push_str(&render_node(&self.node_figures()));
                        Response::text(PROMETHEUS_CONTENT_TYPE, text)
                    }
                    other => unexpected(other),
                };
                (resp, reply.coverage)
            }
            // Administration (and, for now, the rule engine's `not_supported`).
            admin => match self.admin(admin, req, paging).await {
                Ok(answered) => answered,
                Err(resp) => return resp,
            },
        };
        response.with_header(
            "X-ShardMQ-Shards",
            format!("{}/{}", coverage.responded, coverage.total),
        )
    }

    /// 429 while the request's address is in back-off.
    fn throttled(&self, req: &Request) -> Option<Response> {
        let left = self
            .throttle
            .borrow_mut()
            .check(req.peer?, Instant::now())?;
        Some(Response::too_many_requests(left))
    }

    /// Wrong credentials: counted against the request's address; logs a warning (paced)
    /// when that starts its back-off.
    pub(crate) fn login_failed(&self, req: &Request) {
        let Some(ip) = req.peer else {
            return;
        };
        let mut throttle = self.throttle.borrow_mut();
        if let Failure::Throttled { warn: Some(others) } = throttle.failure(ip, Instant::now()) {
            let cfg = throttle.config();
            let more = match others {
                0 => String::new(),
                n => format!(" ({n} more addresses throttled since the last warning)"),
            };
            tracing::warn!(
                address = %ip,
                "management API: {ip} made {} failed logins within {} s: its requests are refused (429) for {} s{more}",
                cfg.limit,
                cfg.window.as_secs(),
                cfg.backoff.as_secs(),
            );
        }
    }

    /// Right credentials: the address's failures are forgotten (not a back-off in force).
    pub(crate) fn login_succeeded(&self, req: &Request) {
        if let Some(ip) = req.peer {
            self.throttle.borrow_mut().success(ip, Instant::now());
        }
    }

    /// The management thread's own figures for `GET /metrics` (node-wide, no shard).
    fn node_figures(&self) -> Vec<(&'static str, u64)> {
        let counts = self.throttle.borrow().counts();
        vec![
            ("http/refused/auth_failed", counts.failures),
            ("http/refused/auth_throttled", counts.refused),
            ("http/auth/throttled_addresses", counts.throttled),
        ]
    }

    async fn paged(&self, call: ApiCall, paging: Paging) -> (Response, crate::Coverage) {
        let reply = self.call(call).await;
        let resp = match reply.answer {
            ApiAnswer::Connections(p) => Response::page(&p.rows, paging, p.count),
            ApiAnswer::Sessions(p) => Response::page(&p.rows, paging, p.count),
            ApiAnswer::Subscriptions(p) => Response::page(&p.rows, paging, p.count),
            ApiAnswer::Routes(p) => Response::page(&p.rows, paging, p.count),
            other => unexpected(other),
        };
        (resp, reply.coverage)
    }

    async fn rows(&self, call: ApiCall) -> (Response, crate::Coverage) {
        let reply = self.call(call).await;
        let resp = match reply.answer {
            ApiAnswer::Connections(p) => Response::data(&p.rows),
            ApiAnswer::Sessions(p) => Response::data(&p.rows),
            ApiAnswer::Subscriptions(p) => Response::data(&p.rows),
            ApiAnswer::Routes(p) => Response::data(&p.rows),
            other => unexpected(other),
        };
        (resp, reply.coverage)
    }

    async fn done(&self, call: ApiCall) -> (Response, crate::Coverage) {
        let reply = self.call(call).await;
        let resp = match reply.answer {
            ApiAnswer::Done => Response::ok(),
            other => unexpected(other),
        };
        (resp, reply.coverage)
    }
}

/// An answer of the wrong kind (a broker bug) or a failure: never a panic, never a 5xx.
pub(crate) fn unexpected(answer: ApiAnswer) -> Response {
    match answer {
        ApiAnswer::Failed(e) => failed(e),
        _ => param_error(ErrorCode::Unknown, "unexpected answer"),
    }
}

pub(crate) fn body_json(req: &Request) -> Result<serde_json::Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(param_error(
            ErrorCode::BodyNotJson,
            "the body must be a JSON object",
        )),
    }
}

pub(crate) fn opt_string(
    map: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<String>, Response> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(param_error(
            ErrorCode::ParameterType,
            &format!("{key} must be a string"),
        )),
    }
}

pub(crate) fn req_string(
    map: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<String, Response> {
    opt_string(map, key)?
        .ok_or_else(|| param_error(ErrorCode::MissingParameter, &format!("missing {key}")))
}

fn qos(map: &serde_json::Map<String, Value>) -> Result<u8, Response> {
    match map.get("qos") {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(q) if q <= 2 => Ok(q as u8),
            _ => Err(param_error(
                ErrorCode::ParameterType,
                "qos must be 0, 1 or 2",
            )),
        },
        Some(_) => Err(param_error(
            ErrorCode::ParameterType,
            "qos must be 0, 1 or 2",
        )),
    }
}

fn topic_or_topics(
    map: &serde_json::Map<String, Value>,
) -> Result<(Option<String>, Option<String>), Response> {
    let topic = opt_string(map, "topic")?;
    let topics = opt_string(map, "topics")?;
    if topic.is_none() && topics.is_none() {
        return Err(param_error(ErrorCode::MissingParameter, "missing topic"));
    }
    Ok((topic, topics))
}

fn publish_params(map: serde_json::Map<String, Value>) -> Result<PublishParams, Response> {
    let (topic, topics) = topic_or_topics(&map)?;
    let retain = match map.get("retain") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(param_error(
                ErrorCode::ParameterType,
                "retain must be a boolean",
            ))
        }
    };
    Ok(PublishParams {
        topic,
        topics,
        payload: opt_string(&map, "payload")?.unwrap_or_default(),
        qos: qos(&map)?,
        retain,
        client_id: opt_string(&map, "client_id")?.unwrap_or_default(),
    })
}

fn subscribe_params(map: serde_json::Map<String, Value>) -> Result<SubscribeParams, Response> {
    let (topic, topics) = topic_or_topics(&map)?;
    Ok(SubscribeParams {
        topic,
        topics,
        qos: qos(&map)?,
        client_id: req_string(&map, "client_id")?,
    })
}

fn unsubscribe_params(map: serde_json::Map<String, Value>) -> Result<UnsubscribeParams, Response> {
    Ok(UnsubscribeParams {
        topic: req_string(&map, "topic")?,
        client_id: req_string(&map, "client_id")?,
    })
}

/// The topics of a publish/subscribe body: `topic`, or `topics` split on commas.
pub fn topics_of(topic: &Option<String>, topics: &Option<String>) -> Vec<String> {
    match (topic, topics) {
        (Some(t), _) => vec![t.clone()],
        (None, Some(list)) => list
            .split(',')
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect(),
        (None, None) => Vec::new(),
    }
}
