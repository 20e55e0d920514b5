//! The TLS, WebSocket and secure WebSocket listeners with a real client library (`rumqttc`
//! over rustls and over async-tungstenite): messages cross between all four listener kinds,
//! mutual TLS accepts a CA-signed client (its CN as the username) and refuses a foreign one
//! and one without a certificate, a bad handshake closes only its own connection, and
//! `GET /api/v3/listeners` lists every listener with its bind and live count. Certificates are
//! made at test time (rcgen), written to a temporary directory.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rumqttc::{
    AsyncClient, Event, Incoming, MqttOptions, Publish, QoS, TlsConfiguration, Transport,
};
use serde_json::Value;

/// A CA, a server certificate for 127.0.0.1 / localhost, a client certificate from the CA
/// (CN `device-7`) and one from another CA, as PEM files.
struct Pki {
    dir: tempfile::TempDir,
    ca_der: rustls::pki_types::CertificateDer<'static>,
    client: (String, String),
    foreign: (String, String),
}

impl Pki {
    fn new() -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose as Eku, IsCa,
            KeyPair, KeyUsagePurpose,
        };
        let make_ca = |params: &mut CertificateParams| {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        };
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        make_ca(&mut ca_params);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf = |names: Vec<String>, cn: &str, issuer: &rcgen::Issuer<'_, KeyPair>| {
            let key = KeyPair::generate().unwrap();
            let server = !names.is_empty();
            let mut p = CertificateParams::new(names).unwrap();
            p.distinguished_name.push(DnType::CommonName, cn);
            p.use_authority_key_identifier_extension = true;
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            p.extended_key_usages = vec![if server {
                Eku::ServerAuth
            } else {
                Eku::ClientAuth
            }];
            let cert = p.signed_by(&key, issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let server = leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            "localhost",
            &issuer,
        );
        let client = leaf(Vec::new(), "device-7", &issuer);
        let other_key = KeyPair::generate().unwrap();
        let mut other_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        make_ca(&mut other_params);
        let other = rcgen::Issuer::new(other_params, other_key);
        let foreign = leaf(Vec::new(), "intruder", &other);
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.to_string_lossy().into_owned()
        };
        write("ca.pem", &ca.pem());
        write("server.pem", &server.0);
        write("server.key", &server.1);
        Pki {
            client: (
                write("client.pem", &client.0),
                write("client.key", &client.1),
            ),
            foreign: (
                write("foreign.pem", &foreign.0),
                write("foreign.key", &foreign.1),
            ),
            ca_der: ca.der().clone(),
            dir,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    /// A rustls client configuration trusting the CA, with a client certificate if given.
    fn client_config(&self, cert: Option<&(String, String)>) -> Arc<rustls::ClientConfig> {
        // rustls marks the ring provider deprecated (no post-quantum key exchange); the
        // broker is built on ring, so the client uses it too.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                use rustls::pki_types::pem::PemObject;
                let certs = rustls::pki_types::CertificateDer::pem_file_iter(Path::new(cert))
                    .unwrap()
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap();
                let key = rustls::pki_types::PrivateKeyDer::from_pem_file(Path::new(key)).unwrap();
                builder.with_client_auth_cert(certs, key).unwrap()
            }
        };
        Arc::new(config)
    }
}

/// A client on one listener, its event loop in a task, its PUBLISHes (or its end) on a channel.
struct Client {
    client: AsyncClient,
    events: tokio::sync::mpsc::UnboundedReceiver<Result<Incoming, String>>,
}

impl Client {
    async fn connect(
        id: &str,
        addr: SocketAddr,
        transport: Transport,
        ws: bool,
    ) -> Result<Client, String> {
        let host = if ws {
            let scheme = match transport {
                Transport::Wss(_) => "wss",
                _ => "ws",
            };
            format!("{scheme}://localhost:{}/mqtt", addr.port())
        } else {
            "localhost".to_string()
        };
        let mut opts = MqttOptions::new(id, host, addr.port());
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_max_packet_size(1 << 20, 1 << 20);
        opts.set_transport(transport);
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(p)) => {
                        if tx.send(Ok(p)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                }
            }
        });
        loop {
            match tokio::time::timeout(WAIT, events.recv()).await {
                Ok(Some(Ok(Incoming::ConnAck(_)))) => return Ok(Client { client, events }),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(e))) => return Err(e),
                other => return Err(format!("no CONNACK: {other:?}")),
            }
        }
    }

    async fn suback(&mut self) {
        loop {
            match tokio::time::timeout(WAIT, self.events.recv()).await {
                Ok(Some(Ok(Incoming::SubAck(_)))) => return,
                Ok(Some(Ok(_))) => continue,
                other => panic!("no SUBACK: {other:?}"),
            }
        }
    }

    async fn next_publish(&mut self) -> Publish {
        loop {
            match tokio::time::timeout(WAIT, self.events.recv()).await {
                Ok(Some(Ok(Incoming::Publish(p)))) => return p,
                Ok(Some(Ok(_))) => continue,
                other => panic!("no PUBLISH: {other:?}"),
            }
        }
    }
}

