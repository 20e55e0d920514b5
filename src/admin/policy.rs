//! `Policy`: the read-only snapshot of the admin state that shards enforce — bans, the auth
//! tables of the loaded auth plugins, which native features are on, and the runtime
//! settings. Built by the management thread, sent to every shard as `ShardMsg::Policy`, and
//! swapped in whole; a shard never changes it.
//!
//! Owns: the CONNECT decision ([`Policy::check_connect`]) and the ban match. Pure. Must
//! never: be mutated after it is sent, read the clock (callers pass `now`), or do I/O.

use std::collections::HashMap;
use std::net::IpAddr;

use shardmq_http::model::BanKind;

use super::hash::PasswordHash;
use crate::config::Config;
use crate::session::SessionConfig;

/// One ban as shards check it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    pub who: String,
    pub kind: BanKind,
    /// Unix seconds after which the ban no longer applies; `None` never expires.
    pub until: Option<u64>,
}

impl Ban {
    /// In force at `now` (a ban is valid up to and including `until`).
    pub fn active(&self, now_unix: u64) -> bool {
        self.until.is_none_or(|t| t >= now_unix)
    }
}

/// What CONNECT is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A loaded auth table knows the client id or username and the password matches: the
    /// client proved it knows a secret (this, and only this, clears its address's failed
    /// authentications in the throttle).
    Authenticated,
    /// No source knows the client and anonymous clients are allowed.
    Accept,
    /// A ban matches: CONNACK 5 (3.x) / 0x8A (5.0).
    Banned,
    /// A loaded auth table knows the id or username and the password is wrong or missing:
    /// CONNACK 4 (3.x) / 0x86 (5.0).
    BadCredentials,
    /// No source authenticated the client, it has no username and anonymous clients are not
    /// allowed: CONNACK 5 / 0x87.
    NotAuthorized,
}

/// The snapshot shards enforce.
#[derive(Debug, Clone)]
pub struct Policy {
    pub bans: Vec<Ban>,
    /// The rule engine's rules in force (checked on every publish only when there are any).
    pub rules: std::sync::Arc<crate::rules::RuleSet>,
    /// TLS listener configurations read again since start (SIGHUP): `Some` replaces what a
    /// shard uses for new connections; `None` keeps it.
    pub tls: Option<crate::transport::TlsConfigs>,
    /// `Some` while `emqx_auth_clientid` is loaded: client id → password hash.
    pub auth_clientid: Option<HashMap<String, PasswordHash>>,
    /// `Some` while `emqx_auth_username` is loaded: username → password hash.
    pub auth_username: Option<HashMap<String, PasswordHash>>,
    /// `emqx_retainer` loaded: retained messages are stored and served.
    pub retainer: bool,
    /// `emqx_retainer`'s settings.
    pub retainer_limits: crate::retained::RetainLimits,
    /// `emqx_delayed_publish` loaded: `$delayed/<secs>/<topic>` is held, then published.
    pub delayed_publish: bool,
    /// `mqtt.allow_anonymous`: whether a client that no loaded auth source accepted (whatever
    /// username it sent, if any) may connect.
    pub allow_anonymous: bool,
    /// Limits of sessions created from now on.
    pub session: std::sync::Arc<SessionConfig>,
    /// The ACL rules (`acl.file`; none when empty).
    pub acl: std::sync::Arc<super::acl::Acl>,
    /// `acl.nomatch = allow`.
    pub acl_nomatch_allow: bool,
    /// `acl.deny_action = disconnect`.
    pub acl_deny_disconnects: bool,
    /// The SUBACK code of a denied subscription for a 5.0 client (`acl.deny_subscribe_v5`).
    pub acl_deny_suback_v5: u8,
}

impl Policy {
    /// The policy of a configuration with no admin state: no bans, no auth plugin, the
    /// retainer as `retainer.enable` says.
    pub fn from_config(cfg: &Config) -> Policy {
        Policy {
            bans: Vec::new(),
            auth_clientid: None,
            auth_username: None,
            retainer: cfg.retainer.enable,
            retainer_limits: crate::retained::RetainLimits {
                max_messages: cfg.retainer.max_retained_messages,
                max_payload_size: u64::from(cfg.retainer.max_payload_size),
                expiry_secs: cfg.retainer.expiry_interval,
            },
            delayed_publish: false,
            allow_anonymous: cfg.mqtt.allow_anonymous,
            session: std::sync::Arc::new(SessionConfig::from(cfg)),
            acl: Default::default(),
            rules: Default::default(),
            tls: None,
            acl_nomatch_allow: cfg.acl.nomatch == crate::config::AclVerdict::Allow,
            acl_deny_disconnects: cfg.acl.deny_action == crate::config::AclDenyAction::Disconnect,
            acl_deny_suback_v5: cfg.acl.deny_subscribe_v5.code(),
        }
    }

