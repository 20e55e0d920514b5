//! Invariants of the HTTP request parser and of the connection loop, checked on any input.
//! Shared by the property test `prop_http.rs` and the cargo-fuzz target `http_request`
//! (`tests/fuzz/fuzz_targets/http_request.rs` includes this file by path).
//!
//! Owns: [`check`], which takes arbitrary bytes, the points where the peer's writes end and
//! the limits, and panics when one of these fails:
//! * every answer of [`parse_request`] is sound: `Ok(Some((req, used)))` has
//!   `0 < used <= len`, a request that keeps every limit, a body that is the last bytes of
//!   the consumed input and as long as its `Content-Length`, lower-case header names, no
//!   `Transfer-Encoding`, a `Host` on HTTP/1.1, the keep-alive the `Connection` header asks
//!   for; parsing exactly the consumed bytes gives the same request; `Ok(None)` ("need more")
//!   is never answered for more bytes than one request's limits allow;
//! * the parse does not depend on how the bytes arrived: fed piece by piece (split at the
//!   given points, requests consumed as they complete), the same requests come out in the
//!   same order and the input ends the same way (waiting for more, or refused) as when all
//!   of it is there at once;
//! * [`serve_connection`] over a stream that delivers those pieces handles exactly those
//!   requests (up to the first one that does not keep the connection), answers each once,
//!   then ends as the parse says: `Done`, `Rejected` with an error answer, or `PeerClosed`.
//!
//! Must never: accept a difference in the error *kind* between whole and piecewise input as
//! a failure (an early limit may give 431 where the whole head gives 400; both close).

#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::future;
use futures_lite::io::{AsyncRead, AsyncWrite};
use shardmq_http::collector::LocalBoxFuture;
use shardmq_http::parse::percent_decode;
use shardmq_http::{
    parse_request, serve_connection, ConnEnd, Handler, HttpError, Limits, Method, Request,
    Response, ServerConfig, Version,
};

/// Limits small enough for short inputs to reach each of them, and the defaults.
pub fn limits(choice: u8) -> Limits {
    match choice % 4 {
        0 => Limits::default(),
        1 => Limits {
            max_header_bytes: 128,
            max_headers: 4,
            max_uri_bytes: 32,
            max_body_bytes: 16,
        },
        2 => Limits {
            max_header_bytes: 512,
            max_headers: 8,
            max_uri_bytes: 128,
            max_body_bytes: 256,
        },
        // A target limit above the head limit: 414 and 431 race.
        _ => Limits {
            max_header_bytes: 64,
            max_headers: 2,
            max_uri_bytes: 100,
            max_body_bytes: 0,
        },
    }
}

/// How a run of the parser over a byte stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Waiting for more bytes; this many are buffered.
    NeedMore(usize),
    /// Refused: the connection would be answered with this error and closed.
    Refused(HttpError),
}

/// The requests a stream yields, in order, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub requests: Vec<(Request, usize)>,
    pub end: End,
}

/// Checks every invariant on `input`, delivered in pieces that end at `cuts` (any values:
/// they are reduced modulo the input length), with `limits` and a server read size of
/// `read_chunk` bytes.
pub fn check(input: &[u8], cuts: &[usize], limits: &Limits, read_chunk: usize) {
    let whole = run_pieces(&[input], limits);
    let pieces = pieces(input, cuts);
    let piecewise = run_pieces(&pieces, limits);
    assert_eq!(
        piecewise.requests,
        whole.requests,
        "the requests depend on how the bytes arrived (pieces {:?})",
        piece_lens(&pieces)
    );
    match (&whole.end, &piecewise.end) {
        (End::NeedMore(a), End::NeedMore(b)) => assert_eq!(a, b, "buffered bytes differ"),
        (End::Refused(_), End::Refused(_)) => {}
        (w, p) => panic!(
            "whole input ends {w:?}, piecewise ends {p:?} (pieces {:?})",
            piece_lens(&pieces)
        ),
    }
    check_server(&pieces, &whole, limits, read_chunk);
}

fn piece_lens(pieces: &[&[u8]]) -> Vec<usize> {
    pieces.iter().map(|p| p.len()).collect()
}

