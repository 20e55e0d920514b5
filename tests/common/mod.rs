//! Shared helpers of the integration tests: an in-process broker with two shards on
//! loopback, a raw-bytes MQTT client built on the crate's own codec, and a `rumqttc`
//! wrapper. Every wait is bounded: a helper that waits for a packet fails the test with a
//! clear message when nothing comes in time.

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use shardmq::broker::Broker;
use shardmq::codec::{
    self, Connect, Disconnect, LastWill, Packet, Props, ProtocolVersion, PubResp, Publish, QoS,
    Str, SubOptions, Subscribe, Unsubscribe,
};
use shardmq::config::Config;

/// How long a test waits for something that must happen.
pub const WAIT: Duration = Duration::from_secs(5);
/// How long a test watches for something that must not happen.
pub const QUIET: Duration = Duration::from_millis(300);
/// Number of shards of every test broker.
pub const SHARDS: usize = 2;

/// A broker running in this process; stopped when dropped.
pub struct TestBroker {
    broker: Option<Broker>,
    pub addr: SocketAddr,
    pub node: String,
    /// The admin state's data directory (removed when the broker is dropped).
    _data: tempfile::TempDir,
}

impl TestBroker {
    /// A broker with two shards on 127.0.0.1 (random port) and these `--set` overrides.
    pub fn start(sets: &[&str]) -> TestBroker {
        Self::start_with_shards(SHARDS, sets)
    }

    /// A broker with `shards` shards (more shards than cores share them) and these `--set`
    /// overrides. Ids from [`id_on_shard`] assume [`SHARDS`]; use `shardmq::home_shard`.
    pub fn start_with_shards(shards: usize, sets: &[&str]) -> TestBroker {
        let mut cfg = Config::default();
        cfg.listeners.tcp.bind = "127.0.0.1:0".parse().unwrap();
        // Each test broker has its own API port: one process per address.
        cfg.management.bind = "127.0.0.1:0".parse().unwrap();
        let data = tempfile::tempdir().expect("a temp data dir");
        cfg.node.data_dir = data.path().to_string_lossy().into_owned();
        for s in sets {
            cfg.apply_set(s)
                .unwrap_or_else(|e| panic!("--set {s}: {e}"));
        }
        cfg.validate().expect("test configuration is valid");
        let node = cfg.node.name.clone();
        let cores = shardmq_shards::preflight::available_cores();
        assert!(!cores.is_empty(), "no core available");
        let shard_cores: Vec<usize> = (0..shards).map(|i| cores[i % cores.len()]).collect();
        let broker = shardmq::broker::start(cfg, &shard_cores).expect("broker starts");
        let addr = broker.mqtt_addr;
        TestBroker {
            broker: Some(broker),
            addr,
            node,
            _data: data,
        }
    }

    /// The default broker.
    pub fn default_broker() -> TestBroker {
        Self::start(&[])
    }

    /// A raw connection (no CONNECT sent yet).
    pub fn raw(&self) -> Raw {
        Raw::open(self.addr)
    }

    /// A raw MQTT 3.1.1 client that connected with these settings and got CONNACK 0.
    pub fn client(&self, id: &str, clean: bool) -> Raw {
        let (c, ack) = Raw::connect(self.addr, id, clean, 0, None);
        assert_eq!(ack.code, 0, "CONNACK for {id:?}");
        c
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(b) = self.broker.take() {
            b.stop();
        }
    }
}

/// A TCP connection to `addr` from the local address `from`: on loopback any 127.x.y.z, so a
/// test has clients "from other addresses" on one machine.
pub fn tcp_from(from: IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .expect("a TCP socket");
    socket
        .bind(&SocketAddr::new(from, 0).into())
        .unwrap_or_else(|e| panic!("binding the client to {from}: {e}"));
    socket
        .connect(&addr.into())
        .expect("TCP connect to the broker");
    socket.into()
}

/// A client id starting with `prefix` whose home shard (of [`SHARDS`]) is `shard`.
pub fn id_on_shard(prefix: &str, shard: usize) -> String {
    id_on_shard_of(prefix, shard, SHARDS)
}

/// A client id starting with `prefix` whose home shard of `shards` is `shard`.
pub fn id_on_shard_of(prefix: &str, shard: usize, shards: usize) -> String {
    (0..10_000)
        .map(|i| format!("{prefix}-{i}"))
        .find(|id| shardmq::home_shard(id, shards) == shard)
        .expect("an id for every shard")
}

