//! The TLS layer of the TLS (8883) and secure WebSocket (8084) listeners, on rustls.
//!
//! Owns: turning `listener.ssl.external.*`-style settings ([`TlsSettings`]) into one shared
//! [`rustls::ServerConfig`] ([`server_config`]: PEM certificate chain, private key, optional CA
//! for client certificates), and one [`TlsLayer`] per connection that turns the bytes a socket
//! read into plaintext plus the bytes to write back ([`TlsLayer::feed`]), and plaintext into
//! TLS records ([`TlsLayer::encrypt`]). It also reads the client certificate's subject CN for
//! `peer_cert_as_username = cn` ([`TlsLayer::peer_common_name`]).
//!
//! Pure: no sockets, no threads, no clock. The connection task on a shard does the I/O and
//! calls in here; only [`server_config`] touches the file system, once, when a listener starts.
//!
//! Must never: block; panic on bytes from the peer (every rustls error becomes a [`TlsError`],
//! with the alert rustls wants to send still handed out); buffer without bound (nothing is held
//! here beyond rustls's own bounded buffers: a `feed` hands out all the plaintext of the
//! records its `raw` completed, at most `raw.len()` plus one record (16 KiB) begun in an
//! earlier read, and every byte rustls has to send).

use std::fmt;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Whether the listener asks the client for a certificate (EMQ X's `listener.ssl.*.verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verify {
    /// No client certificate is requested.
    #[default]
    VerifyNone,
    /// A client certificate is requested and must chain to `cacertfile`.
    VerifyPeer,
}

impl Verify {
    /// Parses the configuration words `verify_none` and `verify_peer`.
    pub fn parse(s: &str) -> Result<Verify, String> {
        match s {
            "verify_none" => Ok(Verify::VerifyNone),
            "verify_peer" => Ok(Verify::VerifyPeer),
            other => Err(format!(
                "verify: expected verify_none or verify_peer, got {other:?}"
            )),
        }
    }

    /// The configuration word for this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Verify::VerifyNone => "verify_none",
            Verify::VerifyPeer => "verify_peer",
        }
    }
}

/// The TLS settings of one listener; the names follow EMQ X's `listener.ssl.external.*`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    /// PEM file with the server certificate chain, end-entity certificate first.
    pub certfile: String,
    /// PEM file with the server's private key (PKCS#8, PKCS#1 or SEC1).
    pub keyfile: String,
    /// PEM file with the CA certificates client certificates must chain to; `""` = none.
    pub cacertfile: String,
    /// Whether client certificates are requested.
    pub verify: Verify,
    /// With [`Verify::VerifyPeer`]: refuse a client that presents no certificate. Ignored with
    /// [`Verify::VerifyNone`].
    pub fail_if_no_peer_cert: bool,
}

/// Builds the server configuration shared by every connection of a listener: TLS 1.3 and
/// TLS 1.2 with the ring provider, no ALPN required, and client certificate checking as
/// [`TlsSettings::verify`] says. Errors name the setting, the file and what is wrong.
pub fn server_config(s: &TlsSettings) -> Result<Arc<ServerConfig>, String> {
    let certs = read_certs("certfile", &s.certfile)?;
    let key = read_key(&s.keyfile)?;
    let provider = ring_provider();

    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("tls: {e}"))?;

    let builder = match s.verify {
        Verify::VerifyNone => builder.with_no_client_auth(),
        Verify::VerifyPeer => {
            if s.cacertfile.is_empty() {
                return Err("cacertfile required for verify_peer".to_string());
            }
            let verifier = client_verifier(&s.cacertfile, s.fail_if_no_peer_cert, provider)?;
            builder.with_client_cert_verifier(verifier)
        }
    };

    let config = builder.with_single_cert(certs, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => format!(
            "keyfile {}: private key does not match the certificate in certfile {}",
            s.keyfile, s.certfile
        ),
        other => format!("keyfile {}: unusable private key: {other}", s.keyfile),
    })?;
    Ok(Arc::new(config))
}

/// The ring crypto provider: TLS 1.3 and 1.2 suites, X25519 / P-256 / P-384 key exchange.
///
/// rustls 0.23.48 marks `ring::default_provider` deprecated because ring has no post-quantum
/// key exchange (that needs the aws-lc-rs provider and its C/cmake build, which this project
/// does not take). It is still the supported way to get the ring provider, so the warning is
/// allowed here, in this one place.
#[allow(deprecated)]
fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The verifier for [`Verify::VerifyPeer`]: client certificates must chain to `cacertfile`.
fn client_verifier(
    cacertfile: &str,
    fail_if_no_peer_cert: bool,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs("cacertfile", cacertfile)? {
        roots
            .add(cert)
            .map_err(|e| format!("cacertfile {cacertfile}: bad CA certificate: {e}"))?;
    }
    let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    if !fail_if_no_peer_cert {
        builder = builder.allow_unauthenticated();
    }
    builder
        .build()
        .map_err(|e| format!("cacertfile {cacertfile}: {e}"))
}

