//! Writing the MQTT data types to a sink that either stores or only counts bytes.
//!
//! Owns: the [`Sink`] abstraction used by the encoder. Each packet body is written
//! twice: once into a [`Counter`] to learn its remaining length, then into the
//! output `BytesMut`. This keeps one source of truth for the layout and never copies
//! a payload into a scratch buffer.
//! Must never: write a length prefix that disagrees with the bytes that follow.

use bytes::{BufMut, BytesMut};

use super::error::EncodeError;
use super::varint::{self, MAX_VARINT};

/// Somewhere bytes go.
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);

    fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }

    fn u16(&mut self, v: u16) {
        self.put(&v.to_be_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }

    /// A variable byte integer; values over 268,435,455 cannot be encoded.
    fn varint(&mut self, v: usize) -> Result<(), EncodeError> {
        let v = u32::try_from(v)
            .ok()
            .filter(|v| *v <= MAX_VARINT)
            .ok_or(EncodeError::VarIntTooLarge)?;
        let mut tmp = [0u8; 4];
        let n = varint::write(v, &mut tmp);
        self.put(&tmp[..n]);
        Ok(())
    }

    /// Two-byte length and the bytes.
    fn binary(&mut self, v: &[u8]) -> Result<(), EncodeError> {
        let n = u16::try_from(v.len()).map_err(|_| EncodeError::FieldTooLong)?;
        self.u16(n);
        self.put(v);
        Ok(())
    }

    fn string(&mut self, s: &str) -> Result<(), EncodeError> {
        self.binary(s.as_bytes())
    }
}

/// A sink that only counts.
#[derive(Default)]
pub(crate) struct Counter(pub(crate) usize);

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

impl Sink for BytesMut {
    fn put(&mut self, bytes: &[u8]) {
        self.put_slice(bytes);
    }
}
