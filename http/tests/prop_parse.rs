//! Property tests: no input panics the parser or the router; splitting the input anywhere
//! never changes the result (incremental parsing is prefix-consistent).

use proptest::prelude::*;
use shardmq_http::parse::{parse_query, percent_decode};
use shardmq_http::{parse_request, route, Limits, Method};

fn small_limits() -> Limits {
    Limits {
        max_header_bytes: 512,
        max_headers: 8,
        max_uri_bytes: 128,
        max_body_bytes: 256,
    }
}

/// Request-like bytes: a valid-looking head with arbitrary pieces mixed in.
fn requestish() -> impl Strategy<Value = Vec<u8>> {
    let method = prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "X", ""]);
    let path = "[/a-z0-9%+?=&:@._-]{0,40}";
    let version = prop::sample::select(vec!["HTTP/1.1", "HTTP/1.0", "HTTP/2", "http/1.1"]);
    let header = prop::sample::select(vec![
        "Host: x\r\n",
        "Content-Length: 3\r\n",
        "Content-Length: 99999999999999999999\r\n",
        "Transfer-Encoding: chunked\r\n",
        "Connection: close\r\n",
        "Bad header\r\n",
        "\r\n",
    ]);
    (
        method,
        path,
        version,
        prop::collection::vec(header, 0..6),
        prop::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(|(m, p, v, hs, tail)| {
            let mut out = format!("{m} {p} {v}\r\n").into_bytes();
            for h in hs {
                out.extend_from_slice(h.as_bytes());
            }
            out.extend_from_slice(b"\r\n");
            out.extend(tail);
            out
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        let _ = parse_request(&bytes, &Limits::default());
        let _ = parse_request(&bytes, &small_limits());
    }

    #[test]
    fn requestish_bytes_never_panic_and_are_prefix_consistent(bytes in requestish()) {
        let lim = small_limits();
        let full = parse_request(&bytes, &lim);
        if let Ok(Some((req, used))) = &full {
            prop_assert!(*used <= bytes.len());
            let _ = route(&req.method, &req.path);
            let _ = req.query_pairs();
            // Every strict prefix of a complete request is "need more" (or the same error
            // a limit would give earlier, never a different request).
            for cut in 0..*used {
                match parse_request(&bytes[..cut], &lim) {
                    Ok(None) | Err(_) => {}
                    Ok(Some(_)) => prop_assert!(false, "prefix {} parsed", cut),
                }
            }
        }
    }

    #[test]
    fn routing_and_decoding_never_panic(path in "\\PC{0,64}", query in "\\PC{0,64}") {
        for m in [Method::Get, Method::Post, Method::Put, Method::Delete] {
            let _ = route(&m, &path);
        }
        let _ = percent_decode(&path, false);
        let _ = parse_query(&query);
    }
}
