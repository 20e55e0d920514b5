//! Apps and dashboard users over HTTP: create, read, update, delete; the app secret shown
//! only at creation; `status`/`expired` honoured by Basic auth at once; users' login,
//! password change and the codes 103/104/105/106/113/114.

mod common;

use common::{basic, AdminNode};
use serde_json::json;

#[test]
fn apps_crud_and_their_credentials_take_effect_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = AdminNode::start(dir.path(), &[]);
    let created = node.expect(
        "POST",
        "apps/",
        Some(json!({"app_id": "ci", "name": "CI", "desc": "robot", "status": true})),
        0,
    );
    let secret = created["data"]["secret"].as_str().unwrap().to_string();
    assert!(secret.len() >= 16);
    let auth = basic("ci", &secret);
    assert_eq!(
        node.call_as(Some(&auth), "GET", "brokers/", None).status,
        200
    );
    node.expect(
        "POST",
        "apps/",
        Some(json!({"app_id": "ci", "name": "again"})),
        102,
    );

    let list = node.expect("GET", "apps/", None, 0);
    let text = list.to_string();
    assert!(
        !text.contains(&secret) && !text.contains("\"secret\""),
        "{text}"
    );
    let row = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["app_id"] == "ci")
        .cloned()
        .unwrap();
    assert_eq!(
        row,
        json!({"app_id": "ci", "name": "CI", "desc": "robot", "status": true, "expired": "undefined"})
    );
    let one = node.expect("GET", "apps/ci", None, 0);
    assert_eq!(one["data"]["name"], "CI");
    assert!(one["data"].get("secret").is_none());
    assert_eq!(node.expect("GET", "apps/nope", None, 0)["data"], json!([]));

    node.expect("PUT", "apps/ci", Some(json!({"status": false})), 0);
    assert_eq!(
        node.call_as(Some(&auth), "GET", "brokers/", None).status,
        401,
        "disabled"
    );
    node.expect(
        "PUT",
        "apps/ci",
        Some(json!({"status": true, "expired": 1000})),
        0,
    );
    assert_eq!(
        node.call_as(Some(&auth), "GET", "brokers/", None).status,
        401,
        "expired"
    );
    node.expect(
        "PUT",
        "apps/ci",
        Some(json!({"expired": "undefined", "desc": "new"})),
        0,
    );
    assert_eq!(
        node.call_as(Some(&auth), "GET", "brokers/", None).status,
        200
    );
    assert_eq!(
        node.expect("GET", "apps/ci", None, 0)["data"]["name"],
        "CI",
        "kept"
    );
    node.expect("PUT", "apps/nope", Some(json!({"status": true})), 102);
    node.expect("DELETE", "apps/ci", None, 0);
    node.expect("DELETE", "apps/ci", None, 0);
    assert_eq!(
        node.call_as(Some(&auth), "GET", "brokers/", None).status,
        401,
        "deleted"
    );
    // A chosen secret.
    node.expect(
        "POST",
        "apps/",
        Some(json!({"app_id": "mine", "secret": "s3cret"})),
        0,
    );
    assert_eq!(
        node.call_as(Some(&basic("mine", "s3cret")), "GET", "brokers/", None)
            .status,
        200
    );
}

#[test]
fn dashboard_users_crud_login_and_password_change() {
    let dir = tempfile::tempdir().unwrap();
    let node = AdminNode::start(dir.path(), &[]);
    node.expect(
        "POST",
        "users/",
        Some(json!({"username": "ops", "password": "pw", "tags": "viewer"})),
        0,
    );
    node.expect(
        "POST",
        "users/",
        Some(json!({"username": "ops", "password": "pw"})),
        113,
    );
    node.expect(
        "POST",
        "users/",
        Some(json!({"username": "x", "password": ""})),
        104,
    );
    let list = node.expect("GET", "users/", None, 0);
    assert!(list["data"]
        .as_array()
        .unwrap()
        .contains(&json!({"username": "ops", "tags": "viewer"})));
    assert!(!list.to_string().contains("password"));

    // POST /auth needs no credentials.
    let login = |u: &str, p: &str| {
        node.call_as(
            None,
            "POST",
            "auth",
            Some(json!({"username": u, "password": p})),
        )
        .json["code"]
            .clone()
    };
    assert_eq!(login("ops", "pw"), 0);
    assert_eq!(login("ops", "nope"), 103);
    assert_eq!(login("ghost", "pw"), 105);
    assert_eq!(login("", ""), 104);
    // A user is a Basic-auth principal too.
    assert_eq!(
        node.call_as(Some(&basic("ops", "pw")), "GET", "brokers/", None)
            .status,
        200
    );

    node.expect("PUT", "users/ops", Some(json!({"tags": "admin"})), 0);
    node.expect("PUT", "users/ghost", Some(json!({"tags": "admin"})), 105);
    node.expect(
        "PUT",
        "change_pwd/ops",
        Some(json!({"old_pwd": "bad", "new_pwd": "pw2"})),
        114,
    );
    node.expect(
        "PUT",
        "change_pwd/ghost",
        Some(json!({"old_pwd": "pw", "new_pwd": "pw2"})),
        105,
    );
    node.expect(
        "PUT",
        "change_pwd/ops",
        Some(json!({"old_pwd": "pw", "new_pwd": "pw2"})),
        0,
    );
    assert_eq!(
        node.call_as(Some(&basic("ops", "pw")), "GET", "brokers/", None)
            .status,
        401
    );
    assert_eq!(
        node.call_as(Some(&basic("ops", "pw2")), "GET", "brokers/", None)
            .status,
        200
    );

    node.expect("DELETE", "users/admin", None, 106);
    node.expect("DELETE", "users/ghost", None, 105);
    node.expect("DELETE", "users/ops", None, 0);
    assert_eq!(login("ops", "pw2"), 105);
    // The users API belongs to emqx_dashboard.
    node.unload("emqx_dashboard");
    assert_eq!(node.call("GET", "users/", None).status, 404);
}
