//! The client side of MQTT over WebSocket (RFC 6455), as the generator speaks it: the HTTP/1.1
//! upgrade to `--ws-path` with `Sec-WebSocket-Protocol: mqtt`, then MQTT bytes out as masked
//! binary frames and the payloads of the broker's binary frames in.
//!
//! Owns: the upgrade request and the check of its `101` answer (status, `Upgrade`,
//! `Sec-WebSocket-Accept`, the subprotocol), the frame encoder (headers formatted by
//! `tungstenite`'s [`FrameHeader`], payload masked in place) and a streaming frame decoder:
//! headers with 7-, 16- and 64-bit lengths, any number of frames per input and frames split
//! across inputs at any byte. Data-frame payloads are copied straight into the MQTT read buffer
//! as they arrive (a large frame is never held whole); only a partial header or control frame
//! (at most 14 + 125 bytes) waits in `hold`. Pings are answered with pongs, a close ends the
//! connection.
//! Must never: do I/O (the caller moves [`WsClient::out`] to the socket or the TLS layer and
//! feeds what it reads), or allocate per message once its buffers have grown.

use std::io::{self, Cursor};

use base64::Engine as _;
use bytes::{Buf, BytesMut};
use sha1::{Digest, Sha1};
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

/// RFC 6455 §1.3: appended to the key before hashing it into `Sec-WebSocket-Accept`.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The largest upgrade answer (status line and headers) waited for.
const MAX_ANSWER: usize = 16 * 1024;

/// MQTT bytes are framed only while less than this waits in [`WsClient::out`]; the rest stays
/// in the caller's buffer, where the publisher's back-pressure sees it.
pub const OUT_HIGH: usize = 64 * 1024;

/// The largest binary frame sent: a longer write goes out as several frames (MQTT over
/// WebSocket lets packets span frames; brokers cap the size of one message).
pub const MAX_FRAME: usize = 64 * 1024;

/// Where the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The upgrade request is sent (or queued); waiting for `101 Switching Protocols`.
    Upgrading,
    /// Frames both ways.
    Open,
    /// The broker sent a close frame.
    Closed,
}

/// One WebSocket client connection's framing state.
#[derive(Debug)]
pub struct WsClient {
    phase: Phase,
    /// The `Sec-WebSocket-Accept` value the broker must answer with.
    accept: String,
    /// Bytes for the layer below (socket or TLS): the upgrade request, then frames.
    pub out: BytesMut,
    /// Input not yet understood: a partial upgrade answer, frame header or control frame.
    hold: BytesMut,
    /// Payload bytes of the current data frame still to come.
    payload_left: u64,
    /// The current data frame's mask (a server must not mask, but a masked frame is
    /// unmasked rather than refused) and how many of its payload bytes were seen.
    mask: Option<[u8; 4]>,
    mask_pos: usize,
    /// xorshift64 state for masking keys (and the upgrade key).
    rng: u64,
}