/// Splits `input` at the cut points (reduced modulo its length, sorted, deduplicated).
pub fn pieces<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    if input.is_empty() {
        return Vec::new();
    }
    let mut at: Vec<usize> = cuts.iter().map(|c| c % input.len()).collect();
    at.push(input.len());
    at.sort_unstable();
    at.dedup();
    let mut out = Vec::with_capacity(at.len());
    let mut start = 0;
    for end in at {
        if end > start {
            out.push(&input[start..end]);
            start = end;
        }
    }
    out
}

/// Feeds `pieces` one after the other, consuming requests as they complete, as the
/// connection loop does.
pub fn run_pieces(pieces: &[&[u8]], limits: &Limits) -> Outcome {
    let mut buf: Vec<u8> = Vec::new();
    let mut requests = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match parse_checked(&buf, limits) {
                Ok(Some((req, used))) => {
                    buf.drain(..used);
                    requests.push((req, used));
                }
                Ok(None) => break,
                Err(e) => {
                    return Outcome {
                        requests,
                        end: End::Refused(e),
                    }
                }
            }
        }
    }
    Outcome {
        requests,
        end: End::NeedMore(buf.len()),
    }
}

/// [`parse_request`], with every per-call invariant checked on its answer.
pub fn parse_checked(buf: &[u8], limits: &Limits) -> Result<Option<(Request, usize)>, HttpError> {
    let got = parse_request(buf, limits);
    match &got {
        Ok(Some((req, used))) => {
            let used = *used;
            assert!(
                used > 0 && used <= buf.len(),
                "consumed {used} of {}",
                buf.len()
            );
            check_request(req, &buf[..used], limits);
            // Whatever follows a complete request does not change it.
            assert_eq!(
                parse_request(&buf[..used], limits),
                Ok(Some((req.clone(), used))),
                "the request changes without the bytes after it"
            );
        }
        Ok(None) => assert!(
            buf.len() <= limits.max_header_bytes + limits.max_body_bytes,
            "asks for more bytes while holding {}, over one request's limits",
            buf.len()
        ),
        Err(_) => {}
    }
    got
}

