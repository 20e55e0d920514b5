//! One benchmark run: start the workers, connect, start publishing, print progress, drain,
//! stop, and merge what the workers found into a [`Report`].
//!
//! Owns: the phases of a run and their time limits (every phase is bounded by `--timeout`).
//! Runs on the caller's thread; the workers are plain threads, optionally pinned.
//! Must never: touch a connection (only workers do).

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::cli::Opts;
use crate::clock::{self, now_ns};
use crate::plan::{self, Scenario};
use crate::report::{Report, Second};
use crate::stats::{self, percentiles, Hist};
use crate::track::Tally;
use crate::transport::TransportCfg;
use crate::worker::{self, Shared, WorkerCfg};

const SEC: u64 = 1_000_000_000;

fn secs(s: f64) -> u64 {
    (s.max(0.0) * 1e9) as u64
}

/// Runs the benchmark `opts` describes; progress lines go to `progress` (unless `--quiet`).
pub fn run(opts: &Opts, progress: &mut dyn Write) -> Result<(Report, Hist), String> {
    opts.validate()?;
    if matches!(opts.scenario, Scenario::Window | Scenario::Rtt) {
        return Err(
            "the window and rtt scenarios are probes: run them with probe::window, rtt::rtt".into(),
        );
    }
    clock::init();
    let t_begin = now_ns();
    let deadline = t_begin + secs(opts.timeout);
    let addr: SocketAddr = (opts.host.as_str(), opts.port)
        .to_socket_addrs()
        .map_err(|e| format!("resolving {}: {e}", opts.host))?
        .next()
        .ok_or_else(|| format!("no address for {}", opts.host))?;
    let prefix = opts
        .prefix
        .clone()
        .unwrap_or_else(|| format!("bench/{}", std::process::id()));
    let transport = TransportCfg::from_opts(opts)?;
    if opts.tls_resume {
        warm_up(opts, addr, &transport, deadline)?;
    }
    let plan = plan::build(opts.scenario, opts.n(), opts.shared, &prefix);
    let threads = opts.threads.min(plan.clients.len()).max(1);
    let shared = Arc::new(Shared::new(threads));
    let (snap_tx, snap_rx) = mpsc::channel();
    let duration = opts.duration();
    let cfg = WorkerCfg {
        addr,
        version: opts.version(),
        qos: opts.qos(),
        size: opts.size,
        window: opts.window,
        rate: opts.rate(),
        publishers: plan.publishers,
        limit: opts.count.unwrap_or(u64::MAX),
        warmup_ns: secs(opts.warmup),
        duration_ns: duration.map_or(u64::MAX, secs),
        concurrency: opts.concurrency().div_ceil(threads),
        outstanding_limit: if opts.qos == 0 && opts.rate().is_none() {
            opts.qos0_window * u64::from(plan.publishers) * plan.fanout
        } else {
            0
        },
        fanout: plan.fanout,
        client_prefix: format!("shardmq-bench-{}", std::process::id()),
        transport: transport.clone(),
    };
    let mut handles = Vec::new();
    for w in 0..threads {
        let specs: Vec<_> = plan
            .clients
            .iter()
            .filter(|c| c.index % threads == w)
            .cloned()
            .collect();
        let (cfg, shared, tx) = (cfg.clone(), shared.clone(), snap_tx.clone());
        let core = (!opts.pin.is_empty()).then(|| opts.pin[w % opts.pin.len()]);
        let h = std::thread::Builder::new()
            .name(format!("bench-{w}"))
            .spawn(move || {
                if let Some(id) = core {
                    core_affinity::set_for_current(core_affinity::CoreId { id });
                }
                worker::run(w, specs, cfg, shared, tx)
            })
            .map_err(|e| format!("spawning a worker: {e}"))?;
        handles.push(h);
    }
    drop(snap_tx);
    let say = |progress: &mut dyn Write, line: String| {
        if !opts.quiet {
            let _ = writeln!(progress, "{line}");
        }
    };

    // Connect everyone.
    let total = plan.clients.len();
    let t_connect = now_ns();
    let mut last_print = t_connect;
    let mut error = None;
    loop {
        let (ready, failed) = (shared.ready.load(Relaxed), shared.failed.load(Relaxed));
        if failed > 0 {
            error = shared.first_error.lock().map(|e| e.clone()).unwrap_or(None);
            break;
        }
        if ready >= total {
            break;
        }
        let now = now_ns();
        if now > deadline {
            error = Some(format!(
                "only {ready} of {total} clients connected before --timeout"
            ));
            break;
        }
        if now - last_print >= SEC {
            last_print = now;
            say(progress, format!("connecting: {ready}/{total}"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let connect_s = (now_ns() - t_connect) as f64 / 1e9;
    let stop = |shared: &Shared| shared.stop.store(true, Relaxed);
    if let Some(e) = error {
        stop(&shared);
        for h in handles {
            let _ = h.join();
        }
        return Err(e);
    }

    let mut total_hist = stats::new_hist();
    let mut timeline = Vec::new();
    let expected_of = |sent: u64| sent * plan.fanout;
    let sum = |f: &dyn Fn(&worker::Counters) -> u64| shared.counters.iter().map(f).sum::<u64>();
    let mut start = 0;
    if opts.scenario == Scenario::Conn {
        say(
            progress,
            format!(
                "all {total} clients connected in {connect_s:.3}s; holding {}s",
                opts.hold
            ),
        );
        let until = (now_ns() + secs(opts.hold)).min(deadline);
        while now_ns() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
    } else {
        start = now_ns() + 20_000_000;
        shared.start_ns.store(start, Relaxed);
        let send_end = duration.map_or(u64::MAX, |d| start + secs(opts.warmup) + secs(d));
        let mut last = (start, 0u64, 0u64);
        let mut drain_until = None;
        loop {
            std::thread::sleep(Duration::from_millis(20));
            while let Ok(h) = snap_rx.try_recv() {
                stats::merge(&mut total_hist, &h);
            }
            let now = now_ns();
            let (sent, received) = (
                sum(&|c| c.sent.load(Relaxed)),
                sum(&|c| c.received.load(Relaxed)),
            );
            if now >= last.0 + SEC {
                let dt = (now - last.0) as f64 / 1e9;
                let s = Second {
                    t: (now.saturating_sub(start)) / SEC,
                    sent_per_s: ((sent - last.1) as f64 / dt) as u64,
                    received_per_s: ((received - last.2) as f64 / dt) as u64,
                    p99_us: percentiles(&total_hist).p99_us,
                };
                say(
                    progress,
                    format!(
                        "[{:>3}s] sent {:>9}/s  recv {:>9}/s  p99 {:>9.0} us  (total sent {sent}, recv {received})",
                        s.t, s.sent_per_s, s.received_per_s, s.p99_us
                    ),
                );
                timeline.push(s);
                last = (now, sent, received);
            }
            let sending_over = shared.pubs_done.load(Relaxed) >= plan.publishers as usize
                || now >= send_end.saturating_add(SEC);
            if sending_over && drain_until.is_none() {
                drain_until = Some(now + secs(opts.drain));
            }
            if let Some(d) = drain_until {
                if received >= expected_of(sent) || now >= d {
                    break;
                }
            }
            if now >= deadline {
                say(progress, "stopping: --timeout reached".into());
                break;
            }
        }
    }
    stop(&shared);

    let mut tallies: HashMap<u32, Tally> = HashMap::new();
    let mut sent_by: HashMap<u32, u64> = HashMap::new();
    let mut connack = stats::new_hist();
    let (mut measured, mut foreign, mut last_rx) = (0u64, 0u64, 0u64);
    let mut tls_resumed = 0u64;
    for h in handles {
        let r = h.join().map_err(|_| "a worker panicked".to_string())?;
        stats::merge(&mut total_hist, &r.hist);
        stats::merge(&mut connack, &r.connack);
        for (p, t) in &r.tallies {
            tallies.entry(*p).or_default().merge(t);
        }
        for (p, n) in &r.sent {
            *sent_by.entry(*p).or_default() += n;
        }
        measured += r.measured;
        foreign += r.foreign;
        last_rx = last_rx.max(r.last_rx_ns);
        tls_resumed += r.tls_resumed;
    }
    while let Ok(h) = snap_rx.try_recv() {
        stats::merge(&mut total_hist, &h);
    }
    // Each publisher's messages are due `fanout` times; loss is counted per publisher.
    let mut all = Tally::default();
    for t in tallies.values() {
        all.merge(t);
    }
    let sent: u64 = sent_by.values().sum();
    let expected = expected_of(sent);
    let lost = sent_by
        .iter()
        .map(|(p, n)| {
            tallies
                .get(p)
                .copied()
                .unwrap_or_default()
                .lost(expected_of(*n))
        })
        .sum();
    let measure_from = start + secs(opts.warmup);
    let measured_s = if last_rx > measure_from {
        (last_rx - measure_from) as f64 / 1e9
    } else {
        0.0
    };
    let report = Report {
        scenario: opts.scenario,
        broker: addr.to_string(),
        transport: transport.kind,
        mqtt_version: if opts.mqtt_version == 5 { 5 } else { 3 },
        qos: opts.qos,
        size: opts.size,
        clients: total,
        publishers: plan.publishers,
        fanout: plan.fanout,
        threads,
        rate_per_publisher: opts.rate(),
        window: opts.window,
        warmup_s: opts.warmup,
        duration_s: duration,
        sent,
        expected,
        delivered: all.unique,
        lost,
        duplicates: all.duplicates,
        reordered: all.reordered,
        foreign,
        measured,
        measured_s,
        delivered_per_s: if measured_s > 0.0 {
            measured as f64 / measured_s
        } else {
            0.0
        },
        latency: percentiles(&total_hist),
        connects: total as u64,
        connect_s,
        connects_per_s: if connect_s > 0.0 {
            total as f64 / connect_s
        } else {
            0.0
        },
        connack: percentiles(&connack),
        tls_resumed: transport.kind.tls().then_some(tls_resumed),
        failed_connections: shared.failed.load(Relaxed),
        first_error: shared.first_error.lock().map(|e| e.clone()).unwrap_or(None),
        timeline,
    };
    Ok((report, total_hist))
}

/// Most warm-up connections `--tls-resume` makes.
const MAX_WARM_UP: usize = 200;

/// `--tls-resume`: MQTT connections before the run (CONNECT → CONNACK → DISCONNECT) until the
/// shared session store can resume the run's first wave of connections (`--concurrency`, or
/// every client): one is enough with TLS 1.2 (a reusable session); with TLS 1.3 each ticket
/// serves one connection and the broker sends a few per connection (rustls: 2). At most
/// [`MAX_WARM_UP`] connections; not counted anywhere in the report.
fn warm_up(
    opts: &Opts,
    addr: SocketAddr,
    transport: &TransportCfg,
    deadline: u64,
) -> Result<(), String> {
    let Some(store) = &transport.sessions else {
        return Ok(());
    };
    let clients = plan::build(opts.scenario, opts.n(), opts.shared, "x")
        .clients
        .len();
    let wave = match opts.concurrency() {
        0 => clients,
        c => c.min(clients),
    };
    let left = Duration::from_nanos(deadline.saturating_sub(now_ns()));
    let until = std::time::Instant::now() + left;
    for i in 0..MAX_WARM_UP {
        if i > 0 && store.resumable(&transport.server_name) >= wave {
            break;
        }
        let id = format!("shardmq-bench-{}-warmup-{i}", std::process::id());
        let mut c = crate::probe::Client::connect(addr, transport, opts.version(), &id, until)
            .map_err(|e| format!("TLS warm-up connection to {addr}: {e}"))?;
        c.disconnect();
    }
    Ok(())
}