impl WsClient {
    /// A client that has queued its upgrade request for `path` on `host` (the `Host` header
    /// value) in [`WsClient::out`]. `seed` varies the key and the masks between connections.
    pub fn new(host: &str, path: &str, seed: u64) -> WsClient {
        let mut c = WsClient {
            phase: Phase::Upgrading,
            accept: String::new(),
            out: BytesMut::with_capacity(1024),
            hold: BytesMut::new(),
            payload_left: 0,
            mask: None,
            mask_pos: 0,
            rng: seed | 1,
        };
        let mut raw = [0u8; 16];
        raw[..8].copy_from_slice(&c.next_u64().to_le_bytes());
        raw[8..].copy_from_slice(&c.next_u64().to_le_bytes());
        let key = base64::engine::general_purpose::STANDARD.encode(raw);
        c.accept = accept_for(&key);
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: mqtt\r\n\r\n"
        );
        c.out.extend_from_slice(request.as_bytes());
        c
    }

    /// Whether the upgrade is done (MQTT bytes can be framed).
    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    fn next_mask(&mut self) -> [u8; 4] {
        (self.next_u64() as u32).to_le_bytes()
    }

    /// Moves MQTT bytes from `mqtt` into [`WsClient::out`] as masked binary frames of at most
    /// [`MAX_FRAME`] bytes, while the upgrade is done and `out` holds less than [`OUT_HIGH`].
    pub fn frame_from(&mut self, mqtt: &mut BytesMut) {
        while self.phase == Phase::Open && !mqtt.is_empty() && self.out.len() < OUT_HIGH {
            let n = mqtt.len().min(MAX_FRAME);
            let mask = self.next_mask();
            encode_frame(&mut self.out, OpCode::Data(Data::Binary), &mqtt[..n], mask);
            mqtt.advance(n);
        }
    }

    /// Queues a close frame (normal closure) if the connection is open.
    pub fn close(&mut self) {
        if self.phase == Phase::Open {
            let mask = self.next_mask();
            encode_frame(
                &mut self.out,
                OpCode::Control(Control::Close),
                &1000u16.to_be_bytes(),
                mask,
            );
            self.phase = Phase::Closed;
        }
    }

    /// Takes bytes from the broker (the socket's, or the TLS layer's plaintext): first the
    /// upgrade answer, then frames. Binary and continuation payloads are appended to `mqtt`;
    /// pings are answered in [`WsClient::out`]. A close frame, a refused upgrade or a broken
    /// frame is an error: the connection ends.
    pub fn feed(&mut self, input: &[u8], mqtt: &mut BytesMut) -> io::Result<()> {
        match self.phase {
            Phase::Open => self.feed_frames(input, mqtt),
            Phase::Upgrading => {
                self.hold.extend_from_slice(input);
                let Some(used) = self.parse_answer()? else {
                    return Ok(());
                };
                self.hold.advance(used);
                self.phase = Phase::Open;
                // Frames may follow the answer in the same read.
                let rest = std::mem::take(&mut self.hold);
                self.feed_frames(&rest, mqtt)
            }
            Phase::Closed => Err(closed("the WebSocket connection is closed")),
        }
    }

    /// Parses the upgrade answer in `hold`: `Some(length)` once it is whole and acceptable.
    fn parse_answer(&self) -> io::Result<Option<usize>> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut answer = httparse::Response::new(&mut headers);
        let used = match answer.parse(&self.hold) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if self.hold.len() > MAX_ANSWER => {
                return Err(refused("no end to the upgrade answer's headers".into()))
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(refused(format!("unreadable upgrade answer: {e}"))),
        };
        if answer.code != Some(101) {
            return Err(refused(format!(
                "the broker answered the upgrade with {} {}",
                answer.code.unwrap_or(0),
                answer.reason.unwrap_or("")
            )));
        }
        let header = |name: &str| {
            answer
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
        };
        if !header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
            return Err(refused("101 without Upgrade: websocket".into()));
        }
        match header("sec-websocket-accept") {
            Some(v) if v == self.accept => {}
            other => {
                return Err(refused(format!(
                    "Sec-WebSocket-Accept {other:?}, expected {}",
                    self.accept
                )))
            }
        }
        if let Some(p) = header("sec-websocket-protocol") {
            if p != "mqtt" {
                return Err(refused(format!(
                    "the broker chose subprotocol {p:?}, not mqtt"
                )));
            }
        }
        Ok(Some(used))
    }

    fn feed_frames(&mut self, input: &[u8], mqtt: &mut BytesMut) -> io::Result<()> {
        if self.hold.is_empty() {
            let used = self.decode(input, mqtt)?;
            self.hold.extend_from_slice(&input[used..]);
        } else {
            self.hold.extend_from_slice(input);
            let mut hold = std::mem::take(&mut self.hold);
            let used = self.decode(&hold, mqtt)?;
            hold.advance(used);
            self.hold = hold;
        }
        Ok(())
    }

    /// Decodes what it can of `buf`; returns how many bytes it used (the rest is a partial
    /// header or control frame).
    fn decode(&mut self, buf: &[u8], mqtt: &mut BytesMut) -> io::Result<usize> {
        let mut pos = 0;
        loop {
            if self.payload_left > 0 {
                let take = self.payload_left.min((buf.len() - pos) as u64) as usize;
                let start = mqtt.len();
                mqtt.extend_from_slice(&buf[pos..pos + take]);
                if let Some(m) = self.mask {
                    apply_mask(&mut mqtt[start..], m, self.mask_pos);
                    self.mask_pos += take;
                }
                pos += take;
                self.payload_left -= take as u64;
                if self.payload_left > 0 {
                    return Ok(pos);
                }
            }
            if pos == buf.len() {
                return Ok(pos);
            }
            let mut cursor = Cursor::new(&buf[pos..]);
            let (header, len) = match FrameHeader::parse(&mut cursor) {
                Ok(Some(h)) => h,
                Ok(None) => return Ok(pos),
                Err(e) => return Err(broken(format!("bad frame header: {e}"))),
            };
            let header_len = cursor.position() as usize;
            if header.rsv1 || header.rsv2 || header.rsv3 {
                return Err(broken("reserved bits set (no extension was agreed)".into()));
            }
            match header.opcode {
                OpCode::Data(Data::Binary) | OpCode::Data(Data::Continue) => {
                    pos += header_len;
                    self.payload_left = len;
                    self.mask = header.mask;
                    self.mask_pos = 0;
                }
                OpCode::Data(other) => {
                    return Err(broken(format!(
                        "{other:?} data frame (MQTT travels in binary frames)"
                    )))
                }
                OpCode::Control(control) => {
                    if len > 125 || !header.is_final {
                        return Err(broken("control frame too long or fragmented".into()));
                    }
                    let len = len as usize;
                    if buf.len() - pos - header_len < len {
                        return Ok(pos); // the rest of this control frame comes later
                    }
                    let mut payload = [0u8; 125];
                    let payload = &mut payload[..len];
                    let at = pos + header_len;
                    payload.copy_from_slice(&buf[at..at + len]);
                    if let Some(m) = header.mask {
                        apply_mask(payload, m, 0);
                    }
                    pos = at + len;
                    match control {
                        Control::Ping => {
                            let mask = self.next_mask();
                            encode_frame(
                                &mut self.out,
                                OpCode::Control(Control::Pong),
                                payload,
                                mask,
                            );
                        }
                        Control::Pong => {}
                        Control::Close => {
                            let code =
                                (len >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                            let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or(&[]))
                                .into_owned();
                            self.close();
                            self.phase = Phase::Closed;
                            return Err(closed(&format!(
                                "the broker closed the WebSocket (code {code:?} {reason:?})"
                            )));
                        }
                        Control::Reserved(op) => {
                            return Err(broken(format!("reserved control opcode {op}")))
                        }
                    }
                }
            }
        }
    }
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64(SHA-1(key + GUID)).
pub fn accept_for(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Appends one final frame of `opcode` carrying `payload`, masked with `mask` (a client's
/// frames are always masked).
pub fn encode_frame(out: &mut BytesMut, opcode: OpCode, payload: &[u8], mask: [u8; 4]) {
    let header = FrameHeader {
        is_final: true,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode,
        mask: Some(mask),
    };
    let mut head = [0u8; 14];
    let mut cursor = Cursor::new(&mut head[..]);
    header
        .format(payload.len() as u64, &mut cursor)
        .expect("a frame header fits in 14 bytes");
    let head_len = cursor.position() as usize;
    out.reserve(head_len + payload.len());
    out.extend_from_slice(&head[..head_len]);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask, 0);
}

/// XORs `buf` with `mask`, `buf[0]` being payload byte number `offset` of its frame.
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    let k: [u8; 4] = std::array::from_fn(|i| mask[(offset + i) & 3]);
    let wide = u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]]);
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) ^ wide;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    // The remainder starts at a multiple of 8 (so of 4) bytes past `offset`.
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= k[i & 3];
    }
}