/// One parsed request against the bytes it was parsed from.
fn check_request(req: &Request, raw: &[u8], limits: &Limits) {
    assert!(
        req.body.len() <= limits.max_body_bytes,
        "body over the limit"
    );
    assert!(
        raw.ends_with(&req.body),
        "the body is not the end of the input"
    );
    let head = raw.len() - req.body.len();
    assert!(head <= limits.max_header_bytes, "head of {head} bytes");
    assert!(req.headers.len() <= limits.max_headers, "too many headers");
    assert!(
        req.path.len() + req.query.len() <= limits.max_uri_bytes,
        "target over the limit"
    );
    assert!(req.path.starts_with('/'), "path {:?}", req.path);
    assert!(
        !req.path.contains('#') && !req.query.contains('#'),
        "fragment kept"
    );

    // The request line starts with the method as sent (after optional empty lines).
    let line = raw
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .map_or(&raw[..0], |i| &raw[i..]);
    let mut token = req.method.as_str().as_bytes().to_vec();
    token.push(b' ');
    assert!(line.starts_with(&token), "method {:?}", req.method);
    if let Method::Other(t) = &req.method {
        assert!(!t.is_empty());
    }

    let mut content_length = None;
    let mut host = false;
    let (mut close, mut keep_alive) = (false, false);
    for (name, value) in &req.headers {
        assert!(!name.is_empty(), "empty header name");
        assert_eq!(
            *name,
            name.to_ascii_lowercase(),
            "header name not lower-cased"
        );
        match name.as_str() {
            "content-length" => {
                let text = std::str::from_utf8(value).expect("a valid Content-Length is ASCII");
                let n: usize = text
                    .trim()
                    .parse()
                    .expect("a valid Content-Length is a number");
                assert!(
                    content_length.is_none_or(|old| old == n),
                    "two Content-Length values"
                );
                content_length = Some(n);
            }
            "transfer-encoding" => panic!("a Transfer-Encoding request was accepted"),
            "host" => host = true,
            "connection" => {
                for t in value.split(|&b| b == b',') {
                    let t = t.trim_ascii();
                    close |= t.eq_ignore_ascii_case(b"close");
                    keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            _ => {}
        }
    }
    assert_eq!(req.body.len(), content_length.unwrap_or(0), "body length");
    let expect_keep_alive = match req.version {
        Version::Http11 => {
            assert!(host, "HTTP/1.1 without Host accepted");
            !close
        }
        Version::Http10 => keep_alive && !close,
    };
    assert_eq!(req.keep_alive, expect_keep_alive, "keep-alive decision");

    // The helpers the router and handlers use on every request.
    let _ = req.query_pairs();
    if let Some(p) = percent_decode(&req.path, false) {
        assert!(p.len() <= req.path.len(), "decoding grew the path");
    }
}

/// What the peer sends: the pieces, one per read (a read may take less), then EOF.
struct Peer {
    pieces: VecDeque<Vec<u8>>,
    written: Vec<u8>,
    closed: bool,
}

impl AsyncRead for Peer {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let Some(mut piece) = self.pieces.pop_front() else {
            return Poll::Ready(Ok(0));
        };
        let n = piece.len().min(buf.len());
        buf[..n].copy_from_slice(&piece[..n]);
        if n < piece.len() {
            self.pieces.push_front(piece.split_off(n));
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for Peer {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.written.extend_from_slice(b);
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.closed = true;
        Poll::Ready(Ok(()))
    }
}

/// Records each request it is given and answers a short text (no `HTTP/1.` in it).
#[derive(Default)]
struct Recorder {
    seen: RefCell<Vec<Request>>,
}

impl Handler for Recorder {
    fn handle<'a>(&'a self, req: &'a Request) -> LocalBoxFuture<'a, Response> {
        self.seen.borrow_mut().push(req.clone());
        Box::pin(async { Response::text("text/plain", "ok") })
    }
}

/// The connection loop over the same pieces must agree with the parse.
fn check_server(pieces: &[&[u8]], whole: &Outcome, limits: &Limits, read_chunk: usize) {
    let mut peer = Peer {
        pieces: pieces.iter().map(|p| p.to_vec()).collect(),
        written: Vec::new(),
        closed: false,
    };
    let config = ServerConfig {
        limits: *limits,
        idle_timeout: Duration::from_secs(60),
        request_timeout: Duration::from_secs(10),
        read_chunk,
    };
    let handler = Recorder::default();
    // Deadlines never fire: the stream ends with EOF, not a stall.
    let timer = |_: Duration| future::pending::<()>();
    let end = future::block_on(serve_connection(&mut peer, None, &handler, &config, timer))
        .expect("an in-memory stream has no I/O errors");

    // Handled: every request up to and including the first that closes the connection.
    let last = whole.requests.iter().position(|(r, _)| !r.keep_alive);
    let expected: Vec<&Request> = match last {
        Some(i) => whole.requests[..=i].iter().map(|(r, _)| r).collect(),
        None => whole.requests.iter().map(|(r, _)| r).collect(),
    };
    let seen = handler.seen.borrow();
    assert_eq!(
        seen.iter().collect::<Vec<_>>(),
        expected,
        "the server handled other requests than the parser yields"
    );
    let answers = count(&peer.written, b"HTTP/1.1 ");
    match (last, &whole.end, end) {
        (Some(_), _, ConnEnd::Done) => {
            assert_eq!(answers, expected.len());
            assert!(peer.closed, "not closed after Connection: close");
        }
        (None, End::Refused(_), ConnEnd::Rejected(e)) => {
            assert_eq!(
                answers,
                expected.len() + 1,
                "one answer per request and the error"
            );
            let status = format!("HTTP/1.1 {} ", e.status());
            assert!(
                find(&peer.written, status.as_bytes()).is_some(),
                "the refusal was not answered with its status"
            );
            assert!(peer.closed, "not closed after an error answer");
        }
        (None, End::NeedMore(_), ConnEnd::PeerClosed) => assert_eq!(answers, expected.len()),
        (last, parse_end, end) => panic!(
            "the server ended {end:?}; the parse ended {parse_end:?} (closing request: {last:?})"
        ),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}
