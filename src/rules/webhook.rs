//! The HTTP/1.1 side of the rule engine's web hooks, without the sockets: the target of a
//! `web_hook` resource ([`WebTarget`], read from EMQ X's resource config), the bytes of one
//! request ([`request`]) and an incremental parser for the response ([`ResponseReader`]).
//!
//! Pure: no I/O, no threads, no clock. The runtime half (connections, queues, timeouts) is
//! `crate::broker::webhook`, which runs on a shard.
//!
//! Must never: panic on what a server sends, buffer more than [`MAX_HEAD`] bytes of a
//! response (bodies are skipped as they come, never kept), or write a header a config value
//! could split into two (CR or LF in a configured header is refused).

use std::net::Ipv6Addr;

use serde_json::Value;

/// The most bytes a response's status line and headers may take.
pub const MAX_HEAD: usize = 8 * 1024;

/// The most header fields a response may have.
const MAX_HEADERS: usize = 64;

/// An `http://` URL, split the way a request needs it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpUrl {
    /// An IPv4 literal, a host name, or an IPv6 literal without its brackets.
    pub host: String,
    pub port: u16,
    /// The request target: the path with its query, `/` when the URL has none.
    pub path: String,
}

impl HttpUrl {
    /// Parses `http://host[:port][/path][?query]` (the fragment, never sent, is dropped).
    /// Refuses other schemes (`https` with its own message), user information, an empty
    /// host, a port that is not 1..=65535, and characters a request line cannot carry.
    pub fn parse(url: &str) -> Result<HttpUrl, String> {
        let url = url.trim();
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("not an http:// URL: {url:?}"))?;
        if scheme.eq_ignore_ascii_case("https") {
            return Err("https web hooks are not supported yet".to_string());
        }
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(format!(
                "unsupported URL scheme {scheme:?}: web hooks take http:// URLs"
            ));
        }
        let rest = rest.split('#').next().unwrap_or_default();
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(end);
        if authority.contains('@') {
            return Err("user information in a web hook URL is not supported".to_string());
        }
        let (host, port) = if let Some(after) = authority.strip_prefix('[') {
            let (v6, tail) = after
                .split_once(']')
                .ok_or_else(|| format!("unterminated IPv6 address in {url:?}"))?;
            v6.parse::<Ipv6Addr>()
                .map_err(|_| format!("bad IPv6 address {v6:?}"))?;
            let port = match tail {
                "" => None,
                t => Some(
                    t.strip_prefix(':')
                        .ok_or_else(|| format!("unexpected {t:?} after the IPv6 address"))?,
                ),
            };
            (v6, port)
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("no host in {url:?}"));
        }
        if !authority.starts_with('[')
            && !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        {
            return Err(format!("bad host {host:?}"));
        }
        let port = match port {
            None => 80,
            Some(p) => {
                let n = if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
                    p.parse::<u16>().ok()
                } else {
                    None
                };
                match n {
                    Some(n) if n != 0 => n,
                    _ => return Err(format!("bad port {p:?}")),
                }
            }
        };
        if let Some(c) = target.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(format!(
                "the URL's path may not contain {c:?} (percent-encode it)"
            ));
        }
        let path = if target.starts_with('/') {
            target.to_string()
        } else {
            format!("/{target}")
        };
        Ok(HttpUrl {
            host: host.to_string(),
            port,
            path,
        })
    }

    /// The `Host` header's value: the host (bracketed when IPv6), with the port unless 80.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// The request method of a web hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Post,
    Put,
}

impl Method {
    /// `POST` or `PUT`, in any case.
    pub fn parse(s: &str) -> Result<Method, String> {
        if s.eq_ignore_ascii_case("POST") {
            Ok(Method::Post)
        } else if s.eq_ignore_ascii_case("PUT") {
            Ok(Method::Put)
        } else {
            Err(format!("unsupported method {s:?}: POST or PUT"))
        }
    }

    /// The method as the request line writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

/// Where a web hook sends its requests, and how.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WebTarget {
    pub url: HttpUrl,
    pub method: Method,
    /// Sent after the default headers, in this order; a `Content-Type` or `Host` here
    /// replaces the default one.
    pub headers: Vec<(String, String)>,
}

