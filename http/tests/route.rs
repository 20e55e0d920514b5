//! Routing tests: every route of api-v3.md's `GET /api/v3/` list resolves to a route of the
//! same name; variables are decoded; slashes are forgiving; wrong method / unknown → 404.

use shardmq_http::index::API_INDEX;
use shardmq_http::route::NotFound;
use shardmq_http::{route, Method, Route};

fn method(m: &str) -> Method {
    match m {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        other => panic!("unexpected method {other}"),
    }
}

/// Substitutes `:var` segments with `v_var` (and `:node` with a node name).
fn fill(path: &str) -> String {
    path.split('/')
        .map(|seg| match seg.strip_prefix(':') {
            Some("node") => "shardmq%40host".to_string(),
            Some(var) => format!("v_{var}"),
            None => seg.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn index_matches_the_document_exactly() {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/api_index.json")).unwrap();
    let ours = serde_json::json!({"code": 0, "data": API_INDEX});
    assert_eq!(ours, fixture);
    assert_eq!(API_INDEX.len(), 87);
}

#[test]
fn every_documented_route_resolves_to_its_name() {
    for entry in API_INDEX {
        let path = format!("/api/v3/{}", fill(entry.path.trim_start_matches('/')));
        let got = route(&method(entry.method), &path)
            .unwrap_or_else(|_| panic!("{} {} did not route", entry.method, path));
        assert_eq!(got.name(), entry.name, "{} {}", entry.method, path);
        if entry.path.contains(":node") {
            assert_eq!(got.node(), Some("shardmq@host"), "{path}");
        } else {
            assert_eq!(got.node(), None, "{path}");
        }
    }
}

/// Whether a table path pattern (`/nodes/:node/...`) matches a concrete path.
fn pattern_matches(pattern: &str, concrete: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let c: Vec<&str> = concrete.split('/').filter(|s| !s.is_empty()).collect();
    p.len() == c.len() && p.iter().zip(&c).all(|(p, c)| p.starts_with(':') || p == c)
}

#[test]
fn every_documented_route_rejects_other_methods() {
    let all = [Method::Get, Method::Post, Method::Put, Method::Delete];
    for entry in API_INDEX {
        let concrete = fill(entry.path.trim_start_matches('/'));
        let path = format!("/api/v3/{concrete}");
        for m in &all {
            // The table's names for (m, this concrete path); e.g. `GET /sessions/persistent`
            // is `lookup_session` with the client id "persistent".
            let expected: Vec<&str> = API_INDEX
                .iter()
                .filter(|e| method(e.method) == *m && pattern_matches(e.path, &concrete))
                .map(|e| e.name)
                .collect();
            match route(m, &path) {
                Ok(r) => assert!(expected.contains(&r.name()), "{m:?} {path} → {r:?}"),
                Err(NotFound) => assert!(expected.is_empty(), "{m:?} {path} not routed"),
            }
        }
    }
    assert_eq!(route(&Method::Post, "/api/v3/brokers"), Err(NotFound));
    assert_eq!(route(&Method::Delete, "/api/v3/nodes/n"), Err(NotFound));
    assert_eq!(route(&Method::Get, "/api/v3/mqtt/publish"), Err(NotFound));
    assert_eq!(route(&Method::Put, "/api/v3/"), Err(NotFound));
    assert_eq!(
        route(&Method::Other("BREW".into()), "/api/v3/brokers"),
        Err(NotFound)
    );
}

#[test]
fn variables_are_percent_decoded() {
    assert_eq!(
        route(&Method::Get, "/api/v3/routes/a%2Fb%2F%2B"),
        Ok(Route::LookupRoutes {
            topic: "a/b/+".into()
        })
    );
    assert_eq!(
        route(&Method::Get, "/api/v3/routes/a+b"),
        Ok(Route::LookupRoutes {
            topic: "a+b".into()
        })
    );
    assert_eq!(
        route(&Method::Delete, "/api/v3/connections/my%20client"),
        Ok(Route::KickoutConnection {
            clientid: "my client".into()
        })
    );
    assert_eq!(
        route(
            &Method::Get,
            "/api/v3/nodes/shardmq%40h/connection/username/%E2%9C%93"
        ),
        Ok(Route::LookupNodeConnectionViaUsername {
            node: "shardmq@h".into(),
            username: "✓".into()
        })
    );
    assert_eq!(
        route(&Method::Delete, "/api/v3/banned/1.2.3.4"),
        Ok(Route::DeleteBanned {
            who: "1.2.3.4".into()
        })
    );
    // A segment that does not decode to UTF-8 cannot name anything.
    assert_eq!(route(&Method::Get, "/api/v3/routes/%FF"), Err(NotFound));
}

#[test]
fn slashes_do_not_matter() {
    for path in [
        "/api/v3/brokers",
        "/api/v3/brokers/",
        "//api//v3//brokers//",
        "/api/v3///brokers",
    ] {
        assert_eq!(route(&Method::Get, path), Ok(Route::ListBrokers), "{path}");
    }
    assert_eq!(route(&Method::Get, "/api/v3"), Ok(Route::ApiIndex));
    assert_eq!(route(&Method::Get, "/api/v3/"), Ok(Route::ApiIndex));
}

#[test]
fn shardmq_routes() {
    assert_eq!(route(&Method::Get, "/status"), Ok(Route::Status));
    assert_eq!(route(&Method::Get, "/stats"), Ok(Route::ShardStats));
    assert_eq!(route(&Method::Get, "/metrics/"), Ok(Route::ShardMetrics));
    assert_eq!(route(&Method::Post, "/metrics"), Err(NotFound));
    assert!(!Route::Status.needs_auth());
    assert!(!Route::AuthUser.needs_auth());
    assert!(Route::ShardMetrics.needs_auth());
}

#[test]
fn the_documents_actions_by_resource_type_route() {
    assert_eq!(
        route(&Method::Get, "/api/v3/resource_types/built_in/actions"),
        Ok(Route::ListActionsByType {
            r#type: "built_in".into()
        })
    );
}

#[test]
fn unknown_paths() {
    for path in [
        "/",
        "",
        "/api",
        "/api/v2/brokers",
        "/api/v3/nope",
        "/api/v3/brokers/a/b",
        "/api/v3/nodes/n/nope",
        "/API/v3/brokers",
    ] {
        assert_eq!(route(&Method::Get, path), Err(NotFound), "{path}");
    }
}

#[test]
fn metadata() {
    let paginated: Vec<&str> = API_INDEX
        .iter()
        .filter_map(|e| {
            let path = format!("/api/v3/{}", fill(e.path.trim_start_matches('/')));
            let r = route(&method(e.method), &path).ok()?;
            r.is_paginated().then_some(e.name)
        })
        .collect();
    assert_eq!(
        paginated,
        [
            "list_banned",
            "list_connections",
            "list_node_connections",
            "list_routes",
            "list_sessions",
            "list_node_sessions",
            "list_subscriptions",
            "list_node_subscriptions",
        ]
    );
    assert_eq!(Route::ListClientid.plugin(), Some("emqx_auth_clientid"));
    assert_eq!(Route::ListUsers.plugin(), Some("emqx_dashboard"));
    assert_eq!(Route::ListEvents.plugin(), Some("emqx_rule_engine"));
    assert_eq!(Route::ListBrokers.plugin(), None);
}
