//! The command line of `shardmq-bench`.
//!
//! Owns: the options, their defaults per scenario and their validation.
//! Must never: start anything (the binary's `main` calls [`crate::run`]).

use std::path::PathBuf;

use clap::Parser;
use shardmq::codec::{ProtocolVersion, QoS};

use crate::payload::HEADER_LEN;
use crate::plan::Scenario;
use crate::transport::Transport;

/// MQTT load generator: end-to-end latency (HDR histograms), throughput, loss, duplicates and
/// order, open loop at a fixed rate or unlimited with a bounded in-flight window.
#[derive(Debug, Clone, Parser)]
#[command(name = "shardmq-bench", version, about)]
pub struct Opts {
    /// The load shape.
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// Broker host (loopback by default).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Broker port.
    #[arg(long, short = 'p', default_value_t = 1883)]
    pub port: u16,
    /// MQTT protocol version: 3 (3.1.1) or 5.
    #[arg(long = "mqtt-version", default_value_t = 3, value_parser = clap::value_parser!(u8).range(3..=5))]
    pub mqtt_version: u8,
    /// Every client asks for a persistent session (clean session 0; 5.0: Session Expiry
    /// Interval 3600): what the broker keeps durable. Use a fresh broker for each run.
    #[arg(long)]
    pub persistent: bool,
    /// QoS of publishes and subscriptions.
    #[arg(long, short = 'q', default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    /// Payload bytes (at least 24, the benchmark header).
    #[arg(long, short = 's', default_value_t = 64)]
    pub size: usize,
    /// Scenario size: publishers (fanin), subscribers (fanout), pairs, connections (conn) or
    /// clients (mixed). Defaults: 16, 16, 8, 1000, 100.
    #[arg(long, short = 'n')]
    pub clients: Option<usize>,
    /// fanin only: subscribe with a `$share` group of this many members instead of one client.
    #[arg(long, default_value_t = 0)]
    pub shared: usize,
    /// Messages per publisher (the run ends at this count or the duration, whichever is first).
    #[arg(long, short = 'c')]
    pub count: Option<u64>,
    /// Seconds of measured sending after the warm-up (default 5 unless --count is given).
    #[arg(long, short = 'd')]
    pub duration: Option<f64>,
    /// Seconds of sending before measuring (latencies of those messages are not recorded).
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// `rtt` only: seconds of unmeasured pings between connecting and the measured rounds.
    /// For about its first few thousand round trips a new client often runs on the same CPU
    /// as an unpinned broker thread, then the scheduler spreads them; `--settle 1` measures
    /// a client that has been connected a while.
    #[arg(long, default_value_t = 0.0)]
    pub settle: f64,
    /// Messages per second per publisher, open loop (default: unlimited; mixed: 10).
    #[arg(long, short = 'r')]
    pub rate: Option<f64>,
    /// Unacknowledged QoS 1/2 publishes per publisher (Mosquitto silently drops QoS 2
    /// publishes beyond its max_inflight_messages, 20 by default: use --window 20 there).
    #[arg(long, default_value_t = 32)]
    pub window: u32,
    /// QoS 0, unlimited pace: most deliveries outstanding (published, not yet received) per
    /// publisher and subscriber copy, so that a broker that queues without limit is measured at
    /// the rate it delivers, not the rate it swallows (0: no bound).
    #[arg(long = "qos0-window", default_value_t = 256)]
    pub qos0_window: u64,
    /// Worker threads (each runs many connections).
    #[arg(long, short = 't', default_value_t = 1)]
    pub threads: usize,
    /// Pin worker i to core `cores[i % len]`, e.g. --pin 1 or --pin 2,3.
    #[arg(long, value_delimiter = ',')]
    pub pin: Vec<usize>,
    /// Most connection attempts in flight at once (0: no limit; conn defaults to 100).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// conn only: keep the connections open and idle this many seconds after all connected.
    #[arg(long, default_value_t = 0.0)]
    pub hold: f64,
    /// Seconds to wait for outstanding deliveries after sending ends.
    #[arg(long, default_value_t = 5.0)]
    pub drain: f64,
    /// Hard limit on the whole run in seconds (connect + send + drain).
    #[arg(long, default_value_t = 300.0)]
    pub timeout: f64,
    /// Topic prefix (default bench/<pid>), so runs on one broker do not meet.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the latency percentile distribution here (HdrHistogram .hgrm text, milliseconds).
    #[arg(long)]
    pub hdr: Option<PathBuf>,
    /// Draw throughput over time and the latency distribution into this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
    /// MQTT over TLS (rustls, TLS 1.3 or 1.2), to the broker's TLS port (e.g. 8883); needs
    /// --cafile or --insecure. With --ws: MQTT over secure WebSocket (wss, e.g. 8084). Every
    /// connection makes a full handshake unless --tls-resume.
    #[arg(long)]
    pub tls: bool,
    /// With --tls: the CA certificates (PEM) the broker's certificate must chain to.
    #[arg(long, value_name = "PATH", conflicts_with = "insecure")]
    pub cafile: Option<PathBuf>,
    /// With --tls: accept any broker certificate, unverified. For testing only: the traffic is
    /// encrypted but the broker is not authenticated.
    #[arg(long)]
    pub insecure: bool,
    /// With --tls: the name the broker's certificate must carry, also sent as SNI (default:
    /// --host).
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
    /// With --tls: connections resume TLS sessions (one in-memory session store shared by all
    /// clients, filled by warm-up connections before the run) instead of full handshakes.
    /// The report counts the handshakes that did resume (`tls_resumed`).
    #[arg(long)]
    pub tls_resume: bool,
    /// MQTT over WebSocket: an HTTP/1.1 upgrade to --ws-path asking for subprotocol `mqtt`,
    /// then binary frames (to the broker's WebSocket port, e.g. 8083; with --tls, wss).
    #[arg(long)]
    pub ws: bool,
    /// With --ws: the path of the upgrade request (default /mqtt).
    #[arg(long, value_name = "PATH")]
    pub ws_path: Option<String>,
}

