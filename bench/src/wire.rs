//! The bytes the generator sends: PUBLISH and the QoS acks written by hand on the hot path,
//! CONNECT / SUBSCRIBE / UNSUBSCRIBE / DISCONNECT through ShardMQ's codec (set-up and probes).
//!
//! Owns: the hot-path encoders. They append to a reusable buffer and never allocate once the
//! buffer has grown to its working size.
//! Must never: do I/O, or write anything the codec would decode differently (a test checks).

use bytes::{BufMut, BytesMut};
use shardmq::codec::{
    encode, Connect, Disconnect, Packet, ProtocolVersion, QoS, Str, SubOptions, Subscribe,
    Unsubscribe,
};

use crate::payload::Header;

/// Fixed-header first bytes of the acks.
pub const PUBACK: u8 = 0x40;
pub const PUBREC: u8 = 0x50;
pub const PUBREL: u8 = 0x62;
pub const PUBCOMP: u8 = 0x70;

fn varint(out: &mut BytesMut, mut v: usize) {
    loop {
        let mut b = (v % 128) as u8;
        v /= 128;
        if v > 0 {
            b |= 0x80;
        }
        out.put_u8(b);
        if v == 0 {
            break;
        }
    }
}

/// Appends one PUBLISH carrying `header` in a payload of `size` bytes.
pub fn publish(
    out: &mut BytesMut,
    version: ProtocolVersion,
    qos: QoS,
    topic: &[u8],
    packet_id: u16,
    header: Header,
    size: usize,
) {
    let v5 = version == ProtocolVersion::V5;
    let remaining =
        2 + topic.len() + usize::from(qos != QoS::AtMostOnce) * 2 + usize::from(v5) + size;
    out.reserve(5 + remaining);
    out.put_u8(0x30 | ((qos as u8) << 1));
    varint(out, remaining);
    out.put_u16(topic.len() as u16);
    out.extend_from_slice(topic);
    if qos != QoS::AtMostOnce {
        out.put_u16(packet_id);
    }
    if v5 {
        out.put_u8(0); // no properties
    }
    header.write_payload(size, out);
}

/// Appends PUBACK / PUBREC / PUBREL / PUBCOMP (`kind` is the first byte) with reason 0.
pub fn ack(out: &mut BytesMut, kind: u8, packet_id: u16) {
    out.put_u8(kind);
    out.put_u8(2);
    out.put_u16(packet_id);
}

/// Keepalive announced in CONNECT, in seconds. Some brokers (rumqttd) refuse 0. The generator
/// sends no PINGREQ, so a connection must not stay silent longer than this: `--timeout`
/// (default 300 s, which bounds `--hold` too) stays well below it.
pub const KEEPALIVE_S: u16 = 900;

/// Every generated client asks for a persistent session (`--persistent`): clean session 0,
/// and for 5.0 a Session Expiry Interval of an hour. Set once, before any client starts.
pub static PERSISTENT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Appends a CONNECT: a clean session unless [`PERSISTENT`].
pub fn connect(out: &mut BytesMut, version: ProtocolVersion, client_id: &str) {
    let persistent = PERSISTENT.load(std::sync::atomic::Ordering::Relaxed);
    let mut c = Connect {
        protocol: version,
        clean_start: !persistent,
        keep_alive: KEEPALIVE_S,
        client_id: Str::from(client_id),
        ..Connect::default()
    };
    if persistent && version == ProtocolVersion::V5 {
        c.properties.session_expiry_interval = Some(3600);
    }
    encode(&Packet::Connect(Box::new(c)), version, out).expect("CONNECT encodes");
}

/// Appends a SUBSCRIBE of one filter (packet id 1).
pub fn subscribe(out: &mut BytesMut, version: ProtocolVersion, filter: &str, qos: QoS) {
    subscribe_id(out, version, filter, qos, 1);
}

/// Appends a SUBSCRIBE of one filter with the given packet id.
pub fn subscribe_id(
    out: &mut BytesMut,
    version: ProtocolVersion,
    filter: &str,
    qos: QoS,
    packet_id: u16,
) {
    let s = Subscribe {
        packet_id,
        filters: vec![(
            Str::from(filter),
            SubOptions {
                qos,
                ..SubOptions::default()
            },
        )],
        ..Subscribe::default()
    };
    encode(&Packet::Subscribe(s), version, out).expect("SUBSCRIBE encodes");
}

/// Appends an UNSUBSCRIBE of one filter.
pub fn unsubscribe(out: &mut BytesMut, version: ProtocolVersion, filter: &str, packet_id: u16) {
    let u = Unsubscribe {
        packet_id,
        filters: vec![Str::from(filter)],
        ..Unsubscribe::default()
    };
    encode(&Packet::Unsubscribe(u), version, out).expect("UNSUBSCRIBE encodes");
}

/// Appends a normal DISCONNECT.
pub fn disconnect(out: &mut BytesMut, version: ProtocolVersion) {
    encode(&Packet::Disconnect(Disconnect::default()), version, out).expect("DISCONNECT encodes");
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardmq::codec::{decode, PubResp};

    fn resp(id: u16) -> PubResp {
        PubResp::new(id)
    }

    #[test]
    fn hand_written_publish_decodes_with_the_codec() {
        for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                for size in [24, 64, 200, 20_000] {
                    let h = Header {
                        publisher: 3,
                        seq: 42,
                        sent_ns: 99,
                    };
                    let mut b = BytesMut::new();
                    publish(&mut b, version, qos, b"bench/t/3", 7, h, size);
                    let Some(Packet::Publish(p)) = decode(&mut b, version, usize::MAX).unwrap()
                    else {
                        panic!("not a publish");
                    };
                    assert!(b.is_empty());
                    assert_eq!(p.qos, qos);
                    assert_eq!(&*p.topic, "bench/t/3");
                    assert_eq!(p.packet_id, (qos != QoS::AtMostOnce).then_some(7));
                    assert_eq!(p.payload.len(), size);
                    assert_eq!(Header::parse(&p.payload), Some(h));
                }
            }
        }
    }

    #[test]
    fn hand_written_acks_decode_with_the_codec() {
        for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
            let mut b = BytesMut::new();
            for kind in [PUBACK, PUBREC, PUBREL, PUBCOMP] {
                ack(&mut b, kind, 513);
            }
            let expect = [
                Packet::PubAck(resp(513)),
                Packet::PubRec(resp(513)),
                Packet::PubRel(resp(513)),
                Packet::PubComp(resp(513)),
            ];
            for e in expect {
                assert_eq!(decode(&mut b, version, usize::MAX).unwrap(), Some(e));
            }
        }
    }
}
