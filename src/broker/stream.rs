//! A client connection's byte stream: its socket and, on the TLS, WebSocket and secure
//! WebSocket listeners, the layers between the socket and the MQTT codec (`transport::tls`,
//! `transport::ws`). The connection code reads and writes MQTT bytes through a [`Stream`]
//! whatever the listener; the layers' work happens inside its `read` and `write_all`.
//!
//! Runs on the shard that serves the connection (the accepting shard for the handshake; the
//! layers travel with the socket when it is handed to the client's home shard).
//! Must never: lose bytes when a read is cancelled (a read is one poll function: the socket
//! read, decryption and unframing happen inside one poll, their state kept in the stream),
//! write from inside a read (output the layers make while reading — a WebSocket pong, a TLS
//! alert — waits in `pending` for the next write), or panic on a peer's bytes.

use std::io;
use std::sync::Arc;

use bytes::BytesMut;
use shardmq_shards::handoff::SocketInTransit;
use shardmq_shards::sockio::Socket;

use crate::transport::tls::{TlsError, TlsLayer};
use crate::transport::ws::{WsError, WsLayer, WsSettings};

/// Counts MQTT bytes a connection of `kind` received and sent (`bytes/received/<kind>`,
/// `bytes/sent/<kind>`; `bytes/received` and `bytes/sent` count all listeners).
pub fn count_bytes(
    m: &mut crate::metrics::Metrics,
    kind: ListenerKind,
    received: usize,
    sent: usize,
) {
    let (r, s) = match kind {
        ListenerKind::Tcp => (&mut m.tcp_bytes_received, &mut m.tcp_bytes_sent),
        ListenerKind::Ssl => (&mut m.ssl_bytes_received, &mut m.ssl_bytes_sent),
        ListenerKind::Ws => (&mut m.ws_bytes_received, &mut m.ws_bytes_sent),
        ListenerKind::Wss => (&mut m.wss_bytes_received, &mut m.wss_bytes_sent),
    };
    *r += received as u64;
    *s += sent as u64;
}

/// The kinds of MQTT listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    Tcp,
    Ssl,
    Ws,
    Wss,
}

impl ListenerKind {
    pub const ALL: [ListenerKind; 4] = [
        ListenerKind::Tcp,
        ListenerKind::Ssl,
        ListenerKind::Ws,
        ListenerKind::Wss,
    ];

    /// The name `GET /listeners` shows (`mqtt:tcp`, `mqtt:ssl`, `mqtt:ws`, `mqtt:wss`).
    pub fn protocol(self) -> &'static str {
        match self {
            ListenerKind::Tcp => "mqtt:tcp",
            ListenerKind::Ssl => "mqtt:ssl",
            ListenerKind::Ws => "mqtt:ws",
            ListenerKind::Wss => "mqtt:wss",
        }
    }

    /// The config section (`listeners.<name>`).
    pub fn name(self) -> &'static str {
        match self {
            ListenerKind::Tcp => "tcp",
            ListenerKind::Ssl => "ssl",
            ListenerKind::Ws => "ws",
            ListenerKind::Wss => "wss",
        }
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, ListenerKind::Ssl | ListenerKind::Wss)
    }

    pub fn uses_ws(self) -> bool {
        matches!(self, ListenerKind::Ws | ListenerKind::Wss)
    }
}

/// The layers of one connection (moved with its socket to the home shard).
pub enum Layer {
    Plain,
    Tls(Box<TlsLayer>),
    Ws(Box<WsLayer>),
    Wss(Box<TlsLayer>, Box<WsLayer>),
}

/// Bytes asked of one socket read under a layer (one TLS record at most).
const RAW_CHUNK: usize = 16 * 1024 + 512;

thread_local! {
    /// The shard's buffer for raw reads under a layer: a read waits for readiness without
    /// it and fills it synchronously, so an idle TLS / WebSocket connection holds none.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; RAW_CHUNK]);
}
/// The largest WebSocket upgrade request head read before giving up (the layer bounds it too).
const MAX_UPGRADE: usize = 16 * 1024;

/// A connection's socket with its layers. A plain TCP stream is its socket and an empty
/// layer: the layers' buffers are boxed, there only for TLS / WebSocket streams (an idle
/// connection's task holds the stream inline).
pub struct Stream {
    socket: Socket,
    /// The layers and their buffers: `None` for plain TCP (every idle connection's task
    /// holds its stream, 24 bytes this way).
    l: Option<Box<Layered>>,
}

