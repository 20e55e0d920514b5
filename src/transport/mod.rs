//! The layers between a socket and the MQTT codec for the TLS, WebSocket and secure
//! WebSocket listeners: [`tls`] (rustls, sans-IO: the bytes a socket read go in, plaintext
//! and the bytes to write come out) and [`ws`] (the HTTP upgrade and binary frames carrying
//! MQTT bytes). Pure: no sockets, no clock, no threads; a connection task on a shard feeds
//! them. Must never: block, or hold more than one read's worth of bytes the caller did not ask
//! for.

pub mod tls;
pub mod ws;

use std::sync::Arc;

use crate::config::{Config, ListenerConfig};

/// The TLS configurations of the TLS listeners that are on (read from their certificate
/// files at start, and again on SIGHUP).
#[derive(Debug, Clone, Default)]
pub struct TlsConfigs {
    pub ssl: Option<Arc<rustls::ServerConfig>>,
    pub wss: Option<Arc<rustls::ServerConfig>>,
}

impl TlsConfigs {
    /// Reads the certificate files of every TLS listener that is on; the error names the
    /// listener and the file.
    pub fn load(cfg: &Config) -> Result<TlsConfigs, String> {
        let one =
            |name: &str, l: &ListenerConfig| -> Result<Option<Arc<rustls::ServerConfig>>, String> {
                if l.addr().is_none() {
                    return Ok(None);
                }
                let settings = tls::TlsSettings {
                    certfile: l.certfile.clone(),
                    keyfile: l.keyfile.clone(),
                    cacertfile: l.cacertfile.clone(),
                    verify: tls::Verify::parse(&l.verify)
                        .map_err(|e| format!("listeners.{name}.verify: {e}"))?,
                    fail_if_no_peer_cert: l.fail_if_no_peer_cert,
                };
                tls::server_config(&settings)
                    .map(Some)
                    .map_err(|e| format!("listeners.{name}: {e}"))
            };
        Ok(TlsConfigs {
            ssl: one("ssl", &cfg.listeners.ssl)?,
            wss: one("wss", &cfg.listeners.wss)?,
        })
    }
}