impl WebTarget {
    /// The target of EMQ X's `web_hook` resource config: `{"url": "...", "headers":
    /// {"name": "value"}, "method": "POST" | "PUT"}`. `url` is required; `headers` defaults
    /// to none, `method` to POST; other keys are ignored.
    pub fn from_config(config: &Value) -> Result<WebTarget, String> {
        let map = config
            .as_object()
            .ok_or("the web hook config must be a JSON object")?;
        let url = match map.get("url") {
            Some(Value::String(u)) => HttpUrl::parse(u)?,
            Some(_) => return Err("url must be a string".to_string()),
            None => return Err("missing url".to_string()),
        };
        let method = match map.get("method") {
            None | Some(Value::Null) => Method::Post,
            Some(Value::String(m)) => Method::parse(m)?,
            Some(_) => return Err("method must be a string".to_string()),
        };
        let mut headers = Vec::new();
        match map.get("headers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(h)) => {
                for (name, value) in h {
                    let value = value
                        .as_str()
                        .ok_or_else(|| format!("header {name:?} must have a string value"))?;
                    check_header(name, value)?;
                    headers.push((name.clone(), value.to_string()));
                }
            }
            Some(_) => return Err("headers must be an object of strings".to_string()),
        }
        Ok(WebTarget {
            url,
            method,
            headers,
        })
    }
}

/// Whether a configured header can be sent as it is.
fn check_header(name: &str, value: &str) -> Result<(), String> {
    if name.contains(['\r', '\n']) || value.contains(['\r', '\n']) {
        return Err(format!("header {name:?}: CR and LF are not allowed"));
    }
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(format!("bad header name {name:?}"));
    }
    if value.bytes().any(|b| b == 0 || b == 0x7f) {
        return Err(format!(
            "header {name:?}: control characters are not allowed"
        ));
    }
    if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding")
    {
        return Err(format!("header {name:?} is set by the client itself"));
    }
    Ok(())
}

/// A byte of an HTTP token (RFC 9110 `tchar`).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Appends the whole request that sends `body` to `target` to `out`: request line, `Host`,
/// `Content-Type: application/json` (unless configured), `Content-Length`, the configured
/// headers, the blank line and the body. Keep-alive is HTTP/1.1's default, so no
/// `Connection` header. A configured header that [`WebTarget::from_config`] would refuse
/// (possible when the struct is built by hand) is left out.
pub fn request(target: &WebTarget, body: &[u8], out: &mut Vec<u8>) {
    let sendable: Vec<&(String, String)> = target
        .headers
        .iter()
        .filter(|(n, v)| check_header(n, v).is_ok())
        .collect();
    let configured = |name: &str| sendable.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut line = |parts: &[&str]| {
        for p in parts {
            out.extend_from_slice(p.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    };
    line(&[target.method.as_str(), " ", &target.url.path, " HTTP/1.1"]);
    if !configured("host") {
        line(&["Host: ", &target.url.host_header()]);
    }
    if !configured("content-type") {
        line(&["Content-Type: application/json"]);
    }
    line(&["Content-Length: ", &body.len().to_string()]);
    for (name, value) in &sendable {
        line(&[name, ": ", value]);
    }
    line(&[]);
    out.extend_from_slice(body);
}

/// What [`ResponseReader::feed`] or [`ResponseReader::eof`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Every byte given so far belongs to the response, which is not over yet.
    NeedMore,
    /// The response is over: its final status, whether the connection may carry the next
    /// request, and how many bytes of the last `feed`'s buffer belonged to it (any after
    /// those are the start of something else; 0 from `eof`).
    Done {
        status: u16,
        keep_alive: bool,
        consumed: usize,
    },
}

/// Where the reader is in the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In the status line or headers (kept in `head`).
    Head,
    /// Skipping a body of `left` more bytes.
    Length {
        status: u16,
        keep_alive: bool,
        left: u64,
    },
    /// Skipping a chunked body.
    Chunked {
        status: u16,
        keep_alive: bool,
        at: Chunk,
    },
    /// Skipping a body that ends when the server closes the connection.
    UntilClose { status: u16 },
}

/// Where a chunked body's parser is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// In the hexadecimal size, `digits` read so far.
    Size {
        size: u64,
        digits: u32,
    },
    /// In a chunk extension, skipped up to the end of the line.
    Extension {
        size: u64,
    },
    /// After the size line's CR.
    SizeLf {
        size: u64,
    },
    /// Skipping `left` bytes of chunk data.
    Data {
        left: u64,
    },
    /// After the data: expecting its CR LF.
    DataCr,
    DataLf,
    /// After the last chunk: at the start of a trailer line (or of the final blank line).
    TrailerStart,
    /// Inside a trailer field, skipped up to the end of the line.
    Trailer,
    /// After the final blank line's CR.
    EndLf,
}

