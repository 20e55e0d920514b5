//! The management thread's rule engine calls: rules (create, test, list, show, delete),
//! resources (create, list, show, status, start, delete), the catalogue (actions, resource
//! types, events), and the rule metrics the API shows (`matched`, `speed`, `speed_max`,
//! `speed_last5m` per rule; `success`, `failed` per action), summed from every shard's
//! counters and sampled every 10 s for the speeds.
//!
//! Runs on the management executor. Rules and resources are admin state: a change is
//! persisted and pushed to every shard in the policy before the API answers (`admin.rs`).
//! Must never: keep a rule the shards would refuse, or block on a resource's connection check
//! (it is an async TCP connect with a deadline).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use shardmq_http::collector::ApiCall;
use shardmq_http::{ApiAnswer, ApiError, ErrorCode};

use super::collector::{all_shards, Broker};
use super::state::err;
use crate::admin::store;
use crate::broker::rule_state::RuleCount;
use crate::broker::views::RuleCounts;
use crate::rules::{self, catalog, webhook, ResourceRef};

/// How often the rule speeds are sampled (EMQ X: 10 s).
pub const SPEED_TICK: Duration = Duration::from_secs(10);
/// How long a resource's connection check may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// What a rule engine call changed: the table to write (the shards get a new policy).
pub(super) type RuleChange = Option<&'static str>;

impl Broker {
    /// Every shard's rule counters, summed per rule id.
    async fn rule_counts(&self) -> HashMap<String, RuleCount> {
        let shards = all_shards(self.facts.shards);
        let (parts, _) = self.ask(&shards, || RuleCounts).await;
        let mut sum: HashMap<String, RuleCount> = HashMap::new();
        for (id, c) in parts.into_iter().flatten() {
            let s = sum.entry(id).or_default();
            s.matched += c.matched;
            if s.actions.len() < c.actions.len() {
                s.actions.resize(c.actions.len(), Default::default());
            }
            for (a, b) in s.actions.iter_mut().zip(&c.actions) {
                a.success += b.success;
                a.failed += b.failed;
            }
        }
        sum
    }

    /// Samples every rule's matches for the speeds (the management loop calls it every
    /// [`SPEED_TICK`] while there are rules).
    pub async fn sample_rule_speeds(&self) {
        if self.admin.state.borrow().rules.is_empty() {
            return;
        }
        let counts = self.rule_counts().await;
        let now = Instant::now();
        for rule in self.admin.state.borrow().rules.iter() {
            if let Some(id) = rule["id"].as_str() {
                let matched = counts.get(id).map_or(0, |c| c.matched);
                self.rule_speeds.borrow_mut().sample(id, matched, now);
            }
        }
    }

    /// A rule as the API shows it: its definition with its metrics and its actions'.
    fn rule_view(&self, rule: &Value, counts: &HashMap<String, RuleCount>) -> Value {
        let mut view = rule.clone();
        let id = rule["id"].as_str().unwrap_or_default();
        let count = counts.get(id).cloned().unwrap_or_default();
        let (speed, speed_max, last5m) = self.rule_speeds.borrow().of(id);
        view["metrics"] = json!([{
            "node": self.node,
            "matched": count.matched,
            "speed": speed,
            "speed_max": speed_max,
            "speed_last5m": last5m,
        }]);
        if let Some(actions) = view["actions"].as_array_mut() {
            for (i, a) in actions.iter_mut().enumerate() {
                let c = count.actions.get(i).copied().unwrap_or_default();
                a["metrics"] = json!([{
                    "node": self.node,
                    "success": c.success,
                    "failed": c.failed,
                }]);
            }
        }
        view
    }

    /// A resource with its `status` (a connection check for a web hook).
    async fn resource_alive(&self, resource: &Value) -> bool {
        if resource["type"] != "web_hook" {
            return true;
        }
        match webhook::WebTarget::from_config(&resource["config"]) {
            Ok(t) => crate::broker::webhook::probe(&t.url, PROBE_TIMEOUT).await,
            Err(_) => false,
        }
    }

