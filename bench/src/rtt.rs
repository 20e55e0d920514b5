//! The `rtt` probe: what one client on its own waits for, one request at a time, on an
//! otherwise idle broker: PINGREQ→PINGRESP, QoS 1 PUBLISH→PUBACK, the QoS 2 flow
//! (PUBLISH→PUBREC, PUBREL→PUBCOMP) and CONNECT→CONNACK (a fresh connection each time, closed
//! with DISCONNECT). These are the round trips a real client's latency and a window of 1's
//! throughput are made of; a broker that sleeps through its sockets' readiness shows here
//! first.
//!
//! With `--settle S` the client pings, unmeasured, for S seconds after connecting first: where
//! the scheduler runs a client relative to an unpinned broker thread changes during its first
//! tens of milliseconds, so a fresh client and one connected a while can see different round
//! trips (bench/history/lone-client.md).
//!
//! With `--tls` / `--ws` the rounds go over that transport; a connect round then includes the
//! TLS handshake (a full one unless `--tls-resume`) and the WebSocket upgrade.
//!
//! Owns: one blocking connection for the ping and publish rounds, plus one per connect round.
//! Must never: pipeline requests (each waits for its answer), or run past `--timeout`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use serde::Serialize;
use shardmq::codec::{Packet, ProtocolVersion, QoS};

use crate::cli::Opts;
use crate::payload::Header;
use crate::probe::Client;
use crate::transport::{Transport, TransportCfg};
use crate::wire;

/// Rounds of each kind when `--count` is not given.
pub const DEFAULT_ROUNDS: u64 = 1000;

/// Round-trip percentiles of one kind of request, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Rtt {
    pub rounds: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    /// Sequential requests per second (1 / mean round trip): a window of 1's ceiling.
    pub per_s: f64,
}

/// What the probe found.
#[derive(Debug, Clone, Serialize)]
pub struct RttReport {
    pub scenario: &'static str,
    pub broker: String,
    pub transport: Transport,
    pub mqtt_version: u8,
    /// Seconds of unmeasured pings before the measured rounds (`--settle`).
    pub settle_s: f64,
    pub ping: Rtt,
    pub qos1: Rtt,
    pub qos2: Rtt,
    pub subscribe: Rtt,
    pub unsubscribe: Rtt,
    pub connect: Rtt,
}

impl RttReport {
    /// The human summary.
    pub fn summary(&self) -> String {
        let line = |name: &str, r: &Rtt| {
            format!(
                "{name:<24} p50 {:>8.1} us   p99 {:>8.1} us   max {:>9.1} us   {:>8.0}/s over {} rounds\n",
                r.p50_us, r.p99_us, r.max_us, r.per_s, r.rounds
            )
        };
        line("PINGREQ -> PINGRESP", &self.ping)
            + &line("QoS 1 PUBLISH -> PUBACK", &self.qos1)
            + &line("QoS 2 PUBLISH -> PUBCOMP", &self.qos2)
            + &line("SUBSCRIBE -> SUBACK", &self.subscribe)
            + &line("UNSUBSCRIBE -> UNSUBACK", &self.unsubscribe)
            + &line("CONNECT -> CONNACK", &self.connect)
    }
}

fn summarise(mut samples: Vec<Duration>) -> Rtt {
    samples.sort();
    let n = samples.len().max(1);
    let at = |q: f64| samples[((n as f64 * q) as usize).min(n - 1)].as_secs_f64() * 1e6;
    let total: Duration = samples.iter().sum();
    Rtt {
        rounds: samples.len() as u64,
        p50_us: at(0.5),
        p99_us: at(0.99),
        max_us: samples.last().map_or(0.0, |d| d.as_secs_f64() * 1e6),
        per_s: samples.len() as f64 / total.as_secs_f64().max(1e-9),
    }
}

/// Sends `out` and waits for the answer `ok` accepts: the round trip's time.
fn timed(
    c: &mut Client,
    out: &BytesMut,
    deadline: Instant,
    want: &str,
    ok: impl Fn(&Packet) -> bool,
) -> Result<Duration, String> {
    let t = Instant::now();
    c.send(out).map_err(|e| e.to_string())?;
    expect(c, deadline, want, ok)?;
    Ok(t.elapsed())
}

fn expect(
    c: &mut Client,
    deadline: Instant,
    want: &str,
    ok: impl Fn(&Packet) -> bool,
) -> Result<(), String> {
    match c.next(deadline).map_err(|e| e.to_string())? {
        Some(p) if ok(&p) => Ok(()),
        Some(p) => Err(format!("expected {want}, got {p:?}")),
        None => Err(format!("no {want} before the timeout")),
    }
}

