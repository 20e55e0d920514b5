//! Fuzz target: arbitrary bytes into `shardmq::codec::decode` for MQTT 3.1, 3.1.1
//! and 5.0. Decoding must never panic; whatever decodes must encode again and
//! decode back to the same packet.
//!
//! Run: `cargo +nightly fuzz run decode --fuzz-dir tests/fuzz`

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use shardmq::codec::{decode, encode, Packet, ProtocolVersion};

const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V31,
    ProtocolVersion::V311,
    ProtocolVersion::V5,
];

fuzz_target!(|data: &[u8]| {
    // The first byte picks the size limit, so PacketTooLarge paths are reached too.
    let (max, data) = match data.split_first() {
        Some((&m, rest)) if m < 0x80 => (usize::from(m) * 4, rest),
        _ => (usize::MAX, data),
    };
    for version in VERSIONS {
        let mut buf = BytesMut::from(data);
        while let Ok(Some(packet)) = decode(&mut buf, version, max) {
            reencode(&packet, version);
        }
    }
});

/// A decoded packet is valid, so it must encode and decode to itself.
fn reencode(packet: &Packet, version: ProtocolVersion) {
    // CONNECT is self-describing; everything else uses the connection's version.
    let version = match packet {
        Packet::Connect(c) => c.protocol,
        _ => version,
    };
    let mut out = BytesMut::new();
    encode(packet, version, &mut out).expect("a decoded packet encodes");
    let again = decode(&mut out, version, usize::MAX).expect("re-encoded packet decodes");
    assert_eq!(again.as_ref(), Some(packet), "round trip");
    assert!(out.is_empty());
}