    fn find_resource(&self, id: &str) -> Option<Value> {
        self.admin
            .state
            .borrow()
            .resources
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
    }

    /// Answers a rule engine call; gives the call back when it is not one.
    pub(super) async fn rule_call(
        &self,
        call: ApiCall,
    ) -> Result<(ApiAnswer, RuleChange), ApiCall> {
        let admin = &self.admin;
        let answer = match call {
            ApiCall::CreateRule(body) => return Ok(self.create_rule(body)),
            ApiCall::TestRule(body) => {
                let Some(rawsql) = body.get("rawsql").and_then(Value::as_str) else {
                    return Ok((err(ErrorCode::Invalid, "missing rawsql"), None));
                };
                let ctx = body
                    .get("ctx")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                match rules::test_sql(rawsql, &ctx) {
                    Ok(Some(selected)) => ApiAnswer::Data(selected),
                    Ok(None) => err(ErrorCode::Missing, "SQL Not Match"),
                    Err(e) => err(ErrorCode::Invalid, e.0),
                }
            }
            ApiCall::ListRules => {
                let counts = self.rule_counts().await;
                let rules: Vec<Value> = admin
                    .state
                    .borrow()
                    .rules
                    .iter()
                    .map(|r| self.rule_view(r, &counts))
                    .collect();
                ApiAnswer::Data(Value::Array(rules))
            }
            ApiCall::ShowRule { id } => {
                let rule = admin
                    .state
                    .borrow()
                    .rules
                    .iter()
                    .find(|r| r["id"] == id.as_str())
                    .cloned();
                match rule {
                    Some(r) => ApiAnswer::Data(self.rule_view(&r, &self.rule_counts().await)),
                    None => err(ErrorCode::Missing, "Not Found"),
                }
            }
            ApiCall::DeleteRule { id } => {
                admin
                    .state
                    .borrow_mut()
                    .rules
                    .retain(|r| r["id"] != id.as_str());
                self.rule_speeds.borrow_mut().forget(&id);
                return Ok((ApiAnswer::Done, Some(store::RULES)));
            }
            ApiCall::ListActions { r#for } => match catalog::actions_for(r#for.as_deref()) {
                Ok(list) => ApiAnswer::Data(Value::Array(list)),
                Err(e) => err(ErrorCode::Invalid, e),
            },
            ApiCall::ShowAction { name } => match catalog::action(&name) {
                Some(a) => ApiAnswer::Data(catalog::action_json(a)),
                None => ApiAnswer::Failed(ApiError::not_found()),
            },
            ApiCall::ListResourceTypes => ApiAnswer::Data(json!(catalog::resource_types())),
            ApiCall::ShowResourceType { name } => match catalog::resource_type(&name) {
                Some(t) => ApiAnswer::Data(t),
                None => err(ErrorCode::Missing, "Not Found"),
            },
            ApiCall::ListActionsByType { r#type } => {
                ApiAnswer::Data(json!(catalog::actions_of_type(&r#type)))
            }
            ApiCall::ListResourcesByType { r#type } => {
                let list: Vec<Value> = admin
                    .state
                    .borrow()
                    .resources
                    .iter()
                    .filter(|r| r["type"] == r#type.as_str())
                    .cloned()
                    .collect();
                ApiAnswer::Data(Value::Array(list))
            }
            ApiCall::ListEvents => ApiAnswer::Data(catalog::rule_events()),
            ApiCall::CreateResource { body, test } => {
                let resource = match new_resource(&body) {
                    Ok(r) => r,
                    Err(e) => return Ok((ApiAnswer::Failed(e), None)),
                };
                if test {
                    return Ok(if self.resource_alive(&resource).await {
                        (ApiAnswer::Done, None)
                    } else {
                        (
                            err(ErrorCode::Failed, "Test Creating Resource Failed"),
                            None,
                        )
                    });
                }
                let id = resource["id"].clone();
                let mut state = admin.state.borrow_mut();
                match state.resources.iter_mut().find(|r| r["id"] == id) {
                    Some(old) => *old = resource.clone(),
                    None => state.resources.push(resource.clone()),
                }
                return Ok((ApiAnswer::Data(resource), Some(store::RESOURCES)));
            }
            ApiCall::ListResources => ApiAnswer::Data(json!(admin.state.borrow().resources)),
            ApiCall::ShowResource { id } => match self.find_resource(&id) {
                Some(mut r) => {
                    let alive = self.resource_alive(&r).await;
                    r["status"] = json!([{"node": self.node, "is_alive": alive}]);
                    ApiAnswer::Data(r)
                }
                None => err(ErrorCode::Missing, "Not Found"),
            },
            ApiCall::ResourceStatus { id } => match self.find_resource(&id) {
                Some(r) => ApiAnswer::Data(json!({"is_alive": self.resource_alive(&r).await})),
                None => err(ErrorCode::Invalid, format!("Resource {id} Not Found")),
            },
            ApiCall::StartResource { id } => match self.find_resource(&id) {
                Some(r) if self.resource_alive(&r).await => ApiAnswer::Done,
                Some(_) => err(ErrorCode::Invalid, format!("Start Resource {id} Failed")),
                None => err(ErrorCode::Invalid, format!("Resource {id} Not Found")),
            },
            ApiCall::DeleteResource { id } => {
                admin
                    .state
                    .borrow_mut()
                    .resources
                    .retain(|r| r["id"] != id.as_str());
                return Ok((ApiAnswer::Done, Some(store::RESOURCES)));
            }
            other => return Err(other),
        };
        Ok((answer, None))
    }

    fn create_rule(&self, body: Value) -> (ApiAnswer, RuleChange) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        // EMQ X 3.1's id: `<name>:<system time in ns>`; without a name, 3.2's `rule:<hex>`.
        let id = match body.get("name").and_then(Value::as_str) {
            Some(name) if !name.is_empty() => format!("{name}:{nanos}"),
            _ => format!(
                "rule:{:08x}",
                (nanos as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32
            ),
        };
        let mut state = self.admin.state.borrow_mut();
        let known: Vec<ResourceRef<'_>> = state
            .resources
            .iter()
            .filter_map(|r| {
                Some(ResourceRef {
                    id: r["id"].as_str()?,
                    kind: r["type"].as_str()?,
                })
            })
            .collect();
        match rules::Rule::from_body(&body, Some(id), Some(&known)) {
            Ok(rule) => {
                drop(known);
                let shown = rule.definition.clone();
                state.rules.push(shown.clone());
                (ApiAnswer::Data(shown), Some(store::RULES))
            }
            Err(e) => (err(ErrorCode::Invalid, e.0), None),
        }
    }
}

/// A resource from the create body: `{name?, type, config?, description?}` →
/// `{attrs, config, description, id, name, type}` (id `<type>:<name>` as in 3.1, or 3.2's
/// `resource:<hex>` without a name), or the refusal.
fn new_resource(body: &Value) -> Result<Value, ApiError> {
    let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default();
    let kind = text("type");
    if catalog::resource_type(kind).is_none() {
        return Err(ApiError::new(
            ErrorCode::Invalid,
            format!("Resource Type {kind} Not Found"),
        ));
    }
    let config = match body.get("config") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(c @ Value::Object(_)) => c.clone(),
        Some(_) => {
            return Err(ApiError::new(
                ErrorCode::Invalid,
                "Bad Arguments: config must be an object",
            ))
        }
    };
    if kind == "web_hook" {
        if let Err(e) = webhook::WebTarget::from_config(&config) {
            return Err(ApiError::new(
                ErrorCode::Invalid,
                format!("Bad Arguments: {e}"),
            ));
        }
    }
    let name = text("name");
    let id = if name.is_empty() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        format!(
            "resource:{:08x}",
            nanos.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32
        )
    } else {
        format!("{kind}:{name}")
    };
    Ok(json!({
        "attrs": "undefined",
        "config": config,
        "description": text("description"),
        "id": id,
        "name": name,
        "type": kind,
    }))
}