    /// The properties of a 5.0 CONNACK: what this broker supports and imposes (Maximum Packet
    /// Size, Retain / Wildcard / Shared Subscription Available, Maximum QoS below 2, Topic
    /// Alias Maximum; Subscription Identifiers are available, the default), the Server Keep
    /// Alive when `server_keepalive` is set, and the client id the broker assigned, if it did.
    pub fn connack_properties(
        &self,
        max_packet_size: u32,
        server_keepalive: u16,
        assigned_id: Option<&crate::codec::Str>,
    ) -> crate::codec::Props {
        let mut p = crate::codec::Properties {
            maximum_packet_size: Some(max_packet_size),
            retain_available: Some(u8::from(self.retainer)),
            wildcard_subscription_available: Some(1),
            shared_subscription_available: Some(1),
            ..Default::default()
        };
        if self.session.max_topic_alias > 0 {
            p.topic_alias_maximum = Some(self.session.max_topic_alias);
        }
        if self.session.max_qos_allowed < crate::codec::QoS::ExactlyOnce {
            p.maximum_qos = Some(self.session.max_qos_allowed as u8);
        }
        if server_keepalive > 0 {
            p.server_keep_alive = Some(server_keepalive);
        }
        // QoS 1 is acknowledged as it arrives; QoS 2 waits for PUBREL, up to this many.
        if self.session.max_awaiting_rel > 0 {
            p.receive_maximum = Some(self.session.max_awaiting_rel.min(65535) as u16);
        }
        p.assigned_client_identifier = assigned_id.cloned();
        p.into()
    }

    /// True when every publish and subscription is allowed without looking (no rules and
    /// `acl.nomatch = allow`): the message path then pays nothing for authorization.
    pub fn acl_open(&self) -> bool {
        self.acl.rules.is_empty() && self.acl_nomatch_allow
    }

    /// Whether `client` may publish to `topic` or subscribe to the filter `topic`.
    pub fn authorize(
        &self,
        client: super::acl::ClientRef<'_>,
        access: super::acl::Access,
        topic: &str,
    ) -> bool {
        self.acl_open()
            || self
                .acl
                .check(client, access, topic)
                .unwrap_or(self.acl_nomatch_allow)
    }

    /// Whether a ban in force matches this client.
    pub fn banned(
        &self,
        client_id: &str,
        username: Option<&str>,
        ip: Option<IpAddr>,
        now_unix: u64,
    ) -> bool {
        self.bans.iter().any(|b| {
            b.active(now_unix)
                && match b.kind {
                    BanKind::ClientId => b.who == client_id,
                    BanKind::Username => username == Some(b.who.as_str()),
                    BanKind::IpAddress => ip.is_some_and(|ip| same_ip(&b.who, ip)),
                }
        })
    }

    /// The CONNECT decision: bans first; then the client id table, then the username table
    /// (a known entry decides: right password authenticates, wrong or missing refuses; an
    /// unknown one falls through); a client that no source accepted is anonymous, as in EMQ X,
    /// whatever username it sent: `allow_anonymous` decides.
    pub fn check_connect(
        &self,
        client_id: &str,
        username: Option<&str>,
        password: Option<&[u8]>,
        ip: Option<IpAddr>,
        now_unix: u64,
    ) -> Verdict {
        if self.banned(client_id, username, ip, now_unix) {
            return Verdict::Banned;
        }
        let sources = [
            self.auth_clientid.as_ref().map(|t| (t, Some(client_id))),
            self.auth_username.as_ref().map(|t| (t, username)),
        ];
        for (table, key) in sources.into_iter().flatten() {
            let Some(hash) = key.and_then(|k| table.get(k)) else {
                continue; // unknown: ignore, ask the next source
            };
            return match password {
                Some(p) if hash.verify(p) => Verdict::Authenticated,
                _ => Verdict::BadCredentials,
            };
        }
        if !self.allow_anonymous {
            return Verdict::NotAuthorized;
        }
        Verdict::Accept
    }
}