/// What a layered stream keeps besides its socket.
struct Layered {
    /// Plain only while a WebSocket upgrade on plain TCP is under way.
    layer: Layer,
    bufs: Bufs,
    /// The peer closed its layer (TLS close_notify, WebSocket close): reads end.
    closed: bool,
}

/// The stream's layered part, created (plain, empty) when missing.
fn layered(l: &mut Option<Box<Layered>>) -> &mut Layered {
    l.get_or_insert_with(|| {
        Box::new(Layered {
            layer: Layer::Plain,
            bufs: Bufs::default(),
            closed: false,
        })
    })
}

/// The buffers of a layered stream.
#[derive(Default)]
struct Bufs {
    /// Raw reads during the handshake (freed once it is done; later reads use `SCRATCH`).
    raw: Vec<u8>,
    /// TLS plaintext not yet unframed by the WebSocket layer (secure WebSocket only).
    plain: BytesMut,
    /// Bytes the layers made that are still to be written.
    pending: Vec<u8>,
    /// A WebSocket frame being built for a write, or the WebSocket's replies to a read, before
    /// encryption (secure WebSocket only).
    framed: Vec<u8>,
}

impl Bufs {
    /// Once the pending output is written, a large buffer is not kept for the next write.
    fn shrink_pending(&mut self) {
        if self.pending.is_empty() && self.pending.capacity() > 64 * 1024 {
            self.pending = Vec::new();
        }
    }
}

fn tls_err(e: TlsError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("tls: {e:?}"))
}

fn ws_err(e: WsError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("websocket: {e:?}"))
}

impl Stream {
    /// A plain TCP stream.
    pub fn plain(socket: Socket) -> Stream {
        Stream::with_layer(socket, Layer::Plain)
    }

    fn with_layer(socket: Socket, layer: Layer) -> Stream {
        let l = match layer {
            Layer::Plain => None,
            layer => Some(Box::new(Layered {
                layer,
                bufs: Bufs::default(),
                closed: false,
            })),
        };
        Stream { socket, l }
    }

    /// The socket and layers, for the hand-over to the home shard.
    pub fn detach(self) -> (SocketInTransit, Layer) {
        let layer = self.l.map_or(Layer::Plain, |l| l.layer);
        (SocketInTransit::detach(self.socket), layer)
    }

    /// A stream from what [`Stream::detach`] gave.
    pub fn attach(socket: SocketInTransit, layer: Layer) -> io::Result<Stream> {
        Ok(Stream::with_layer(socket.attach()?, layer))
    }

    /// The kind of listener the connection came through.
    pub fn kind(&self) -> ListenerKind {
        let Some(l) = &self.l else {
            return ListenerKind::Tcp;
        };
        match l.layer {
            Layer::Plain => ListenerKind::Tcp,
            Layer::Tls(_) => ListenerKind::Ssl,
            Layer::Ws(_) => ListenerKind::Ws,
            Layer::Wss(..) => ListenerKind::Wss,
        }
    }

    /// Whether the client's TLS certificate named a subject CN (for `peer_cert_as_username`).
    pub fn peer_common_name(&self) -> Option<String> {
        match &self.l.as_ref()?.layer {
            Layer::Tls(t) | Layer::Wss(t, _) => t.peer_common_name(),
            _ => None,
        }
    }

    /// A plain TCP stream (no layer).
    fn is_plain(&self) -> bool {
        self.l
            .as_ref()
            .is_none_or(|l| matches!(l.layer, Layer::Plain))
    }

    /// The peer closed its layer: reads end.
    fn closed(&self) -> bool {
        self.l.as_ref().is_some_and(|l| l.closed)
    }

    /// Output the layers made while reading, not yet written.
    pub fn has_pending(&self) -> bool {
        self.l.as_ref().is_some_and(|l| !l.bufs.pending.is_empty())
    }