/// Runs the probe `opts` describes (`rtt` scenario): `--count` rounds of each kind.
pub fn rtt(opts: &Opts) -> Result<RttReport, String> {
    let addr: SocketAddr = (opts.host.as_str(), opts.port)
        .to_socket_addrs()
        .map_err(|e| format!("resolving {}: {e}", opts.host))?
        .next()
        .ok_or("no address for the broker")?;
    let version = opts.version();
    let rounds = opts.count.unwrap_or(DEFAULT_ROUNDS);
    let deadline = Instant::now() + Duration::from_secs_f64(opts.timeout);
    let prefix = opts
        .prefix
        .clone()
        .unwrap_or_else(|| format!("smqb{}", std::process::id()));
    let id = format!("{prefix}-rtt");
    let transport = TransportCfg::from_opts(opts)?;
    let mut c =
        Client::connect(addr, &transport, version, &id, deadline).map_err(|e| e.to_string())?;
    let mut out = BytesMut::new();
    let ping_packet = [0xC0, 0x00];

    let settle_until = Instant::now() + Duration::from_secs_f64(opts.settle.max(0.0));
    while Instant::now() < settle_until {
        out.clear();
        out.extend_from_slice(&ping_packet);
        timed(&mut c, &out, deadline, "PINGRESP", |p| {
            matches!(p, Packet::PingResp)
        })?;
    }

    let mut ping = Vec::with_capacity(rounds as usize);
    for _ in 0..rounds {
        out.clear();
        out.extend_from_slice(&ping_packet);
        ping.push(timed(&mut c, &out, deadline, "PINGRESP", |p| {
            matches!(p, Packet::PingResp)
        })?);
    }

    let topic = format!("{prefix}/rtt");
    let publish_round =
        |c: &mut Client, qos: QoS, i: u64, out: &mut BytesMut| -> Result<Duration, String> {
            let pid = (i % 65535 + 1) as u16;
            out.clear();
            wire::publish(
                out,
                version,
                qos,
                topic.as_bytes(),
                pid,
                Header {
                    publisher: 0,
                    seq: i,
                    sent_ns: 0,
                },
                opts.size,
            );
            let t = Instant::now();
            c.send(out).map_err(|e| e.to_string())?;
            if qos == QoS::AtLeastOnce {
                expect(
                    c,
                    deadline,
                    "PUBACK",
                    |p| matches!(p, Packet::PubAck(a) if a.packet_id == pid),
                )?;
            } else {
                expect(
                    c,
                    deadline,
                    "PUBREC",
                    |p| matches!(p, Packet::PubRec(a) if a.packet_id == pid),
                )?;
                out.clear();
                wire::ack(out, 0x62, pid);
                c.send(out).map_err(|e| e.to_string())?;
                expect(
                    c,
                    deadline,
                    "PUBCOMP",
                    |p| matches!(p, Packet::PubComp(a) if a.packet_id == pid),
                )?;
            }
            Ok(t.elapsed())
        };
    let mut qos1 = Vec::with_capacity(rounds as usize);
    for i in 0..rounds {
        qos1.push(publish_round(&mut c, QoS::AtLeastOnce, i, &mut out)?);
    }
    let mut qos2 = Vec::with_capacity(rounds as usize);
    for i in 0..rounds {
        qos2.push(publish_round(&mut c, QoS::ExactlyOnce, i, &mut out)?);
    }

    // A new filter each round, so every SUBSCRIBE changes the routes (with more than one
    // shard, announced to the others before the SUBACK); each is removed again, timed
    // separately.
    let mut subscribe = Vec::with_capacity(rounds as usize);
    let mut unsubscribe = Vec::with_capacity(rounds as usize);
    for i in 0..rounds {
        let pid = (i % 65535 + 1) as u16;
        let filter = format!("{prefix}/rtt/sub/{i}");
        out.clear();
        wire::subscribe_id(&mut out, version, &filter, QoS::AtLeastOnce, pid);
        subscribe.push(timed(
            &mut c,
            &out,
            deadline,
            "SUBACK",
            |p| matches!(p, Packet::SubAck(a) if a.packet_id == pid && a.codes == [1]),
        )?);
        out.clear();
        wire::unsubscribe(&mut out, version, &filter, pid);
        unsubscribe.push(timed(
            &mut c,
            &out,
            deadline,
            "UNSUBACK",
            |p| matches!(p, Packet::UnsubAck(a) if a.packet_id == pid),
        )?);
    }

    let mut connect = Vec::with_capacity(rounds as usize);
    for i in 0..rounds {
        let t = Instant::now();
        let mut other = Client::connect(addr, &transport, version, &format!("{id}-c{i}"), deadline)
            .map_err(|e| e.to_string())?;
        connect.push(t.elapsed());
        other.disconnect();
    }
    Ok(RttReport {
        scenario: "rtt",
        broker: addr.to_string(),
        transport: transport.kind,
        mqtt_version: if version == ProtocolVersion::V5 { 5 } else { 3 },
        settle_s: opts.settle.max(0.0),
        ping: summarise(ping),
        qos1: summarise(qos1),
        qos2: summarise(qos2),
        subscribe: summarise(subscribe),
        unsubscribe: summarise(unsubscribe),
        connect: summarise(connect),
    })
}
