//! The command line of `shardmq-bench`.
//!
//! Owns: the options, their defaults per scenario and their validation.
//! Must never: start anything (the binary's `main` calls [`crate::run`]).

use std::path::PathBuf;

use clap::Parser;
use shardmq::codec::{ProtocolVersion, QoS};

use crate::payload::HEADER_LEN;
use crate::plan::Scenario;

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
        Ok(())
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
}
