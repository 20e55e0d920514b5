//! A bounds-checked cursor over one packet's body, handing out zero-copy slices.
//!
//! Owns: reading the MQTT data types (1.5: integers, UTF-8 strings, binary data,
//! variable byte integers) from a `Bytes` that holds exactly one packet body.
//! Must never: panic, read outside its `Bytes`, copy string or payload bytes, or
//! allocate.

use bytes::{Buf, Bytes};

use super::error::DecodeError;
use super::str::Str;
use super::varint::{self, VarInt};

/// A cursor over a packet body. Every read checks the bounds first.
pub(crate) struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Reader {
        Reader { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// `Err(TrailingBytes)` unless everything was read.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }

    /// The next `n` bytes as a zero-copy slice.
    pub(crate) fn take(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::UnexpectedEnd);
        }
        let out = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(out)
    }

    /// Everything not read yet (e.g. a PUBLISH payload). Hands over the body itself, so
    /// the payload costs no reference-count increment; the reader is left empty.
    pub(crate) fn rest(&mut self) -> Bytes {
        let mut out = std::mem::take(&mut self.buf);
        out.advance(self.pos);
        self.pos = 0;
        out
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(DecodeError::UnexpectedEnd)?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        let hi = self.u8()?;
        let lo = self.u8()?;
        Ok(u16::from_be_bytes([hi, lo]))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        let hi = self.u16()?;
        let lo = self.u16()?;
        Ok((u32::from(hi) << 16) | u32::from(lo))
    }

    /// A packet identifier, which must not be 0 [MQTT-2.2.1-3].
    pub(crate) fn packet_id(&mut self) -> Result<u16, DecodeError> {
        match self.u16()? {
            0 => Err(DecodeError::ZeroPacketId),
            id => Ok(id),
        }
    }

    /// A variable byte integer inside the body.
    pub(crate) fn varint(&mut self) -> Result<u32, DecodeError> {
        match varint::read(&self.buf[self.pos..]) {
            VarInt::Value(v, n) => {
                self.pos += n;
                Ok(v)
            }
            VarInt::Incomplete => Err(DecodeError::UnexpectedEnd),
            VarInt::Malformed => Err(DecodeError::MalformedVarInt),
        }
    }

    /// Two-byte length followed by that many bytes.
    pub(crate) fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    /// A UTF-8 encoded string: well-formed and without U+0000 [MQTT-1.5.4-1, -2].
    pub(crate) fn string(&mut self) -> Result<Str, DecodeError> {
        let raw = self.binary()?;
        if raw.contains(&0) {
            return Err(DecodeError::NullCharacter);
        }
        Str::from_utf8(raw).ok_or(DecodeError::InvalidUtf8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_types_and_checks_bounds() {
        let mut r = Reader::new(Bytes::from_static(&[
            0x01, 0x00, 0x02, 0x00, 0x01, 0x00, 0x80, 0x01, 0x00, 0x02, b'h', b'i',
        ]));
        assert_eq!(r.u8(), Ok(1));
        assert_eq!(r.u16(), Ok(2));
        assert_eq!(r.u32(), Ok(0x0001_0080));
        assert_eq!(r.u8(), Ok(1));
        assert_eq!(r.string().as_deref(), Ok("hi"));
        assert!(r.is_empty());
        assert_eq!(r.u8(), Err(DecodeError::UnexpectedEnd));
    }

    #[test]
    fn string_checks() {
        let mut r = Reader::new(Bytes::from_static(&[0x00, 0x01, 0x00]));
        assert_eq!(r.string(), Err(DecodeError::NullCharacter));
        let mut r = Reader::new(Bytes::from_static(&[0x00, 0x02, 0xc3, 0x28]));
        assert_eq!(r.string(), Err(DecodeError::InvalidUtf8));
        // Encoded surrogate U+D800 is not UTF-8.
        let mut r = Reader::new(Bytes::from_static(&[0x00, 0x03, 0xed, 0xa0, 0x80]));
        assert_eq!(r.string(), Err(DecodeError::InvalidUtf8));
        let mut r = Reader::new(Bytes::from_static(&[0x00, 0x05, b'a']));
        assert_eq!(r.string(), Err(DecodeError::UnexpectedEnd));
    }
}
