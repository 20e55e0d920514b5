//! The `shardmq` binary: `--help`, configuration errors (key and line named, non-zero exit),
//! and a clean shutdown on SIGTERM.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_shardmq");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn help_mentions_every_flag() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--config", "--mqtt", "--http", "--shards", "--set", "--check", "--help",
    ] {
        assert!(
            text.contains(flag),
            "--help does not mention {flag}:\n{text}"
        );
    }
}

#[test]
fn config_file_with_a_wrong_type_names_the_key_and_line_and_fails() {
    let dir = std::env::temp_dir().join(format!("shardmq-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[mqtt]\nmax_mqueue = 10\nmax_inflight = \"many\"\n").unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("max_inflight"), "key not named: {err}");
    assert!(err.contains("line 3"), "line not named: {err}");
}

#[test]
fn set_with_a_value_of_the_wrong_type_fails() {
    let out = Command::new(BIN)
        .args(["--set", "mqtt.max_inflight=abc", "--check"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("mqtt.max_inflight"), "{err}");
}

#[test]
fn sigterm_shuts_the_broker_down_cleanly() {
    let data = tempfile::tempdir().unwrap();
    let mqtt = free_port();
    let http = free_port();
    let mut child = Command::new(BIN)
        .args([
            "--mqtt",
            &format!("127.0.0.1:{mqtt}"),
            "--http",
            &format!("127.0.0.1:{http}"),
            "--shards",
            "2",
            "--set",
            &format!("node.data_dir={}", data.path().display()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it accepts connections (bounded polling).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", mqtt)) {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => {
                if let Some(status) = child.try_wait().unwrap() {
                    panic!("shardmq exited early with {status}");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                let _ = child.kill();
                panic!("shardmq did not listen on {mqtt}: {e}");
            }
        }
    };
    // It speaks MQTT: CONNECT → CONNACK 0.
    stream
        .write_all(&[
            0x10, 0x0d, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 1, b'b',
        ])
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut ack = [0u8; 4];
    stream.read_exact(&mut ack).unwrap();
    assert_eq!(ack, [0x20, 2, 0, 0]);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let since = Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if since.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            panic!("shardmq did not exit within 5 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = since.elapsed();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(exit.success(), "exit status {exit}: {err}");
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
}
