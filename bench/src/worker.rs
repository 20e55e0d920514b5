//! One worker thread: many connections on one mio poll loop.
//!
//! Owns: its connections, its latency histograms and stream tallies, and the pacing of its
//! publishers. It talks to the main thread only through [`Shared`] atomics (phase, counters)
//! and a channel of one-second histogram snapshots; its full results come back on `join`.
//! Must never: block on anything but `poll`, take a lock on the hot path, or allocate per
//! message.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use shardmq::codec::{ProtocolVersion, QoS};

use crate::clock::now_ns;
use crate::conn::{Conn, Pub, Pump, Sink, State};
use crate::plan::ClientSpec;
use crate::schedule::{Pace, Schedule};
use crate::stats::{self, Hist};
use crate::timer::PreciseTimer;
use crate::track::Tally;
use crate::transport::{Link, TransportCfg};

/// Counters the main thread reads for the progress line (one cache line per worker).
#[repr(align(64))]
#[derive(Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub received: AtomicU64,
}

/// The state all workers and the main thread share.
#[derive(Default)]
pub struct Shared {
    /// Clients connected (and subscribed).
    pub ready: AtomicUsize,
    /// Clients that failed; the first error is kept.
    pub failed: AtomicUsize,
    pub first_error: Mutex<Option<String>>,
    /// When publishing starts (0: not yet); set by the main thread once everyone is ready.
    pub start_ns: AtomicU64,
    /// Publishers whose schedule ended.
    pub pubs_done: AtomicUsize,
    /// Leave the loop.
    pub stop: AtomicBool,
    pub counters: Vec<Counters>,
}

impl Shared {
    pub fn new(workers: usize) -> Shared {
        Shared {
            counters: (0..workers).map(|_| Counters::default()).collect(),
            ..Shared::default()
        }
    }

    fn fail(&self, msg: String) {
        self.failed.fetch_add(1, Relaxed);
        let mut e = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        e.get_or_insert(msg);
    }
}

/// What every worker is told.
#[derive(Debug, Clone)]
pub struct WorkerCfg {
    pub addr: SocketAddr,
    pub version: ProtocolVersion,
    pub qos: QoS,
    pub size: usize,
    pub window: u32,
    pub rate: Option<f64>,
    pub publishers: u32,
    /// Messages per publisher.
    pub limit: u64,
    /// Warm-up and measured time, ns (`u64::MAX`: until the limit).
    pub warmup_ns: u64,
    pub duration_ns: u64,
    /// QoS 0 unlimited only: pause publishing while sent × fanout − received is at least this
    /// (0: never).
    pub outstanding_limit: u64,
    pub fanout: u64,
    /// Connection attempts in flight at once on this worker (0: no limit).
    pub concurrency: usize,
    pub client_prefix: String,
    /// TCP, TLS, WebSocket or both, and their settings.
    pub transport: TransportCfg,
}

/// A worker's results.
pub struct WorkerReport {
    pub hist: Hist,
    pub connack: Hist,
    pub tallies: HashMap<u32, Tally>,
    /// (publisher id, messages sent).
    pub sent: Vec<(u32, u64)>,
    pub received: u64,
    pub measured: u64,
    pub foreign: u64,
    pub last_rx_ns: u64,
    /// Connections whose TLS handshake resumed a session.
    pub tls_resumed: u64,
}

/// The poll token of the worker's [`PreciseTimer`] (connections use their index; mio
/// reserves `usize::MAX`).
const TIMER: Token = Token(usize::MAX - 1);

