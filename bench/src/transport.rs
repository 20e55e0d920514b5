//! How a connection's MQTT bytes reach the broker: plain TCP, TLS (rustls), WebSocket, or
//! WebSocket over TLS (`--tls`, `--ws`, both).
//!
//! Owns: the run's [`TransportCfg`] (the shared rustls [`ClientConfig`]: trusted CAs from
//! `--cafile` or the test-only `--insecure` verifier, resumption on or off; the WebSocket
//! host and path) and a connection's [`Link`]: its socket with the optional TLS and WebSocket
//! layers. The caller keeps writing MQTT bytes into its own buffer and calls
//! [`Link::flush`]; it calls [`Link::read_some`] when the socket is readable and finds the
//! broker's MQTT bytes appended to its read buffer. The TLS handshake and the WebSocket upgrade
//! happen inside those two calls, driven by the socket's readiness like the rest; MQTT bytes
//! written before they finish wait (in rustls, or in the caller's buffer) and go out after.
//! Works over a non-blocking `mio` socket (the workers) and a blocking std socket with a read
//! timeout (the probes) alike: `WouldBlock` / `TimedOut` come back as errors of those kinds.
//! Must never: allocate per message itself (one socket read lands in the caller's scratch
//! buffer; WebSocket frames are built in a reused buffer). rustls, though, allocates one
//! buffer per TLS record it seals or opens (its buffered API does, and its unbuffered API
//! still allocates when sealing): a record carries every MQTT packet of one flush, up to
//! 16 KiB.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use bytes::{Buf, BytesMut};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{
    ClientSessionStore, Resumption, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, HandshakeKind, NamedGroup,
    RootCertStore, SignatureScheme,
};
use serde::Serialize;

use crate::cli::Opts;
use crate::ws::WsClient;

/// The layers between MQTT and TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl Transport {
    pub fn new(tls: bool, ws: bool) -> Transport {
        match (tls, ws) {
            (false, false) => Transport::Tcp,
            (true, false) => Transport::Tls,
            (false, true) => Transport::Ws,
            (true, true) => Transport::Wss,
        }
    }

    pub fn tls(self) -> bool {
        matches!(self, Transport::Tls | Transport::Wss)
    }

    pub fn ws(self) -> bool {
        matches!(self, Transport::Ws | Transport::Wss)
    }

    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }
}

/// What every connection of a run is opened with; cheap to clone (the TLS configuration and
/// its session cache are shared).
#[derive(Debug, Clone)]
pub struct TransportCfg {
    pub kind: Transport,
    /// Set exactly when `kind` has TLS.
    pub tls: Option<Arc<ClientConfig>>,
    /// `--tls-resume`: the session store inside `tls`, shared by every connection.
    pub sessions: Option<Arc<SessionStore>>,
    /// What the broker's certificate is checked against, and the SNI sent.
    pub server_name: ServerName<'static>,
    /// The upgrade request's `Host` header (`host:port`).
    pub ws_host: String,
    /// The upgrade request's path.
    pub ws_path: String,
}

impl TransportCfg {
    /// The transport the options ask for (`--tls`, `--cafile`, `--insecure`,
    /// `--server-name`, `--tls-resume`, `--ws`, `--ws-path`).
    pub fn from_opts(opts: &Opts) -> Result<TransportCfg, String> {
        let kind = Transport::new(opts.tls, opts.ws);
        let name = opts.server_name.as_deref().unwrap_or(&opts.host);
        let server_name = ServerName::try_from(name)
            .map(|n| n.to_owned())
            .map_err(|e| format!("--server-name {name}: {e}"))?;
        let sessions = opts.tls_resume.then(|| Arc::new(SessionStore::default()));
        let tls = match kind.tls() {
            true => Some(client_config(
                opts.cafile.as_deref(),
                opts.insecure,
                sessions.clone(),
            )?),
            false => None,
        };
        let ws_host = if opts.host.contains(':') {
            format!("[{}]:{}", opts.host, opts.port)
        } else {
            format!("{}:{}", opts.host, opts.port)
        };
        Ok(TransportCfg {
            kind,
            tls,
            sessions,
            server_name,
            ws_host,
            ws_path: opts.ws_path().to_string(),
        })
    }