/// `who` names this address (`"10.0.0.1"`, `"::1"`, or an IPv4 address seen as IPv4-mapped
/// IPv6).
fn same_ip(who: &str, ip: IpAddr) -> bool {
    let Ok(banned) = who.trim().parse::<IpAddr>() else {
        return false;
    };
    let canon = |a: IpAddr| match a {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    canon(banned) == canon(ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::hash::HashAlgo;

    fn policy() -> Policy {
        Policy::from_config(&Config::default())
    }

    fn table(entries: &[(&str, &str)]) -> HashMap<String, PasswordHash> {
        entries
            .iter()
            .map(|(k, p)| {
                (
                    k.to_string(),
                    PasswordHash::new(HashAlgo::Sha256, p.as_bytes()),
                )
            })
            .collect()
    }

    const IP: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 7)));

    #[test]
    fn bans_match_their_kind_and_expire_after_until() {
        let mut p = policy();
        p.bans = vec![
            Ban {
                who: "c1".into(),
                kind: BanKind::ClientId,
                until: None,
            },
            Ban {
                who: "bob".into(),
                kind: BanKind::Username,
                until: Some(100),
            },
            Ban {
                who: "10.0.0.7".into(),
                kind: BanKind::IpAddress,
                until: None,
            },
        ];
        assert_eq!(p.check_connect("c1", None, None, None, 0), Verdict::Banned);
        assert_eq!(
            p.check_connect("c2", Some("bob"), None, None, 100),
            Verdict::Banned
        );
        assert_eq!(
            p.check_connect("c2", Some("bob"), None, None, 101),
            Verdict::Accept
        );
        assert_eq!(
            p.check_connect("c2", Some("c1"), None, None, 0),
            Verdict::Accept
        );
        assert_eq!(p.check_connect("x", None, None, IP, 0), Verdict::Banned);
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
        assert_eq!(
            p.check_connect("x", None, None, Some(mapped), 0),
            Verdict::Banned
        );
        let other: IpAddr = "10.0.0.8".parse().unwrap();
        assert_eq!(
            p.check_connect("x", None, None, Some(other), 0),
            Verdict::Accept
        );
    }

    #[test]
    fn a_known_id_decides_an_unknown_one_falls_through() {
        let mut p = policy();
        p.auth_clientid = Some(table(&[("dev1", "pw1")]));
        p.auth_username = Some(table(&[("alice", "pw2")]));
        let v = |id: &str, user: Option<&str>, pw: Option<&str>| {
            p.check_connect(id, user, pw.map(str::as_bytes), None, 0)
        };
        assert_eq!(v("dev1", None, Some("pw1")), Verdict::Authenticated);
        assert_eq!(v("dev1", None, Some("nope")), Verdict::BadCredentials);
        assert_eq!(v("dev1", None, None), Verdict::BadCredentials);
        // The client id decides before the username is looked at.
        assert_eq!(
            v("dev1", Some("alice"), Some("pw1")),
            Verdict::Authenticated
        );
        assert_eq!(
            v("other", Some("alice"), Some("pw2")),
            Verdict::Authenticated
        );
        assert_eq!(
            v("other", Some("alice"), Some("pw1")),
            Verdict::BadCredentials
        );
        assert_eq!(v("other", Some("carol"), None), Verdict::Accept);
        assert_eq!(v("other", None, None), Verdict::Accept);
    }

    #[test]
    fn anonymous_means_no_username_and_no_source_that_accepted() {
        let mut p = policy();
        p.allow_anonymous = false;
        assert_eq!(
            p.check_connect("a", None, None, None, 0),
            Verdict::NotAuthorized
        );
        // A username no source knows does not make a client known (EMQ X: anonymous).
        assert_eq!(
            p.check_connect("a", Some("u"), Some(b"anything"), None, 0),
            Verdict::NotAuthorized
        );
        assert_eq!(
            p.check_connect("a", Some(""), None, None, 0),
            Verdict::NotAuthorized
        );
        p.auth_username = Some(table(&[("alice", "pw2")]));
        assert_eq!(
            p.check_connect("a", Some("mallory"), Some(b"pw2"), None, 0),
            Verdict::NotAuthorized,
            "unknown to the loaded table: anonymous"
        );
        assert_eq!(
            p.check_connect("a", Some("alice"), Some(b"pw2"), None, 0),
            Verdict::Authenticated
        );
        p.auth_username = None;
        p.auth_clientid = Some(table(&[("a", "pw")]));
        assert_eq!(
            p.check_connect("a", None, Some(b"pw"), None, 0),
            Verdict::Authenticated
        );
        // An unloaded table is not consulted at all.
        p.auth_clientid = None;
        assert_eq!(
            p.check_connect("a", None, Some(b"pw"), None, 0),
            Verdict::NotAuthorized
        );
    }
}
