//! The MQTT codec: bytes <-> [`Packet`] for MQTT 3.1, 3.1.1 and 5.0.
//!
//! Owns: the wire format. Pure: no I/O, no runtime, no global state; it must never
//! panic on any input. Decoding checks the remaining length from the fixed header
//! against the size limit *before* waiting for the body, and slices strings and
//! payloads out of the input without copying them.
//!
//! API:
//! - [`decode`]`(buf, version, max_packet_size)`: `Ok(None)` means "need more bytes"
//!   (nothing consumed); `Ok(Some(packet))` consumes exactly one packet from `buf`.
//! - [`encode`]`(packet, version, out)`: appends one packet to `out`;
//!   [`encoded_len`] says how many bytes that would be.
//! - [`DecodeError`] / [`EncodeError`]: small `Copy` enums; `DecodeError::reason_code`
//!   is the MQTT 5.0 reason code to answer with.
//!
//! Layout: `packet`, `properties`, `str` (the types); `decode`, `encode` (the two
//! directions); `props` (5.0 property lists), `reason` (reason code allow-lists),
//! `reader` / `writer` / `varint` (wire primitives); `error`.

mod decode;
mod encode;
pub mod error;
pub mod packet;
pub mod properties;
mod props;
mod reader;
pub mod reason;
pub mod str;
pub mod varint;
mod writer;

#[cfg(test)]
mod tests_golden_v3;
#[cfg(test)]
mod tests_golden_v5;
#[cfg(test)]
mod tests_invalid;

pub use decode::{connect_version, decode};
pub use encode::{encode, encode_publish, encoded_len, publish_len, PublishRef};
pub use error::{DecodeError, EncodeError};
pub use packet::*;
pub use properties::{Properties, Props};
pub use str::Str;
