//! Auth tests: Basic parsing, salted hashes, apps (status, expiry), users, bootstrap.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use shardmq_http::auth::{
    constant_time_eq, generate_secret, parse_basic, BasicCredentials, Bootstrap, CredentialStore,
    Principal, SecretHash,
};

fn header(user_pass: &str) -> Vec<u8> {
    format!("Basic {}", STANDARD.encode(user_pass)).into_bytes()
}

#[test]
fn basic_parsing() {
    assert_eq!(
        parse_basic(&header("admin:pub:lic")),
        Some(BasicCredentials {
            user: "admin".into(),
            password: "pub:lic".into()
        })
    );
    assert!(parse_basic(b"basic YWRtaW46cHVibGlj").is_some());
    assert_eq!(parse_basic(b"Bearer abc"), None);
    assert_eq!(parse_basic(b"Basic !!!"), None);
    assert_eq!(parse_basic(&header("nocolon")), None);
    assert_eq!(parse_basic(b"Basic"), None);
    assert_eq!(parse_basic(b"\xff\xfe"), None);
}

#[test]
fn hashes() {
    let h = SecretHash::with_salt("public", [7; 16]);
    assert!(h.verify("public"));
    assert!(!h.verify("Public"));
    assert!(!h.verify(""));
    let encoded = h.encode();
    assert!(encoded.starts_with("sha256$07070707"));
    assert!(!encoded.contains("public"));
    assert_eq!(SecretHash::decode(&encoded), Some(h));
    assert_eq!(SecretHash::decode("md5$00$00"), None);
    assert_eq!(SecretHash::decode("sha256$zz$00"), None);
    // Fresh salts differ, so equal secrets do not hash equally.
    assert_ne!(SecretHash::new("x"), SecretHash::new("x"));
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"ab"));
    let s = generate_secret();
    assert_eq!(s.len(), 22);
    assert!(s.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_ne!(s, generate_secret());
}

#[test]
fn bootstrap_and_authenticate() {
    let boot = Bootstrap::default();
    let mut store = CredentialStore::bootstrap(&boot);
    let now = 1_700_000_000;
    assert_eq!(
        store.authorize(Some(&header("admin:public")), now),
        Some(Principal::App("admin".into()))
    );
    assert_eq!(store.authorize(Some(&header("admin:wrong")), now), None);
    assert_eq!(store.authorize(Some(&header("nobody:public")), now), None);
    assert_eq!(store.authorize(None, now), None);
    assert_eq!(store.defaults_in_use(&boot), ["app admin", "user admin"]);

    // A disabled app falls through to the user of the same name.
    store.apps[0].status = false;
    assert_eq!(
        store.authorize(Some(&header("admin:public")), now),
        Some(Principal::User("admin".into()))
    );
    store.users[0].password = SecretHash::new("s3cret");
    assert_eq!(store.authorize(Some(&header("admin:public")), now), None);
    assert_eq!(
        store.authorize(Some(&header("admin:s3cret")), now),
        Some(Principal::User("admin".into()))
    );
    assert_eq!(store.defaults_in_use(&boot), ["app admin"]);

    // Expiry: valid while expired >= now.
    store.apps[0].status = true;
    store.apps[0].secret = SecretHash::new("k");
    store.apps[0].expired = Some(now);
    assert!(store.authorize(Some(&header("admin:k")), now).is_some());
    assert_eq!(store.authorize(Some(&header("admin:k")), now + 1), None);
    assert!(store.defaults_in_use(&boot).is_empty());
}
