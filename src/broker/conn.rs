//! Connections: the per-shard accept loop, the CONNECT handshake with the hand-over to the
//! client's home shard, and the task that drives one client connection.
//!
//! Owns: sockets. A connection task reads bytes, decodes packets with the pure codec,
//! hands them to its shard, and writes whatever the shard queued on its `Link`, in one
//! write per wake-up. Runs on the shard that serves the client: its home shard, or with
//! `shards.clean_sessions = "accepting"` the one that accepted a client whose session ends
//! with the connection.
//! Must never: interpret MQTT beyond framing and CONNECT (the session does that), hold a
//! shard borrow across an await, or panic on anything a peer sends.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::codec::{
    self, ConnAck, Connect, DecodeError, Disconnect, Packet, Props, ProtocolVersion, Str,
};
use crate::config::CleanSessionPlacement;
use crate::home_shard;
use crate::session::CloseReason;
use shardmq_shards::rt::{self, spawn_local};
use shardmq_shards::sockio::{Listener, Socket};

use super::budget::InputBudget;
use super::bufpool;
use super::handover::Mark;
use super::link::Link;
use super::msg::{Adopt, ShardMsg};
use super::race::{either, or_timeout, Either};
use super::shard::{Refusal, Shard};
use super::slots::ConnSlot;
use super::stream::{self, ListenerKind, Stream};
use super::warned::Warned;

/// Bytes asked of one read: starts small (an idle connection holds little memory), doubles
/// while reads fill it, halves when they come back mostly empty. Larger packets are
/// assembled over several reads. (Reading into a per-shard scratch buffer and copying out
/// saved another 0.5 KB per idle connection but cost 2-4 % of QoS 1 fan-in throughput.)
const MIN_READ_CHUNK: usize = 512;
const MAX_READ_CHUNK: usize = 64 * 1024;
/// Output is written in slices of at most this many bytes (see `drive`).
const WRITE_SLICE: usize = 64 * 1024;

/// How long a takeover waits for the old connection to handle what its socket holds (it may
/// be stuck writing to a client that stopped reading).
const TAKEOVER_DRAIN_WAIT: Duration = Duration::from_millis(100);

/// A connection handles at least this many packets per turn (see [`batch_packets`]), then
/// writes its output and lets the shard's other tasks run (the subscribers whose acks drain
/// the queues, the inbox that may carry a `SlowDown`).
const BATCH_PACKETS: usize = 32;
/// ... and at most this many, whatever the inflight window.
const MAX_BATCH_PACKETS: usize = 256;

/// Packets a connection handles per turn: a whole inflight window (`mqtt.max_inflight`, at
/// least [`BATCH_PACKETS`]), so that a subscriber's acknowledgements of one turn release a
/// window of messages into one write (fan-out 1→16 with `max_inflight = 100` on the 2-vCPU
/// VM: 1.0 M msgs/s at 32 packets a turn, 1.7 M at 128), while the default window keeps turns
/// short for flow control, which acts between turns on other shards.
fn batch_packets(shard: &Shard) -> usize {
    usize::from(shard.cfg.mqtt.max_inflight).clamp(BATCH_PACKETS, MAX_BATCH_PACKETS)
}