/// A topic starting with `prefix` whose owner shard (for retained messages) is `shard`.
pub fn topic_on_shard(prefix: &str, shard: usize) -> String {
    id_on_shard(prefix, shard)
}

/// A will message.
pub fn will(topic: &str, payload: &str, qos: QoS, retain: bool) -> LastWill {
    LastWill {
        topic: Str::from(topic),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        qos,
        retain,
        properties: Props::default(),
    }
}

/// A CONNECT packet.
pub fn connect_packet(
    id: &str,
    clean: bool,
    keep_alive: u16,
    will: Option<LastWill>,
    protocol: ProtocolVersion,
) -> Connect {
    Connect {
        protocol,
        clean_start: clean,
        keep_alive,
        client_id: Str::from(id),
        will,
        username: None,
        password: None,
        properties: Props::default(),
    }
}

/// A PUBLISH packet.
pub fn publish(topic: &str, payload: &[u8], qos: QoS, retain: bool, pid: Option<u16>) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain,
        topic: Str::from(topic),
        packet_id: pid,
        payload: Bytes::copy_from_slice(payload),
        properties: Props::default(),
    })
}

/// A SUBSCRIBE packet with default options but the QoS.
pub fn subscribe_packet(packet_id: u16, filters: &[(&str, QoS)]) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id,
        filters: filters
            .iter()
            .map(|(f, q)| {
                (
                    Str::from(*f),
                    SubOptions {
                        qos: *q,
                        ..SubOptions::default()
                    },
                )
            })
            .collect(),
        properties: Props::default(),
    })
}

/// A raw MQTT client on a blocking socket, speaking through `shardmq::codec`.
pub struct Raw {
    stream: TcpStream,
    buf: BytesMut,
    pub version: ProtocolVersion,
}

impl Raw {
    /// Opens a TCP connection and sends nothing.
    pub fn open(addr: SocketAddr) -> Raw {
        Raw::over(TcpStream::connect(addr).expect("TCP connect to the broker"))
    }

    /// Opens a TCP connection from the local address `from` (see [`tcp_from`]).
    pub fn open_from(from: IpAddr, addr: SocketAddr) -> Raw {
        Raw::over(tcp_from(from, addr))
    }

    fn over(stream: TcpStream) -> Raw {
        stream.set_nodelay(true).unwrap();
        Raw {
            stream,
            buf: BytesMut::with_capacity(4096),
            version: ProtocolVersion::V311,
        }
    }