/// How a complete response head says its body is delimited.
enum Framing {
    /// A 1xx response: no body, the real one follows.
    Interim,
    Length(u64),
    Chunked,
    UntilClose,
}

/// An incremental HTTP/1.1 response parser for one connection: feed it the bytes as they
/// come; it keeps at most [`MAX_HEAD`] bytes of a head and none of a body, so the caller may
/// discard whatever it fed. After `Done` it is ready for the next response.
#[derive(Debug)]
pub struct ResponseReader {
    state: State,
    head: Vec<u8>,
}

impl Default for ResponseReader {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseReader {
    pub fn new() -> ResponseReader {
        ResponseReader {
            state: State::Head,
            head: Vec::new(),
        }
    }

    /// Whether the reader is between responses (nothing of a response seen yet).
    pub fn is_idle(&self) -> bool {
        self.state == State::Head && self.head.is_empty()
    }

    /// Takes the next bytes from the connection. An error means the connection can carry
    /// nothing more.
    pub fn feed(&mut self, buf: &[u8]) -> Result<Progress, String> {
        let mut pos = 0;
        loop {
            match self.state {
                State::Head => {
                    if pos == buf.len() {
                        return Ok(Progress::NeedMore);
                    }
                    let before = self.head.len();
                    let take = (MAX_HEAD - before).min(buf.len() - pos);
                    if take == 0 {
                        return Err(too_large());
                    }
                    self.head.extend_from_slice(&buf[pos..pos + take]);
                    let Some((used, status, keep_alive, framing)) = parse_head(&self.head)? else {
                        if self.head.len() >= MAX_HEAD {
                            return Err(too_large());
                        }
                        return Ok(Progress::NeedMore);
                    };
                    // A head that ended in bytes an earlier call gave would have been
                    // complete then; refuse rather than trust it.
                    pos += used
                        .checked_sub(before)
                        .ok_or("bad response: inconsistent head")?;
                    self.head.clear();
                    self.state = match framing {
                        Framing::Interim => State::Head,
                        Framing::Length(0) => return Ok(self.done(status, keep_alive, pos)),
                        Framing::Length(left) => State::Length {
                            status,
                            keep_alive,
                            left,
                        },
                        Framing::Chunked => State::Chunked {
                            status,
                            keep_alive,
                            at: Chunk::Size { size: 0, digits: 0 },
                        },
                        Framing::UntilClose => State::UntilClose { status },
                    };
                }
                State::Length {
                    status,
                    keep_alive,
                    left,
                } => {
                    let skip = left.min((buf.len() - pos) as u64);
                    pos += skip as usize;
                    if skip == left {
                        return Ok(self.done(status, keep_alive, pos));
                    }
                    self.state = State::Length {
                        status,
                        keep_alive,
                        left: left - skip,
                    };
                    return Ok(Progress::NeedMore);
                }
                State::Chunked {
                    status,
                    keep_alive,
                    at,
                } => {
                    let (at, p) = skip_chunked(at, buf, pos)?;
                    pos = p;
                    match at {
                        None => return Ok(self.done(status, keep_alive, pos)),
                        Some(at) => {
                            self.state = State::Chunked {
                                status,
                                keep_alive,
                                at,
                            };
                            return Ok(Progress::NeedMore);
                        }
                    }
                }
                State::UntilClose { .. } => return Ok(Progress::NeedMore),
            }
        }
    }

    /// The server closed the connection: ends a body delimited by the close; anything
    /// else unfinished is an error.
    pub fn eof(&mut self) -> Result<Progress, String> {
        match self.state {
            State::UntilClose { status } => Ok(self.done(status, false, 0)),
            State::Head if self.head.is_empty() => {
                Err("the server closed the connection before responding".to_string())
            }
            State::Head => {
                Err("the server closed the connection inside a response head".to_string())
            }
            State::Length { .. } | State::Chunked { .. } => {
                Err("the server closed the connection inside a response body".to_string())
            }
        }
    }

