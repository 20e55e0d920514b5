//! Variable Byte Integers (MQTT 5.0 section 1.5.5; the 3.x "remaining length").
//!
//! Owns: reading and writing the 1..=4 byte base-128 integer.
//! Must never: read past the slice it is given, or accept more than 4 bytes.

/// The largest value a variable byte integer can hold (4 bytes).
pub const MAX_VARINT: u32 = 268_435_455;

/// Outcome of reading a variable byte integer from the front of a slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarInt {
    /// The value and the number of bytes it took.
    Value(u32, usize),
    /// The slice ends before the last byte (and before 4 bytes were seen).
    Incomplete,
    /// A fifth byte would be needed.
    Malformed,
}

/// Reads a variable byte integer from the front of `buf`.
pub fn read(buf: &[u8]) -> VarInt {
    let mut value: u32 = 0;
    for i in 0..4 {
        let Some(&b) = buf.get(i) else {
            return VarInt::Incomplete;
        };
        value |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return VarInt::Value(value, i + 1);
        }
    }
    VarInt::Malformed
}

/// The number of bytes `value` takes (values over [`MAX_VARINT`] count as 4; callers
/// reject them before writing).
pub fn len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Writes `value` (at most [`MAX_VARINT`]) into `out`, returning the bytes used.
pub fn write(mut value: u32, out: &mut [u8; 4]) -> usize {
    let mut n = 0;
    loop {
        let mut b = (value & 0x7f) as u8;
        value >>= 7;
        if value > 0 {
            b |= 0x80;
        }
        out[n] = b;
        n += 1;
        if value == 0 || n == 4 {
            return n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_boundaries() {
        let cases: &[(u32, &[u8])] = &[
            (0, &[0x00]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xff, 0x7f]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xff, 0xff, 0x7f]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (MAX_VARINT, &[0xff, 0xff, 0xff, 0x7f]),
        ];
        for &(v, bytes) in cases {
            let mut out = [0u8; 4];
            let n = write(v, &mut out);
            assert_eq!(&out[..n], bytes, "{v}");
            assert_eq!(len(v as usize), n);
            assert_eq!(read(bytes), VarInt::Value(v, n));
            for cut in 0..n {
                assert_eq!(read(&bytes[..cut]), VarInt::Incomplete);
            }
        }
    }

    #[test]
    fn five_bytes_is_malformed() {
        assert_eq!(read(&[0x80, 0x80, 0x80, 0x80]), VarInt::Malformed);
        assert_eq!(read(&[0xff, 0xff, 0xff, 0xff, 0x01]), VarInt::Malformed);
    }
}
