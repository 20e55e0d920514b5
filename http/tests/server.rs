//! Connection-loop tests over a scripted in-memory stream: pipelining, byte-at-a-time input,
//! keep-alive and close, limits, deadlines. Deterministic: no sockets, no clocks.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::future;
use futures_lite::io::{AsyncRead, AsyncWrite};
use shardmq_http::collector::LocalBoxFuture;
use shardmq_http::{
    route, serve_connection, ConnEnd, Handler, HttpError, Limits, Request, Response, ServerConfig,
};

/// What the peer does on each read.
enum Step {
    Data(Vec<u8>),
    /// Never sends again (a stalled client); only a deadline ends the wait.
    Stall,
}

/// A scripted stream: reads follow `steps` then EOF; writes are collected.
struct Script {
    steps: VecDeque<Step>,
    written: Vec<u8>,
    closed: bool,
}

impl Script {
    fn new(steps: Vec<Step>) -> Script {
        Script {
            steps: steps.into(),
            written: Vec::new(),
            closed: false,
        }
    }
}

impl AsyncRead for Script {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.steps.pop_front() {
            None => Poll::Ready(Ok(0)),
            Some(Step::Stall) => {
                self.steps.push_front(Step::Stall);
                Poll::Pending
            }
            Some(Step::Data(mut data)) => {
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                if n < data.len() {
                    self.steps.push_front(Step::Data(data.split_off(n)));
                }
                Poll::Ready(Ok(n))
            }
        }
    }
}

impl AsyncWrite for Script {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<io::Result<usize>> {
        // Accept at most 7 bytes per call to exercise partial writes.
        let n = b.len().min(7);
        self.written.extend_from_slice(&b[..n]);
        Poll::Ready(Ok(n))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.closed = true;
        Poll::Ready(Ok(()))
    }
}

/// Answers `{"code":0,"data":"<route name>"}`, echoing the body in a header.
struct Names;

impl Handler for Names {
    fn handle<'a>(&'a self, req: &'a Request) -> LocalBoxFuture<'a, Response> {
        Box::pin(async move {
            match route(&req.method, &req.path) {
                Ok(r) => Response::data(r.name())
                    .with_header("X-Body", String::from_utf8_lossy(&req.body).into_owned()),
                Err(_) => Response::not_found(),
            }
        })
    }
}

/// Runs a connection; `deadlines_fire` makes every timer complete at once.
fn run(steps: Vec<Step>, config: &ServerConfig, deadlines_fire: bool) -> (ConnEnd, String, bool) {
    let mut io = Script::new(steps);
    let timer = |_d: Duration| async move {
        if !deadlines_fire {
            future::pending::<()>().await;
        }
    };
    let end = future::block_on(serve_connection(&mut io, None, &Names, config, timer)).unwrap();
    (end, String::from_utf8(io.written).unwrap(), io.closed)
}

fn data(s: &str) -> Step {
    Step::Data(s.as_bytes().to_vec())
}

fn statuses(out: &str) -> Vec<&str> {
    out.split("HTTP/1.1 ")
        .skip(1)
        .map(|r| r.split("\r\n").next().unwrap())
        .collect()
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let input = "GET /api/v3/brokers HTTP/1.1\r\nHost: x\r\n\r\n\
                 POST /api/v3/mqtt/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi\
                 GET /api/v3/nope HTTP/1.1\r\nHost: x\r\n\r\n\
                 GET /api/v3/nodes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n\
                 GET /api/v3/never HTTP/1.1\r\nHost: x\r\n\r\n";
    let (end, out, closed) = run(vec![data(input)], &ServerConfig::default(), false);
    assert_eq!(end, ConnEnd::Done);
    assert!(closed);
    assert_eq!(
        statuses(&out),
        ["200 OK", "200 OK", "404 Not Found", "200 OK"]
    );
    let names: Vec<&str> = out.matches("\"data\":\"").map(|_| "").collect();
    assert_eq!(names.len(), 3);
    let order: Vec<usize> = ["list_brokers", "mqtt_publish", "list_nodes"]
        .iter()
        .map(|n| out.find(n).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]));
    assert!(out.contains("X-Body: hi\r\n"));
    assert!(out.ends_with("Connection: close\r\n\r\n{\"code\":0,\"data\":\"list_nodes\"}"));
}

#[test]
fn byte_at_a_time_then_peer_close() {
    let input =
        "PUT /api/v3/nodes/n/plugins/p/load HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
    let steps = input.bytes().map(|b| Step::Data(vec![b])).collect();
    let (end, out, _) = run(steps, &ServerConfig::default(), false);
    assert_eq!(end, ConnEnd::PeerClosed);
    assert_eq!(statuses(&out), ["200 OK"]);
    assert!(out.contains("load_plugin"));
    assert!(out.contains("X-Body: abc\r\n"));
    assert!(!out.contains("Connection: close"));
}

#[test]
fn http10_closes_after_one_response() {
    let input = "GET /status HTTP/1.0\r\n\r\nGET /status HTTP/1.0\r\n\r\n";
    let (end, out, closed) = run(vec![data(input)], &ServerConfig::default(), false);
    assert_eq!(end, ConnEnd::Done);
    assert!(closed);
    assert_eq!(statuses(&out), ["200 OK"]);
    assert!(out.contains("Connection: close\r\n"));
}

#[test]
fn oversized_body_is_refused_before_it_arrives() {
    let config = ServerConfig {
        limits: Limits {
            max_body_bytes: 4,
            ..Limits::default()
        },
        ..ServerConfig::default()
    };
    let input = "POST /api/v3/mqtt/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n";
    // The body never comes; the 413 must not wait for it.
    let (end, out, closed) = run(vec![data(input), Step::Stall], &config, false);
    assert_eq!(end, ConnEnd::Rejected(HttpError::PayloadTooLarge));
    assert!(closed);
    assert_eq!(statuses(&out), ["413 Content Too Large"]);
    assert!(out.ends_with("{\"code\":413,\"message\":\"request body too large\"}"));
}