fn refused(msg: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionRefused,
        format!("WebSocket upgrade: {msg}"),
    )
}

fn broken(msg: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("WebSocket from the broker: {msg}"),
    )
}

fn closed(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, msg.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A broker's (unmasked) frame of `opcode` with `payload`.
    fn server_frame(opcode: OpCode, payload: &[u8], is_final: bool) -> Vec<u8> {
        let header = FrameHeader {
            is_final,
            opcode,
            ..FrameHeader::default()
        };
        let mut v = Vec::new();
        header.format(payload.len() as u64, &mut v).unwrap();
        v.extend_from_slice(payload);
        v
    }

    fn binary(payload: &[u8]) -> Vec<u8> {
        server_frame(OpCode::Data(Data::Binary), payload, true)
    }

    /// The 101 answer a broker gives to `c`'s request.
    fn answer_for(c: &WsClient) -> Vec<u8> {
        let request = String::from_utf8(c.out.to_vec()).unwrap();
        let key = request
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap();
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
            accept_for(key)
        )
        .into_bytes()
    }

    fn open_client() -> WsClient {
        let mut c = WsClient::new("127.0.0.1:8083", "/mqtt", 7);
        let answer = answer_for(&c);
        c.out.clear();
        c.feed(&answer, &mut BytesMut::new()).unwrap();
        assert!(c.is_open());
        c
    }

    /// Decodes client frames (masked) with tungstenite's parser: (opcode, unmasked payload).
    fn client_frames(mut bytes: &[u8]) -> Vec<(OpCode, Vec<u8>)> {
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            let mut cursor = Cursor::new(bytes);
            let (h, len) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
            assert!(h.is_final);
            let at = cursor.position() as usize;
            let mut payload = bytes[at..at + len as usize].to_vec();
            apply_mask(&mut payload, h.mask.expect("client frames are masked"), 0);
            frames.push((h.opcode, payload));
            bytes = &bytes[at + len as usize..];
        }
        frames
    }

    #[test]
    fn the_rfc_example_key_gives_the_rfc_accept() {
        assert_eq!(
            accept_for("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn upgrade_request_asks_for_mqtt_on_the_path() {
        let c = WsClient::new("broker:8083", "/mqtt/x", 1);
        let r = String::from_utf8(c.out.to_vec()).unwrap();
        assert!(r.starts_with("GET /mqtt/x HTTP/1.1\r\n"), "{r}");
        for h in [
            "Host: broker:8083",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Protocol: mqtt",
        ] {
            assert!(r.contains(&format!("{h}\r\n")), "{h} in {r}");
        }
        assert!(r.ends_with("\r\n\r\n"));
        assert!(!c.is_open());
    }

    #[test]
    fn nothing_is_framed_before_the_upgrade_and_all_of_it_after() {
        let mut c = WsClient::new("h", "/mqtt", 3);
        let answer = answer_for(&c);
        c.out.clear();
        let mut mqtt = BytesMut::from(&b"\x10\x0c CONNECT...."[..]);
        c.frame_from(&mut mqtt);
        assert!(c.out.is_empty());
        assert_eq!(mqtt.len(), 14);
        // The answer split in two, with the first frame glued to its end.
        let mut input = answer.clone();
        input.extend(binary(b"\x20\x02\x00\x00"));
        let mut rbuf = BytesMut::new();
        c.feed(&input[..10], &mut rbuf).unwrap();
        assert!(!c.is_open());
        c.feed(&input[10..], &mut rbuf).unwrap();
        assert!(c.is_open());
        assert_eq!(&rbuf[..], b"\x20\x02\x00\x00");
        c.frame_from(&mut mqtt);
        assert!(mqtt.is_empty());
        assert_eq!(
            client_frames(&c.out),
            vec![(OpCode::Data(Data::Binary), b"\x10\x0c CONNECT....".to_vec())]
        );
    }

    #[test]
    fn a_bad_accept_or_status_or_subprotocol_is_refused() {
        let mut c = WsClient::new("h", "/mqtt", 3);
        let bad = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                    Connection: Upgrade\r\nSec-WebSocket-Accept: nope\r\n\r\n";
        assert!(c.feed(bad, &mut BytesMut::new()).is_err());
        let mut c = WsClient::new("h", "/mqtt", 3);
        let e = c
            .feed(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
                &mut BytesMut::new(),
            )
            .unwrap_err();
        assert!(e.to_string().contains("404"), "{e}");
        let mut c = WsClient::new("h", "/mqtt", 3);
        let answer = String::from_utf8(answer_for(&c))
            .unwrap()
            .replace("Protocol: mqtt", "Protocol: mqttv3.1");
        assert!(c.feed(answer.as_bytes(), &mut BytesMut::new()).is_err());
    }

    #[test]
    fn frames_use_7_16_and_64_bit_lengths_and_are_masked() {
        let mut c = open_client();
        for n in [0usize, 1, 125, 126, 65_535, 65_536, 70_000, 300_000] {
            c.out.clear();
            let payload: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            let mut mqtt = BytesMut::from(&payload[..]);
            c.frame_from(&mut mqtt);
            // Framing stops at the high-water mark and goes on once `out` drained.
            assert!(c.out.len() < OUT_HIGH + MAX_FRAME + 14);
            let first = c.out.clone();
            let mut wire = Vec::new();
            loop {
                wire.extend_from_slice(&c.out);
                c.out.clear();
                if mqtt.is_empty() {
                    break;
                }
                c.frame_from(&mut mqtt);
            }
            // Longer than MAX_FRAME: split into frames, in order.
            let frames = client_frames(&wire);
            let joined: Vec<u8> = frames.iter().flat_map(|(_, p)| p.clone()).collect();
            assert!(joined == payload, "n = {n}: payload changed");
            assert!(frames
                .iter()
                .all(|(op, p)| *op == OpCode::Data(Data::Binary) && p.len() <= MAX_FRAME));
            assert_eq!(frames.len(), n.div_ceil(MAX_FRAME));
            if n > 0 {
                assert_eq!(first[1] & 0x80, 0x80, "mask bit");
                let expect = match n.min(MAX_FRAME) {
                    m if m <= 125 => m as u8,
                    m if m <= 65_535 => 126,
                    _ => 127,
                };
                assert_eq!(first[1] & 0x7f, expect, "n = {n}");
                if n >= 16 {
                    // Masked: the payload's end is not on the wire as is.
                    assert!(wire[wire.len() - 16..] != payload[n - 16..]);
                }
            }
        }
    }

    #[test]
    fn the_mask_works_from_any_offset() {
        let data: Vec<u8> = (0..37).collect();
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut whole = data.clone();
        apply_mask(&mut whole, mask, 0);
        for split in 0..data.len() {
            let mut parts = data.clone();
            let (a, b) = parts.split_at_mut(split);
            apply_mask(a, mask, 0);
            apply_mask(b, mask, split);
            assert_eq!(parts, whole, "split at {split}");
        }
        let slow: Vec<u8> = data
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        assert_eq!(whole, slow);
    }

    #[test]
    fn several_frames_per_read_and_frames_split_at_every_byte() {
        // Three binary frames (7-, 16- and 64-bit lengths), a ping, a continuation.
        let big: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
        let mid: Vec<u8> = (0..300u32).map(|i| (i % 7) as u8).collect();
        let mut wire = Vec::new();
        wire.extend(binary(b"abc"));
        wire.extend(server_frame(OpCode::Data(Data::Binary), &mid, false));
        wire.extend(server_frame(OpCode::Control(Control::Ping), b"hi", true));
        wire.extend(server_frame(OpCode::Data(Data::Continue), b"xyz", true));
        wire.extend(binary(&big));
        wire.extend(binary(b""));
        let mut expect = b"abc".to_vec();
        expect.extend(&mid);
        expect.extend(b"xyz");
        expect.extend(&big);

        // All at once.
        let mut c = open_client();
        let mut rbuf = BytesMut::new();
        c.feed(&wire, &mut rbuf).unwrap();
        assert_eq!(&rbuf[..], &expect[..]);
        assert_eq!(
            client_frames(&c.out),
            vec![(OpCode::Control(Control::Pong), b"hi".to_vec())]
        );

        // Split in two at every point in the first 400 bytes and around the big header.
        let points = (0..400).chain(wire.len() - 70_020..wire.len() - 69_990);
        for cut in points {
            let mut c = open_client();
            let mut rbuf = BytesMut::new();
            c.feed(&wire[..cut], &mut rbuf).unwrap();
            c.feed(&wire[cut..], &mut rbuf).unwrap();
            assert_eq!(&rbuf[..], &expect[..], "cut at {cut}");
            assert_eq!(client_frames(&c.out).len(), 1, "one pong, cut at {cut}");
        }

        // One byte at a time.
        let mut c = open_client();
        let mut rbuf = BytesMut::new();
        for b in &wire {
            c.feed(std::slice::from_ref(b), &mut rbuf).unwrap();
        }
        assert_eq!(&rbuf[..], &expect[..]);
        assert!(c.hold.is_empty());
    }

    #[test]
    fn a_masked_server_frame_is_unmasked() {
        let mut c = open_client();
        let mut wire = Vec::new();
        let mut masked = BytesMut::new();
        encode_frame(
            &mut masked,
            OpCode::Data(Data::Binary),
            b"hello, broker",
            [9, 8, 7, 6],
        );
        wire.extend_from_slice(&masked);
        let mut rbuf = BytesMut::new();
        c.feed(&wire[..9], &mut rbuf).unwrap();
        c.feed(&wire[9..], &mut rbuf).unwrap();
        assert_eq!(&rbuf[..], b"hello, broker");
    }

    #[test]
    fn close_ends_the_connection_and_text_is_refused() {
        let mut c = open_client();
        let mut rbuf = BytesMut::new();
        let mut wire = binary(b"ok");
        wire.extend(server_frame(
            OpCode::Control(Control::Close),
            &[0x03, 0xe8, b'b', b'y', b'e'],
            true,
        ));
        let e = c.feed(&wire, &mut rbuf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted);
        assert!(e.to_string().contains("1000"), "{e}");
        assert_eq!(&rbuf[..], b"ok");
        assert_eq!(
            client_frames(&c.out),
            vec![(OpCode::Control(Control::Close), vec![0x03, 0xe8])]
        );
        assert!(c.feed(b"more", &mut rbuf).is_err());

        let mut c = open_client();
        let text = server_frame(OpCode::Data(Data::Text), b"hi", true);
        assert!(c.feed(&text, &mut BytesMut::new()).is_err());
    }
}
