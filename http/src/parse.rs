//! HTTP/1.1 request parsing: bytes in, [`Request`] out. Pure, runs on the management thread.
//!
//! Owns: framing (request line, headers, `Content-Length` or chunked body), the hard limits of
//! [`Limits`], the keep-alive decision, percent-decoding and query-string parsing.
//! Must never: do I/O, panic on any input, buffer a body before its length was checked
//! against the limit, or guess a framing it does not understand.
//!
//! [`parse_request`] is incremental: `Ok(None)` means "need more bytes"; call it again with
//! the same buffer plus whatever arrived. Several requests in one buffer (pipelining) are
//! parsed one at a time; the returned length says where the next one starts.
//!
//! Framing decisions (RFC 9112):
//! * `Content-Length` bodies, and `Transfer-Encoding: chunked` ones (decoded, trailer fields
//!   ignored, the decoded size held to the body limit). Both framings in one request is
//!   **400** (the request-smuggling lever, RFC 9112 §6.3); any other transfer coding gets
//!   **501** (RFC 9112 §6.1); a `Transfer-Encoding` in an HTTP/1.0 request is faulty
//!   framing, **400** (RFC 9112 §6.1).
//! * Duplicate `Content-Length` with different values, or a non-numeric one, is 400
//!   (RFC 9112 §6.3). An HTTP/1.1 request without `Host`, or with more than one, is 400
//!   (RFC 9112 §3.2).
//! * HTTP/1.1 keeps the connection open unless `Connection: close`; HTTP/1.0 closes unless
//!   `Connection: keep-alive`.
//! * After any error the framing is lost: the caller answers and closes.

use std::fmt;
use std::net::IpAddr;

/// Hard limits applied while parsing. Each one maps to its own status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Request line plus headers plus the blank line, in bytes (431 beyond).
    pub max_header_bytes: usize,
    /// Number of header fields (431 beyond).
    pub max_headers: usize,
    /// Length of the request target (414 beyond).
    pub max_uri_bytes: usize,
    /// `Content-Length` (413 beyond).
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_uri_bytes: 8 * 1024,
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// Why a request could not be parsed. Each maps to one HTTP status; all end the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// Malformed request line, header or framing (400). The text says which.
    BadRequest(&'static str),
    /// A body (`Content-Length`, or chunked once decoded) over [`Limits::max_body_bytes`] (413).
    PayloadTooLarge,
    /// Request target over [`Limits::max_uri_bytes`] (414).
    UriTooLong,
    /// Headers over [`Limits::max_header_bytes`] or [`Limits::max_headers`] (431).
    HeadersTooLarge,
    /// A transfer coding other than chunked (501).
    NotImplemented,
    /// An HTTP version other than 1.0 / 1.1 (505).
    VersionNotSupported,
    /// The request did not arrive completely before its deadline (408). Raised by the server.
    Timeout,
}

impl HttpError {
    /// The HTTP status code for this error.
    pub fn status(self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::Timeout => 408,
            HttpError::PayloadTooLarge => 413,
            HttpError::UriTooLong => 414,
            HttpError::HeadersTooLarge => 431,
            HttpError::NotImplemented => 501,
            HttpError::VersionNotSupported => 505,
        }
    }

    /// A short human-readable message (used as the JSON `message`).
    pub fn message(self) -> &'static str {
        match self {
            HttpError::BadRequest(why) => why,
            HttpError::Timeout => "request timeout",
            HttpError::PayloadTooLarge => "request body too large",
            HttpError::UriTooLong => "request target too long",
            HttpError::HeadersTooLarge => "request headers too large",
            HttpError::NotImplemented => "transfer coding not implemented",
            HttpError::VersionNotSupported => "HTTP version not supported",
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status(), self.message())
    }
}

impl std::error::Error for HttpError {}

/// The request method. Unknown tokens are kept so routing can answer 404 for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    /// Any other token, as sent.
    Other(String),
}

impl Method {
    fn from_token(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_string()),
        }
    }

    /// The method token.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
            Method::Other(token) => token,
        }
    }
}

/// HTTP version of the request line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// One complete request, owned (the read buffer can be reused at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub version: Version,
    /// The path part of the target, still percent-encoded (routing splits, then decodes).
    pub path: String,
    /// The raw query string after `?`, without the `?` ("" when absent).
    pub query: String,
    /// Header fields in arrival order; names lower-cased.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// Whether the connection may stay open after the response.
    pub keep_alive: bool,
    /// The client's address, when the server knows it (the parser never does: the
    /// connection loop fills it in).
    pub peer: Option<IpAddr>,
}

impl Request {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The decoded query pairs, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        parse_query(&self.query)
    }

    /// The first value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        parse_query(&self.query)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// Parses one request from the start of `buf`.
