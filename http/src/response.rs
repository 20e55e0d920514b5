//! Responses: the EMQ X JSON envelope, error codes and their HTTP statuses, pagination, and
//! the bytes of a response on the wire. Pure, runs on the management thread.
//!
//! Owns: `{"code":0,"data":...}`, `{"code":0,"data":[...],"meta":{page,limit,count}}`,
//! `{"code":N,"message":"..."}` with the statuses of api-notes item 3, [`Paging`] (the
//! `_page`/`_limit` rules of item 4) and [`Response::write_to`]. Must never: answer 5xx for
//! bad input, emit a non-JSON error body, or emit a response without `Content-Length`.

use serde::Serialize;

use crate::parse::{HttpError, Request};

/// The realm sent with every 401.
pub const REALM: &str = "shardmq";

/// Default page size (EMQ X `management.max_row_limit`).
pub const DEFAULT_LIMIT: u64 = 10_000;

/// Application error codes (EMQ X `emqx_mgmt.hrl`) plus the HTTP-mirroring ones of
/// api-notes item 3. The HTTP status is [`ErrorCode::http_status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    Unknown = 102,
    BadCredentials = 103,
    EmptyCredentials = 104,
    UserNotFound = 105,
    CannotDeleteAdmin = 106,
    MissingParameter = 107,
    ParameterType = 108,
    BodyNotJson = 109,
    PluginLoaded = 110,
    PluginNotLoaded = 111,
    ClientNotOnline = 112,
    UserExists = 113,
    OldPasswordWrong = 114,
    BadTopic = 115,
    /// The rule engine's refusals (bad SQL, unknown action or column): `{"code":400,...}`
    /// in an HTTP 200, as EMQ X answers them.
    Invalid = 400,
    /// `{"code":404,...}` in an HTTP 200: the rule engine's lookups (`Not Found`, `SQL Not
    /// Match`), as EMQ X answers them. (Its own discriminant; [`ErrorCode::code`] says 404.)
    Missing = 1404,
    /// `{"code":500,...}` in an HTTP 200 (`Test Creating Resource Failed`).
    Failed = 1500,
    Unauthorized = 401,
    NotFound = 404,
    PayloadTooLarge = 413,
    /// Too many failed logins from the client's address: refused during its back-off.
    TooManyRequests = 429,
    HeadersTooLarge = 431,
}

impl ErrorCode {
    /// The JSON `code`.
    pub fn code(self) -> u16 {
        match self {
            ErrorCode::Missing => 404,
            ErrorCode::Failed => 500,
            other => other as u16,
        }
    }

    /// The HTTP status: 200 for application errors (clients read `code`), 400 for a body
    /// that is not JSON, and the mirrored status for 401/404/413/429/431.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BodyNotJson => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::NotFound => 404,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::HeadersTooLarge => 431,
            _ => 200,
        }
    }
}

/// An application-level error: becomes `{"code":N,"message":"..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }

    /// 404 `Not found`.
    pub fn not_found() -> ApiError {
        ApiError::new(ErrorCode::NotFound, "Not found")
    }
}

/// A response ready to be written. Built by the constructors below; `extra_headers` never
/// contains `Content-Length`, `Content-Type` or `Connection` (written by [`write_to`]).
///
/// [`write_to`]: Response::write_to
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub extra_headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// Close the connection after this response, whatever the request asked.
    pub close: bool,
}

const JSON: &str = "application/json";

/// The envelope, as a struct so the key order on the wire is the document's
/// (`code`, `data`, `meta{page, limit, count}`), not alphabetical.
#[derive(Serialize)]
struct Envelope<'a, T: Serialize + ?Sized> {
    code: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<Meta>,
}

#[derive(Serialize)]
struct Meta {
    page: u64,
    limit: u64,
    count: u64,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: u16,
    message: &'a str,
}

impl Response {
    fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Response {
        match serde_json::to_vec(value) {
            Ok(body) => Response {
                status,
                content_type: JSON,
                extra_headers: Vec::new(),
                body,
                close: false,
            },
            // Only a model type with a non-string map key could fail; report, do not panic.
            Err(e) => Response::error(&ApiError::new(ErrorCode::Unknown, e.to_string())),
        }
    }