    /// Ends the response and makes the reader ready for the next.
    fn done(&mut self, status: u16, keep_alive: bool, consumed: usize) -> Progress {
        self.state = State::Head;
        self.head.clear();
        Progress::Done {
            status,
            keep_alive,
            consumed,
        }
    }
}

fn too_large() -> String {
    format!("response head larger than {MAX_HEAD} bytes")
}

/// A complete head at the start of `buf`: its length, status, whether the connection stays
/// open after it, and how its body is delimited. `None` while incomplete.
#[allow(clippy::type_complexity)]
fn parse_head(buf: &[u8]) -> Result<Option<(usize, u16, bool, Framing)>, String> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut fields);
    let used = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("bad response: {e}")),
    };
    let status = resp.code.ok_or("bad response: no status")?;
    let http11 = resp.version.ok_or("bad response: no version")? >= 1;
    let (mut close, mut keep) = (false, false);
    let mut chunked = None;
    let mut length: Option<u64> = None;
    for h in resp.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or_default();
        if h.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                close |= token.eq_ignore_ascii_case("close");
                keep |= token.eq_ignore_ascii_case("keep-alive");
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = value.rsplit(',').next().unwrap_or_default().trim();
            chunked = Some(last.eq_ignore_ascii_case("chunked"));
        } else if h.name.eq_ignore_ascii_case("content-length") {
            for part in value.split(',').map(str::trim) {
                let n = if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
                    part.parse::<u64>().ok()
                } else {
                    None
                };
                let n = n.ok_or_else(|| format!("bad response: Content-Length {value:?}"))?;
                if length.is_some_and(|l| l != n) {
                    return Err("bad response: conflicting Content-Length".to_string());
                }
                length = Some(n);
            }
        }
    }
    let mut keep_alive = !close && (http11 || keep);
    let framing = match status {
        101 => return Err("the server switched protocols".to_string()),
        100..=199 => Framing::Interim,
        204 | 304 => Framing::Length(0),
        _ => match (chunked, length) {
            (Some(true), length) => {
                // Both: the chunked framing wins, but the connection is suspect.
                keep_alive &= length.is_none();
                Framing::Chunked
            }
            (Some(false), _) | (None, None) => {
                keep_alive = false;
                Framing::UntilClose
            }
            (None, Some(n)) => Framing::Length(n),
        },
    };
    Ok(Some((used, status, keep_alive, framing)))
}

