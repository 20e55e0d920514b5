//! One client connection of a worker: its socket (with the TLS / WebSocket layers of its
//! [`Link`]), buffers, MQTT state and role.
//!
//! Owns: the handshake (CONNECT → CONNACK → SUBSCRIBE → SUBACK; the TLS handshake and the
//! WebSocket upgrade, if any, happen underneath, inside the link), the QoS 1/2 flows on both
//! sides, and the publisher's pump (what to send now, under the window and the socket's
//! back-pressure). Buffers are reused for the life of the connection.
//! Must never: block (the socket is non-blocking) or allocate per message.

use std::io;

use bytes::BytesMut;
use mio::net::TcpStream;
use shardmq::codec::{decode, Packet, ProtocolVersion, QoS};

use crate::payload::Header;
use crate::schedule::{Due, Schedule};
use crate::stats::{self, Hist};
use crate::track::{Arrival, Streams};
use crate::transport::Link;
use crate::wire;

/// Stop encoding new publishes while this much is waiting for the socket.
const WBUF_HIGH: usize = 64 * 1024;
/// Most publishes one pump call encodes (fairness between connections).
const BATCH: usize = 256;

/// Where the connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Connecting,
    AwaitConnAck,
    AwaitSubAck,
    Ready,
    Closed,
}

/// The publishing side of a client.
#[derive(Debug)]
pub struct Pub {
    pub id: u32,
    pub topic: Vec<u8>,
    pub seq: u64,
    pub inflight: u32,
    pub next_pid: u16,
    pub done: bool,
}

/// What the worker's per-thread counters and histograms need from a delivery.
pub struct Sink<'a> {
    pub hist: &'a mut Hist,
    pub connack: &'a mut Hist,
    /// Only messages stamped at or after this time are measured.
    pub measure_from_ns: u64,
    pub received: u64,
    pub measured: u64,
    pub foreign: u64,
    pub last_rx_ns: u64,
    /// Set when a connection became ready (CONNACK, and SUBACK for subscribers).
    pub became_ready: u32,
    /// CONNACKs over a TLS session that was resumed.
    pub tls_resumed: u64,
}

/// What a pump call left the publisher doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pump {
    /// It could send more right away.
    Busy,
    /// It waits for acks, the socket, or the time in `Some(t)`.
    Wait(Option<u64>),
    /// Its schedule ended with this call.
    Finished,
    /// Nothing to do (not a publisher, not ready, or done before).
    Idle,
}

/// One connection.
pub struct Conn {
    /// The socket and the transport layers above it.
    pub link: Link<TcpStream>,
    pub state: State,
    pub client_id: String,
    pub connect_ns: u64,
    pub rbuf: BytesMut,
    pub wbuf: BytesMut,
    pub publish: Option<Pub>,
    pub subscribe: Option<String>,
    pub streams: Streams,
    pub window: u32,
}

impl Conn {
    /// Writes as much of the output buffer as the socket takes (through the link's layers).
    pub fn flush(&mut self) -> io::Result<()> {
        if self.state == State::Connecting {
            // Not connected yet: the link's first bytes (ClientHello, upgrade request) wait.
            return Ok(());
        }
        self.link.flush(&mut self.wbuf)
    }

