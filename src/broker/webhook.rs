//! The web hook HTTP/1.1 client: POSTs (or PUTs) the rule engine's JSON to a user's web
//! server, one queue per target, a few keep-alive connections per target on each shard.
//!
//! Owns: per target, the queue of requests not yet sent, the worker tasks that send them
//! (each with its one connection) and the connect backoff. The request bytes and the
//! response parser are the pure [`crate::rules::webhook`].
//!
//! Runs on: a shard's thread, inside its glommio executor; one [`WebHooks`] per shard, never
//! shared with another thread.
//!
//! Must never: block the shard (all I/O is the executor's; the one exception, a DNS lookup
//! for a host that is neither an IP literal nor `localhost`, is marked at [`resolve`]), grow
//! memory without bound (each target's queue holds at most [`WebLimits::queue`] requests and
//! [`WebHooks::send`] refuses beyond that; a response's head is bounded and its body is read
//! and dropped), or retry forever (a request is sent at most twice, the second time only when
//! a reused keep-alive connection turned out closed before any response byte; a target whose
//! connect failed refuses requests for [`BACKOFF`]).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use shardmq_shards::rt;

use crate::broker::race::or_timeout;
use crate::rules::webhook::{request, HttpUrl, Progress, ResponseReader, WebTarget};

/// How long a worker with nothing to send keeps its connection before it ends.
const IDLE: Duration = Duration::from_secs(5);

/// How long a target whose connect failed refuses requests before it tries again.
pub const BACKOFF: Duration = Duration::from_secs(1);

/// A worker's read buffer.
const READ_BUF: usize = 4096;

/// Bounds on what the web hooks of one shard may hold and wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebLimits {
    /// Requests queued per target; [`WebHooks::send`] refuses beyond that.
    pub queue: usize,
    /// Connections (workers) per target on this shard; 0 is taken as 1.
    pub connections: usize,
    /// The longest a connect may take, and, separately, the longest from the first byte of a
    /// request written to the last byte of its response read.
    pub timeout: Duration,
}

impl Default for WebLimits {
    fn default() -> Self {
        WebLimits {
            queue: 1024,
            connections: 2,
            timeout: Duration::from_secs(5),
        }
    }
}

/// What `done` of [`WebHooks::send`] is: called once with whether a 2xx response came.
pub type Done = Box<dyn FnOnce(bool)>;

/// One queued request.
struct Job {
    body: Vec<u8>,
    done: Done,
}

/// One target's queue and workers.
struct Target {
    target: Arc<WebTarget>,
    queue: RefCell<VecDeque<Job>>,
    /// The workers waiting for a job, woken (all of them) when one is queued.
    wakers: RefCell<Vec<Waker>>,
    /// Workers running, and how many of them wait for a job.
    workers: Cell<usize>,
    waiting: Cell<usize>,
    /// Until when requests are refused after a failed connect.
    backoff_until: Cell<Option<Instant>>,
}

impl Target {
    fn in_backoff(&self) -> bool {
        self.backoff_until
            .get()
            .is_some_and(|until| Instant::now() < until)
    }

    /// Fails every queued request at once and refuses new ones for [`BACKOFF`].
    fn fail_all(&self) {
        self.backoff_until.set(Some(Instant::now() + BACKOFF));
        let jobs: Vec<Job> = self.queue.borrow_mut().drain(..).collect();
        for job in jobs {
            (job.done)(false);
        }
    }

    fn wake_workers(&self) {
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for w in wakers {
            w.wake();
        }
    }

    /// Ready once the queue holds a job.
    fn work(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if !self.queue.borrow().is_empty() {
                return Poll::Ready(());
            }
            let mut wakers = self.wakers.borrow_mut();
            if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                wakers.push(cx.waker().clone());
            }
            Poll::Pending
        })
    }
}

/// The web hook client of one shard.
pub struct WebHooks {
    limits: WebLimits,
    idle: Duration,
    /// Targets with queued requests, workers, or a backoff; equal configs share an entry.
    targets: RefCell<HashMap<Arc<WebTarget>, Rc<Target>>>,
}

