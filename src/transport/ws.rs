//! MQTT over WebSocket: the HTTP/1.1 upgrade of the `ws` (8083) and `wss` (8084) listeners
//! and the binary frames that carry MQTT bytes, as EMQ X serves them on `/mqtt`.
//!
//! It owns two things, one per phase of a connection:
//! - [`WsLayer::upgrade`]: checks the client's upgrade request (method, path, `Upgrade`,
//!   `Connection`, `Sec-WebSocket-Version: 13`, `Sec-WebSocket-Key`), picks the subprotocol
//!   (`mqtt`, else `mqttv3.1`, else none) and writes the `101 Switching Protocols` answer, or
//!   the `4xx` refusal;
//! - a [`WsLayer`]: client frames in, the concatenated payloads of binary messages out (the
//!   caller's MQTT codec finds packet boundaries, this layer never does); pongs, close
//!   replies and close frames for protocol errors out; MQTT bytes in a binary frame out.
//!
//! Frame parsing, unmasking, reassembly of fragmented messages, control frames and the close
//! handshake are `tungstenite`'s, driven over an in-memory stream; this module only parses
//! the upgrade request (httparse) and wires the buffers.
//!
//! Pure: no sockets, no threads, no clock. The connection task reads a socket (or the TLS
//! layer's plaintext), calls [`WsLayer::feed`], and writes what lands in `out`.
//!
//! Must never: panic on peer bytes, whatever they are; buffer without bound: a request head
//! is capped at [`MAX_REQUEST_HEAD`] bytes, a message at [`WsSettings::max_frame`] bytes
//! (checked against the frame header before its payload is read), and every call to `feed`
//! consumes all it was given.

use std::fmt;
use std::io::{self, Read, Write};

use base64::Engine as _;
use bytes::{Buf, BytesMut};
use sha1::{Digest, Sha1};
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, FrameHeader};
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Message, Utf8Bytes, WebSocket};

/// The largest upgrade request head (request line and headers) accepted, in bytes.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// The most header lines an upgrade request may have.
const MAX_HEADERS: usize = 64;

/// RFC 6455 §1.3: appended to `Sec-WebSocket-Key` before hashing.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The subprotocols MQTT clients offer, in order of preference (MQTT 3.1.1 / 5, then 3.1).
const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// What the WebSocket listener is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsSettings {
    /// The request path that upgrades (a query string is allowed after it); any other path
    /// is answered `404`. Default `/mqtt`.
    pub path: String,
    /// The largest WebSocket message accepted, in bytes (larger: close 1009). The caller
    /// passes `mqtt.max_packet_size` plus a little.
    pub max_frame: usize,
}

impl Default for WsSettings {
    fn default() -> Self {
        WsSettings {
            path: "/mqtt".to_owned(),
            max_frame: 1024 * 1024 + 1024,
        }
    }
}

/// Why the upgrade was refused or the WebSocket connection ended; the reason is short, for
/// a debug log line. Whatever the peer should be told (an HTTP answer, a close frame) has
/// already been written to `out`: the caller writes it and closes the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsError {
    /// The upgrade request was refused (`400`, `404` or `431` written to `out`).
    BadRequest(&'static str),
    /// The peer closed the connection (our close reply is in `out`), or it was already
    /// closed or failed.
    Closed,
    /// A text message: MQTT over WebSocket is binary only (close 1003 in `out`).
    Unsupported,
    /// A message larger than [`WsSettings::max_frame`] (close 1009 in `out`).
    TooLarge(String),
    /// A breach of RFC 6455: an unmasked client frame, reserved bits or opcodes, a
    /// continuation out of place, a bad control frame... (close 1002 or 1007 in `out`).
    Protocol(String),
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WsError::BadRequest(why) => write!(f, "websocket upgrade refused: {why}"),
            WsError::Closed => f.write_str("websocket closed"),
            WsError::Unsupported => f.write_str("websocket text message (binary only)"),
            WsError::TooLarge(why) => write!(f, "websocket message too large: {why}"),
            WsError::Protocol(why) => write!(f, "websocket protocol error: {why}"),
        }
    }
}

impl std::error::Error for WsError {}

/// The byte stream tungstenite reads from and writes to: what `feed` was given, and the
/// caller's `out` (moved in for the duration of a call, so frames land there directly).
/// Reading an empty input is `WouldBlock`, never end of stream.
#[derive(Debug, Default)]
struct MemStream {
    input: BytesMut,
    output: Vec<u8>,
}

impl Read for MemStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input.advance(n);
        Ok(n)
    }
}

impl Write for MemStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One upgraded WebSocket connection (server side). `Send`: the broker may move the
/// connection to another shard after its first MQTT packet.
#[derive(Debug)]
pub struct WsLayer {
    ws: WebSocket<MemStream>,
    subprotocol: Option<&'static str>,
    /// Set once the connection closed or failed: `feed` refuses from then on.
    done: bool,
}

/// An HTTP refusal of the upgrade.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    BadRequest,
    /// A `Sec-WebSocket-Version` other than 13: `400` naming the version we speak.
    Version,
    NotFound,
    HeadTooLarge,
}

impl Refusal {
    fn answer(self) -> &'static [u8] {
        match self {
            Refusal::BadRequest => {
                b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
            }
            Refusal::Version => {
                b"HTTP/1.1 400 Bad Request\r\nSec-WebSocket-Version: 13\r\n\
                  Connection: close\r\nContent-Length: 0\r\n\r\n"
            }
            Refusal::NotFound => {
                b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
            }
            Refusal::HeadTooLarge => {
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n\
                  Connection: close\r\nContent-Length: 0\r\n\r\n"
            }
        }
    }
}

/// Writes the refusal to `out` and returns the error to hand back.
fn refuse(out: &mut Vec<u8>, refusal: Refusal, why: &'static str) -> WsError {
    out.extend_from_slice(refusal.answer());
    WsError::BadRequest(why)
}

