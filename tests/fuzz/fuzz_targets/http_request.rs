//! Fuzz target: arbitrary bytes into the HTTP request parser (`shardmq_http::parse_request`)
//! and the connection loop (`shardmq_http::serve_connection`), delivered in pieces that end
//! at fuzzer-chosen points. Checks the invariants of `http/tests/parse_check` (shared with
//! the property test `http/tests/prop_http.rs`): every answer of the parser is sound (the
//! consumed length is within the input, the request keeps the limits and its framing
//! headers, "need more" never past one request's limits), the result does not depend on
//! how the bytes arrived, and the server handles exactly the parsed requests and ends as
//! the parse says.
//!
//! Input layout: byte 0 picks the limits (bits 0-1), the server's read size (bits 2-3) and
//! the number of split points (bits 5-7); then two bytes per split point; the rest is what
//! the peer sends.
//!
//! Run: `cargo +nightly fuzz run http_request --fuzz-dir tests/fuzz`

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../../http/tests/parse_check/mod.rs"]
mod parse_check;

fuzz_target!(|data: &[u8]| {
    let Some((&setup, rest)) = data.split_first() else {
        return;
    };
    let limits = parse_check::limits(setup);
    let read_chunk = [1, 7, 64, 8192][usize::from((setup >> 2) & 3)];
    let n_cuts = usize::from(setup >> 5);
    let Some((cut_bytes, input)) = rest.split_at_checked(2 * n_cuts) else {
        return;
    };
    let cuts: Vec<usize> = cut_bytes
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])))
        .collect();
    parse_check::check(input, &cuts, &limits, read_chunk);
});
