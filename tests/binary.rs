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
    let mut child = spawn(mqtt, http, data.path(), &[], Stdio::null(), Stdio::piped());
    wait_listening(&mut child, mqtt);
    let mut stream = TcpStream::connect(("127.0.0.1", mqtt)).unwrap();
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
    let (exit, err) = exit_within(&mut child, Duration::from_secs(5), "after SIGTERM");
    let took = since.elapsed();
    assert!(exit.success(), "exit status {exit}: {err}");
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
}

/// The binary on these ports and data directory, with `extra` arguments.
fn spawn(
    mqtt: u16,
    http: u16,
    data: &std::path::Path,
    extra: &[&str],
    stdout: Stdio,
    stderr: Stdio,
) -> std::process::Child {
    Command::new(BIN)
        .args([
            "--mqtt",
            &format!("127.0.0.1:{mqtt}"),
            "--http",
            &format!("127.0.0.1:{http}"),
            "--shards",
            "2",
            "--set",
            &format!("node.data_dir={}", data.display()),
        ])
        .args(extra)
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// Waits (bounded polling) until `child` accepts MQTT connections on `mqtt`.
fn wait_listening(child: &mut std::process::Child, mqtt: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", mqtt)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("shardmq exited early with {status}");
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("shardmq did not listen on {mqtt}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts the binary on these ports and data directory; returns the child once it accepts
/// MQTT connections.
fn start_listening(mqtt: u16, http: u16, data: &std::path::Path) -> std::process::Child {
    let mut child = spawn(mqtt, http, data, &[], Stdio::null(), Stdio::null());
    wait_listening(&mut child, mqtt);
    child
}

/// Waits for `child` to exit, at most `within` (then kills it and fails the test, naming
/// `when`); returns its exit status and what it wrote to its piped stderr.
fn exit_within(
    child: &mut std::process::Child,
    within: Duration,
    when: &str,
) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("shardmq did not exit within {within:?} {when}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        stderr.read_to_string(&mut err).unwrap();
    }
    (status, err)
}

/// Runs a second broker to completion (it must refuse to start, within 10 s); returns its
/// stderr.
fn second_broker_fails(args: &[String]) -> String {
    let mut child = Command::new(BIN)
        .args(args)
        .args(["--shards", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, err) = exit_within(&mut child, Duration::from_secs(10), "(a second broker)");
    assert!(!status.success(), "a second broker started: {err}");
    err
}

#[test]
fn a_second_broker_on_the_same_ports_or_data_dir_refuses_to_start() {
    let (data, other_data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mqtt, http) = (free_port(), free_port());
    let mut first = start_listening(mqtt, http, data.path());
    // Each case shares one thing with the first broker and names it in its error: the MQTT
    // port, the API port, the data directory.
    let cases = [
        (mqtt, free_port(), other_data.path(), mqtt.to_string()),
        (free_port(), http, other_data.path(), http.to_string()),
        (
            free_port(),
            free_port(),
            data.path(),
            "data_dir".to_string(),
        ),
    ];
    for (m, h, dir, named) in cases {
        let err = second_broker_fails(&[
            "--mqtt".into(),
            format!("127.0.0.1:{m}"),
            "--http".into(),
            format!("127.0.0.1:{h}"),
            "--set".into(),
            format!("node.data_dir={}", dir.display()),
        ]);
        assert!(err.contains(&named) && err.contains("in use"), "{err}");
    }
    // The first one still serves: CONNECT → CONNACK 0.
    let mut s = TcpStream::connect(("127.0.0.1", mqtt)).unwrap();
    s.write_all(&[
        0x10, 0x0d, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 1, b'c',
    ])
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack).unwrap();
    assert_eq!(ack, [0x20, 2, 0, 0]);
    let _ = first.kill();
    let _ = first.wait();
}

/// CONNECTs (3.1.1, client id `id`) and SUBSCRIBEs to `topic` at QoS 0 over a fresh
/// connection; returns the SUBACK's code.
fn suback_code(mqtt: u16, id: u8, topic: &str) -> u8 {
    let mut s = TcpStream::connect(("127.0.0.1", mqtt)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&[
        0x10, 0x0d, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 1, id,
    ])
    .unwrap();
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack).unwrap();
    assert_eq!(ack, [0x20, 2, 0, 0]);
    let mut sub = vec![
        0x82,
        (2 + 2 + topic.len() + 1) as u8,
        0,
        1,
        0,
        topic.len() as u8,
    ];
    sub.extend_from_slice(topic.as_bytes());
    sub.push(0);
    s.write_all(&sub).unwrap();
    let mut suback = [0u8; 5];
    s.read_exact(&mut suback).unwrap();
    assert_eq!(&suback[..4], &[0x90, 3, 0, 1]);
    suback[4]
}

#[test]
fn sighup_reloads_the_acl_file_and_a_bad_one_keeps_the_rules_in_force() {
    let data = tempfile::tempdir().unwrap();
    let acl = data.path().join("acl.conf");
    std::fs::write(
        &acl,
        "{deny, all, subscribe, [\"locked/#\"]}.\n{allow, all}.\n",
    )
    .unwrap();
    let (mqtt, http) = (free_port(), free_port());
    let acl_set = format!("acl.file={}", acl.display());
    let extra = ["--set", acl_set.as_str()];
    let mut child = spawn(
        mqtt,
        http,
        data.path(),
        &extra,
        Stdio::piped(),
        Stdio::null(),
    );
    // The log, line by line, to wait on.
    let (tx, log) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let wait_for = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match log.recv_timeout(left) {
                Ok(line) if line.contains(what) => return,
                Ok(_) => continue,
                Err(_) => panic!("no log line with {what:?} within 5 s"),
            }
        }
    };
    wait_for("listening for MQTT");
    let hup = |child: &std::process::Child| {
        let ok = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    assert_eq!(suback_code(mqtt, b'a', "locked/x"), 0x80);
    // A file that does not parse: the rules in force stay.
    std::fs::write(&acl, "{deny, all, subscribe\n").unwrap();
    hup(&child);
    wait_for("ACL not reloaded");
    assert_eq!(suback_code(mqtt, b'b', "locked/x"), 0x80);
    // The rule lifted: once every shard took it, subscribing works.
    std::fs::write(&acl, "{allow, all}.\n").unwrap();
    hup(&child);
    wait_for("ACL reloaded; 2/2 shards");
    assert_eq!(suback_code(mqtt, b'c', "locked/x"), 0);
    assert!(child.try_wait().unwrap().is_none(), "still running");
    let _ = child.kill();
    let _ = child.wait();
}
