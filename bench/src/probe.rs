//! The `window` probe: how many QoS 1 messages a broker sends a subscriber that acknowledges
//! none of them — the broker's real in-flight window towards a client, whatever its
//! configuration claims. The suite runs it against every broker before it compares them,
//! because a window bounds a single subscriber's rate (rumqttd 0.20 ignores
//! `max_inflight_count` for this and always allows 100).
//!
//! Owns: one blocking subscriber and one blocking publisher connection for the probe's life
//! (over the transport the options ask for, like every scenario).
//! Must never: acknowledge a delivery on the subscriber (that is what it measures), or run
//! longer than `--timeout`.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use serde::Serialize;
use shardmq::codec::{decode, Packet, ProtocolVersion, QoS};

use crate::cli::Opts;
use crate::payload::Header;
use crate::transport::{Link, Transport, TransportCfg};
use crate::wire;

/// How long the subscriber must stay silent, after every publish was acknowledged, before the
/// count is final. A broker that still has messages to send and room in its window sends them
/// within microseconds on loopback; it is the end of a measurement, not a wait for an event.
const QUIET: Duration = Duration::from_millis(500);

/// Messages published when `--count` is not given: well above any usual window.
pub const DEFAULT_COUNT: u64 = 1000;

/// What the probe found.
#[derive(Debug, Clone, Serialize)]
pub struct WindowReport {
    pub scenario: &'static str,
    pub broker: String,
    pub transport: Transport,
    pub mqtt_version: u8,
    /// QoS 1 messages published (every one acknowledged by the broker).
    pub sent: u64,
    /// PUBLISHes the subscriber received without acknowledging any.
    pub window: u64,
    /// True when the subscriber received every message: the window is at least `sent`.
    pub unbounded: bool,
}

impl WindowReport {
    /// The human summary line.
    pub fn summary(&self) -> String {
        if self.unbounded {
            format!(
                "window: no limit seen (all {} unacknowledged QoS 1 messages were sent)\n",
                self.sent
            )
        } else {
            format!(
                "window: {} (the broker sent {} of {} QoS 1 messages to a subscriber that acknowledged none)\n",
                self.window, self.window, self.sent
            )
        }
    }
}

/// A blocking MQTT connection with a read buffer, enough for the probes (`window`, `rtt`)
/// and the `--tls-resume` warm-up; over TCP, TLS, WebSocket or both, as `transport` says.
pub(crate) struct Client {
    link: Link<TcpStream>,
    rbuf: BytesMut,
    /// MQTT bytes not yet through the link (held back until the TLS handshake or the
    /// WebSocket upgrade is done).
    out: BytesMut,
    scratch: Vec<u8>,
    version: ProtocolVersion,
}

impl Client {
    pub(crate) fn connect(
        addr: SocketAddr,
        transport: &TransportCfg,
        version: ProtocolVersion,
        id: &str,
        deadline: Instant,
    ) -> io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, left(deadline)?)?;
        stream.set_nodelay(true)?;
        let mut c = Client {
            link: transport.link(stream)?,
            rbuf: BytesMut::with_capacity(64 * 1024),
            out: BytesMut::new(),
            scratch: vec![0; 64 * 1024],
            version,
        };
        let mut out = BytesMut::new();
        wire::connect(&mut out, version, id);
        c.send(&out)?;
        match c.next(deadline)? {
            Some(Packet::ConnAck(a)) if a.code == 0 => Ok(c),
            other => Err(io::Error::other(format!("expected CONNACK, got {other:?}"))),
        }
    }

    /// Sends `bytes` (whole once the transport's handshakes are done: until then they wait,
    /// and [`Client::next`] sends them).
    pub(crate) fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.extend_from_slice(bytes);
        self.link.flush(&mut self.out)
    }

    /// Sends DISCONNECT and closes the transport's layers; errors are ignored (the
    /// connection is being dropped).
    pub(crate) fn disconnect(&mut self) {
        wire::disconnect(&mut self.out, self.version);
        let _ = self.link.close(&mut self.out);
    }

    /// The next packet, or `None` when nothing arrives before `deadline`.
    pub(crate) fn next(&mut self, deadline: Instant) -> io::Result<Option<Packet>> {
        loop {
            match decode(&mut self.rbuf, self.version, usize::MAX) {
                Ok(Some(p)) => return Ok(Some(p)),
                Ok(None) => {}
                Err(e) => return Err(io::Error::other(format!("bad packet from broker: {e:?}"))),
            }
            let Some(wait) = deadline.checked_duration_since(Instant::now()) else {
                return Ok(None);
            };
            self.link
                .sock
                .set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
            match self.link.read_some(&mut self.scratch, &mut self.rbuf) {
                // A read can leave things to send: handshake messages, pongs, MQTT bytes
                // held back until the upgrade.
                Ok(_) => self.link.flush(&mut self.out)?,
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            }
        }
    }
}