fn listeners(node: &AdminNode) -> Vec<Value> {
    let r = node.expect("GET", "listeners", None, 0);
    r["data"][0]["listeners"].as_array().unwrap().clone()
}

fn addr_of(list: &[Value], protocol: &str) -> SocketAddr {
    let l = list
        .iter()
        .find(|l| l["protocol"] == protocol)
        .unwrap_or_else(|| panic!("{protocol} listed: {list:?}"));
    l["listen_on"].as_str().unwrap().parse().unwrap()
}

fn tls_sets(pki: &Pki, name: &str) -> Vec<String> {
    vec![
        format!("listeners.{name}.bind=127.0.0.1:0"),
        format!("listeners.{name}.certfile={}", pki.path("server.pem")),
        format!("listeners.{name}.keyfile={}", pki.path("server.key")),
    ]
}

fn start(pki: &Pki, dir: &Path, extra: &[String]) -> AdminNode {
    let mut sets = tls_sets(pki, "ssl");
    sets.extend(tls_sets(pki, "wss"));
    sets.push("listeners.ws.bind=127.0.0.1:0".into());
    sets.extend(extra.iter().cloned());
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    AdminNode::start(dir, &sets)
}

#[test]
fn messages_cross_between_all_four_listener_kinds() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let node = start(&pki, dir.path(), &[]);
    let list = listeners(&node);
    let protocols: Vec<&str> = list
        .iter()
        .map(|l| l["protocol"].as_str().unwrap())
        .collect();
    assert_eq!(
        protocols,
        [
            "mqtt:tcp",
            "mqtt:ssl",
            "mqtt:ws",
            "mqtt:wss",
            "http:management"
        ]
    );
    let (ssl, ws, wss) = (
        addr_of(&list, "mqtt:ssl"),
        addr_of(&list, "mqtt:ws"),
        addr_of(&list, "mqtt:wss"),
    );
    let tls = || TlsConfiguration::Rustls(pki.client_config(None));
    block_on(async {
        let kinds: Vec<(&str, SocketAddr, Transport, bool)> = vec![
            ("tcp", node.mqtt, Transport::Tcp, false),
            ("ssl", ssl, Transport::Tls(tls()), false),
            ("ws", ws, Transport::Ws, true),
            ("wss", wss, Transport::Wss(tls()), true),
        ];
        let mut clients = Vec::new();
        for (i, (name, addr, transport, is_ws)) in kinds.into_iter().enumerate() {
            let id = id_on_shard(&format!("lk-{name}"), i % 2);
            let c = Client::connect(&id, addr, transport, is_ws)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            c.client
                .subscribe("cross/#", QoS::AtLeastOnce)
                .await
                .unwrap();
            clients.push((name, c));
        }
        // Each SUBACK is in before anyone publishes.
        for (_, c) in clients.iter_mut() {
            c.suback().await;
        }
        let live = listeners(&node);
        for l in &live[..4] {
            assert_eq!(l["current_conns"], 1, "{l}");
        }
        // A large message too: it spans TLS records and WebSocket frames.
        let big = vec![b'x'; 200_000];
        for (name, c) in &clients {
            c.client
                .publish(
                    format!("cross/{name}"),
                    QoS::AtLeastOnce,
                    false,
                    name.as_bytes().to_vec(),
                )
                .await
                .unwrap();
        }
        clients[3]
            .1
            .client
            .publish("cross/big", QoS::AtLeastOnce, false, big.clone())
            .await
            .unwrap();
        for (name, c) in clients.iter_mut() {
            let mut got = Vec::new();
            for _ in 0..5 {
                let p = c.next_publish().await;
                got.push((p.topic.clone(), p.payload.len()));
            }
            got.sort();
            assert_eq!(
                got,
                vec![
                    ("cross/big".to_string(), big.len()),
                    ("cross/ssl".to_string(), 3),
                    ("cross/tcp".to_string(), 3),
                    ("cross/ws".to_string(), 2),
                    ("cross/wss".to_string(), 3),
                ],
                "{name}"
            );
        }
    });
    // Every listener kind counts its bytes: each client received the 200 KB message.
    for kind in ["tcp", "ssl", "ws", "wss"] {
        assert!(
            node.stats_sum(&format!("bytes/received/{kind}")) > 0,
            "{kind}"
        );
        assert!(
            node.stats_sum(&format!("bytes/sent/{kind}")) > 200_000,
            "{kind}"
        );
    }
    node.stop();
}