impl WebHooks {
    pub fn new(limits: WebLimits) -> Rc<WebHooks> {
        Self::with_idle(limits, IDLE)
    }

    fn with_idle(limits: WebLimits, idle: Duration) -> Rc<WebHooks> {
        Rc::new(WebHooks {
            limits,
            idle,
            targets: RefCell::new(HashMap::new()),
        })
    }

    /// Queues `body` for `target`. False at once, `done` dropped without a call, when the
    /// target's queue is full or the target is in its connect backoff: the caller counts a
    /// failure. Otherwise `done` is called later, on this shard, with true after a 2xx
    /// response and false after any other status, an I/O error or a timeout; never from within
    /// `send` itself. `done` must not panic; it may call `send` again.
    pub fn send(self: &Rc<Self>, target: &Arc<WebTarget>, body: Vec<u8>, done: Done) -> bool {
        if self.limits.queue == 0 {
            return false;
        }
        let t = self.target(target);
        if t.in_backoff() {
            return false;
        }
        let queued = {
            let mut queue = t.queue.borrow_mut();
            if queue.len() >= self.limits.queue {
                return false;
            }
            queue.push_back(Job { body, done });
            queue.len()
        };
        t.wake_workers();
        if t.workers.get() < self.limits.connections.max(1) && queued > t.waiting.get() {
            t.workers.set(t.workers.get() + 1);
            rt::spawn_local(worker(Rc::downgrade(self), t, self.limits, self.idle)).detach();
        }
        true
    }

    /// Requests queued for `target` and not yet taken by a worker.
    pub fn queued(&self, target: &WebTarget) -> usize {
        self.targets
            .borrow()
            .get(target)
            .map_or(0, |t| t.queue.borrow().len())
    }

    /// Targets with queued requests, running workers or a backoff.
    pub fn active_targets(&self) -> usize {
        self.targets.borrow().len()
    }

    fn target(&self, target: &Arc<WebTarget>) -> Rc<Target> {
        let mut targets = self.targets.borrow_mut();
        if let Some(t) = targets.get(&**target) {
            return t.clone();
        }
        let t = Rc::new(Target {
            target: target.clone(),
            queue: RefCell::new(VecDeque::new()),
            wakers: RefCell::new(Vec::new()),
            workers: Cell::new(0),
            waiting: Cell::new(0),
            backoff_until: Cell::new(None),
        });
        targets.insert(target.clone(), t.clone());
        t
    }

    /// Forgets `t` when nothing of it is left: no worker, no request, no backoff.
    fn forget_if_unused(&self, t: &Rc<Target>) {
        if t.workers.get() == 0 && t.queue.borrow().is_empty() && !t.in_backoff() {
            let mut targets = self.targets.borrow_mut();
            if targets.get(&*t.target).is_some_and(|e| Rc::ptr_eq(e, t)) {
                targets.remove(&*t.target);
            }
        }
    }
}

/// Whether a TCP connection to `url`'s host and port opens within `timeout` (a web hook
/// resource's `is_alive`). Closed again at once.
pub async fn probe(url: &HttpUrl, timeout: Duration) -> bool {
    let Ok(addr) = resolve(url) else {
        return false;
    };
    let _io = rt::GlommioIo::begin();
    matches!(
        or_timeout(rt::TcpStream::connect(addr), timeout).await,
        Some(Ok(_))
    )
}

/// The address to connect to for `url`. IP literals and `localhost` (taken as 127.0.0.1)
/// need no lookup; any other name is resolved by the system resolver, which BLOCKS this
/// shard's thread for the lookup. Web hooks usually name an IP or `localhost`; a name costs
/// one lookup per new connection, and connections are kept alive.
fn resolve(url: &HttpUrl) -> io::Result<SocketAddr> {
    if let Ok(ip) = url.host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, url.port));
    }
    if url.host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), url.port));
    }
    (url.host.as_str(), url.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the host has no address"))
}