/// Reads a PEM file that is not empty; `what` names the setting in errors.
fn read_pem_file(what: &str, path: &str) -> Result<Vec<u8>, String> {
    if path.is_empty() {
        return Err(format!("{what} not set"));
    }
    let bytes = std::fs::read(Path::new(path)).map_err(|e| format!("{what} {path}: {e}"))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(format!("{what} {path}: file is empty"));
    }
    Ok(bytes)
}

/// Every certificate in a PEM file, in file order; at least one.
fn read_certs(what: &str, path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read_pem_file(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} {path}: bad PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what} {path}: no certificate found"));
    }
    Ok(certs)
}

/// The first private key in a PEM file: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
fn read_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = read_pem_file("keyfile", path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => {
            format!("keyfile {path}: no private key (expected a PKCS#8, PKCS#1 or SEC1 PEM block)")
        }
        other => format!("keyfile {path}: bad PEM: {other}"),
    })
}

/// Why a [`TlsLayer`] connection cannot go on. Display gives a short reason for a debug log
/// line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsError {
    /// The peer sent close_notify: a clean end. Plaintext that came before it was handed out.
    PeerClosed,
    /// The handshake failed: not TLS at all, no common version or cipher suite, a client
    /// certificate missing or not signed by the CA, an alert from the peer, ...
    Handshake(String),
    /// A protocol error after the handshake: a corrupt or undecryptable record, an alert.
    Protocol(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::PeerClosed => f.write_str("tls: peer sent close_notify"),
            TlsError::Handshake(reason) => write!(f, "tls handshake: {reason}"),
            TlsError::Protocol(reason) => write!(f, "tls: {reason}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// The TLS state of one connection: bytes from the socket in, plaintext and bytes for the
/// socket out. `Send`, so a connection can move to another shard.
pub struct TlsLayer {
    conn: ServerConnection,
    /// The peer's close_notify was seen: every later `feed` answers [`TlsError::PeerClosed`].
    peer_closed: bool,
    /// [`TlsLayer::close`] was called: `encrypt` sends nothing more.
    closed: bool,
}

// The broker moves a connection, TLS state included, to another shard.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<TlsLayer>();
};

impl fmt::Debug for TlsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsLayer")
            .field("handshaking", &self.conn.is_handshaking())
            .field("version", &self.conn.protocol_version())
            .field("peer_closed", &self.peer_closed)
            .field("closed", &self.closed)
            .finish()
    }
}

impl TlsLayer {
    /// A new server-side connection in its handshake.
    pub fn new(config: Arc<ServerConfig>) -> Result<TlsLayer, String> {
        let conn = ServerConnection::new(config).map_err(|e| format!("tls: {e}"))?;
        Ok(TlsLayer {
            conn,
            peer_closed: false,
            closed: false,
        })
    }

    /// Takes every byte of `raw` (what the socket read), appends all the plaintext it
    /// decrypts to `plain`, and appends to `out` whatever TLS wants to send back (handshake
    /// messages, alerts, session tickets). On an error the alert for the peer is still in
    /// `out`, and on [`TlsError::PeerClosed`] the plaintext that came before the close_notify
    /// is still in `plain`: the caller writes `out`, handles `plain`, then closes.
    ///
    /// Bound: `plain` grows by the records `raw` completes, at most `raw.len()` plus one
    /// record (16 KiB) begun in an earlier feed; the caller bounds `raw` per read.
    pub fn feed(
        &mut self,
        raw: &[u8],
        plain: &mut BytesMut,
        out: &mut Vec<u8>,
    ) -> Result<(), TlsError> {
        let result = if self.peer_closed {
            Err(TlsError::PeerClosed)
        } else {
            self.take_in(raw, plain)
        };
        if result == Err(TlsError::PeerClosed) {
            self.peer_closed = true;
        }
        self.drain_tls(out);
        result
    }

    /// Feeds `raw` to rustls one read at a time, processing after each so that its plaintext
    /// buffer is always emptied into `plain` before the next read.
    fn take_in(&mut self, raw: &[u8], plain: &mut BytesMut) -> Result<(), TlsError> {
        let mut rest = raw;
        while !rest.is_empty() {
            // An empty slice must never reach `read_tls`: it reads as end of stream.
            let n = self
                .conn
                .read_tls(&mut rest)
                .map_err(|e| self.error(e.to_string()))?;
            self.process(plain)?;
            if n == 0 {
                // rustls takes no more bytes without having reported why.
                return Err(self.error("record too large to buffer".to_string()));
            }
        }
        // Also surfaces a fatal error of an earlier feed when `raw` is empty.
        self.process(plain)
    }

