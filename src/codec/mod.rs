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
//! - [`encode`]`(packet, version, out)`: appends one packet to `out`.

pub mod packet;
pub mod properties;
pub mod str;

pub use packet::*;
pub use properties::Properties;
pub use str::Str;