    /// Reads once (waiting until the socket has something) and appends the MQTT bytes it
    /// carried to `buf` (at most `want` on a plain stream); `Ok(0)` is the end of the stream.
    /// Under a layer, reads go on until they yield MQTT bytes (a TLS record may span reads; a
    /// frame may be a ping). Cancel-safe: every read happens inside one poll, so a dropped
    /// future loses nothing, and the future holds only its arguments (an idle connection's
    /// task keeps it).
    pub fn read<'a>(
        &'a mut self,
        buf: &'a mut BytesMut,
        want: usize,
    ) -> impl std::future::Future<Output = io::Result<usize>> + 'a {
        std::future::poll_fn(move |cx| self.poll_read(cx, buf, want))
    }

    fn poll_read(
        &mut self,
        cx: &mut std::task::Context<'_>,
        buf: &mut BytesMut,
        want: usize,
    ) -> std::task::Poll<io::Result<usize>> {
        use std::task::Poll;
        loop {
            if self.closed() {
                return Poll::Ready(Ok(0));
            }
            match self.socket.poll_readable(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            if self.is_plain() {
                super::bufpool::ready(buf);
                let start = buf.len();
                buf.resize(start + want, 0);
                let res = self.socket.try_read(&mut buf[start..]);
                buf.truncate(start + *res.as_ref().unwrap_or(&0));
                match res {
                    // Empty after all (the readiness was old): wait for the ring, without
                    // the buffer taken for the read (an idle connection holds none).
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        super::bufpool::give(buf);
                        continue;
                    }
                    done => return Poll::Ready(done),
                }
            }
            match self.read_now(buf) {
                Err(e) => return Poll::Ready(Err(e)),
                Ok(None) => {}                                 // the readiness was old
                Ok(Some((0, _))) => return Poll::Ready(Ok(0)), // the peer's FIN
                Ok(Some((_, 0))) => {}                         // no MQTT bytes yet
                Ok(Some((_, got))) => return Poll::Ready(Ok(got)),
            }
        }
    }

    /// When the kernel received what the last read returned (see `Socket::received_at`).
    pub fn received_at(&self) -> u64 {
        self.socket.received_at()
    }

    /// What the socket holds right now, without waiting, through the layers into `buf`:
    /// the number of raw bytes read (0: nothing, closed or failed).
    pub fn try_read(&mut self, buf: &mut BytesMut, want: usize) -> usize {
        if self.is_plain() {
            super::bufpool::ready(buf);
            let start = buf.len();
            buf.resize(start + want, 0);
            let n = self.socket.try_read(&mut buf[start..]).unwrap_or(0);
            buf.truncate(start + n);
            return n;
        }
        if self.closed() {
            return 0;
        }
        match self.read_now(buf) {
            Ok(Some((n, _))) => n,
            Ok(None) => 0,
            Err(_) => {
                layered(&mut self.l).closed = true;
                0
            }
        }
    }

    /// One read of what the socket holds into the shard's scratch buffer, through the
    /// layers into `buf`: `None` when it held nothing, else (raw bytes read, 0 at the end of
    /// the stream; MQTT bytes appended).
    fn read_now(&mut self, buf: &mut BytesMut) -> io::Result<Option<(usize, usize)>> {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            match self.socket.try_read(&mut scratch) {
                Ok(0) => Ok(Some((0, 0))),
                Ok(n) => self.absorb(&scratch[..n], buf).map(|got| Some((n, got))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    /// Runs raw bytes the socket gave through the layers, MQTT bytes into `buf`.
    fn absorb(&mut self, raw: &[u8], buf: &mut BytesMut) -> io::Result<usize> {
        super::bufpool::ready(buf);
        let before = buf.len();
        let Layered {
            layer,
            bufs: b,
            closed,
        } = layered(&mut self.l);
        let result = match layer {
            Layer::Plain => {
                buf.extend_from_slice(raw);
                Ok(())
            }
            Layer::Tls(tls) => tls.feed(raw, buf, &mut b.pending).map_err(tls_err),
            Layer::Ws(ws) => ws.feed(raw, buf, &mut b.pending).map_err(ws_err),
            Layer::Wss(tls, ws) => {
                // The plaintext and the WebSocket's replies use the stream's own buffers
                // (kept between reads): nothing is allocated per read.
                let fed = tls.feed(raw, &mut b.plain, &mut b.pending);
                if !b.plain.is_empty() {
                    b.framed.clear();
                    let unframed = ws.feed(&b.plain, buf, &mut b.framed);
                    b.plain.clear();
                    if !b.framed.is_empty() {
                        tls.encrypt(&b.framed, &mut b.pending);
                    }
                    unframed.map_err(ws_err)?;
                }
                fed.map_err(tls_err)
            }
        };
        let got = buf.len() - before;
        match result {
            Ok(()) => Ok(got),
            // The peer closed its layer: what came before still counts; reads end after.
            Err(_) if got > 0 => {
                *closed = true;
                Ok(got)
            }
            Err(e) => {
                *closed = true;
                Err(e)
            }
        }
    }

    /// Writes MQTT bytes (through the layers), after any output the layers still hold. The
    /// layers encode at once; the future holds only its arguments and how much is written,
    /// and a layered stream's unwritten output stays in the stream if it is dropped.
    pub fn write_all<'a>(
        &'a mut self,
        data: &'a [u8],
    ) -> impl std::future::Future<Output = io::Result<()>> + 'a {
        let plain = self.is_plain();
        if !plain {
            self.encode(data);
        }
        let mut done = 0;
        std::future::poll_fn(move |cx| {
            use std::task::Poll;
            if plain {
                return self.socket.poll_write_all(cx, data, &mut done);
            }
            let Stream { socket, l } = &mut *self;
            let b = &mut layered(l).bufs;
            while !b.pending.is_empty() {
                match socket.poll_write(cx, &b.pending) {
                    Poll::Ready(Ok(n)) => {
                        b.pending.drain(..n);
                    }
                    Poll::Ready(Err(e)) => {
                        b.pending.clear();
                        return Poll::Ready(Err(e));
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
            b.shrink_pending();
            Poll::Ready(Ok(()))
        })
    }

    /// Writes MQTT bytes without waiting: a plain stream writes what the socket takes now
    /// and returns how many bytes that was (`data.len()` when all); a layered stream encodes
    /// all of `data`, writes what the socket takes of its pending output, and keeps the rest
    /// ([`Stream::has_pending`]). An error ends the stream's writing.
    pub fn try_write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.is_plain() {
            return self.socket.try_write_all(data);
        }
        self.encode(data);
        let Stream { socket, l } = &mut *self;
        let b = &mut layered(l).bufs;
        match socket.try_write_all(&b.pending) {
            Ok(n) => {
                b.pending.drain(..n);
                b.shrink_pending();
                Ok(data.len())
            }
            Err(e) => {
                b.pending.clear();
                Err(e)
            }
        }
    }

    /// Runs MQTT bytes through the layers into the pending output.
    fn encode(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let Layered { layer, bufs: b, .. } = layered(&mut self.l);
        match layer {
            Layer::Plain => b.pending.extend_from_slice(data),
            Layer::Tls(tls) => tls.encrypt(data, &mut b.pending),
            Layer::Ws(ws) => ws.encode(data, &mut b.pending),
            Layer::Wss(tls, ws) => {
                b.framed.clear();
                ws.encode(data, &mut b.framed);
                tls.encrypt(&b.framed, &mut b.pending);
            }
        }
    }

    /// Ends the sending direction: the layers' goodbye (TLS close_notify, WebSocket close)
    /// is sent if the socket takes it at once, then the socket's FIN.
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        let mut bye = Vec::new();
        let Some(l) = self.l.as_deref_mut() else {
            return self.socket.shutdown_write();
        };
        match &mut l.layer {
            Layer::Plain => {}
            Layer::Tls(tls) => tls.close(&mut bye),
            Layer::Ws(ws) => ws.close(&mut bye),
            Layer::Wss(tls, ws) => {
                let mut frame = Vec::new();
                ws.close(&mut frame);
                tls.encrypt(&frame, &mut bye);
                tls.close(&mut bye);
            }
        }
        if !bye.is_empty() {
            let _ = self.socket.try_write(&bye);
        }
        self.socket.shutdown_write()
    }
}

/// A plain read of at most `want` bytes appended to `buf`; `buf` is left as it was when the
/// future is dropped while waiting.
async fn read_plain(socket: &mut Socket, buf: &mut BytesMut, want: usize) -> io::Result<usize> {
    let start = buf.len();
    buf.resize(start + want, 0);
    let mut guard = TruncateOnDrop { buf, len: start };
    let res = socket.read(&mut guard.buf[start..]).await;
    if let Ok(n) = res {
        guard.len = start + n;
    }
    res
}

/// Shrinks a buffer back to `len` when dropped, however the owning future ends.
struct TruncateOnDrop<'a> {
    buf: &'a mut BytesMut,
    len: usize,
}

