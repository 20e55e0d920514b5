//! The run's results: the JSON report and the human summary.
//!
//! Owns: the report's shape (field names are what `bench/run.sh` reads) and its rendering.
//! Must never: measure anything itself.

use std::fmt::Write;

use serde::Serialize;

use crate::plan::Scenario;
use crate::stats::Percentiles;
use crate::transport::Transport;

/// One second of the run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Second {
    pub t: u64,
    pub sent_per_s: u64,
    pub received_per_s: u64,
    pub p99_us: f64,
}

/// Everything a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: Scenario,
    pub broker: String,
    /// `tcp`, `tls`, `ws` or `wss`.
    pub transport: Transport,
    pub mqtt_version: u8,
    pub qos: u8,
    pub size: usize,
    pub clients: usize,
    pub publishers: u32,
    pub fanout: u64,
    pub threads: usize,
    pub rate_per_publisher: Option<f64>,
    pub window: u32,
    pub warmup_s: f64,
    pub duration_s: Option<f64>,
    /// Messages published.
    pub sent: u64,
    /// Deliveries due: sent × fanout.
    pub expected: u64,
    /// Distinct deliveries.
    pub delivered: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    /// PUBLISHes without a benchmark header.
    pub foreign: u64,
    /// Deliveries after the warm-up (the ones in the latency histogram).
    pub measured: u64,
    /// From the end of the warm-up to the last measured delivery.
    pub measured_s: f64,
    pub delivered_per_s: f64,
    pub latency: Percentiles,
    pub connects: u64,
    pub connect_s: f64,
    pub connects_per_s: f64,
    pub connack: Percentiles,
    /// TLS transports: connections whose handshake resumed a session (0 unless
    /// `--tls-resume`; the others made a full handshake). Absent without TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_resumed: Option<u64>,
    /// Connections that failed after the start (the first error is in `first_error`).
    pub failed_connections: usize,
    pub first_error: Option<String>,
    pub timeline: Vec<Second>,
}

impl Report {
    /// A few lines for the terminal.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let l = &self.latency;
        let _ = writeln!(
            s,
            "{:?} qos{} {}B v{} over {} against {}: {} clients, {} publishers, fanout {}",
            self.scenario,
            self.qos,
            self.size,
            self.mqtt_version,
            self.transport.name(),
            self.broker,
            self.clients,
            self.publishers,
            self.fanout
        );
        let _ = writeln!(
            s,
            "  connect   {} in {:.3}s = {:.0}/s; CONNACK p50 {:.0} us, p99 {:.0} us",
            self.connects,
            self.connect_s,
            self.connects_per_s,
            self.connack.p50_us,
            self.connack.p99_us
        );
        if let Some(r) = self.tls_resumed {
            let _ = writeln!(
                s,
                "  tls       {} full handshakes, {} resumed",
                self.connects.saturating_sub(r),
                r
            );
        }
        if let Some(e) = &self.first_error {
            let _ = writeln!(
                s,
                "  FAILED    {} connections failed during the run; first: {e}",
                self.failed_connections
            );
        }
        if self.publishers > 0 {
            let _ = writeln!(
                s,
                "  messages  sent {}, delivered {}/{} (lost {}, duplicates {}, reordered {}, foreign {})",
                self.sent, self.delivered, self.expected, self.lost, self.duplicates, self.reordered, self.foreign
            );
            let _ = writeln!(
                s,
                "  rate      {:.0} delivered msgs/s over {:.2}s measured",
                self.delivered_per_s, self.measured_s
            );
            let _ = writeln!(
                s,
                "  latency   p50 {:.0} us, p90 {:.0}, p99 {:.0}, p99.9 {:.0}, max {:.0} (n = {})",
                l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us, l.count
            );
        }
        s
    }
}