    /// The socket became writable: finish connecting (sends CONNECT), then flush.
    pub fn on_writable(&mut self, version: ProtocolVersion) -> io::Result<()> {
        if self.state == State::Connecting {
            if let Some(e) = self.link.sock.take_error()? {
                return Err(e);
            }
            match self.link.sock.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(e),
            }
            let _ = self.link.sock.set_nodelay(true);
            wire::connect(&mut self.wbuf, version, &self.client_id);
            self.state = State::AwaitConnAck;
        }
        self.flush()
    }

    /// Reads everything available and handles each packet.
    pub fn on_readable(
        &mut self,
        version: ProtocolVersion,
        qos: QoS,
        scratch: &mut [u8],
        sink: &mut Sink<'_>,
        now: impl Fn() -> u64,
    ) -> io::Result<()> {
        loop {
            match self.link.read_some(scratch, &mut self.rbuf) {
                Ok(n) => {
                    let t = now();
                    self.handle_packets(version, qos, sink, t)?;
                    if n < scratch.len() {
                        // Most likely drained; the next read would say WouldBlock anyway.
                        continue;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.flush()
    }

    fn handle_packets(
        &mut self,
        version: ProtocolVersion,
        qos: QoS,
        sink: &mut Sink<'_>,
        now: u64,
    ) -> io::Result<()> {
        loop {
            let packet = match decode(&mut self.rbuf, version, usize::MAX) {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => return Err(io::Error::other(format!("bad packet from broker: {e:?}"))),
            };
            match packet {
                Packet::ConnAck(a) => {
                    if a.code != 0 {
                        return Err(io::Error::other(format!("CONNACK refused: {}", a.code)));
                    }
                    stats::record(sink.connack, now.saturating_sub(self.connect_ns));
                    if self.link.tls_resumed() {
                        sink.tls_resumed += 1;
                    }
                    if let Some(r) = a.properties.receive_maximum {
                        self.window = self.window.min(u32::from(r.max(1)));
                    }
                    match &self.subscribe {
                        Some(f) => {
                            wire::subscribe(&mut self.wbuf, version, f, qos);
                            self.state = State::AwaitSubAck;
                        }
                        None => {
                            self.state = State::Ready;
                            sink.became_ready += 1;
                        }
                    }
                }
                Packet::SubAck(s) => {
                    if s.codes.iter().any(|c| *c >= 0x80) {
                        return Err(io::Error::other(format!(
                            "SUBACK refused {:?}: {:?}",
                            self.subscribe, s.codes
                        )));
                    }
                    self.state = State::Ready;
                    sink.became_ready += 1;
                }
                Packet::Publish(p) => {
                    sink.received += 1;
                    match Header::parse(&p.payload) {
                        Some(h) => {
                            if self.streams.record(h.publisher, h.seq) == Arrival::New
                                && h.sent_ns >= sink.measure_from_ns
                            {
                                stats::record(sink.hist, now.saturating_sub(h.sent_ns));
                                sink.measured += 1;
                                sink.last_rx_ns = now;
                            }
                        }
                        None => sink.foreign += 1,
                    }
                    match (p.qos, p.packet_id) {
                        (QoS::AtLeastOnce, Some(id)) => wire::ack(&mut self.wbuf, wire::PUBACK, id),
                        (QoS::ExactlyOnce, Some(id)) => wire::ack(&mut self.wbuf, wire::PUBREC, id),
                        _ => {}
                    }
                }
                Packet::PubRel(r) => wire::ack(&mut self.wbuf, wire::PUBCOMP, r.packet_id),
                Packet::PubAck(_) | Packet::PubComp(_) => {
                    if let Some(p) = &mut self.publish {
                        p.inflight = p.inflight.saturating_sub(1);
                    }
                }
                Packet::PubRec(r) => wire::ack(&mut self.wbuf, wire::PUBREL, r.packet_id),
                Packet::Disconnect(d) => {
                    return Err(io::Error::other(format!(
                        "DISCONNECT from broker: {}",
                        d.reason
                    )))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Encodes the publishes due now (open loop or unlimited) and flushes.
    pub fn pump(
        &mut self,
        version: ProtocolVersion,
        qos: QoS,
        size: usize,
        schedule: &Schedule,
        now: impl Fn() -> u64,
    ) -> io::Result<Pump> {
        let Some(p) = &mut self.publish else {
            return Ok(Pump::Idle);
        };
        if self.state != State::Ready || p.done {
            return Ok(Pump::Idle);
        }
        let mut result = Pump::Wait(None);
        let mut t = now();
        for _ in 0..BATCH {
            if qos != QoS::AtMostOnce && p.inflight >= self.window {
                break;
            }
            if self.wbuf.len() >= WBUF_HIGH {
                break;
            }
            match schedule.due(p.seq, t) {
                Due::Done => {
                    p.done = true;
                    result = Pump::Finished;
                    break;
                }
                Due::At(at) => {
                    result = Pump::Wait(Some(at));
                    break;
                }
                Due::Send(stamp) => {
                    let pid = if qos == QoS::AtMostOnce {
                        0
                    } else {
                        p.next_pid = p.next_pid.checked_add(1).unwrap_or(1);
                        p.inflight += 1;
                        p.next_pid
                    };
                    let header = Header {
                        publisher: p.id,
                        seq: p.seq,
                        sent_ns: stamp,
                    };
                    wire::publish(&mut self.wbuf, version, qos, &p.topic, pid, header, size);
                    p.seq += 1;
                    result = Pump::Busy;
                    t = now();
                }
            }
        }
        let window_full = qos != QoS::AtMostOnce && p.inflight >= self.window;
        self.flush()?;
        if result == Pump::Busy && (window_full || self.wbuf.len() >= WBUF_HIGH) {
            result = Pump::Wait(None);
        }
        Ok(result)
    }
}