impl Drop for TruncateOnDrop<'_> {
    fn drop(&mut self) {
        self.buf.truncate(self.len);
    }
}

/// What a listener's handshake needs: the TLS configuration (TLS listeners) and the
/// WebSocket settings (WebSocket listeners).
#[derive(Clone)]
pub struct Handshake {
    pub kind: ListenerKind,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub ws: WsSettings,
}

/// Runs a new connection's TLS handshake and/or WebSocket upgrade; MQTT bytes that came
/// with them are left in `buf`. The caller bounds it in time.
pub async fn open(socket: Socket, hs: &Handshake, buf: &mut BytesMut) -> io::Result<Stream> {
    let mut stream = Stream::plain(socket);
    if hs.kind.uses_tls() {
        let config = hs
            .tls
            .clone()
            .ok_or_else(|| io::Error::other("no TLS certificate loaded"))?;
        let tls = TlsLayer::new(config).map_err(io::Error::other)?;
        let Layered { layer, bufs: b, .. } = layered(&mut stream.l);
        *layer = Layer::Tls(Box::new(tls));
        // Until the handshake is done: read, feed, write what TLS answers.
        b.raw.resize(RAW_CHUNK, 0);
        let mut early = BytesMut::new();
        loop {
            let Layer::Tls(tls) = layer else {
                unreachable!("set above")
            };
            if !tls.is_handshaking() {
                break;
            }
            let n = stream.socket.read(&mut b.raw).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let fed = tls.feed(&b.raw[..n], &mut early, &mut b.pending);
            if !b.pending.is_empty() {
                // An alert goes out before the error is returned.
                let _ = stream.socket.write_all(&b.pending).await;
                b.pending.clear();
            }
            fed.map_err(tls_err)?;
        }
        if hs.kind == ListenerKind::Ssl {
            buf.extend_from_slice(&early);
            b.raw = Vec::new();
            return Ok(stream);
        }
        b.plain = early;
    }
    if hs.kind.uses_ws() {
        // The upgrade request arrives in the clear (ws) or inside TLS (wss).
        let mut head = std::mem::take(&mut layered(&mut stream.l).bufs.plain);
        let ws = loop {
            let mut answer = Vec::new();
            let upgraded = WsLayer::upgrade(&hs.ws, &mut head, &mut answer);
            if !answer.is_empty() {
                let Layered { layer, bufs: b, .. } = layered(&mut stream.l);
                match layer {
                    Layer::Tls(tls) => tls.encrypt(&answer, &mut b.pending),
                    _ => b.pending.extend_from_slice(&answer),
                }
                let _ = stream.socket.write_all(&b.pending).await;
                b.pending.clear();
            }
            if let Some(ws) = upgraded.map_err(ws_err)? {
                break ws;
            }
            if head.len() > MAX_UPGRADE {
                return Err(io::Error::other("websocket upgrade too large"));
            }
            let tls = matches!(layered(&mut stream.l).layer, Layer::Tls(_));
            let got = match tls {
                true => stream.read_layer_into(&mut head).await?,
                false => read_plain(&mut stream.socket, &mut head, 4096).await?,
            };
            if got == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        };
        let layer = &mut layered(&mut stream.l).layer;
        *layer = match std::mem::replace(layer, Layer::Plain) {
            Layer::Tls(tls) => Layer::Wss(tls, Box::new(ws)),
            _ => Layer::Ws(Box::new(ws)),
        };
        // A first frame may have come with the request.
        if !head.is_empty() {
            let rest = head.to_vec();
            stream.raw_feed_ws(&rest, buf)?;
        }
    }
    if let Some(l) = stream.l.as_mut() {
        l.bufs.raw = Vec::new();
    }
    Ok(stream)
}

