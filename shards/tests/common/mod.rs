//! Helpers shared by the socket reactor's integration tests.

use shardmq_shards::sockio::Socket;

/// Reads exactly `buf.len()` bytes (panics on EOF first).
pub async fn read_exact(s: &mut Socket, buf: &mut [u8]) {
    let mut got = 0;
    while got < buf.len() {
        let n = s.read(&mut buf[got..]).await.unwrap();
        assert!(n > 0, "EOF after {got} bytes");
        got += n;
    }
}