/// What a valid upgrade request yields.
struct Accepted {
    accept_key: String,
    subprotocol: Option<&'static str>,
}

/// The values of every header named `name`, as text; `Err` if one is not UTF-8.
fn header_values<'h>(
    headers: &'h [httparse::Header<'_>],
    name: &'static str,
) -> Result<Vec<&'h str>, (Refusal, &'static str)> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| {
            std::str::from_utf8(h.value)
                .map(str::trim)
                .map_err(|_| (Refusal::BadRequest, "header value not UTF-8"))
        })
        .collect()
}

/// Whether any comma-separated token of the headers named `name` equals `token`,
/// ignoring ASCII case.
fn has_token(
    headers: &[httparse::Header<'_>],
    name: &'static str,
    token: &str,
) -> Result<bool, (Refusal, &'static str)> {
    Ok(header_values(headers, name)?
        .iter()
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(WS_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// Checks a complete upgrade request.
fn inspect(
    settings: &WsSettings,
    req: &httparse::Request<'_, '_>,
) -> Result<Accepted, (Refusal, &'static str)> {
    if req.method != Some("GET") {
        return Err((Refusal::BadRequest, "method is not GET"));
    }
    let target = req.path.unwrap_or("");
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if path != settings.path {
        return Err((Refusal::NotFound, "unknown path"));
    }
    if req.version != Some(1) {
        return Err((Refusal::BadRequest, "not HTTP/1.1"));
    }
    let headers: &[httparse::Header<'_>] = &*req.headers;
    if !has_token(headers, "upgrade", "websocket")? {
        return Err((Refusal::BadRequest, "no Upgrade: websocket"));
    }
    if !has_token(headers, "connection", "upgrade")? {
        return Err((Refusal::BadRequest, "no Connection: Upgrade"));
    }
    match header_values(headers, "sec-websocket-version")?.as_slice() {
        ["13"] => {}
        [] => return Err((Refusal::Version, "no Sec-WebSocket-Version")),
        _ => return Err((Refusal::Version, "Sec-WebSocket-Version is not 13")),
    }
    let key = match header_values(headers, "sec-websocket-key")?.as_slice() {
        [key] => *key,
        [] => return Err((Refusal::BadRequest, "no Sec-WebSocket-Key")),
        _ => return Err((Refusal::BadRequest, "several Sec-WebSocket-Key")),
    };
    match base64::engine::general_purpose::STANDARD.decode(key) {
        Ok(nonce) if nonce.len() == 16 => {}
        _ => return Err((Refusal::BadRequest, "bad Sec-WebSocket-Key")),
    }
    // A body would be taken for WebSocket frames: refuse one.
    if !header_values(headers, "transfer-encoding")?.is_empty()
        || header_values(headers, "content-length")?
            .iter()
            .any(|v| *v != "0")
    {
        return Err((Refusal::BadRequest, "request has a body"));
    }
    let offered = header_values(headers, "sec-websocket-protocol")?;
    let offered = || offered.iter().flat_map(|v| v.split(',')).map(str::trim);
    let subprotocol = SUBPROTOCOLS
        .into_iter()
        .find(|wanted| offered().any(|o| o == *wanted));
    Ok(Accepted {
        accept_key: accept_key(key),
        subprotocol,
    })
}

impl WsLayer {
    /// Phase one: the HTTP upgrade. `request` holds the bytes read from the connection so
    /// far. `Ok(None)`: the request head is not complete yet, read more and call again
    /// (nothing was consumed or written). `Ok(Some(layer))`: `101 Switching Protocols` is in
    /// `out`, the request head was removed from `request` and whatever followed it (a first
    /// frame the client pipelined) stays there for [`feed`](Self::feed). `Err`: the refusal
    /// (`400`, `404`, `431`) is in `out`; close the connection once it is written.
    pub fn upgrade(
        settings: &WsSettings,
        request: &mut BytesMut,
        out: &mut Vec<u8>,
    ) -> Result<Option<WsLayer>, WsError> {
        let window = &request[..request.len().min(MAX_REQUEST_HEAD)];
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let head_len = match req.parse(window) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if request.len() < MAX_REQUEST_HEAD => return Ok(None),
            Ok(httparse::Status::Partial) => {
                return Err(refuse(
                    out,
                    Refusal::HeadTooLarge,
                    "request head over 8 KiB",
                ))
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(refuse(out, Refusal::HeadTooLarge, "too many headers"))
            }
            Err(_) => return Err(refuse(out, Refusal::BadRequest, "malformed HTTP request")),
        };
        let accepted = match inspect(settings, &req) {
            Ok(accepted) => accepted,
            Err((refusal, why)) => return Err(refuse(out, refusal, why)),
        };
        request.advance(head_len);

        out.extend_from_slice(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: ",
        );
        out.extend_from_slice(accepted.accept_key.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(protocol) = accepted.subprotocol {
            out.extend_from_slice(b"Sec-WebSocket-Protocol: ");
            out.extend_from_slice(protocol.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");

        let config = WebSocketConfig::default()
            // Chunk size of tungstenite's reads from the in-memory stream; small, since it
            // is allocated up front for every connection.
            .read_buffer_size(4 * 1024)
            // Frames go to `out` as soon as they are made.
            .write_buffer_size(0)
            .max_message_size(Some(settings.max_frame))
            .max_frame_size(Some(settings.max_frame))
            .accept_unmasked_frames(false);
        Ok(Some(WsLayer {
            ws: WebSocket::from_raw_socket(MemStream::default(), Role::Server, Some(config)),
            subprotocol: accepted.subprotocol,
            done: false,
        }))
    }

    /// The subprotocol agreed on in the upgrade: `mqtt`, `mqttv3.1`, or none.
    pub fn subprotocol(&self) -> Option<&'static str> {
        self.subprotocol
    }

    /// Phase two: bytes from the client. The payloads of complete binary messages are
    /// appended to `mqtt` in order (MQTT packet boundaries are the caller's business); pongs
    /// and close frames are appended to `out`. A partial frame or message is kept until the
    /// rest arrives. `Err(WsError::Closed)`: the client closed (the close reply is in `out`);
    /// any other `Err`: the client broke the protocol (a close frame with its code is in
    /// `out`). After an `Err` every call returns `Err(WsError::Closed)`.
    pub fn feed(
        &mut self,
        raw: &[u8],
        mqtt: &mut BytesMut,
        out: &mut Vec<u8>,
    ) -> Result<(), WsError> {
        if self.done {
            return Err(WsError::Closed);
        }
        let stream = self.ws.get_mut();
        stream.input.extend_from_slice(raw);
        stream.output = std::mem::take(out);
        let result = self.pump(mqtt);
        let stream = self.ws.get_mut();
        *out = std::mem::take(&mut stream.output);
        if result.is_err() {
            self.done = true;
            stream.input = BytesMut::new();
        }
        result
    }

    /// Reads messages until the input runs dry.
    fn pump(&mut self, mqtt: &mut BytesMut) -> Result<(), WsError> {
        loop {
            match self.ws.read() {
                Ok(Message::Binary(payload)) => mqtt.extend_from_slice(&payload),
                // Pongs are queued by tungstenite and written on the next read or flush.
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Ok(Message::Text(_)) => {
                    self.close_with(CloseCode::Unsupported, "binary frames only");
                    return Err(WsError::Unsupported);
                }
                Ok(Message::Close(_)) => {
                    // Writes the queued close reply; says ConnectionClosed when done.
                    let _ = self.ws.flush();
                    return Err(WsError::Closed);
                }
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    // All input consumed; write a pong still queued, if any.
                    let _ = self.ws.flush();
                    return Ok(());
                }
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return Err(WsError::Closed)
                }
                Err(tungstenite::Error::Capacity(e)) => {
                    self.close_with(CloseCode::Size, "message too large");
                    return Err(WsError::TooLarge(e.to_string()));
                }
                Err(e @ tungstenite::Error::Utf8(_)) => {
                    self.close_with(CloseCode::Invalid, "invalid UTF-8");
                    return Err(WsError::Protocol(e.to_string()));
                }
                Err(e) => {
                    self.close_with(CloseCode::Protocol, "protocol error");
                    return Err(WsError::Protocol(e.to_string()));
                }
            }
        }
    }

    /// Queues and writes a close frame (if none was sent yet) into the stream's output.
    fn close_with(&mut self, code: CloseCode, reason: &'static str) {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        // Err once the close handshake is complete: the frame is written all the same.
        let _ = self.ws.close(Some(frame));
    }

    /// One binary frame (unmasked, as a server's are) carrying `mqtt`, appended to `out`;
    /// any size, including 0. Nothing once a close frame was sent or received.
    pub fn encode(&mut self, mqtt: &[u8], out: &mut Vec<u8>) {
        if self.done || !self.ws.can_write() {
            return;
        }
        // Every call leaves tungstenite's write buffer empty, so the frame can be written
        // straight into `out` without copying the payload through it.
        let header = FrameHeader {
            opcode: OpCode::Data(Data::Binary),
            is_final: true,
            mask: None,
            ..FrameHeader::default()
        };
        let len = mqtt.len() as u64;
        out.reserve(header.len(len) + mqtt.len());
        if header.format(len, out).is_ok() {
            out.extend_from_slice(mqtt);
        }
    }

    /// A normal close frame (1000), appended to `out`; the client's reply then comes back
    /// through [`feed`](Self::feed) as `Err(WsError::Closed)`. Nothing if a close frame
    /// was already sent or received.
    pub fn close(&mut self, out: &mut Vec<u8>) {
        if self.done || !self.ws.can_write() {
            return;
        }
        self.ws.get_mut().output = std::mem::take(out);
        self.close_with(CloseCode::Normal, "");
        *out = std::mem::take(&mut self.ws.get_mut().output);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    /// RFC 6455 §1.3's example answer to `KEY` (SHA-1 + base64 agree).
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn settings() -> WsSettings {
        WsSettings {
            path: "/mqtt".into(),
            max_frame: 1024 * 1024,
        }
    }

    fn request_with(lines: &[&str]) -> String {
        let mut r = String::new();
        for l in lines {
            r.push_str(l);
            r.push_str("\r\n");
        }
        r.push_str("\r\n");
        r
    }

    /// What a browser (mqtt.js) sends, with the given subprotocol header (if any).
    fn browser_request(protocol: Option<&str>) -> String {
        let mut lines = vec![
            "GET /mqtt HTTP/1.1".to_string(),
            "Host: broker.example:8083".into(),
            "Connection: Upgrade".into(),
            "Pragma: no-cache".into(),
            "Cache-Control: no-cache".into(),
            "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36".into(),
            "Upgrade: websocket".into(),
            "Origin: http://broker.example".into(),
            "Sec-WebSocket-Version: 13".into(),
            "Accept-Encoding: gzip, deflate, br".into(),
            "Accept-Language: en-US,en;q=0.9".into(),
            format!("Sec-WebSocket-Key: {KEY}"),
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits".into(),
        ];
        if let Some(p) = protocol {
            lines.push(format!("Sec-WebSocket-Protocol: {p}"));
        }
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        request_with(&refs)
    }

    fn answer_101(protocol: Option<&str>) -> String {
        let mut a = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {ACCEPT}\r\n"
        );
        if let Some(p) = protocol {
            a.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
        }
        a.push_str("\r\n");
        a
    }

    fn upgrade_str(req: &str) -> (Result<Option<WsLayer>, WsError>, BytesMut, Vec<u8>) {
        let mut buf = BytesMut::from(req.as_bytes());
        let mut out = Vec::new();
        let r = WsLayer::upgrade(&settings(), &mut buf, &mut out);
        (r, buf, out)
    }

    fn layer_with(max_frame: usize) -> WsLayer {
        let s = WsSettings {
            path: "/mqtt".into(),
            max_frame,
        };
        let mut buf = BytesMut::from(browser_request(Some("mqtt")).as_bytes());
        let mut out = Vec::new();
        let layer = WsLayer::upgrade(&s, &mut buf, &mut out).unwrap().unwrap();
        assert!(buf.is_empty());
        layer
    }

    fn layer() -> WsLayer {
        layer_with(1024 * 1024)
    }

    /// A client frame built by hand: `first` is FIN/RSV/opcode, `mask` as given.
    fn frame(first: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![first];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => f.push(m | n as u8),
            n if n <= 0xffff => {
                f.push(m | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(m | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        match mask {
            Some(k) => {
                f.extend_from_slice(&k);
                f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
            }
            None => f.extend_from_slice(payload),
        }
        f
    }

    fn binary(payload: &[u8]) -> Vec<u8> {
        frame(0x82, Some(MASK), payload)
    }

    /// Parses server frames: (fin, opcode, payload); asserts they are unmasked, use the
    /// shortest length encoding and that nothing trails.
    fn parse_frames(mut buf: &[u8]) -> Vec<(bool, u8, Vec<u8>)> {
        let mut frames = Vec::new();
        while !buf.is_empty() {
            assert!(buf.len() >= 2, "truncated header");
            let fin = buf[0] & 0x80 != 0;
            assert_eq!(buf[0] & 0x70, 0, "reserved bits");
            let opcode = buf[0] & 0x0f;
            assert_eq!(buf[1] & 0x80, 0, "server frames are not masked");
            let (len, hdr) = match buf[1] & 0x7f {
                126 => {
                    let n = u16::from_be_bytes([buf[2], buf[3]]) as usize;
                    assert!(n >= 126, "not the shortest length");
                    (n, 4)
                }
                127 => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&buf[2..10]);
                    let n = u64::from_be_bytes(b);
                    assert!(n > 0xffff && n >> 63 == 0, "bad 64-bit length");
                    (n as usize, 10)
                }
                n => (n as usize, 2),
            };
            assert!(buf.len() >= hdr + len, "truncated payload");
            frames.push((fin, opcode, buf[hdr..hdr + len].to_vec()));
            buf = &buf[hdr + len..];
        }
        frames
    }

    fn close_code(frames: &[(bool, u8, Vec<u8>)]) -> u16 {
        let last = frames.last().expect("a close frame");
        assert_eq!(last.1, 0x8, "close opcode");
        u16::from_be_bytes([last.2[0], last.2[1]])
    }

    fn feed_all(layer: &mut WsLayer, raw: &[u8]) -> (Result<(), WsError>, BytesMut, Vec<u8>) {
        let mut mqtt = BytesMut::new();
        let mut out = Vec::new();
        let r = layer.feed(raw, &mut mqtt, &mut out);
        (r, mqtt, out)
    }

    fn status_line(out: &[u8]) -> &str {
        let s = std::str::from_utf8(out).unwrap();
        s.split("\r\n").next().unwrap()
    }

    #[test]
    fn layer_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<WsLayer>();
    }

    #[test]
    fn rfc_accept_key() {
        assert_eq!(accept_key(KEY), ACCEPT);
    }

    #[test]
    fn upgrade_picks_subprotocol() {
        for (offered, chosen) in [
            (Some("mqtt"), Some("mqtt")),
            (Some("mqttv3.1"), Some("mqttv3.1")),
            (Some("mqttv3.1, mqtt"), Some("mqtt")),
            (Some("wamp, mqttv3.1"), Some("mqttv3.1")),
            (Some("wamp"), None),
            (None, None),
        ] {
            let (r, rest, out) = upgrade_str(&browser_request(offered));
            let layer = r.unwrap().expect("complete request");
            assert_eq!(layer.subprotocol(), chosen, "offered {offered:?}");
            assert_eq!(String::from_utf8(out).unwrap(), answer_101(chosen));
            assert!(rest.is_empty());
        }
        // Offered over two header lines.
        let req = request_with(&[
            "GET /mqtt?client=1 HTTP/1.1",
            "Host: h",
            "Upgrade: WebSocket",
            "Connection: keep-alive, Upgrade",
            "Sec-WebSocket-Version: 13",
            &format!("Sec-WebSocket-Key: {KEY}"),
            "Sec-WebSocket-Protocol: foo",
            "Sec-WebSocket-Protocol: mqtt",
        ]);
        let (r, _, out) = upgrade_str(&req);
        assert_eq!(r.unwrap().unwrap().subprotocol(), Some("mqtt"));
        assert_eq!(String::from_utf8(out).unwrap(), answer_101(Some("mqtt")));
    }

    #[test]
    fn upgrade_split_at_every_byte() {
        let req = browser_request(Some("mqtt"));
        let bytes = req.as_bytes();
        for cut in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            let mut out = Vec::new();
            let r = WsLayer::upgrade(&settings(), &mut buf, &mut out);
            assert!(matches!(r, Ok(None)), "cut at {cut}");
            assert!(out.is_empty());
            assert_eq!(buf.len(), cut, "nothing consumed");
            buf.extend_from_slice(&bytes[cut..]);
            let r = WsLayer::upgrade(&settings(), &mut buf, &mut out);
            assert!(matches!(r, Ok(Some(_))), "cut at {cut}");
            assert_eq!(String::from_utf8(out).unwrap(), answer_101(Some("mqtt")));
            assert!(buf.is_empty());
        }
        // And byte by byte, calling at each step.
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for (i, b) in bytes.iter().enumerate() {
            buf.extend_from_slice(&[*b]);
            let r = WsLayer::upgrade(&settings(), &mut buf, &mut out);
            if i + 1 < bytes.len() {
                assert!(matches!(r, Ok(None)));
            } else {
                assert!(matches!(r, Ok(Some(_))));
            }
        }
    }

    #[test]
    fn pipelined_frame_stays_for_feed() {
        let connect = [0x10, 0x0c, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 0];
        let mut raw = browser_request(Some("mqtt")).into_bytes();
        let frame = binary(&connect);
        raw.extend_from_slice(&frame);
        let mut buf = BytesMut::from(&raw[..]);
        let mut out = Vec::new();
        let mut layer = WsLayer::upgrade(&settings(), &mut buf, &mut out)
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..], &frame[..]);
        let (r, mqtt, out) = feed_all(&mut layer, &buf);
        r.unwrap();
        assert_eq!(&mqtt[..], &connect[..]);
        assert!(out.is_empty());
    }

    #[test]
    fn wrong_path_is_404() {
        for path in ["/", "/mqtt/", "/MQTT", "/other?x=/mqtt", "/mqttx"] {
            let req = browser_request(None).replacen("/mqtt", path, 1);
            let (r, _, out) = upgrade_str(&req);
            assert!(matches!(r, Err(WsError::BadRequest(_))), "{path}");
            assert_eq!(status_line(&out), "HTTP/1.1 404 Not Found", "{path}");
        }
        // A configured path other than the default.
        let s = WsSettings {
            path: "/ws".into(),
            max_frame: 100,
        };
        let req = browser_request(None).replacen("/mqtt", "/ws?a=b", 1);
        let mut buf = BytesMut::from(req.as_bytes());
        let mut out = Vec::new();
        assert!(matches!(
            WsLayer::upgrade(&s, &mut buf, &mut out),
            Ok(Some(_))
        ));
    }

    #[test]
    fn bad_requests_are_400() {
        let good = browser_request(Some("mqtt"));
        let cases: Vec<(String, &str)> = vec![
            (
                good.replace(KEY, "dGhlIHNhbXBsZSBub25jZQ"),
                "key without padding",
            ),
            (
                good.replace(KEY, "not base64 at all!!!!!!="),
                "key not base64",
            ),
            (good.replace(KEY, "dGhlIHNhbXBsZSBub25j"), "key of 15 bytes"),
            (
                good.replace(KEY, "dGhlIHNhbXBsZSBub25jZSE="),
                "key of 17 bytes",
            ),
            (
                good.replace(&format!("Sec-WebSocket-Key: {KEY}\r\n"), ""),
                "no key",
            ),
            (
                good.replace(
                    "Sec-WebSocket-Key",
                    "Sec-WebSocket-Key: x\r\nSec-WebSocket-Key",
                ),
                "two keys",
            ),
            (good.replace("Upgrade: websocket\r\n", ""), "no Upgrade"),
            (
                good.replace("Upgrade: websocket", "Upgrade: h2c"),
                "Upgrade: h2c",
            ),
            (
                good.replace("Connection: Upgrade", "Connection: keep-alive"),
                "no Connection: Upgrade",
            ),
            (good.replace("GET ", "POST "), "POST"),
            (good.replace("HTTP/1.1", "HTTP/1.0"), "HTTP/1.0"),
            (
                good.replace("Pragma: no-cache", "Content-Length: 5"),
                "a body",
            ),
            (
                "\x16\x03\x01\x02\x00\x01\x00\x01\x03\x03".to_string(),
                "TLS hello",
            ),
            (
                "GET /mqtt HTTP/1.1\r\nBad Header\r\n\r\n".to_string(),
                "garbage header",
            ),
        ];
        for (req, what) in cases {
            let (r, rest, out) = upgrade_str(&req);
            assert!(matches!(r, Err(WsError::BadRequest(_))), "{what}: {r:?}");
            assert_eq!(status_line(&out), "HTTP/1.1 400 Bad Request", "{what}");
            assert!(String::from_utf8(out).unwrap().ends_with("\r\n\r\n"));
            assert_eq!(rest.len(), req.len(), "{what}: nothing consumed");
        }
        for version in ["8", "12", "13, 8", ""] {
            let req = good.replace(
                "Sec-WebSocket-Version: 13",
                &format!("Sec-WebSocket-Version: {version}"),
            );
            let (r, _, out) = upgrade_str(&req);
            assert!(
                matches!(r, Err(WsError::BadRequest(_))),
                "version {version}"
            );
            let text = String::from_utf8(out).unwrap();
            assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"));
            assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"));
        }
        let (r, _, out) = upgrade_str(&good.replace("Sec-WebSocket-Version: 13\r\n", ""));
        assert!(matches!(r, Err(WsError::BadRequest(_))));
        assert_eq!(status_line(&out), "HTTP/1.1 400 Bad Request");
    }

    #[test]
    fn request_head_over_8k_is_refused() {
        // Complete but too long.
        let pad = format!("X-Pad: {}", "a".repeat(MAX_REQUEST_HEAD));
        let req = browser_request(None).replacen("Pragma: no-cache", &pad, 1);
        let (r, _, out) = upgrade_str(&req);
        assert!(matches!(r, Err(WsError::BadRequest(_))));
        assert_eq!(
            status_line(&out),
            "HTTP/1.1 431 Request Header Fields Too Large"
        );
        // Never completed: growing until the cap.
        let mut buf = BytesMut::from(&b"GET /mqtt HTTP/1.1\r\nX-Pad: "[..]);
        let mut out = Vec::new();
        loop {
            match WsLayer::upgrade(&settings(), &mut buf, &mut out) {
                Ok(None) => {
                    assert!(buf.len() < MAX_REQUEST_HEAD);
                    buf.extend_from_slice(&[b'a'; 100]);
                }
                Ok(Some(_)) => panic!("accepted"),
                Err(e) => {
                    assert!(matches!(e, WsError::BadRequest(_)));
                    break;
                }
            }
        }
        assert!(buf.len() <= MAX_REQUEST_HEAD + 100);
        // Exactly at the cap is still accepted.
        let base = browser_request(None);
        let fill = MAX_REQUEST_HEAD - base.len() - "X-Pad: \r\n".len();
        let pad = format!("X-Pad: {}\r\nPragma: no-cache", "b".repeat(fill));
        let req = base.replacen("Pragma: no-cache", &pad, 1);
        assert_eq!(req.len(), MAX_REQUEST_HEAD);
        assert!(matches!(upgrade_str(&req).0, Ok(Some(_))));
        // Too many header lines.
        let many: Vec<String> = (0..MAX_HEADERS).map(|i| format!("X-{i}: v")).collect();
        let req = browser_request(None).replacen("Pragma: no-cache", &many.join("\r\n"), 1);
        let (r, _, out) = upgrade_str(&req);
        assert!(matches!(r, Err(WsError::BadRequest(_))));
        assert_eq!(
            status_line(&out),
            "HTTP/1.1 431 Request Header Fields Too Large"
        );
    }

    #[test]
    fn frame_lengths_7_16_64_bit() {
        let mut l = layer();
        for n in [0usize, 1, 125, 126, 300, 0xffff, 0x10000, 70_000] {
            let payload: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
            let (r, mqtt, out) = feed_all(&mut l, &binary(&payload));
            r.unwrap();
            assert_eq!(&mqtt[..], &payload[..], "length {n}");
            assert!(out.is_empty());
        }
        // Another mask, including a zero mask.
        for mask in [[0u8; 4], [0xff; 4], [1, 2, 3, 4]] {
            let (r, mqtt, _) = feed_all(&mut l, &frame(0x82, Some(mask), b"\xc0\x00"));
            r.unwrap();
            assert_eq!(&mqtt[..], b"\xc0\x00");
        }
    }

    #[test]
    fn fragmented_message_and_packets_across_frames() {
        let publish = [
            0x30, 0x0b, 0x00, 0x03, b'a', b'/', b'b', b'h', b'e', b'l', b'l', b'o', b'!',
        ];
        let pingreq = [0xc0, 0x00];
        // Several packets in one frame.
        let mut several = Vec::new();
        several.extend_from_slice(&pingreq);
        several.extend_from_slice(&publish);
        several.extend_from_slice(&pingreq);
        let mut l = layer();
        let (r, mqtt, _) = feed_all(&mut l, &binary(&several));
        r.unwrap();
        assert_eq!(&mqtt[..], &several[..]);

        // One packet over two messages.
        let mut raw = binary(&publish[..5]);
        raw.extend(binary(&publish[5..]));
        let (r, mqtt, _) = feed_all(&mut l, &raw);
        r.unwrap();
        assert_eq!(&mqtt[..], &publish[..]);

        // One message in three fragments, a ping between two of them.
        let mut raw = frame(0x02, Some(MASK), &publish[..3]);
        raw.extend(frame(0x00, Some([9, 8, 7, 6]), &publish[3..8]));
        raw.extend(frame(0x89, Some(MASK), b"hb"));
        raw.extend(frame(0x80, Some(MASK), &publish[8..]));
        let (r, mqtt, out) = feed_all(&mut l, &raw);
        r.unwrap();
        assert_eq!(&mqtt[..], &publish[..]);
        assert_eq!(parse_frames(&out), vec![(true, 0xa, b"hb".to_vec())]);

        // All of it again, one byte at a time.
        let mut all = binary(&several);
        all.extend(binary(&publish[..5]));
        all.extend(binary(&publish[5..]));
        all.extend(&raw);
        let big: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
        all.extend(binary(&big));
        let mut expected = several.clone();
        expected.extend_from_slice(&publish);
        expected.extend_from_slice(&publish);
        expected.extend_from_slice(&big);
        let mut mqtt = BytesMut::new();
        let mut out = Vec::new();
        for b in &all {
            l.feed(std::slice::from_ref(b), &mut mqtt, &mut out)
                .unwrap();
        }
        assert_eq!(&mqtt[..], &expected[..]);
        assert_eq!(parse_frames(&out), vec![(true, 0xa, b"hb".to_vec())]);
    }

    #[test]
    fn ping_pong_and_close() {
        let mut l = layer();
        let (r, mqtt, out) = feed_all(&mut l, &frame(0x89, Some(MASK), b"are you there"));
        r.unwrap();
        assert!(mqtt.is_empty());
        assert_eq!(
            parse_frames(&out),
            vec![(true, 0xa, b"are you there".to_vec())]
        );
        // Empty ping; a pong from the client is ignored.
        let mut raw = frame(0x89, Some(MASK), b"");
        raw.extend(frame(0x8a, Some(MASK), b"x"));
        let (r, _, out) = feed_all(&mut l, &raw);
        r.unwrap();
        assert_eq!(parse_frames(&out), vec![(true, 0xa, vec![])]);

        // Data then close in one read: data delivered, close answered.
        let mut raw = binary(b"\xc0\x00");
        raw.extend(frame(0x88, Some(MASK), b"\x03\xe8bye"));
        raw.extend(binary(b"after close"));
        let (r, mqtt, out) = feed_all(&mut l, &raw);
        assert_eq!(r, Err(WsError::Closed));
        assert_eq!(&mqtt[..], b"\xc0\x00");
        let frames = parse_frames(&out);
        assert_eq!(frames.len(), 1);
        assert_eq!(close_code(&frames), 1000);
        // Closed for good.
        let (r, mqtt, out) = feed_all(&mut l, &binary(b"x"));
        assert_eq!(r, Err(WsError::Closed));
        assert!(mqtt.is_empty() && out.is_empty());
        let mut out = Vec::new();
        l.encode(b"x", &mut out);
        l.close(&mut out);
        assert!(out.is_empty());

        // A close without a code is answered by an empty close.
        let mut l = layer();
        let (r, _, out) = feed_all(&mut l, &frame(0x88, Some(MASK), b""));
        assert_eq!(r, Err(WsError::Closed));
        assert_eq!(parse_frames(&out), vec![(true, 0x8, vec![])]);
        // A close with a code the peer may not send: 1002.
        let mut l = layer();
        let (r, _, out) = feed_all(&mut l, &frame(0x88, Some(MASK), &1005u16.to_be_bytes()));
        assert_eq!(r, Err(WsError::Closed));
        assert_eq!(close_code(&parse_frames(&out)), 1002);
    }

    #[test]
    fn server_close_then_client_reply() {
        let mut l = layer();
        let mut out = b"already here".to_vec();
        l.close(&mut out);
        assert_eq!(&out[..12], b"already here");
        let frames = parse_frames(&out[12..]);
        assert_eq!(frames, vec![(true, 0x8, vec![0x03, 0xe8])]);
        // No data after our close frame, and no second close.
        let mut out = Vec::new();
        l.encode(b"late", &mut out);
        l.close(&mut out);
        assert!(out.is_empty());
        // The client may still send data before its close reply.
        let mut raw = binary(b"\xe0\x00");
        raw.extend(frame(0x88, Some(MASK), b"\x03\xe8"));
        let (r, mqtt, out) = feed_all(&mut l, &raw);
        assert_eq!(r, Err(WsError::Closed));
        assert_eq!(&mqtt[..], b"\xe0\x00");
        assert!(out.is_empty(), "no reply to a close reply");
    }

    #[test]
    fn text_is_refused_with_1003() {
        let mut l = layer();
        let (r, mqtt, out) = feed_all(&mut l, &frame(0x81, Some(MASK), b"hello"));
        assert_eq!(r, Err(WsError::Unsupported));
        assert!(mqtt.is_empty());
        assert_eq!(close_code(&parse_frames(&out)), 1003);
        assert_eq!(feed_all(&mut l, &binary(b"x")).0, Err(WsError::Closed));
        // Invalid UTF-8 in a text message: 1007.
        let mut l = layer();
        let (r, _, out) = feed_all(&mut l, &frame(0x81, Some(MASK), b"\xff\xfe"));
        assert!(matches!(r, Err(WsError::Protocol(_))), "{r:?}");
        assert_eq!(close_code(&parse_frames(&out)), 1007);
    }

    #[test]
    fn protocol_errors_close_with_1002() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (frame(0x82, None, b"\xc0\x00"), "unmasked"),
            (frame(0x83, Some(MASK), b"x"), "reserved data opcode"),
            (frame(0x8b, Some(MASK), b"x"), "reserved control opcode"),
            (frame(0xc2, Some(MASK), b"x"), "RSV1 (no deflate agreed)"),
            (frame(0x80, Some(MASK), b"x"), "continuation without start"),
            (frame(0x09, Some(MASK), b"x"), "fragmented ping"),
            (frame(0x89, Some(MASK), &[0u8; 126]), "ping over 125"),
            (frame(0x88, Some(MASK), b"\x03"), "close payload of 1 byte"),
            (
                {
                    let mut f = frame(0x02, Some(MASK), b"a");
                    f.extend(frame(0x82, Some(MASK), b"b"));
                    f
                },
                "new message inside a fragmented one",
            ),
        ];
        for (raw, what) in cases {
            let mut l = layer();
            let (r, mqtt, out) = feed_all(&mut l, &raw);
            assert!(matches!(r, Err(WsError::Protocol(_))), "{what}: {r:?}");
            assert!(mqtt.is_empty(), "{what}");
            assert_eq!(close_code(&parse_frames(&out)), 1002, "{what}");
            assert_eq!(feed_all(&mut l, &binary(b"x")).0, Err(WsError::Closed));
        }
    }

    #[test]
    fn message_over_max_frame_closes_with_1009() {
        // One frame over the limit: refused on its header, before the payload came.
        let mut l = layer_with(1000);
        let full = binary(&[7u8; 1001]);
        let (r, mqtt, out) = feed_all(&mut l, &full[..8]);
        assert!(matches!(r, Err(WsError::TooLarge(_))), "{r:?}");
        assert!(mqtt.is_empty());
        assert_eq!(close_code(&parse_frames(&out)), 1009);
        // At the limit is fine.
        let mut l = layer_with(1000);
        let (r, mqtt, _) = feed_all(&mut l, &binary(&[7u8; 1000]));
        r.unwrap();
        assert_eq!(mqtt.len(), 1000);
        // A fragmented message whose fragments add up past the limit.
        let mut l = layer_with(1000);
        let mut raw = frame(0x02, Some(MASK), &[1u8; 600]);
        raw.extend(frame(0x80, Some(MASK), &[2u8; 600]));
        let (r, mqtt, out) = feed_all(&mut l, &raw);
        assert!(matches!(r, Err(WsError::TooLarge(_))), "{r:?}");
        assert!(mqtt.is_empty());
        assert_eq!(close_code(&parse_frames(&out)), 1009);
        // A 64-bit length near u64::MAX.
        let mut l = layer_with(1000);
        let mut raw = vec![0x82, 0xff];
        raw.extend_from_slice(&u64::MAX.to_be_bytes());
        raw.extend_from_slice(&MASK);
        let (r, _, out) = feed_all(&mut l, &raw);
        assert!(r.is_err());
        assert!(matches!(close_code(&parse_frames(&out)), 1002 | 1009));
    }

    #[test]
    fn encode_sizes() {
        let mut l = layer();
        for n in [0usize, 1, 125, 126, 65535, 65536, 1024 * 1024] {
            let payload: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            let mut out = vec![0xaa];
            l.encode(&payload, &mut out);
            assert_eq!(out[0], 0xaa, "appended, not replaced");
            let header_len = match n {
                0..=125 => 2,
                126..=65535 => 4,
                _ => 10,
            };
            assert_eq!(out.len(), 1 + header_len + n, "size {n}");
            assert_eq!(out[1], 0x82, "FIN + binary");
            let frames = parse_frames(&out[1..]);
            assert_eq!(frames, vec![(true, 0x2, payload)], "size {n}");
        }
        let mut out = Vec::new();
        l.encode(&[], &mut out);
        assert_eq!(out, [0x82, 0x00]);
        let mut out = Vec::new();
        l.encode(&[0u8; 126], &mut out);
        assert_eq!(&out[..4], &[0x82, 126, 0, 126]);
        let mut out = Vec::new();
        l.encode(&[0u8; 65536], &mut out);
        assert_eq!(&out[..10], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    /// Both ends of an in-memory pipe for tungstenite's client role.
    #[derive(Default)]
    struct Pipe {
        inbox: std::collections::VecDeque<u8>,
        outbox: Vec<u8>,
    }

    impl Read for Pipe {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.inbox.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.inbox.read(buf)
        }
    }

    impl Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.outbox.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn client_read(client: &mut WebSocket<Pipe>) -> Vec<Message> {
        let mut got = Vec::new();
        loop {
            match client.read() {
                Ok(m) => got.push(m),
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    return got
                }
                Err(e) => panic!("client read: {e}"),
            }
        }
    }

    #[test]
    fn round_trip_with_tungstenite_client() {
        let mut server = layer();
        let mut client = WebSocket::from_raw_socket(Pipe::default(), Role::Client, None);

        // Client → server: several messages of several sizes, and a ping.
        let sizes = [0usize, 2, 125, 126, 4000, 65536, 200_000];
        let mut expected = Vec::new();
        for (i, n) in sizes.iter().enumerate() {
            let payload: Vec<u8> = (0..*n).map(|j| (i + j) as u8).collect();
            expected.extend_from_slice(&payload);
            client.send(Message::binary(payload)).unwrap();
        }
        client.send(Message::Ping("hb".into())).unwrap();
        let wire = std::mem::take(&mut client.get_mut().outbox);
        let mut mqtt = BytesMut::new();
        let mut out = Vec::new();
        // Fed in uneven chunks.
        for chunk in wire.chunks(777) {
            server.feed(chunk, &mut mqtt, &mut out).unwrap();
        }
        assert_eq!(&mqtt[..], &expected[..]);

        // Server → client: the pong, then frames of several sizes.
        let mut sent = Vec::new();
        for n in [0usize, 1, 126, 65536, 300_000] {
            let payload: Vec<u8> = (0..n).map(|j| (j * 3) as u8).collect();
            server.encode(&payload, &mut out);
            sent.push(payload);
        }
        client.get_mut().inbox.extend(out.drain(..));
        let got = client_read(&mut client);
        assert_eq!(got[0], Message::Pong("hb".into()));
        let binaries: Vec<Vec<u8>> = got[1..]
            .iter()
            .map(|m| match m {
                Message::Binary(b) => b.to_vec(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(binaries, sent);

        // Client closes; the server answers and reports Closed; the client sees the reply.
        client.close(None).unwrap();
        let wire = std::mem::take(&mut client.get_mut().outbox);
        let r = server.feed(&wire, &mut mqtt, &mut out);
        assert_eq!(r, Err(WsError::Closed));
        client.get_mut().inbox.extend(out.drain(..));
        match client.read() {
            Ok(Message::Close(_)) => {}
            other => panic!("expected the close reply, got {other:?}"),
        }

        // Server-initiated close, seen by a fresh client.
        let mut server = layer();
        let mut client = WebSocket::from_raw_socket(Pipe::default(), Role::Client, None);
        let mut out = Vec::new();
        server.close(&mut out);
        client.get_mut().inbox.extend(out.drain(..));
        match client.read() {
            Ok(Message::Close(Some(f))) => assert_eq!(f.code, CloseCode::Normal),
            other => panic!("expected close, got {other:?}"),
        }
        // The client's automatic reply ends it on the server.
        let _ = client.flush();
        let wire = std::mem::take(&mut client.get_mut().outbox);
        assert!(!wire.is_empty());
        assert_eq!(
            server.feed(&wire, &mut mqtt, &mut out),
            Err(WsError::Closed)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn upgrade_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut buf = BytesMut::from(&bytes[..]);
            let mut out = Vec::new();
            let _ = WsLayer::upgrade(&settings(), &mut buf, &mut out);
        }

        #[test]
        fn upgrade_header_mutations_never_panic(
            cut in 0usize..600,
            junk in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let req = browser_request(Some("mqtt")).into_bytes();
            let cut = cut.min(req.len());
            let mut bytes = req[..cut].to_vec();
            bytes.extend_from_slice(&junk);
            bytes.extend_from_slice(&req[cut..]);
            let mut buf = BytesMut::from(&bytes[..]);
            let mut out = Vec::new();
            let _ = WsLayer::upgrade(&settings(), &mut buf, &mut out);
        }

        #[test]
        fn feed_never_panics(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
        ) {
            let mut l = layer_with(4096);
            let mut mqtt = BytesMut::new();
            let mut out = Vec::new();
            for c in &chunks {
                if l.feed(c, &mut mqtt, &mut out).is_err() {
                    break;
                }
            }
            prop_assert!(mqtt.len() <= chunks.iter().map(Vec::len).sum::<usize>());
        }

        #[test]
        fn feed_of_valid_frames_mixed_with_junk(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..6),
            mask in any::<[u8; 4]>(),
            junk in proptest::collection::vec(any::<u8>(), 0..20),
            split in 1usize..50,
        ) {
            let mut raw = Vec::new();
            let mut expected = Vec::new();
            for p in &payloads {
                raw.extend(frame(0x82, Some(mask), p));
                expected.extend_from_slice(p);
            }
            raw.extend_from_slice(&junk);
            let mut l = layer_with(4096);
            let mut mqtt = BytesMut::new();
            let mut out = Vec::new();
            for c in raw.chunks(split) {
                if l.feed(c, &mut mqtt, &mut out).is_err() {
                    break;
                }
            }
            // Junk after valid frames never takes away what they carried.
            prop_assert!(mqtt.starts_with(&expected));
        }
    }
}