    /// A new connection's layers over `sock` (already connected, or connecting): the TLS
    /// ClientHello and the WebSocket upgrade request are queued, sent by the first flush.
    pub fn link<S>(&self, sock: S) -> io::Result<Link<S>> {
        let tls = match &self.tls {
            Some(config) => Some(Box::new(
                ClientConnection::new(config.clone(), self.server_name.clone())
                    .map_err(|e| io::Error::other(format!("TLS: {e}")))?,
            )),
            None => None,
        };
        let ws = self
            .kind
            .ws()
            .then(|| Box::new(WsClient::new(&self.ws_host, &self.ws_path, seed())));
        Ok(Link { sock, tls, ws })
    }
}

/// A different starting point for every WebSocket client's masks and key.
fn seed() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (t ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)).rotate_left(17) ^ u64::from(std::process::id())
}

/// The ring crypto provider, the one the broker uses, offering X25519 first.
///
/// rustls 0.23 marks `ring::default_provider` deprecated (ring has no post-quantum key
/// exchange; that needs aws-lc-rs and its C build, which this project does not take). It is
/// still how one gets the ring provider, so the warning is allowed here and nowhere else.
///
/// That provider lists P-384 first, so a client built on it sends a P-384 key share and the
/// handshake's ECDH costs both sides several times what X25519 does (most of the CPU of a
/// handshake, measured). OpenSSL-based clients and browsers offer X25519 first, so the
/// generator does too: a broker's handshake rate is then measured with the key exchange its
/// real clients use, and the same against every broker.
#[allow(deprecated)]
fn ring_provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::kx_group::{SECP256R1, SECP384R1, X25519};
    let mut provider = rustls::crypto::ring::default_provider();
    provider.kx_groups = vec![X25519, SECP256R1, SECP384R1];
    Arc::new(provider)
}

/// The client configuration every connection shares: TLS 1.3 and 1.2, the CAs of `cafile`
/// (PEM) or, with `insecure`, no verification at all; session resumption only with a
/// `sessions` store (shared by all connections through the `Arc`), so that by default every
/// connection is a full handshake.
pub fn client_config(
    cafile: Option<&Path>,
    insecure: bool,
    sessions: Option<Arc<SessionStore>>,
) -> Result<Arc<ClientConfig>, String> {
    let provider = ring_provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let mut config = match (cafile, insecure) {
        (Some(path), _) => {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("--cafile {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("--cafile {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("--cafile {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("--cafile {}: no certificate in it", path.display()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        (None, true) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(
                provider
                    .signature_verification_algorithms
                    .supported_schemes(),
            )))
            .with_no_client_auth(),
        (None, false) => {
            return Err(
                "--tls needs --cafile PATH (the CA to trust) or --insecure (no verification)"
                    .into(),
            )
        }
    };
    config.resumption = match sessions {
        Some(store) => Resumption::store(store),
        None => Resumption::disabled(),
    };
    Ok(Arc::new(config))
}

/// Most TLS 1.3 tickets [`SessionStore`] keeps per server.
pub const MAX_TICKETS: usize = 65_536;

/// `--tls-resume`'s session store, in memory like rustls' default one
/// (`ClientSessionMemoryCache`), which keeps only 8 TLS 1.3 tickets per server: a ticket is
/// used once, so in a storm of concurrent connections most would find none and make a full
/// handshake (2000 connections, 100 at a time: about half did). This one keeps up to
/// [`MAX_TICKETS`] and hands out the newest first (the one the broker is likeliest to still
/// remember, like a device that reconnects with its latest ticket). TLS 1.2 keeps one
/// session per server, which every connection may reuse.
#[derive(Debug, Default)]
pub struct SessionStore {
    /// Per server name (a run talks to one).
    servers: Mutex<Vec<(ServerName<'static>, Sessions)>>,
}

#[derive(Debug, Default)]
struct Sessions {
    kx_hint: Option<NamedGroup>,
    tls12: Option<Tls12ClientSessionValue>,
    tls13: VecDeque<Tls13ClientSessionValue>,
}

impl SessionStore {
    fn with<R>(&self, name: &ServerName<'_>, f: impl FnOnce(&mut Sessions) -> R) -> Option<R> {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        servers
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, s)| f(s))
    }

    fn with_new<R>(&self, name: ServerName<'static>, f: impl FnOnce(&mut Sessions) -> R) -> R {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        let at = match servers.iter().position(|(n, _)| *n == name) {
            Some(at) => at,
            None => {
                servers.push((name, Sessions::default()));
                servers.len() - 1
            }
        };
        f(&mut servers[at].1)
    }

    /// How many connections to `name` can resume now: the TLS 1.3 tickets held, or
    /// `usize::MAX` with a (reusable) TLS 1.2 session.
    pub fn resumable(&self, name: &ServerName<'_>) -> usize {
        self.with(name, |s| match s.tls12 {
            Some(_) => usize::MAX,
            None => s.tls13.len(),
        })
        .unwrap_or(0)
    }
}

