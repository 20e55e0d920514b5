//! The header every benchmark payload starts with: magic, publisher id, sequence, send time.
//!
//! Owns: the 24-byte layout (`magic u32 | publisher u32 | seq u64 | sent_ns u64`, big endian)
//! and the padding that fills a payload up to its configured size.
//! Must never: allocate (it writes into caller-provided buffers).

use bytes::BytesMut;

/// Bytes taken by the header; payloads are at least this long.
pub const HEADER_LEN: usize = 24;
/// "SMQB": tells benchmark payloads from anything else on the topic.
pub const MAGIC: u32 = 0x534d_5142;

/// Zero bytes used to pad payloads past the header.
static PAD: [u8; 4096] = [0; 4096];

/// What a subscriber needs to know about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Dense publisher id, `0..publishers`.
    pub publisher: u32,
    /// Per-publisher sequence, from 0, without gaps on the sending side.
    pub seq: u64,
    /// When the message was due (open loop) or sent (unlimited), from [`crate::clock`].
    pub sent_ns: u64,
}

impl Header {
    /// The 24 header bytes.
    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC.to_be_bytes());
        b[4..8].copy_from_slice(&self.publisher.to_be_bytes());
        b[8..16].copy_from_slice(&self.seq.to_be_bytes());
        b[16..24].copy_from_slice(&self.sent_ns.to_be_bytes());
        b
    }

    /// Reads a header from the front of a payload; `None` if it is not a benchmark payload.
    pub fn parse(payload: &[u8]) -> Option<Header> {
        let b: &[u8; HEADER_LEN] = payload.get(..HEADER_LEN)?.try_into().ok()?;
        if u32::from_be_bytes([b[0], b[1], b[2], b[3]]) != MAGIC {
            return None;
        }
        Some(Header {
            publisher: u32::from_be_bytes(b[4..8].try_into().ok()?),
            seq: u64::from_be_bytes(b[8..16].try_into().ok()?),
            sent_ns: u64::from_be_bytes(b[16..24].try_into().ok()?),
        })
    }

    /// Appends the header and `size - HEADER_LEN` padding bytes (`size` is at least the header).
    pub fn write_payload(self, size: usize, out: &mut BytesMut) {
        out.extend_from_slice(&self.to_bytes());
        let mut left = size.saturating_sub(HEADER_LEN);
        while left > 0 {
            let n = left.min(PAD.len());
            out.extend_from_slice(&PAD[..n]);
            left -= n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = Header {
            publisher: 7,
            seq: u64::MAX - 3,
            sent_ns: 123_456_789,
        };
        let mut v = BytesMut::new();
        h.write_payload(64, &mut v);
        assert_eq!(v.len(), 64);
        assert_eq!(Header::parse(&v), Some(h));
    }

    #[test]
    fn rejects_foreign_and_short_payloads() {
        assert_eq!(Header::parse(b"hello"), None);
        assert_eq!(Header::parse(&[0u8; 64]), None);
        let mut v = BytesMut::new();
        Header {
            publisher: 1,
            seq: 2,
            sent_ns: 3,
        }
        .write_payload(24, &mut v);
        assert!(Header::parse(&v[..23]).is_none());
        assert!(Header::parse(&v).is_some());
    }

    #[test]
    fn large_payloads_are_padded_exactly() {
        let mut v = BytesMut::new();
        Header {
            publisher: 0,
            seq: 0,
            sent_ns: 0,
        }
        .write_payload(10_000, &mut v);
        assert_eq!(v.len(), 10_000);
    }
}
