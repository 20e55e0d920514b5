//! The plugin catalogue: api-v3.md's 25 plugin names, which of them ShardMQ implements
//! natively (and so may be loaded), and which are loaded on a first start.
//!
//! Owns: [`PLUGINS`] and the lookups over it. Pure data. Must never: hold plugin state (the
//! management thread's admin state does) or name a plugin the document does not list.

/// One plugin of the document's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginSpec {
    pub name: &'static str,
    pub description: &'static str,
    /// Implemented by ShardMQ: loading and unloading it changes what the broker does.
    pub native: bool,
    /// Loaded on a first start (EMQ X 3.1's default `loaded_plugins`, minus the ones with no
    /// native equivalent).
    pub default_active: bool,
}

/// The version every plugin reports (the document's).
pub const PLUGIN_VERSION: &str = "v3.1.0";

/// Always loaded: the REST API itself. Unloading it is refused.
pub const MANAGEMENT: &str = "emqx_management";
pub const DASHBOARD: &str = "emqx_dashboard";
pub const RETAINER: &str = "emqx_retainer";
pub const AUTH_CLIENTID: &str = "emqx_auth_clientid";
pub const AUTH_USERNAME: &str = "emqx_auth_username";
pub const DELAYED_PUBLISH: &str = "emqx_delayed_publish";
pub const RULE_ENGINE: &str = "emqx_rule_engine";
pub const WEB_HOOK: &str = "emqx_web_hook";

const fn p(
    name: &'static str,
    description: &'static str,
    native: bool,
    default_active: bool,
) -> PluginSpec {
    PluginSpec {
        name,
        description,
        native,
        default_active,
    }
}

/// The document's plugins, in its (alphabetical) order.
pub const PLUGINS: [PluginSpec; 25] = [
    p(
        AUTH_CLIENTID,
        "EMQ X Authentication with ClientId/Password",
        true,
        false,
    ),
    p(
        "emqx_auth_http",
        "EMQ X Authentication/ACL with HTTP API",
        false,
        false,
    ),
    p(
        "emqx_auth_jwt",
        "EMQ X Authentication with JWT",
        false,
        false,
    ),
    p(
        "emqx_auth_ldap",
        "EMQ X Authentication/ACL with LDAP",
        false,
        false,
    ),
    p(
        "emqx_auth_mongo",
        "EMQ X Authentication/ACL with MongoDB",
        false,
        false,
    ),
    p(
        "emqx_auth_mysql",
        "EMQ X Authentication/ACL with MySQL",
        false,
        false,
    ),
    p(
        "emqx_auth_pgsql",
        "EMQ X Authentication/ACL with PostgreSQL",
        false,
        false,
    ),
    p(
        "emqx_auth_redis",
        "EMQ X Authentication/ACL with Redis",
        false,
        false,
    ),
    p(
        AUTH_USERNAME,
        "EMQ X Authentication with Username and Password",
        true,
        false,
    ),
    p("emqx_coap", "EMQ X CoAP Gateway", false, false),
    p(DASHBOARD, "EMQ X Web Dashboard", true, true),
    p(DELAYED_PUBLISH, "EMQ X Delayed Publish", true, false),
    p("emqx_lua_hook", "EMQ X Lua Hooks", false, false),
    p("emqx_lwm2m", "EMQ X LwM2M Gateway", false, false),
    p(MANAGEMENT, "EMQ X Management API and CLI", true, true),
    p(
        "emqx_plugin_template",
        "EMQ X Plugin Template",
        false,
        false,
    ),
    p("emqx_psk_file", "EMQX PSK Plugin from File", false, false),
    p("emqx_recon", "EMQ X Recon Plugin", false, false),
    p("emqx_reloader", "EMQ X Reloader Plugin", false, false),
    p(RETAINER, "EMQ X Retainer", true, true),
    p(RULE_ENGINE, "EMQ X Rule Engine", true, true),
    p("emqx_sn", "EMQ X MQTT SN Plugin", false, false),
    p("emqx_statsd", "Statsd for EMQ X", false, false),
    p("emqx_stomp", "EMQ X Stomp Protocol Plugin", false, false),
    p(WEB_HOOK, "EMQ X Webhook Plugin", true, false),
];

/// The plugin named `name`, if the document lists it.
pub fn plugin(name: &str) -> Option<&'static PluginSpec> {
    PLUGINS.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_has_the_documents_25_names_sorted_and_eight_native() {
        let names: Vec<&str> = PLUGINS.iter().map(|p| p.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        assert_eq!(PLUGINS.iter().filter(|p| p.native).count(), 8);
        assert!(plugin(MANAGEMENT).unwrap().default_active);
        assert!(plugin("emqx_recon").is_some_and(|p| !p.native));
        assert!(plugin("emqx_nope").is_none());
    }
}