impl ClientSessionStore for SessionStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.with_new(server_name, |s| s.kx_hint = Some(group));
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.with(server_name, |s| s.kx_hint).flatten()
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.with_new(server_name, |s| s.tls12 = Some(value));
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.with(server_name, |s| s.tls12.clone()).flatten()
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.with(server_name, |s| s.tls12 = None);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        self.with_new(server_name, |s| {
            if s.tls13.len() >= MAX_TICKETS {
                s.tls13.pop_front();
            }
            s.tls13.push_back(value);
        });
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        self.with(server_name, |s| s.tls13.pop_back()).flatten()
    }
}

/// `--insecure`, FOR TESTING ONLY: takes any certificate for any name and any handshake
/// signature, so the connection is encrypted but the broker is not authenticated (anyone on
/// the path could pose as it). It lets the generator measure a broker that has a throw-away
/// certificate; nothing else should use it.
#[derive(Debug)]
struct AcceptAnyCertificate(Vec<SignatureScheme>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.clone()
    }
}

/// One connection: its socket and the layers above it.
pub struct Link<S> {
    pub sock: S,
    tls: Option<Box<ClientConnection>>,
    ws: Option<Box<WsClient>>,
}

impl<S: Read + Write> Link<S> {
    /// Sends what the socket takes now: MQTT bytes from `wbuf` (framed, encrypted as the
    /// layers say) and whatever the layers have queued themselves (handshake messages, the
    /// upgrade request, pongs). What cannot go yet stays in `wbuf` or in the layers; the
    /// next flush (on writable, or after a read) continues.
    pub fn flush(&mut self, wbuf: &mut BytesMut) -> io::Result<()> {
        let Link { sock, tls, ws } = self;
        loop {
            if let Some(w) = ws.as_deref_mut() {
                w.frame_from(wbuf);
            }
            let plain: &mut BytesMut = match ws.as_deref_mut() {
                Some(w) => &mut w.out,
                None => &mut *wbuf,
            };
            let blocked = match tls.as_deref_mut() {
                None => write_out(sock, plain)?,
                Some(t) => tls_out(t, sock, plain)?,
            };
            // Frames stop at a high-water mark: frame more once those went out.
            let more = !blocked
                && plain.is_empty()
                && !wbuf.is_empty()
                && ws.as_deref().is_some_and(WsClient::is_open);
            if !more {
                return Ok(());
            }
        }
    }

    /// One read from the socket into `scratch`, through the layers: the broker's MQTT bytes
    /// are appended to `rbuf`. Returns the bytes the socket gave; `WouldBlock` (or
    /// `TimedOut`) when it had none; an error when the broker closed the connection, the TLS
    /// session or the WebSocket, or sent something the layers refuse. Call [`Link::flush`]
    /// after it: reads can leave things to send (handshake messages, pongs, MQTT bytes held
    /// back until the upgrade).
    pub fn read_some(&mut self, scratch: &mut [u8], rbuf: &mut BytesMut) -> io::Result<usize> {
        let Link { sock, tls, ws } = self;
        let n = loop {
            match sock.read(scratch) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the broker closed the connection",
                    ))
                }
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        let Some(t) = tls.as_deref_mut() else {
            deliver(ws, &scratch[..n], rbuf)?;
            return Ok(n);
        };
        let mut input = &scratch[..n];
        while !input.is_empty() {
            let before = input.len();
            t.read_tls(&mut input)?;
            if input.len() == before {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "TLS: bytes after the broker's close_notify",
                ));
            }
            if let Err(e) = t.process_new_packets() {
                // Best effort: the alert rustls queued tells the broker why.
                let _ = t.write_tls(sock);
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("TLS: {e}"),
                ));
            }
            loop {
                let mut plain = t.reader();
                match plain.fill_buf() {
                    Ok([]) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the broker closed the TLS session",
                        ))
                    }
                    Ok(chunk) => {
                        let len = chunk.len();
                        deliver(ws, chunk, rbuf)?;
                        plain.consume(len);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(n)
    }

    /// Whether the TLS handshake (done) resumed an earlier session.
    pub fn tls_resumed(&self) -> bool {
        self.tls
            .as_ref()
            .is_some_and(|t| t.handshake_kind() == Some(HandshakeKind::Resumed))
    }

    /// Sends what `wbuf` holds (a DISCONNECT), then the WebSocket close frame and the TLS
    /// close_notify, as far as the socket takes them now.
    pub fn close(&mut self, wbuf: &mut BytesMut) -> io::Result<()> {
        self.flush(wbuf)?;
        if let Some(w) = self.ws.as_deref_mut() {
            w.close();
            self.flush(wbuf)?;
        }
        if let Some(t) = self.tls.as_deref_mut() {
            t.send_close_notify();
            self.flush(wbuf)?;
        }
        Ok(())
    }
}