/// A new connection to `url` within `timeout`.
async fn connect(url: &HttpUrl, timeout: Duration) -> io::Result<rt::TcpStream> {
    let addr = resolve(url)?;
    match or_timeout(rt::TcpStream::connect(addr), timeout).await {
        Some(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
        Some(Err(e)) => Err(e.into()),
        None => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
    }
}

/// One worker: takes the target's requests one at a time over its connection, until it has
/// been idle for `idle` or its connect failed.
async fn worker(hooks: Weak<WebHooks>, t: Rc<Target>, limits: WebLimits, idle: Duration) {
    // glommio polls a spawned task at once, inside `spawn_local`: step aside first, so that
    // nothing of the worker (a `done` call above all) runs inside the caller's `send`.
    step_aside().await;
    let mut conn = None;
    let mut reader = ResponseReader::new();
    let mut out = Vec::new();
    let mut rbuf = vec![0u8; READ_BUF];
    while let Some(job) = next_job(&t, idle).await {
        out.clear();
        request(&t.target, &job.body, &mut out);
        drop(job.body);
        let outcome = {
            // The request travels on glommio's socket: the shard must not nap meanwhile.
            let _io = rt::GlommioIo::begin();
            exchange_once(&t, limits, &mut conn, &out, &mut reader, &mut rbuf).await
        };
        match outcome {
            Outcome::Status(status) => (job.done)((200..300).contains(&status)),
            Outcome::Failed => (job.done)(false),
            Outcome::NoConnection => {
                (job.done)(false);
                // Nothing queued can get through now: fail it all, refuse new requests for
                // the backoff, then wait for work again (ending when idle).
                t.fail_all();
                rt::sleep(BACKOFF).await;
            }
        }
        if out.capacity() > 64 * 1024 {
            out = Vec::new();
        }
    }
    drop(conn);
    t.workers.set(t.workers.get() - 1);
    if t.workers.get() == 0 {
        t.wakers.borrow_mut().clear();
        if let Some(hooks) = hooks.upgrade() {
            hooks.forget_if_unused(&t);
        }
    }
}

/// Pending once, runnable again at once: what follows runs in a later turn of the executor.
async fn step_aside() {
    let mut stepped = false;
    std::future::poll_fn(|cx| {
        if stepped {
            return Poll::Ready(());
        }
        stepped = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// The next queued job, or `None` once none came for `idle`.
async fn next_job(t: &Target, idle: Duration) -> Option<Job> {
    loop {
        let job = t.queue.borrow_mut().pop_front();
        if job.is_some() {
            return job;
        }
        t.waiting.set(t.waiting.get() + 1);
        let woken = or_timeout(t.work(), idle).await;
        t.waiting.set(t.waiting.get() - 1);
        if woken.is_none() {
            return t.queue.borrow_mut().pop_front();
        }
    }
}

/// How one request ended.
enum Outcome {
    /// A response with this status.
    Status(u16),
    /// An error or a timeout on an open connection.
    Failed,
    /// No connection could be opened.
    NoConnection,
}

/// Sends `req` over `conn` (opened first when `None`) and reads the response; `conn` is left
/// open when the response allows the next request on it. Retried once on a fresh connection
/// when a reused one was closed before any response byte.
async fn exchange_once(
    t: &Target,
    limits: WebLimits,
    conn: &mut Option<rt::TcpStream>,
    req: &[u8],
    reader: &mut ResponseReader,
    rbuf: &mut [u8],
) -> Outcome {
    loop {
        let reused = conn.is_some();
        let mut stream = match conn.take() {
            Some(stream) => stream,
            None if t.in_backoff() => return Outcome::NoConnection,
            None => match connect(&t.target.url, limits.timeout).await {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::debug!(url = %t.target.url.host_header(), "web hook connect: {e}");
                    return Outcome::NoConnection;
                }
            },
        };
        *reader = ResponseReader::new();
        match or_timeout(exchange(&mut stream, req, reader, rbuf), limits.timeout).await {
            Some(Ok((status, keep_alive))) => {
                if keep_alive {
                    *conn = Some(stream);
                }
                return Outcome::Status(status);
            }
            Some(Err(Broken::Silent)) if reused => continue,
            Some(Err(e)) => {
                tracing::debug!(url = %t.target.url.host_header(), "web hook request: {e:?}");
                return Outcome::Failed;
            }
            None => {
                tracing::debug!(url = %t.target.url.host_header(), "web hook request timed out");
                return Outcome::Failed;
            }
        }
    }
}

/// Why an exchange failed.
#[derive(Debug)]
enum Broken {
    /// The connection failed or closed before any byte of the response.
    Silent,
    /// After some of the response, or the response was bad.
    #[allow(dead_code)] // read by Debug, for the log
    Response(String),
}

/// Writes `req` and reads one response: its status and whether the connection may carry
/// the next request.
async fn exchange(
    stream: &mut rt::TcpStream,
    req: &[u8],
    reader: &mut ResponseReader,
    rbuf: &mut [u8],
) -> Result<(u16, bool), Broken> {
    if stream.write_all(req).await.is_err() || stream.flush().await.is_err() {
        return Err(Broken::Silent);
    }
    let mut got = false;
    loop {
        let n = match stream.read(rbuf).await {
            Ok(n) => n,
            Err(e) if got => return Err(Broken::Response(e.to_string())),
            Err(_) => return Err(Broken::Silent),
        };
        let progress = if n == 0 {
            reader.eof()
        } else {
            got = true;
            reader.feed(&rbuf[..n])
        };
        match progress {
            // Bytes after the response were not asked for: the connection is not reused.
            Ok(Progress::Done {
                status,
                keep_alive,
                consumed,
            }) => return Ok((status, keep_alive && consumed == n)),
            Ok(Progress::NeedMore) if n > 0 => {}
            Ok(Progress::NeedMore) => return Err(Broken::Response("no end".into())),
            Err(_) if !got => return Err(Broken::Silent),
            Err(e) => return Err(Broken::Response(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::mpsc;

    /// Runs `body` on a fresh glommio executor (as the broker starts its shards) and returns
    /// its output; fails the test when it takes over 30 s or panics.
    fn on_executor<T, F, Fut>(body: F) -> T
    where
        T: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
    {
        let (tx, rx) = mpsc::channel();
        let handle = shardmq_shards::runtime::spawn_pinned(
            "webhook-test",
            0,
            shardmq_shards::runtime::Scheduling::Normal,
            move || async move {
                let _ = tx.send(body().await);
            },
        )
        .expect("an executor");
        let out = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the executor's test body finished in time");
        let _ = handle.join();
        out
    }

    /// How the test server answers.
    #[derive(Clone, Copy, PartialEq)]
    enum Mode {
        /// 200, alternately with a Content-Length and chunked after a 100 Continue.
        Ok,
        /// 500 to everything.
        Error,
        /// 200, then closes the connection without saying so.
        CloseAfterEach,
        /// Reads the requests, never answers.
        Silent,
    }

    enum Event {
        Request { head: String, body: Vec<u8> },
        Closed,
    }

    /// A small blocking HTTP server on 127.0.0.1, one thread per connection.
    struct Server {
        addr: SocketAddr,
        events: mpsc::Receiver<Event>,
        accepted: Arc<AtomicUsize>,
        stop: Arc<AtomicBool>,
    }

    impl Server {
        fn start(mode: Mode) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            let (tx, events) = mpsc::channel();
            let accepted = Arc::new(AtomicUsize::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let (count, stopped) = (accepted.clone(), stop.clone());
            std::thread::spawn(move || {
                let served = AtomicUsize::new(0);
                let served = Arc::new(served);
                for conn in listener.incoming() {
                    if stopped.load(Ordering::Acquire) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    count.fetch_add(1, Ordering::AcqRel);
                    let (tx, served) = (tx.clone(), served.clone());
                    std::thread::spawn(move || serve(conn, mode, &tx, &served));
                }
            });
            Server {
                addr,
                events,
                accepted,
                stop,
            }
        }

        fn target(&self, path: &str, headers: serde_json::Value) -> Arc<WebTarget> {
            let config = serde_json::json!({
                "url": format!("http://127.0.0.1:{}{path}", self.addr.port()),
                "headers": headers,
            });
            Arc::new(WebTarget::from_config(&config).expect("a valid target"))
        }

        fn next(&self) -> Event {
            self.events
                .recv_timeout(Duration::from_secs(10))
                .expect("a server event in time")
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Release);
            let _ = TcpStream::connect(self.addr);
        }
    }

    /// Serves one connection until the client closes it.
    fn serve(mut conn: TcpStream, mode: Mode, tx: &mpsc::Sender<Event>, served: &AtomicUsize) {
        let _ = conn.set_read_timeout(Some(Duration::from_secs(20)));
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            // One request: the head up to the blank line, then Content-Length bytes.
            let request = loop {
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end + 4]).to_string();
                    let length = head
                        .lines()
                        .find_map(|l| {
                            let (n, v) = l.split_once(':')?;
                            n.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + length {
                        let body = buf[end + 4..end + 4 + length].to_vec();
                        buf.drain(..end + 4 + length);
                        break Some((head, body));
                    }
                }
                match conn.read(&mut chunk) {
                    Ok(0) | Err(_) => break None,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            let Some((head, body)) = request else {
                let _ = tx.send(Event::Closed);
                return;
            };
            let _ = tx.send(Event::Request { head, body });
            let n = served.fetch_add(1, Ordering::AcqRel);
            let answer: &[u8] = match mode {
                Mode::Ok if n.is_multiple_of(2) => {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                }
                Mode::Ok => {
                    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\
                      Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
                }
                Mode::Error => {
                    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops"
                }
                Mode::CloseAfterEach => b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                Mode::Silent => continue,
            };
            if conn.write_all(answer).is_err() {
                return;
            }
            if mode == Mode::CloseAfterEach {
                let _ = conn.shutdown(Shutdown::Both);
                let _ = tx.send(Event::Closed);
                return;
            }
        }
    }

    /// A `done` that sends its result, numbered, on a local channel.
    fn reporting(tx: &Rc<rt::local_channel::LocalSender<(usize, bool)>>, n: usize) -> Done {
        let tx = tx.clone();
        Box::new(move |ok| {
            let _ = tx.try_send((n, ok));
        })
    }

    /// Waits for `count` results within `within`.
    async fn results(
        rx: &rt::local_channel::LocalReceiver<(usize, bool)>,
        count: usize,
        within: Duration,
    ) -> Vec<(usize, bool)> {
        let all = async {
            let mut got = Vec::new();
            while got.len() < count {
                match rx.recv().await {
                    Some(r) => got.push(r),
                    None => break,
                }
            }
            got
        };
        or_timeout(all, within).await.unwrap_or_default()
    }

    #[test]
    fn a_hundred_posts_arrive_over_at_most_two_kept_alive_connections() {
        let server = Server::start(Mode::Ok);
        let target = server.target("/hook?x=1", serde_json::json!({"X-Test": "yes"}));
        let t = target.clone();
        let (results, left) = on_executor(move || async move {
            let hooks = WebHooks::new(WebLimits::default());
            let (tx, rx) = rt::local_channel::new_unbounded();
            let tx = Rc::new(tx);
            for i in 0..100 {
                let body = format!("{{\"n\":{i}}}").into_bytes();
                assert!(hooks.send(&t, body, reporting(&tx, i)));
            }
            let got = results(&rx, 100, Duration::from_secs(10)).await;
            (got, hooks.queued(&t))
        });
        assert_eq!(results.len(), 100, "every request is answered");
        assert!(results.iter().all(|&(_, ok)| ok), "all 2xx");
        assert_eq!(left, 0);
        let mut bodies = Vec::new();
        while bodies.len() < 100 {
            if let Event::Request { head, body } = server.next() {
                assert!(head.starts_with("POST /hook?x=1 HTTP/1.1\r\n"), "{head}");
                let host = format!("\r\nHost: 127.0.0.1:{}\r\n", server.addr.port());
                assert!(head.contains(&host), "{head}");
                assert!(
                    head.contains("\r\nContent-Type: application/json\r\n"),
                    "{head}"
                );
                assert!(head.contains("\r\nX-Test: yes\r\n"), "{head}");
                assert!(!head.to_ascii_lowercase().contains("connection:"), "{head}");
                bodies.push(String::from_utf8(body).expect("utf-8"));
            }
        }
        bodies.sort();
        let mut expected: Vec<String> = (0..100).map(|i| format!("{{\"n\":{i}}}")).collect();
        expected.sort();
        assert_eq!(bodies, expected);
        let accepted = server.accepted.load(Ordering::Acquire);
        assert!((1..=2).contains(&accepted), "{accepted} connections");
    }

    #[test]
    fn a_non_2xx_status_is_a_failure() {
        let server = Server::start(Mode::Error);
        let target = server.target("/", serde_json::Value::Null);
        let results = on_executor(move || async move {
            let hooks = WebHooks::new(WebLimits::default());
            let (tx, rx) = rt::local_channel::new_unbounded();
            let tx = Rc::new(tx);
            let mut all = Vec::new();
            // One after the other: the second goes over the kept connection.
            for i in 0..2 {
                assert!(hooks.send(&target, b"{}".to_vec(), reporting(&tx, i)));
                all.extend(results(&rx, 1, Duration::from_secs(10)).await);
            }
            all
        });
        assert_eq!(results, vec![(0, false), (1, false)]);
        assert_eq!(server.accepted.load(Ordering::Acquire), 1);
    }

    #[test]
    fn a_kept_connection_the_server_closed_is_retried_once_on_a_new_one() {
        let server = Server::start(Mode::CloseAfterEach);
        let target = server.target("/", serde_json::Value::Null);
        let results = on_executor(move || async move {
            let hooks = WebHooks::new(WebLimits {
                connections: 1,
                ..WebLimits::default()
            });
            let (tx, rx) = rt::local_channel::new_unbounded();
            let tx = Rc::new(tx);
            let mut all = Vec::new();
            for i in 0..5 {
                assert!(hooks.send(&target, b"{}".to_vec(), reporting(&tx, i)));
                all.extend(results(&rx, 1, Duration::from_secs(10)).await);
            }
            all
        });
        assert_eq!(results, (0..5).map(|i| (i, true)).collect::<Vec<_>>());
        assert_eq!(server.accepted.load(Ordering::Acquire), 5);
    }

    #[test]
    fn a_dead_endpoint_fails_the_queue_at_once_and_backs_off() {
        // A port where nothing listens.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let config = serde_json::json!({"url": format!("http://localhost:{port}/")});
        let target = Arc::new(WebTarget::from_config(&config).expect("a target"));
        let (first, full, in_backoff, later, called) = on_executor(move || async move {
            let hooks = WebHooks::new(WebLimits {
                queue: 8,
                connections: 2,
                timeout: Duration::from_secs(2),
            });
            let (tx, rx) = rt::local_channel::new_unbounded();
            let tx = Rc::new(tx);
            for i in 0..8 {
                assert!(hooks.send(&target, b"{}".to_vec(), reporting(&tx, i)));
            }
            // The queue is full: refused, and that `done` is never called.
            let called = Rc::new(Cell::new(false));
            let c = called.clone();
            let full = hooks.send(&target, b"{}".to_vec(), Box::new(move |_| c.set(true)));
            let start = Instant::now();
            let first = results(&rx, 8, Duration::from_secs(5)).await;
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "{:?}",
                start.elapsed()
            );
            let in_backoff = hooks.send(&target, b"{}".to_vec(), reporting(&tx, 100));
            // After the backoff, the target is tried again (and fails again).
            rt::sleep(BACKOFF + Duration::from_millis(100)).await;
            assert!(hooks.send(&target, b"{}".to_vec(), reporting(&tx, 200)));
            let later = results(&rx, 1, Duration::from_secs(5)).await;
            (first, full, in_backoff, later, called.get())
        });
        assert_eq!(first.len(), 8);
        assert!(first.iter().all(|&(_, ok)| !ok));
        assert!(!full, "a full queue refuses");
        assert!(!called, "a refused request's done is dropped, not called");
        assert!(!in_backoff, "the backoff refuses");
        assert_eq!(later, vec![(200, false)]);
    }

    #[test]
    fn a_server_that_never_answers_times_out() {
        let server = Server::start(Mode::Silent);
        let target = server.target("/slow", serde_json::Value::Null);
        let (result, took) = on_executor(move || async move {
            let hooks = WebHooks::new(WebLimits {
                timeout: Duration::from_millis(200),
                ..WebLimits::default()
            });
            let (tx, rx) = rt::local_channel::new_unbounded();
            let tx = Rc::new(tx);
            let start = Instant::now();
            assert!(hooks.send(&target, b"{}".to_vec(), reporting(&tx, 0)));
            let got = results(&rx, 1, Duration::from_secs(5)).await;
            (got, start.elapsed())
        });
        assert_eq!(result, vec![(0, false)]);
        assert!(took >= Duration::from_millis(190), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        // The request arrived; the connection was closed when the client gave up.
        assert!(matches!(server.next(), Event::Request { .. }));
        assert!(matches!(server.next(), Event::Closed));
    }

    #[test]
    fn an_idle_worker_closes_its_connection_and_the_target_is_forgotten() {
        let server = Server::start(Mode::Ok);
        let target = server.target("/", serde_json::Value::Null);
        let (result, forgotten) = on_executor(move || async move {
            let hooks = WebHooks::with_idle(WebLimits::default(), Duration::from_millis(100));
            let (tx, rx) = rt::local_channel::new_unbounded();
            let tx = Rc::new(tx);
            assert!(hooks.send(&target, b"{}".to_vec(), reporting(&tx, 0)));
            let got = results(&rx, 1, Duration::from_secs(5)).await;
            assert_eq!(hooks.active_targets(), 1);
            // Nothing to await for the worker's end: look every 20 ms, for 3 s at most.
            let mut forgotten = false;
            for _ in 0..150 {
                if hooks.active_targets() == 0 {
                    forgotten = true;
                    break;
                }
                rt::sleep(Duration::from_millis(20)).await;
            }
            (got, forgotten)
        });
        assert_eq!(result, vec![(0, true)]);
        assert!(forgotten, "the target was forgotten");
        assert!(matches!(server.next(), Event::Request { .. }));
        assert!(matches!(server.next(), Event::Closed));
    }

    #[test]
    fn equal_targets_share_a_queue() {
        let a = Arc::new(
            WebTarget::from_config(&serde_json::json!({"url": "http://127.0.0.1:9/"}))
                .expect("a target"),
        );
        let b = Arc::new((*a).clone());
        let (queued, second) = on_executor(move || async move {
            let hooks = WebHooks::new(WebLimits {
                queue: 1,
                ..WebLimits::default()
            });
            assert!(hooks.send(&a, b"1".to_vec(), Box::new(|_| {})));
            let second = hooks.send(&b, b"2".to_vec(), Box::new(|_| {}));
            (hooks.queued(&b), second)
        });
        assert_eq!(queued, 1);
        assert!(!second, "the shared queue of one was full");
    }

    #[test]
    fn probe_tells_an_open_port_from_a_closed_one() {
        let server = Server::start(Mode::Ok);
        let open =
            HttpUrl::parse(&format!("http://127.0.0.1:{}/", server.addr.port())).expect("a URL");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let closed = HttpUrl::parse(&format!("http://localhost:{port}/")).expect("a URL");
        let (up, down) = on_executor(move || async move {
            let t = Duration::from_secs(2);
            (probe(&open, t).await, probe(&closed, t).await)
        });
        assert!(up);
        assert!(!down);
    }
}