    /// `{"code":0}`.
    pub fn ok() -> Response {
        let envelope: Envelope<'_, ()> = Envelope {
            code: 0,
            data: None,
            meta: None,
        };
        Response::json(200, &envelope)
    }

    /// `{"code":0,"data":data}`.
    pub fn data<T: Serialize + ?Sized>(data: &T) -> Response {
        Response::json(
            200,
            &Envelope {
                code: 0,
                data: Some(data),
                meta: None,
            },
        )
    }

    /// `{"code":0,"data":rows,"meta":{"page","limit","count"}}`. `rows` is the page already
    /// cut; `count` is the total number of rows.
    pub fn page<T: Serialize>(rows: &[T], paging: Paging, count: u64) -> Response {
        let meta = Meta {
            page: paging.page,
            limit: paging.limit,
            count,
        };
        Response::json(
            200,
            &Envelope {
                code: 0,
                data: Some(rows),
                meta: Some(meta),
            },
        )
    }

    /// Cuts the page out of all `rows` and answers it with the true count.
    pub fn paginate<T: Serialize>(rows: &[T], paging: Paging) -> Response {
        Response::page(paging.slice(rows), paging, rows.len() as u64)
    }

    /// `{"code":N,"message":"..."}` with the status of [`ErrorCode::http_status`]; a 401
    /// carries `WWW-Authenticate`.
    pub fn error(err: &ApiError) -> Response {
        let body = ErrorBody {
            code: err.code.code(),
            message: &err.message,
        };
        let mut resp = Response::json(err.code.http_status(), &body);
        if err.code == ErrorCode::Unauthorized {
            resp.extra_headers
                .push(("WWW-Authenticate", format!("Basic realm=\"{REALM}\"")));
        }
        resp
    }

    /// 401 with `WWW-Authenticate: Basic realm="shardmq"`.
    pub fn unauthorized() -> Response {
        Response::error(&ApiError::new(ErrorCode::Unauthorized, "Unauthorized"))
    }

    /// 429 `{"code":429,"message":...}` with `Retry-After` (whole seconds, rounded up), for a
    /// client whose address is in back-off after too many failed logins. The connection
    /// closes: a guesser pays a new connection for every refused attempt.
    pub fn too_many_requests(retry_after: std::time::Duration) -> Response {
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        let mut resp = Response::error(&ApiError::new(
            ErrorCode::TooManyRequests,
            format!("too many failed logins from this address, retry in {secs} s"),
        ))
        .with_header("Retry-After", secs.to_string());
        resp.close = true;
        resp
    }

    /// 400 `{"code":400,"message":...}` for a request whose framing is fine but whose target
    /// is not (the connection stays open).
    pub fn bad_request(message: &str) -> Response {
        let body = ErrorBody { code: 400, message };
        Response::json(400, &body)
    }

    /// 404 `{"code":404,"message":"Not found"}`.
    pub fn not_found() -> Response {
        Response::error(&ApiError::not_found())
    }

    /// The answer to a request that could not be parsed: JSON `{"code":status,...}` with
    /// that status, and the connection closes (its framing is lost).
    pub fn http_error(err: HttpError) -> Response {
        let body = ErrorBody {
            code: err.status(),
            message: err.message(),
        };
        let mut resp = Response::json(err.status(), &body);
        resp.close = true;
        resp
    }

    /// 500 `{"code":500,"message":...}`: handling the request failed in a way it never should
    /// (the server logs it and goes on serving).
    pub fn internal_error() -> Response {
        let body = ErrorBody {
            code: 500,
            message: "internal error",
        };
        Response::json(500, &body)
    }

    /// A non-JSON body (`/status` text, `/metrics` Prometheus text).
    pub fn text(content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status: 200,
            content_type,
            extra_headers: Vec::new(),
            body: body.into(),
            close: false,
        }
    }

    /// Adds a header (not one of those written by [`Response::write_to`]).
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.extra_headers.push((name, value.into()));
        self
    }

    /// Appends the response to `out`: status line, `Content-Type`, `Content-Length`, extra
    /// headers, `Connection` (`close` when not `keep_alive`, `keep-alive` for an HTTP/1.0
    /// client that asked for it), blank line, body. A `HEAD` answer omits the body.
    pub fn write_to(&self, out: &mut Vec<u8>, keep_alive: bool, http10: bool, head: bool) {
        use std::io::Write;
        // Writing into a Vec cannot fail.
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.extra_headers {
            let value: String = value.chars().filter(|c| *c != '\r' && *c != '\n').collect();
            let _ = write!(out, "{name}: {value}\r\n");
        }
        if !keep_alive {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if http10 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !head {
            out.extend_from_slice(&self.body);
        }
    }
}

/// The reason phrase for the statuses this server sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// `_page` / `_limit` of a paginated list (api-notes item 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// 1-based page number.
    pub page: u64,
    /// Rows per page.
    pub limit: u64,
}

impl Default for Paging {
    fn default() -> Self {
        Paging {
            page: 1,
            limit: DEFAULT_LIMIT,
        }
    }
}

impl Paging {
    /// Reads `_page` and `_limit` from the query string. Absent → defaults (1 / 10000);
    /// non-numeric or < 1 → code 108 (HTTP 200).
    pub fn from_request(req: &Request) -> Result<Paging, ApiError> {
        Paging::from_pairs(&req.query_pairs())
    }

    /// Same as [`Paging::from_request`], from decoded query pairs (first value wins).
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Paging, ApiError> {
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let parse = |name: &str, value: Option<&str>, default: u64| match value {
            None => Ok(default),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(ApiError::new(
                    ErrorCode::ParameterType,
                    format!("{name} must be an integer >= 1"),
                )),
            },
        };
        Ok(Paging {
            page: parse("_page", get("_page"), 1)?,
            limit: parse("_limit", get("_limit"), DEFAULT_LIMIT)?,
        })
    }

    /// Index of the first row of the page (saturating).
    pub fn offset(&self) -> u64 {
        self.page.saturating_sub(1).saturating_mul(self.limit)
    }

    /// The rows of this page; empty past the end.
    pub fn slice<'a, T>(&self, rows: &'a [T]) -> &'a [T] {
        let len = rows.len() as u64;
        let start = self.offset().min(len) as usize;
        let end = self.offset().saturating_add(self.limit).min(len) as usize;
        &rows[start..end]
    }
}