#[test]
fn mutual_tls_takes_a_ca_signed_client_and_refuses_others() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let node = start(
        &pki,
        dir.path(),
        &[
            format!("listeners.ssl.cacertfile={}", pki.path("ca.pem")),
            "listeners.ssl.verify=verify_peer".into(),
            "listeners.ssl.fail_if_no_peer_cert=true".into(),
            "listeners.ssl.peer_cert_as_username=cn".into(),
        ],
    );
    let ssl = addr_of(&listeners(&node), "mqtt:ssl");
    block_on(async {
        let with = |cert: Option<&(String, String)>| {
            Transport::Tls(TlsConfiguration::Rustls(pki.client_config(cert)))
        };
        let good = Client::connect("mtls-good", ssl, with(Some(&pki.client)), false)
            .await
            .expect("a CA-signed client is accepted");
        let conn = node.expect("GET", "connections/mtls-good", None, 0);
        assert_eq!(conn["data"][0]["username"], "device-7", "{conn}");
        assert!(
            Client::connect("mtls-foreign", ssl, with(Some(&pki.foreign)), false)
                .await
                .is_err()
        );
        assert!(Client::connect("mtls-none", ssl, with(None), false)
            .await
            .is_err());
        // The refusals disturbed nobody: the good client still gets its own message back.
        good.client
            .subscribe("mtls/t", QoS::AtLeastOnce)
            .await
            .unwrap();
        let mut good = good;
        good.suback().await;
        good.client
            .publish("mtls/t", QoS::AtLeastOnce, false, "still here")
            .await
            .unwrap();
        assert_eq!(&good.next_publish().await.payload[..], b"still here");
    });
    assert!(node.stats_sum("connections/handshake_failed") >= 2);
    node.stop();
}

#[test]
fn a_bad_handshake_closes_only_its_own_connection() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let node = start(&pki, dir.path(), &[]);
    let list = listeners(&node);
    let (ssl, ws) = (addr_of(&list, "mqtt:ssl"), addr_of(&list, "mqtt:ws"));
    // A plain MQTT client first, which must not notice anything.
    let (mut bystander, _) = node.connect(&id_on_shard("bystander", 0), None, None);
    bystander.subscribe(1, &[("b/t", shardmq::codec::QoS::AtMostOnce)]);
    use std::io::{Read, Write};
    // Plain MQTT to the TLS port: no CONNACK (at most a TLS alert), then closed.
    let mut s = std::net::TcpStream::connect(ssl).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let connect = connect_packet(
        "plain",
        true,
        0,
        None,
        shardmq::codec::ProtocolVersion::V311,
    );
    let mut bytes = bytes::BytesMut::new();
    shardmq::codec::encode(
        &shardmq::codec::Packet::Connect(Box::new(connect)),
        shardmq::codec::ProtocolVersion::V311,
        &mut bytes,
    )
    .unwrap();
    s.write_all(&bytes).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).expect("closed within the wait");
    assert!(answer.first().is_none_or(|b| *b == 0x15), "{answer:?}");
    // A wrong WebSocket key to the WebSocket port: 400, then closed.
    let mut s = std::net::TcpStream::connect(ws).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: nope\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    bystander.publish0("b/t", b"fine");
    assert_eq!(&bystander.recv_publish().payload[..], b"fine");
    node.stop();
}

#[test]
fn renewed_certificates_are_read_on_reload_and_live_clients_stay() {
    let (old, new) = (Pki::new(), Pki::new());
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = (
        certs.path().join("server.pem"),
        certs.path().join("server.key"),
    );
    let install = |pki: &Pki| {
        std::fs::copy(pki.path("server.pem"), &cert).unwrap();
        std::fs::copy(pki.path("server.key"), &key).unwrap();
    };
    install(&old);
    let dir = tempfile::tempdir().unwrap();
    let sets = [
        "listeners.ssl.bind=127.0.0.1:0".to_string(),
        format!("listeners.ssl.certfile={}", cert.display()),
        format!("listeners.ssl.keyfile={}", key.display()),
    ];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let node = AdminNode::start(dir.path(), &sets);
    let ssl = addr_of(&listeners(&node), "mqtt:ssl");
    let trusting = |pki: &Pki| Transport::Tls(TlsConfiguration::Rustls(pki.client_config(None)));
    block_on(async {
        let mut live = Client::connect("renew-live", ssl, trusting(&old), false)
            .await
            .expect("the first certificate serves");
        install(&new);
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            // What SIGHUP does (the binary's handler sets this flag). The flag is the
            // process's: another test's broker may take it first, so it is set until ours did.
            shardmq::broker::mgmt::state::reload_flag()
                .store(true, std::sync::atomic::Ordering::Release);
            if Client::connect("renew-new", ssl, trusting(&new), false)
                .await
                .is_ok()
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the new certificate never served"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(Client::connect("renew-old", ssl, trusting(&old), false)
            .await
            .is_err());
        // The connection made with the old certificate goes on.
        live.client
            .subscribe("renew/t", QoS::AtLeastOnce)
            .await
            .unwrap();
        live.suback().await;
        live.client
            .publish("renew/t", QoS::AtLeastOnce, false, "kept")
            .await
            .unwrap();
        assert_eq!(&live.next_publish().await.payload[..], b"kept");
    });
    node.stop();
}