    /// Processes the records rustls has read and moves all plaintext into `plain`.
    fn process(&mut self, plain: &mut BytesMut) -> Result<(), TlsError> {
        let state = match self.conn.process_new_packets() {
            Ok(state) => state,
            Err(e) => return Err(self.error(e.to_string())),
        };
        let mut reader = self.conn.reader();
        loop {
            match reader.fill_buf() {
                Ok([]) => break, // close_notify, all plaintext read
                Ok(chunk) => {
                    let n = chunk.len();
                    plain.extend_from_slice(chunk);
                    reader.consume(n);
                }
                // WouldBlock: no more plaintext for now.
                Err(_) => break,
            }
        }
        if state.peer_has_closed() {
            return Err(TlsError::PeerClosed);
        }
        Ok(())
    }

    fn error(&self, reason: String) -> TlsError {
        if self.conn.is_handshaking() {
            TlsError::Handshake(reason)
        } else {
            TlsError::Protocol(reason)
        }
    }

    /// Appends everything rustls has to send to `out`; returns how many bytes that was.
    fn drain_tls(&mut self, out: &mut Vec<u8>) -> usize {
        let mut total = 0;
        while self.conn.wants_write() {
            match self.conn.write_tls(out) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
        total
    }

    /// Encrypts application data of any size into TLS records appended to `out`.
    ///
    /// Meant for after the handshake (the broker answers only after a CONNECT, which comes
    /// after it). Before it rustls holds the plaintext until the handshake completes, up to its
    /// buffer limit (64 KiB); bytes past that are dropped. After a fatal error or after
    /// [`TlsLayer::close`] nothing more is sent.
    pub fn encrypt(&mut self, plain: &[u8], out: &mut Vec<u8>) {
        if self.closed {
            return;
        }
        let mut rest = plain;
        while !rest.is_empty() {
            // rustls takes at most its buffer limit per write: drain and write again.
            let taken = match self.conn.writer().write(rest) {
                Ok(n) => n,
                Err(_) => break,
            };
            rest = &rest[taken..];
            let drained = self.drain_tls(out);
            if taken == 0 && drained == 0 {
                break;
            }
        }
        self.drain_tls(out);
    }

    /// True until the handshake has completed.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Appends a close_notify alert to `out`; nothing is sent after it.
    pub fn close(&mut self, out: &mut Vec<u8>) {
        self.closed = true;
        self.conn.send_close_notify();
        self.drain_tls(out);
    }

    /// Whether the client presented a certificate (that the verifier accepted).
    pub fn has_peer_certificate(&self) -> bool {
        self.conn
            .peer_certificates()
            .is_some_and(|certs| !certs.is_empty())
    }

    /// The subject CN of the client's end-entity certificate, for
    /// `peer_cert_as_username = cn`; `None` without a certificate or without a readable CN.
    pub fn peer_common_name(&self) -> Option<String> {
        let der = self.conn.peer_certificates()?.first()?;
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
        let cn = cert.subject().iter_common_name().next()?;
        cn.as_str().ok().map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    use rustls::{ClientConfig, ClientConnection};
    use std::io::Read;

    /// A CA that signs server and client certificates.
    struct TestCa {
        cert_pem: String,
        cert_der: CertificateDer<'static>,
        issuer: Issuer<'static, KeyPair>,
    }

    impl TestCa {
        fn new(name: &str) -> TestCa {
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
            params.distinguished_name.push(DnType::CommonName, name);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let key = KeyPair::generate().expect("ca key");
            let cert = params.self_signed(&key).expect("ca cert");
            TestCa {
                cert_pem: cert.pem(),
                cert_der: cert.der().clone(),
                issuer: Issuer::new(params, key),
            }
        }

        /// A certificate signed by this CA: a server one (SAN localhost) or a client one.
        fn leaf(&self, cn: &str, server: bool) -> Leaf {
            let sans = if server {
                vec!["localhost".to_string()]
            } else {
                Vec::new()
            };
            let mut params = CertificateParams::new(sans).expect("leaf params");
            params.distinguished_name.push(DnType::CommonName, cn);
            params.use_authority_key_identifier_extension = true;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![if server {
                ExtendedKeyUsagePurpose::ServerAuth
            } else {
                ExtendedKeyUsagePurpose::ClientAuth
            }];
            let key = KeyPair::generate().expect("leaf key");
            let cert = params.signed_by(&key, &self.issuer).expect("leaf cert");
            Leaf {
                cert_pem: cert.pem(),
                cert_der: cert.der().clone(),
                key_pem: key.serialize_pem(),
                key_der: key.serialize_der(),
            }
        }
    }

    struct Leaf {
        cert_pem: String,
        cert_der: CertificateDer<'static>,
        key_pem: String,
        key_der: Vec<u8>,
    }

    impl Leaf {
        fn key(&self) -> PrivateKeyDer<'static> {
            PrivateKeyDer::Pkcs8(self.key_der.clone().into())
        }
    }

    /// A CA, a server certificate for "localhost" and the PEM files in a temporary directory.
    struct Pki {
        dir: tempfile::TempDir,
        ca: TestCa,
        server: Leaf,
    }

    impl Pki {
        fn new() -> Pki {
            let dir = tempfile::tempdir().expect("tempdir");
            let ca = TestCa::new("ShardMQ Test CA");
            let server = ca.leaf("localhost", true);
            let pki = Pki { dir, ca, server };
            pki.write("server.pem", &pki.server.cert_pem);
            pki.write("server.key", &pki.server.key_pem);
            pki.write("ca.pem", &pki.ca.cert_pem);
            pki
        }

        fn path(&self, name: &str) -> String {
            self.dir.path().join(name).to_string_lossy().into_owned()
        }

        fn write(&self, name: &str, contents: &str) -> String {
            let path = self.path(name);
            std::fs::write(&path, contents).expect("write pem");
            path
        }

        fn settings(&self, verify: Verify, fail_if_no_peer_cert: bool) -> TlsSettings {
            TlsSettings {
                certfile: self.path("server.pem"),
                keyfile: self.path("server.key"),
                cacertfile: match verify {
                    Verify::VerifyNone => String::new(),
                    Verify::VerifyPeer => self.path("ca.pem"),
                },
                verify,
                fail_if_no_peer_cert,
            }
        }

        fn layer(&self, verify: Verify, fail_if_no_peer_cert: bool) -> TlsLayer {
            let config =
                server_config(&self.settings(verify, fail_if_no_peer_cert)).expect("config");
            TlsLayer::new(config).expect("layer")
        }

        /// A client trusting the test CA, TLS 1.3 or 1.2 only, with an optional certificate.
        fn client(&self, tls13: bool, cert: Option<&Leaf>) -> ClientConnection {
            let mut roots = RootCertStore::empty();
            roots.add(self.ca.cert_der.clone()).expect("root");
            let version: &'static rustls::SupportedProtocolVersion = if tls13 {
                &rustls::version::TLS13
            } else {
                &rustls::version::TLS12
            };
            let builder = ClientConfig::builder_with_provider(ring_provider())
                .with_protocol_versions(&[version])
                .expect("versions")
                .with_root_certificates(roots);
            let config = match cert {
                Some(leaf) => builder
                    .with_client_auth_cert(vec![leaf.cert_der.clone()], leaf.key())
                    .expect("client cert"),
                None => builder.with_no_client_auth(),
            };
            let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
            let mut client = ClientConnection::new(Arc::new(config), name).expect("client");
            // The test client writes 1 MiB at once; the server side keeps rustls's limits.
            client.set_buffer_limit(None);
            client
        }
    }