pub(crate) fn left(deadline: Instant) -> io::Result<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "probe timed out"))
}

/// Runs the probe `opts` describes (`window` scenario): `--count` messages (default 1000).
pub fn window(opts: &Opts) -> Result<WindowReport, String> {
    let deadline = Instant::now() + Duration::from_secs_f64(opts.timeout);
    let addr: SocketAddr = (opts.host.as_str(), opts.port)
        .to_socket_addrs()
        .map_err(|e| format!("resolving {}: {e}", opts.host))?
        .next()
        .ok_or_else(|| format!("no address for {}", opts.host))?;
    let version = opts.version();
    let count = opts.count.unwrap_or(DEFAULT_COUNT);
    let prefix = opts
        .prefix
        .clone()
        .unwrap_or_else(|| format!("bench/{}", std::process::id()));
    let topic = format!("{prefix}/window");
    let id = format!("shardmq-bench-{}-window", std::process::id());
    let fail = |what: &str, e: io::Error| format!("window probe: {what}: {e}");
    let transport = TransportCfg::from_opts(opts)?;

    let mut sub = Client::connect(addr, &transport, version, &format!("{id}-sub"), deadline)
        .map_err(|e| fail("subscriber connect", e))?;
    let mut out = BytesMut::new();
    wire::subscribe(&mut out, version, &topic, QoS::AtLeastOnce);
    sub.send(&out).map_err(|e| fail("subscribe", e))?;
    match sub.next(deadline).map_err(|e| fail("subscribe", e))? {
        Some(Packet::SubAck(s)) if s.codes.iter().all(|c| *c == 1) => {}
        other => {
            return Err(format!(
                "window probe: expected SUBACK granting QoS 1, got {other:?}"
            ))
        }
    }

    let mut publisher = Client::connect(addr, &transport, version, &format!("{id}-pub"), deadline)
        .map_err(|e| fail("publisher connect", e))?;
    out.clear();
    for seq in 0..count {
        let header = Header {
            publisher: 0,
            seq,
            sent_ns: 0,
        };
        let packet_id = (seq % u64::from(u16::MAX)) as u16 + 1;
        wire::publish(
            &mut out,
            version,
            QoS::AtLeastOnce,
            topic.as_bytes(),
            packet_id,
            header,
            opts.size,
        );
    }
    publisher.send(&out).map_err(|e| fail("publish", e))?;
    let mut acked = 0;
    while acked < count {
        match publisher.next(deadline).map_err(|e| fail("publish", e))? {
            Some(Packet::PubAck(_)) => acked += 1,
            Some(_) => {}
            None => {
                return Err(format!(
                    "window probe: {acked} of {count} publishes acknowledged before the timeout"
                ))
            }
        }
    }

    let mut received = 0;
    loop {
        let quiet_until = (Instant::now() + QUIET).min(deadline);
        match sub.next(quiet_until).map_err(|e| fail("subscriber", e))? {
            Some(Packet::Publish(p)) if p.qos == QoS::AtLeastOnce => received += 1,
            Some(other) => {
                return Err(format!(
                    "window probe: unexpected packet to the subscriber: {other:?}"
                ))
            }
            None => break,
        }
    }
    Ok(WindowReport {
        scenario: "window",
        broker: format!("{}:{}", opts.host, opts.port),
        transport: transport.kind,
        mqtt_version: opts.mqtt_version,
        sent: count,
        window: received,
        unbounded: received >= count,
    })
}