    /// [`Raw::connect_with`] from the local address `from`.
    pub fn connect_from(
        from: IpAddr,
        addr: SocketAddr,
        connect: Connect,
    ) -> (Raw, shardmq::codec::ConnAck) {
        let mut c = Raw::open_from(from, addr);
        c.version = connect.protocol;
        c.send(&Packet::Connect(Box::new(connect)));
        match c.recv() {
            Packet::ConnAck(a) => (c, a),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Opens a connection, sends `connect` and returns the CONNACK.
    pub fn connect_with(addr: SocketAddr, connect: Connect) -> (Raw, shardmq::codec::ConnAck) {
        let mut c = Raw::open(addr);
        c.version = connect.protocol;
        c.send(&Packet::Connect(Box::new(connect)));
        match c.recv() {
            Packet::ConnAck(a) => (c, a),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// MQTT 3.1.1 CONNECT; returns the client and the CONNACK (whatever its code).
    pub fn connect(
        addr: SocketAddr,
        id: &str,
        clean: bool,
        keep_alive: u16,
        will: Option<LastWill>,
    ) -> (Raw, shardmq::codec::ConnAck) {
        Raw::connect_with(
            addr,
            connect_packet(id, clean, keep_alive, will, ProtocolVersion::V311),
        )
    }

    /// Encodes and writes one packet.
    pub fn send(&mut self, packet: &Packet) {
        let mut out = BytesMut::new();
        codec::encode(packet, self.version, &mut out).expect("test packet encodes");
        self.send_bytes(&out);
    }

    /// Writes raw bytes.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the broker");
    }

    /// The next packet, or `None` if none arrives within `within`. Panics if the broker
    /// closes the connection or sends bytes that do not decode.
    pub fn try_recv(&mut self, within: Duration) -> Option<Packet> {
        match self.next_event(within) {
            Event::Packet(p) => Some(*p),
            Event::Timeout => None,
            Event::Closed => panic!("the broker closed the connection while a packet was expected"),
        }
    }

    /// The next packet, or `None` when none arrives within `within` or the connection ends.
    pub fn try_recv_or_closed(&mut self, within: Duration) -> Option<Packet> {
        match self.next_event(within) {
            Event::Packet(p) => Some(*p),
            Event::Timeout | Event::Closed => None,
        }
    }

    /// The next packet; fails the test if none arrives within [`WAIT`].
    pub fn recv(&mut self) -> Packet {
        match self.next_event(WAIT) {
            Event::Packet(p) => *p,
            Event::Timeout => panic!("no packet from the broker within {WAIT:?}"),
            Event::Closed => panic!("the broker closed the connection while a packet was expected"),
        }
    }

    /// The next PUBLISH (fails on any other packet).
    pub fn recv_publish(&mut self) -> Publish {
        match self.recv() {
            Packet::Publish(p) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// Asserts that nothing arrives for [`QUIET`].
    pub fn expect_nothing(&mut self) {
        if let Some(p) = self.try_recv(QUIET) {
            panic!("expected nothing, got {p:?}");
        }
    }

    /// Waits until the broker closes the connection, ignoring packets before that
    /// (`$SYS` or queued ones). Fails if it stays open for [`WAIT`].
    pub fn expect_closed(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left) {
                Event::Closed => return,
                Event::Packet(_) => continue,
                Event::Timeout => panic!("the broker did not close the connection within {WAIT:?}"),
            }
        }
    }

    /// Like [`Raw::expect_closed`], but no packet at all may come first.
    pub fn expect_closed_silently(&mut self) {
        match self.next_event(WAIT) {
            Event::Closed => {}
            Event::Packet(p) => panic!("expected the connection to close, got {p:?}"),
            Event::Timeout => panic!("the broker did not close the connection within {WAIT:?}"),
        }
    }

    fn next_event(&mut self, within: Duration) -> Event {
        let deadline = Instant::now() + within;
        loop {
            match codec::decode(&mut self.buf, self.version, 1 << 24) {
                Ok(Some(p)) => return Event::Packet(Box::new(p)),
                Ok(None) => {}
                Err(e) => panic!("the broker sent bytes that do not decode: {e}"),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Event::Timeout;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Event::Closed,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Event::Timeout
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return Event::Closed, // reset
            }
        }
    }

    /// SUBSCRIBE and wait for its SUBACK; returns the return codes.
    pub fn subscribe(&mut self, packet_id: u16, filters: &[(&str, QoS)]) -> Vec<u8> {
        self.send_subscribe(packet_id, filters);
        match self.recv() {
            Packet::SubAck(a) => {
                assert_eq!(a.packet_id, packet_id, "SUBACK packet id");
                a.codes
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// SUBSCRIBE, without waiting for the SUBACK.
    pub fn send_subscribe(&mut self, packet_id: u16, filters: &[(&str, QoS)]) {
        self.send(&subscribe_packet(packet_id, filters));
    }

    /// Encodes `packets` and writes them in one write.
    pub fn send_all(&mut self, packets: &[Packet]) {
        let mut out = BytesMut::new();
        for p in packets {
            codec::encode(p, self.version, &mut out).expect("test packet encodes");
        }
        self.send_bytes(&out);
    }

    /// UNSUBSCRIBE and wait for its UNSUBACK.
    pub fn unsubscribe(&mut self, packet_id: u16, filters: &[&str]) {
        self.send(&Packet::Unsubscribe(Unsubscribe {
            packet_id,
            filters: filters.iter().map(|f| Str::from(*f)).collect(),
            properties: Props::default(),
        }));
        match self.recv() {
            Packet::UnsubAck(a) => assert_eq!(a.packet_id, packet_id),
            other => panic!("expected UNSUBACK, got {other:?}"),
        }
    }

    /// QoS 0 PUBLISH.
    pub fn publish0(&mut self, topic: &str, payload: &[u8]) {
        self.send(&publish(topic, payload, QoS::AtMostOnce, false, None));
    }

    /// QoS 1 PUBLISH, waits for its PUBACK.
    pub fn publish1(&mut self, topic: &str, payload: &[u8], pid: u16) {
        self.send(&publish(topic, payload, QoS::AtLeastOnce, false, Some(pid)));
        match self.recv() {
            Packet::PubAck(a) => assert_eq!(a.packet_id, pid),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }

    /// Retained PUBLISH at QoS 1, waits for its PUBACK (so the message is routed).
    pub fn publish_retained(&mut self, topic: &str, payload: &[u8], pid: u16) {
        self.send(&publish(topic, payload, QoS::AtLeastOnce, true, Some(pid)));
        match self.recv() {
            Packet::PubAck(a) => assert_eq!(a.packet_id, pid),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }

    /// The complete QoS 2 flow as the publisher: PUBLISH → PUBREC → PUBREL → PUBCOMP.
    pub fn publish2(&mut self, topic: &str, payload: &[u8], pid: u16) {
        self.send(&publish(topic, payload, QoS::ExactlyOnce, false, Some(pid)));
        match self.recv() {
            Packet::PubRec(r) => assert_eq!(r.packet_id, pid),
            other => panic!("expected PUBREC, got {other:?}"),
        }
        self.send(&Packet::PubRel(PubResp::new(pid)));
        match self.recv() {
            Packet::PubComp(r) => assert_eq!(r.packet_id, pid),
            other => panic!("expected PUBCOMP, got {other:?}"),
        }
    }

    /// PINGREQ, and wait for PINGRESP (a round trip: everything the broker did for
    /// earlier packets of this connection is done).
    pub fn ping(&mut self) {
        self.send(&Packet::PingReq);
        match self.recv() {
            Packet::PingResp => {}
            other => panic!("expected PINGRESP, got {other:?}"),
        }
    }

    /// DISCONNECT, then wait until the broker closes the socket.
    pub fn disconnect(mut self) {
        self.send(&Packet::Disconnect(Disconnect::default()));
        self.expect_closed();
    }

    /// Drops the socket without DISCONNECT (an abnormal close).
    pub fn drop_socket(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

enum Event {
    Packet(Box<Packet>),
    Timeout,
    Closed,
}

/// Publishes `total` QoS 1 messages on `topic` as a client with an inflight window does:
/// bursts of `window` in one write, then every PUBACK of the burst before the next.
/// `payload(i)` is message i's payload.
pub fn publish_windowed(
    client: &mut Raw,
    topic: &str,
    total: u32,
    window: u32,
    payload: impl Fn(u32) -> Vec<u8>,
) {
    let mut next = 0;
    while next < total {
        let burst = window.min(total - next);
        let mut bytes = bytes::BytesMut::new();
        for i in next..next + burst {
            let p = publish(
                topic,
                &payload(i),
                QoS::AtLeastOnce,
                false,
                Some((i % 60000 + 1) as u16),
            );
            shardmq::codec::encode(&p, ProtocolVersion::V311, &mut bytes).unwrap();
        }
        client.send_bytes(&bytes);
        for _ in 0..burst {
            assert!(matches!(client.recv(), Packet::PubAck(_)));
        }
        next += burst;
    }
}

/// Receives PUBLISHes on `client` until `n` arrived, acknowledging QoS 1/2 ones
/// (PUBACK, or PUBREC → PUBREL ← PUBCOMP), and returns them.
pub fn recv_publishes_acking(client: &mut Raw, n: usize) -> Vec<Publish> {
    let mut got = Vec::new();
    while got.len() < n {
        match client.recv() {
            Packet::Publish(p) => {
                match p.qos {
                    QoS::AtMostOnce => {}
                    QoS::AtLeastOnce => {
                        client.send(&Packet::PubAck(PubResp::new(p.packet_id.unwrap())))
                    }
                    QoS::ExactlyOnce => {
                        client.send(&Packet::PubRec(PubResp::new(p.packet_id.unwrap())))
                    }
                }
                got.push(p);
            }
            Packet::PubRel(r) => client.send(&Packet::PubComp(PubResp::new(r.packet_id))),
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }
    got
}

// ---------------------------------------------------------------- rumqttc

/// Runs an async test body (the rumqttc clients) on a current-thread tokio runtime.
#[allow(dead_code)]
pub fn block_on<T>(body: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(body)
}

/// A `rumqttc` client whose event loop runs in a task, with the incoming packets on a
/// channel.
pub struct Rumq {
    pub client: rumqttc::AsyncClient,
    pub incoming: tokio::sync::mpsc::UnboundedReceiver<rumqttc::Packet>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Rumq {
    /// Connects (clean or persistent) and waits for CONNACK; returns it with the client.
    pub async fn connect(addr: SocketAddr, id: &str, clean: bool) -> (Rumq, rumqttc::ConnAck) {
        let mut opts = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
        opts.set_clean_session(clean);
        opts.set_keep_alive(Duration::from_secs(30));
        Self::connect_with(opts).await
    }

    /// Connects with these options and waits for CONNACK.
    pub async fn connect_with(opts: rumqttc::MqttOptions) -> (Rumq, rumqttc::ConnAck) {
        let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 64);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(rumqttc::Event::Incoming(p)) => {
                        if tx.send(p).is_err() {
                            return;
                        }
                    }
                    Ok(rumqttc::Event::Outgoing(_)) => {}
                    Err(_) => return,
                }
            }
        });
        let ack = loop {
            match tokio::time::timeout(WAIT, rx.recv()).await {
                Ok(Some(rumqttc::Packet::ConnAck(a))) => break a,
                Ok(Some(_)) => continue,
                Ok(None) => panic!("rumqttc connection failed before CONNACK"),
                Err(_) => panic!("no CONNACK within {WAIT:?}"),
            }
        };
        (
            Rumq {
                client,
                incoming: rx,
                task: Some(task),
            },
            ack,
        )
    }

    /// The next incoming packet of a kind `pick` accepts (others are skipped).
    pub async fn next<T>(&mut self, mut pick: impl FnMut(rumqttc::Packet) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
                Ok(Some(p)) => {
                    if let Some(v) = pick(p) {
                        return v;
                    }
                }
                Ok(None) => panic!("rumqttc connection ended while waiting"),
                Err(_) => panic!("nothing expected arrived within {WAIT:?}"),
            }
        }
    }

    /// Subscribes and waits for the SUBACK.
    pub async fn subscribe(&mut self, filter: &str, qos: rumqttc::QoS) -> rumqttc::SubAck {
        self.client.subscribe(filter, qos).await.unwrap();
        self.next(|p| match p {
            rumqttc::Packet::SubAck(a) => Some(a),
            _ => None,
        })
        .await
    }

    /// The next PUBLISH.
    pub async fn next_publish(&mut self) -> rumqttc::Publish {
        self.next(|p| match p {
            rumqttc::Packet::Publish(p) => Some(p),
            _ => None,
        })
        .await
    }

    /// PUBLISHes that arrive within [`QUIET`] (the client acknowledges them itself).
    pub async fn drain_quiet(&mut self) -> Vec<rumqttc::Publish> {
        let mut got = Vec::new();
        while let Ok(Some(p)) = tokio::time::timeout(QUIET, self.incoming.recv()).await {
            if let rumqttc::Packet::Publish(p) = p {
                got.push(p);
            }
        }
        got
    }

    /// Sends DISCONNECT and waits for the event loop to end.
    pub async fn disconnect(mut self) {
        let _ = self.client.disconnect().await;
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(WAIT, task).await;
        }
    }
}

impl Drop for Rumq {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

// ------------------------------------------------------------------ administration tests

/// Basic auth of the bootstrap app `admin` / `public`.
pub const ADMIN_AUTH: &str = "Basic YWRtaW46cHVibGlj";

/// A broker with its REST API on loopback and its admin state in `data_dir`, which
/// outlives it (so a test can start another broker on the same state).
pub struct AdminNode {
    broker: Option<Broker>,
    pub mqtt: SocketAddr,
    pub http: SocketAddr,
    pub name: String,
}

/// An HTTP answer: status and JSON body (`Null` if not JSON).
#[derive(Debug)]
pub struct Http {
    pub status: u16,
    pub json: serde_json::Value,
}

impl AdminNode {
    /// Two shards, random ports, these `--set` overrides.
    pub fn start(data_dir: &std::path::Path, sets: &[&str]) -> AdminNode {
        Self::start_with_shards(data_dir, SHARDS, sets)
    }

    /// `shards` shards, random ports, these `--set` overrides.
    pub fn start_with_shards(
        data_dir: &std::path::Path,
        shards: usize,
        sets: &[&str],
    ) -> AdminNode {
        let mut cfg = Config::default();
        cfg.listeners.tcp.bind = "127.0.0.1:0".parse().unwrap();
        cfg.management.bind = "127.0.0.1:0".parse().unwrap();
        cfg.node.data_dir = data_dir.to_string_lossy().into_owned();
        for s in sets {
            cfg.apply_set(s)
                .unwrap_or_else(|e| panic!("--set {s}: {e}"));
        }
        let name = cfg.node.name.clone();
        let cores = shardmq_shards::preflight::available_cores();
        let shard_cores: Vec<usize> = (0..shards).map(|i| cores[i % cores.len()]).collect();
        let broker = shardmq::broker::start(cfg, &shard_cores).expect("broker starts");
        AdminNode {
            mqtt: broker.mqtt_addr,
            http: broker.http_addr,
            broker: Some(broker),
            name,
        }
    }

    /// Stops the broker (its state stays in the data directory).
    pub fn stop(mut self) {
        if let Some(b) = self.broker.take() {
            b.stop();
        }
    }

    /// `METHOD /api/v3/<path>` with `auth` (an `Authorization` value) and an optional body.
    pub fn call_as(
        &self,
        auth: Option<&str>,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Http {
        let url = format!(
            "http://{}/api/v3/{}",
            self.http,
            path.trim_start_matches('/')
        );
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(10))
            .build();
        let mut req = agent.request(method, &url);
        if let Some(a) = auth {
            req = req.set("Authorization", a);
        }
        let result = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        let resp = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: transport error: {e}"),
        };
        let status = resp.status();
        let text = resp.into_string().expect("body");
        Http {
            status,
            json: serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        }
    }

    /// As the bootstrap app.
    pub fn call(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> Http {
        self.call_as(Some(ADMIN_AUTH), method, path, body)
    }

    /// A call that must answer HTTP 200 with this `code`; returns the JSON.
    pub fn expect(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
        code: u64,
    ) -> serde_json::Value {
        let r = self.call(method, path, body);
        assert_eq!(r.status, 200, "{method} {path}: {:?}", r.json);
        assert_eq!(r.json["code"], code, "{method} {path}: {}", r.json);
        r.json
    }

    /// The sum over the shards of a `GET /stats` figure (0 where a shard lacks it).
    pub fn stats_sum(&self, name: &str) -> u64 {
        self.stats_per_shard(name).iter().sum()
    }

    /// A `GET /stats` figure of each shard, in shard order (0 where a shard lacks it).
    pub fn stats_per_shard(&self, name: &str) -> Vec<u64> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.http).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let req = format!(
            "GET /stats HTTP/1.1\r\nHost: x\r\nAuthorization: {ADMIN_AUTH}\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let body = text.split_once("\r\n\r\n").expect("an HTTP answer").1;
        let shards: serde_json::Value = serde_json::from_str(body).expect("JSON");
        shards
            .as_array()
            .expect("one object per shard")
            .iter()
            .map(|s| s[name].as_u64().unwrap_or(0))
            .collect()
    }

    /// `/nodes/<this node>/<rest>`.
    pub fn node_path(&self, rest: &str) -> String {
        format!("nodes/{}/{rest}", self.name)
    }

    /// Loads a plugin (must succeed).
    pub fn load(&self, plugin: &str) {
        self.expect(
            "PUT",
            &self.node_path(&format!("plugins/{plugin}/load")),
            None,
            0,
        );
    }

    /// Unloads a plugin (must succeed).
    pub fn unload(&self, plugin: &str) {
        self.expect(
            "PUT",
            &self.node_path(&format!("plugins/{plugin}/unload")),
            None,
            0,
        );
    }

    /// CONNECT (3.1.1, clean) with optional username/password; the client and CONNACK code.
    pub fn connect(&self, id: &str, user: Option<&str>, password: Option<&str>) -> (Raw, u8) {
        let mut c = connect_packet(id, true, 0, None, ProtocolVersion::V311);
        c.username = user.map(Str::from);
        c.password = password.map(|p| Bytes::copy_from_slice(p.as_bytes()));
        let (raw, ack) = Raw::connect_with(self.mqtt, c);
        (raw, ack.code)
    }

    /// [`AdminNode::connect`] from the local address `from` (see [`tcp_from`]).
    pub fn connect_from(
        &self,
        from: IpAddr,
        id: &str,
        user: Option<&str>,
        password: Option<&str>,
    ) -> (Raw, u8) {
        let mut c = connect_packet(id, true, 0, None, ProtocolVersion::V311);
        c.username = user.map(Str::from);
        c.password = password.map(|p| Bytes::copy_from_slice(p.as_bytes()));
        let (raw, ack) = Raw::connect_from(from, self.mqtt, c);
        (raw, ack.code)
    }

    /// The CONNACK code of a fresh connection (closed afterwards).
    pub fn connack(&self, id: &str, user: Option<&str>, password: Option<&str>) -> u8 {
        let (c, code) = self.connect(id, user, password);
        if code == 0 {
            c.disconnect();
        }
        code
    }
}

impl Drop for AdminNode {
    fn drop(&mut self) {
        if let Some(b) = self.broker.take() {
            b.stop();
        }
    }
}

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    use std::fmt::Write as _;
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = format!("{user}:{password}").into_bytes();
    let mut out = String::from("Basic ");
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let _ = write!(out, "{}", T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