/// Skips chunked-body bytes from `buf[pos..]`: where the parser is then (`None` at the end
/// of the body) and the position after the last byte taken.
fn skip_chunked(
    mut at: Chunk,
    buf: &[u8],
    mut pos: usize,
) -> Result<(Option<Chunk>, usize), String> {
    let bad = |what: &str| Err(format!("bad chunked body: {what}"));
    while pos < buf.len() {
        if let Chunk::Data { left } = at {
            let skip = left.min((buf.len() - pos) as u64);
            pos += skip as usize;
            at = if skip == left {
                Chunk::DataCr
            } else {
                Chunk::Data { left: left - skip }
            };
            continue;
        }
        let b = buf[pos];
        pos += 1;
        let after_size = |size: u64| {
            if size == 0 {
                Chunk::TrailerStart
            } else {
                Chunk::Data { left: size }
            }
        };
        at = match at {
            Chunk::Size { size, digits } => match (b as char).to_digit(16) {
                Some(d) if digits < 15 => Chunk::Size {
                    size: size * 16 + u64::from(d),
                    digits: digits + 1,
                },
                Some(_) => return bad("chunk size too large"),
                None if digits == 0 => return bad("no chunk size"),
                None => match b {
                    b';' | b' ' | b'\t' => Chunk::Extension { size },
                    b'\r' => Chunk::SizeLf { size },
                    b'\n' => after_size(size),
                    _ => return bad("bad chunk size"),
                },
            },
            Chunk::Extension { size } => match b {
                b'\r' => Chunk::SizeLf { size },
                b'\n' => after_size(size),
                _ => Chunk::Extension { size },
            },
            Chunk::SizeLf { size } => match b {
                b'\n' => after_size(size),
                _ => return bad("CR without LF after a chunk size"),
            },
            Chunk::DataCr => match b {
                b'\r' => Chunk::DataLf,
                b'\n' => Chunk::Size { size: 0, digits: 0 },
                _ => return bad("no CRLF after chunk data"),
            },
            Chunk::DataLf => match b {
                b'\n' => Chunk::Size { size: 0, digits: 0 },
                _ => return bad("no CRLF after chunk data"),
            },
            Chunk::TrailerStart => match b {
                b'\r' => Chunk::EndLf,
                b'\n' => return Ok((None, pos)),
                _ => Chunk::Trailer,
            },
            Chunk::Trailer => match b {
                b'\n' => Chunk::TrailerStart,
                _ => Chunk::Trailer,
            },
            Chunk::EndLf => match b {
                b'\n' => return Ok((None, pos)),
                _ => return bad("CR without LF at the end"),
            },
            Chunk::Data { .. } => at,
        };
    }
    // A body that ended exactly with the data: its CRLF may still be ahead.
    Ok((Some(at), pos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn url(s: &str) -> HttpUrl {
        HttpUrl::parse(s).expect("a valid URL")
    }

    #[test]
    fn urls_are_split_into_host_port_and_target() {
        assert_eq!(
            url("http://127.0.0.1:8080/hook?a=1&b=2"),
            HttpUrl {
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/hook?a=1&b=2".into()
            }
        );
        let u = url("http://example.com");
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("example.com", 80, "/")
        );
        assert_eq!(url("HTTP://Example.com/").path, "/");
        assert_eq!(url("http://h?x=1").path, "/?x=1");
        assert_eq!(url("http://h/p#frag").path, "/p");
        assert_eq!(url(" http://h:65535/a/b ").port, 65535);
        let v6 = url("http://[::1]:9000/x");
        assert_eq!(
            (v6.host.as_str(), v6.port, v6.path.as_str()),
            ("::1", 9000, "/x")
        );
        assert_eq!(url("http://[fe80::1]").port, 80);
        assert_eq!(url("http://my_host-1.local:81").host, "my_host-1.local");
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason() {
        assert_eq!(
            HttpUrl::parse("https://example.com/").unwrap_err(),
            "https web hooks are not supported yet"
        );
        for bad in [
            "ftp://h/",
            "h:80/path",
            "",
            "http://",
            "http:///path",
            "http://:80/",
            "http://h:/",
            "http://h:0/",
            "http://h:65536/",
            "http://h:8a/",
            "http://h:-1/",
            "http://user:pw@h/",
            "http://u@h/",
            "http://[::1/",
            "http://[nope]/",
            "http://[::1]x/",
            "http://::1/",
            "http://h/a b",
            "http://h/a\r\nX: y",
            "http://h/é",
            "http://ho st/",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn host_header_has_the_port_unless_80_and_brackets_for_v6() {
        assert_eq!(url("http://h/").host_header(), "h");
        assert_eq!(url("http://h:8080/").host_header(), "h:8080");
        assert_eq!(url("http://[::1]:81/").host_header(), "[::1]:81");
        assert_eq!(url("http://[::1]/").host_header(), "[::1]");
    }

    #[test]
    fn methods_are_post_or_put_in_any_case() {
        assert_eq!(Method::parse("POST"), Ok(Method::Post));
        assert_eq!(Method::parse("post"), Ok(Method::Post));
        assert_eq!(Method::parse("Put"), Ok(Method::Put));
        assert!(Method::parse("GET").is_err());
        assert!(Method::parse("").is_err());
        assert_eq!(Method::Put.as_str(), "PUT");
    }

    #[test]
    fn targets_come_from_emqx_resource_configs() {
        let t = WebTarget::from_config(&json!({
            "url": "http://10.0.0.1:9000/in",
            "headers": {"Authorization": "Bearer x", "X-A": "b"},
            "method": "put",
            "pool_size": 8
        }))
        .expect("a valid config");
        assert_eq!(t.url.port, 9000);
        assert_eq!(t.method, Method::Put);
        assert_eq!(
            t.headers,
            vec![
                ("Authorization".to_string(), "Bearer x".to_string()),
                ("X-A".to_string(), "b".to_string())
            ]
        );
        let d = WebTarget::from_config(&json!({"url": "http://h/"})).expect("defaults");
        assert_eq!((d.method, d.headers.len()), (Method::Post, 0));
        let n =
            WebTarget::from_config(&json!({"url": "http://h/", "headers": null, "method": null}));
        assert_eq!(n.map(|t| t.method), Ok(Method::Post));
    }

    #[test]
    fn bad_configs_are_refused() {
        for bad in [
            json!("http://h/"),
            json!({}),
            json!({"url": 5}),
            json!({"url": "https://h/"}),
            json!({"url": "http://h/", "method": "GET"}),
            json!({"url": "http://h/", "method": 1}),
            json!({"url": "http://h/", "headers": ["a"]}),
            json!({"url": "http://h/", "headers": {"a": 1}}),
            json!({"url": "http://h/", "headers": {"a": "b\r\nX-Evil: 1"}}),
            json!({"url": "http://h/", "headers": {"a": "b\nc"}}),
            json!({"url": "http://h/", "headers": {"a\r": "b"}}),
            json!({"url": "http://h/", "headers": {"a\nb": "b"}}),
            json!({"url": "http://h/", "headers": {"": "b"}}),
            json!({"url": "http://h/", "headers": {"a b": "c"}}),
            json!({"url": "http://h/", "headers": {"a:": "c"}}),
            json!({"url": "http://h/", "headers": {"Content-Length": "3"}}),
            json!({"url": "http://h/", "headers": {"transfer-encoding": "chunked"}}),
        ] {
            assert!(WebTarget::from_config(&bad).is_err(), "{bad} accepted");
        }
        let e = WebTarget::from_config(&json!({"url": "http://h/", "headers": {"a": "b\r\n"}}));
        assert!(e.unwrap_err().contains("CR and LF"));
    }

    fn built(target: &WebTarget, body: &[u8]) -> String {
        let mut out = b"previous".to_vec();
        request(target, body, &mut out);
        assert!(out.starts_with(b"previous"), "appends");
        String::from_utf8(out.split_off(8)).expect("text")
    }

    #[test]
    fn requests_carry_host_type_length_headers_and_body() {
        let t = WebTarget::from_config(&json!({
            "url": "http://127.0.0.1/a?b=c",
            "headers": {"X-Token": "t"}
        }))
        .expect("config");
        assert_eq!(
            built(&t, br#"{"x":1}"#),
            "POST /a?b=c HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: 7\r\nX-Token: t\r\n\r\n{\"x\":1}"
        );
        let t = WebTarget::from_config(&json!({
            "url": "http://[::1]:8080",
            "method": "PUT",
            "headers": {"content-type": "text/plain; charset=utf-8"}
        }))
        .expect("config");
        assert_eq!(
            built(&t, b""),
            "PUT / HTTP/1.1\r\nHost: [::1]:8080\r\nContent-Length: 0\r\n\
             content-type: text/plain; charset=utf-8\r\n\r\n"
        );
        let t = WebTarget::from_config(&json!({"url": "http://h:81/", "headers": {"Host": "v"}}))
            .expect("config");
        assert_eq!(
            built(&t, b"1"),
            "POST / HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 1\r\n\
             Host: v\r\n\r\n1"
        );
    }

    #[test]
    fn hand_built_targets_cannot_smuggle_headers() {
        let mut t = WebTarget::from_config(&json!({"url": "http://h/"})).expect("config");
        t.headers = vec![
            ("X-Evil".into(), "a\r\nContent-Length: 0".into()),
            ("Content-Length".into(), "99".into()),
            ("X-Ok".into(), "1".into()),
        ];
        let r = built(&t, b"ab");
        assert!(!r.contains("Evil") && !r.contains("99"), "{r}");
        assert!(r.contains("Content-Length: 2\r\nX-Ok: 1\r\n\r\nab"), "{r}");
    }

    fn done(status: u16, keep_alive: bool, consumed: usize) -> Progress {
        Progress::Done {
            status,
            keep_alive,
            consumed,
        }
    }

    /// Feeds `bytes` in one piece.
    fn whole(bytes: &[u8]) -> Result<Progress, String> {
        ResponseReader::new().feed(bytes)
    }

    #[test]
    fn content_length_bodies() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(whole(r), Ok(done(200, true, r.len())));
        let r = b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(whole(r), Ok(done(201, true, r.len())));
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc";
        assert_eq!(whole(r), Ok(done(200, true, r.len())));
        assert!(
            whole(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n").is_err()
        );
        assert!(whole(b"HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n").is_err());
        assert!(
            whole(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n").is_err()
        );
        // No body for 204 and 304, whatever the headers say.
        let r = b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n";
        assert_eq!(whole(r), Ok(done(204, true, r.len())));
    }

    #[test]
    fn pipelined_bytes_after_a_response_are_not_consumed() {
        let first = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec();
        let second = b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n";
        let mut both = first.clone();
        both.extend_from_slice(second);
        let mut r = ResponseReader::new();
        assert_eq!(r.feed(&both), Ok(done(200, true, first.len())));
        assert!(r.is_idle());
        assert_eq!(
            r.feed(&both[first.len()..]),
            Ok(done(500, true, second.len()))
        );
    }

    #[test]
    fn chunked_bodies_with_extensions_and_trailers_are_skipped() {
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                  5\r\nhello\r\n1a;name=\"v\"\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n";
        assert_eq!(whole(r), Ok(done(200, true, r.len())));
        let r = b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
                  3\r\nabc\r\n0\r\nX-Sum: 1\r\nX-Other: 2\r\n\r\n";
        assert_eq!(whole(r), Ok(done(202, true, r.len())));
        // Bare LFs are tolerated.
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nab\n0\n\n";
        assert_eq!(whole(r), Ok(done(200, true, r.len())));
        // Chunked with a Content-Length too: chunked wins, the connection is not reused.
        let r =
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert_eq!(whole(r), Ok(done(200, false, r.len())));
        for bad in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\rx",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1234567890abcdef0\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\rx",
        ] {
            assert!(whole(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_body_until_close_ends_at_eof() {
        let mut r = ResponseReader::new();
        assert_eq!(
            r.feed(b"HTTP/1.1 200 OK\r\n\r\nsome"),
            Ok(Progress::NeedMore)
        );
        assert_eq!(r.feed(b" more"), Ok(Progress::NeedMore));
        assert_eq!(r.eof(), Ok(done(200, false, 0)));
        // A transfer coding other than chunked last also runs to the close.
        let mut r = ResponseReader::new();
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabcdef";
        assert_eq!(r.feed(head), Ok(Progress::NeedMore));
        assert_eq!(r.eof(), Ok(done(200, false, 0)));
    }

    #[test]
    fn eof_inside_a_response_is_an_error() {
        assert!(ResponseReader::new().eof().is_err());
        for partial in [
            &b"HTTP/1.1 200 O"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        ] {
            let mut r = ResponseReader::new();
            assert_eq!(r.feed(partial), Ok(Progress::NeedMore));
            assert!(r.eof().is_err(), "{:?}", String::from_utf8_lossy(partial));
        }
    }

    #[test]
    fn interim_responses_are_skipped() {
        let r = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n\
                  HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(whole(r), Ok(done(200, true, r.len())));
        assert!(whole(b"HTTP/1.1 101 Switching Protocols\r\n\r\n").is_err());
    }

    #[test]
    fn connection_close_and_http10_end_keep_alive() {
        let r = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(whole(r), Ok(done(200, false, r.len())));
        let r = b"HTTP/1.1 200 OK\r\nConnection: Upgrade, Close\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(whole(r), Ok(done(200, false, r.len())));
        let r = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(whole(r), Ok(done(200, false, r.len())));
        let r = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(whole(r), Ok(done(200, true, r.len())));
        let r = b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(whole(r), Ok(done(200, true, r.len())));
    }

    #[test]
    fn heads_are_bounded() {
        let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
        while big.len() <= MAX_HEAD {
            big.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert!(whole(&big).is_err());
        // Fed in small pieces, it fails as soon as the bound is passed and keeps no more.
        let mut r = ResponseReader::new();
        let mut failed = false;
        for piece in big.chunks(100) {
            match r.feed(piece) {
                Ok(Progress::NeedMore) => assert!(r.head.len() <= MAX_HEAD),
                Err(_) => {
                    failed = true;
                    break;
                }
                Ok(p) => panic!("{p:?}"),
            }
        }
        assert!(failed);
        // Too many header fields, and garbage, are errors too.
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert!(whole(&many).is_err());
        assert!(whole(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(whole(b"HTTP/1.1 abc OK\r\n\r\n").is_err());
    }

    #[test]
    fn large_bodies_are_skipped_without_being_kept() {
        let mut r = ResponseReader::new();
        let body = 10u64 << 20;
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {body}\r\n\r\n");
        assert_eq!(r.feed(head.as_bytes()), Ok(Progress::NeedMore));
        let piece = vec![b'x'; 64 * 1024];
        for _ in 0..(body / piece.len() as u64 - 1) {
            assert_eq!(r.feed(&piece), Ok(Progress::NeedMore));
        }
        let mut last = piece.clone();
        last.extend_from_slice(b"HTTP/1.1");
        assert_eq!(r.feed(&last), Ok(done(200, true, piece.len())));
        assert!(r.head.capacity() <= MAX_HEAD);
        // The same through a chunked body with one huge chunk.
        let mut r = ResponseReader::new();
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nA00000\r\n";
        assert_eq!(r.feed(head.as_bytes()), Ok(Progress::NeedMore));
        for _ in 0..(0xA00000 / piece.len()) {
            assert_eq!(r.feed(&piece), Ok(Progress::NeedMore));
        }
        assert_eq!(r.feed(b"\r\n0\r\n\r\n"), Ok(done(200, true, 7)));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_in_any_pieces_never_panic_nor_pile_up(
            prefix in proptest::sample::select(vec![
                &b""[..],
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n",
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 204 No\r\n\r\n",
            ]),
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            piece in 1usize..64,
        ) {
            let mut bytes = prefix.to_vec();
            bytes.extend_from_slice(&data);
            let mut r = ResponseReader::new();
            for p in bytes.chunks(piece) {
                match r.feed(p) {
                    Ok(Progress::Done { consumed, .. }) => proptest::prop_assert!(consumed <= p.len()),
                    Ok(Progress::NeedMore) => {}
                    Err(_) => break,
                }
                proptest::prop_assert!(r.head.len() <= MAX_HEAD);
            }
            let _ = r.eof();
        }

        #[test]
        fn any_url_parses_or_is_refused_without_panic(s in "\\PC{0,40}", tail in "[a-z0-9:/\\[\\]@?#.%-]{0,30}") {
            let _ = HttpUrl::parse(&s);
            if let Ok(u) = HttpUrl::parse(&format!("http://{tail}")) {
                proptest::prop_assert!(u.path.starts_with('/'));
                proptest::prop_assert!(!u.host.is_empty());
                proptest::prop_assert!(u.port != 0);
            }
        }
    }

    /// Feeds `bytes` split in two at every position, then byte by byte: the result is the
    /// same as in one piece.
    fn check_every_split(bytes: &[u8], expect: Progress) {
        let Progress::Done {
            status, keep_alive, ..
        } = expect
        else {
            panic!("expect a Done");
        };
        assert_eq!(whole(bytes), Ok(expect));
        for cut in 0..=bytes.len() {
            let mut r = ResponseReader::new();
            let first = r.feed(&bytes[..cut]);
            if cut == bytes.len() {
                assert_eq!(first, Ok(expect), "whole");
                continue;
            }
            assert_eq!(
                first,
                Ok(Progress::NeedMore),
                "first part of a split at {cut}"
            );
            assert_eq!(
                r.feed(&bytes[cut..]),
                Ok(done(status, keep_alive, bytes.len() - cut)),
                "split at {cut}"
            );
        }
        let mut r = ResponseReader::new();
        for (i, b) in bytes.iter().enumerate() {
            let p = r.feed(std::slice::from_ref(b));
            if i + 1 < bytes.len() {
                assert_eq!(p, Ok(Progress::NeedMore), "byte {i}");
            } else {
                assert_eq!(p, Ok(done(status, keep_alive, 1)));
            }
        }
    }

    #[test]
    fn every_split_of_a_response_parses_the_same() {
        let chunked = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nServer: t\r\n\
                        Transfer-Encoding: chunked\r\n\r\n4;ext=1\r\nabcd\r\n\
                        10\r\n0123456789abcdef\r\n0\r\nX-Trailer: yes\r\n\r\n";
        check_every_split(chunked, done(200, true, chunked.len()));
        let length = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\
                       Content-Length: 11\r\n\r\nhello world";
        check_every_split(length, done(503, false, length.len()));
        // And a close-delimited one, ended by eof at every split.
        let close = b"HTTP/1.0 200 OK\r\n\r\nbody";
        for cut in 0..=close.len() {
            let mut r = ResponseReader::new();
            assert_eq!(r.feed(&close[..cut]), Ok(Progress::NeedMore));
            assert_eq!(r.feed(&close[cut..]), Ok(Progress::NeedMore));
            assert_eq!(r.eof(), Ok(done(200, false, 0)));
        }
    }
}