/// The bytes a layer below MQTT decoded: into the WebSocket decoder, or straight to `rbuf`.
fn deliver(ws: &mut Option<Box<WsClient>>, data: &[u8], rbuf: &mut BytesMut) -> io::Result<()> {
    match ws.as_deref_mut() {
        Some(w) => w.feed(data, rbuf),
        None => {
            rbuf.extend_from_slice(data);
            Ok(())
        }
    }
}

/// Writes `buf` to `sock` until it is empty or the socket would block (`Ok(true)`).
fn write_out<W: Write>(sock: &mut W, buf: &mut BytesMut) -> io::Result<bool> {
    while !buf.is_empty() {
        match sock.write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf.advance(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Hands `plain` to rustls (as much as its buffer takes; before the handshake ends it holds
/// it back) and writes the records it has to `sock`, until both are empty, the socket would
/// block (`Ok(true)`), or neither moves.
fn tls_out<W: Write>(
    tls: &mut ClientConnection,
    sock: &mut W,
    plain: &mut BytesMut,
) -> io::Result<bool> {
    loop {
        let mut moved = false;
        while !plain.is_empty() {
            match tls.writer().write(plain) {
                Ok(0) => break,
                Ok(n) => {
                    plain.advance(n);
                    moved = true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        while tls.wants_write() {
            match tls.write_tls(sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => moved = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if plain.is_empty() || !moved {
            return Ok(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_offers_x25519_first() {
        let c = client_config(None, true, None).unwrap();
        let groups: Vec<NamedGroup> = c
            .crypto_provider()
            .kx_groups
            .iter()
            .map(|g| g.name())
            .collect();
        assert_eq!(
            groups,
            [
                NamedGroup::X25519,
                NamedGroup::secp256r1,
                NamedGroup::secp384r1
            ]
        );
    }

    #[test]
    fn tls_needs_a_ca_or_insecure_and_a_readable_ca() {
        let e = client_config(None, false, None).unwrap_err();
        assert!(e.contains("--cafile") && e.contains("--insecure"), "{e}");
        let e = client_config(Some(Path::new("/nonexistent/ca.pem")), false, None).unwrap_err();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = client_config(Some(&empty), false, None).unwrap_err();
        assert!(e.contains("no certificate"), "{e}");
    }

    #[test]
    fn resumption_is_off_unless_a_store_is_given() {
        let off = client_config(None, true, None).unwrap();
        let store = Arc::new(SessionStore::default());
        let on = client_config(None, true, Some(store.clone())).unwrap();
        // rustls does not expose the setting; its Debug output does.
        assert!(format!("{:?}", off.resumption).contains("NoClientSessionStorage"));
        assert!(format!("{:?}", on.resumption).contains("SessionStore"));
        let name = ServerName::try_from("localhost").unwrap();
        assert_eq!(store.resumable(&name), 0);
        store.set_kx_hint(name.clone(), NamedGroup::X25519);
        assert_eq!(store.kx_hint(&name), Some(NamedGroup::X25519));
        assert_eq!(store.resumable(&name), 0);
        assert!(store.take_tls13_ticket(&name).is_none());
    }
}