    /// Gives the client the server's bytes; the plaintext it decrypts goes to `plain`.
    fn client_take(
        client: &mut ClientConnection,
        bytes: &[u8],
        plain: &mut Vec<u8>,
    ) -> Result<(), rustls::Error> {
        let mut rest = bytes;
        loop {
            if !rest.is_empty() {
                client.read_tls(&mut rest).expect("client read_tls");
            }
            client.process_new_packets()?;
            match client.reader().read_to_end(plain) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("client reader: {e}"),
            }
            if rest.is_empty() {
                return Ok(());
            }
        }
    }

    fn client_out(client: &mut ClientConnection) -> Vec<u8> {
        let mut out = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut out).expect("client write_tls");
        }
        out
    }

    /// Shuttles bytes between the two ends until neither has anything to say. `chunk` is how
    /// many bytes the server is fed at a time. A server error is returned after its `out` was
    /// given to the client; a client error is returned as `Err(Ok(..))`.
    fn shuttle(
        client: &mut ClientConnection,
        server: &mut TlsLayer,
        chunk: usize,
        server_plain: &mut BytesMut,
        client_plain: &mut Vec<u8>,
    ) -> Result<(), Result<rustls::Error, TlsError>> {
        for _ in 0..64 {
            let to_server = client_out(client);
            let mut to_client = Vec::new();
            let mut server_result = Ok(());
            for piece in to_server.chunks(chunk.max(1)) {
                server_result = server.feed(piece, server_plain, &mut to_client);
                if server_result.is_err() {
                    break;
                }
            }
            let client_result = client_take(client, &to_client, client_plain);
            server_result.map_err(Err)?;
            client_result.map_err(Ok)?;
            if to_server.is_empty() && to_client.is_empty() && !client.wants_write() {
                return Ok(());
            }
        }
        panic!("no quiet state after 64 rounds");
    }

    fn handshake(client: &mut ClientConnection, server: &mut TlsLayer) {
        let (mut sp, mut cp) = (BytesMut::new(), Vec::new());
        shuttle(client, server, usize::MAX, &mut sp, &mut cp).expect("handshake");
        assert!(!server.is_handshaking());
        assert!(!client.is_handshaking());
        assert!(sp.is_empty() && cp.is_empty());
    }

    /// Client → server application bytes, fed in pieces of `chunk`.
    fn client_sends(
        client: &mut ClientConnection,
        server: &mut TlsLayer,
        data: &[u8],
        chunk: usize,
    ) -> BytesMut {
        client.writer().write_all(data).expect("client write");
        let mut plain = BytesMut::new();
        let mut cp = Vec::new();
        shuttle(client, server, chunk, &mut plain, &mut cp).expect("client data");
        plain
    }

    fn server_sends(client: &mut ClientConnection, server: &mut TlsLayer, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        server.encrypt(data, &mut out);
        let mut plain = Vec::new();
        client_take(client, &out, &mut plain).expect("client reads");
        plain
    }

    const CONNECT: &[u8] = b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04c-01";
    const CONNACK: &[u8] = b"\x20\x02\x00\x00";

    fn big_message() -> Vec<u8> {
        (0..(1usize << 20)).map(|i| (i % 251) as u8).collect()
    }

    fn round_trip(tls13: bool) {
        let pki = Pki::new();
        let mut server = pki.layer(Verify::VerifyNone, false);
        let mut client = pki.client(tls13, None);
        handshake(&mut client, &mut server);
        let expected = if tls13 {
            rustls::ProtocolVersion::TLSv1_3
        } else {
            rustls::ProtocolVersion::TLSv1_2
        };
        assert_eq!(server.conn.protocol_version(), Some(expected));

        assert_eq!(
            &client_sends(&mut client, &mut server, CONNECT, usize::MAX)[..],
            CONNECT
        );
        assert_eq!(server_sends(&mut client, &mut server, CONNACK), CONNACK);

        let big = big_message();
        assert_eq!(
            &client_sends(&mut client, &mut server, &big, usize::MAX)[..],
            &big[..]
        );
        assert_eq!(server_sends(&mut client, &mut server, &big), big);
        assert!(!server.has_peer_certificate());
        assert_eq!(server.peer_common_name(), None);
    }

    #[test]
    fn tls13_handshake_and_data_both_ways() {
        round_trip(true);
    }

    #[test]
    fn tls12_handshake_and_data_both_ways() {
        round_trip(false);
    }

    #[test]
    fn bytes_fed_one_at_a_time() {
        for tls13 in [true, false] {
            let pki = Pki::new();
            let mut server = pki.layer(Verify::VerifyNone, false);
            let mut client = pki.client(tls13, None);
            let (mut sp, mut cp) = (BytesMut::new(), Vec::new());
            shuttle(&mut client, &mut server, 1, &mut sp, &mut cp).expect("handshake");
            assert!(!server.is_handshaking());
            let data: Vec<u8> = CONNECT.iter().copied().cycle().take(40_000).collect();
            assert_eq!(
                &client_sends(&mut client, &mut server, &data, 1)[..],
                &data[..]
            );
        }
    }

    #[test]
    fn plain_growth_is_bounded_by_raw() {
        let pki = Pki::new();
        let mut server = pki.layer(Verify::VerifyNone, false);
        let mut client = pki.client(true, None);
        handshake(&mut client, &mut server);
        client.writer().write_all(&big_message()).expect("write");
        let raw = client_out(&mut client);
        // A record split over reads is decrypted when its last piece arrives: per feed, the
        // plaintext is at most the raw bytes plus one record held over from before.
        let (mut total_raw, mut total_plain) = (0, 0);
        for piece in raw.chunks(4096) {
            let mut plain = BytesMut::new();
            let mut out = Vec::new();
            server.feed(piece, &mut plain, &mut out).expect("feed");
            assert!(plain.len() <= piece.len() + 16 * 1024);
            total_raw += piece.len();
            total_plain += plain.len();
            assert!(total_plain <= total_raw);
        }
        assert_eq!(total_plain, 1 << 20);
    }

    #[test]
    fn verify_peer_accepts_ca_signed_client_and_reads_cn() {
        let pki = Pki::new();
        let leaf = pki.ca.leaf("device-42", false);
        for tls13 in [true, false] {
            let mut server = pki.layer(Verify::VerifyPeer, true);
            let mut client = pki.client(tls13, Some(&leaf));
            handshake(&mut client, &mut server);
            assert!(server.has_peer_certificate());
            assert_eq!(server.peer_common_name().as_deref(), Some("device-42"));
            assert_eq!(
                &client_sends(&mut client, &mut server, CONNECT, usize::MAX)[..],
                CONNECT
            );
        }
    }

    #[test]
    fn verify_peer_refuses_client_of_another_ca() {
        let pki = Pki::new();
        let other = TestCa::new("Other CA");
        let leaf = other.leaf("intruder", false);
        for tls13 in [true, false] {
            let mut server = pki.layer(Verify::VerifyPeer, true);
            let mut client = pki.client(tls13, Some(&leaf));
            let mut alert = Vec::new();
            let mut plain = BytesMut::new();
            let mut result = Ok(());
            for _ in 0..8 {
                let raw = client_out(&mut client);
                let mut out = Vec::new();
                result = server.feed(&raw, &mut plain, &mut out);
                if result.is_err() {
                    alert = out;
                    break;
                }
                client_take(&mut client, &out, &mut Vec::new()).expect("client");
            }
            match result {
                Err(TlsError::Handshake(reason)) => assert!(!reason.is_empty()),
                other => panic!("expected a handshake error, got {other:?}"),
            }
            assert!(!alert.is_empty(), "an alert goes to the client");
            assert!(client_take(&mut client, &alert, &mut Vec::new()).is_err());
            assert!(!server.has_peer_certificate());
            assert!(plain.is_empty());
        }
    }

    #[test]
    fn verify_peer_with_fail_if_no_peer_cert_refuses_client_without_cert() {
        let pki = Pki::new();
        for tls13 in [true, false] {
            let mut server = pki.layer(Verify::VerifyPeer, true);
            let mut client = pki.client(tls13, None);
            let (mut sp, mut cp) = (BytesMut::new(), Vec::new());
            match shuttle(&mut client, &mut server, usize::MAX, &mut sp, &mut cp) {
                Err(Err(TlsError::Handshake(_))) => {}
                other => panic!("expected a server handshake error, got {other:?}"),
            }
        }
    }

    #[test]
    fn verify_peer_without_fail_if_no_peer_cert_accepts_client_without_cert() {
        let pki = Pki::new();
        let leaf = pki.ca.leaf("sensor-7", false);
        for tls13 in [true, false] {
            let mut server = pki.layer(Verify::VerifyPeer, false);
            let mut client = pki.client(tls13, None);
            handshake(&mut client, &mut server);
            assert!(!server.has_peer_certificate());
            assert_eq!(server.peer_common_name(), None);

            // A certificate is still checked and read when one is presented.
            let mut server = pki.layer(Verify::VerifyPeer, false);
            let mut client = pki.client(tls13, Some(&leaf));
            handshake(&mut client, &mut server);
            assert_eq!(server.peer_common_name().as_deref(), Some("sensor-7"));
        }
    }

    #[test]
    fn verify_none_asks_for_no_certificate() {
        let pki = Pki::new();
        let leaf = pki.ca.leaf("unasked", false);
        let mut server = pki.layer(Verify::VerifyNone, true);
        let mut client = pki.client(true, Some(&leaf));
        handshake(&mut client, &mut server);
        assert!(!server.has_peer_certificate());
        assert_eq!(server.peer_common_name(), None);
    }

    #[test]
    fn cleartext_mqtt_is_a_handshake_error() {
        let pki = Pki::new();
        let mut server = pki.layer(Verify::VerifyNone, false);
        let (mut plain, mut out) = (BytesMut::new(), Vec::new());
        match server.feed(CONNECT, &mut plain, &mut out) {
            Err(TlsError::Handshake(reason)) => assert!(!reason.is_empty()),
            other => panic!("expected a handshake error, got {other:?}"),
        }
        assert!(plain.is_empty());
        // The error stays: a later feed answers it again, empty or not.
        let again = server.feed(&[], &mut plain, &mut Vec::new());
        assert!(matches!(again, Err(TlsError::Handshake(_))));
        let again = server.feed(CONNECT, &mut plain, &mut Vec::new());
        assert!(matches!(again, Err(TlsError::Handshake(_))));
    }

    #[test]
    fn garbage_after_handshake_is_a_protocol_error() {
        let pki = Pki::new();
        let mut server = pki.layer(Verify::VerifyNone, false);
        let mut client = pki.client(true, None);
        handshake(&mut client, &mut server);
        // An application data record header with a body that does not decrypt.
        let mut record = vec![0x17, 0x03, 0x03, 0x00, 0x40];
        record.extend_from_slice(&[0xAB; 0x40]);
        let (mut plain, mut out) = (BytesMut::new(), Vec::new());
        match server.feed(&record, &mut plain, &mut out) {
            Err(TlsError::Protocol(reason)) => assert!(!reason.is_empty()),
            other => panic!("expected a protocol error, got {other:?}"),
        }
        assert!(!out.is_empty(), "an alert goes to the client");
        assert!(plain.is_empty());
    }

    #[test]
    fn random_bytes_never_panic() {
        use proptest::prelude::*;
        let pki = Pki::new();
        let config = server_config(&pki.settings(Verify::VerifyNone, false)).expect("config");
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(128));
        runner
            .run(
                &proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 1..4),
                |pieces| {
                    let mut server = TlsLayer::new(config.clone()).expect("layer");
                    let (mut plain, mut out) = (BytesMut::new(), Vec::new());
                    for piece in &pieces {
                        let _ = server.feed(piece, &mut plain, &mut out);
                    }
                    prop_assert!(plain.is_empty());
                    Ok(())
                },
            )
            .expect("no panic, no plaintext");
    }

    #[test]
    fn close_notify_is_peer_closed_after_the_data_before_it() {
        for tls13 in [true, false] {
            let pki = Pki::new();
            let mut server = pki.layer(Verify::VerifyNone, false);
            let mut client = pki.client(tls13, None);
            handshake(&mut client, &mut server);
            // A DISCONNECT and the close_notify in the same read.
            client.writer().write_all(b"\xe0\x00").expect("write");
            client.send_close_notify();
            let raw = client_out(&mut client);
            let (mut plain, mut out) = (BytesMut::new(), Vec::new());
            assert_eq!(
                server.feed(&raw, &mut plain, &mut out),
                Err(TlsError::PeerClosed)
            );
            assert_eq!(&plain[..], b"\xe0\x00");
            assert_eq!(
                server.feed(b"more", &mut plain, &mut out),
                Err(TlsError::PeerClosed)
            );
            assert_eq!(&plain[..], b"\xe0\x00");
        }
    }

    #[test]
    fn server_close_sends_close_notify() {
        let pki = Pki::new();
        let mut server = pki.layer(Verify::VerifyNone, false);
        let mut client = pki.client(true, None);
        handshake(&mut client, &mut server);
        let mut out = Vec::new();
        server.close(&mut out);
        assert!(!out.is_empty());
        let mut plain = Vec::new();
        client_take(&mut client, &out, &mut plain).expect("client");
        let state = client.process_new_packets().expect("state");
        assert!(state.peer_has_closed());
        // Nothing goes out after close.
        let mut after = Vec::new();
        server.encrypt(CONNACK, &mut after);
        assert!(after.is_empty());
    }

    #[test]
    fn layer_is_send() {
        fn moved<T: Send + 'static>(t: T) -> T {
            std::thread::spawn(move || t).join().expect("thread")
        }
        let pki = Pki::new();
        let mut server = moved(pki.layer(Verify::VerifyNone, false));
        let mut client = pki.client(true, None);
        handshake(&mut client, &mut server);
    }

    #[test]
    fn verify_parse() {
        assert_eq!(Verify::parse("verify_none"), Ok(Verify::VerifyNone));
        assert_eq!(Verify::parse("verify_peer"), Ok(Verify::VerifyPeer));
        assert!(Verify::parse("verify_all").is_err());
        assert_eq!(Verify::VerifyPeer.as_str(), "verify_peer");
        assert_eq!(Verify::default(), Verify::VerifyNone);
    }

    fn config_error(s: &TlsSettings) -> String {
        match server_config(s) {
            Ok(_) => panic!("expected an error for {s:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn server_config_reports_bad_files() {
        let pki = Pki::new();
        let good = pki.settings(Verify::VerifyPeer, true);
        assert!(server_config(&good).is_ok());

        let missing = pki.path("missing.pem");
        let empty = pki.write("empty.pem", "\n");
        let key_only = pki.path("server.key");
        let cert_only = pki.path("server.pem");
        let bad_pem = pki.write("bad.pem", "-----BEGIN CERTIFICATE-----\n!!!!\n");

        let e = config_error(&TlsSettings {
            certfile: missing.clone(),
            ..good.clone()
        });
        assert!(e.starts_with(&format!("certfile {missing}: ")), "{e}");

        let e = config_error(&TlsSettings {
            certfile: String::new(),
            ..good.clone()
        });
        assert_eq!(e, "certfile not set");

        let e = config_error(&TlsSettings {
            certfile: empty.clone(),
            ..good.clone()
        });
        assert_eq!(e, format!("certfile {empty}: file is empty"));

        let e = config_error(&TlsSettings {
            certfile: key_only.clone(),
            ..good.clone()
        });
        assert_eq!(e, format!("certfile {key_only}: no certificate found"));

        let e = config_error(&TlsSettings {
            certfile: bad_pem.clone(),
            ..good.clone()
        });
        assert!(
            e.starts_with(&format!("certfile {bad_pem}: bad PEM")),
            "{e}"
        );

        let e = config_error(&TlsSettings {
            keyfile: missing.clone(),
            ..good.clone()
        });
        assert!(e.starts_with(&format!("keyfile {missing}: ")), "{e}");

        let e = config_error(&TlsSettings {
            keyfile: empty.clone(),
            ..good.clone()
        });
        assert_eq!(e, format!("keyfile {empty}: file is empty"));

        let e = config_error(&TlsSettings {
            keyfile: cert_only.clone(),
            ..good.clone()
        });
        assert!(
            e.starts_with(&format!("keyfile {cert_only}: no private key")),
            "{e}"
        );

        let e = config_error(&TlsSettings {
            cacertfile: String::new(),
            ..good.clone()
        });
        assert_eq!(e, "cacertfile required for verify_peer");

        let e = config_error(&TlsSettings {
            cacertfile: missing.clone(),
            ..good.clone()
        });
        assert!(e.starts_with(&format!("cacertfile {missing}: ")), "{e}");

        let e = config_error(&TlsSettings {
            cacertfile: key_only.clone(),
            ..good.clone()
        });
        assert_eq!(e, format!("cacertfile {key_only}: no certificate found"));

        // verify_none ignores the CA file.
        assert!(server_config(&TlsSettings {
            cacertfile: missing.clone(),
            verify: Verify::VerifyNone,
            ..good.clone()
        })
        .is_ok());
    }

    #[test]
    fn server_config_reports_a_key_that_does_not_match() {
        let pki = Pki::new();
        let stranger = pki.ca.leaf("localhost", true);
        let wrong_key = pki.write("wrong.key", &stranger.key_pem);
        let s = TlsSettings {
            keyfile: wrong_key.clone(),
            ..pki.settings(Verify::VerifyNone, false)
        };
        let e = config_error(&s);
        assert!(
            e.starts_with(&format!("keyfile {wrong_key}: private key does not match")),
            "{e}"
        );
    }

    /// The contents of the DER element at the start of `der` with the given tag, and what
    /// follows it. Test-only: handles the short and long length forms rcgen's keys use.
    fn der_element(der: &[u8], tag: u8) -> (&[u8], &[u8]) {
        assert_eq!(der[0], tag);
        let (len, header) = match der[1] {
            n if n < 0x80 => (n as usize, 2),
            0x81 => (der[2] as usize, 3),
            0x82 => (((der[2] as usize) << 8) | der[3] as usize, 4),
            other => panic!("length form {other:#x}"),
        };
        (&der[header..header + len], &der[header + len..])
    }

    #[test]
    fn server_config_reads_chain_and_sec1_key() {
        let pki = Pki::new();
        // The chain file: server certificate then the CA.
        let chain = pki.write(
            "chain.pem",
            &format!("{}{}", pki.server.cert_pem, pki.ca.cert_pem),
        );
        // The same key as SEC1 ("EC PRIVATE KEY"): the privateKey OCTET STRING of the PKCS#8.
        let (info, _) = der_element(&pki.server.key_der, 0x30);
        let (_, rest) = der_element(info, 0x02); // version
        let (_, rest) = der_element(rest, 0x30); // algorithm
        let (sec1, _) = der_element(rest, 0x04);
        let sec1_pem = format!(
            "-----BEGIN EC PRIVATE KEY-----\n{}\n-----END EC PRIVATE KEY-----\n",
            base64_lines(sec1)
        );
        let sec1_path = pki.write("sec1.key", &sec1_pem);
        assert!(matches!(
            PrivateKeyDer::from_pem_slice(sec1_pem.as_bytes()),
            Ok(PrivateKeyDer::Sec1(_))
        ));
        let s = TlsSettings {
            certfile: chain,
            keyfile: sec1_path,
            ..pki.settings(Verify::VerifyNone, false)
        };
        let config = server_config(&s).expect("chain + sec1 config");
        let mut server = TlsLayer::new(config).expect("layer");
        let mut client = pki.client(true, None);
        handshake(&mut client, &mut server);
        assert_eq!(client.peer_certificates().map(|c| c.len()), Some(2));
    }

    /// Standard base64 in 64-character lines (test-only, for writing a PEM by hand).
    fn base64_lines(data: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut text = String::new();
        for group in data.chunks(3) {
            let b = [
                group[0],
                group.get(1).copied().unwrap_or(0),
                group.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= group.len() {
                    text.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    text.push('=');
                }
            }
        }
        text.as_bytes()
            .chunks(64)
            .map(|line| String::from_utf8_lossy(line).into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }
}