///
/// `Ok(Some((request, consumed)))` when a whole request (headers and body) is there,
/// `Ok(None)` when more bytes are needed, `Err` when the request is bad or over a limit
/// (checked as early as possible, so an oversized request is refused before it is buffered).
pub fn parse_request(buf: &[u8], limits: &Limits) -> Result<Option<(Request, usize)>, HttpError> {
    check_request_line(buf, limits)?;
    let mut slots = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut parsed = httparse::Request::new(&mut slots);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_header_bytes {
                return Err(HttpError::HeadersTooLarge);
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadersTooLarge),
        Err(httparse::Error::Version) => return Err(HttpError::VersionNotSupported),
        Err(_) => return Err(HttpError::BadRequest("malformed request")),
    };
    if head_len > limits.max_header_bytes {
        return Err(HttpError::HeadersTooLarge);
    }
    let version = match parsed.version {
        Some(0) => Version::Http10,
        Some(1) => Version::Http11,
        _ => return Err(HttpError::VersionNotSupported),
    };
    let method = Method::from_token(parsed.method.unwrap_or(""));
    let target = parsed.path.unwrap_or("");
    if target.len() > limits.max_uri_bytes {
        return Err(HttpError::UriTooLong);
    }
    let (path, query) = split_target(target)?;

    let mut headers = Vec::with_capacity(parsed.headers.len());
    let mut content_length: Option<usize> = None;
    let mut transfer_encoding: Option<Vec<u8>> = None;
    let mut has_host = false;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    for h in parsed.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        match name.as_str() {
            "content-length" => {
                let n = parse_content_length(h.value)?;
                if content_length.is_some_and(|old| old != n) {
                    return Err(HttpError::BadRequest("conflicting Content-Length"));
                }
                content_length = Some(n);
            }
            "transfer-encoding" => {
                let mut all = transfer_encoding.take().unwrap_or_default();
                if !all.is_empty() {
                    all.push(b',');
                }
                all.extend_from_slice(h.value);
                transfer_encoding = Some(all);
            }
            // More than one Host field is 400 (RFC 9112 §3.2): which one names the target
            // is ambiguous, the classic request-smuggling lever.
            "host" if has_host => return Err(HttpError::BadRequest("more than one Host header")),
            "host" => has_host = true,
            "connection" => {
                for token in h.value.split(|&b| b == b',') {
                    let token = trim(token);
                    conn_close |= token.eq_ignore_ascii_case(b"close");
                    conn_keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            _ => {}
        }
        headers.push((name, h.value.to_vec()));
    }
    let mut chunked = false;
    if let Some(te) = transfer_encoding {
        if version == Version::Http10 {
            return Err(HttpError::BadRequest(
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        // Both framings at once is how requests are smuggled (RFC 9112 §6.3): refused.
        if content_length.is_some() {
            return Err(HttpError::BadRequest(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        let codings: Vec<&[u8]> = te
            .split(|&b| b == b',')
            .map(trim)
            .filter(|t| !t.is_empty())
            .collect();
        match codings.as_slice() {
            [only] if only.eq_ignore_ascii_case(b"chunked") => chunked = true,
            // Another coding (gzip, ...), alone or before chunked: not decoded here.
            _ => return Err(HttpError::NotImplemented),
        }
    }
    if version == Version::Http11 && !has_host {
        return Err(HttpError::BadRequest("missing Host header"));
    }
    let (body, total) = if chunked {
        match decode_chunked(&buf[head_len..], limits)? {
            Some((body, used)) => (body, head_len + used),
            None => return Ok(None),
        }
    } else {
        let body_len = content_length.unwrap_or(0);
        if body_len > limits.max_body_bytes {
            return Err(HttpError::PayloadTooLarge);
        }
        let total = head_len.saturating_add(body_len);
        let Some(body) = buf.get(head_len..total) else {
            return Ok(None);
        };
        (body.to_vec(), total)
    };
    let keep_alive = match version {
        Version::Http11 => !conn_close,
        Version::Http10 => conn_keep_alive && !conn_close,
    };
    let request = Request {
        method,
        version,
        path,
        query,
        headers,
        body,
        keep_alive,
        peer: None,
    };
    Ok(Some((request, total)))
}

/// A chunked body (RFC 9112 §7.1) at the start of `buf`: the decoded bytes and how many bytes
/// of `buf` it took (trailers included, ignored), or `None` while it is incomplete. Over
/// `max_body_bytes` decoded is 413; a malformed size line or chunk end is 400.
fn decode_chunked(buf: &[u8], limits: &Limits) -> Result<Option<(Vec<u8>, usize)>, HttpError> {
    let crlf = |from: usize| buf[from..].windows(2).position(|w| w == b"\r\n");
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some(eol) = crlf(at) else {
            if buf.len() - at > 1024 {
                return Err(HttpError::BadRequest("chunk size line too long"));
            }
            return Ok(None);
        };
        let line = &buf[at..at + eol];
        let size_hex = trim(line.split(|&b| b == b';').next().unwrap_or(b""));
        let size = std::str::from_utf8(size_hex)
            .ok()
            .filter(|h| !h.is_empty() && h.len() <= 15)
            .and_then(|h| usize::from_str_radix(h, 16).ok())
            .ok_or(HttpError::BadRequest("bad chunk size"))?;
        at += eol + 2;
        if size == 0 {
            // Trailer fields, then an empty line.
            loop {
                let Some(eol) = crlf(at) else {
                    if buf.len() - at > limits.max_header_bytes {
                        return Err(HttpError::HeadersTooLarge);
                    }
                    return Ok(None);
                };
                at += eol + 2;
                if eol == 0 {
                    return Ok(Some((body, at)));
                }
            }
        }
        if body.len().saturating_add(size) > limits.max_body_bytes {
            return Err(HttpError::PayloadTooLarge);
        }
        let Some(chunk) = buf.get(at..at + size) else {
            return Ok(None);
        };
        match buf.get(at + size..at + size + 2) {
            None => return Ok(None),
            Some(end) if end != b"\r\n" => return Err(HttpError::BadRequest("bad chunk end")),
            Some(_) => {}
        }
        body.extend_from_slice(chunk);
        at += size + 2;
    }
}

/// Refuses an over-long request target before the whole head is buffered (414).
fn check_request_line(buf: &[u8], limits: &Limits) -> Result<(), HttpError> {
    // Leading empty lines are allowed before the request line (RFC 9112 §2.2).
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let line = &buf[start..];
    let line = match line.iter().position(|&b| b == b'\n') {
        Some(end) => &line[..end],
        None => line,
    };
    // "METHOD SP target SP HTTP/1.1": the target is what lies between the first two spaces.
    let mut parts = line.splitn(3, |&b| b == b' ');
    let _method = parts.next();
    if let Some(target) = parts.next() {
        if target.len() > limits.max_uri_bytes {
            return Err(HttpError::UriTooLong);
        }
    }
    Ok(())
}

/// Splits a request target into (path, query). Accepts origin-form (`/a?b`) and
/// absolute-form (`http://host/a?b`, RFC 9112 §3.2.2); anything else is 400.
fn split_target(target: &str) -> Result<(String, String), HttpError> {
    let origin = if target.starts_with('/') {
        target
    } else if let Some(rest) = strip_scheme(target) {
        match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => &rest[i..],
            Some(i) => return Ok(("/".to_string(), rest[i + 1..].to_string())),
            None => "/",
        }
    } else {
        return Err(HttpError::BadRequest("unsupported request target"));
    };
    let origin = origin.split('#').next().unwrap_or("");
    Ok(match origin.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (origin.to_string(), String::new()),
    })
}

fn strip_scheme(target: &str) -> Option<&str> {
    for scheme in ["http://", "https://"] {
        // Compared as bytes: slicing the str there could split a multi-byte character.
        let head = target.as_bytes().get(..scheme.len());
        if head.is_some_and(|h| h.eq_ignore_ascii_case(scheme.as_bytes())) {
            // The prefix matched ASCII, so its end is a character boundary.
            return Some(&target[scheme.len()..]);
        }
    }
    None
}

fn parse_content_length(value: &[u8]) -> Result<usize, HttpError> {
    let value = trim(value);
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(HttpError::BadRequest("invalid Content-Length"));
    }
    // Too many digits for usize means far over any limit.
    value.iter().try_fold(0usize, |acc, &d| {
        acc.checked_mul(10)
            .and_then(|a| a.checked_add(usize::from(d - b'0')))
            .ok_or(HttpError::PayloadTooLarge)
    })
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end]
}

/// Percent-decodes `s`. `%xx` becomes the byte; a `%` not followed by two hex digits stays
/// as it is. With `plus_as_space` (query strings), `+` becomes a space; in paths `+` stays
/// (it is the MQTT single-level wildcard). `None` when the result is not UTF-8.
pub fn percent_decode(s: &str, plus_as_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|&b| hex_val(b));
                let lo = bytes.get(i + 2).and_then(|&b| hex_val(b));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi << 4) | lo);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' if plus_as_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Parses `a=1&b=x+y&c=%2F` into decoded pairs, in order. Empty pieces are skipped; a key
/// without `=` gets an empty value; undecodable text is kept lossily.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
            (decode_lossy(k), decode_lossy(v))
        })
        .collect()
}

fn decode_lossy(s: &str) -> String {
    percent_decode(s, true).unwrap_or_else(|| s.replace('+', " "))
}
