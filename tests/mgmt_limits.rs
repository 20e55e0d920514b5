//! The management listener's own limits, over real sockets: at most
//! `management.max_connections` HTTP connections at once (the next is closed unread), and a
//! connection that never had a request answered with success is closed after
//! `management.request_timeout`, while the API keeps serving.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// Waits until the peer closes `s` (EOF or reset); panics after `within`.
fn expect_closed_within(s: &mut TcpStream, within: Duration, what: &str) -> Duration {
    let start = Instant::now();
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => continue, // an answer before the close (e.g. a 408)
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!("{what}: still open after {within:?}")
            }
            Err(_) => return start.elapsed(), // reset
        }
    }
}

/// The status of `GET path` as the bootstrap app on a fresh connection; `None` if the
/// connection was closed without an answer.
fn raw_get_status(addr: std::net::SocketAddr, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(WAIT)).unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {ADMIN_AUTH}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

#[test]
fn connections_over_management_max_connections_are_closed_and_the_api_still_answers() {
    let dir = tempfile::tempdir().unwrap();
    let node = AdminNode::start(dir.path(), &["management.max_connections=4"]);
    // Four idle sockets take every slot (each is accepted and waits for a request).
    let mut held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(node.http).unwrap())
        .collect();
    // Each is counted as it is accepted, so a fifth is closed unread.
    let mut extra = TcpStream::connect(node.http).unwrap();
    expect_closed_within(&mut extra, WAIT, "a connection over the cap");
    held.pop();
    // Freeing one slot lets a real request through, once the broker saw that close.
    let deadline = Instant::now() + WAIT;
    while raw_get_status(node.http, "/api/v3/brokers") != Some(200) {
        assert!(Instant::now() < deadline, "the API never answered again");
        std::thread::sleep(Duration::from_millis(20));
    }
    let listeners = node.call("GET", "listeners", None);
    let http = listeners.json["data"][0]["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["protocol"] == "http:management")
        .cloned()
        .unwrap();
    assert_eq!(http["max_conns"], 4, "{http}");
    assert!(
        http["shutdown_count"]["max_connections"]
            .as_u64()
            .unwrap_or(0)
            >= 1,
        "{http}"
    );
    drop(held);
    node.stop();
}

#[test]
fn an_unauthenticated_idle_connection_is_closed_after_request_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let node = AdminNode::start(
        dir.path(),
        &["management.request_timeout=1", "management.idle_timeout=60"],
    );
    // Says nothing at all.
    let mut silent = TcpStream::connect(node.http).unwrap();
    // Only a request refused for want of credentials (401), kept alive.
    let mut refused = TcpStream::connect(node.http).unwrap();
    refused
        .write_all(
            b"GET /api/v3/brokers HTTP/1.1\r\nHost: x\r\nAuthorization: Basic Zm9vOmJhcg==\r\n\r\n",
        )
        .unwrap();
    let took = expect_closed_within(&mut silent, WAIT, "a silent connection");
    assert!(took < Duration::from_secs(5), "{took:?}");
    expect_closed_within(&mut refused, WAIT, "a connection with only a 401");
    // An authenticated keep-alive connection outlives request_timeout.
    let mut good = TcpStream::connect(node.http).unwrap();
    good.write_all(
        format!("GET /api/v3/brokers HTTP/1.1\r\nHost: x\r\nAuthorization: {ADMIN_AUTH}\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut head = [0u8; 12];
    good.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    good.set_read_timeout(Some(Duration::from_millis(2500)))
        .unwrap();
    let mut rest = vec![0u8; 65536];
    let mut open = true;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(2000) {
        match good.read(&mut rest) {
            Ok(0) => {
                open = false;
                break;
            }
            Ok(_) => {}
            Err(_) => break, // timed out: still open
        }
    }
    assert!(
        open,
        "an authenticated idle connection was closed after request_timeout"
    );
    node.stop();
}