#[test]
fn oversized_headers_and_garbage() {
    let config = ServerConfig {
        limits: Limits {
            max_header_bytes: 100,
            ..Limits::default()
        },
        ..ServerConfig::default()
    };
    let long = format!("GET / HTTP/1.1\r\nHost: x\r\nX: {}", "a".repeat(200));
    let (end, out, _) = run(vec![data(&long), Step::Stall], &config, false);
    assert_eq!(end, ConnEnd::Rejected(HttpError::HeadersTooLarge));
    assert_eq!(statuses(&out), ["431 Request Header Fields Too Large"]);

    let (end, out, _) = run(vec![data("\x00\x01garbage\r\n\r\n")], &config, false);
    assert!(matches!(end, ConnEnd::Rejected(HttpError::BadRequest(_))));
    assert_eq!(statuses(&out), ["400 Bad Request"]);
}

#[test]
fn answered_requests_before_an_error_are_kept() {
    let input = "GET /stats HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n";
    let (end, out, _) = run(vec![data(input)], &ServerConfig::default(), false);
    assert_eq!(end, ConnEnd::Rejected(HttpError::NotImplemented));
    assert_eq!(statuses(&out), ["200 OK", "501 Not Implemented"]);
}

#[test]
fn slow_request_times_out_with_408() {
    let (end, out, closed) = run(
        vec![data("GET /api/v3/brokers HTTP/1.1\r\nHo"), Step::Stall],
        &ServerConfig::default(),
        true,
    );
    assert_eq!(end, ConnEnd::Rejected(HttpError::Timeout));
    assert!(closed);
    assert_eq!(statuses(&out), ["408 Request Timeout"]);
}

#[test]
fn idle_connection_closes_silently() {
    let (end, out, closed) = run(
        vec![data("GET /stats HTTP/1.1\r\nHost: x\r\n\r\n"), Step::Stall],
        &ServerConfig::default(),
        true,
    );
    assert_eq!(end, ConnEnd::IdleTimeout);
    assert!(closed);
    assert_eq!(statuses(&out), ["200 OK"]);
}

#[test]
fn tiny_read_chunks_still_work() {
    let config = ServerConfig {
        read_chunk: 1,
        ..ServerConfig::default()
    };
    let input = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /status HTTP/1.1\r\nHost: x\r\n\r\n";
    let (end, out, _) = run(vec![data(input)], &config, false);
    assert_eq!(end, ConnEnd::PeerClosed);
    assert_eq!(statuses(&out), ["200 OK", "200 OK"]);
}

/// Panics on `/boom`, answers like [`Names`] otherwise.
struct Fragile;

impl Handler for Fragile {
    fn handle<'a>(&'a self, req: &'a Request) -> LocalBoxFuture<'a, Response> {
        Box::pin(async move {
            if req.path == "/boom" {
                panic!("a handler bug");
            }
            Names.handle(req).await
        })
    }
}

#[test]
fn a_panic_in_one_request_answers_500_and_the_connection_goes_on() {
    let input = "GET /boom HTTP/1.1\r\nHost: x\r\n\r\n\
                 GET /api/v3/brokers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let mut io = Script::new(vec![data(input)]);
    let timer = |_d: Duration| future::pending::<()>();
    let end = future::block_on(serve_connection(
        &mut io,
        None,
        &Fragile,
        &ServerConfig::default(),
        timer,
    ))
    .unwrap();
    let out = String::from_utf8(io.written).unwrap();
    assert_eq!(end, ConnEnd::Done);
    assert_eq!(
        statuses(&out),
        ["500 Internal Server Error", "200 OK"],
        "{out}"
    );
    assert!(out.contains("list_brokers"));
}

/// Runs a connection whose deadlines fire at once, returning the durations it asked for.
fn deadlines_asked(steps: Vec<Step>, config: &ServerConfig) -> (ConnEnd, Vec<Duration>) {
    let mut io = Script::new(steps);
    let asked = std::cell::RefCell::new(Vec::new());
    let timer = |d: Duration| {
        asked.borrow_mut().push(d);
        async {}
    };
    let end = future::block_on(serve_connection(&mut io, None, &Names, config, timer)).unwrap();
    (end, asked.into_inner())
}

#[test]
fn a_connection_without_a_successful_answer_waits_only_request_timeout() {
    let config = ServerConfig {
        idle_timeout: Duration::from_secs(60),
        request_timeout: Duration::from_secs(3),
        ..ServerConfig::default()
    };
    // Silent from the start: closed after request_timeout, not idle_timeout.
    let (end, asked) = deadlines_asked(vec![Step::Stall], &config);
    assert_eq!(end, ConnEnd::IdleTimeout);
    assert_eq!(asked, [Duration::from_secs(3)]);
    // Only an error answer (404) so far: still request_timeout.
    let (_, asked) = deadlines_asked(
        vec![
            data("GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"),
            Step::Stall,
        ],
        &config,
    );
    assert_eq!(asked.last(), Some(&Duration::from_secs(3)), "{asked:?}");
    // After a successful answer the keep-alive idle timeout applies.
    let (_, asked) = deadlines_asked(
        vec![data("GET /stats HTTP/1.1\r\nHost: x\r\n\r\n"), Step::Stall],
        &config,
    );
    assert_eq!(asked.last(), Some(&Duration::from_secs(60)), "{asked:?}");
}
