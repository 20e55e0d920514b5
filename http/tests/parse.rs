//! Parser tests: framing, incremental input, pipelining, every limit, bad requests.

use shardmq_http::parse::{parse_query, percent_decode};
use shardmq_http::{parse_request, HttpError, Limits, Method, Version};

fn limits() -> Limits {
    Limits::default()
}

fn parse_all(input: &[u8]) -> shardmq_http::Request {
    let (req, used) = parse_request(input, &limits()).unwrap().unwrap();
    assert_eq!(used, input.len());
    req
}

#[test]
fn simple_get() {
    let req = parse_all(b"GET /api/v3/brokers?_page=2&_limit=10 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(req.method, Method::Get);
    assert_eq!(req.version, Version::Http11);
    assert_eq!(req.path, "/api/v3/brokers");
    assert_eq!(req.query, "_page=2&_limit=10");
    assert_eq!(req.query_param("_page").as_deref(), Some("2"));
    assert!(req.keep_alive);
    assert!(req.body.is_empty());
    assert_eq!(req.header("HOST"), Some(&b"x"[..]));
}

#[test]
fn post_with_body() {
    let input = b"POST /api/v3/mqtt/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    let req = parse_all(input);
    assert_eq!(req.method, Method::Post);
    assert_eq!(req.body, b"hello");
}

#[test]
fn byte_at_a_time() {
    let input = b"PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc";
    for end in 0..input.len() {
        assert_eq!(
            parse_request(&input[..end], &limits()),
            Ok(None),
            "prefix {end}"
        );
    }
    let req = parse_all(input);
    assert_eq!(req.body, b"abc");
    assert!(!req.keep_alive);
}

#[test]
fn pipelined_requests() {
    let mut input = Vec::new();
    input.extend_from_slice(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n");
    input.extend_from_slice(b"POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi");
    input.extend_from_slice(b"GET /three HTTP/1.1\r\nHost: x\r\n");
    let (first, n1) = parse_request(&input, &limits()).unwrap().unwrap();
    assert_eq!(first.path, "/one");
    let (second, n2) = parse_request(&input[n1..], &limits()).unwrap().unwrap();
    assert_eq!(second.path, "/two");
    assert_eq!(second.body, b"hi");
    assert_eq!(parse_request(&input[n1 + n2..], &limits()), Ok(None));
}

#[test]
fn keep_alive_rules() {
    let ka = |s: &[u8]| parse_all(s).keep_alive;
    assert!(ka(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert!(!ka(
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    ));
    assert!(!ka(
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, CLOSE\r\n\r\n"
    ));
    assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
    assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    assert_eq!(
        parse_all(b"GET / HTTP/1.0\r\n\r\n").version,
        Version::Http10
    );
}

#[test]
fn header_bytes_limit() {
    let lim = Limits {
        max_header_bytes: 64,
        ..Limits::default()
    };
    let mut input = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ".to_vec();
    input.extend(std::iter::repeat_n(b'a', 100));
    // Refused before the head is complete.
    assert_eq!(parse_request(&input, &lim), Err(HttpError::HeadersTooLarge));
    input.extend_from_slice(b"\r\n\r\n");
    assert_eq!(parse_request(&input, &lim), Err(HttpError::HeadersTooLarge));
    assert_eq!(HttpError::HeadersTooLarge.status(), 431);
}

#[test]
fn header_count_limit() {
    let lim = Limits {
        max_headers: 3,
        ..Limits::default()
    };
    let ok = b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n";
    assert!(parse_request(ok, &lim).unwrap().is_some());
    let bad = b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert_eq!(parse_request(bad, &lim), Err(HttpError::HeadersTooLarge));
}

#[test]
fn uri_limit_before_line_complete() {
    let lim = Limits {
        max_uri_bytes: 32,
        ..Limits::default()
    };
    let mut input = b"GET /".to_vec();
    input.extend(std::iter::repeat_n(b'a', 40));
    assert_eq!(parse_request(&input, &lim), Err(HttpError::UriTooLong));
    assert_eq!(HttpError::UriTooLong.status(), 414);
    let ok = b"GET /aaaa HTTP/1.1\r\nHost: x\r\n\r\n";
    assert!(parse_request(ok, &lim).unwrap().is_some());
}

#[test]
fn body_limit_checked_before_buffering() {
    let lim = Limits {
        max_body_bytes: 10,
        ..Limits::default()
    };
    let input = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n";
    assert_eq!(parse_request(input, &lim), Err(HttpError::PayloadTooLarge));
    let huge = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n";
    assert_eq!(parse_request(huge, &lim), Err(HttpError::PayloadTooLarge));
    assert_eq!(HttpError::PayloadTooLarge.status(), 413);
    let exact = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789";
    assert!(parse_request(exact, &lim).unwrap().is_some());
}

#[test]
fn transfer_encoding() {
    // A chunked body is decoded (extensions and trailer fields ignored), and the request is
    // complete only once the last chunk and the empty line are there.
    let chunked = b"POST /api HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\nX-T: y\r\n\r\nGET";
    let (req, used) = parse_request(chunked, &limits()).unwrap().unwrap();
    assert_eq!(req.body, b"{\"a\":1}");
    assert_eq!(
        &chunked[used..],
        b"GET",
        "the next request starts after the trailers"
    );
    for cut in 0..used {
        assert_eq!(
            parse_request(&chunked[..cut], &limits()),
            Ok(None),
            "cut at {cut}"
        );
    }
    // The decoded size is held to the body limit; a bad size line or chunk end is 400.
    let lim = Limits {
        max_body_bytes: 4,
        ..limits()
    };
    let big = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
    assert_eq!(parse_request(big, &lim), Err(HttpError::PayloadTooLarge));
    for bad in [
        &b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"[..],
        &b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY"[..],
    ] {
        assert!(matches!(
            parse_request(bad, &limits()),
            Err(HttpError::BadRequest(_))
        ));
    }
    let gzip = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n";
    assert_eq!(
        parse_request(gzip, &limits()),
        Err(HttpError::NotImplemented)
    );
    let gzip_chunked = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
    assert_eq!(
        parse_request(gzip_chunked, &limits()),
        Err(HttpError::NotImplemented)
    );
    // Both framings: the smuggling lever, refused.
    let both =
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n";
    assert!(matches!(
        parse_request(both, &limits()),
        Err(HttpError::BadRequest(_))
    ));
    let http10 = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert!(matches!(
        parse_request(http10, &limits()),
        Err(HttpError::BadRequest(_))
    ));
}

#[test]
fn bad_requests() {
    let bad = |input: &[u8]| {
        let r = parse_request(input, &limits());
        assert!(
            matches!(r, Err(HttpError::BadRequest(_))),
            "{r:?} for {input:?}"
        );
    };
    bad(b"GET / HTTP/1.1\r\n\r\n"); // no Host
    bad(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n");
    bad(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n");
    bad(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
    bad(b"GET noslash HTTP/1.1\r\nHost: x\r\n\r\n");
    bad(b"G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n");
    bad(b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n");
    assert!(matches!(
        parse_request(b"GET / HTTP/2.0\r\n\r\n", &limits()),
        Err(HttpError::VersionNotSupported | HttpError::BadRequest(_))
    ));
}

#[test]
fn duplicate_equal_content_length_is_fine() {
    let input = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nz";
    assert_eq!(parse_all(input).body, b"z");
}

#[test]
fn absolute_form_target() {
    let req = parse_all(b"GET http://h:8080/api/v3/nodes?x=1 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(req.path, "/api/v3/nodes");
    assert_eq!(req.query, "x=1");
    let req = parse_all(b"GET http://h:8080 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(req.path, "/");
}

#[test]
fn a_multibyte_character_across_the_scheme_length_is_refused_not_a_panic() {
    // Found by the http_request fuzz target: the scheme check sliced the target at byte 7
    // ("http://") or 8 ("https://"), inside a two-byte character here, and panicked before
    // any authentication.
    for input in [
        &b"HEAD $htts:\xc8\x97t://c HTTP/1.0\r\n\r\n"[..],
        b"GET abcdefg\xc8\x97 HTTP/1.1\r\nHost: h\r\n\r\n",
    ] {
        assert_eq!(
            parse_request(input, &limits()),
            Err(HttpError::BadRequest("unsupported request target"))
        );
    }
    // Non-ASCII after a real scheme is fine.
    let req = parse_all(b"GET HTTP://\xc8\x97/a HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(req.path, "/a");
}

#[test]
fn unknown_method_is_kept() {
    let req = parse_all(b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(req.method, Method::Other("BREW".to_string()));
    assert_eq!(req.method.as_str(), "BREW");
}

#[test]
fn percent_decoding() {
    assert_eq!(percent_decode("a%2Fb", false).as_deref(), Some("a/b"));
    assert_eq!(percent_decode("a%2fb", false).as_deref(), Some("a/b"));
    assert_eq!(percent_decode("a+b", false).as_deref(), Some("a+b"));
    assert_eq!(percent_decode("a+b", true).as_deref(), Some("a b"));
    assert_eq!(percent_decode("100%", false).as_deref(), Some("100%"));
    assert_eq!(percent_decode("%zz%4", false).as_deref(), Some("%zz%4"));
    assert_eq!(percent_decode("%C3%A9", false).as_deref(), Some("é"));
    assert_eq!(percent_decode("%FF", false), None);
}

#[test]
fn query_parsing() {
    let pairs = parse_query("_page=2&_limit=10&&who=a+b%2Fc&flag&as=client_id");
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (&**k, &**v)).collect();
    assert_eq!(
        pairs,
        [
            ("_page", "2"),
            ("_limit", "10"),
            ("who", "a b/c"),
            ("flag", ""),
            ("as", "client_id"),
        ]
    );
    assert!(parse_query("").is_empty());
}

#[test]
fn two_host_headers_are_a_bad_request() {
    for input in [
        &b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"[..],
        &b"GET / HTTP/1.1\r\nHost: a\r\nhOsT: a\r\n\r\n"[..],
    ] {
        assert!(
            matches!(
                parse_request(input, &limits()),
                Err(HttpError::BadRequest(_))
            ),
            "{}",
            String::from_utf8_lossy(input)
        );
    }
}