/// Accepts connections on this shard's `SO_REUSEPORT` listener of this kind until shutdown.
/// Over the listener's `max_connections` (all shards together) a connection is closed at
/// once, without reading its CONNECT, and counted.
pub async fn accept_loop(shard: Rc<Shard>, listener: Listener, kind: ListenerKind) {
    let mut over_cap = Warned::default();
    let mut failed = Warned::default();
    let slots = shard.listener_slots[kind as usize].clone();
    loop {
        let accepted = listener.accept().await.and_then(|conn| {
            let Some(slot) = slots.try_take() else {
                shard.metrics.borrow_mut().connections_refused_over_cap += 1;
                over_cap.warn(|more| {
                    tracing::warn!(
                        shard = shard.id,
                        "refusing connections: listeners.{}.max_connections ({}) reached ({more} more since the last warning)",
                        kind.name(),
                        slots.max()
                    )
                });
                return Ok(None); // dropping the descriptor closes the connection
            };
            let Some(peer) = conn.peer else {
                return Ok(None); // not an IP peer: nothing this listener serves
            };
            conn.register().map(|s| Some((s, peer, slot)))
        });
        match accepted {
            Ok(Some((stream, peer, slot))) => {
                let shard = shard.clone();
                spawn_local(async move { handshake(shard, stream, peer, slot, kind).await })
                    .detach();
            }
            Ok(None) => {}
            Err(e) => {
                // E.g. out of file descriptors: the connection waits in the listen queue; the
                // alarm monitor raises `accept_failed` from the count.
                shard.metrics.borrow_mut().accept_failures += 1;
                failed.warn(|more| {
                    tracing::warn!(
                        shard = shard.id,
                        "accept failed: {e} ({more} more since the last warning)"
                    )
                });
                rt::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Runs the listener's TLS / WebSocket handshake, reads the CONNECT, then serves the
/// connection here (its home, or see `shards.clean_sessions`) or hands it to its home shard.
async fn handshake(
    shard: Rc<Shard>,
    socket: Socket,
    peer: SocketAddr,
    slot: ConnSlot,
    kind: ListenerKind,
) {
    let mut buf = BytesMut::new();
    let idle = Duration::from_secs(shard.cfg.mqtt.idle_timeout.max(1));
    let mut stream = if kind == ListenerKind::Tcp {
        Stream::plain(socket)
    } else {
        let settings = shard.handshake_settings(kind);
        match or_timeout(stream::open(socket, &settings, &mut buf), idle).await {
            Some(Ok(s)) => s,
            failed => {
                // A bad handshake (plain MQTT to a TLS port, a foreign certificate, a wrong
                // WebSocket key, silence) ends this connection only.
                let why = match failed {
                    Some(Err(e)) => e.to_string(),
                    _ => "timed out".to_string(),
                };
                shard.metrics.borrow_mut().handshake_failures += 1;
                tracing::debug!(%peer, listener = kind.protocol(), "handshake failed: {why}");
                return;
            }
        }
    };
    let first = or_timeout(read_first_packet(&shard, &mut stream, &mut buf), idle).await;
    if let Some(Ok(packet)) = &first {
        shard.metrics.borrow_mut().count_received(packet);
    }
    let mut connect = match first {
        Some(Ok(Packet::Connect(c))) => own_strings(*c),
        Some(Err(ConnectError::UnsupportedVersion)) => {
            // CONNACK 0x01 "unacceptable protocol version" [MQTT-3.1.2-2].
            let ack = Packet::ConnAck(ConnAck {
                session_present: false,
                code: 1,
                properties: Props::default(),
            });
            let mut out = BytesMut::new();
            if codec::encode(&ack, ProtocolVersion::V311, &mut out).is_ok() {
                shard.metrics.borrow_mut().count_sent(&ack, out.len());
                let _ = stream.write_all(&out).await;
            }
            return;
        }
        Some(Err(ConnectError::Invalid(ProtocolVersion::V5, e))) => {
            // A 5.0 client is told why [MQTT-4.13.1-1] (CONNACK with the reason code).
            let ack = Packet::ConnAck(ConnAck {
                session_present: false,
                code: e.reason_code(),
                properties: Props::default(),
            });
            let mut out = BytesMut::new();
            if codec::encode(&ack, ProtocolVersion::V5, &mut out).is_ok() {
                shard.metrics.borrow_mut().count_sent(&ack, out.len());
                let _ = stream.write_all(&out).await;
            }
            return;
        }
        _ => return, // timeout, socket error, malformed, or a first packet other than CONNECT
    };
    // 5.0 enhanced authentication is not served: a CONNECT that asks for it is refused with
    // 0x8C "bad authentication method" [MQTT-4.12.0-1].
    if connect.protocol == ProtocolVersion::V5 && connect.properties.authentication_method.is_some()
    {
        refuse(
            &shard,
            &mut stream,
            connect.protocol,
            Refusal::BadAuthenticationMethod,
        )
        .await;
        return;
    }
    bufpool::give(&mut buf);
    // `peer_cert_as_username = cn`: the client certificate's CN is the username (EMQ X).
    if kind.uses_tls() && shard.cert_cn_is_username(kind) {
        if let Some(cn) = stream.peer_common_name() {
            connect.username = Some(Str::from(cn.as_str()));
        }
    }
    if connect.client_id.len() > usize::from(shard.cfg.mqtt.max_clientid_len) {
        // Only ids the client chose are limited; an assigned one (below) may be longer.
        refuse(
            &shard,
            &mut stream,
            connect.protocol,
            Refusal::IdentifierRejected,
        )
        .await;
        return;
    }
    let assigned_id = connect.client_id.is_empty();
    if assigned_id {
        if !connect.clean_start && connect.protocol != ProtocolVersion::V5 {
            // 3.1.1: an empty id needs a clean session [MQTT-3.1.3-8]: CONNACK 0x02. (5.0
            // dropped the rule: the client gets an assigned id either way.)
            refuse(
                &shard,
                &mut stream,
                connect.protocol,
                Refusal::IdentifierRejected,
            )
            .await;
            return;
        }
        connect.client_id = shard.assign_client_id();
    }
    // A 5.0 client keeps alive at most at the server's pace when `mqtt.server_keepalive` is
    // set (CONNACK tells it so).
    if connect.protocol == ProtocolVersion::V5 {
        if let Some(imposed) = shard.cfg.mqtt.imposed_keepalive(connect.keep_alive) {
            connect.keep_alive = imposed;
        }
    }
    // With `shards.clean_sessions = "accepting"`, a client that needs no session but its
    // own (`session::self_contained`) is served where it was accepted (the home shard's directory learns of it, see
    // `Shard::connect_client`); any other on its home shard.
    let home = home_shard(&connect.client_id, shard.shards);
    // What the home shard must have taken over before it serves this CONNECT: the
    // connections already answered on their way there (`handover`). Taken before this
    // connection's own hand-over is counted; a client served where accepted waits for none.
    let at_home = home == shard.id;
    let served_here = at_home
        || (shard.cfg.shards.clean_sessions == CleanSessionPlacement::Accepting
            && crate::session::self_contained(&connect, &shard.policy.borrow().session));
    let after = if served_here && !at_home {
        Mark::none()
    } else {
        shard.handovers.mark(home)
    };
    if served_here {
        serve(
            shard,
            stream,
            connect,
            assigned_id,
            buf,
            peer,
            slot,
            after,
            None,
        )
        .await;
        return;
    }
    // A clean start has no session to present: the accepting shard admits the client and
    // writes its CONNACK, and the home shard takes the connection over while the client
    // reads it (the hand-over, one more executor's wake-up, does not delay the CONNACK).
    // Not with clean sessions served where accepted: a claim of the id could then reach
    // the home shard before an older connection answered here.
    let mut acked = None;
    if connect.clean_start && shard.cfg.shards.clean_sessions == CleanSessionPlacement::Home {
        if let Err(why) = shard.admit(&connect, peer.ip()) {
            refuse(&shard, &mut stream, connect.protocol, why).await;
            return;
        }
        let ack = shard.connack(&connect, assigned_id, false);
        let mut out = BytesMut::new();
        if codec::encode(&ack, connect.protocol, &mut out).is_ok() {
            // Counted before the CONNACK can reach the client, and sent whatever the write
            // does (the home shard finds a closed socket closed).
            shard.handovers.start(shard.id, home);
            shard.metrics.borrow_mut().count_sent(&ack, out.len());
            let _ = stream.write_all(&out).await;
            acked = Some(out.len() as u32);
        }
    }
    let (socket, layer) = stream.detach();
    shard.mesh.send(
        home,
        ShardMsg::Adopt(Box::new(Adopt {
            socket,
            layer,
            connect,
            assigned_id,
            rest: buf,
            peer,
            slot,
            acked,
            from: shard.id,
            after,
        })),
    );
}

/// The CONNECT's strings are slices of the first read buffer; the session keeps some of them
/// for its whole life. Copying them (a few bytes) lets that buffer go, so an idle client
/// holds only what it needs.
fn own_strings(mut c: Connect) -> Connect {
    let own = |s: &Str| Str::from(s.as_str());
    c.client_id = own(&c.client_id);
    c.username = c.username.as_ref().map(own);
    c.password = c.password.as_ref().map(|p| Bytes::copy_from_slice(p));
    if let Some(w) = &mut c.will {
        w.topic = own(&w.topic);
        w.payload = Bytes::copy_from_slice(&w.payload);
    }
    c
}

enum ConnectError {
    UnsupportedVersion,
    /// Not a valid CONNECT, from a client of this protocol (when its first bytes told).
    Invalid(ProtocolVersion, DecodeError),
    Other,
}

async fn read_first_packet(
    shard: &Shard,
    stream: &mut Stream,
    buf: &mut BytesMut,
) -> Result<Packet, ConnectError> {
    // An unauthenticated peer can make us buffer only this much (a CONNECT announcing more
    // is refused as soon as its fixed header arrives).
    let max = shard
        .cfg
        .mqtt
        .max_packet_size
        .min(shard.cfg.mqtt.max_connect_packet_size) as usize;
    loop {
        // Read before decoding: a packet that fails to decode is consumed.
        let version = codec::connect_version(buf);
        match codec::decode(buf, ProtocolVersion::V311, max) {
            Ok(Some(p)) => return Ok(p),
            Ok(None) => {}
            Err(DecodeError::UnsupportedProtocolVersion) => {
                return Err(ConnectError::UnsupportedVersion)
            }
            Err(e) => {
                return Err(match version {
                    Some(v) => ConnectError::Invalid(v, e),
                    None => ConnectError::Other,
                })
            }
        }
        let n = stream
            .read(buf, MIN_READ_CHUNK)
            .await
            .map_err(|_| ConnectError::Other)?;
        if n == 0 {
            return Err(ConnectError::Other);
        }
        let mut m = shard.metrics.borrow_mut();
        m.bytes_received += n as u64;
        stream::count_bytes(&mut m, stream.kind(), n, 0);
    }
}

async fn refuse(shard: &Shard, stream: &mut Stream, version: ProtocolVersion, why: Refusal) {
    let code = match version {
        ProtocolVersion::V5 => match why {
            Refusal::IdentifierRejected => 0x85,
            Refusal::ServerUnavailable => 0x88,
            Refusal::BadCredentials => 0x86,
            Refusal::NotAuthorized => 0x87,
            Refusal::Banned | Refusal::Throttled => 0x8A,
            Refusal::BadAuthenticationMethod => 0x8C,
        },
        _ => why.code_v3(),
    };
    let ack = Packet::ConnAck(ConnAck {
        session_present: false,
        code,
        properties: Props::default(),
    });
    let mut out = BytesMut::new();
    if codec::encode(&ack, version, &mut out).is_ok() {
        shard.metrics.borrow_mut().count_sent(&ack, out.len());
        let _ = stream.write_all(&out).await;
    }
}

/// Serves, on `shard` (its home), a connection another shard accepted: the shard's
/// [`Shard::adopter`].
pub fn adopt(shard: Rc<Shard>, adopt: Adopt) {
    spawn_local(serve_adopted(shard, adopt)).detach();
}

/// Entry point on the home shard for a connection another shard accepted.
async fn serve_adopted(shard: Rc<Shard>, adopt: Adopt) {
    // A connection answered before its hand-over lands when it is served or refused here.
    let acked = adopt.acked.map(|bytes| Acked {
        bytes,
        landing: Landing {
            shard: shard.clone(),
            from: adopt.from,
        },
    });
    let stream = match Stream::attach(adopt.socket, adopt.layer) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("adopting a connection failed: {e}");
            return;
        }
    };
    serve(
        shard,
        stream,
        adopt.connect,
        adopt.assigned_id,
        adopt.rest,
        adopt.peer,
        adopt.slot,
        adopt.after,
        acked,
    )
    .await;
}

/// A hand-over answered by its accepting shard: lands (see `handover`) when dropped, on
/// every path that serves or refuses it.
struct Landing {
    shard: Rc<Shard>,
    from: usize,
}

impl Drop for Landing {
    fn drop(&mut self) {
        self.shard.land_handover(self.from);
    }
}

/// The accepting shard admitted a connection it handed over and wrote its CONNACK.
struct Acked {
    /// The CONNACK's size.
    bytes: u32,
    /// Lands the hand-over once served (see `handover`).
    landing: Landing,
}

/// Accepts (or refuses) a client's CONNECT on the shard that serves it, then runs the connection as a
/// task of its own: the handshake's state (the CONNECT, its timers, the hand-over) is freed,
/// and a connected client holds only the small [`run`] future. Served once the hand-overs
/// `after` counts have landed here; `acked` when the accepting shard answered the CONNECT.
#[allow(clippy::too_many_arguments)] // the parts of one hand-over, named
async fn serve(
    shard: Rc<Shard>,
    mut stream: Stream,
    connect: Connect,
    assigned_id: bool,
    buf: BytesMut,
    peer: SocketAddr,
    slot: ConnSlot,
    after: Mark,
    acked: Option<Acked>,
) {
    shard.after_handovers(&after).await;
    drop(after);
    // Takeover: what the old connection's client sent before it reconnected (acks above
    // all) is still in that socket; let the old connection handle it while it owns the
    // session, so that the new one is not sent again what was already acknowledged.
    if let Some(old) = shard.live_link(&connect.client_id) {
        old.ask_drain();
        let _ = or_timeout(old.wait_drained(), TAKEOVER_DRAIN_WAIT).await;
    }
    let link = match shard.connect_client(&connect, peer, assigned_id, acked.is_some()) {
        Ok(link) => link,
        // Answered already (CONNACK 0 from the accepting shard): closed, as a live client
        // a new ban matches is.
        Err(_) if acked.is_some() => return,
        Err(why) => {
            refuse(&shard, &mut stream, connect.protocol, why).await;
            return;
        }
    };
    // The CONNECT, and whatever arrived with it, was read before the link existed: count
    // it in the connection's figures (EMQ X's recv_pkt / recv_oct include it).
    let client_id = connect.client_id.clone();
    let version = connect.protocol;
    let connect = Packet::Connect(Box::new(connect));
    link.counters
        .read(codec::encoded_len(&connect, version).unwrap_or(0) + buf.len());
    link.counters.received(&connect);
    if let Some(acked) = acked {
        link.counters.wrote(acked.bytes as usize);
        link.counters.sent();
        drop(acked.landing);
    }
    drop(connect);
    // The home shard of a client served elsewhere is woken after the connection's first
    // turn, which writes the CONNACK: the wake-up (and, on a shared core, the woken shard)
    // does not delay it.
    let claimed = home_shard(&client_id, shard.shards) != shard.id;
    let woken = claimed.then(|| (shard.clone(), client_id.clone()));
    spawn_local(run(shard, stream, link, client_id, buf, slot)).detach();
    if let Some((shard, client_id)) = woken {
        spawn_local(async move { shard.wake_for_claim(&client_id) }).detach();
    }
}

/// Drives one accepted connection until it closes, then tells the shard: the read, decode,
/// dispatch and write loop.
///
/// Every idle connection's task is this future, so it holds only what an idle connection
/// waits with: its arguments (an `async` block, not an `async fn`, which would keep them
/// twice), the read size and the input on the budget's books. The rare or long waits (a
/// write the socket did not take at once, flow control, mesh congestion, the ending) live
/// on the heap while they run.
#[allow(clippy::manual_async_fn)] // on purpose: see above
fn run(
    shard: Rc<Shard>,
    mut stream: Stream,
    link: Rc<Link>,
    client_id: Str,
    mut buf: BytesMut,
    slot: ConnSlot,
) -> impl std::future::Future<Output = ()> {
    async move {
        let mut chunk = MIN_READ_CHUNK as u32;
        // Bytes of `buf` on the books of the shard's input budget (at most one packet, which
        // `max_packet_size` bounds below 2^28).
        let mut counted = 0u32;
        let reason = loop {
            let max = shard.cfg.mqtt.max_packet_size as usize;
            if link.drain_asked() {
                drain(&shard, &mut stream, &link, &client_id, &mut buf, max);
                link.drained();
            }
            // Dispatch the complete packets already buffered, at most `batch` per turn;
            // the rest stays buffered until the next turn.
            let clock = shard.batch_clock();
            shard.arrival.set(stream.received_at());
            let batch = batch_packets(&shard);
            // A full turn: more may be buffered (only this flag outlives the turn's awaits).
            let full = dispatch(&shard, &link, &client_id, &mut buf, max, batch, true) == batch;
            // The batch's time must not outlive it: the write below may wait.
            drop(clock);
            // Durability: the acknowledgements of this batch go out once the records their
            // messages caused are written, here and on the shards they went to (`persist`).
            if let Some(written) = shard.durability_wait() {
                written.await;
            }
            if InputBudget::<()>::must_report(buf.len(), counted as usize) {
                counted = booked(shard.hold_input(&link, buf.len()));
            }
            // Write everything queued for this client in one go: at once when the socket
            // takes it, else on the heap until it has.
            match write_now(&shard, &mut stream, &link, &client_id) {
                Written::All => {}
                Written::Failed => {
                    break link.close_reason().unwrap_or(CloseReason::SocketClosed);
                }
                Written::Blocked(out, at) => {
                    let rest = write_rest(&shard, &mut stream, &link, &client_id, out, at);
                    if Box::pin(rest).await.is_err() {
                        break link.close_reason().unwrap_or(CloseReason::SocketClosed);
                    }
                }
            }
            if let Some(reason) = link.close_reason() {
                break reason;
            }
            // Fairness: glommio reads without yielding while the socket has data, so a busy
            // publisher would keep its shard until its socket is empty. After a batch, let the
            // shard's other connections (e.g. the subscribers whose acks drain the queues) run.
            if full {
                futures_lite::future::yield_now().await;
            }
            if link.pending() > 0 {
                continue;
            }
            // Flow control: this client fed backlogged subscribers; wait until each of them
            // drained, stalled or left (`flow::MAX_PAUSE` is only a safety net) before handling
            // more of its input.
            if link.is_throttled() {
                Box::pin(wait_unthrottled(&shard, &link)).await;
                continue;
            }
            if full {
                continue; // more may be buffered: handle it before reading
            }
            // Going idle: the read buffer goes back to the shard's pool, so that an idle
            // connection holds none (a partly read packet stays).
            bufpool::give(&mut buf);
            // Back-pressure: while a peer's outbox is over its mark, stop reading input.
            if shard.mesh.congested() {
                Box::pin(shard.mesh.wait_uncongested()).await;
            }
            match either(stream.read(&mut buf, chunk as usize), link.wait()).await {
                Either::Left(Ok(0)) | Either::Left(Err(_)) => {
                    break link.close_reason().unwrap_or(CloseReason::SocketClosed);
                }
                Either::Left(Ok(n)) => {
                    chunk = next_chunk(chunk, n);
                    let mut m = shard.metrics.borrow_mut();
                    m.bytes_received += n as u64;
                    stream::count_bytes(&mut m, stream.kind(), n, 0);
                    drop(m);
                    link.counters.read(n);
                    if InputBudget::<()>::must_report(buf.len(), counted as usize) {
                        counted = booked(shard.hold_input(&link, buf.len()));
                    }
                }
                Either::Right(()) => {}
            }
        };
        // The ending's futures (a last write, the linger) live on the heap, only while it
        // runs: inline they would make every idle connection's task as large as the largest
        // of them.
        Box::pin(finish(shard, stream, link, client_id, buf, reason)).await;
        drop(slot); // the cap counts this connection until here
    }
}

/// What the input budget booked, as the connection task keeps it.
fn booked(bytes: usize) -> u32 {
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

/// The next read's size after a read of `n` bytes asked for `chunk`: doubles while reads
/// fill it, halves when they come back mostly empty.
fn next_chunk(chunk: u32, n: usize) -> u32 {
    let (min, max) = (MIN_READ_CHUNK as u32, MAX_READ_CHUNK as u32);
    if n == chunk as usize {
        (chunk * 2).min(max)
    } else if n < chunk as usize / 4 {
        (chunk / 2).max(min)
    } else {
        chunk
    }
}

/// What [`write_now`] did with the client's queued output.
enum Written {
    /// All of it went to the socket (or nothing was queued).
    All,
    /// The socket took the first `.1` bytes of `.0` only (a layered stream may also hold
    /// encoded output): [`write_rest`] finishes.
    Blocked(BytesMut, usize),
    /// The socket failed: the connection ends.
    Failed,
}

/// Writes what is queued for the client, without waiting, in slices of at most
/// [`WRITE_SLICE`] bytes, so that flow control sees a slow reader's progress (a write that
/// waited longer than `flow::STALL` looked stalled).
fn write_now(shard: &Shard, stream: &mut Stream, link: &Link, client_id: &Str) -> Written {
    let mut out = BytesMut::new();
    link.take_output(&mut out);
    let mut at = 0;
    while at < out.len() {
        let n = (out.len() - at).min(WRITE_SLICE);
        link.set_writing(out.len() - at);
        let written = stream.try_write(&out[at..at + n]);
        match written {
            Ok(w) => {
                at += w;
                link.set_writing(out.len() - at);
            }
            Err(_) => {
                link.set_writing(0);
                return Written::Failed;
            }
        }
        if link.flow_watched() {
            shard.recheck_backlog(client_id);
        }
        if at < out.len() && (written.is_ok_and(|w| w < n) || stream.has_pending()) {
            return Written::Blocked(out, at);
        }
    }
    if stream.has_pending() {
        // A layer holds output (the tail of the above, a WebSocket pong, a TLS alert).
        return Written::Blocked(out, at);
    }
    wrote(shard, stream, link, out);
    Written::All
}

/// Finishes what [`write_now`] could not: the rest of `out` from `at`, then what a layer
/// holds, waiting for room in the socket.
async fn write_rest(
    shard: &Shard,
    stream: &mut Stream,
    link: &Link,
    client_id: &Str,
    out: BytesMut,
    mut at: usize,
) -> Result<(), ()> {
    while at < out.len() {
        let n = (out.len() - at).min(WRITE_SLICE);
        link.set_writing(out.len() - at);
        let written = stream.write_all(&out[at..at + n]).await;
        at += n;
        link.set_writing(out.len() - at);
        if written.is_err() {
            link.set_writing(0);
            return Err(());
        }
        if link.flow_watched() {
            shard.recheck_backlog(client_id);
        }
    }
    if stream.has_pending() && stream.write_all(&[]).await.is_err() {
        return Err(());
    }
    wrote(shard, stream, link, out);
    Ok(())
}

/// Counts a completed write of `out` and gives its buffer back to the shard's pool.
fn wrote(shard: &Shard, stream: &Stream, link: &Link, mut out: BytesMut) {
    if !out.is_empty() {
        link.counters.wrote(out.len());
        stream::count_bytes(&mut shard.metrics.borrow_mut(), stream.kind(), 0, out.len());
        out.clear();
    }
    bufpool::give(&mut out);
}

/// Ends a connection that [`run`] gave up for `reason`: tells a 5.0 client why, flushes
/// what is queued, and lets the shard close the session's connection.
async fn finish(
    shard: Rc<Shard>,
    mut stream: Stream,
    link: Rc<Link>,
    client_id: Str,
    buf: BytesMut,
    reason: CloseReason,
) {
    shard.input_budget.borrow_mut().release(link.id);
    // A takeover waiting on this connection may go on.
    link.drained();
    // A 5.0 client is told why the server closes [MQTT-4.13.2-1]; 3.x clients just see EOF.
    let mut told = false;
    if link.version == ProtocolVersion::V5 {
        if let Some(code) = reason.disconnect_reason_code() {
            told = true;
            let bye = Packet::Disconnect(Disconnect {
                reason: code,
                properties: Props::default(),
            });
            link.send(&bye, &mut shard.metrics.borrow_mut());
        }
    }
    // Flush what is queued (the DISCONNECT above, a last PUBACK...) before closing.
    let mut out = BytesMut::new();
    link.take_output(&mut out);
    if !out.is_empty() {
        let _ = or_timeout(stream.write_all(&out), Duration::from_secs(1)).await;
    }
    let _ = stream.shutdown_write();
    shard.connection_closed(&client_id, &link, reason);
    if told {
        linger(&mut stream, buf).await;
    }
}

/// After a DISCONNECT the server sent: reads and discards what the client still sends
/// (acknowledgements of what it received before it saw the DISCONNECT) until it closes, for
/// at most [`LINGER`] and [`LINGER_BYTES`]. Closed with input unread, the socket would answer
/// with a reset, which the client may see before the DISCONNECT, or as a failed write.
async fn linger(stream: &mut Stream, mut buf: BytesMut) {
    let deadline = Instant::now() + LINGER;
    let mut discarded = 0;
    while discarded < LINGER_BYTES {
        buf.clear();
        let left = deadline.saturating_duration_since(Instant::now());
        match or_timeout(stream.read(&mut buf, MIN_READ_CHUNK), left).await {
            Some(Ok(n)) if n > 0 => discarded += n,
            _ => return, // EOF, an error, or the time is up
        }
    }
}

/// How long a connection the server ended with a DISCONNECT keeps reading (see [`linger`]).
const LINGER: Duration = Duration::from_secs(1);
/// How much it reads at most meanwhile.
const LINGER_BYTES: usize = 256 * 1024;

/// Flow control holds `link`'s client: waits until every backlog it fed has drained,
/// stalled or ended, or [`super::flow::MAX_PAUSE`] has passed.
async fn wait_unthrottled(shard: &Shard, link: &Link) {
    let until = Instant::now() + super::flow::MAX_PAUSE;
    loop {
        let epoch = shard.flow.epoch();
        if !link.still_throttled(|k| shard.flow.holds(k)) {
            return;
        }
        let left = until.saturating_duration_since(Instant::now());
        if or_timeout(shard.flow.released_after(epoch), left)
            .await
            .is_none()
        {
            link.clear_throttle();
            return;
        }
    }
}

/// A takeover is waiting: read what the socket holds now, without waiting for more, and
/// handle every complete packet regardless of flow control (it is bounded by what the
/// kernel buffered). The caller writes the replies.
fn drain(
    shard: &Rc<Shard>,
    stream: &mut Stream,
    link: &Rc<Link>,
    client_id: &Str,
    buf: &mut BytesMut,
    max: usize,
) {
    loop {
        let n = stream.try_read(buf, MAX_READ_CHUNK);
        if n > 0 {
            let mut m = shard.metrics.borrow_mut();
            m.bytes_received += n as u64;
            stream::count_bytes(&mut m, stream.kind(), n, 0);
            drop(m);
            link.counters.read(n);
        }
        shard.arrival.set(stream.received_at());
        dispatch(shard, link, client_id, buf, max, usize::MAX, false);
        if n < MAX_READ_CHUNK || link.close_reason().is_some() {
            return;
        }
    }
}

/// Decodes and hands to the shard the complete packets in `buf`: at most `limit`, and (when
/// `throttled_stops`) none once this client is throttled, so that flow control acts within a
/// batch. Stops at a malformed packet, closing the connection. Returns how many it handled.
fn dispatch(
    shard: &Rc<Shard>,
    link: &Rc<Link>,
    client_id: &Str,
    buf: &mut BytesMut,
    max: usize,
    limit: usize,
    throttled_stops: bool,
) -> usize {
    let mut dispatched = 0usize;
    while dispatched < limit
        && link.close_reason().is_none()
        && !(throttled_stops && link.is_throttled())
    {
        match codec::decode(buf, link.version, max) {
            Ok(Some(packet)) => {
                dispatched += 1;
                shard.metrics.borrow_mut().count_received(&packet);
                link.counters.received(&packet);
                shard.on_packet(client_id, link.id, packet);
            }
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(client = %client_id, "closing on a malformed packet: {e}");
                link.close(CloseReason::Malformed(e));
                break;
            }
        }
    }
    dispatched
}
