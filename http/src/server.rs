//! The per-connection loop: read, parse (pipelined), dispatch to a [`Handler`], write the
//! answers in order. IO, runtime-agnostic (futures-lite traits); runs on the management thread.
//!
//! Owns: the read buffer, the order of responses, keep-alive/close, and the deadlines: an
//! idle keep-alive connection closes after [`ServerConfig::idle_timeout`], one that has not
//! yet had a request answered with success (2xx/3xx: e.g. only 401s, or nothing sent at all)
//! after [`ServerConfig::request_timeout`], so unauthenticated sockets cannot sit on the
//! listener's connection slots; a request must
//! arrive completely within [`ServerConfig::request_timeout`] of its first byte (else 408 and
//! close); a response must be written within `request_timeout`. Timers come from a
//! caller-supplied factory so no runtime is named here.
//! Must never: panic on any input, let the buffer grow past one request's limits plus one
//! read, answer out of order, or keep reading after an error answer.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::Duration;

use futures_lite::future;
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::collector::LocalBoxFuture;
use crate::parse::{parse_request, HttpError, Limits, Method, Request, Version};
use crate::response::Response;

/// Answers one parsed request (the REST API implements it; tests use small fakes).
pub trait Handler {
    /// Produces the response; errors are responses too (never panics).
    fn handle<'a>(&'a self, req: &'a Request) -> LocalBoxFuture<'a, Response>;
}

/// Connection settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    pub limits: Limits,
    /// How long a keep-alive connection may sit with no request started.
    pub idle_timeout: Duration,
    /// How long one request may take to arrive, and one response to be written.
    pub request_timeout: Duration,
    /// Bytes read per `read` call.
    pub read_chunk: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            limits: Limits::default(),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            read_chunk: 8 * 1024,
        }
    }
}

/// Why a connection ended (for logs and listener `shutdown_count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnEnd {
    /// The peer closed between requests (or mid-request: nothing to answer).
    PeerClosed,
    /// `Connection: close` (request or response) after a complete exchange.
    Done,
    /// No request started within the idle timeout.
    IdleTimeout,
    /// A request was refused (bad framing, a limit, or its deadline); an error was sent.
    Rejected(HttpError),
}

/// Serves one connection from `peer` (given to every request as [`Request::peer`]) until it
/// ends. `timer(d)` must return a future that completes after `d`. Returns `Err` only for I/O
/// errors (including a response write that timed out, as `TimedOut`).
pub async fn serve_connection<S, H, T, F>(
    io: &mut S,
    peer: Option<IpAddr>,
    handler: &H,
    config: &ServerConfig,
    timer: T,
) -> io::Result<ConnEnd>
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Handler + ?Sized,
    T: Fn(Duration) -> F,
    F: Future<Output = ()>,
{
    let mut buf: Vec<u8> = Vec::new();
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; config.read_chunk.max(1)];
    // The running deadline, and whether it is the idle one (no request bytes yet).
    let mut deadline: Option<(Pin<Box<F>>, bool)> = None;
    // Whether a request on this connection was answered with success: until then, waiting
    // for a request is held to `request_timeout`.
    let mut trusted = false;
    loop {
        // Answer every complete request already buffered (pipelining), in order.
        loop {
            match parse_request(&buf, &config.limits) {
                Ok(Some((mut req, used))) => {
                    buf.drain(..used);
                    req.peer = peer;
                    deadline = None;
                    // A panic in one request's handling answers 500 and leaves the server
                    // (and every other connection of the management thread) serving.
                    let handled = std::panic::AssertUnwindSafe(handler.handle(&req));
                    let resp = match futures_lite::FutureExt::catch_unwind(handled).await {
                        Ok(resp) => resp,
                        Err(_) => {
                            tracing::error!(
                                "handling {} {} panicked; answered 500",
                                req.method.as_str(),
                                req.path
                            );
                            Response::internal_error()
                        }
                    };
                    trusted |= resp.status < 400;
                    let keep = req.keep_alive && !resp.close;
                    let http10 = req.version == Version::Http10;
                    resp.write_to(&mut out, keep, http10, req.method == Method::Head);
                    if !keep {
                        flush(io, &out, config, &timer).await?;
                        let _ = io.close().await;
                        return Ok(ConnEnd::Done);
                    }
                }
                Ok(None) => break,
                Err(err) => return reject(io, out, err, config, &timer).await,
            }
        }
        if !out.is_empty() {
            flush(io, &out, config, &timer).await?;
            out.clear();
        }

        let idle = buf.is_empty();
        let stale = match &deadline {
            None => true,
            // The first bytes of a request replace the idle deadline by the request one.
            Some((_, was_idle)) => *was_idle && !idle,
        };
        if stale {
            let d = if idle && trusted {
                config.idle_timeout
            } else {
                config.request_timeout
            };
            deadline = Some((Box::pin(timer(d)), idle));
        }
        let Some((timeout, _)) = deadline.as_mut() else {
            continue;
        };
        let read = future::or(async { Some(io.read(&mut chunk).await) }, async {
            timeout.await;
            None
        })
        .await;
        match read {
            None if idle => {
                let _ = io.close().await;
                return Ok(ConnEnd::IdleTimeout);
            }
            None => return reject(io, out, HttpError::Timeout, config, &timer).await,
            Some(Ok(0)) => return Ok(ConnEnd::PeerClosed),
            Some(Ok(n)) => buf.extend_from_slice(&chunk[..n.min(chunk.len())]),
            Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Some(Err(e)) => return Err(e),
        }
    }
}

/// Sends the error answer for `err`, closes, and reports the rejection.
async fn reject<S, T, F>(
    io: &mut S,
    mut out: Vec<u8>,
    err: HttpError,
    config: &ServerConfig,
    timer: &T,
) -> io::Result<ConnEnd>
where
    S: AsyncWrite + Unpin,
    T: Fn(Duration) -> F,
    F: Future<Output = ()>,
{
    Response::http_error(err).write_to(&mut out, false, false, false);
    flush(io, &out, config, timer).await?;
    let _ = io.close().await;
    Ok(ConnEnd::Rejected(err))
}

/// Writes `out` completely within the request timeout.
async fn flush<S, T, F>(io: &mut S, out: &[u8], config: &ServerConfig, timer: &T) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
    T: Fn(Duration) -> F,
    F: Future<Output = ()>,
{
    let write = async {
        io.write_all(out).await?;
        io.flush().await
    };
    let expire = async {
        timer(config.request_timeout).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "response write timed out",
        ))
    };
    future::or(write, expire).await
}