impl Opts {
    /// Checks what clap cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.size < HEADER_LEN {
            return Err(format!("--size must be at least {HEADER_LEN}"));
        }
        if self.threads == 0 {
            return Err("--threads must be at least 1".into());
        }
        if self.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
            return Err("--rate must be positive".into());
        }
        if self.timeout >= f64::from(crate::wire::KEEPALIVE_S) {
            return Err(format!(
                "--timeout must stay below the {} s keepalive (no PINGREQ is sent)",
                crate::wire::KEEPALIVE_S
            ));
        }
        if self.window == 0 {
            return Err("--window must be at least 1".into());
        }
        if !self.tls {
            for (set, name) in [
                (self.cafile.is_some(), "--cafile"),
                (self.insecure, "--insecure"),
                (self.server_name.is_some(), "--server-name"),
                (self.tls_resume, "--tls-resume"),
            ] {
                if set {
                    return Err(format!("{name} needs --tls"));
                }
            }
        } else if self.cafile.is_none() && !self.insecure {
            return Err(
                "--tls needs --cafile PATH (the CA to trust) or --insecure (no verification)"
                    .into(),
            );
        }
        if let Some(p) = &self.ws_path {
            if !self.ws {
                return Err("--ws-path needs --ws".into());
            }
            if !p.starts_with('/') {
                return Err("--ws-path must start with /".into());
            }
        }
        Ok(())
    }

    /// The WebSocket upgrade path.
    pub fn ws_path(&self) -> &str {
        self.ws_path.as_deref().unwrap_or("/mqtt")
    }

    /// The transport the options ask for.
    pub fn transport(&self) -> Transport {
        Transport::new(self.tls, self.ws)
    }

    pub fn version(&self) -> ProtocolVersion {
        if self.mqtt_version == 5 {
            ProtocolVersion::V5
        } else {
            ProtocolVersion::V311
        }
    }

    pub fn qos(&self) -> QoS {
        QoS::from_u8(self.qos).unwrap_or_default()
    }

    /// The scenario size with its per-scenario default.
    pub fn n(&self) -> usize {
        self.clients.unwrap_or(match self.scenario {
            Scenario::Fanin | Scenario::Fanout => 16,
            Scenario::Pairs => 8,
            Scenario::Window | Scenario::Rtt => 1,
            Scenario::Conn => 1000,
            Scenario::Mixed => 100,
        })
    }

    /// Per-publisher rate (mixed defaults to 10/s).
    pub fn rate(&self) -> Option<f64> {
        match (self.rate, self.scenario) {
            (None, Scenario::Mixed) => Some(10.0),
            (r, _) => r,
        }
    }

    /// Measured sending time in seconds (`None`: until `--count`).
    pub fn duration(&self) -> Option<f64> {
        match (self.duration, self.count) {
            (Some(d), _) => Some(d),
            (None, Some(_)) => None,
            (None, None) => Some(5.0),
        }
    }

    pub fn concurrency(&self) -> usize {
        self.concurrency.unwrap_or(match self.scenario {
            Scenario::Conn => 100,
            _ => 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let o = Opts::parse_from(["shardmq-bench", "fanin"]);
        assert_eq!(o.n(), 16);
        assert_eq!(o.duration(), Some(5.0));
        assert!(o.validate().is_ok());
        let o = Opts::parse_from(["shardmq-bench", "mixed", "-c", "10", "--size", "8"]);
        assert_eq!(o.rate(), Some(10.0));
        assert_eq!(o.duration(), None);
        assert!(o.validate().is_err());
        assert!(Opts::try_parse_from(["shardmq-bench", "fanin", "--qos", "3"]).is_err());
    }

    #[test]
    fn transport_options() {
        let ok = |args: &[&str]| {
            let mut v = vec!["shardmq-bench", "pairs"];
            v.extend_from_slice(args);
            Opts::try_parse_from(v)
                .map_err(|e| e.to_string())?
                .validate()
        };
        let o = Opts::parse_from(["shardmq-bench", "pairs"]);
        assert_eq!((o.transport(), o.ws_path()), (Transport::Tcp, "/mqtt"));
        assert!(ok(&["--tls", "--insecure"]).is_ok());
        assert!(ok(&["--tls", "--cafile", "ca.pem", "--tls-resume"]).is_ok());
        assert!(ok(&["--tls"]).is_err(), "needs --cafile or --insecure");
        assert!(ok(&["--tls", "--cafile", "ca.pem", "--insecure"]).is_err());
        assert!(ok(&["--insecure"]).is_err());
        assert!(ok(&["--tls-resume"]).is_err());
        assert!(ok(&["--ws", "--ws-path", "/x"]).is_ok());
        assert!(ok(&["--ws-path", "/x"]).is_err());
        assert!(ok(&["--ws", "--ws-path", "x"]).is_err());
        let o = Opts::parse_from(["shardmq-bench", "conn", "--tls", "--insecure", "--ws"]);
        assert_eq!(o.transport(), Transport::Wss);
    }
}