impl Stream {
    /// During a secure WebSocket upgrade: TLS plaintext from one read into `into`.
    async fn read_layer_into(&mut self, into: &mut BytesMut) -> io::Result<usize> {
        let Layered { layer, bufs: b, .. } = layered(&mut self.l);
        if b.raw.len() < RAW_CHUNK {
            b.raw.resize(RAW_CHUNK, 0);
        }
        loop {
            let n = self.socket.read(&mut b.raw).await?;
            if n == 0 {
                return Ok(0);
            }
            let Layer::Tls(tls) = &mut *layer else {
                return Err(io::Error::other("not a TLS stream"));
            };
            let before = into.len();
            tls.feed(&b.raw[..n], into, &mut b.pending)
                .map_err(tls_err)?;
            if into.len() > before {
                return Ok(into.len() - before);
            }
        }
    }

    /// WebSocket bytes that came with the upgrade request (already decrypted): unframed into
    /// `buf`.
    fn raw_feed_ws(&mut self, bytes: &[u8], buf: &mut BytesMut) -> io::Result<()> {
        let mut replies = Vec::new();
        let Layered { layer, bufs: b, .. } = layered(&mut self.l);
        let result = match layer {
            Layer::Ws(ws) | Layer::Wss(_, ws) => ws.feed(bytes, buf, &mut replies),
            _ => return Ok(()),
        };
        match layer {
            Layer::Wss(tls, _) if !replies.is_empty() => tls.encrypt(&replies, &mut b.pending),
            _ => b.pending.extend_from_slice(&replies),
        }
        result.map_err(ws_err)
    }
}