/// Runs one worker until `shared.stop`.
pub fn run(
    index: usize,
    specs: Vec<ClientSpec>,
    cfg: WorkerCfg,
    shared: Arc<Shared>,
    snapshots: Sender<Hist>,
) -> WorkerReport {
    let mut poll = Poll::new().expect("epoll instance");
    let mut timer = PreciseTimer::new(poll.registry(), TIMER).expect("timerfd");
    let mut events = Events::with_capacity(1024);
    let mut conns: Vec<Conn> = Vec::with_capacity(specs.len());
    let mut scratch = vec![0u8; 64 * 1024];
    let mut hist = stats::new_hist();
    let mut connack = stats::new_hist();
    let (mut received, mut measured, mut foreign, mut last_rx_ns) = (0u64, 0u64, 0u64, 0u64);
    let mut tls_resumed = 0u64;
    let mut last_snapshot = now_ns();
    let mut connecting = 0usize;
    let mut pubs: Vec<usize> = Vec::new();
    let counters = &shared.counters[index];
    let mut sent_total = 0u64;
    let mut schedule: Option<Schedule> = None;
    let mut gave_up = false;

    while !shared.stop.load(Relaxed) {
        // Open new connections up to the concurrency limit.
        while !gave_up
            && conns.len() < specs.len()
            && (cfg.concurrency == 0 || connecting < cfg.concurrency)
        {
            let spec = &specs[conns.len()];
            let token = Token(conns.len());
            match open(&poll, token, spec, &cfg) {
                Ok(c) => {
                    if c.publish.is_some() {
                        pubs.push(conns.len());
                    }
                    conns.push(c);
                    connecting += 1;
                }
                Err(e) => {
                    // Out of sockets or ports: the main thread sees the failure and ends the run.
                    shared.fail(format!("connect to {}: {e}", cfg.addr));
                    gave_up = true;
                }
            }
        }

        // Publish what is due.
        let now = now_ns();
        let mut timeout = Duration::from_millis(10);
        if schedule.is_none() {
            let start = shared.start_ns.load(Relaxed);
            if start != 0 {
                schedule = Some(Schedule {
                    pace: Pace::Unlimited,
                    start_ns: start,
                    end_ns: start
                        .saturating_add(cfg.warmup_ns)
                        .saturating_add(cfg.duration_ns),
                    limit: cfg.limit,
                });
            }
        }
        let throttled = cfg.outstanding_limit > 0 && {
            let (sent, received) = shared.counters.iter().fold((0u64, 0u64), |(s, r), c| {
                (s + c.sent.load(Relaxed), r + c.received.load(Relaxed))
            });
            (sent + sent_total - counters.sent.load(Relaxed)) * cfg.fanout
                >= received + cfg.outstanding_limit
        };
        if throttled {
            timeout = Duration::from_millis(1);
        }
        if let (Some(base), false) = (schedule, throttled) {
            for &i in &pubs {
                let c = &mut conns[i];
                let Some(p) = &c.publish else { continue };
                let before = p.seq;
                let mut s = base;
                if let Some(r) = cfg.rate {
                    s.pace = Pace::Rate {
                        per_s: r,
                        phase: f64::from(p.id) / f64::from(cfg.publishers.max(1)),
                    };
                }
                let r = c.pump(cfg.version, cfg.qos, cfg.size, &s, now_ns);
                sent_total += c.publish.as_ref().map_or(0, |p| p.seq - before);
                match r {
                    Ok(Pump::Busy) => timeout = Duration::ZERO,
                    Ok(Pump::Wait(Some(at))) => {
                        let wait = Duration::from_nanos(at.saturating_sub(now));
                        timeout = timeout.min(wait);
                    }
                    Ok(Pump::Finished) => {
                        shared.pubs_done.fetch_add(1, Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        fail_conn(c, &shared, e, &mut connecting);
                    }
                }
            }
        }

        // epoll waits whole milliseconds: a sooner send is woken by the timerfd instead.
        let timed = if !timeout.is_zero() && timeout < Duration::from_millis(1) {
            timer.arm(timeout)
        } else {
            timer.disarm()
        };
        if let Err(e) = timed {
            shared.fail(format!("timerfd: {e}"));
            break;
        }
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                shared.fail(format!("poll: {e}"));
                break;
            }
        }
        let mut sink = Sink {
            hist: &mut hist,
            connack: &mut connack,
            measure_from_ns: schedule.map_or(u64::MAX, |s| s.start_ns + cfg.warmup_ns),
            received: 0,
            measured: 0,
            foreign: 0,
            last_rx_ns,
            became_ready: 0,
            tls_resumed: 0,
        };
        for ev in events.iter() {
            if ev.token() == TIMER {
                timer.expired();
                continue;
            }
            let c = &mut conns[ev.token().0];
            if c.state == State::Closed {
                continue;
            }
            let mut r = Ok(());
            if ev.is_writable() || ev.is_error() {
                r = c.on_writable(cfg.version);
            }
            if r.is_ok() && (ev.is_readable() || ev.is_read_closed()) {
                r = c.on_readable(cfg.version, cfg.qos, &mut scratch, &mut sink, now_ns);
            }
            if let Err(e) = r {
                fail_conn(c, &shared, e, &mut connecting);
            }
        }
        if sink.became_ready > 0 {
            connecting -= sink.became_ready as usize;
            shared.ready.fetch_add(sink.became_ready as usize, Relaxed);
        }
        received += sink.received;
        measured += sink.measured;
        foreign += sink.foreign;
        last_rx_ns = sink.last_rx_ns;
        tls_resumed += sink.tls_resumed;
        counters.received.store(received, Relaxed);
        counters.sent.store(sent_total, Relaxed);

        let t = now_ns();
        if t - last_snapshot >= 1_000_000_000 {
            last_snapshot = t;
            if !hist.is_empty() {
                let _ = snapshots.send(hist.clone());
                hist.reset();
            }
        }
    }

    for c in conns
        .iter_mut()
        .filter(|c| !matches!(c.state, State::Closed | State::Connecting))
    {
        crate::wire::disconnect(&mut c.wbuf, cfg.version);
        let _ = c.link.close(&mut c.wbuf);
    }
    let mut tallies = HashMap::new();
    for c in &conns {
        c.streams.merge_into(&mut tallies);
    }
    WorkerReport {
        hist,
        connack,
        tallies,
        sent: conns
            .iter()
            .filter_map(|c| c.publish.as_ref().map(|p| (p.id, p.seq)))
            .collect(),
        received,
        measured,
        foreign,
        last_rx_ns,
        tls_resumed,
    }
}

fn fail_conn(c: &mut Conn, shared: &Shared, e: std::io::Error, connecting: &mut usize) {
    if c.state != State::Ready {
        *connecting = connecting.saturating_sub(1);
    }
    c.state = State::Closed;
    shared.fail(format!("client {}: {e}", c.client_id));
}

fn open(poll: &Poll, token: Token, spec: &ClientSpec, cfg: &WorkerCfg) -> std::io::Result<Conn> {
    let mut stream = TcpStream::connect(cfg.addr)?;
    poll.registry()
        .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
    let link = cfg.transport.link(stream)?;
    Ok(new_conn(link, cfg, spec))
}

fn new_conn(link: Link<TcpStream>, cfg: &WorkerCfg, spec: &ClientSpec) -> Conn {
    Conn {
        link,
        state: State::Connecting,
        client_id: format!("{}-{}", cfg.client_prefix, spec.index),
        connect_ns: now_ns(),
        rbuf: BytesMut::new(),
        wbuf: BytesMut::new(),
        publish: spec.publish.as_ref().map(|(id, topic)| Pub {
            id: *id,
            topic: topic.clone().into_bytes(),
            seq: 0,
            inflight: 0,
            next_pid: 0,
            done: false,
        }),
        subscribe: spec.subscribe.clone(),
        streams: Default::default(),
        window: cfg.window,
    }
}
